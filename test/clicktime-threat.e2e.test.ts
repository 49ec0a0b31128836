// Issue 10, "the click-time service ignores what it already knows": a level-4 phish released from the
// Outbreak quarantine had all its links rewritten, yet the links whose URL no rule flagged redirected
// straight through. Through real peers (swaks in, smtp-sink out), the real gateway and its click-time
// HTTP server: every link of a threat message gets at least the warning page, and a link keeps what was
// known about it when it was rewritten.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { hasBinary, startSmtpSink, swaks, waitFor, type Sink } from './helpers/peers.ts';
import { startTestGateway, testConfig } from './helpers/gateway.ts';
import { writeRuleFeed } from './helpers/rules.ts';
import { signBundle } from '../src/outbreak/bundle.ts';
import { verifyClickToken } from '../src/clicktime/token.ts';

const require = createRequire(import.meta.url);
const { simpleParser } = require('mailparser') as {
  simpleParser: (src: string | Buffer) => Promise<{ subject?: string; html?: string | false }>;
};

const skip =
  hasBinary('smtp-sink') && hasBinary('swaks') ? false : 'smtp-sink and swaks are not installed (run .ci/run)';

const LURE_RULE = {
  id: 'OUTBREAK_0000010',
  level: 4,
  category: 'phish',
  description: 'Account suspension lure',
  condition: { body: ['your account will be suspended'] },
};
const SIGNIN_RULE = {
  id: 'OUTBREAK_0000011',
  level: 3,
  category: 'phish',
  description: 'Fake sign-in page on paypa1-login.com',
  condition: { url: { url: ['https://paypa1-login.com/signin*'] } },
};

const FLAGGED = 'https://paypa1-login.com/signin?session=8812';
const UNFLAGGED = ['https://paypa1-login.com/account/update', 'https://paypa1-login.com/help'];

let sink: Sink;
let feed: ReturnType<typeof writeRuleFeed>;
let gw: Awaited<ReturnType<typeof startTestGateway>>;

before(async () => {
  if (skip) return;
  sink = await startSmtpSink({ dump: true });
  feed = writeRuleFeed([LURE_RULE, SIGNIN_RULE]);
  gw = await startTestGateway(
    testConfig({
      routes: { '*': [`smtp://127.0.0.1:${sink.port}`] },
      outbreakFilters: {
        adaptiveRules: false,
        ruleFeed: { dir: feed.dir, publicKey: feed.publicKey },
        ruleUpdateInterval: '1h',
      },
    }),
  );
  await waitFor(() => gw.gateway.outbreak.bundle?.version === 1, 10_000, 'rule bundle');
});

after(async () => {
  await gw?.stop();
  await sink?.stop();
});

const get = (url: string, init: RequestInit = {}) => fetch(url, { redirect: 'manual', ...init });

test(
  'every link of a level-4 phish released from the quarantine gets at least the warning page, never a 302',
  { skip },
  async () => {
    const html =
      '<html><body><p>Dear customer, your account will be suspended within 24 hours.</p>' +
      `<p><a href="${FLAGGED}">Sign in</a> to keep it, or <a href="${UNFLAGGED[0]}">update your details</a>.</p>` +
      `<p><a href="${UNFLAGGED[1]}">Help</a></p></body></html>`;
    const r = await swaks([
      '-s',
      `127.0.0.1:${gw.port('incoming')}`,
      '-f',
      'service@paypa1-login.com',
      '-t',
      'bob@dst.test',
      '--header',
      'Subject: issue10-account-notice',
      '--add-header',
      'MIME-Version: 1.0',
      '--add-header',
      'Content-Type: text/html; charset=utf-8',
      '--body',
      html,
    ]);
    assert.equal(r.code, 0, r.out);
    const mid = Number(/queued as MID (\d+)/.exec(r.out)?.[1]);
    assert.ok(mid > 0, r.out);

    // held (non-viral level 4 ≥ quarantine threshold 3), then released by an administrator
    await waitFor(() => gw.gateway.tracker.show(mid)?.status === 'quarantined', 10_000, 'quarantine');
    assert.equal(gw.gateway.tracker.show(mid)?.threatLevel, 4);
    await gw.gateway.quarantines.releaseMatching({ quarantine: 'outbreak', mids: [mid] }, 'admin@dst.test');
    const got = await waitFor(
      () => sink.messages().find((m) => m.body.includes('issue10-account-notice')),
      15_000,
      'delivery',
    );
    const parsed = await simpleParser(got.body.replace(/\n/g, '\r\n'));
    const base = `http://127.0.0.1:${gw.gateway.ports.get('clickTime')}/c/`;
    const links = [...(parsed.html as string).matchAll(/href="([^"]+)"/g)].map((m) => m[1].replace(/&amp;/g, '&'));
    assert.equal(links.length, 3);
    for (const l of links) assert.ok(l.startsWith(base), `rewritten: ${l}`);
    const [signin, update, help] = links;

    // the defect: the two unflagged links redirected with 302. Now every link warns.
    const pages: string[] = [];
    for (const l of links) {
      const res = await get(l);
      assert.equal(res.status, 200, `${l} must not redirect (got ${res.status} → ${res.headers.get('location')})`);
      assert.equal(res.headers.get('location'), null);
      const text = await res.text();
      assert.match(text, /<h1>This link may not be safe<\/h1>/);
      pages.push(text);
    }
    // each token carries the message's level and rule, and what matched its own URL
    const key = Buffer.from(readFileSync(path.join(gw.dataDir, 'clicktime.key'), 'utf8').trim(), 'base64');
    const payloads = links.map((l) => {
      const v = verifyClickToken(key, l.slice(base.length));
      assert.ok(v.ok, `token of ${l} verifies`);
      return v.payload;
    });
    for (const p of payloads) assert.deepEqual(p.messageThreat, { level: 4, ruleIds: ['OUTBREAK_0000010'] });
    assert.deepEqual(payloads[0].urlThreat, { level: 3, ruleIds: ['OUTBREAK_0000011'] });
    assert.equal(payloads[1].urlThreat, undefined);
    assert.equal(payloads[2].urlThreat, undefined);

    // the flagged link is warned about because of its own rule; the others because of the message
    assert.ok(pages[0].includes('OUTBREAK_0000011'));
    for (const p of pages.slice(1)) {
      assert.match(p, /rated a threat \(level 4 of 5\)/);
      assert.ok(p.includes('OUTBREAK_0000010'));
      assert.match(p, /Threat level of the email/);
    }
    assert.ok(pages[1].includes('paypa1-login.com/account/update'), 'the warning names the real destination');

    // a HEAD (link scanner) answers the same and records nothing
    assert.equal((await get(help, { method: 'HEAD' })).status, 200);

    // the user may still continue past a warning that rests on the message alone
    const cont = await get(`${update}/continue`, {
      method: 'POST',
      body: '',
      headers: { 'sec-fetch-site': 'same-origin' },
    });
    assert.equal(cont.status, 303);
    assert.equal(cont.headers.get('location'), UNFLAGGED[0]);

    // the URL rule is withdrawn: the sign-in link still warns, on what was known when it was rewritten
    const published = new Date().toISOString();
    writeFileSync(
      path.join(feed.dir, 'c.json'),
      JSON.stringify(signBundle({ version: 2, published, rules: [{ ...LURE_RULE, published }] }, feed.privateKey)),
    );
    await gw.gateway.rules.update();
    assert.equal(gw.gateway.outbreak.bundle?.version, 2);
    assert.equal(gw.gateway.clickProtection.verdict(FLAGGED).verdict, 'clean', 'no current rule flags the URL');
    const again = await get(signin);
    assert.equal(again.status, 200);
    assert.match(await again.text(), /matched threat rules \(level 3 of 5\) when the email was scanned/);

    // the click records (web interaction tracking) say what drove each verdict
    const rec = await waitFor(
      () => {
        const t = gw.gateway.tracker.show(mid);
        return t && t.clicks.length >= 5 ? t : null;
      },
      5000,
      'clicks recorded',
    );
    assert.deepEqual(
      rec.clicks.map((c) => `${c.url} ${c.verdict}/${c.action} ${c.source}`),
      [
        `${FLAGGED} suspicious/warned url_rules`,
        `${UNFLAGGED[0]} suspicious/warned message`,
        `${UNFLAGGED[1]} suspicious/warned message`,
        `${UNFLAGGED[0]} suspicious/continued message`,
        `${FLAGGED} suspicious/warned url_at_rewrite`,
      ],
    );
    const events = rec.events.filter((e) => e.type === 'click');
    assert.deepEqual(
      events.map((e) => e.source),
      ['url_rules', 'message', 'message', 'message', 'url_at_rewrite'],
    );
  },
);
