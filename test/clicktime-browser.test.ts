// Click-time pages in a real browser (Chromium through playwright-core): the warning page names the real
// destination and "Continue" lands on it; the block page offers no way there. Screenshots go to
// test-artifacts/ for a human look.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { ClickTimeService, type ClickRecord, type UrlVerdict } from '../src/clicktime/server.ts';
import { createClickKey } from '../src/clicktime/token.ts';

const CHROMIUM = '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? false : `Chromium not installed at ${CHROMIUM}`;
const artifacts = path.join(import.meta.dirname, '..', 'test-artifacts');

let browser: Browser;
let destination: http.Server;
let destBase: string;

before(async () => {
  if (skip) return;
  mkdirSync(artifacts, { recursive: true });
  // the "real destination" the protected link points to
  destination = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(
      `<!doctype html><html lang="en"><title>Destination</title><h1>Welcome to the destination</h1><p>${req.method} ${req.url}</p></html>`,
    );
  });
  await new Promise<void>((resolve) => destination.listen(0, '127.0.0.1', resolve));
  destBase = `http://127.0.0.1:${(destination.address() as AddressInfo).port}`;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

after(async () => {
  if (skip) return;
  await browser?.close();
  destination?.closeAllConnections();
  await new Promise((resolve) => destination?.close(resolve));
});

async function service(verdict: UrlVerdict) {
  const clicks: ClickRecord[] = [];
  const s = new ClickTimeService({
    host: '127.0.0.1',
    port: 0,
    baseUrl: 'http://127.0.0.1:0',
    keys: [createClickKey()],
    branding: {
      productName: 'Breakwater',
      contactText: 'IT Service Desk (ext. 4357)',
      contactUrl: 'mailto:it@example.com',
    },
    verdictTimeoutMs: 2000,
    verdict: () => verdict,
    onClick: (c) => clicks.push(c),
  });
  await s.listen();
  return { s, clicks };
}

test('a suspicious link shows a warning naming the destination, and Continue lands there', { skip }, async (t) => {
  const { s, clicks } = await service({
    verdict: 'suspicious',
    ruleIds: ['ADAPTIVE_IP_HOST'],
    reason: 'The link points to a bare IP address instead of a domain name, a common trick of phishing sites.',
  });
  t.after(() => s.close());
  const destUrl = `${destBase}/account/verify?user=bob&ref=mail`;
  const link = s.wrap(destUrl, { mid: 1234, recipient: 'bob@example.net', reason: 'outbreak' });
  const page = await browser.newPage({ viewport: { width: 1024, height: 900 } });
  t.after(() => page.close());
  const response = await page.goto(link);
  assert.equal(response?.status(), 200);
  assert.equal(page.url(), link, 'the warning page is shown at the link itself, not after a redirect');

  // the real destination is named: host and the full URL are visible
  const host = new URL(destUrl).host;
  await page.getByText(host, { exact: false }).first().waitFor({ state: 'visible' });
  assert.equal(await page.locator('.host').innerText(), host);
  assert.equal(await page.locator('code.url').innerText(), destUrl);
  assert.ok(await page.locator('code.url').isVisible());

  // accessibility basics: one h1, a lang, the actions reachable by role and name
  assert.equal(await page.locator('html').getAttribute('lang'), 'en');
  assert.equal(await page.getByRole('heading', { level: 1 }).count(), 1);
  assert.match(await page.getByRole('heading', { level: 1 }).innerText(), /may not be safe/i);
  const cont = page.getByRole('button', { name: /continue/i });
  assert.equal(await cont.count(), 1);
  assert.equal(await cont.innerText(), `Continue to ${host}`);
  assert.ok(await page.getByRole('link', { name: /go back/i }).isVisible());
  assert.ok(await page.getByRole('main').isVisible());

  await page.screenshot({ path: path.join(artifacts, 'clicktime-warning.png'), fullPage: true });
  // a narrow (phone) layout too
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: path.join(artifacts, 'clicktime-warning-mobile.png'), fullPage: true });
  await page.setViewportSize({ width: 1024, height: 900 });

  assert.deepEqual(
    clicks.map((c) => c.action),
    ['warned'],
  );
  await Promise.all([page.waitForURL(`${destBase}/**`), cont.click()]);
  assert.equal(page.url(), destUrl);
  assert.equal(await page.getByRole('heading', { level: 1 }).innerText(), 'Welcome to the destination');
  assert.deepEqual(
    clicks.map((c) => `${c.verdict}/${c.action}`),
    ['suspicious/warned', 'suspicious/continued'],
  );
  assert.equal(clicks[1].mid, 1234);
  assert.equal(clicks[1].recipient, 'bob@example.net');
  assert.equal(clicks[1].url, destUrl);
  assert.match(clicks[1].userAgent, /Chrome/);
});

test('Go back on the warning page leaves the destination unopened', { skip }, async (t) => {
  const { s, clicks } = await service({ verdict: 'suspicious', ruleIds: [], reason: 'Unusual link' });
  t.after(() => s.close());
  const page = await browser.newPage();
  t.after(() => page.close());
  await page.goto(s.wrap(`${destBase}/x`, { mid: 1, recipient: '', reason: 'outbreak' }));
  await Promise.all([page.waitForURL(`${s.baseUrl}/back`), page.getByRole('link', { name: /go back/i }).click()]);
  assert.match(await page.getByRole('heading', { level: 1 }).innerText(), /not opened/i);
  assert.deepEqual(
    clicks.map((c) => c.action),
    ['warned'],
  );
});

test('a malicious link shows a block page with no link or button to the destination', { skip }, async (t) => {
  const { s, clicks } = await service({
    verdict: 'malicious',
    ruleIds: ['OUTBREAK_0001234'],
    reason: 'This site is part of an active phishing campaign that imitates a bank login page.',
  });
  t.after(() => s.close());
  const destUrl = `${destBase}/secure-login/bank?session=8f2a`;
  const page = await browser.newPage({ viewport: { width: 1024, height: 900 } });
  t.after(() => page.close());
  const response = await page.goto(s.wrap(destUrl, { mid: 77, recipient: 'eve@example.net', reason: 'outbreak' }));
  assert.equal(response?.status(), 403);
  assert.match(await page.getByRole('heading', { level: 1 }).innerText(), /blocked/i);
  const host = new URL(destUrl).host;
  assert.equal(await page.locator('.host').innerText(), host);
  // nothing leads to the destination
  const hrefs = await page.locator('a').evaluateAll((as) => as.map((a) => (a as unknown as { href: string }).href));
  assert.ok(
    hrefs.every((h) => !h.startsWith(destBase)),
    `links: ${hrefs.join(', ')}`,
  );
  assert.equal(await page.locator('form').count(), 0);
  assert.equal(await page.getByRole('button').count(), 0);
  assert.equal(await page.getByRole('button', { name: /continue/i }).count(), 0);
  await page.screenshot({ path: path.join(artifacts, 'clicktime-block.png'), fullPage: true });
  assert.deepEqual(
    clicks.map((c) => `${c.verdict}/${c.action}`),
    ['malicious/blocked'],
  );
});

test('an altered link shows the invalid-link page and does not navigate away', { skip }, async (t) => {
  const { s, clicks } = await service({ verdict: 'clean', ruleIds: [], reason: '' });
  t.after(() => s.close());
  const link = s.wrap(`${destBase}/y`, { mid: 1, recipient: '', reason: 'outbreak' });
  // one character of the signature changed (never to itself)
  const altered = link.slice(0, -3) + (link.at(-3) === 'A' ? 'B' : 'A') + link.slice(-2);
  const page = await browser.newPage({ viewport: { width: 1024, height: 700 } });
  t.after(() => page.close());
  const response = await page.goto(altered);
  assert.equal(response?.status(), 400);
  assert.equal(page.url(), altered);
  assert.match(await page.getByRole('heading', { level: 1 }).innerText(), /not valid/i);
  await page.screenshot({ path: path.join(artifacts, 'clicktime-invalid.png'), fullPage: true });
  // and a clean link goes straight through
  await page.goto(link);
  assert.equal(page.url(), `${destBase}/y`);
  assert.deepEqual(
    clicks.map((c) => c.action),
    ['invalid', 'redirected'],
  );
});

/** WCAG contrast ratio of each element's text against the first opaque background behind it. */
async function contrasts(
  page: import('playwright-core').Page,
  selector: string,
): Promise<Array<{ text: string; ratio: number }>> {
  return page.locator(selector).evaluateAll((els) => {
    // runs in the page (no DOM types in this project's tsconfig)
    const getComputedStyle = (globalThis as any).getComputedStyle as (el: unknown) => {
      color: string;
      backgroundColor: string;
    };
    const rgb = (s: string) => (s.match(/[\d.]+/g) ?? []).map(Number);
    const lum = ([r, g, b]: number[]) => {
      const f = (c: number) => {
        const v = c / 255;
        return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    return els.map((el) => {
      let bg: number[] = [255, 255, 255];
      for (let n: any = el; n; n = n.parentElement) {
        const c = rgb(getComputedStyle(n).backgroundColor);
        if (c.length === 3 || (c.length === 4 && c[3] === 1)) {
          bg = c.slice(0, 3);
          break;
        }
      }
      const fg = rgb(getComputedStyle(el).color).slice(0, 3);
      const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
      return { text: (el as unknown as { innerText: string }).innerText.slice(0, 40), ratio: (a + 0.05) / (b + 0.05) };
    });
  });
}

test(
  'text on the warning page meets WCAG AA contrast, in light and dark mode, and a look-alike host is spelled out',
  { skip },
  async (t) => {
    const { s } = await service({
      verdict: 'suspicious',
      ruleIds: ['ADAPTIVE_PUNYCODE_BRAND', 'ADAPTIVE_USERINFO'],
      reason: 'The address imitates a well-known brand with look-alike characters.',
    });
    t.after(() => s.close());
    const page = await browser.newPage({ viewport: { width: 1024, height: 900 } });
    t.after(() => page.close());
    // the warning page itself needs no network access to the destination
    await page.goto(
      s.wrap('https://microsoft.com@login.xn--mcrosoft-j9a.example/common/oauth2/authorize?client_id=4765445b', {
        mid: 981,
        recipient: 'bob@example.net',
        reason: 'outbreak',
      }),
    );
    assert.equal(await page.locator('.host').innerText(), 'login.xn--mcrosoft-j9a.example');
    assert.equal(await page.locator('.host strong').innerText(), 'xn--mcrosoft-j9a.example');
    await page.getByText('which can make it look like a different site').waitFor();
    await page.getByText('international characters').waitFor();
    await page.locator('details summary').click();
    await page.screenshot({ path: path.join(artifacts, 'clicktime-warning-lookalike.png'), fullPage: true });
    const selector = 'h1, h2, p, li, .host, code.url, .btn, summary, dt, dd, .banner span, .product, footer a';
    for (const scheme of ['light', 'dark'] as const) {
      await page.emulateMedia({ colorScheme: scheme });
      const measured = await contrasts(page, selector);
      assert.ok(measured.length > 15, `only ${measured.length} elements measured`);
      for (const c of measured) assert.ok(c.ratio >= 4.5, `${scheme}: "${c.text}" has contrast ${c.ratio.toFixed(2)}`);
    }
    await page.screenshot({ path: path.join(artifacts, 'clicktime-warning-dark.png'), fullPage: true });
  },
);
