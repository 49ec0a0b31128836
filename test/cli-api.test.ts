// The CLI drives the running gateway through the admin API: a real `breakwater start` child process,
// the quick start config (ports moved to free ones), and the `breakwater` commands with --json.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync, existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { deadPort, freePort, hasBinary, run, swaks, tempDir, waitFor } from './helpers/peers.ts';
import { spawnGateway } from './helpers/gateway.ts';

const root = path.resolve(import.meta.dirname, '..');
const bin = path.join(root, 'bin/breakwater.js');
const skip = hasBinary('swaks') ? false : 'swaks is not installed (run .ci/run)';

let dir: string;
let configFile: string;
let gw: Awaited<ReturnType<typeof spawnGateway>>;
let ports: { incoming: number; outgoing: number; admin: number; dead: number };
/** the route target that never answers (held, so no other test's server takes its port) */
let dead: Awaited<ReturnType<typeof deadPort>> | undefined;

async function cli(...args: string[]): Promise<{ code: number; out: string }> {
  return run(process.execPath, [bin, ...args, '--config', configFile]);
}

async function cliJson(...args: string[]): Promise<any> {
  const r = await cli(...args, '--json');
  assert.equal(r.code, 0, r.out);
  return JSON.parse(r.out);
}

before(async () => {
  if (skip) return;
  // The quick start config exactly, with free ports and a temp data dir, plus a route to a dead port
  // for queue tests.
  const doc = YAML.parse(readFileSync(path.join(root, 'examples/quickstart.yaml'), 'utf8'));
  dead = await deadPort();
  ports = { incoming: await freePort(), outgoing: await freePort(), admin: await freePort(), dead: dead.port };
  doc.listeners[0].port = ports.incoming;
  doc.listeners[1].port = ports.outgoing;
  doc.admin.port = ports.admin;
  doc.clickTime.port = await freePort();
  doc.dataDir = './data';
  doc.routes['stuck.test'] = [`smtp://127.0.0.1:${ports.dead}`];
  doc.listeners[0].acceptDomains.push('stuck.test');
  doc.delivery = { retrySchedule: ['1h'], connectTimeout: '1s' };
  dir = tempDir('bw-cli-');
  // clamd: auto must not pick up a clamd this machine happens to run (test/quickstart-antivirus covers it)
  doc.antivirus.autoSockets = [path.join(dir, 'no-clamd.ctl')];
  configFile = path.join(dir, 'breakwater.yaml');
  writeFileSync(configFile, YAML.stringify(doc));
  gw = await spawnGateway(configFile);
});

after(async () => {
  if (gw && gw.proc.exitCode === null) {
    gw.proc.kill('SIGTERM');
    await once(gw.proc, 'exit');
  }
  await dead?.release();
});

test('first start prints the admin token once and stores it with mode 0600', { skip }, async () => {
  const token = readFileSync(path.join(dir, 'data/admin.token'), 'utf8').trim();
  assert.ok(gw.output().includes(token), 'printed at first start');
  const { statSync } = await import('node:fs');
  assert.equal(statSync(path.join(dir, 'data/admin.token')).mode & 0o777, 0o600);
});

test('quick start: mail to example.test lands in data/delivered and tracking shows it', { skip }, async () => {
  const r = await swaks([
    '-s',
    `127.0.0.1:${ports.incoming}`,
    '-f',
    'newcomer@src.test',
    '-t',
    'anyone@example.test',
    '--header',
    'Subject: quick start works',
  ]);
  assert.equal(r.code, 0, r.out);
  const mid = Number(/queued as MID (\d+)/.exec(r.out)?.[1]);
  const file = path.join(dir, 'data/delivered', `${mid}.eml`);
  await waitFor(() => existsSync(file), 10_000, 'delivered file');
  assert.match(readFileSync(file, 'utf8'), /Subject: quick start works/);
  let show: any;
  const deadline = Date.now() + 5000;
  do {
    show = await cliJson('track', 'show', String(mid));
  } while (show.status !== 'delivered' && Date.now() < deadline);
  assert.equal(show.mid, mid);
  for (const k of [
    'mid',
    'icid',
    'receivedAt',
    'sender',
    'recipients',
    'subject',
    'messageId',
    'senderIp',
    'size',
    'attachments',
    'urls',
    'status',
    'events',
  ])
    assert.ok(k in show, `track show --json has ${k}`);
  assert.equal(show.sender, 'newcomer@src.test');
  assert.equal(show.subject, 'quick start works');
  assert.equal(show.senderIp, '127.0.0.1');
  assert.deepEqual(
    show.recipients.map((x: any) => [x.address, x.status]),
    [['anyone@example.test', 'delivered']],
  );
  assert.ok(show.events.some((e: any) => e.type === 'delivery.delivered' && typeof e.at === 'string'));
  const found = await cliJson('track', 'search', '--sender', 'newcomer@src.test', '--status', 'delivered');
  assert.deepEqual(
    found.map((m: any) => m.mid),
    [mid],
  );
  const bySubject = await cliJson(
    'track',
    'search',
    '--subject',
    'start work',
    '--since',
    new Date(Date.now() - 60_000).toISOString(),
  );
  assert.deepEqual(
    bySubject.map((m: any) => m.mid),
    [mid],
  );
  const text = await cli('track', 'show', String(mid));
  assert.match(text.out, /delivery\.delivered/);
});

test('the outgoing listener relays for loopback in the quick start', { skip }, async () => {
  const r = await swaks(['-s', `127.0.0.1:${ports.outgoing}`, '-f', 'me@example.test', '-t', 'friend@far.example']);
  assert.equal(r.code, 0, r.out);
});

test('queue list, retry and delete act on a deferred message', { skip }, async () => {
  const r = await swaks(['-s', `127.0.0.1:${ports.incoming}`, '-f', 'q@src.test', '-t', 'someone@stuck.test']);
  const mid = Number(/queued as MID (\d+)/.exec(r.out)?.[1]);
  let entry: any;
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const q = await cliJson('queue', 'list');
    entry = q.find((m: any) => m.mid === mid && m.state === 'deferred');
    if (entry) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  assert.ok(entry, 'deferred message listed');
  assert.deepEqual(
    entry.recipients.map((x: any) => x.address),
    ['someone@stuck.test'],
  );
  const retried = await cliJson('queue', 'retry', String(mid));
  assert.equal(retried.recipients, 1);
  // after the retry fails again it is deferred again; then delete it
  let deleted: any = { recipients: 0 };
  const until = Date.now() + 10_000;
  while (Date.now() < until && deleted.recipients === 0) {
    deleted = await cliJson('queue', 'delete', String(mid));
    if (!deleted.recipients) await new Promise((res) => setTimeout(res, 100));
  }
  assert.equal(deleted.recipients, 1);
  const q2 = await cliJson('queue', 'list');
  assert.equal(
    q2.find((m: any) => m.mid === mid),
    undefined,
  );
  const show = await cliJson('track', 'show', String(mid));
  assert.equal(show.status, 'deleted');
  assert.ok(show.events.some((e: any) => e.type === 'admin.deleted'));
  const missing = await cli('queue', 'delete', '999999');
  assert.equal(missing.code, 2);
  assert.match(missing.out, /message_not_queued/);
});

test('status and pipeline show', { skip }, async () => {
  const s = await cliJson('status');
  assert.equal(s.listeners.length, 2);
  const p = await cliJson('pipeline', 'show');
  assert.equal(p[0].name, 'mime.parse');
  assert.ok(['tempfail', 'skip', 'quarantine'].includes(p[0].failureMode));
  const text = await cli('pipeline', 'show');
  assert.match(text.out, /policy split[\s\S]*1\. mime\.parse[\s\S]*verdict[\s\S]*delivery queue/);
});

test(
  'admin API: health is open, everything else needs the token, bad input gets 4xx with a stable code',
  { skip },
  async () => {
    const base = `http://127.0.0.1:${ports.admin}`;
    const token = readFileSync(path.join(dir, 'data/admin.token'), 'utf8').trim();
    const auth = { authorization: `Bearer ${token}` };
    assert.equal((await fetch(`${base}/health`)).status, 200);
    const noAuth = await fetch(`${base}/api/v1/status`);
    assert.equal(noAuth.status, 401);
    assert.equal(((await noAuth.json()) as any).error.code, 'unauthorized');
    const wrong = await fetch(`${base}/api/v1/status`, { headers: { authorization: 'Bearer nope' } });
    assert.equal(wrong.status, 401);
    assert.equal((await fetch(`${base}/metrics`)).status, 401);
    const metrics = await fetch(`${base}/metrics`, { headers: auth });
    assert.equal(metrics.status, 200);
    const m = await metrics.text();
    assert.match(m, /breakwater_messages_accepted_total\{listener="incoming"\} \d+/);
    assert.match(m, /breakwater_recipient_results_total\{result="delivered"\} \d+/);
    const bad = await fetch(`${base}/api/v1/tracking/messages?mid=abc`, { headers: auth });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as any).error.code, 'invalid_parameter');
    const unknown = await fetch(`${base}/api/v1/tracking/messages?colour=red`, { headers: auth });
    assert.equal(((await unknown.json()) as any).error.code, 'unknown_parameter');
    const nf = await fetch(`${base}/api/v1/tracking/messages/424242`, { headers: auth });
    assert.equal(nf.status, 404);
    assert.equal(((await nf.json()) as any).error.code, 'message_not_found');
    const route = await fetch(`${base}/api/v1/nothing`, { headers: auth });
    assert.equal(((await route.json()) as any).error.code, 'not_found');
  },
);

test('restart keeps MIDs increasing and the token stays the same', { skip }, async () => {
  const before = (await cliJson('status')).nextMid;
  gw.proc.kill('SIGTERM');
  await once(gw.proc, 'exit');
  gw = await spawnGateway(configFile);
  assert.ok(!/Admin API token/.test(gw.output()), 'token not printed again');
  const r = await swaks(['-s', `127.0.0.1:${ports.incoming}`, '-f', 'again@src.test', '-t', 'anyone@example.test']);
  const mid = Number(/queued as MID (\d+)/.exec(r.out)?.[1]);
  assert.ok(mid >= before, `MID ${mid} ≥ ${before}`);
});
