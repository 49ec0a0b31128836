// The web UI in a real browser (issue 13): headless Chromium (Debian's, driven by playwright-core) signs
// in as each role, opens every page it offers with no console error, finds a message sent over SMTP in
// tracking with its timeline, releases a held message from the quarantine page (it arrives at the sink),
// and renders a message whose Subject, From and attachment name carry script and event-handler markup
// as inert text. A helpdesk user sees quarantines only and gets 403 from the API for the rest.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import * as helpers from './helpers/browser.ts';
import { startTestGateway, testConfig } from './helpers/gateway.ts';
import { freePort, hasBinary, startSmtpSink, waitFor, type Sink } from './helpers/peers.ts';
import { writeRuleFeed } from './helpers/rules.ts';
import { sendMessage } from './helpers/rawsmtp.ts';
import { encryptedZip } from './helpers/clamd.ts';
import { UI_CSP } from '../src/web/serve.ts';

const skip = !helpers.hasChromium()
  ? `Chromium not installed at ${helpers.CHROMIUM}`
  : !hasBinary('smtp-sink')
    ? 'smtp-sink missing (run .ci/run)'
    : false;
const root = path.resolve(import.meta.dirname, '..');
const shots = path.join(root, 'test-artifacts', 'web-ui');
const PASSWORD = 'a long test password';
const XSS = `<script>alert('s')</script><img src=x onerror="alert('i')">`;

let gw: Awaited<ReturnType<typeof startTestGateway>>;
let sink: Sink;
let browser: Browser;
let base: string;
let heldMid: number;
let xssMid: number;
let htmlHeldMid: number;
let daveMid: number;

before(async () => {
  if (skip) return;
  helpers.ensureWebBuilt();
  mkdirSync(shots, { recursive: true });
  sink = await startSmtpSink({ dump: true });
  const feed = writeRuleFeed([
    {
      id: 'OUTBREAK_0000010',
      level: 4,
      category: 'phish',
      description: 'Account suspension lure',
      condition: { body: ['your account will be suspended'] },
    },
  ]);
  gw = await startTestGateway(
    testConfig({
      routes: { '*': [`smtp://127.0.0.1:${sink.port}`] },
      outbreakFilters: { adaptiveRules: false, ruleFeed: { dir: feed.dir, publicKey: feed.publicKey } },
      quarantine: { policy: [{ name: 'review', endUsers: 'release' }] },
      // dave's unscannable mail goes to a quarantine open to him
      policies: {
        incoming: [
          {
            name: 'dave',
            match: ['dave@dst.test'],
            unscannable: { mode: 'custom', action: 'quarantine', quarantine: 'review' },
          },
          { name: 'default' },
        ],
      },
      endUserQuarantine: { enabled: true },
      // checked against a DNS server that never answers: every result is temperror, shown on the page
      senderAuth: { enabled: true, dns: { servers: [`127.0.0.1:${await freePort()}`], timeout: '300ms', tries: 1 } },
    }),
  );
  await waitFor(() => gw.gateway.outbreak.bundle?.version === 1, 10_000, 'rule bundle');
  base = `http://127.0.0.1:${gw.adminPort}`;
  for (const role of ['admin', 'operator', 'analyst', 'helpdesk'])
    await gw.gateway.users.add(`${role}1`, role, PASSWORD);
  // a held phish, and a message whose visible fields are markup
  const held = await sendMessage(
    gw.port('incoming'),
    'mallory@evil.test',
    ['bob@dst.test'],
    'From: <mallory@evil.test>\r\nTo: bob@dst.test\r\nSubject: account notice\r\n\r\nyour account will be suspended today\r\n',
  );
  heldMid = held.mid!;
  const boundary = 'b1';
  const xss = await sendMessage(
    gw.port('incoming'),
    'eve@evil.test',
    ['bob@dst.test'],
    [
      `From: "${XSS}" <eve@evil.test>`,
      'To: bob@dst.test',
      `Subject: ${XSS} <a href="javascript:alert('j')">click</a>`,
      'MIME-Version: 1.0',
      `Content-Type: multipart/mixed; boundary="${boundary}"`,
      '',
      `--${boundary}`,
      'Content-Type: text/plain',
      '',
      'see https://example.test/ok',
      `--${boundary}`,
      `Content-Type: application/octet-stream; name="<img src=x onerror=alert('a')>.txt"`,
      `Content-Disposition: attachment; filename="<img src=x onerror=alert('a')>.txt"`,
      '',
      'hello',
      `--${boundary}--`,
      '',
    ].join('\r\n'),
  );
  xssMid = xss.mid!;
  // a held phish whose HTML tries to run script, load remote images and phone home
  const htmlHeld = await sendMessage(
    gw.port('incoming'),
    'mallory@evil.test',
    ['carol@dst.test'],
    [
      'From: <mallory@evil.test>',
      'To: carol@dst.test',
      'Subject: html notice',
      'MIME-Version: 1.0',
      'Content-Type: text/html; charset=utf-8',
      '',
      `<p>your account will be suspended</p><script>alert('html')</script>`,
      `<img src="http://198.51.100.7/track.gif" onerror="alert('img')"><a href="javascript:alert('link')">verify</a>`,
      `<iframe src="http://198.51.100.7/"></iframe><form action="http://198.51.100.7/"><input name=p></form>`,
      '',
    ].join('\r\n'),
  );
  htmlHeldMid = htmlHeld.mid!;
  // one for dave: a password-protected archive, held in a quarantine open to him
  const zip = encryptedZip('order.pdf', Buffer.from('%PDF-1.4 order'), 'pw').toString('base64');
  const forDave = await sendMessage(
    gw.port('incoming'),
    'newsletter@shop.test',
    ['dave@dst.test'],
    [
      'From: <newsletter@shop.test>',
      'To: dave@dst.test',
      `Subject: Your order ${XSS}`,
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="d1"',
      '',
      '--d1',
      'Content-Type: text/plain',
      '',
      'Your invoice is attached; pay within a week.',
      '--d1',
      'Content-Type: application/zip; name="order.zip"',
      'Content-Transfer-Encoding: base64',
      '',
      zip,
      '--d1--',
      '',
    ].join('\r\n'),
  );
  daveMid = forDave.mid!;
  await waitFor(() => gw.gateway.tracker.show(daveMid)?.status === 'quarantined', 15_000, "dave's message is held");
  await waitFor(() => gw.gateway.tracker.show(heldMid)?.status === 'quarantined', 15_000, 'the phish is held');
  await waitFor(() => gw.gateway.tracker.show(htmlHeldMid)?.status === 'quarantined', 15_000, 'the HTML phish is held');
  await waitFor(() => gw.gateway.tracker.show(xssMid)?.status === 'delivered', 15_000, 'the markup message');
  browser = await helpers.launchChromium();
});

after(async () => {
  await browser?.close();
  await gw?.stop();
  await sink?.stop();
});

/** A fresh page that fails the test on any console error, page error or dialog (alert = script ran). */
const openPage = () => helpers.openPage(browser);
const signIn = (page: Page, name: string) => helpers.signIn(page, base, name, PASSWORD);

const NAV: Record<string, string[]> = {
  admin: [
    'Dashboard',
    'Message tracking',
    'Quarantines',
    'Outbreak Filters',
    'Reports',
    'Alerts',
    'Cloud services',
    'Settings',
    'Users',
    'Audit log',
  ],
  operator: ['Dashboard', 'Message tracking', 'Quarantines', 'Outbreak Filters', 'Reports', 'Alerts', 'Cloud services'],
  analyst: ['Dashboard', 'Message tracking', 'Quarantines', 'Outbreak Filters', 'Reports', 'Alerts', 'Cloud services'],
  helpdesk: ['Quarantines'],
};

test('the UI is served under a strict content security policy, and / leads to it', { skip }, async () => {
  const r = await fetch(`${base}/`, { redirect: 'manual' });
  assert.equal(r.status, 302);
  assert.equal(r.headers.get('location'), '/ui/');
  const page = await fetch(`${base}/ui/`);
  assert.equal(page.status, 200);
  assert.equal(page.headers.get('content-security-policy'), UI_CSP);
  assert.doesNotMatch(await page.text(), /<script(?![^>]*\ssrc=)/i, 'no inline script');
});

test(
  'every role signs in and sees exactly its pages, each loading without a console error',
  { skip, timeout: 120_000 },
  async () => {
    for (const [role, pages] of Object.entries(NAV)) {
      const { page, problems } = await openPage();
      await signIn(page, `${role}1`);
      const nav = page.getByRole('navigation', { name: 'Pages' });
      assert.deepEqual(await nav.getByRole('link').allTextContents(), pages, `${role}'s pages`);
      for (const title of pages) {
        await nav.getByRole('link', { name: title }).click();
        await page.getByRole('heading', { level: 1, name: title }).waitFor();
        await page.waitForLoadState('networkidle');
        if (role === 'admin')
          await page.screenshot({
            path: path.join(shots, `${title.toLowerCase().replace(/ /g, '-')}.png`),
            fullPage: true,
          });
      }
      if (role === 'helpdesk') {
        // the API refuses what the navigation does not show
        const status = await page.evaluate(async () => (await fetch('/api/v1/tracking/messages?asked=1')).status);
        assert.equal(status, 403);
      }
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByRole('button', { name: 'Sign in' }).waitFor();
      // the refusal asked for above (and the browser's console line about it) is not a problem
      const unexpected = problems.filter(
        (p) => !p.includes('asked=1') && !(role === 'helpdesk' && p.includes('status of 403')),
      );
      assert.deepEqual(unexpected, [], `${role}: ${problems.join('\n')}`);
      await page.context().close();
    }
  },
);

test('a wrong password is refused with the reason, on the page', { skip }, async () => {
  const { page, problems } = await openPage();
  await page.goto(`${base}/ui/`);
  await page.getByLabel('User name').fill('analyst1');
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').getByText('wrong user name or password').waitFor();
  // the failed sign-in's 401 is the only console noise allowed
  assert.ok(
    problems.every((p) => /401/.test(p)),
    problems.join('\n'),
  );
  await page.context().close();
});

test(
  'a message sent over SMTP is found in tracking, with its timeline; markup in it stays text',
  { skip },
  async () => {
    const { page, problems } = await openPage();
    await signIn(page, 'analyst1');
    await page.goto(`${base}/ui/#/tracking`);
    await page.getByLabel('Envelope sender').fill('eve@evil.test');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByRole('link', { name: String(xssMid) }).click();
    await page.getByRole('heading', { name: `MID ${xssMid}:`, exact: false }).waitFor();
    const heading = await page.getByRole('heading', { level: 2 }).textContent();
    assert.ok(heading!.includes(`<script>alert('s')</script>`), `the subject shows as text: ${heading}`);
    const timeline = await page.getByRole('list').filter({ hasText: 'ingress.accepted' }).textContent();
    for (const event of ['ingress.accepted', 'verdict', 'delivery.delivered'])
      assert.ok(timeline!.includes(event), event);
    // what a mail administrator asks first: how it came in, whether it authenticated, how it left
    const facts = (await page.locator('dl').textContent())!;
    assert.match(facts, /Connectionlistener incoming · sender group loopback · TLS none/);
    assert.match(facts, /Sender authenticationspf=temperror · dkim=none · dmarc=\w+ · arc=\w+/);
    assert.match(facts, /Anti-spamnot scanned/);
    assert.match(
      facts,
      /bob@dst\.test\W* — delivered \(250[^)]*\) · TLS: none: peer does not offer STARTTLS/,
      'the TLS of the delivery attempt',
    );
    assert.ok(
      (await page.content()).includes("&lt;img src=x onerror=alert('a')&gt;.txt"),
      'the attachment name is escaped',
    );
    // nothing ran: no dialog, no element from the message's markup in the document
    assert.equal(await page.locator('img[src="x"]').count(), 0);
    assert.equal(await page.locator('a[href^="javascript:"]').count(), 0);
    await page.screenshot({ path: path.join(shots, 'message-timeline.png'), fullPage: true });
    assert.deepEqual(problems, []);
    await page.context().close();
  },
);

test(
  'a helpdesk user releases a held message from the quarantine page and it reaches the mailbox',
  { skip },
  async () => {
    const { page, problems } = await openPage();
    await signIn(page, 'helpdesk1');
    await page.getByRole('link', { name: 'outbreak' }).click();
    await page.getByRole('checkbox', { name: `select ${heldMid}` }).check();
    await page.getByRole('button', { name: /^Release/ }).click();
    await page.getByRole('status').getByText('release: 1 message(s)').waitFor();
    await waitFor(
      () => sink.messages().some((m) => m.body.includes('your account will be suspended')),
      15_000,
      'released into the sink',
    );
    await waitFor(() => gw.gateway.tracker.show(heldMid)?.status !== 'quarantined', 5_000, 'no longer held');
    const audit = await gw.gateway.audit.search({ user: 'helpdesk1', action: 'releaseQuarantinedMessages', limit: 5 });
    assert.equal(audit.length, 1, 'the release is audited with its user');
    assert.deepEqual(problems, []);
    await page.context().close();
  },
);

test('the settings form refuses an invalid value at its field and saves a valid one', { skip }, async () => {
  const { page, problems } = await openPage();
  await signIn(page, 'admin1');
  await page.getByRole('link', { name: 'Settings' }).click();
  await page.locator('summary', { hasText: /^smtp/ }).click();
  const field = page.getByLabel('dataMinRate', { exact: true });
  await field.fill('-5');
  await page.getByRole('alert').filter({ hasText: 'smtp.dataMinRate' }).waitFor();
  assert.equal(await page.getByRole('button', { name: /Review and save/ }).isDisabled(), true);
  await field.fill('700');
  await page.getByRole('button', { name: 'Review and save (1 change)' }).waitFor();
  await page.getByRole('button', { name: /Review and save/ }).click();
  const diff = page.getByRole('region', { name: 'Changes to save' });
  const row = diff.locator('tr', { hasText: 'smtp.dataMinRate' });
  await row.waitFor();
  assert.match((await row.textContent())!, /smtp\.dataMinRate.*500.*700|smtp\.dataMinRate.*null.*700/);
  await page.screenshot({ path: path.join(shots, 'settings.png'), fullPage: false });
  await diff.getByRole('button', { name: 'Save' }).click();
  await page.getByRole('status').filter({ hasText: 'apply them when you are ready' }).waitFor();
  // this gateway runs inside the test process, so the button's restart is refused (test/config-apply
  // drives it on a `breakwater start` child)
  await page.getByRole('button', { name: 'Apply now' }).waitFor();
  const { readFileSync } = await import('node:fs');
  const YAML = (await import('yaml')).default;
  assert.equal(YAML.parse(readFileSync(gw.gateway.configFile, 'utf8')).smtp.dataMinRate, 700);
  assert.deepEqual(problems, []);
  await page.context().close();
});

test(
  'a held message’s HTML is shown sanitised in a sandboxed frame: nothing runs, nothing remote loads',
  { skip },
  async () => {
    const { page, problems } = await openPage();
    const remote: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(base) && !r.url().startsWith('data:') && !r.url().startsWith('about:'))
        remote.push(r.url());
    });
    await signIn(page, 'helpdesk1');
    await page.getByRole('link', { name: 'outbreak' }).click();
    await page.getByRole('button', { name: String(htmlHeldMid), exact: true }).click();
    await page.getByText('Show the HTML part').click();
    const frame = page.locator('iframe.html-view');
    await frame.waitFor();
    assert.equal(await frame.getAttribute('sandbox'), '', 'scripts, forms and same-origin access are off');
    const inner = page.frameLocator('iframe.html-view');
    await inner.getByText('your account will be suspended').waitFor();
    const srcdoc = (await frame.getAttribute('srcdoc')) ?? '';
    for (const bad of ['<script', 'onerror', 'javascript:', '<iframe', '<form'])
      assert.ok(!srcdoc.toLowerCase().includes(bad), `sanitised: no ${bad}`);
    await page.getByText('1 remote image(s) or source(s) not loaded').waitFor();
    await page.waitForTimeout(500);
    assert.deepEqual(remote, [], 'no request left the gateway');
    // Chrome reports each inline handler the CSP refuses while the sanitiser parses the HTML (inertly: it
    // never runs); anything else, a dialog or a blocked load included, is a problem.
    const inlineRefused = 'Executing inline event handler violates the following Content Security Policy';
    assert.deepEqual(
      problems.filter((p) => !p.includes(inlineRefused)),
      [],
    );
    await page.screenshot({ path: path.join(shots, 'held-message.png'), fullPage: true });
    await page.context().close();
  },
);

test('reports: charts for the period and a CSV of each table', { skip }, async () => {
  const { page, problems } = await openPage();
  await signIn(page, 'analyst1');
  await page.getByRole('link', { name: 'Reports' }).click();
  await page.getByRole('heading', { name: 'Outbreak Filters', level: 2 }).waitFor();
  await page.getByRole('table', { name: 'outbreak-top-rules' }).waitFor();
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('table', { name: 'outbreak-top-rules' }).locator('xpath=preceding-sibling::a[1]').click(),
  ]);
  const { readFileSync } = await import('node:fs');
  const csv = readFileSync((await download.path())!, 'utf8');
  assert.match(csv, /^"ruleId","category","type","description","adaptive","level","messages"\r\n/);
  assert.match(csv, /"OUTBREAK_0000010","phish"/);
  await page.screenshot({ path: path.join(shots, 'reports.png'), fullPage: true });
  assert.deepEqual(problems, []);
  await page.context().close();
});

test(
  'a recipient opens the link of their digest, reads a held message safely, allow-lists its sender and releases it',
  { skip },
  async () => {
    const { page, problems } = await openPage();
    const eu = gw.gateway.endUsers;
    await page.goto(eu.linkUrl(base, eu.signLink('dave@dst.test'), daveMid));
    await page.getByRole('heading', { name: 'Messages held for you' }).waitFor();
    // the token left the address bar; the message the link named is open
    assert.doesNotMatch(page.url(), /t=/);
    await page.getByRole('region', { name: 'Message' }).getByText('pay within a week').waitFor();
    await page.getByRole('cell', { name: 'order.zip' }).waitFor();
    const row = page.locator(`tr[data-mid="${daveMid}"]`);
    assert.match(await row.innerText(), /Your order <script>/, 'markup in the subject is text');
    await row.getByRole('button', { name: 'allow' }).click();
    await page.getByRole('status').getByText('newsletter@shop.test is on your allow list').waitFor();
    await page.getByRole('listitem').getByText('newsletter@shop.test').waitFor();
    await page.screenshot({ path: path.join(shots, 'my-quarantine.png'), fullPage: true });
    await row.getByRole('checkbox').check();
    await page.getByRole('button', { name: 'Release', exact: true }).click();
    await page.getByRole('status').getByText('Released 1 of 1 message(s)').waitFor();
    await page.getByText('No messages are held for you.').waitFor();
    await waitFor(
      () => sink.messages().some((m) => m.rcptTo.includes('dave@dst.test') && m.body.includes('pay within a week')),
      15_000,
      "dave's message at the sink",
    );
    const audit = await gw.gateway.audit.search({ user: 'enduser:dave@dst.test', limit: 10 });
    assert.deepEqual(audit.map((a) => a.action).sort(), [
      'allowEndUserSender',
      'endUserLogin',
      'releaseEndUserMessages',
    ]);
    assert.deepEqual(problems, []);
    await page.context().close();
  },
);

test(
  'the keyboard alone signs in, reaches a page through the navigation and acts on a held message',
  { skip },
  async () => {
    const { page, problems } = await openPage();
    await page.goto(`${base}/`);
    await page.getByLabel('User name').waitFor();
    // the name field has the focus on arrival; Tab leads to the password; Enter submits
    await page.keyboard.type('operator1');
    await page.keyboard.press('Tab');
    await page.keyboard.type(PASSWORD);
    await page.keyboard.press('Enter');
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    // Tab until the navigation's Quarantines link has the focus, then Enter
    let reached = false;
    for (let i = 0; i < 20 && !reached; i++) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate("document.activeElement?.textContent === 'Quarantines'");
    }
    assert.ok(reached, 'the Quarantines link is reachable with Tab');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Quarantines' }).waitFor();
    // the focused element is visibly marked
    const outline = await page.evaluate('getComputedStyle(document.activeElement).outlineStyle');
    assert.notEqual(outline, 'none', 'focus is visible');
    // a quarantine's link, then a message's checkbox, by keyboard
    await page.getByRole('link', { name: 'outbreak', exact: true }).focus();
    await page.keyboard.press('Enter');
    const box = page.getByRole('checkbox', { name: `select ${htmlHeldMid}` });
    await box.focus();
    await page.keyboard.press('Space');
    assert.equal(await box.isChecked(), true, 'Space checks a message');
    assert.deepEqual(problems, []);
    await page.context().close();
  },
);
