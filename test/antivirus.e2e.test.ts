// Anti-virus end to end with a real clamd (our own signature database) and real SMTP peers: EICAR raw,
// zipped and base64-encoded, handled per each policy action; strip keeps clean parts byte-identical;
// clamd down means no message is delivered unscanned and none is lost; new signatures condemn a message
// held by Outbreak Filters.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { zipSync } from 'fflate';
import { hasBinary, startSmtpSink, swaks, tempDir, waitFor, type Sink } from './helpers/peers.ts';
import { startTestGateway, testConfig } from './helpers/gateway.ts';
import { EICAR, hasClamd, startClamd } from './helpers/clamd.ts';
import { generateKeyPair, signBundle } from '../src/outbreak/bundle.ts';

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

async function send(to: string, subject: string, extra: string[]): Promise<number> {
  const r = await swaks([
    '-s',
    `127.0.0.1:${gw.port('incoming')}`,
    '-f',
    'a@src.test',
    '-t',
    to,
    '--header',
    `Subject: ${subject}`,
    ...extra,
  ]);
  assert.equal(r.code, 0, r.out);
  return Number(/queued as MID (\d+)/.exec(r.out)![1]);
}

const status = (mid: number) => gw.gateway.tracker.show(mid)?.status;
const delivered = (marker: string) => sink.messages().find((m) => m.body.includes(marker));

before(async () => {
  if (skip) return;
  files = tempDir('bw-av-');
  sink = await startSmtpSink({ dump: true });
  clamd = await startClamd();
  const feed = tempDir('bw-av-feed-');
  const keys = generateKeyPair();
  const rule = {
    id: 'OUTBREAK_PAYLOAD',
    level: 4,
    category: 'virus',
    description: 'payload attachments',
    published: new Date().toISOString(),
    condition: { attachment: { name: ['payload*'] } },
  };
  writeFileSync(
    path.join(feed, 'b.json'),
    JSON.stringify(signBundle({ version: 1, published: new Date().toISOString(), rules: [rule] }, keys.privateKey)),
  );
  gw = await startTestGateway(
    testConfig({
      routes: { '*': [`smtp://127.0.0.1:${sink.port}`] },
      antivirus: { clamd: { host: '127.0.0.1', port: clamd.port }, timeout: '3s', signatureCheckInterval: '1s' },
      outbreakFilters: { adaptiveRules: false, ruleFeed: { dir: feed, publicKey: keys.publicKey } },
      policies: {
        incoming: [
          { name: 'drop', match: ['drop@dst.test'], antivirus: { mode: 'custom', infected: { action: 'drop' } } },
          { name: 'strip', match: ['strip@dst.test'], antivirus: { mode: 'custom', infected: { action: 'strip' } } },
          {
            name: 'deliver',
            match: ['deliver@dst.test'],
            antivirus: { mode: 'custom', infected: { action: 'deliver', subjectTag: '[INFECTED] ' } },
          },
          { name: 'default' },
        ],
      },
    }),
  );
  await waitFor(
    () => gw.gateway.outbreak.bundle && gw.gateway.antivirus.signatureVersion !== null,
    10_000,
    'rules and clamd',
  );
});

after(async () => {
  await gw?.stop();
  await clamd?.stop();
  await sink?.stop();
});

test('EICAR raw, zipped and base64-encoded goes to the virus quarantine by default', { skip }, async () => {
  const raw = await send('bob@dst.test', 'eicar-raw', ['--body', EICAR]);
  const zipped = await send(
    'bob@dst.test',
    'eicar-zip',
    attach('e.zip', Buffer.from(zipSync({ 'eicar.com': Buffer.from(EICAR) }))),
  );
  const b64 = await send('bob@dst.test', 'eicar-b64', attach('eicar.com', EICAR));
  const clean = await send('bob@dst.test', 'clean-mail', attach('notes.txt', 'nothing to see'));
  await waitFor(() => delivered('clean-mail'), 10_000, 'clean delivery');
  await waitFor(() => [raw, zipped, b64].every((m) => status(m) === 'quarantined'), 10_000, 'virus quarantine');
  const held = await gw.gateway.quarantines.list({ quarantine: 'virus' });
  assert.deepEqual(held.map((e) => e.mid).sort(), [raw, zipped, b64].sort());
  for (const e of held)
    assert.ok(
      e.ruleIds.some((n) => /EICAR/i.test(n)),
      e.ruleIds.join(','),
    );
  const rec = gw.gateway.tracker.show(zipped)!;
  const scanned = rec.events.find((e) => e.type === 'antivirus.scanned');
  assert.equal(scanned?.verdict, 'infected');
  assert.equal(gw.gateway.tracker.show(clean)!.events.find((e) => e.type === 'antivirus.scanned')?.verdict, 'clean');
  assert.ok(!sink.messages().some((m) => /eicar-(raw|zip|b64)/.test(m.body)));
});

test(
  'drop, deliver-with-tag and strip actions per policy; strip keeps the clean parts byte-identical',
  { skip },
  async () => {
    const dropped = await send('drop@dst.test', 'eicar-drop', attach('eicar2.com', EICAR));
    await waitFor(() => status(dropped) === 'dropped', 10_000, 'dropped');
    assert.equal(gw.gateway.tracker.show(dropped)!.recipients[0].status, 'dropped');

    await send('deliver@dst.test', 'eicar-deliver', attach('eicar3.com', EICAR));
    const d = await waitFor(() => delivered('eicar-deliver'), 10_000, 'tagged delivery');
    assert.match(d.body, /Subject: \[INFECTED\] eicar-deliver/);

    const report = 'quarterly numbers, all fine\n'.repeat(40);
    const mid = await send('strip@dst.test', 'eicar-strip', [
      '--body',
      'Please see the two files.',
      ...attach('report.txt', report),
      ...attach('tool.com', EICAR),
    ]);
    const s = await waitFor(() => delivered('eicar-strip'), 10_000, 'stripped delivery');
    assert.ok(!s.body.includes('EICAR-STANDARD'), 'the virus is gone');
    assert.ok(!s.body.includes(Buffer.from(EICAR).toString('base64').slice(0, 40)), 'the virus is gone (base64)');
    assert.match(s.body, /was removed by the mail gateway: it contains/);
    // the clean attachment's base64 lines arrive exactly as sent
    const cleanB64 = Buffer.from(report).toString('base64').slice(0, 60);
    assert.ok(s.body.includes(cleanB64), 'clean attachment unchanged');
    const rec = gw.gateway.tracker.show(mid)!;
    assert.ok(rec.events.some((e) => e.type === 'antivirus.stripped' && (e.parts as string[]).length === 1));
  },
);

test(
  'clamd down: nothing is delivered unscanned and nothing is lost; mail flows when clamd is back',
  { skip, timeout: 60_000 },
  async () => {
    clamd.kill();
    const mid = await send('bob@dst.test', 'while-clamd-down', attach('fine.txt', 'harmless'));
    await waitFor(
      () => gw.gateway.tracker.show(mid)?.events.some((e) => e.type === 'stage.failed' && e.stage === 'antivirus'),
      15_000,
      'stage failure recorded',
    );
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(!delivered('while-clamd-down'), 'not delivered unscanned');
    assert.equal(status(mid), 'deferred');
    await clamd.restart();
    // the gateway notices clamd is back (signature check every second) and scans what waited
    await waitFor(() => delivered('while-clamd-down'), 30_000, 'delivery after clamd is back');
    // one critical alert for the outage, one when clamd is back
    await waitFor(
      () => gw.gateway.alerts.list({ limit: 50, class: 'antivirus' }).some((a) => a.key === 'antivirus.clamd_up'),
      5000,
      'clamd back alert',
    );
    const down = gw.gateway.alerts
      .list({ limit: 50, class: 'antivirus' })
      .filter((a) => a.key === 'antivirus.clamd_down');
    assert.equal(down.length, 1);
    assert.equal(down[0].severity, 'critical');
  },
);

test(
  'a message held by Outbreak Filters is caught by anti-virus once new signatures arrive',
  { skip, timeout: 60_000 },
  async () => {
    const payload = Buffer.from('synthetic payload for a signature added during the test ' + Date.now());
    const mid = await send('bob@dst.test', 'held-then-signature', attach('payload.bin', payload));
    await waitFor(() => status(mid) === 'quarantined', 10_000, 'outbreak hold');
    assert.equal((await gw.gateway.quarantines.list({ quarantine: 'outbreak', mids: [mid] })).length, 1);
    const md5 = createHash('md5').update(payload).digest('hex');
    await clamd.addSignature(`${md5}:${payload.length}:Breakwater.Test.Payload`, 'hdb');
    await waitFor(() => gw.gateway.quarantines.index.get(mid, 'virus'), 20_000, 'moved to the virus quarantine');
    const rec = gw.gateway.tracker.show(mid)!;
    assert.ok(
      rec.events.some((e) => e.type === 'quarantine.released' && /new anti-virus signatures/.test(String(e.reason))),
    );
    assert.ok(rec.events.some((e) => e.type === 'antivirus.scanned' && e.verdict === 'infected'));
    assert.ok(
      gw.gateway.alerts.list({ limit: 50, class: 'antivirus' }).some((a) => a.key.startsWith('antivirus.signatures:')),
      'signature update alert',
    );
  },
);

test(
  'released from the virus quarantine: delivered with the subject tag, never held there again',
  { skip },
  async () => {
    const [entry] = (await gw.gateway.quarantines.list({ quarantine: 'virus' })).filter(
      (e) => e.subject === 'eicar-raw',
    );
    assert.ok(entry, 'eicar-raw is held');
    const released = await gw.gateway.quarantines.releaseMatching({ quarantine: 'virus', mids: [entry.mid] }, 'admin');
    assert.deepEqual(released, [entry.mid]);
    const got = await waitFor(() => delivered('eicar-raw'), 10_000, 'released delivery');
    assert.match(got.body, /Subject: \[VIRUS\] eicar-raw/);
    const rules = gw.gateway.quarantines.index.rules('virus');
    assert.ok(
      rules.some((r) => /EICAR/i.test(r.ruleId)),
      'the virus quarantine is summarised by virus name',
    );
  },
);
