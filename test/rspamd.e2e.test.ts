// The rspamd stage end to end: a real rspamd (Debian's, local rules only: test/helpers/rspamd.ts) and
// real SMTP into a test gateway delivering to smtp-sink. Ham is delivered untouched; spam is tagged,
// quarantined, dropped or bounced per mail policy; rspamd's action, score and symbols are in tracking
// (and searchable); rspamd stopped or frozen is the configured failure mode with a tracking note and an
// alert, and no message is lost.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { hasBinary, startSmtpSink, waitFor, type Sink } from './helpers/peers.ts';
import { startTestGateway, testConfig } from './helpers/gateway.ts';
import { sendMessage } from './helpers/rawsmtp.ts';
import { hasRspamd, RSPAMD_MARK, rspamdPing, startRspamd, type TestRspamd } from './helpers/rspamd.ts';

const skip = hasBinary('smtp-sink') && hasRspamd() ? false : 'smtp-sink or rspamd are not installed (run .ci/run)';

let sink: Sink;
let rspamd: TestRspamd;
type Gw = Awaited<ReturnType<typeof startTestGateway>>;
let gw: Gw;
let n = 0;

function message(subject: string, body: string): string {
  n++;
  return [
    'From: Sender <a@src.test>',
    'To: someone@dst.test',
    `Subject: ${subject}`,
    `Message-ID: <rspamd-${n}-${Date.now()}@src.test>`,
    'Date: Mon, 07 Dec 2026 10:00:00 +0000',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    body,
    '',
  ].join('\r\n');
}

async function send(g: Gw, to: string[], subject: string, body: string): Promise<number> {
  const r = await sendMessage(g.port('incoming'), 'a@src.test', to, message(subject, body));
  assert.match(r.reply, /^250 /, r.reply);
  return r.mid!;
}

const delivered = (marker: string) => sink.messages().find((m) => m.body.includes(marker));
const record = (g: Gw, mid: number) => g.gateway.tracker.show(mid)!;
const event = (g: Gw, mid: number, type: string) => g.gateway.tracker.show(mid)?.events.find((e) => e.type === type);

function gatewayConfig(failureMode: 'skip' | 'tempfail'): Record<string, unknown> {
  return testConfig({
    routes: { '*': [`smtp://127.0.0.1:${sink.port}`] },
    outbreakFilters: { adaptiveRules: false },
    antispam: { rspamd: { url: rspamd.url, timeout: '2s', failureMode } },
    quarantine: { policy: [{ name: 'spam', retention: '7d' }] },
    policies: {
      incoming: [
        {
          name: 'held',
          match: ['held@dst.test'],
          antispam: {
            mode: 'custom',
            spam: { action: 'quarantine', quarantine: 'spam' },
            reject: { action: 'quarantine', quarantine: 'spam' },
          },
        },
        { name: 'bounce', match: ['bounce@dst.test'], antispam: { mode: 'custom', reject: { action: 'bounce' } } },
        { name: 'drop', match: ['drop@dst.test'], antispam: { mode: 'custom', reject: { action: 'drop' } } },
        { name: 'off', match: ['off@dst.test'], antispam: { mode: 'disabled' } },
        { name: 'default' },
      ],
    },
  });
}

before(async () => {
  if (skip) return;
  sink = await startSmtpSink({ dump: true });
  rspamd = await startRspamd();
  gw = await startTestGateway(gatewayConfig('skip'));
});

after(async () => {
  await gw?.stop();
  await rspamd?.stop();
  await sink?.stop();
});

test('ham is delivered untouched; spam is tagged with its score and symbols by default', { skip }, async () => {
  // after the parse and anti-virus, before Outbreak Filters
  const names = gw.gateway.stages.map((st) => st.name);
  assert.ok(names.indexOf('mime.parse') < names.indexOf('rspamd'), names.join());
  assert.ok(names.indexOf('rspamd') < names.indexOf('outbreak'), names.join());
  const ham = await send(gw, ['bob@dst.test'], 'plain ham', 'lunch at noon? ham-1');
  const spam = await send(gw, ['bob@dst.test', 'carol@dst.test'], 'buy now', `cheap ${RSPAMD_MARK.spam} spam-1`);
  const h = await waitFor(() => delivered('ham-1'), 15_000, 'ham delivered');
  assert.match(h.body, /Subject: plain ham/);
  assert.doesNotMatch(h.body, /X-Spam-/);
  const s = await waitFor(() => delivered('spam-1'), 15_000, 'spam delivered');
  assert.match(s.body, /Subject: \[SUSPECTED SPAM\] buy now/);
  assert.match(s.body, /X-Spam-Status: Yes, action=add_header, score=7\.\d\d, required=15\.00/);
  assert.match(s.body, /X-Spam-Symbols: .*BW_TEST_SPAM\(7\.00\)/);

  await waitFor(() => record(gw, spam).status === 'delivered', 10_000, 'spam record done');
  const hs = event(gw, ham, 'antispam.scanned')!;
  assert.equal(hs.action, 'no action');
  const ss = event(gw, spam, 'antispam.scanned')! as unknown as {
    action: string;
    score: number;
    symbols: Array<{ name: string }>;
  };
  assert.equal(ss.action, 'add header');
  assert.ok(ss.score >= 7, String(ss.score));
  assert.equal(ss.symbols[0].name, 'BW_TEST_SPAM');
  assert.match(String(event(gw, spam, 'verdict')!.reason), /anti-spam: rspamd add header/);
  // searchable by action and by score
  const byAction = gw.gateway.tracker.search({ spamAction: 'add header' }).map((r) => r.mid);
  assert.ok(byAction.includes(spam) && !byAction.includes(ham), JSON.stringify(byAction));
  const byScore = gw.gateway.tracker.search({ spamScore: 5 }).map((r) => r.mid);
  assert.ok(byScore.includes(spam) && !byScore.includes(ham), JSON.stringify(byScore));
  const metrics = await gw.gateway.metrics.registry.metrics();
  assert.match(metrics, /breakwater_rspamd_actions_total\{action="add header"\} [1-9]/);
  assert.match(metrics, /breakwater_rspamd_actions_total\{action="no action"\} [1-9]/);
  // and through the admin API
  const api = await fetch(
    `http://127.0.0.1:${gw.adminPort}/api/v1/tracking/messages?spamAction=add%20header&spamScore=5`,
    { headers: { authorization: `Bearer ${gw.token}` } },
  );
  assert.equal(api.status, 200, await api.clone().text());
  const body = (await api.json()) as { messages: Array<{ mid: number }> };
  assert.ok(body.messages.some((m) => m.mid === spam));
});

test(
  'spam verdict fields a message arrives with go once rspamd has judged it; not where it did not',
  { skip },
  async () => {
    const forged = (subject: string, to: string, body: string) =>
      sendMessage(
        gw.port('incoming'),
        'a@src.test',
        [to],
        message(subject, body).replace(
          'MIME-Version: 1.0',
          'X-Spam-Flag: NO\r\nX-Spam-Status: No, score=-5.0\r\nX-Rspamd-Score: -3\r\n\tfolded\r\nX-Spamming: kept\r\nMIME-Version: 1.0',
        ),
      );
    await forged('forged ham', 'bob@dst.test', 'see you forged-ham-1');
    await forged('forged spam', 'bob@dst.test', `cheap ${RSPAMD_MARK.spam} forged-spam-1`);
    await forged('forged off', 'off@dst.test', 'not judged forged-off-1');
    const ham = await waitFor(() => delivered('forged-ham-1'), 15_000, 'ham delivered');
    const head = (b: string) => b.slice(0, b.indexOf('\n\n'));
    assert.doesNotMatch(head(ham.body), /^X-(Spam|Rspamd)(-|:)/im, 'every spam verdict field of the sender is gone');
    assert.match(head(ham.body), /^X-Spamming: kept$/m, 'a field that only starts with the letters stays');
    assert.match(ham.body, /^Subject: forged ham$/m);
    const spam = await waitFor(() => delivered('forged-spam-1'), 15_000, 'spam delivered');
    const statuses = head(spam.body).match(/^X-Spam-Status: .*$/gm) ?? [];
    assert.deepEqual(statuses.length, 1, statuses.join('\n'));
    assert.match(statuses[0], /^X-Spam-Status: Yes, action=add_header/);
    assert.doesNotMatch(head(spam.body), /^X-Spam-Flag|^X-Rspamd-Score|^\tfolded/m);
    // a policy with the stage off passes them on as they came (we gave no verdict)
    const off = await waitFor(() => delivered('forged-off-1'), 15_000, 'off delivered');
    assert.match(head(off.body), /^X-Spam-Flag: NO$/m);
  },
);

test('reject is tagged by default; per policy spam is quarantined, bounced or dropped', { skip }, async () => {
  const tagged = await send(gw, ['bob@dst.test'], 'very bad', `${RSPAMD_MARK.reject} rej-tagged`);
  const held = await send(gw, ['held@dst.test'], 'held spam', `${RSPAMD_MARK.spam} held-1`);
  const bounced = await send(gw, ['bounce@dst.test'], 'bounced spam', `${RSPAMD_MARK.reject} bounced-1`);
  const dropped = await send(gw, ['drop@dst.test'], 'dropped spam', `${RSPAMD_MARK.reject} dropped-1`);
  const off = await send(gw, ['off@dst.test'], 'not scanned', `${RSPAMD_MARK.reject} off-1`);

  const t = await waitFor(() => delivered('rej-tagged'), 15_000, 'reject tagged');
  assert.match(t.body, /Subject: \[SPAM\] very bad/);
  assert.match(t.body, /X-Spam-Status: Yes, action=reject, score=50/);
  assert.equal(event(gw, tagged, 'antispam.scanned')!.action, 'reject');

  await waitFor(() => record(gw, held).status === 'quarantined', 15_000, 'held in spam');
  const [entry] = await gw.gateway.quarantines.list({ quarantine: 'spam', mids: [held] });
  assert.ok(entry.ruleIds.includes('BW_TEST_SPAM'), entry.ruleIds.join(','));

  await waitFor(() => record(gw, bounced).recipients[0].status === 'bounced', 15_000, 'bounced');
  assert.match(record(gw, bounced).recipients[0].lastReply ?? '', /^554 5\.7\.1 /);
  // the DSN goes to the envelope sender (routed to the sink here)
  await waitFor(
    () => sink.messages().find((m) => m.body.includes('bounced spam') && /delivery-status/i.test(m.body)),
    15_000,
    'DSN',
  );

  await waitFor(() => record(gw, dropped).status === 'dropped', 15_000, 'dropped');
  assert.equal(record(gw, dropped).recipients[0].status, 'dropped');

  await waitFor(() => delivered('off-1'), 15_000, 'policy with rspamd off');
  assert.equal(event(gw, off, 'antispam.scanned'), undefined);

  // released from the spam quarantine: scanned again, delivered tagged instead of held again
  await gw.gateway.quarantines.releaseMatching({ quarantine: 'spam', mids: [held] }, 'admin');
  const r = await waitFor(() => delivered('held-1'), 15_000, 'released spam delivered');
  assert.match(r.body, /Subject: \[SUSPECTED SPAM\] held spam/);
});

test('rspamd stopped, skip: delivered without its opinion, a tracking note and one alert', { skip }, async (t) => {
  await rspamd.stop();
  t.after(async () => {
    if (!(await rspamdPing(rspamd.port))) await rspamd.restart();
  });
  const a = await send(gw, ['bob@dst.test'], 'while down', `${RSPAMD_MARK.spam} down-1`);
  const b = await send(gw, ['bob@dst.test'], 'while down 2', 'down-2');
  await waitFor(() => delivered('down-1') && delivered('down-2'), 15_000, 'delivered unscanned');
  assert.doesNotMatch(delivered('down-1')!.body, /Subject: \[|X-Spam/);
  for (const mid of [a, b]) {
    const f = event(gw, mid, 'stage.failed')!;
    assert.equal(f.stage, 'rspamd');
    assert.equal(f.failureMode, 'skip');
    assert.match(String(f.error), /ECONNREFUSED|rspamd/);
    assert.equal(event(gw, mid, 'antispam.scanned'), undefined);
  }
  const down = gw.gateway.alerts.list().filter((x) => x.key === 'antispam.rspamd_down');
  assert.equal(down.length, 1, JSON.stringify(down));
  assert.equal(down[0].severity, 'warning');

  await rspamd.restart();
  const c = await send(gw, ['bob@dst.test'], 'back again', `${RSPAMD_MARK.spam} up-1`);
  const d = await waitFor(() => delivered('up-1'), 15_000, 'scanned again');
  assert.match(d.body, /\[SUSPECTED SPAM\]/);
  assert.equal(event(gw, c, 'antispam.scanned')!.action, 'add header');
  await waitFor(() => gw.gateway.alerts.list().find((x) => x.key === 'antispam.rspamd_up'), 10_000, 'up alert');
});

test('rspamd frozen (SIGSTOP): the timeout applies and the message goes on', { skip }, async () => {
  rspamd.pause();
  try {
    const started = Date.now();
    const mid = await send(gw, ['bob@dst.test'], 'while frozen', `${RSPAMD_MARK.spam} frozen-1`);
    await waitFor(() => delivered('frozen-1'), 15_000, 'delivered after the timeout');
    const took = Date.now() - started;
    assert.ok(took >= 1900 && took < 10_000, `took ${took} ms`);
    const f = event(gw, mid, 'stage.failed')!;
    assert.equal(f.stage, 'rspamd');
    assert.match(String(f.error), /did not answer within 2000 ms/);
  } finally {
    rspamd.resume();
  }
});

test('failure mode tempfail: mail waits while rspamd is down and is scanned when it is back', { skip }, async () => {
  const g = await startTestGateway(gatewayConfig('tempfail'));
  try {
    await rspamd.stop();
    const mid = await send(g, ['bob@dst.test'], 'waits', `${RSPAMD_MARK.spam} waits-1`);
    await waitFor(() => event(g, mid, 'stage.failed'), 15_000, 'stage failed');
    assert.equal(event(g, mid, 'stage.failed')!.failureMode, 'tempfail');
    await waitFor(() => record(g, mid).status === 'deferred', 10_000, 'deferred');
    assert.equal(event(g, mid, 'verdict')!.verdict, 'tempfail');
    assert.ok(!delivered('waits-1'));
    const alert = g.gateway.alerts.list().find((x) => x.key === 'antispam.rspamd_down');
    assert.equal(alert?.severity, 'critical');
    await rspamd.restart();
    // the probe sees it back (every 5 s) and rescans what waited, well before the one-minute retry
    const d = await waitFor(() => delivered('waits-1'), 20_000, 'delivered once rspamd is back');
    assert.match(d.body, /\[SUSPECTED SPAM\] waits/);
  } finally {
    await g.stop();
    if (!(await rspamdPing(rspamd.port))) await rspamd.restart();
  }
});
