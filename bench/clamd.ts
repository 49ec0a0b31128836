// clamd INSTREAM throughput through ClamdClient (IDSESSION reuse, at most 4 connections), next to a
// reference measured in the same run: a minimal one-connection-per-scan INSTREAM written inline here
// (the "raw clamd" figure, as in docs' environment reference A.6).
//   ./node_modules/.bin/node bench/clamd.ts        BENCH_QUICK=1 for a short run
// The clamd is the test one (test/helpers/clamd.ts): 3 custom signatures, so these figures are the
// protocol + unpacking floor, not the speed of clamd with the official ~1 GB database.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ClamdClient, type ScanResult } from '../src/antivirus/clamd.ts';
import { hasClamd, startClamd } from '../test/helpers/clamd.ts';
import { makeMessages } from './messages.ts';
import { Readable } from 'node:stream';
import { validateConfig } from '../src/config/load.ts';
import type { Config } from '../src/config/schema.ts';
import { antivirusStage } from '../src/pipeline/stages/antivirus.ts';
import type { StageContext } from '../src/pipeline/stage.ts';

/** A minimal gateway config whose default policy scans with clamd (the stage's own settings lookup). */
function stageConfig(port: number): Config {
  const v = validateConfig({
    listeners: [
      {
        name: 'in',
        port: 0,
        direction: 'incoming',
        acceptDomains: ['x.test'],
        hat: [{ name: 'all', match: ['ALL'], action: 'accept' }],
      },
    ],
    antivirus: { clamd: { host: '127.0.0.1', port }, maxScanSize: '50MiB' },
  });
  if (!v.config) throw new Error(JSON.stringify(v.errors));
  return v.config;
}

export interface ClamdBenchFigure {
  msgPerSec: number;
  mbPerSec: number;
  /** connections opened during the measurement */
  connections: number;
  /** scans that did not come back clean */
  failures: number;
}

export interface ClamdBenchRow {
  message: string;
  bytes: number;
  concurrency: number;
  client: ClamdBenchFigure;
  /** the pipeline's antivirus stage (policy lookup, scan, verdict) over the same client */
  stage: ClamdBenchFigure;
  raw: ClamdBenchFigure;
}

export interface ClamdBenchResult {
  clamd: string;
  rows: ClamdBenchRow[];
}

const CONCURRENCY = 4;

/** The reference: one connection per scan, 64 KiB chunks, no timeout, no pooling. */
function rawScan(port: number, buf: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const out: Buffer[] = [];
    s.on('connect', () => {
      s.write('zINSTREAM\0');
      for (let i = 0; i < buf.length; i += 65536) {
        const c = buf.subarray(i, i + 65536);
        const h = Buffer.alloc(4);
        h.writeUInt32BE(c.length);
        s.write(h);
        s.write(c);
      }
      s.end(Buffer.alloc(4));
    });
    s.on('data', (d) => out.push(d));
    s.on('error', (e) => resolve(`error ${e.message}`));
    s.on('close', () => resolve(Buffer.concat(out).toString().replace(/\0$/, '')));
  });
}

async function drive(
  ms: number,
  scanOne: () => Promise<boolean>,
): Promise<{ n: number; failures: number; seconds: number }> {
  const t0 = performance.now();
  const end = t0 + ms;
  let n = 0;
  let failures = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        if (!(await scanOne())) failures++;
        n++;
      }
    }),
  );
  return { n, failures, seconds: (performance.now() - t0) / 1000 };
}

export async function runClamdBench(opts: { quick?: boolean } = {}): Promise<ClamdBenchResult> {
  const quick = opts.quick ?? process.env.BENCH_QUICK === '1';
  const ms = quick ? 1000 : 3000;
  const clamd = await startClamd({ streamMaxLength: 50 * 1024 * 1024 });
  const rows: ClamdBenchRow[] = [];
  let version = '';
  try {
    const messages = (await makeMessages()).map((m) => ({ ...m, buf: readFileSync(m.file) }));
    for (const m of messages) {
      const client = new ClamdClient({
        target: { host: '127.0.0.1', port: clamd.port },
        timeoutMs: 30_000,
        maxStreamBytes: 50 * 1024 * 1024,
        maxConnections: CONCURRENCY,
      });
      version ||= (await client.version()).raw;
      const viaClient = async () => ((await client.scan(m.buf)) as ScanResult).verdict === 'clean';
      const stage = antivirusStage(stageConfig(clamd.port), { clamd: client, signatureVersion: () => 1 });
      const viaStage = async () => {
        const ctx = {
          mid: 1,
          direction: 'incoming',
          policy: 'default',
          size: m.buf.length,
          bytes: m.buf,
          parsed: null,
          antivirus: null,
          openMessage: () => Readable.from([m.buf]),
        } as unknown as StageContext;
        await stage.run(ctx);
        return ctx.antivirus?.verdict === 'clean';
      };
      let rawConnections = 0;
      const viaRaw = async () => {
        rawConnections++;
        return (await rawScan(clamd.port, m.buf)) === 'stream: OK';
      };
      // warm up both paths (and the client's sessions)
      await drive(quick ? 100 : 300, viaClient);
      await drive(quick ? 100 : 300, viaRaw);
      await drive(quick ? 100 : 300, viaStage);
      // two alternating rounds each, summed, so drift in the machine's load hits both alike
      const acc = {
        client: { n: 0, f: 0, s: 0, c: 0 },
        stage: { n: 0, f: 0, s: 0, c: 0 },
        raw: { n: 0, f: 0, s: 0, c: 0 },
      };
      for (let round = 0; round < 2; round++) {
        const c0 = client.stats().connectionsOpened;
        const a = await drive(ms / 2, viaClient);
        acc.client.n += a.n;
        acc.client.f += a.failures;
        acc.client.s += a.seconds;
        acc.client.c += client.stats().connectionsOpened - c0;
        const s0 = client.stats().connectionsOpened;
        const st = await drive(ms / 2, viaStage);
        acc.stage.n += st.n;
        acc.stage.f += st.failures;
        acc.stage.s += st.seconds;
        acc.stage.c += client.stats().connectionsOpened - s0;
        const r0 = rawConnections;
        const b = await drive(ms / 2, viaRaw);
        acc.raw.n += b.n;
        acc.raw.f += b.failures;
        acc.raw.s += b.seconds;
        acc.raw.c += rawConnections - r0;
      }
      const fig = (x: { n: number; f: number; s: number; c: number }): ClamdBenchFigure => ({
        msgPerSec: x.n / x.s,
        mbPerSec: (x.n * m.bytes) / x.s / 1e6,
        connections: x.c,
        failures: x.f,
      });
      rows.push({
        message: m.name,
        bytes: m.bytes,
        concurrency: CONCURRENCY,
        client: fig(acc.client),
        stage: fig(acc.stage),
        raw: fig(acc.raw),
      });
      await client.close();
    }
  } finally {
    await clamd.stop();
  }
  return { clamd: version, rows };
}

export function printClamdBench(r: ClamdBenchResult): void {
  const f0 = (n: number) => n.toFixed(0);
  const f1 = (n: number) => n.toFixed(1);
  console.log(
    `clamd INSTREAM, concurrency ${CONCURRENCY} (${r.clamd}; 3 custom signatures: protocol + unpacking floor)`,
  );
  console.log(
    '| message | bytes | antivirus stage msg/s | ClamdClient msg/s | ClamdClient MB/s | connections | raw clamd msg/s | raw clamd MB/s | connections | stage/raw |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const x of r.rows) {
    const failures = x.client.failures + x.stage.failures + x.raw.failures;
    const bad = failures ? ` (not clean: ${x.client.failures}/${x.stage.failures}/${x.raw.failures})` : '';
    console.log(
      `| ${x.message}${bad} | ${x.bytes} | ${f0(x.stage.msgPerSec)} | ${f0(x.client.msgPerSec)} | ${f1(x.client.mbPerSec)} | ${x.client.connections} | ${f0(x.raw.msgPerSec)} | ${f1(x.raw.mbPerSec)} | ${x.raw.connections} | ${(x.stage.msgPerSec / x.raw.msgPerSec).toFixed(2)} |`,
    );
  }
  console.log('');
}

const isMain = process.argv[1] !== undefined && path.resolve(process.argv[1]) === import.meta.filename;
if (isMain) {
  if (!hasClamd()) {
    console.log('clamd: skipped (clamd is not installed; apt-get install clamav-daemon)');
  } else {
    printClamdBench(await runClamdBench());
  }
}
