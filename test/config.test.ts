import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { tempDir } from './helpers/peers.ts';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { checkConfigFile, validateConfig } from '../src/config/load.ts';
import { parseDuration, parseByteSize } from '../src/config/schema.ts';

const bin = path.resolve(import.meta.dirname, '../bin/breakwater.js');

function write(text: string): string {
  const f = path.join(tempDir('bw-cfg-'), 'c.yaml');
  writeFileSync(f, text);
  return f;
}

test('the quick start config is valid and gets defaults', () => {
  const { loaded, errors } = checkConfigFile(path.resolve(import.meta.dirname, '../examples/quickstart.yaml'));
  assert.deepEqual(errors, []);
  assert.equal(loaded!.config.delivery.maxQueueLifetime, '5d');
  assert.equal(loaded!.config.listeners[0].hat[0].earlyTalkerDelay, '0ms');
  assert.equal(loaded!.dataDir, path.resolve(import.meta.dirname, '../data'));
});

test('config check reports every error at once, each with its path', () => {
  const file = write(`
hostname: gw
listeners:
  - name: in
    port: 99999
    direction: sideways
    hat:
      - name: g
        match: [10.0.0.0/33, not-an-ip]
        action: allow
  - name: in
    port: 25
    direction: incoming
    hat: []
routes:
  '*': ['ftp://x']
policies:
  incoming:
    - name: special
delivery:
  retrySchedule: ['5 minutes']
bogus: 1
`);
  const { errors } = checkConfigFile(file);
  const paths = errors.map((e) => e.path);
  for (const p of [
    'listeners[0].port',
    'listeners[0].direction',
    'listeners[0].hat[0].match[0]',
    'listeners[0].hat[0].match[1]',
    'listeners[0].hat[0].action',
    'listeners[1].hat',
    'routes.*[0]',
    'delivery.retrySchedule[0]',
  ]) {
    assert.ok(paths.includes(p), `expected an error at ${p}; got ${JSON.stringify(errors, null, 1)}`);
  }
  assert.ok(
    errors.some((e) => e.path === '' && /bogus/.test(e.message)),
    'unknown keys are errors',
  );
});

test('policy lists must end with default; duplicate listeners are refused', () => {
  const v = validateConfig({
    listeners: [
      {
        name: 'a',
        port: 25,
        direction: 'incoming',
        acceptDomains: ['x.test'],
        hat: [{ name: 'g', match: ['ALL'], action: 'accept' }],
      },
      {
        name: 'a',
        port: 26,
        direction: 'incoming',
        acceptDomains: ['x.test'],
        hat: [{ name: 'g', match: ['ALL'], action: 'accept' }],
      },
    ],
    policies: { incoming: [{ name: 'vip', match: ['ceo@x.test'] }] },
  });
  assert.equal(v.config, null);
  const paths = v.errors.map((e) => e.path);
  assert.ok(paths.includes('policies.incoming'));
  assert.ok(paths.includes('listeners[1].name'));
});

test('YAML syntax errors are reported, not thrown', () => {
  const { errors } = checkConfigFile(write('listeners: [\n  - name: a\n'));
  assert.ok(errors.length >= 1);
  assert.match(errors[0].message, /^YAML:/);
});

test('`breakwater config check` prints the errors and exits 1', () => {
  const file = write('listeners:\n  - name: x\n    port: 25\n    direction: incoming\n    hat: []\n');
  let out = '';
  let code = 0;
  try {
    execFileSync(process.execPath, [bin, 'config', 'check', file], { encoding: 'utf8' });
  } catch (err) {
    const e = err as { status: number; stdout: string };
    code = e.status;
    out = e.stdout;
  }
  assert.equal(code, 1);
  assert.match(out, /listeners\[0\]\.hat: /);
  assert.match(out, /listeners\[0\]\.acceptDomains: /);
});

test('durations and sizes parse', () => {
  assert.equal(parseDuration('5m'), 300_000);
  assert.equal(parseDuration('250ms'), 250);
  assert.equal(parseDuration('5d'), 432_000_000);
  assert.equal(parseByteSize('10MiB'), 10 * 1024 * 1024);
  assert.equal(parseByteSize(1234), 1234);
});
