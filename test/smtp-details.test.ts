// SMTP details (issue 10): NUL bytes in DATA, a DATA deadline and minimum rate against slow drips, the
// domainless postmaster recipient, SMTPUTF8 for non-ASCII addresses, US-ASCII reply texts, the
// enhanced code of a relay denial, and the self-signed STARTTLS certificate naming the hostname.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { RawSmtp } from './helpers/rawsmtp.ts';
import { startTestGateway, testConfig } from './helpers/gateway.ts';
import { hasBinary, run, startSmtpSink, waitFor, type Sink } from './helpers/peers.ts';
import { Replies } from '../src/smtp/replies.ts';

const skip = hasBinary('smtp-sink') ? false : 'Postfix smtp-sink is not installed (run .ci/run)';
let sink: Sink;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
let lenient: Awaited<ReturnType<typeof startTestGateway>>;

before(async () => {
  if (skip) return;
  sink = await startSmtpSink({ dump: true });
  gw = await startTestGateway(
    testConfig({
      hostname: 'mx.details.test',
      routes: { '*': [`smtp://127.0.0.1:${sink.port}`] },
      // short DATA limits for the slow-drip tests
      smtp: { dataTimeout: '3s', dataMinRate: 100, dataRateGrace: '2s', postmaster: 'hostmaster@example.test' },
    }),
  );
  lenient = await startTestGateway(
    testConfig({ routes: { '*': [`smtp://127.0.0.1:${sink.port}`] }, smtp: { allowNul: true } }),
  );
});

after(async () => {
  await gw?.stop();
  await lenient?.stop();
  await sink?.stop();
});

async function session(port: number): Promise<RawSmtp> {
  const c = await RawSmtp.open(port);
  assert.match(await c.reply(), /^220 /);
  assert.match(await c.cmd('EHLO client.test'), /^250[ -]/);
  return c;
}

const spoolFiles = (g: typeof gw): string[] => readdirSync(path.join(g.dataDir, 'spool'));
const spoolHolds = (g: typeof gw, marker: string): boolean =>
  spoolFiles(g).some((f) => readFileSync(path.join(g.dataDir, 'spool', f), 'latin1').includes(marker));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a message with a NUL byte is refused with 554 5.6.0 and nothing is spooled', { skip }, async () => {
  const marker = `nul-${Date.now()}`;
  const sender = `${marker}@src.test`;
  const c = await session(gw.port('incoming'));
  assert.match(await c.cmd(`MAIL FROM:<${sender}>`), /^250 /);
  assert.match(await c.cmd('RCPT TO:<bob@dst.test>'), /^250 /);
  assert.match(await c.cmd('DATA'), /^354 /);
  // the smuggling-style sequence CRLF NUL . CRLF is one line holding a NUL and a dot, not the end
  c.write(`Subject: ${marker}\r\n\r\nbody\r\n\x00.\r\nmore\r\n.\r\n`);
  const reply = await c.reply();
  assert.match(reply, /^554 5\.6\.0 .*NUL/, reply);
  assert.match(await c.cmd('RSET'), /^250 /);
  c.close();
  await sleep(300);
  assert.equal(gw.gateway.tracker.search({ sender }).length, 0, 'nothing tracked');
  assert.equal(spoolHolds(gw, marker), false, 'nothing spooled');
  assert.ok(!sink.messages().some((m) => m.body.includes(marker)), 'nothing delivered');
});

test('a NUL byte in a large (streamed) message is refused too', { skip }, async () => {
  const marker = `nul-big-${Date.now()}`;
  const c = await session(gw.port('incoming'));
  await c.cmd(`MAIL FROM:<${marker}@src.test>`);
  await c.cmd('RCPT TO:<bob@dst.test>');
  assert.match(await c.cmd('DATA'), /^354 /);
  const line = 'x'.repeat(76) + '\r\n';
  c.write(`Subject: ${marker}\r\n\r\n` + line.repeat(8000) + 'a\x00b\r\n' + line.repeat(100) + '.\r\n');
  assert.match(await c.reply(10_000), /^554 5\.6\.0 /);
  c.close();
  await sleep(300);
  assert.equal(spoolHolds(gw, marker), false, 'nothing spooled');
  assert.ok(!spoolFiles(gw).some((f) => f.endsWith('.tmp')), 'no partial file left');
});

test('smtp.allowNul: true accepts a message with a NUL byte', { skip }, async () => {
  const marker = `nul-ok-${Date.now()}`;
  const c = await session(lenient.port('incoming'));
  await c.cmd(`MAIL FROM:<a@src.test>`);
  await c.cmd('RCPT TO:<bob@dst.test>');
  assert.match(await c.cmd('DATA'), /^354 /);
  c.write(`Subject: ${marker}\r\n\r\nbody\x00here\r\n.\r\n`);
  assert.match(await c.reply(), /^250 /);
  c.close();
});

test(
  'a slow-drip DATA past smtp.dataTimeout gets 451 4.4.2, the connection closes, nothing is spooled',
  { skip },
  async () => {
    const marker = `drip-${Date.now()}`;
    const sender = `${marker}@src.test`;
    const c = await session(gw.port('incoming'));
    await c.cmd(`MAIL FROM:<${sender}>`);
    await c.cmd('RCPT TO:<bob@dst.test>');
    assert.match(await c.cmd('DATA'), /^354 /);
    // 400 KiB at once (the message moves to a spool file of its own), then a byte now and then: fast on
    // average, so only the overall deadline can end it
    const line = 'y'.repeat(76) + '\r\n';
    c.write(`Subject: ${marker}\r\n\r\n` + line.repeat(5200));
    const started = Date.now();
    const drip = setInterval(() => {
      if (!c.closed) c.write('z');
    }, 200);
    try {
      const reply = await c.reply(15_000);
      assert.match(reply, /^451 4\.4\.2 /, reply);
      await waitFor(() => c.closed, 10_000, 'connection closed');
      assert.ok(Date.now() - started < 12_000);
    } finally {
      clearInterval(drip);
      c.close();
    }
    await sleep(500);
    assert.equal(gw.gateway.tracker.search({ sender }).length, 0, 'nothing tracked');
    assert.equal(spoolHolds(gw, marker), false, 'nothing spooled');
    assert.ok(!spoolFiles(gw).some((f) => f.endsWith('.tmp')), 'no partial file left');
  },
);

test('DATA slower than smtp.dataMinRate after the grace period gets 451 4.4.2', { skip }, async () => {
  const marker = `slow-${Date.now()}`;
  const c = await session(gw.port('incoming'));
  await c.cmd(`MAIL FROM:<${marker}@src.test>`);
  await c.cmd('RCPT TO:<bob@dst.test>');
  assert.match(await c.cmd('DATA'), /^354 /);
  c.write(`Subject: ${marker}\r\n\r\n`);
  const drip = setInterval(() => {
    if (!c.closed) c.write('z');
  }, 500);
  try {
    // 2 bytes/s is below 100 bytes/s: refused after the 2 s grace, before the 3 s deadline would be
    const reply = await c.reply(15_000);
    assert.match(reply, /^451 4\.4\.2 .*slow/i, reply);
    await waitFor(() => c.closed, 10_000, 'connection closed');
  } finally {
    clearInterval(drip);
    c.close();
  }
  assert.equal(spoolHolds(gw, marker), false, 'nothing spooled');
});

test('a normal message is not affected by the DATA limits', { skip }, async () => {
  const c = await session(gw.port('incoming'));
  await c.cmd('MAIL FROM:<a@src.test>');
  await c.cmd('RCPT TO:<bob@dst.test>');
  assert.match(await c.cmd('DATA'), /^354 /);
  c.write('Subject: quick\r\n\r\nhello\r\n.\r\n');
  assert.match(await c.reply(), /^250 /);
  c.close();
});

test('RCPT TO:<postmaster> without a domain is accepted and delivered to smtp.postmaster', { skip }, async () => {
  const marker = `postmaster-${Date.now()}`;
  const c = await session(gw.port('incoming'));
  assert.match(await c.cmd('MAIL FROM:<someone@far.test>'), /^250 /);
  assert.match(await c.cmd('RCPT TO:<Postmaster>'), /^250 /);
  assert.match(await c.cmd('DATA'), /^354 /);
  c.write(`Subject: ${marker}\r\n\r\nhello postmaster\r\n.\r\n`);
  assert.match(await c.reply(), /^250 /);
  c.close();
  const m = await waitFor(() => sink.messages().find((x) => x.body.includes(marker)), 10_000, 'delivery');
  assert.deepEqual(m.rcptTo, ['hostmaster@example.test']);
  // the outgoing listener accepts it too (RFC 5321 §4.5.1: every SMTP server)
  const d = await session(gw.port('outgoing'));
  assert.match(await d.cmd('MAIL FROM:<someone@far.test>'), /^250 /);
  assert.match(await d.cmd('RCPT TO:<postmaster>'), /^250 /);
  d.close();
});

test('without smtp.postmaster, postmaster goes to postmaster@ the first accepted domain', { skip }, async () => {
  const marker = `postmaster-default-${Date.now()}`;
  const c = await session(lenient.port('incoming'));
  await c.cmd('MAIL FROM:<someone@far.test>');
  assert.match(await c.cmd('RCPT TO:<postmaster>'), /^250 /);
  await c.cmd('DATA');
  c.write(`Subject: ${marker}\r\n\r\nhello\r\n.\r\n`);
  assert.match(await c.reply(), /^250 /);
  c.close();
  const m = await waitFor(() => sink.messages().find((x) => x.body.includes(marker)), 10_000, 'delivery');
  assert.deepEqual(m.rcptTo, ['postmaster@dst.test']);
});

test('non-ASCII addresses need SMTPUTF8 on MAIL FROM (553 5.6.7 without it)', { skip }, async () => {
  const c = await session(gw.port('incoming'));
  assert.match(await c.cmd('MAIL FROM:<jörg@src.test>'), /^553 5\.6\.7 /);
  assert.match(await c.cmd('MAIL FROM:<a@src.test>'), /^250 /);
  assert.match(await c.cmd('RCPT TO:<bjørn@dst.test>'), /^553 5\.6\.7 /);
  assert.match(await c.cmd('RSET'), /^250 /);
  assert.match(await c.cmd('MAIL FROM:<jörg@src.test> SMTPUTF8'), /^250 /);
  assert.match(await c.cmd('RCPT TO:<bjørn@dst.test>'), /^250 /);
  assert.match(await c.cmd('RSET'), /^250 /);
  // a refused MAIL FROM with SMTPUTF8 does not leave the flag behind for the next one
  assert.match(await c.cmd('MAIL FROM:<a@src.test> SMTPUTF8 SIZE=999999999999'), /^552 /);
  assert.match(await c.cmd('MAIL FROM:<a@src.test>'), /^250 /);
  assert.match(await c.cmd('RCPT TO:<bjørn@dst.test>'), /^553 5\.6\.7 /);
  c.close();
  // an A-label (xn--) domain is ASCII on the wire, even though smtp-server hands it over decoded
  const d = await session(gw.port('incoming'));
  assert.match(await d.cmd('MAIL FROM:<a@xn--bcher-kva.test>'), /^250 /);
  assert.doesNotMatch(await d.cmd('RCPT TO:<bob@xn--bcher-kva.test>'), /5\.6\.7/);
  d.close();
});

test('a real client (python smtplib) sends to a non-ASCII address with SMTPUTF8', { skip }, async () => {
  if (!hasBinary('python3')) return;
  const marker = `utf8-${Date.now()}`;
  const script = `
import smtplib, sys
s = smtplib.SMTP('127.0.0.1', ${gw.port('incoming')}, timeout=30)
s.ehlo('python.test')
s.sendmail('j\u00f6rg@src.test', ['bj\u00f8rn@dst.test'], b'Subject: ${marker}\\r\\n\\r\\nhej\\r\\n', mail_options=['SMTPUTF8'])
s.quit()
print('sent')
`;
  const r = await run('python3', ['-c', script]);
  assert.match(r.out, /sent/, r.out);
  assert.equal(r.code, 0, r.out);
});

test('relay denial carries enhanced code 5.7.1 on the wire', { skip }, async () => {
  const c = await session(gw.port('incoming'));
  await c.cmd('MAIL FROM:<spammer@evil.test>');
  const reply = await c.cmd('RCPT TO:<victim@elsewhere.test>');
  assert.match(reply, /^550 5\.7\.1 Relaying denied/, reply);
  c.close();
});

test('every reply text is US-ASCII (RFC 5321 §4.2)', () => {
  for (const [name, r] of Object.entries(Replies)) {
    assert.match(r.text, /^[\x20-\x7e]+$/, `${name}: ${JSON.stringify(r.text)}`);
    if ('enhanced' in r) assert.match(r.enhanced, /^[245]\.\d{1,3}\.\d{1,3}$/, name);
  }
});

test('the self-signed STARTTLS certificate names the configured hostname', { skip }, async () => {
  const pem = readFileSync(path.join(gw.dataDir, 'tls', 'self-signed.crt'));
  const cert = new X509Certificate(pem);
  assert.match(cert.subject, /CN=mx\.details\.test/);
  assert.match(cert.subjectAltName ?? '', /DNS:mx\.details\.test/);
  assert.equal(cert.checkHost('mx.details.test'), 'mx.details.test');
  assert.doesNotMatch(cert.subject, /CN=breakwater$/m);
});

test('the self-signed certificate is kept across restarts and made again when the hostname changes', async () => {
  const { ensureTls } = await import('../src/smtp/tls.ts');
  const { tempDir } = await import('./helpers/peers.ts');
  const dir = tempDir('bw-tls-');
  const listeners = [{ name: 'in', tls: {} }] as unknown as Parameters<typeof ensureTls>[2];
  const warnings: string[] = [];
  const first = (await ensureTls(dir, 'a.example.test', listeners, (l) => warnings.push(l))).get('in')!;
  const again = (await ensureTls(dir, 'a.example.test', listeners, (l) => warnings.push(l))).get('in')!;
  assert.ok(first.cert.equals(again.cert), 'same certificate after a restart');
  assert.equal(warnings.length, 0, warnings.join('; '));
  const renamed = (await ensureTls(dir, 'b.example.test', listeners, (l) => warnings.push(l))).get('in')!;
  assert.equal(new X509Certificate(renamed.cert).checkHost('b.example.test'), 'b.example.test');
  assert.equal(new X509Certificate(renamed.cert).checkHost('a.example.test'), undefined);
  assert.match(warnings.join('\n'), /does not name b\.example\.test/);
  const ip = (await ensureTls(tempDir('bw-tls-'), '192.0.2.7', listeners, () => {})).get('in')!;
  assert.equal(new X509Certificate(ip.cert).checkIP('192.0.2.7'), '192.0.2.7');
});
