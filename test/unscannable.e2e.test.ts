// Limits fail closed (issue 10): an attachment that is quarantined when attached plainly must not be
// delivered because it is hidden past a parser or scanner limit. Real SMTP in (Python's smtplib), real
// smtp-sink out, real zip archives (fflate), the default policy of a fresh gateway.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { zipSync } from 'fflate';
import { hasBinary, pythonSend, startSmtpSink, waitFor, type Sink } from './helpers/peers.ts';
import { startTestGateway, testConfig } from './helpers/gateway.ts';

const skip = hasBinary('smtp-sink') ? false : 'smtp-sink is not installed (run .ci/run)';

let sink: Sink;
let gw: Awaited<ReturnType<typeof startTestGateway>>;

/** A tiny PE-looking executable: "MZ" and padding, enough for magic-byte detection and the name rules. */
const EXE = Buffer.concat([Buffer.from('MZ'), Buffer.alloc(1022, 0x90)]);

function b64(data: Uint8Array): string {
  return (
    Buffer.from(data)
      .toString('base64')
      .match(/.{1,76}/g)
      ?.join('\r\n') ?? ''
  );
}

function attachment(name: string, type: string, data: Uint8Array): string {
  return [
    `Content-Type: ${type}; name="${name}"`,
    `Content-Disposition: attachment; filename="${name}"`,
    'Content-Transfer-Encoding: base64',
    '',
    b64(data),
  ].join('\r\n');
}

/** `inner` wrapped in `depth` levels of multipart/mixed, each with a short text part first. */
function nested(depth: number, inner: string): string {
  let body = inner;
  for (let i = depth; i >= 1; i--) {
    const b = `level-${i}-boundary`;
    body = [
      `Content-Type: multipart/mixed; boundary="${b}"`,
      '',
      `--${b}`,
      'Content-Type: text/plain',
      '',
      `level ${i}`,
      `--${b}`,
      body,
      `--${b}--`,
      '',
    ].join('\r\n');
  }
  return body;
}

function message(to: string, subject: string, body: string): string {
  return [
    'From: Accounts <accounts@src.test>',
    `To: <${to}>`,
    `Subject: ${subject}`,
    `Message-ID: <${subject.replace(/\W+/g, '-')}@src.test>`,
    'Date: Sun, 06 Dec 2026 10:00:00 +0000',
    'MIME-Version: 1.0',
    body,
  ].join('\r\n');
}

function withAttachment(parts: string[], text = 'Please find the invoice attached.'): string {
  const b = 'outer-boundary';
  return [
    `Content-Type: multipart/mixed; boundary="${b}"`,
    '',
    `--${b}`,
    'Content-Type: text/plain; charset=us-ascii',
    '',
    text,
    ...parts.flatMap((p) => [`--${b}`, p]),
    `--${b}--`,
    '',
  ].join('\r\n');
}

async function send(to: string, raw: string): Promise<number> {
  const r = await pythonSend(gw.port('incoming'), 'accounts@src.test', [to], raw);
  assert.match(r.out, /"ok": true/, r.out);
  // the MID is not in smtplib's answer: find the message by its subject in tracking
  const subject = /^Subject: (.*)$/m.exec(raw)![1];
  const rec = await waitFor(
    () => gw.gateway.tracker.search({ subject, limit: 5 }).find((m) => m.status !== 'received'),
    20_000,
    `tracking of ${subject}`,
  );
  return rec.mid;
}

async function settled(mid: number): Promise<string> {
  return waitFor(
    () => {
      const s = gw.gateway.tracker.show(mid)?.status;
      // queued, released and deferred are on their way: wait for where the message ends up
      return s && !['received', 'scanning', 'queued', 'released', 'deferred'].includes(s) ? s : undefined;
    },
    30_000,
    `MID ${mid} to settle`,
  );
}

async function heldIn(mid: number, quarantine: string) {
  const [e] = await gw.gateway.quarantines.list({ quarantine, mids: [mid] });
  return e;
}

function events(mid: number, type: string) {
  return gw.gateway.tracker.show(mid)!.events.filter((e) => e.type === type);
}

before(async () => {
  if (skip) return;
  sink = await startSmtpSink({ dump: true });
  gw = await startTestGateway(
    testConfig({
      routes: { '*': [`smtp://127.0.0.1:${sink.port}`] },
      policies: {
        incoming: [
          { name: 'tag', match: ['tag@dst.test'], unscannable: { mode: 'custom', action: 'deliver' } },
          { name: 'drop', match: ['drop@dst.test'], unscannable: { mode: 'custom', action: 'drop' } },
          { name: 'default' },
        ],
      },
    }),
  );
});

after(async () => {
  await gw?.stop();
  await sink?.stop();
});

test('control: invoice.exe attached plainly is quarantined', { skip }, async () => {
  const mid = await send(
    'user@dst.test',
    message('user@dst.test', 'plain exe', withAttachment([attachment('invoice.exe', 'application/octet-stream', EXE)])),
  );
  assert.equal(await settled(mid), 'quarantined');
  assert.ok(await heldIn(mid, 'outbreak'), 'held in the Outbreak quarantine');
});

test('invoice.exe nested 25 multipart levels deep is quarantined as unscannable, not delivered', { skip }, async () => {
  const body = nested(25, attachment('invoice.exe', 'application/octet-stream', EXE));
  const mid = await send('user@dst.test', message('user@dst.test', 'deep nesting', body));
  assert.equal(await settled(mid), 'quarantined');
  const e = await heldIn(mid, 'virus');
  assert.ok(e, 'held in the virus quarantine (infected and unscannable messages)');
  assert.ok(e.ruleIds.includes('UNSCANNABLE_DEPTH'), e.ruleIds.join(','));
  const [u] = events(mid, 'scan.unscannable');
  assert.deepEqual(u.limits, ['depth']);
  assert.equal(u.action, 'quarantine');
  assert.ok(!sink.messages().some((m) => m.body.includes('deep nesting')));
});

test('invoice.exe in a zip nested 9 archives deep is quarantined', { skip }, async () => {
  let zip: Uint8Array = zipSync({ 'invoice.exe': EXE });
  for (let i = 8; i >= 1; i--) zip = zipSync({ [`part${i}.zip`]: zip });
  const mid = await send(
    'user@dst.test',
    message('user@dst.test', 'deep zip', withAttachment([attachment('documents.zip', 'application/zip', zip)])),
  );
  assert.equal(await settled(mid), 'quarantined');
  const e = await heldIn(mid, 'virus');
  assert.ok(e?.ruleIds.includes('UNSCANNABLE_ARCHIVE_DEPTH'), e?.ruleIds.join(','));
});

test('a 42.zip-style bomb is quarantined', { skip }, async () => {
  // 4 × 4 files of 16 MiB of zeros, each compressed ~1000:1, the inner zips stored in the outer one
  const zeros = new Uint8Array(16 * 1024 * 1024);
  const inner = zipSync(Object.fromEntries([0, 1, 2, 3].map((i) => [`layer-${i}.bin`, zeros])), { level: 9 });
  const bomb = zipSync(Object.fromEntries([0, 1, 2, 3].map((i) => [`disk${i}.zip`, [inner, { level: 0 }]])));
  assert.ok(bomb.length < 512 * 1024, `bomb is ${bomb.length} bytes`);
  const mid = await send(
    'user@dst.test',
    message('user@dst.test', 'zip bomb', withAttachment([attachment('42.zip', 'application/zip', bomb)])),
  );
  assert.equal(await settled(mid), 'quarantined');
  const e = await heldIn(mid, 'virus');
  assert.ok(
    e?.ruleIds.some((id) => id === 'UNSCANNABLE_ARCHIVE_BOMB' || id === 'UNSCANNABLE_ARCHIVE_EXPANSION'),
    e?.ruleIds.join(','),
  );
});

test('2.2 MB of padding past maxScanSize: attachment metadata is still scored and the exe held', { skip }, async () => {
  const padding = ('Lorem ipsum dolor sit amet, consectetur adipiscing elit. '.repeat(20) + '\r\n').repeat(2000);
  assert.ok(padding.length > 2.2e6);
  const mid = await send(
    'user@dst.test',
    message(
      'user@dst.test',
      'padded exe',
      withAttachment([attachment('invoice.exe', 'application/octet-stream', EXE)], padding),
    ),
  );
  assert.equal(await settled(mid), 'quarantined');
  const e = await heldIn(mid, 'outbreak');
  assert.ok(e, 'held in the Outbreak quarantine by its attachment');
  assert.ok(e.level >= 3, `level ${e.level}`);
  const [scored] = events(mid, 'outbreak.scored');
  assert.equal(scored.skipped, null, 'scored, not skipped as too large');
  assert.equal(scored.partial, true, 'only the first maxScanSize bytes of content were read');
});

test(
  'a policy may deliver unscannable mail with a subject tag, or drop it; tracking says which',
  { skip },
  async () => {
    const deep = nested(25, attachment('report.txt', 'text/plain', Buffer.from('hello')));
    const tagged = await send('tag@dst.test', message('tag@dst.test', 'deep tagged', deep));
    assert.equal(await settled(tagged), 'delivered');
    const m = await waitFor(() => sink.messages().find((x) => x.body.includes('deep tagged')), 15_000, 'delivery');
    assert.match(m.body, /^Subject: \[UNSCANNABLE\] deep tagged/m);
    assert.equal(events(tagged, 'scan.unscannable')[0].action, 'deliver');

    const dropped = await send('drop@dst.test', message('drop@dst.test', 'deep dropped', deep));
    assert.equal(await settled(dropped), 'dropped');
    assert.equal(gw.gateway.tracker.show(dropped)!.recipients[0].status, 'dropped');
    assert.equal(events(dropped, 'scan.unscannable')[0].action, 'drop');
    assert.ok(!sink.messages().some((x) => x.body.includes('deep dropped')));
  },
);

test('released from the virus quarantine, an unscannable message is delivered, not held again', { skip }, async () => {
  const deep = nested(22, attachment('notes.txt', 'text/plain', Buffer.from('just notes')));
  const mid = await send('user@dst.test', message('user@dst.test', 'deep release', deep));
  assert.equal(await settled(mid), 'quarantined');
  const released = await gw.gateway.quarantines.releaseMatching({ quarantine: 'virus', mids: [mid] }, 'test');
  assert.deepEqual(released, [mid]);
  await waitFor(() => sink.messages().find((x) => x.body.includes('deep release')), 15_000, 'delivery after release');
  assert.equal(await settled(mid), 'delivered');
});

test('ordinary mail with a small zip is not unscannable', { skip }, async () => {
  const zip = zipSync({ 'minutes.txt': Buffer.from('Minutes of the meeting\n'.repeat(50)) });
  const mid = await send(
    'user@dst.test',
    message(
      'user@dst.test',
      'meeting minutes',
      withAttachment([attachment('minutes.zip', 'application/zip', zip)], 'Minutes attached.'),
    ),
  );
  assert.equal(await settled(mid), 'delivered');
  assert.equal(events(mid, 'scan.unscannable').length, 0);
});
