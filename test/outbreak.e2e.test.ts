// Outbreak Filters end to end, through real SMTP peers (swaks in, smtp-sink out): signed rule bundles
// published mid-run from a feed directory, the Outbreak quarantine, re-evaluation and early release,
// scheduled exit with a release tag, modification with rewritten links, clicks, alerts, restarts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { freePort, hasBinary, startSmtpSink, swaks, tempDir, waitFor, type Sink } from './helpers/peers.ts';
import { startTestGateway, testConfig } from './helpers/gateway.ts';
import { generateKeyPair, signBundle } from '../src/outbreak/bundle.ts';

const require = createRequire(import.meta.url);
const { simpleParser } = require('mailparser') as {
  simpleParser: (
    src: string | Buffer,
  ) => Promise<{ subject?: string; html?: string | false; headers: Map<string, unknown> }>;
};

const skip =
  hasBinary('smtp-sink') && hasBinary('swaks') ? false : 'smtp-sink and swaks are not installed (run .ci/run)';

const keys = generateKeyPair();
let feedDir: string;
let sink: Sink;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
const hooks: Array<{ key: string; class: string; severity: string; title: string }> = [];
let hookServer: Server;

const INVOICE_RULE = (level: number) => ({
  id: 'OUTBREAK_0000001',
  level,
  category: 'virus',
  description: 'Invoice-themed zip attachments',
  published: new Date().toISOString(),
  condition: { attachment: { name: ['*invoice*.zip'] } },
});
const PHISH_RULE = {
  id: 'OUTBREAK_0000002',
  level: 3,
  category: 'phish',
  description: 'Credential phishing on phish.test',
  published: new Date().toISOString(),
  condition: { url: { host: ['.phish.test'] } },
};
const MALWARE_URL_RULE = {
  id: 'OUTBREAK_0000003',
  level: 5,
  category: 'malware',
  description: 'Malware download site',
  published: new Date().toISOString(),
  condition: { url: { host: ['.malware.test'] } },
};

let version = 0;
/** Signs and drops a bundle into the feed directory; returns its version. */
function publish(rules: unknown[]): number {
  version++;
  const signed = signBundle({ version, published: new Date().toISOString(), rules }, keys.privateKey);
  writeFileSync(path.join(feedDir, `bundle-${String(version).padStart(4, '0')}.json`), JSON.stringify(signed));
  return version;
}

async function api(method: string, url: string, body?: unknown): Promise<any> {
  const res = await fetch(`http://127.0.0.1:${gw.adminPort}/api/v1${url}`, {
    method,
    headers: {
      authorization: `Bearer ${gw.token}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const json = (await res.json()) as Record<string, unknown>;
  return { httpStatus: res.status, ...json };
}

async function send(to: string, subject: string, extra: string[] = []): Promise<number> {
  const r = await swaks([
    '-s',
    `127.0.0.1:${gw.port('incoming')}`,
    '-f',
    'sender@src.test',
    '-t',
    to,
    '--header',
    `Subject: ${subject}`,
    ...extra,
  ]);
  assert.equal(r.code, 0, r.out);
  const mid = Number(/queued as MID (\d+)/.exec(r.out)?.[1]);
  assert.ok(mid > 0, r.out);
  return mid;
}

function zipAttachment(dir: string, name: string): string[] {
  const file = path.join(dir, name);
  // a minimal empty zip (end of central directory only): a real archive with a telling name
  writeFileSync(file, Buffer.from('504b0506000000000000000000000000000000000000', 'hex'));
  return ['--attach-type', 'application/zip', '--attach', `@${file}`];
}

function status(mid: number): string | undefined {
  return gw.gateway.tracker.show(mid)?.status;
}

async function delivered(marker: string) {
  return waitFor(() => sink.messages().find((m) => m.body.includes(marker)), 15_000, `delivery of ${marker}`);
}

before(async () => {
  if (skip) return;
  feedDir = tempDir('bw-feed-');
  sink = await startSmtpSink({ dump: true });
  hookServer = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      hooks.push(JSON.parse(body));
      res.end('ok');
    });
  });
  await new Promise<void>((r) => hookServer.listen(0, '127.0.0.1', r));
  const hookPort = (hookServer.address() as { port: number }).port;
  publish([INVOICE_RULE(1)]);
  gw = await startTestGateway(
    testConfig({
      routes: { '*': [`smtp://127.0.0.1:${sink.port}`] },
      outbreakFilters: {
        adaptiveRules: false,
        ruleFeed: { dir: feedDir, publicKey: keys.publicKey },
        ruleUpdateInterval: '1h',
        reevaluateInterval: '1s',
      },
      clickTime: { host: '127.0.0.1', port: await freePort() },
      policies: {
        incoming: [
          {
            name: 'modify-only',
            match: ['mod@dst.test'],
            outbreakFilters: { mode: 'custom', deliverWithoutQuarantine: true },
          },
          {
            name: 'short-hold',
            match: ['short@dst.test'],
            outbreakFilters: { mode: 'custom', retention: { viral: '2s', other: '2s' } },
          },
          { name: 'default' },
        ],
      },
      quarantine: { outbreak: { releaseSubjectTag: '[RELEASED] ' } },
      alerts: { webhooks: [{ url: `http://127.0.0.1:${hookPort}/hook` }], suppressFor: '1s' },
    }),
  );
  await waitFor(() => gw.gateway.outbreak.bundle?.version === 1, 10_000, 'first bundle');
});

after(async () => {
  await gw?.stop();
  await sink?.stop();
  await new Promise((r) => hookServer?.close(r));
});

test(
  'a rule published mid-run quarantines matching mail; lowering it releases the held mail into the sink',
  { skip },
  async () => {
    const dir = tempDir('bw-att-');
    const before1 = await send('bob@dst.test', 'before-rule', zipAttachment(dir, 'march-invoice.zip'));
    await delivered('before-rule');
    assert.equal(gw.gateway.tracker.show(before1)?.threatLevel, 1, 'level 1 rule matched but below threshold');

    publish([INVOICE_RULE(4)]);
    const up = await api('POST', '/outbreak/update', {});
    assert.equal(up.httpStatus, 200);
    assert.equal(up.status, 'updated');
    assert.equal(up.version, 2);

    const held = await send('bob@dst.test', 'held-by-rule', zipAttachment(dir, 'april-invoice.zip'));
    const clean = await send('bob@dst.test', 'clean-mail', zipAttachment(dir, 'holiday-photos.zip'));
    await delivered('clean-mail');
    await waitFor(() => status(held) === 'quarantined', 10_000, 'quarantine');
    const rec = gw.gateway.tracker.show(held)!;
    assert.equal(rec.threatLevel, 4);
    assert.deepEqual(
      rec.threatRules.map((r) => r.id),
      ['OUTBREAK_0000001'],
    );
    assert.ok(rec.events.some((e) => e.type === 'quarantine.held'));
    const list = await api('GET', '/quarantines/outbreak/messages?rule=OUTBREAK_0000001');
    assert.deepEqual(
      list.messages.map((m: any) => m.mid),
      [held],
    );
    assert.equal(list.messages[0].viral, true);
    // a viral hold uses the viral retention (1 day by default)
    const exit = Date.parse(list.messages[0].scheduledExit) - Date.parse(list.messages[0].enteredAt);
    assert.equal(exit, 86_400_000);
    const byRule = await api('GET', '/tracking/messages?rule=OUTBREAK_0000001&level=4');
    assert.deepEqual(
      byRule.messages.map((m: any) => m.mid),
      [held],
    );
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(!sink.messages().some((m) => m.body.includes('held-by-rule')), 'held mail is not delivered');

    publish([INVOICE_RULE(2)]);
    await api('POST', '/outbreak/update', {});
    const out = await delivered('held-by-rule');
    assert.deepEqual(out.rcptTo, ['bob@dst.test']);
    await waitFor(() => status(held) === 'delivered', 10_000, 'delivered status');
    const after2 = gw.gateway.tracker.show(held)!;
    const released = after2.events.find((e) => e.type === 'quarantine.released');
    assert.ok(released, 'released event');
    assert.match(String(released.reason), /re-evaluated/);
    assert.equal(after2.threatLevel, 2);
    assert.deepEqual(
      after2.attachments.map((x) => x.name),
      ['april-invoice.zip'],
      "the rescan on release replaces the first scan's facts",
    );
    assert.equal((await api('GET', '/quarantines/outbreak/messages')).messages.length, 0);
    const report = await api('GET', '/reports/outbreak');
    assert.ok(report.topRules.some((r: any) => r.ruleId === 'OUTBREAK_0000001' && r.messages >= 2));
    assert.ok(report.byLevel.some((l: any) => l.level === 2));
    assert.ok(clean);
    // alerts: the rule crossed the threshold upwards, then fell back below
    await waitFor(() => hooks.some((h) => h.key.startsWith('outbreak.rule_lowered:OUTBREAK_0000001')), 5000, 'alerts');
    assert.ok(hooks.some((h) => h.key.startsWith('outbreak.rule_raised:OUTBREAK_0000001')));
  },
);

test(
  'non-viral threats are modified: subject tag, status headers, disclaimer, links rewritten to the click-time service',
  { skip },
  async () => {
    publish([INVOICE_RULE(2), PHISH_RULE, MALWARE_URL_RULE]);
    await api('POST', '/outbreak/update', {});
    const html =
      '<html><body><p>Your mailbox is full.</p><a href="http://login.phish.test/reset?u=1">Reset</a> ' +
      '<a href="https://docs.example.org/help">Help</a> <a href="http://get.malware.test/x.exe">Get</a></body></html>';
    const mid = await send('mod@dst.test', 'mailbox-full-notice', [
      '--add-header',
      'MIME-Version: 1.0',
      '--add-header',
      'Content-Type: text/html; charset=utf-8',
      '--add-header',
      'X-Breakwater-Outbreak-Status: no, level 0, forged',
      '--body',
      html,
    ]);
    const got = await delivered('mailbox-full-notice');
    const parsed = await simpleParser(got.body.replace(/\n/g, '\r\n'));
    // the strongest rule names the category: the malware link (level 5) outranks the phishing one
    assert.match(parsed.subject ?? '', /^\[Possible Malware Fraud\] mailbox-full-notice$/);
    assert.equal(parsed.headers.get('x-breakwater-outbreak-status'), 'yes, level 5, Malware - Url');
    assert.ok(
      !got.body.includes('forged'),
      'a status header sent by the sender is removed: nobody can forge our verdict',
    );
    assert.ok(parsed.html && parsed.html.includes('Caution:'), 'disclaimer above the body');
    const base = `http://127.0.0.1:${gw.gateway.ports.get('clickTime')}/c/`;
    const links = [...(parsed.html as string).matchAll(/href="([^"]+)"/g)].map((m) => m[1].replace(/&amp;/g, '&'));
    assert.equal(links.length, 3);
    for (const l of links) assert.ok(l.startsWith(base), `rewritten: ${l}`);
    assert.ok(!(parsed.html as string).includes('login.phish.test'), 'the original URL is not left in an href');

    // clicks: a link no rule flags still warns (its message is a level-5 threat, issue 10), a phishing
    // link warns, a malware link is blocked
    const [phish, help, malware] = links;
    const r1 = await fetch(help, { redirect: 'manual' });
    assert.equal(r1.status, 200);
    assert.equal(r1.headers.get('location'), null);
    assert.match(await r1.text(), /docs\.example\.org/);
    const r2 = await fetch(phish, { redirect: 'manual' });
    assert.equal(r2.status, 200);
    assert.match(await r2.text(), /login\.phish\.test/);
    const r3 = await fetch(malware, { redirect: 'manual' });
    assert.equal(r3.status, 403);
    assert.equal(r3.headers.get('location'), null);
    const tampered = phish.slice(0, -3) + (phish.endsWith('A') ? 'BBB' : 'AAA');
    const r4 = await fetch(tampered, { redirect: 'manual' });
    assert.equal(r4.status, 400);
    assert.equal(r4.headers.get('location'), null);

    const rec = await waitFor(
      () => {
        const t = gw.gateway.tracker.show(mid);
        return t && t.clicks.length >= 3 ? t : null;
      },
      5000,
      'clicks recorded',
    );
    assert.deepEqual(rec.clicks.map((c) => `${c.verdict}/${c.action} ${c.source}`).sort(), [
      'malicious/blocked url_rules',
      'suspicious/warned message',
      'suspicious/warned url_rules',
    ]);
    assert.ok(rec.clicks.every((c) => c.recipient === 'mod@dst.test'));
    assert.ok(rec.events.some((e) => e.type === 'outbreak.modified' && e.rewrittenUrls === 3));
    const report = await api('GET', '/reports/web-interaction');
    assert.equal(report.httpStatus, 200);
    assert.ok(report.urls.some((u: any) => u.url === 'http://get.malware.test/x.exe' && u.blocked === 1));
    assert.deepEqual(
      report.topMaliciousClickers.map((u: any) => u.recipient),
      ['mod@dst.test'],
    );
  },
);

test(
  'non-viral threats are held by default and leave at their scheduled exit, rescanned and tagged',
  { skip },
  async () => {
    const mid = await send('short@dst.test', 'short-hold-phish', ['--body', 'Verify at http://verify.phish.test/now']);
    await waitFor(() => status(mid) === 'quarantined', 10_000, 'quarantine');
    const [entry] = (await api('GET', `/quarantines/outbreak/messages?mids=${mid}`)).messages;
    assert.equal(entry.viral, false);
    assert.equal(Date.parse(entry.scheduledExit) - Date.parse(entry.enteredAt), 2000, 'other-threat retention');
    const got = await delivered('short-hold-phish');
    const parsed = await simpleParser(got.body.replace(/\n/g, '\r\n'));
    // released at its exit: still a threat, so modified as well, and tagged as released
    assert.match(parsed.subject ?? '', /^\[RELEASED\] \[Possible Phish Fraud\] short-hold-phish$/);
    assert.ok(parsed.headers.get('x-breakwater-quarantine'));
    const rec = gw.gateway.tracker.show(mid)!;
    assert.ok(rec.events.some((e) => e.type === 'quarantine.released' && e.reason === 'scheduled exit'));
  },
);

test('administrators release and delete held messages, one by one or in bulk by rule', { skip }, async () => {
  const a = await send('bob@dst.test', 'admin-release', ['--body', 'see http://a.phish.test/']);
  const b = await send('bob@dst.test', 'admin-delete-1', ['--body', 'see http://b.phish.test/']);
  const c = await send('bob@dst.test', 'admin-delete-2', ['--body', 'see http://c.phish.test/']);
  await waitFor(() => [a, b, c].every((m) => status(m) === 'quarantined'), 10_000, 'three held');
  const rules = await api('GET', '/quarantines/outbreak/rules');
  const phish = rules.rules.find((r: any) => r.ruleId === 'OUTBREAK_0000002');
  assert.equal(phish.messages, 3);
  assert.equal(phish.description, 'Credential phishing on phish.test');
  const empty = await api('POST', '/quarantines/outbreak/delete', {});
  assert.equal(empty.httpStatus, 400);
  assert.equal(empty.error.code, 'filter_required');
  const rel = await api('POST', '/quarantines/outbreak/release', { mids: [a], by: 'admin@example.test' });
  assert.deepEqual(rel.mids, [a]);
  await delivered('admin-release');
  const del = await api('POST', '/quarantines/outbreak/delete', { rule: 'OUTBREAK_0000002' });
  assert.deepEqual(del.mids.sort(), [b, c].sort());
  assert.equal(status(b), 'deleted');
  assert.ok(gw.gateway.tracker.show(c)!.events.some((e) => e.type === 'quarantine.deleted'));
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(!sink.messages().some((m) => m.body.includes('admin-delete')));
  const bad = await api('GET', '/quarantines/nope/messages');
  assert.equal(bad.httpStatus, 404);
  assert.equal(bad.error.code, 'quarantine_not_found');
});

test('a tampered bundle is rejected with an alert and the active rules stay', { skip }, async () => {
  const active = gw.gateway.outbreak.bundle!.version;
  version++;
  const signed = signBundle(
    { version, published: new Date().toISOString(), rules: [structuredClone(PHISH_RULE)] },
    keys.privateKey,
  ) as { bundle: { rules: Array<{ level: number }> } };
  signed.bundle.rules[0].level = 0; // altered after signing
  writeFileSync(path.join(feedDir, `bundle-${String(version).padStart(4, '0')}.json`), JSON.stringify(signed));
  const r = await api('POST', '/outbreak/update', {});
  assert.equal(r.httpStatus, 200);
  assert.equal(r.status, 'failed');
  assert.equal(r.error.code, 'bad_signature');
  assert.equal(gw.gateway.outbreak.bundle!.version, active);
  const s = await api('GET', '/outbreak/status');
  assert.match(s.lastError, /bad_signature/);
  const alerts = await api('GET', '/alerts?class=outbreak');
  assert.ok(alerts.alerts.some((a: any) => a.key === 'outbreak.feed_failed:bad_signature'));
  const flush = await api('POST', '/outbreak/flush', {});
  assert.equal(flush.httpStatus, 400);
  assert.equal(flush.error.code, 'confirmation_required');
});

test('held messages and the rule version survive a restart', { skip }, async () => {
  const dir = tempDir('bw-restart-');
  const ownFeed = tempDir('bw-feed2-');
  const signed = signBundle({ version: 3, published: new Date().toISOString(), rules: [PHISH_RULE] }, keys.privateKey);
  writeFileSync(path.join(ownFeed, 'bundle.json'), JSON.stringify(signed));
  const doc = testConfig({
    routes: { '*': [`smtp://127.0.0.1:${sink.port}`] },
    outbreakFilters: {
      adaptiveRules: false,
      ruleFeed: { dir: ownFeed, publicKey: keys.publicKey },
      ruleUpdateInterval: '1h',
    },
  });
  let g = await startTestGateway(doc, dir);
  try {
    await waitFor(() => g.gateway.outbreak.bundle, 10_000, 'bundle');
    const v = g.gateway.outbreak.bundle!.version;
    const r = await swaks([
      '-s',
      `127.0.0.1:${g.port('incoming')}`,
      '-f',
      'sender@src.test',
      '-t',
      'bob@dst.test',
      '--header',
      'Subject: restart-held',
      '--body',
      'http://x.phish.test/',
    ]);
    const mid = Number(/queued as MID (\d+)/.exec(r.out)?.[1]);
    await waitFor(() => g.gateway.tracker.show(mid)?.status === 'quarantined', 10_000, 'held').catch((err) => {
      throw new Error(`${err.message}: ${JSON.stringify(g.gateway.tracker.show(mid))} ${r.out}`);
    });
    await g.stop();
    const noFeed = {
      ...(doc.outbreakFilters as Record<string, unknown>),
      ruleFeed: { dir: tempDir('bw-nofeed-'), publicKey: keys.publicKey },
    };
    g = await startTestGateway({ ...doc, outbreakFilters: noFeed }, dir);
    assert.equal(g.gateway.outbreak.bundle?.version, v, 'persisted bundle loaded without the feed');
    const held = await g.gateway.quarantines.list({ quarantine: 'outbreak' });
    assert.deepEqual(
      held.map((e) => e.mid),
      [mid],
    );
    await g.gateway.quarantines.releaseMatching({ quarantine: 'outbreak', mids: [mid] }, 'test');
    await delivered('restart-held');
  } finally {
    await g.stop();
  }
});
