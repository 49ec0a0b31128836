// Click-time redirects per second (DESIGN §4.6; target ≥ 5,000/s on the 2-core machine), next to a
// reference measured in the same run: a bare node:http server answering every request with a constant 302.
//   ./node_modules/.bin/node bench/clicktime.ts        BENCH_QUICK=1 for a short run
// Each server runs in its own child process and autocannon drives it from this one, so the load
// generator never shares the server's event loop.
// Reading the figures: on 2 cores the bare server is paced by autocannon (the load generator is the
// bottleneck, so the client is rarely idle when a reply arrives), while a server doing real work per
// request becomes the bottleneck and pays extra kernel time per reply (waking the idle client over
// loopback). Requests/s therefore falls faster than the added user-space work alone suggests; compare
// "server CPU µs/request" as well.
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { ClickTimeService } from '../src/clicktime/server.ts';
import { createClickKey } from '../src/clicktime/token.ts';

interface AutocannonHistogram {
  average: number;
  p50: number;
  p99: number;
  total: number;
}
interface AutocannonResult {
  requests: AutocannonHistogram;
  latency: AutocannonHistogram;
  duration: number;
  errors: number;
  timeouts: number;
  '1xx': number;
  '2xx': number;
  '3xx': number;
  '4xx': number;
  '5xx': number;
}
type Autocannon = (opts: {
  url: string;
  connections: number;
  duration: number;
  method?: string;
}) => Promise<AutocannonResult>;

// autocannon ships no type declarations: load it through require with the shape used here
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

export interface ClickTimeBenchFigures {
  /** what was loaded */
  name: string;
  /** the HTTP status every response had (302 for redirects, 200 for the warning page) */
  status: number;
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  /** responses with another status, socket errors and timeouts */
  failures: number;
  /** CPU seconds (user + system) the server process spent during the measured run */
  serverCpuSeconds: number;
  /** server CPU per answered request, microseconds (less sensitive to load-generator pacing) */
  serverCpuUsPerRequest: number;
  serverRssMb: number;
}

export interface ClickTimeBenchResult {
  connections: number;
  durationSeconds: number;
  /** GET /c/<token> with a clean verdict → 302 (the hot path) */
  clickTime: ClickTimeBenchFigures;
  /** GET /c/<token> with a suspicious verdict → 200 warning page (rendered per request) */
  warningPage: ClickTimeBenchFigures;
  /** bare node:http, constant 302 */
  reference: ClickTimeBenchFigures;
  /** clickTime.requestsPerSec / reference.requestsPerSec */
  ratioToReference: number;
}

type ServeMode = 'clean' | 'suspicious' | 'reference';

/** Child side: start one server, print `{ url }`, then answer "stats" lines with CPU/RSS figures. */
async function serve(mode: ServeMode): Promise<void> {
  let clicks = 0;
  let url: string;
  if (mode === 'reference') {
    const server = http.createServer((_req, res) => {
      res.writeHead(302, ['Location', 'https://example.com/landing?campaign=1', 'Content-Length', '0']);
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  } else {
    const verdict = mode === 'clean' ? 'clean' : 'suspicious';
    const service = new ClickTimeService({
      host: '127.0.0.1',
      port: 0,
      baseUrl: 'http://127.0.0.1:0',
      keys: [createClickKey()],
      branding: { productName: 'Breakwater', contactText: 'IT Service Desk' },
      verdictTimeoutMs: 2000,
      verdict: () => ({ verdict, ruleIds: [], reason: 'bench' }),
      onClick: () => {
        clicks++;
      },
    });
    await service.listen();
    url = service.wrap('https://example.com/landing?campaign=1', {
      mid: 123456,
      recipient: 'someone@example.net',
      reason: 'outbreak',
    });
  }
  process.stdout.write(JSON.stringify({ url }) + '\n');
  let mark = process.cpuUsage();
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === 'mark') mark = process.cpuUsage();
    else if (line === 'stats') {
      const cpu = process.cpuUsage(mark);
      process.stdout.write(
        JSON.stringify({
          cpuSeconds: (cpu.user + cpu.system) / 1e6,
          rssMb: process.memoryUsage().rss / 2 ** 20,
          clicks,
        }) + '\n',
      );
    }
  }
  process.exit(0);
}

class Child {
  private readonly proc: ChildProcess;
  private readonly lines: AsyncIterator<string>;

  constructor(mode: ServeMode) {
    this.proc = spawn(process.execPath, [import.meta.filename, '--serve', mode], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.lines = createInterface({ input: this.proc.stdout! })[Symbol.asyncIterator]();
  }

  async next(): Promise<Record<string, any>> {
    const r = await this.lines.next();
    if (r.done) throw new Error('bench server exited early');
    return JSON.parse(r.value) as Record<string, any>;
  }

  send(line: string): void {
    this.proc.stdin!.write(line + '\n');
  }

  async stop(): Promise<void> {
    const exited = new Promise((resolve) => this.proc.once('exit', resolve));
    this.proc.stdin!.end();
    await exited;
  }
}

async function measure(
  name: string,
  mode: ServeMode,
  expect: number,
  connections: number,
  duration: number,
): Promise<ClickTimeBenchFigures> {
  const child = new Child(mode);
  try {
    const { url } = (await child.next()) as { url: string };
    // warm up (JIT, connection setup), then measure
    await autocannon({ url, connections, duration: 1 });
    child.send('mark');
    const r = await autocannon({ url, connections, duration });
    child.send('stats');
    const stats = (await child.next()) as { cpuSeconds: number; rssMb: number };
    const bucket = `${Math.floor(expect / 100)}xx` as '2xx' | '3xx';
    const ok = r[bucket];
    return {
      name,
      status: expect,
      requestsPerSec: ok / r.duration,
      p50Ms: r.latency.p50,
      p99Ms: r.latency.p99,
      requests: ok,
      failures: r['1xx'] + r['2xx'] + r['3xx'] + r['4xx'] + r['5xx'] - ok + r.errors + r.timeouts,
      serverCpuSeconds: stats.cpuSeconds,
      serverCpuUsPerRequest: ok > 0 ? (stats.cpuSeconds * 1e6) / ok : 0,
      serverRssMb: stats.rssMb,
    };
  } finally {
    await child.stop();
  }
}

export async function runClickTimeBench(
  opts: { connections?: number; durationSeconds?: number } = {},
): Promise<ClickTimeBenchResult> {
  const connections = opts.connections ?? 50;
  const durationSeconds = opts.durationSeconds ?? 5;
  const clickTime = await measure('click-time GET /c/<token>, clean → 302', 'clean', 302, connections, durationSeconds);
  const warningPage = await measure(
    'click-time GET /c/<token>, suspicious → 200 warning page',
    'suspicious',
    200,
    connections,
    durationSeconds,
  );
  const reference = await measure('bare node:http, constant 302', 'reference', 302, connections, durationSeconds);
  return {
    connections,
    durationSeconds,
    clickTime,
    warningPage,
    reference,
    ratioToReference: clickTime.requestsPerSec / reference.requestsPerSec,
  };
}

const isMain = process.argv[1] !== undefined && path.resolve(process.argv[1]) === import.meta.filename;
if (isMain) {
  const i = process.argv.indexOf('--serve');
  if (i >= 0) await serve(process.argv[i + 1] as ServeMode);
  else {
    const quick = process.env.BENCH_QUICK === '1';
    const r = await runClickTimeBench({ durationSeconds: quick ? 2 : 5 });
    const f0 = (n: number) => n.toFixed(0);
    console.log(
      `Click-time service: autocannon, ${r.connections} connections, ${r.durationSeconds} s after 1 s warm-up; server in its own process`,
    );
    console.log(
      '| target | status | requests/s | p50 ms | p99 ms | failures | server CPU s | server CPU µs/request | server RSS MB |',
    );
    console.log('|---|---|---|---|---|---|---|---|---|');
    for (const f of [r.clickTime, r.warningPage, r.reference])
      console.log(
        `| ${f.name} | ${f.status} | ${f0(f.requestsPerSec)} | ${f.p50Ms} | ${f.p99Ms} | ${f.failures} | ${f.serverCpuSeconds.toFixed(1)} | ${f.serverCpuUsPerRequest.toFixed(1)} | ${f0(f.serverRssMb)} |`,
      );
    console.log(
      `\nredirects/s: ${f0(r.clickTime.requestsPerSec)} (target ≥ 5,000: ${r.clickTime.requestsPerSec >= 5000 ? 'met' : 'NOT MET'}), ${(r.ratioToReference * 100).toFixed(0)} % of the bare node:http reference`,
    );
  }
}
