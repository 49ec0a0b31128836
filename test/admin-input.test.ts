// Hostile or careless admin input (issue 10): every numeric, duration and list parameter of the admin
// API is bounded and a refused request changes nothing; a damaged quarantine row never breaks a
// listing; Fastify's own error names never reach a client; the CLI says which MIDs it did not find and
// exits non-zero; `outbreak setup` without answers writes nothing. A real gateway, real swaks, the
// real CLI binary.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { freePort, hasBinary, run, startSmtpSink, swaks, tempDir, waitFor, type Sink } from './helpers/peers.ts';
import { startTestGateway, testConfig } from './helpers/gateway.ts';

const skip =
  hasBinary('swaks') && hasBinary('smtp-sink') ? false : 'swaks and smtp-sink are not installed (run .ci/run)';
const bin = path.resolve(import.meta.dirname, '../bin/breakwater.js');
const TEN_YEARS = 3650 * 86_400_000;

let sink: Sink;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
let files: string;
let configFile: string;

async function raw(method: string, url: string, body?: string, contentType = 'application/json') {
  const r = await fetch(`http://127.0.0.1:${gw.adminPort}/api/v1${url}`, {
    method,
    headers: { authorization: `Bearer ${gw.token}`, ...(body !== undefined ? { 'content-type': contentType } : {}) },
    body,
  });
  const text = await r.text();
  return { status: r.status, text, json: JSON.parse(text) as any };
}

const api = (method: string, url: string, body?: unknown) =>
  raw(method, url, body === undefined ? undefined : JSON.stringify(body));

function cli(args: string[], input?: string): Promise<{ code: number; out: string }> {
  return run(process.execPath, [bin, ...args], input);
}

/** Sends a message whose invoice.exe the default adaptive rules hold in the Outbreak quarantine. */
async function hold(subject: string): Promise<number> {
  const exe = path.join(files, 'invoice.exe');
  writeFileSync(exe, Buffer.concat([Buffer.from('MZ'), Buffer.alloc(1022, 0x90)]));
  const r = await swaks([
    '-s',
    `127.0.0.1:${gw.port('incoming')}`,
    '-f',
    'billing@src.test',
    '-t',
    'bob@dst.test',
    '--header',
    `Subject: ${subject}`,
    '--attach-type',
    'application/octet-stream',
    '--attach',
    `@${exe}`,
  ]);
  assert.equal(r.code, 0, r.out);
  const mid = Number(/queued as MID (\d+)/.exec(r.out)![1]);
  await waitFor(() => gw.gateway.quarantines.index.memberships(mid).includes('outbreak'), 20_000, `MID ${mid} held`);
  return mid;
}

async function exitOf(mid: number): Promise<number> {
  const [e] = await gw.gateway.quarantines.list({ quarantine: 'outbreak', mids: [mid] });
  return e.exitAt;
}

before(async () => {
  if (skip) return;
  files = tempDir('bw-admin-');
  sink = await startSmtpSink();
  gw = await startTestGateway(
    testConfig({
      routes: { '*': [`smtp://127.0.0.1:${sink.port}`] },
      // a fixed port: the CLI finds the admin API through the config file
      admin: { host: '127.0.0.1', port: await freePort() },
    }),
  );
  configFile = path.join(gw.dir, 'breakwater.yaml');
});

after(async () => {
  await gw?.stop();
  await sink?.stop();
});

test(
  'an impossible delay is refused and changes nothing; the longest hold is ten years from now',
  { skip },
  async () => {
    const mid = await hold('delay bounds');
    const before = await exitOf(mid);
    for (const extend of ['99999999999d', '0s', '3651d', '-1d', '4 hours', 12]) {
      const r = await api('POST', '/quarantines/outbreak/delay', { mids: [mid], extend });
      assert.equal(r.status, 400, `${extend}: ${r.text}`);
      assert.equal(r.json.error.code, 'invalid_parameter');
    }
    assert.equal(await exitOf(mid), before, 'refused requests leave the exit time alone');
    const listed = await api('GET', '/quarantines/outbreak/messages');
    assert.equal(listed.status, 200, listed.text);

    const ok = await api('POST', '/quarantines/outbreak/delay', { mids: [mid], extend: '3650d' });
    assert.equal(ok.status, 200, ok.text);
    assert.deepEqual(ok.json.mids, [mid]);
    const again = await api('POST', '/quarantines/outbreak/delay', { mids: [mid], extend: '3650d' });
    assert.equal(again.status, 200, again.text);
    const exit = await exitOf(mid);
    assert.ok(exit <= Date.now() + TEN_YEARS && exit > Date.now() + TEN_YEARS - 60_000, new Date(exit).toISOString());
    const shown = await api('GET', `/quarantines/outbreak/messages/${mid}`);
    assert.equal(shown.json.scheduledExit, new Date(exit).toISOString());
  },
);

test('lists and limits are bounded: 60,000 MIDs, limit 0 or 10,001, tracking limit 1,001', { skip }, async () => {
  const mid = await hold('list bounds');
  const many = Array.from({ length: 60_000 }, (_, i) => i + 1);
  const r = await api('POST', '/quarantines/outbreak/release', { mids: many });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.error.code, 'too_many_mids');
  assert.deepEqual(gw.gateway.quarantines.index.memberships(mid), ['outbreak'], 'nothing was released');

  for (const q of ['limit=0', 'limit=10001', 'limit=abc', 'limit=-5', 'level=6']) {
    const l = await api('GET', `/quarantines/outbreak/messages?${q}`);
    assert.equal(l.status, 400, `${q}: ${l.text}`);
    assert.equal(l.json.error.code, 'invalid_parameter');
  }
  assert.equal((await api('GET', '/quarantines/outbreak/messages?limit=10000')).status, 200);
  for (const q of ['limit=1001', 'limit=0']) {
    const t = await api('GET', `/tracking/messages?${q}`);
    assert.equal(t.status, 400, `${q}: ${t.text}`);
    assert.equal(t.json.error.code, 'invalid_parameter');
  }
  const t = await api('GET', '/tracking/messages?limit=1000');
  assert.equal(t.status, 200, t.text);
});

test('a damaged quarantine row never breaks a listing, a show or a delay', { skip }, async () => {
  const mid = await hold('damaged row');
  await gw.gateway.store.committed();
  // what the old delay stored, and garbage no code of ours writes: straight into SQLite
  gw.gateway.store.db
    .prepare("update quarantine set exit_at = 8641000000000000000, entered_at = 'garbage' where mid = ?")
    .run(mid);
  const listed = await api('GET', '/quarantines/outbreak/messages');
  assert.equal(listed.status, 200, listed.text);
  const entry = listed.json.messages.find((m: any) => m.mid === mid);
  assert.ok(entry, 'the damaged entry is still listed');
  assert.equal(entry.scheduledExit, null);
  assert.equal(entry.enteredAt, null);
  const shown = await api('GET', `/quarantines/outbreak/messages/${mid}`);
  assert.equal(shown.status, 200, shown.text);
  assert.equal((await api('GET', '/quarantines')).status, 200);
  assert.equal((await api('GET', `/quarantines/outbreak/messages?mids=${mid}`)).status, 200);

  // a delay repairs it: the extension counts from now
  const d = await api('POST', '/quarantines/outbreak/delay', { mids: [mid], extend: '1d' });
  assert.equal(d.status, 200, d.text);
  const exit = await exitOf(mid);
  assert.ok(Math.abs(exit - (Date.now() + 86_400_000)) < 60_000, new Date(exit).toISOString());
});

test("Fastify's error names never leak: bad JSON, empty JSON, huge bodies, other media types", { skip }, async () => {
  const cases: Array<[string, string | undefined, string, number, string]> = [
    ['not json', '{"mids": [1,', 'application/json', 400, 'invalid_json'],
    ['empty json', '', 'application/json', 400, 'invalid_json'],
    ['too large', JSON.stringify({ mids: [1], pad: 'x'.repeat(1_100_000) }), 'application/json', 413, 'body_too_large'],
    ['text', 'mids=1', 'text/plain', 415, 'unsupported_media_type'],
    ['form', 'mids=1', 'application/x-www-form-urlencoded', 415, 'unsupported_media_type'],
  ];
  for (const [name, body, type, status, code] of cases) {
    const r = await raw('POST', '/quarantines/outbreak/release', body, type);
    assert.equal(r.status, status, `${name}: ${r.text.slice(0, 200)}`);
    assert.equal(r.json.error.code, code, name);
    assert.doesNotMatch(r.text, /fst_|FST_/, name);
  }
  const notObject = await api('POST', '/quarantines/outbreak/release', [1, 2]);
  assert.equal(notObject.status, 400);
  assert.equal(notObject.json.error.code, 'invalid_body');
});

test('bulk answers name the MIDs they did not act on', { skip }, async () => {
  const mid = await hold('not found');
  const r = await api('POST', '/quarantines/outbreak/delay', { mids: [mid, 99_999], extend: '1h' });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.mids, [mid]);
  assert.deepEqual(r.json.notFound, [99_999]);
  const del = await api('POST', '/quarantines/outbreak/delete', { mids: [99_998] });
  assert.deepEqual(del.json, { action: 'delete', count: 0, mids: [], notFound: [99_998] });
  const byRule = await api('POST', '/quarantines/outbreak/delay', { rule: 'NO_SUCH_RULE', extend: '1h' });
  assert.deepEqual(byRule.json.notFound, [], 'a filter without MIDs has nothing to miss');
});

test('the CLI says which MIDs were not found and exits non-zero', { skip }, async () => {
  const mid = await hold('cli not found');
  const release = await cli(['quarantine', 'release', '99999', '--config', configFile]);
  assert.equal(release.code, 1, release.out);
  assert.match(release.out, /0 message\(s\) released/);
  assert.match(release.out, /not found in quarantine outbreak: MID 99999/);
  for (const args of [
    ['quarantine', 'delete', '99999'],
    ['quarantine', 'delay', '99999', '--extend', '1h'],
    ['quarantine', 'move', '99999', '--to', 'virus'],
    ['quarantine', 'copy', '99999', '--to', 'soc@dst.test'],
  ]) {
    const r = await cli([...args, '--config', configFile]);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.out}`);
    assert.match(r.out, /not found in quarantine outbreak: MID 99999/, args.join(' '));
  }
  // one found, one not: the found one is acted on, the exit code still says something was missing
  const mixed = await cli(['quarantine', 'delay', String(mid), '99999', '--extend', '1h', '--config', configFile]);
  assert.equal(mixed.code, 1, mixed.out);
  assert.match(mixed.out, /1 message\(s\) delayed/);
  const bad = await cli(['quarantine', 'release', 'twelve', '--config', configFile]);
  assert.equal(bad.code, 2, bad.out);
  assert.match(bad.out, /not a MID: "twelve"/);
  for (const args of [
    ['queue', 'retry', '99999'],
    ['queue', 'delete', '99999'],
  ]) {
    const r = await cli([...args, '--config', configFile]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.out}`);
    assert.match(r.out, /message_not_queued/);
  }
  assert.deepEqual(
    gw.gateway.quarantines.index.memberships(mid),
    ['outbreak'],
    'release of 99999 touched nothing else',
  );
});

test('outbreak setup without answers writes nothing; --defaults writes a valid config', { skip }, async () => {
  const copy = path.join(files, 'setup.yaml');
  writeFileSync(copy, readFileSync(configFile));
  const before = readFileSync(copy, 'utf8');
  const none = await cli(['outbreak', 'setup', '--config', copy], '');
  assert.notEqual(none.code, 0, none.out);
  assert.match(none.out, /input ended before every question was answered: nothing was written/);
  const partial = await cli(['outbreak', 'setup', '--config', copy], 'y\nn\n');
  assert.notEqual(partial.code, 0, partial.out);
  assert.equal(readFileSync(copy, 'utf8'), before, 'the config is untouched');

  const defaults = await cli(['outbreak', 'setup', '--defaults', '--config', copy]);
  assert.equal(defaults.code, 0, defaults.out);
  assert.match(defaults.out, /saved to/);
  const check = await cli(['config', 'check', copy]);
  assert.equal(check.code, 0, check.out);
});
