// No open relay on any listener, and no SMTP smuggling: bare CR / bare LF end-of-data variants are
// refused, never taken as the end of the message.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RawSmtp } from './helpers/rawsmtp.ts';
import { startTestGateway, testConfig } from './helpers/gateway.ts';
import { hasBinary, startSmtpSink, swaks, waitFor, type Sink } from './helpers/peers.ts';
import { LineEndingGuard } from '../src/smtp/ingress.ts';

const skip = hasBinary('smtp-sink') ? false : 'Postfix smtp-sink is not installed (run .ci/run)';
let sink: Sink;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
let strict: Awaited<ReturnType<typeof startTestGateway>>;

before(async () => {
  if (skip) return;
  sink = await startSmtpSink({ dump: true });
  gw = await startTestGateway(testConfig({ routes: { '*': [`smtp://127.0.0.1:${sink.port}`] } }));
  // A gateway whose HAT does not list loopback: the default action applies.
  strict = await startTestGateway(
    testConfig({
      routes: { '*': [`smtp://127.0.0.1:${sink.port}`] },
      listeners: [
        {
          name: 'incoming',
          host: '127.0.0.1',
          port: 0,
          direction: 'incoming',
          acceptDomains: ['dst.test'],
          hat: [
            { name: 'blocked', match: ['127.0.0.2'], action: 'reject' },
            // default early-talker delay (100 ms)
            { name: 'everyone', match: ['ALL'], action: 'accept' },
          ],
        },
        {
          name: 'outgoing',
          host: '127.0.0.1',
          port: 0,
          direction: 'outgoing',
          hat: [{ name: 'not-relay', match: ['127.0.0.0/8'], action: 'accept', earlyTalkerDelay: '0ms' }],
        },
        {
          name: 'closed',
          host: '127.0.0.1',
          port: 0,
          direction: 'incoming',
          acceptDomains: ['dst.test'],
          hat: [{ name: 'loopback', match: ['127.0.0.0/8'], action: 'reject' }],
        },
      ],
    }),
  );
});

after(async () => {
  await gw?.stop();
  await strict?.stop();
  await sink?.stop();
});

async function session(port: number): Promise<RawSmtp> {
  const c = await RawSmtp.open(port);
  assert.match(await c.reply(), /^220 /);
  assert.match(await c.cmd('EHLO client.test'), /^250[ -]/);
  return c;
}

test('EHLO advertises PIPELINING, SIZE, 8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES and STARTTLS', { skip }, async () => {
  const c = await RawSmtp.open(gw.port('incoming'));
  await c.reply();
  const ehlo = await c.cmd('EHLO client.test');
  for (const ext of ['PIPELINING', 'SIZE', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', 'STARTTLS'])
    assert.match(ehlo, new RegExp(`250[ -]${ext}`));
  c.close();
});

test('STARTTLS works with the self-signed certificate made at first start', { skip }, async () => {
  const r = await swaks([
    '-s',
    `127.0.0.1:${gw.port('incoming')}`,
    '-tls',
    '-f',
    'a@src.test',
    '-t',
    'bob@dst.test',
    '--header',
    'Subject: tls test',
  ]);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /TLS started/);
  const mid = Number(/queued as MID (\d+)/.exec(r.out)?.[1]);
  const rec = await waitFor(() => gw.gateway.tracker.show(mid), 5000, 'record');
  assert.match(rec.tls ?? '', /TLS/);
});

test('incoming listener refuses recipients outside its accepted domains (no open relay)', { skip }, async () => {
  const c = await session(gw.port('incoming'));
  assert.match(await c.cmd('MAIL FROM:<spammer@evil.test>'), /^250 /);
  assert.match(await c.cmd('RCPT TO:<victim@elsewhere.test>'), /^550 /);
  assert.match(await c.cmd('RCPT TO:<victim@dst.test.evil.test>'), /^550 /);
  assert.match(await c.cmd('RCPT TO:<"victim@elsewhere.test"@dst.test>'), /^(250|501|553) /);
  assert.match(await c.cmd('RCPT TO:<victim%elsewhere.test@dst.test>'), /^250 /); // local part only; routed to dst.test
  assert.match(await c.cmd('RCPT TO:<bob@dst.test>'), /^250 /);
  c.close();
});

test('outgoing listener refuses clients that are not in a relay group', { skip }, async () => {
  const c = await session(strict.port('outgoing'));
  assert.match(await c.cmd('MAIL FROM:<me@example.test>'), /^250 /);
  assert.match(await c.cmd('RCPT TO:<anyone@elsewhere.test>'), /^550 /);
  c.close();
});

test('a config that tries to relay on an incoming listener is refused at validation', async () => {
  const { validateConfig } = await import('../src/config/load.ts');
  const doc = testConfig();
  (doc.listeners as any[])[0].hat[0].action = 'relay';
  const v = validateConfig(doc);
  assert.equal(v.config, null);
  assert.ok(v.errors.some((e) => e.path === 'listeners[0].hat[0].action' && /no open relay/.test(e.message)));
});

test('HAT reject answers 554 at the greeting; unlisted clients get the default action', { skip }, async () => {
  const c = await RawSmtp.open(strict.port('closed'));
  assert.match(await c.reply(), /^554 /);
  c.close();
  const d = await RawSmtp.open(strict.port('incoming'));
  assert.match(await d.reply(), /^220 /);
  d.close();
});

test('an early talker in a group with the default delay is refused', { skip }, async () => {
  const c = await RawSmtp.open(strict.port('incoming'));
  c.write('EHLO early.test\r\n');
  assert.match(await c.reply(), /^421 .*talk too soon/i);
  c.close();
  // the same client waiting for the greeting is served
  const d = await RawSmtp.open(strict.port('incoming'));
  assert.match(await d.reply(), /^220 /);
  assert.match(await d.cmd('EHLO patient.test'), /^250[ -]/);
  d.close();
});

// Each variant carries a smuggled second message after a non-standard end-of-data sequence. A server
// that took the variant as the end of data would run the smuggled MAIL FROM.
const variants: Array<[string, string]> = [
  ['LF.LF', '\n.\n'],
  ['CR.CR', '\r.\r'],
  ['LF.CRLF', '\n.\r\n'],
  ['CRLF.LF', '\r\n.\n'],
  ['CR.CRLF', '\r.\r\n'],
  ['CRLF.CR', '\r\n.\r'],
  ['bare LF in a line', '\nX'],
  ['bare CR in a line', '\rX'],
];

for (const [name, seq] of variants) {
  test(`smuggling variant ${name} is refused and nothing is smuggled`, { skip }, async () => {
    const marker = `smuggle-${name.replace(/\W/g, '')}-${Date.now()}`;
    const c = await session(gw.port('incoming'));
    assert.match(await c.cmd('MAIL FROM:<a@src.test>'), /^250 /);
    assert.match(await c.cmd('RCPT TO:<bob@dst.test>'), /^250 /);
    assert.match(await c.cmd('DATA'), /^354 /);
    c.write(
      `Subject: ${marker}\r\n\r\nfirst${seq}MAIL FROM:<smuggled@evil.test>\r\nRCPT TO:<bob@dst.test>\r\nDATA\r\nSubject: smuggled ${marker}\r\n\r\nsmuggled\r\n.\r\n`,
    );
    const reply = await c.reply();
    assert.match(reply, /^550 .*bare CR or LF/, `refused, got: ${reply}`);
    // The session is still in a sane state: the smuggled commands were data, not commands.
    assert.match(await c.cmd('RSET'), /^250 /);
    c.close();
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(sink.messages().filter((m) => m.body.includes(marker)).length, 0, 'nothing delivered');
    assert.equal(gw.gateway.tracker.search({ sender: 'smuggled@evil.test' }).length, 0);
  });
}

test('a message split so that CRLF straddles TCP segments is accepted', { skip }, async () => {
  const marker = `split-${Date.now()}`;
  const c = await session(gw.port('incoming'));
  await c.cmd('MAIL FROM:<a@src.test>');
  await c.cmd('RCPT TO:<bob@dst.test>');
  await c.cmd('DATA');
  c.write(`Subject: ${marker}\r`);
  await new Promise((r) => setTimeout(r, 50));
  c.write(`\n\r\nbody\r`);
  await new Promise((r) => setTimeout(r, 50));
  c.write(`\n.\r\n`);
  assert.match(await c.reply(), /^250 .*queued as MID \d+/);
  c.close();
});

test('SIZE above the group limit is refused at MAIL FROM', { skip }, async () => {
  const c = await session(gw.port('incoming'));
  assert.match(await c.cmd(`MAIL FROM:<a@src.test> SIZE=${200 * 1024 * 1024}`), /^552 /);
  c.close();
});

test('LineEndingGuard finds bare CR/LF across chunk boundaries', () => {
  const check = (...chunks: string[]): boolean => {
    const g = new LineEndingGuard();
    for (const c of chunks) g.feed(Buffer.from(c, 'latin1'));
    g.end();
    return g.bad;
  };
  assert.equal(check('a\r\nb\r\n'), false);
  assert.equal(check('a\r', '\nb\r\n'), false);
  assert.equal(check('a\r', '', '\nb\r\n'), false);
  assert.equal(check('a\n'), true);
  assert.equal(check('a\r', 'b'), true);
  assert.equal(check('a\r\n', '\nb'), true);
  assert.equal(check('a\r'), true);
  assert.equal(check('a\rb\n'), true);
});
