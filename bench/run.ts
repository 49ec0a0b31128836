// `npm run bench`: prints figures next to references measured in the same run. Not a test.
//   BENCH_QUICK=1   short run        BENCH_ONLY=smtp|tracking   one part only
//   BENCH_MESSAGES=5KB,60KB          only these message sizes
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeMessages } from './messages.ts';
import { runSmtp, type SmtpResult } from './smtp.ts';
import { runTracking, type TrackingResult } from './tracking.ts';
import { hasBinary } from '../test/helpers/peers.ts';

const quick = process.env.BENCH_QUICK === '1';
const only = process.env.BENCH_ONLY;
const f0 = (n: number | undefined | null): string =>
  n === undefined || n === null || Number.isNaN(n) ? '-' : n.toFixed(0);

const cpu = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU';
console.log(
  `Breakwater benchmarks — ${new Date().toISOString()} — ${os.cpus().length} cores (${cpu}), Node ${process.version}${quick ? ' — QUICK' : ''}\n`,
);

let smtp: SmtpResult[] = [];
let tracking: TrackingResult | null = null;

if (!only || only === 'smtp') {
  if (!hasBinary('smtp-source') || !hasBinary('smtp-sink'))
    console.log('SMTP: skipped (Postfix smtp-source/smtp-sink not installed; see .ci/run)\n');
  else {
    const wanted = process.env.BENCH_MESSAGES?.split(',');
    const messages = (await makeMessages()).filter((m) => !wanted || wanted.some((w) => m.name.startsWith(w)));
    smtp = await runSmtp(messages, quick);
    console.log('SMTP end to end: smtp-source (50 reused sessions) → X → smtp-sink; fsync on');
    console.log(
      '| message | n | gateway accepted/s | gateway delivered/s | p50 / p99 accept→delivered ms | gateway peak RSS MB | gateway CPU s | smtp-sink direct accepted/s | Postfix relay accepted/s | Postfix relay delivered/s |',
    );
    console.log('|---|---|---|---|---|---|---|---|---|---|');
    for (const r of smtp) {
      const g = r.gateway;
      console.log(
        `| ${r.message}${r.variant ? ` ${r.variant}` : ''} | ${r.count} | ${f0(g?.acceptedPerSec)} | ${f0(g?.deliveredPerSec)} | ${f0(g?.p50Ms)} / ${f0(g?.p99Ms)} | ${f0(g?.peakRssMb)} | ${g?.cpuSeconds.toFixed(1) ?? '-'} | ${f0(r.sinkDirect.acceptedPerSec)} | ${f0(r.postfix?.acceptedPerSec)} | ${f0(r.postfix?.deliveredPerSec)} |`,
      );
    }
    console.log('');
  }
}

if (!only || only === 'tracking') {
  const n = quick ? 100_000 : 1_000_000;
  process.stderr.write(`tracking: loading ${n} records…\n`);
  tracking = await runTracking(n);
  console.log(
    `Tracking search over ${tracking.records.toLocaleString('en')} records (loaded in ${tracking.loadSeconds.toFixed(0)} s, database ${tracking.dbMb.toFixed(0)} MB); median of 5, limit 100`,
  );
  console.log('| query | ms | rows |');
  console.log('|---|---|---|');
  for (const q of tracking.queries)
    console.log(`| ${q.name} | ${q.ms.toFixed(1)}${q.ms >= 1000 ? ' **OVER 1 s**' : ''} | ${q.rows} |`);
  console.log('');
}

const out = path.resolve(import.meta.dirname, 'results');
mkdirSync(out, { recursive: true });
writeFileSync(
  path.join(out, 'latest.json'),
  JSON.stringify({ at: new Date().toISOString(), quick, cpu, smtp, tracking }, null, 2),
);
