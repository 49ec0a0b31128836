// The Outbreak Filters command line against a real `breakwater start` process: publisher tools
// (rules keygen/sign/verify), outbreak status/update/rules/flush/setup, quarantine list/show/rules/
// release/delete/delay, track search by rule and level, alerts list.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { freePort, hasBinary, run, startSmtpSink, swaks, tempDir, waitFor, type Sink } from './helpers/peers.ts';
import { spawnGateway, testConfig, writeTestConfig } from './helpers/gateway.ts';

const root = path.resolve(import.meta.dirname, '..');
const bin = path.join(root, 'bin/breakwater.js');
const skip =
  hasBinary('swaks') && hasBinary('smtp-sink') ? false : 'swaks and smtp-sink are not installed (run .ci/run)';

let dir: string;
let feed: string;
let configFile: string;
let sink: Sink;
let gw: Awaited<ReturnType<typeof spawnGateway>>;
let incoming: number;

function cli(args: string[], input?: string): Promise<{ code: number; out: string }> {
  return run(process.execPath, [bin, ...args], input);
}

async function json(args: string[]): Promise<any> {
  const r = await cli([...args, '--config', configFile, '--json']);
  assert.equal(r.code, 0, r.out);
  return JSON.parse(r.out);
}

function rule(id: string, level: number, host: string) {
  return {
    id,
    level,
    category: 'phish',
    description: `links to ${host}`,
    published: new Date().toISOString(),
    condition: { url: { host: [`.${host}`] } },
  };
}

async function publish(version: number, rules: unknown[]): Promise<void> {
  const plain = path.join(dir, `plain-${version}.json`);
  writeFileSync(plain, JSON.stringify({ version, published: new Date().toISOString(), rules }));
  const r = await cli([
    'rules',
    'sign',
    plain,
    '--key',
    path.join(dir, 'keys/outbreak-rules.key'),
    '--out',
    path.join(feed, `b-${version}.json`),
  ]);
  assert.equal(r.code, 0, r.out);
}

before(async () => {
  if (skip) return;
  dir = tempDir('bw-obcli-');
  feed = path.join(dir, 'feed');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(feed);
  const kg = await cli(['rules', 'keygen', '--out', path.join(dir, 'keys')]);
  assert.equal(kg.code, 0, kg.out);
  const publicKey = /ruleFeed\.publicKey: (\S+)/.exec(kg.out)![1];
  await publish(1, [rule('OUTBREAK_CLI_1', 4, 'bad.test')]);
  sink = await startSmtpSink({ dump: true });
  incoming = await freePort();
  const doc = testConfig({
    routes: { '*': [`smtp://127.0.0.1:${sink.port}`] },
    admin: { host: '127.0.0.1', port: await freePort() },
    clickTime: { host: '127.0.0.1', port: await freePort() },
    outbreakFilters: { adaptiveRules: false, ruleFeed: { dir: './feed', publicKey }, ruleUpdateInterval: '1h' },
  });
  (doc.listeners as any[])[0].port = incoming;
  (doc.listeners as any[]).splice(1, 1);
  configFile = writeTestConfig(doc, dir).file;
  gw = await spawnGateway(configFile);
});

after(async () => {
  if (gw && gw.proc.exitCode === null) {
    gw.proc.kill('SIGTERM');
    await once(gw.proc, 'exit');
  }
  await sink?.stop();
});

async function send(subject: string, body: string): Promise<number> {
  const r = await swaks([
    '-s',
    `127.0.0.1:${incoming}`,
    '-f',
    'a@src.test',
    '-t',
    'bob@dst.test',
    '--header',
    `Subject: ${subject}`,
    '--body',
    body,
  ]);
  assert.equal(r.code, 0, r.out);
  return Number(/queued as MID (\d+)/.exec(r.out)![1]);
}

test('rules verify reports a signed bundle and refuses a tampered one', { skip }, async () => {
  const pub = path.join(dir, 'keys/outbreak-rules.pub');
  const ok = await cli(['rules', 'verify', path.join(feed, 'b-1.json'), '--public-key', pub, '--json']);
  assert.equal(ok.code, 0, ok.out);
  assert.equal(JSON.parse(ok.out).version, 1);
  const text = readFileSync(path.join(feed, 'b-1.json'), 'utf8').replace('bad.test', 'bae.test');
  const bad = path.join(dir, 'tampered.json');
  writeFileSync(bad, text);
  const r = await cli(['rules', 'verify', bad, '--public-key', pub, '--json']);
  assert.equal(r.code, 1);
  assert.equal(JSON.parse(r.out).code, 'bad_signature');
  const invalid = path.join(dir, 'invalid.json');
  writeFileSync(invalid, JSON.stringify({ version: 0, rules: [{ id: 'x' }] }));
  const s = await cli(['rules', 'sign', invalid, '--key', path.join(dir, 'keys/outbreak-rules.key'), '--out', bad]);
  assert.equal(s.code, 1);
  assert.match(s.out, /error\(s\)/);
  assert.match(s.out, /rules\[0\]/);
});

test('outbreak status, quarantine list/rules/show/delay/release and track search by rule', { skip }, async () => {
  const st = await json(['outbreak', 'status']);
  assert.equal(st.outbreakRules.version, 1);
  assert.equal(st.settings.enabled, true);
  assert.ok(st.lastUpdate);
  const text = await cli(['outbreak', 'status', '--config', configFile]);
  assert.match(text.out, /outbreak rules\s+1\s+1/);

  const mid = await send('cli-held', 'go to http://www.bad.test/login');
  const listed = await waitForJson(['quarantine', 'list', '--quarantine', 'outbreak'], (l) => l.length === 1);
  assert.equal(listed[0].mid, mid);
  assert.deepEqual(listed[0].ruleIds, ['OUTBREAK_CLI_1']);
  const rules = await json(['quarantine', 'rules']);
  assert.deepEqual(rules, [
    { ruleId: 'OUTBREAK_CLI_1', messages: 1, totalSize: listed[0].size, description: 'links to bad.test' },
  ]);
  const shown = await json(['quarantine', 'show', String(mid)]);
  assert.equal(shown.level, 4);
  const delayed = await json(['quarantine', 'delay', String(mid), '--extend', '2h']);
  assert.equal(delayed.count, 1);
  const after = await json(['quarantine', 'show', String(mid)]);
  assert.equal(Date.parse(after.scheduledExit) - Date.parse(shown.scheduledExit), 7_200_000);
  const found = await json(['track', 'search', '--rule', 'OUTBREAK_CLI_1', '--level', '4']);
  assert.deepEqual(
    found.map((m: any) => m.mid),
    [mid],
  );
  const rel = await json(['quarantine', 'release', String(mid)]);
  assert.deepEqual(rel.mids, [mid]);
  await waitFor(() => sink.messages().find((m) => m.body.includes('cli-held')), 10_000, 'released delivery');
});

test('outbreak update picks up a new bundle; flush asks first and clears the rules', { skip }, async () => {
  await publish(2, [rule('OUTBREAK_CLI_1', 4, 'bad.test'), rule('OUTBREAK_CLI_2', 5, 'worse.test')]);
  const up = await json(['outbreak', 'update']);
  assert.equal(up.status, 'updated');
  assert.equal(up.version, 2);
  const rules = await json(['outbreak', 'rules']);
  assert.deepEqual(rules.rules.map((r: any) => r.id).sort(), ['OUTBREAK_CLI_1', 'OUTBREAK_CLI_2']);
  const no = await cli(['outbreak', 'flush', '--config', configFile], 'n\n');
  assert.match(no.out, /not flushed/);
  assert.equal((await json(['outbreak', 'status'])).outbreakRules.version, 2);
  const yes = await cli(['outbreak', 'flush', '--config', configFile], 'y\n');
  assert.equal(yes.code, 0, yes.out);
  assert.match(yes.out, /flushed \(was version 2\)/);
  assert.equal((await json(['outbreak', 'status'])).outbreakRules.version, null);
  const again = await json(['outbreak', 'update']);
  assert.equal(again.version, 2, 'the next update fetches the same version again');
});

test('alerts list shows outbreak alerts raised by rule changes', { skip }, async () => {
  const alerts = await json(['alerts', 'list']);
  assert.ok(
    alerts.some((a: any) => a.key.startsWith('outbreak.rule_raised:OUTBREAK_CLI_2')),
    JSON.stringify(alerts),
  );
});

test('outbreak setup walks through the settings and writes a valid config', { skip }, async () => {
  const copy = path.join(dir, 'setup.yaml');
  writeFileSync(copy, readFileSync(configFile));
  // enabled, alerts, max size (bad, then good), adaptive, URL logging, tracking, feed, key, interval
  const answers = ['y', 'n', '12 parsecs', '1MiB', 'n', 'y', 'n', '', '', '10m'].join('\n') + '\n';
  const r = await cli(['outbreak', 'setup', '--config', copy], answers);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /a number of bytes or a size/);
  const doc = YAML.parse(readFileSync(copy, 'utf8'));
  assert.equal(doc.outbreakFilters.alerts, false);
  assert.equal(doc.outbreakFilters.maxScanSize, '1MiB');
  assert.equal(doc.outbreakFilters.adaptiveRules, false);
  assert.equal(doc.outbreakFilters.logUrls, true);
  assert.equal(doc.outbreakFilters.webInteractionTracking, false);
  assert.equal(doc.outbreakFilters.ruleFeed.dir, './feed');
  assert.equal(doc.outbreakFilters.ruleUpdateInterval, '10m');
  const check = await cli(['config', 'check', copy]);
  assert.equal(check.code, 0, check.out);
});

async function waitForJson(args: string[], ok: (v: any) => boolean): Promise<any> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const v = await json(args);
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
