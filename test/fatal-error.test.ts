// An error nothing in the gateway caught is a bug; when one happens the process stops the way Node
// would, but first names the error in the mail log (where operators look), not only on stderr. The
// error is injected by a module loaded with --import into a real `breakwater start` child.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { tempDir, waitFor } from './helpers/peers.ts';
import { spawnGateway, testConfig, writeTestConfig } from './helpers/gateway.ts';
import { spawnHub } from './helpers/hub.ts';
import YAML from 'yaml';

/** A module for --import that throws from a callback, outside every promise chain, on SIGUSR2. */
function faultInjector(dir: string): string {
  const file = path.join(dir, 'inject.mjs');
  writeFileSync(
    file,
    "process.on('SIGUSR2', () => setImmediate(() => { throw new Error('injected fault\\nsecond line'); }));\n",
  );
  return file;
}

test('an uncaught error is written to the mail log with its stack, and the process exits 70', async () => {
  const dir = tempDir('bw-fatal-');
  const inject = faultInjector(dir);
  const doc = testConfig({ routes: { '*': ['file:delivered'] } });
  const { file } = writeTestConfig(doc, dir);
  const gw = await spawnGateway(file, ['--import', inject]);
  try {
    const exited = once(gw.proc, 'exit');
    gw.proc.kill('SIGUSR2');
    const [code] = (await exited) as [number | null];
    assert.equal(code, 70, gw.output());
    assert.match(gw.output(), /breakwater: stopping on an unexpected error: Error: injected fault/);
    const log = await waitFor(
      () => {
        const text = readFileSync(path.join(dir, 'data', 'logs', 'mail.log'), 'utf8');
        return text.includes('Critical:') ? text : null;
      },
      2000,
      'the Critical line',
    );
    const line = log.split('\n').find((l) => l.includes('Critical:'))!;
    // one line: the stack's line breaks are escaped
    assert.match(
      line,
      /Critical: stopping on an unexpected error \(please report it\): Error: injected fault\\x0asecond line\\x0a +at /,
    );
    // the lines before it (the listeners starting) were written too, before it
    assert.ok(log.indexOf('listener incoming') < log.indexOf('Critical:'), log);
  } finally {
    if (gw.proc.exitCode === null && gw.proc.signalCode === null) {
      gw.proc.kill('SIGKILL');
      await once(gw.proc, 'exit');
    }
  }
});

test('the hub too: an uncaught error goes to hub.log with its stack, and the process exits 70', async () => {
  const dir = tempDir('bw-fatal-hub-');
  const file = path.join(dir, 'hub.yaml');
  writeFileSync(file, YAML.stringify({ dataDir: './data', listen: { host: '127.0.0.1', port: 0 } }));
  const hub = await spawnHub(file, ['--import', faultInjector(dir)]);
  try {
    const exited = once(hub.proc, 'exit');
    hub.proc.kill('SIGUSR2');
    const [code] = (await exited) as [number | null];
    assert.equal(code, 70, hub.output());
    const log = readFileSync(path.join(dir, 'data', 'hub.log'), 'utf8');
    assert.match(
      log,
      /Critical: stopping on an unexpected error \(please report it\): Error: injected fault\\x0asecond line/,
    );
  } finally {
    if (hub.proc.exitCode === null && hub.proc.signalCode === null) {
      hub.proc.kill('SIGKILL');
      await once(hub.proc, 'exit');
    }
  }
});
