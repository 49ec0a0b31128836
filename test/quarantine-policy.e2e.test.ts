// Quarantines end to end with a real clamd and real SMTP peers (DESIGN §5): named policy quarantines as
// anti-virus targets; a message in several quarantines is delivered only when released from all and
// deleted when deleted from any; move and send a copy; release rescans with anti-virus, which may hold
// the message in `virus` again; the same operations through the admin API and the CLI.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { freePort, hasBinary, run, startSmtpSink, swaks, tempDir, waitFor, type Sink } from './helpers/peers.ts';
import { startTestGateway, testConfig } from './helpers/gateway.ts';
import { EICAR, encryptedZip, hasClamd, startClamd } from './helpers/clamd.ts';
import { writeRuleFeed } from './helpers/rules.ts';

const skip =
  hasBinary('smtp-sink') && hasBinary('swaks') && hasClamd()
    ? false
    : 'smtp-sink, swaks or clamd are not installed (run .ci/run)';

let sink: Sink;
let clamd: Awaited<ReturnType<typeof startClamd>>;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
let files: string;

function attach(name: string, bytes: Buffer | string): string[] {
  const f = path.join(files, name);
  writeFileSync(f, bytes);
  return ['--attach-type', 'application/octet-stream', '--attach', `@${f}`];
}

async function send(subject: string, extra: string[]): Promise<number> {
  const r = await swaks([
    '-s',
    `127.0.0.1:${gw.port('incoming')}`,
    '-f',
    'a@src.test',
    '-t',
    'bob@dst.test',
    '--header',
    `Subject: ${subject}`,
    ...extra,
  ]);
  assert.equal(r.code, 0, r.out);
  return Number(/queued as MID (\d+)/.exec(r.out)![1]);
}

async function api(method: string, url: string, body?: unknown): Promise<any> {
  const r = await fetch(`http://127.0.0.1:${gw.adminPort}/api/v1${url}`, {
    method,
    headers: { authorization: `Bearer ${gw.token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { httpStatus: r.status, ...((await r.json()) as object) };
}

const status = (mid: number) => gw.gateway.tracker.show(mid)?.status;
const delivered = (marker: string) =>
  sink.messages().find((m) => m.rcptTo.includes('bob@dst.test') && m.body.includes(marker));
const where = (mid: number) => gw.gateway.quarantines.index.memberships(mid).sort();

before(async () => {
  if (skip) return;
  files = tempDir('bw-qpol-');
  sink = await startSmtpSink({ dump: true });
  clamd = await startClamd();
  const feed = writeRuleFeed([
    {
      id: 'OUTBREAK_ARCHIVE',
      level: 4,
      category: 'virus',
      description: 'archives named invoice*',
      condition: { attachment: { name: ['invoice*'] } },
    },
  ]);
  gw = await startTestGateway(
    testConfig({
      routes: { '*': [`smtp://127.0.0.1:${sink.port}`] },
      // a fixed port: the CLI finds the admin API through the config file
      admin: { host: '127.0.0.1', port: await freePort() },
      antivirus: { clamd: { host: '127.0.0.1', port: clamd.port }, timeout: '3s' },
      outbreakFilters: { adaptiveRules: false, ruleFeed: { dir: feed.dir, publicKey: feed.publicKey } },
      quarantine: {
        virus: { releaseSubjectTag: '[RELEASED] ' },
        policy: [
          { name: 'unscannable', description: 'encrypted and unscannable mail', retention: '3d' },
          { name: 'review', description: 'kept for the security team', retention: '7d', defaultAction: 'delete' },
        ],
      },
      policies: {
        incoming: [{ name: 'default', antivirus: { mode: 'custom', unscannable: { quarantine: 'unscannable' } } }],
      },
    }),
  );
  await waitFor(() => gw.gateway.outbreak.bundle, 10_000, 'rules');
});

after(async () => {
  await gw?.stop();
  await clamd?.stop();
  await sink?.stop();
});

test(
  'an encrypted archive sits in two quarantines and is delivered only when released from both',
  { skip },
  async () => {
    const zip = encryptedZip('doc.txt', Buffer.from('secret numbers'), 'pw');
    const both = await send('two-quarantines', attach('invoice-1.zip', zip));
    await waitFor(() => status(both) === 'quarantined', 10_000, 'held');
    assert.deepEqual(where(both), ['outbreak', 'unscannable']);
    const summary = await api('GET', '/quarantines');
    const byName = Object.fromEntries(summary.quarantines.map((q: any) => [q.name, q]));
    assert.equal(byName.unscannable.kind, 'policy');
    assert.equal(byName.unscannable.retention, '3d');
    assert.equal(byName.unscannable.messages, 1);
    assert.equal(byName.outbreak.messages, 1);
    assert.equal(summary.usage.messages, 1, 'one message, counted once in the capacity budget');

    // Released from Outbreak: still in "unscannable", not delivered.
    const r1 = await api('POST', '/quarantines/outbreak/release', { mids: [both], by: 'analyst@example.test' });
    assert.deepEqual(r1.mids, [both]);
    await gw.gateway.store.committed();
    assert.deepEqual(where(both), ['unscannable']);
    assert.equal(status(both), 'quarantined');
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(!delivered('two-quarantines'));
    const ev = gw.gateway.tracker.show(both)!.events.find((e) => e.type === 'quarantine.released');
    assert.deepEqual(ev?.stillIn, ['unscannable']);

    // Released from the last one: rescanned, neither quarantine holds it again, delivered with the tag.
    await api('POST', '/quarantines/unscannable/release', { mids: [both] });
    const m = await waitFor(() => delivered('two-quarantines'), 10_000, 'delivered');
    assert.match(m.body, /^Subject: \[UNSCANNABLE\] two-quarantines$/m);
    assert.match(m.body, /^X-Breakwater-Quarantine: released from unscannable by an administrator$/m);
    await waitFor(() => status(both) === 'delivered', 10_000, 'tracking says delivered');
    const rec = gw.gateway.tracker.show(both)!;
    assert.equal(rec.events.filter((e) => e.type === 'antivirus.scanned').length, 2, 'rescanned on release');
    assert.deepEqual(where(both), []);
  },
);

test('deleted from one quarantine means deleted from all of them', { skip }, async () => {
  const zip = encryptedZip('doc.txt', Buffer.from('more secret numbers'), 'pw');
  const mid = await send('delete-from-any', attach('invoice-2.zip', zip));
  await waitFor(() => status(mid) === 'quarantined', 10_000, 'held');
  assert.deepEqual(where(mid), ['outbreak', 'unscannable']);
  const r = await api('POST', '/quarantines/outbreak/delete', { mids: [mid] });
  assert.deepEqual(r.mids, [mid]);
  assert.deepEqual(where(mid), []);
  assert.equal(status(mid), 'deleted');
  const listed = await api('GET', '/quarantines/unscannable/messages');
  assert.ok(!listed.messages.some((x: any) => x.mid === mid));
  const ev = gw.gateway.tracker.show(mid)!.events.find((e) => e.type === 'quarantine.deleted');
  assert.deepEqual(ev?.alsoIn, ['unscannable']);
});

test(
  'move to a policy quarantine, send a copy, release rescans into virus, release from virus delivers',
  { skip },
  async () => {
    const mid = await send('eicar-moved', attach('tool.com', EICAR));
    await waitFor(() => status(mid) === 'quarantined', 10_000, 'held in virus');
    assert.deepEqual(where(mid), ['virus']);
    const [inVirus] = await gw.gateway.quarantines.list({ quarantine: 'virus', mids: [mid] });

    // move (API): the target's retention starts now, the entry time stays
    const bad = await api('POST', '/quarantines/virus/move', { mids: [mid], to: 'nowhere' });
    assert.equal(bad.httpStatus, 400);
    assert.equal(bad.error.code, 'invalid_target');
    const moved = await api('POST', '/quarantines/virus/move', { mids: [mid], to: 'review', by: 'soc' });
    assert.deepEqual(moved.mids, [mid]);
    assert.deepEqual(where(mid), ['review']);
    const shown = await api('GET', `/quarantines/review/messages/${mid}`);
    assert.equal(shown.enteredAt, new Date(inVirus.enteredAt).toISOString());
    const exit = Date.parse(shown.scheduledExit) - Date.now();
    assert.ok(exit > 6.9 * 86_400_000 && exit <= 7 * 86_400_000, `review retention is 7d, got ${exit} ms`);
    assert.ok(gw.gateway.tracker.show(mid)!.events.some((e) => e.type === 'quarantine.moved' && e.to === 'review'));
    const byVirus = await api('GET', '/quarantines/review/rules');
    assert.ok(byVirus.rules.some((r: any) => /Eicar/i.test(r.ruleId) && r.messages === 1));

    // send a copy (CLI → API): the copy arrives with the held message attached unchanged; it stays held
    const cli = await run(process.execPath, [
      path.resolve(import.meta.dirname, '../bin/breakwater.js'),
      'quarantine',
      'copy',
      String(mid),
      '--quarantine',
      'review',
      '--to',
      'soc@dst.test',
      '--config',
      path.join(gw.dir, 'breakwater.yaml'),
      '--json',
    ]);
    assert.equal(cli.code, 0, cli.out);
    assert.deepEqual(JSON.parse(cli.out).mids, [mid]);
    const copy = await waitFor(
      () => sink.messages().find((m) => m.rcptTo.includes('soc@dst.test') && m.body.includes('[Quarantine copy]')),
      10_000,
      'copy',
    );
    assert.match(copy.body, /Content-Type: message\/rfc822; name="mid-\d+\.eml"/);
    assert.match(copy.body, /Subject: eicar-moved/);
    assert.ok(copy.body.includes('EICAR-STANDARD-ANTIVIRUS-TEST-FILE') || /tool\.com/.test(copy.body));
    assert.deepEqual(where(mid), ['review']);
    assert.ok(gw.gateway.tracker.show(mid)!.events.some((e) => e.type === 'quarantine.copied'));

    // release from "review": the rescan finds the virus again and the anti-virus policy holds it in virus
    await api('POST', '/quarantines/review/release', { mids: [mid] });
    await waitFor(() => where(mid).join() === 'virus', 10_000, 'held in virus again');
    assert.ok(!delivered('eicar-moved'));

    // release from virus: an administrator's decision, delivered with the anti-virus tag
    await api('POST', '/quarantines/virus/release', { mids: [mid] });
    const m = await waitFor(() => delivered('eicar-moved'), 10_000, 'delivered');
    assert.match(m.body, /^Subject: \[VIRUS\] eicar-moved$/m);
    await waitFor(() => status(mid) === 'delivered', 10_000, 'tracking says delivered');
  },
);

test('the admin API refuses unknown quarantines and bad copy targets with stable codes', { skip }, async () => {
  const unknown = await api('GET', '/quarantines/nosuch/messages');
  assert.equal(unknown.httpStatus, 404);
  assert.equal(unknown.error.code, 'quarantine_not_found');
  const noTo = await api('POST', '/quarantines/virus/copy', { all: true });
  assert.equal(noTo.httpStatus, 400);
  assert.equal(noTo.error.code, 'invalid_parameter');
  const badTo = await api('POST', '/quarantines/virus/copy', { all: true, to: ['not an address'] });
  assert.equal(badTo.error.code, 'invalid_parameter');
  const noFilter = await api('POST', '/quarantines/review/move', { to: 'virus' });
  assert.equal(noFilter.error.code, 'filter_required');
  const self = await api('POST', '/quarantines/review/move', { all: true, to: 'review' });
  assert.equal(self.error.code, 'invalid_target');
});
