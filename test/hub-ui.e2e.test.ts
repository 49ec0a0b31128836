// The hub's pages in a real browser (issue 13): the same app as a gateway's, served by the hub, showing
// the hub's pages by role — gateways with their status, registration tokens, cross-gateway search and
// response actions — with no console error. A real gateway registers and streams a message sent to it
// over SMTP; the search finds it by sender and pivots on its IP; an analyst sees no tokens or users and
// gets 403 from the API for them. On the gateway, the Cloud services page shows the registration and
// observables pivot to the hub's search.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import type { Browser, Page } from 'playwright-core';
import * as helpers from './helpers/browser.ts';
import { loadHubConfig } from '../src/hub/config.ts';
import { runHub, type RunningHub } from '../src/hub/run.ts';
import { startTestGateway, testConfig } from './helpers/gateway.ts';
import { tempDir, waitFor } from './helpers/peers.ts';
import { sendMessage } from './helpers/rawsmtp.ts';

const skip = helpers.hasChromium() ? false : `Chromium not installed at ${helpers.CHROMIUM}`;
const root = path.resolve(import.meta.dirname, '..');
const shots = path.join(root, 'test-artifacts', 'web-ui');
const PASSWORD = 'a long test password';

let hub: RunningHub;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
let browser: Browser;

before(async () => {
  if (skip) return;
  helpers.ensureWebBuilt();
  mkdirSync(shots, { recursive: true });
  const dir = tempDir('bw-hub-ui-');
  const file = path.join(dir, 'hub.yaml');
  writeFileSync(file, YAML.stringify({ dataDir: './data', listen: { host: '127.0.0.1', port: 0 } }));
  hub = await runHub(loadHubConfig(file));
  for (const role of ['admin', 'analyst', 'helpdesk']) await hub.users.add(`${role}1`, role, PASSWORD);
  gw = await startTestGateway(
    testConfig({
      routes: { '*': ['file:delivered'] },
      cloud: { enabled: true, region: 'eu', regions: { eu: hub.url }, stream: { interval: '100ms' } },
    }),
  );
  await gw.gateway.users.add('gwadmin', 'admin', PASSWORD);
  const token = (await (
    await fetch(`${hub.url}/api/v1/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${hub.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ region: 'eu' }),
    })
  ).json()) as { token: string };
  const reg = await gw.gateway.cloud.register(token.token);
  assert.equal(reg.status, 'registered', JSON.stringify(reg));
  const sent = await sendMessage(
    gw.port('outgoing'),
    'mallory@evil.test',
    ['bob@partner.test'],
    'From: <mallory@evil.test>\r\nTo: bob@partner.test\r\nSubject: quarterly <b>numbers</b>\r\nMessage-ID: <hubui@evil.test>\r\n\r\nsee attached\r\n',
  );
  await waitFor(
    () =>
      hub.store.search('email', 'mallory@evil.test', 5).some((m) => m.summary.mid === sent.mid) ? true : undefined,
    20_000,
    'the message streamed to the hub',
  );
  browser = await helpers.launchChromium();
});

after(async () => {
  await browser?.close();
  await gw?.stop();
  await hub?.stop();
});

const openPage = () => helpers.openPage(browser);
const signIn = (page: Page, base: string, name: string) => helpers.signIn(page, base, name, PASSWORD);

test(
  'an administrator on the hub: gateways, a registration token, cross-gateway search with pivots',
  { skip, timeout: 120_000 },
  async () => {
    const { page, problems } = await openPage();
    await signIn(page, hub.url, 'admin1');
    assert.equal(await page.locator('.brand').innerText(), 'Breakwater hub');
    const nav = page.getByRole('navigation', { name: 'Pages' });
    assert.deepEqual(await nav.getByRole('link').allTextContents(), [
      'Investigate',
      'Casebooks',
      'Watchlist and tickets',
      'Gateways',
      'Search every gateway',
      'Reports',
      'Outbreak rules',
      'Block list',
      'Response actions',
      'Registration tokens',
      'Users',
      'Audit log',
    ]);
    // the gateway, online, with its message count
    await nav.getByRole('link', { name: 'Gateways' }).click();
    const devices = page.getByRole('table', { name: 'devices' });
    await devices.getByText('online').waitFor();
    assert.match(await devices.innerText(), /gw\.test/);
    // a registration token, shown once; the list shows it unused (never the token)
    await nav.getByRole('link', { name: 'Registration tokens' }).click();
    await page.getByRole('button', { name: 'Create a registration token' }).click();
    const shown = await page.getByRole('status').locator('code').first().innerText();
    assert.match(shown, /^[0-9a-f]{32}$/);
    await page.getByRole('table', { name: 'tokens' }).getByText('unused').waitFor();
    assert.doesNotMatch(await page.getByRole('table', { name: 'tokens' }).innerText(), new RegExp(shown));
    // search every gateway by sender; the subject's markup stays text; pivot on the sending IP
    await nav.getByRole('link', { name: 'Search every gateway' }).click();
    await page.getByLabel('Value').fill('mallory@evil.test');
    await page.getByRole('button', { name: 'Search' }).click();
    const results = page.getByRole('table', { name: 'messages across gateways' });
    await results.getByText('quarterly <b>numbers</b>').waitFor();
    assert.match(await page.getByRole('status').innerText(), /1 message\(s\) .* on 1 gateway\(s\)/);
    await page.screenshot({ path: path.join(shots, 'hub-search.png'), fullPage: true });
    await results.getByRole('link', { name: '127.0.0.1' }).click();
    await page
      .getByRole('status')
      .getByText(/IP address “127\.0\.0\.1”/)
      .waitFor();
    // draft a rule and publish it from the page: the gateway has it at once
    await nav.getByRole('link', { name: 'Outbreak rules' }).click();
    await page.getByLabel('Description').fill('quarterly numbers lure');
    await page.getByLabel('Condition (JSON)').fill('{ "subject": ["quarterly"] }');
    await page.getByRole('button', { name: 'Draft' }).click();
    await page.getByRole('status').getByText('drafted').waitFor();
    await page.getByRole('button', { name: 'Publish' }).click();
    await page
      .getByRole('status')
      .getByText(/bundle version 1 \(1 rules\) is on its way/)
      .waitFor();
    await waitFor(() => (gw.gateway.outbreak.bundle?.version === 1 ? true : undefined), 15_000, 'the gateway has it');
    await page.screenshot({ path: path.join(shots, 'hub-rules.png'), fullPage: true });
    await page.getByRole('button', { name: 'Retire' }).click();
    await page
      .getByRole('status')
      .getByText(/bundle version 2 \(0 rules\)/)
      .waitFor();
    // block a sender on every gateway from the page (this hub needs no second approval)
    await nav.getByRole('link', { name: 'Block list' }).click();
    await page.getByLabel('Address or domain').fill('mallory@evil.test');
    await page.getByLabel('Reason').fill('seen in the investigation');
    await page.getByRole('button', { name: 'Block', exact: true }).click();
    await page.getByRole('status').getByText('block: mallory@evil.test is active').waitFor();
    await page.getByRole('table', { name: 'block list' }).getByText('seen in the investigation').waitFor();
    await gw.gateway.hubBlockList.fetch();
    assert.ok(gw.gateway.hubBlockList.blocked('mallory@evil.test', 'incoming'), 'the gateway applies it');
    await page.getByRole('button', { name: 'Unblock' }).click();
    await page.getByRole('status').getByText('unblock: mallory@evil.test is removed').waitFor();
    // reports across gateways: the gateway's message is counted, charts drawn
    await nav.getByRole('link', { name: 'Reports' }).click();
    await page.getByText(/1 messages on 1 gateway\(s\)/).waitFor();
    await page.getByRole('table', { name: 'hub-gateways' }).getByText('gw.test').waitFor();
    assert.equal((await page.locator('.chart canvas').count()) >= 2, true, 'two charts');
    for (const title of ['Response actions', 'Users', 'Audit log']) {
      await nav.getByRole('link', { name: title }).click();
      await page.getByRole('heading', { level: 1, name: title }).waitFor();
      await page.waitForLoadState('networkidle');
    }
    assert.deepEqual(problems, []);
    await page.context().close();
  },
);

test(
  'an analyst pastes an alert into Investigate: sightings, a judgement, the graph; a node investigates further',
  { skip, timeout: 60_000 },
  async () => {
    const { page, problems } = await openPage();
    await signIn(page, hub.url, 'analyst1');
    await page.getByRole('heading', { level: 1, name: 'Investigate' }).waitFor();
    await page
      .getByRole('textbox')
      .fill('SOC alert: mail from mallory@evil.test (Message-ID <hubui@evil.test>) to bob@partner.test\nmd5: 0123');
    await page.getByRole('button', { name: 'Investigate' }).click();
    const table = page.getByRole('table', { name: 'observables' });
    await table.getByText('mallory@evil.test').waitFor();
    const row = table.locator('tr', { hasText: 'mallory@evil.test' });
    assert.match(await row.innerText(), /no threat found\s+1\s+gw\.test \(1\)/);
    assert.match(await page.getByRole('list', { name: 'not investigated' }).innerText(), /md5: 0123/);
    // the graph is drawn (cytoscape, loaded for this page only)
    await page.locator('.graph-canvas[data-ready="true"]').waitFor();
    assert.ok((await page.locator('.graph-canvas canvas').count()) > 0, 'the graph draws on a canvas');
    await page.screenshot({ path: path.join(shots, 'hub-investigate.png'), fullPage: true });
    // a node investigates further (the keyboard way: the node list)
    await page.getByText(/Every node \(\d+\)/).click();
    await page.getByRole('button', { name: 'ip:127.0.0.1' }).click();
    await table.getByText('127.0.0.1').waitFor();
    assert.match(page.url(), /#\/investigate\?q=ip/);
    // watch the IP: it shows on the watchlist
    await page.getByRole('button', { name: 'watch ip 127.0.0.1' }).click();
    await page.getByText('watched').waitFor();
    // keep it as a casebook, then export it as STIX 2.1
    await page.getByLabel('Casebook title').fill('Mallory from loopback');
    await page.getByLabel('Notes').fill('seen during the UI test');
    await page.getByRole('button', { name: 'Save as casebook' }).click();
    await page.getByRole('heading', { level: 2, name: 'Mallory from loopback' }).waitFor();
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Export as STIX 2.1' }).click(),
    ]);
    const { readFileSync } = await import('node:fs');
    const bundle = JSON.parse(readFileSync((await download.path())!, 'utf8'));
    assert.equal(bundle.type, 'bundle');
    assert.ok(
      bundle.objects.some((o: any) => o.type === 'indicator' && o.pattern === "[ipv4-addr:value = '127.0.0.1']"),
    );
    assert.deepEqual(problems, []);
    await page.context().close();
  },
);

test(
  'an analyst on the hub sees no tokens or users, and the API refuses them; helpdesk sees nothing',
  { skip },
  async () => {
    const { page, problems } = await openPage();
    await signIn(page, hub.url, 'analyst1');
    const nav = page.getByRole('navigation', { name: 'Pages' });
    assert.deepEqual(await nav.getByRole('link').allTextContents(), [
      'Investigate',
      'Casebooks',
      'Watchlist and tickets',
      'Gateways',
      'Search every gateway',
      'Reports',
      'Outbreak rules',
      'Block list',
      'Response actions',
    ]);
    await page.waitForLoadState('networkidle');
    assert.deepEqual(problems, []);
    const refused = await page.evaluate(async () => (await fetch('/api/v1/tokens')).status);
    assert.equal(refused, 403);
    await page.context().close();
    const help = await openPage();
    await signIn(help.page, hub.url, 'helpdesk1');
    await help.page.getByText('The helpdesk role has nothing to see here.').waitFor();
    assert.deepEqual(help.problems, []);
    await help.page.context().close();
  },
);

test("the gateway's Cloud services page shows the registration; observables pivot to the hub", { skip }, async () => {
  const { page, problems } = await openPage();
  const base = `http://127.0.0.1:${gw.adminPort}`;
  await signIn(page, base, 'gwadmin');
  await page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: 'Cloud services' }).click();
  const table = page.getByRole('table', { name: 'registration' });
  await table.getByText('registered', { exact: true }).waitFor();
  assert.match(await table.innerText(), new RegExp(hub.url.replace(/[.:/]/g, '\\$&')));
  assert.equal(await table.getByRole('link', { name: 'open the hub' }).getAttribute('href'), `${hub.url}/ui/`);
  await page.getByRole('button', { name: 'Deregister' }).waitFor();
  // tracking: the sender's pivot menu offers the hub's search
  await page.goto(`${base}/ui/#/tracking?sender=mallory%40evil.test`);
  await page.getByRole('button', { name: 'pivot on mallory@evil.test' }).first().click();
  const link = page.getByRole('menuitem', { name: 'Investigate on the hub' });
  assert.equal(await link.getAttribute('href'), `${hub.url}/ui/#/search?type=email&value=mallory%40evil.test`);
  assert.deepEqual(problems, []);
  await page.context().close();
});
