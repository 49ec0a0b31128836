// End to end through real peers: swaks, Python's smtplib and Postfix's smtp-source deliver through the
// gateway into smtp-sink; the delivered bytes are the sent bytes plus our Received: line.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import {
  deadPort,
  hasBinary,
  startSmtpSink,
  swaks,
  pythonSend,
  smtpSource,
  waitFor,
  type Sink,
} from './helpers/peers.ts';
import { startTestGateway, testConfig } from './helpers/gateway.ts';

const havePeers = hasBinary('smtp-sink') && hasBinary('smtp-source') && hasBinary('swaks');
const skip = havePeers ? false : 'Postfix smtp-sink/smtp-source and swaks are not installed (run .ci/run)';

let sink: Sink;
let gw: Awaited<ReturnType<typeof startTestGateway>>;

before(async () => {
  if (skip) return;
  sink = await startSmtpSink({ dump: true });
  gw = await startTestGateway(testConfig({ routes: { '*': [`smtp://127.0.0.1:${sink.port}`] } }));
});

after(async () => {
  await gw?.stop();
  await sink?.stop();
});

/** Strips our Received: header (the first field, folded) and returns [received, rest]. */
function splitReceived(body: string): [string, string] {
  assert.match(body, /^Received: from /, 'our Received: line comes first');
  const lines = body.split('\n');
  let i = 1;
  while (lines[i]?.startsWith('\t')) i++;
  return [lines.slice(0, i).join('\n'), lines.slice(i).join('\n')];
}

function track(mid: number) {
  return gw.gateway.tracker.show(mid);
}

async function deliveredBody(marker: string) {
  return waitFor(() => sink.messages().find((m) => m.body.includes(marker)), 10_000, `delivery of ${marker}`);
}

test('swaks message is delivered with our Received line and otherwise identical bytes', { skip }, async () => {
  const marker = `swaks-${Date.now()}`;
  const body = `Line one ${marker}\r\nLine two with a .dot\r\n.leading dot line\r\n`;
  const r = await swaks([
    '-s',
    `127.0.0.1:${gw.port('incoming')}`,
    '-f',
    'alice@src.test',
    '-t',
    'bob@dst.test',
    '--header',
    `Subject: hello ${marker}`,
    '--body',
    body,
  ]);
  assert.equal(r.code, 0, r.out);
  const mid = Number(/queued as MID (\d+)/.exec(r.out)?.[1]);
  assert.ok(mid > 0, 'the 250 reply carries the MID');
  const sent = /(?:^|\n) -> (Date:[\s\S]*?)\n -> \.\n/.exec(r.out)?.[1];
  assert.ok(sent, 'swaks transcript shows the data it sent');
  const delivered = await deliveredBody(marker);
  assert.equal(delivered.mailFrom, 'alice@src.test');
  assert.deepEqual(delivered.rcptTo, ['bob@dst.test']);
  const [received, rest] = splitReceived(delivered.body);
  assert.match(received, new RegExp(`by gw\\.test \\(Breakwater\\) with E?SMTP id ${mid}`));
  assert.match(received, /\[127\.0\.0\.1\]/);
  // swaks prints each sent line prefixed with " -> "; dot-stuffing undone.
  const sentText = sent
    .replace(/\r/g, '')
    .split('\n')
    .map((l) => l.replace(/^ -> /, '').replace(/^\.\./, '.'))
    .join('\n');
  assert.equal(rest.replace(/\n+$/, ''), sentText.replace(/\n+$/, ''));
  const rec = await waitFor(
    () => {
      const t = track(mid);
      return t?.status === 'delivered' ? t : null;
    },
    5000,
    'tracking status delivered',
  );
  assert.equal(rec.recipients[0].status, 'delivered');
  assert.equal(rec.subject, `hello ${marker}`);
  assert.ok(rec.events.some((e) => e.type === 'delivery.delivered'));
});

test('Python smtplib delivers an 8-bit UTF-8 message byte-identically (SMTPUTF8, 8BITMIME)', { skip }, async () => {
  const marker = `py-${Date.now()}`;
  const msg =
    `From: Zoë <zoe@src.test>\r\nTo: bob@dst.test\r\nSubject: Grüße ${marker}\r\nMIME-Version: 1.0\r\n` +
    `Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nHällo wörld ✓ ${marker}\r\n`;
  const r = await pythonSend(gw.port('incoming'), 'zoe@src.test', ['bob@dst.test'], msg);
  assert.match(r.out, /"ok": true/, r.out);
  const delivered = await deliveredBody(marker);
  const [, rest] = splitReceived(delivered.body);
  // smtp-sink stores LF line ends; compare bytes as UTF-8 after the same normalisation.
  assert.equal(
    Buffer.from(rest.replace(/\n+$/, ''), 'latin1').toString('utf8'),
    msg.replace(/\r\n/g, '\n').replace(/\n+$/, ''),
  );
});

test('smtp-source: 200 messages over 10 reused sessions all arrive', { skip }, async () => {
  const before = sink.messages().length;
  const r = await smtpSource([
    '-s',
    '10',
    '-m',
    '200',
    '-d',
    '-l',
    '2048',
    '-f',
    'load@src.test',
    '-t',
    'bob@dst.test',
    `127.0.0.1:${gw.port('incoming')}`,
  ]);
  assert.equal(r.code, 0, r.out);
  await waitFor(() => sink.messages().length >= before + 200, 20_000, '200 deliveries');
  assert.equal(sink.messages().length, before + 200);
});

test(
  'recipients of one message are delivered in one transaction, and the tracking search finds it',
  { skip },
  async () => {
    const marker = `multi-${Date.now()}`;
    const r = await swaks([
      '-s',
      `127.0.0.1:${gw.port('incoming')}`,
      '-f',
      'carol@src.test',
      '-t',
      'x1@dst.test,x2@dst.test',
      '--header',
      `Subject: ${marker}`,
    ]);
    assert.equal(r.code, 0, r.out);
    const d = await deliveredBody(marker);
    assert.deepEqual(d.rcptTo.sort(), ['x1@dst.test', 'x2@dst.test']);
    const found = await waitFor(
      () => gw.gateway.tracker.search({ subject: marker }).find((m) => m.status === 'delivered'),
      5000,
      'search',
    );
    assert.deepEqual(
      found.recipients.map((x) => x.status),
      ['delivered', 'delivered'],
    );
    assert.equal(gw.gateway.tracker.search({ recipient: 'x2@dst.test' })[0].mid, found.mid);
    assert.equal(gw.gateway.tracker.search({ sender: 'CAROL@src.test' })[0].mid, found.mid);
  },
);

test('outgoing listener relays for loopback to any domain', { skip }, async () => {
  const marker = `out-${Date.now()}`;
  const r = await swaks([
    '-s',
    `127.0.0.1:${gw.port('outgoing')}`,
    '-f',
    'me@example.test',
    '-t',
    'someone@elsewhere.example',
    '--header',
    `Subject: ${marker}`,
  ]);
  assert.equal(r.code, 0, r.out);
  const d = await deliveredBody(marker);
  assert.deepEqual(d.rcptTo, ['someone@elsewhere.example']);
});

test('the mail log has the DESIGN §8 lines for a delivered message', { skip }, async () => {
  const marker = `log-${Date.now()}`;
  const r = await swaks([
    '-s',
    `127.0.0.1:${gw.port('incoming')}`,
    '-f',
    'log@src.test',
    '-t',
    'bob@dst.test',
    '--header',
    `Subject: ${marker}`,
  ]);
  const mid = Number(/queued as MID (\d+)/.exec(r.out)?.[1]);
  await deliveredBody(marker);
  const logFile = path.join(gw.dataDir, 'logs', 'mail.log');
  const log = await waitFor(
    () => {
      const t = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
      return t.includes(`Message done DCID`) && new RegExp(`Message done DCID \\d+ MID ${mid} to RID \\[0\\]`).test(t)
        ? t
        : null;
    },
    5000,
    'mail log lines',
  );
  assert.match(log, new RegExp(`Info: MID ${mid} ICID \\d+ From: <log@src.test>`));
  assert.match(log, new RegExp(`Info: MID ${mid} ICID \\d+ RID 0 To: <bob@dst.test>`));
  assert.match(log, new RegExp(`Info: Delivery start DCID \\d+ MID ${mid} to RID \\[0\\]`));
  assert.match(log, new RegExp(`Info: New SMTP ICID \\d+ interface incoming address 127\\.0\\.0\\.1`));
});

test('a file: route stores exactly the sent bytes plus our Received line', { skip }, async () => {
  const { RawSmtp } = await import('./helpers/rawsmtp.ts');
  const fileGw = await startTestGateway(testConfig({ routes: { '*': ['file:delivered'] } }));
  try {
    const c = await RawSmtp.open(fileGw.port('incoming'));
    await c.reply();
    await c.cmd('EHLO exact.test');
    await c.cmd('MAIL FROM:<a@src.test>');
    await c.cmd('RCPT TO:<bob@dst.test>');
    await c.cmd('DATA');
    const bytes = Buffer.from(
      'From: a@src.test\r\nTo: bob@dst.test\r\nSubject: exact\r\n\r\n..dot-stuffed line\r\ntrailing spaces   \r\n\ttab\r\n\xff\xfe binary-ish\r\n',
      'latin1',
    );
    c.write(bytes);
    c.write('.\r\n');
    const reply = await c.reply();
    const mid = Number(/queued as MID (\d+)/.exec(reply)?.[1]);
    c.close();
    const file = path.join(fileGw.dataDir, 'delivered', `${mid}.eml`);
    await waitFor(() => existsSync(file), 5000, 'file delivery');
    const got = readFileSync(file);
    const text = got.toString('latin1');
    const end = text.indexOf('\r\n', text.indexOf(';\r\n\t') + 4) + 2;
    assert.match(
      text.slice(0, end),
      /^Received: from exact\.test \(unknown \[127\.0\.0\.1\]\)\r\n\tby gw\.test \(Breakwater\) with ESMTP id \d+\r\n\tfor <bob@dst\.test>;\r\n\t.+\r\n$/,
    );
    // the sender's dot-stuffing is undone, every other byte is as sent
    assert.deepEqual(
      got.subarray(end),
      Buffer.from(bytes.toString('latin1').replace('\r\n..dot', '\r\n.dot'), 'latin1'),
    );
  } finally {
    await fileGw.stop();
  }
});

test('the spool is empty once everything is delivered', { skip }, async () => {
  await waitFor(() => gw.gateway.flow.active() === 0, 10_000, 'queue drained');
  await gw.gateway.store.committed();
  await waitFor(() => readdirSync(path.join(gw.dataDir, 'spool')).length === 0, 5000, 'spool empty');
});

test(
  'a route target that closes before its greeting is skipped for the next one; with none left the deferral names it',
  { skip },
  async () => {
    // An overloaded or tarpitting MX that takes the TCP connection and drops it at once, before any greeting.
    const dead = await deadPort();
    const own = await startTestGateway(
      testConfig({
        routes: {
          'next.test': [`smtp://127.0.0.1:${dead.port}`, `smtp://127.0.0.1:${sink.port}`],
          'none.test': [`smtp://127.0.0.1:${dead.port}`],
        },
        delivery: { retrySchedule: ['1h'], maxQueueLifetime: '2h' },
      }),
    );
    try {
      const send = async (to: string, marker: string): Promise<number> => {
        const r = await swaks([
          '-s',
          `127.0.0.1:${own.gateway.ports.get('outgoing')}`,
          '-f',
          'a@src.test',
          '-t',
          to,
          '--header',
          `Subject: ${marker}`,
        ]);
        assert.equal(r.code, 0, r.out);
        return Number(/queued as MID (\d+)/.exec(r.out)?.[1]);
      };
      const marker = `next-target-${Date.now()}`;
      const mid = await send('bob@next.test', marker);
      await deliveredBody(marker);
      const rec = await waitFor(
        () => {
          const t = own.gateway.tracker.show(mid);
          return t?.status === 'delivered' ? t : null;
        },
        5000,
        'delivered through the second target',
      );
      assert.ok(
        rec.events.some((e) => e.type === 'delivery.delivered' && e.target === `127.0.0.1:${sink.port}`),
        JSON.stringify(rec.events),
      );

      const stuck = await send('bob@none.test', `no-target-${Date.now()}`);
      const deferred = await waitFor(
        () => {
          const t = own.gateway.tracker.show(stuck);
          return t?.recipients[0].status === 'deferred' ? t : null;
        },
        5000,
        'deferred',
      );
      assert.match(
        deferred.recipients[0].lastReply ?? '',
        new RegExp(`127\\.0\\.0\\.1:${dead.port}: .*closed unexpectedly`),
      );
    } finally {
      await own.stop();
      await dead.release();
    }
  },
);
