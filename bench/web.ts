// The web UI (issue 13): the dashboard's first paint in headless Chromium with 100,000 messages of
// history (sign-in to both charts drawn), next to the dashboard's API calls alone and a raw SQL count
// over the same week in the same run; and the built app's JavaScript, gzipped.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import path from 'node:path';
import YAML from 'yaml';
import { chromium } from 'playwright-core';
import { validateConfig, type LoadedConfig } from '../src/config/load.ts';
import { runGateway } from '../src/gateway/run.ts';
import { Store } from '../src/store/db.ts';
import { WEB_DIR } from '../src/web/serve.ts';
import { tempDir } from '../test/helpers/peers.ts';
import { testConfig } from '../test/helpers/gateway.ts';

export interface WebBenchResult {
  messages: number;
  loads: number;
  firstPaint: { p50: number; p99: number };
  apiCalls: { p50: number; p99: number };
  rawSql: { p50: number; p99: number };
  bundleGzipKb: number;
}

const CHROMIUM = '/usr/bin/chromium';

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

export function hasChromium(): boolean {
  return existsSync(CHROMIUM) && existsSync(path.join(WEB_DIR, 'index.html'));
}

/** 100,000 finished messages over the last 7 days, written straight into a fresh store. */
function fillHistory(dataDir: string, n: number): void {
  const store = new Store(path.join(dataDir, 'breakwater.db'));
  const now = Date.now();
  const span = 7 * 86_400_000;
  const statuses = ['delivered', 'delivered', 'delivered', 'delivered', 'quarantined', 'bounced', 'dropped'];
  const ins = store.db.prepare(
    `insert into messages(mid, icid, spool_file, received_at, direction, listener, policy, sender, sender_ip, size, status, updated_at, done, subject, threat_level)
     values (?, ?, '', ?, 'incoming', 'incoming', 'default', ?, '10.0.0.1', 5000, ?, ?, 1, ?, ?)`,
  );
  store.db.exec('begin');
  for (let mid = 1; mid <= n; mid++) {
    const at = now - span + Math.floor((mid / n) * span);
    ins.run(
      mid,
      mid,
      at,
      `user${mid % 997}@sender.test`,
      statuses[mid % statuses.length],
      at,
      `report ${mid}`,
      mid % 6,
    );
  }
  store.db.exec('commit');
  store.db.close();
}

export async function runWebBench(quick: boolean): Promise<WebBenchResult> {
  const messages = quick ? 20_000 : 100_000;
  const loads = quick ? 5 : 20;
  const dir = tempDir('bw-bench-web-');
  const dataDir = path.join(dir, 'data');
  fillHistory(dataDir, messages);
  const doc = { dataDir: './data', ...testConfig() };
  const v = validateConfig(YAML.parse(YAML.stringify(doc)));
  if (!v.config) throw new Error(JSON.stringify(v.errors));
  const loaded: LoadedConfig = { config: v.config, file: path.join(dir, 'breakwater.yaml'), dataDir };
  const gw = await runGateway(loaded);
  const base = `http://127.0.0.1:${gw.adminPort}`;
  await gw.gateway.users.add('bench', 'analyst', 'a bench password');
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  const paint: number[] = [];
  const api: number[] = [];
  const sql: number[] = [];
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${base}/ui/`);
    await page.getByLabel('User name').fill('bench');
    await page.getByLabel('Password').fill('a bench password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    for (let i = 0; i < loads; i++) {
      // a real load each time (a hash change alone would not reload the app)
      await page.goto('about:blank');
      const t0 = performance.now();
      await page.goto(`${base}/ui/#/dashboard`);
      // both charts drawn (uPlot puts the canvas in once it has the data) and the cards filled
      await page.locator('.charts[data-ready="yes"] .chart canvas').nth(1).waitFor();
      await page.getByText('deferred').waitFor();
      // no card still says "…" (loading)
      await page.locator('.card', { hasText: '…' }).first().waitFor({ state: 'detached' });
      paint.push(performance.now() - t0);
    }
    const since = new Date(Date.now() - 86_400_000).toISOString();
    const auth = { authorization: `Bearer ${gw.token}` };
    for (let i = 0; i < loads; i++) {
      const t0 = performance.now();
      await Promise.all(
        [
          `/api/v1/reports/mail-flow?since=${since}`,
          `/api/v1/reports/outbreak?since=${since}`,
          '/api/v1/status',
          '/api/v1/outbreak/status',
          '/api/v1/alerts?limit=5',
          '/api/v1/quarantines',
        ].map((p) => fetch(base + p, { headers: auth }).then((r) => r.text())),
      );
      api.push(performance.now() - t0);
      const t1 = performance.now();
      gw.gateway.store.db
        .prepare('select status, count(*) from messages where received_at >= ? group by status')
        .all(Date.parse(since));
      sql.push(performance.now() - t1);
    }
  } finally {
    await browser.close();
    await gw.stop();
  }
  const assets = path.join(WEB_DIR, 'assets');
  const js = readdirSync(assets).filter((f) => f.endsWith('.js'));
  const bundleGzipKb = js.reduce((n, f) => n + gzipSync(readFileSync(path.join(assets, f))).length, 0) / 1024;
  return {
    messages,
    loads,
    firstPaint: { p50: pct(paint, 50), p99: pct(paint, 99) },
    apiCalls: { p50: pct(api, 50), p99: pct(api, 99) },
    rawSql: { p50: pct(sql, 50), p99: pct(sql, 99) },
    bundleGzipKb,
  };
}

export function printWebBench(r: WebBenchResult): void {
  console.log(
    `Web UI: dashboard first paint with ${r.messages.toLocaleString('en')} messages of history (headless Chromium, ${r.loads} loads; ms)`,
  );
  console.log('| what | p50 | p99 |');
  console.log('|---|---|---|');
  console.log(
    `| dashboard: navigation → both charts drawn, cards filled | ${r.firstPaint.p50.toFixed(0)} | ${r.firstPaint.p99.toFixed(0)} |`,
  );
  console.log(
    `| reference: the dashboard's six API calls alone | ${r.apiCalls.p50.toFixed(0)} | ${r.apiCalls.p99.toFixed(0)} |`,
  );
  console.log(
    `| reference: raw SQL count by status over the day | ${r.rawSql.p50.toFixed(1)} | ${r.rawSql.p99.toFixed(1)} |`,
  );
  console.log(`Built app JavaScript, gzipped: ${r.bundleGzipKb.toFixed(0)} KB (target < 500 KB)\n`);
}
