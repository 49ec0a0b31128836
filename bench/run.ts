// `npm run bench`: prints figures next to references measured in the same run. Not a test.
//   BENCH_QUICK=1   short run        BENCH_ONLY=smtp|tracking|outbreak|clamd|rspamd|sender-auth|quarantine|hub|hub-rules|remediation|web   one part only
//   BENCH_MESSAGES=5KB,60KB          only these message sizes
//   BENCH_TRACKING_RECORDS=50000     tracking records (default 1,000,000; 100,000 with BENCH_QUICK)
//   BENCH_TRACKING_RUNS=60           timed runs per tracking query (p50 / p99)
//   BENCH_WORKERS=1                  the gateway's `workers` setting (default auto)
//   BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR"   extra node flags for the benchmarked gateway
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeMessages } from './messages.ts';
import { runSmtp, type HalfLoadResult, type SmtpResult } from './smtp.ts';
import { runTracking, type TrackingResult } from './tracking.ts';
import { runRulesBench, type RulesBenchResult } from './outbreak-rules.ts';
import { runModifyBench, type ModifyBenchResult } from './modify.ts';
import { runClickTimeBench, type ClickTimeBenchResult } from './clicktime.ts';
import { hasBinary } from '../test/helpers/peers.ts';
import { hasClamd } from '../test/helpers/clamd.ts';
import { printClamdBench, runClamdBench, type ClamdBenchResult } from './clamd.ts';
import { printRspamdBench, runRspamdBench, type RspamdBenchResult } from './rspamd.ts';
import { hasRspamd } from '../test/helpers/rspamd.ts';
import { printSenderAuthBench, runSenderAuthBench, type SenderAuthBenchResult } from './sender-auth.ts';
import { hasDnsmasq } from '../test/helpers/dns.ts';
import { printQuarantineBench, runQuarantineBench, type QuarantineBenchResult } from './quarantine.ts';
import { printHubBench, runHubBench, type HubBenchResult } from './hub.ts';
import { printHubRulesBench, runHubRulesBench, type HubRulesBenchResult } from './hub-rules.ts';
import { hasDovecot, printRemediationBench, runRemediationBench, type RemediationBenchResult } from './remediation.ts';
import { hasChromium, printWebBench, runWebBench, type WebBenchResult } from './web.ts';

const quick = process.env.BENCH_QUICK === '1';
const only = process.env.BENCH_ONLY;
const f0 = (n: number | undefined | null): string =>
  n === undefined || n === null || Number.isNaN(n) ? '-' : n.toFixed(0);

const cpu = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU';
console.log(
  `Breakwater benchmarks — ${new Date().toISOString()} — ${os.cpus().length} cores (${cpu}), Node ${process.version}${quick ? ' — QUICK' : ''}\n`,
);

let smtp: SmtpResult[] = [];
let halfLoad: HalfLoadResult[] = [];
let tracking: TrackingResult | null = null;
let outbreak: { rules: RulesBenchResult; modify: ModifyBenchResult; clickTime: ClickTimeBenchResult } | null = null;

if (!only || only === 'smtp') {
  if (!hasBinary('smtp-source') || !hasBinary('smtp-sink'))
    console.log('SMTP: skipped (Postfix smtp-source/smtp-sink not installed; see .ci/run)\n');
  else {
    const wanted = process.env.BENCH_MESSAGES?.split(',');
    const messages = (await makeMessages()).filter((m) => !wanted || wanted.some((w) => m.name.startsWith(w)));
    ({ rows: smtp, halfLoad } = await runSmtp(messages, quick));
    console.log('SMTP end to end: smtp-source (50 reused sessions unless the row says 200) → X → smtp-sink; fsync on');
    console.log(
      '| message | n | gateway accepted/s | gateway delivered/s | p50 / p99 accept→delivered ms | gateway peak RSS MB | gateway CPU s | smtp-sink direct accepted/s | Postfix relay accepted/s | Postfix relay delivered/s | Postfix peak PSS MB |',
    );
    console.log('|---|---|---|---|---|---|---|---|---|---|---|');
    for (const r of smtp) {
      const g = r.gateway;
      console.log(
        `| ${r.message}${r.variant ? ` ${r.variant}` : ''} | ${r.count} | ${f0(g?.acceptedPerSec)} | ${f0(g?.deliveredPerSec)} | ${f0(g?.p50Ms)} / ${f0(g?.p99Ms)} | ${f0(g?.peakRssMb)} | ${g?.cpuSeconds.toFixed(1) ?? '-'} | ${f0(r.sinkDirect.acceptedPerSec)} | ${f0(r.postfix?.acceptedPerSec)} | ${f0(r.postfix?.deliveredPerSec)} | ${f0(r.postfix?.peakPssMb)} |`,
      );
    }
    console.log('');
    console.log(
      'Accept→delivered at half the measured maximum (each relay at half its own delivered/s above; paced client, 50 connections, timing sink in the bench process)',
    );
    console.log(
      '| message | gateway rate/s | gateway p50 / p99 / max ms | Postfix rate/s | Postfix p50 / p99 / max ms |',
    );
    console.log('|---|---|---|---|---|');
    const lat = (p: HalfLoadResult['gateway']): string =>
      p
        ? `${p.p50Ms.toFixed(1)} / ${p.p99Ms.toFixed(1)} / ${p.maxMs.toFixed(0)}${p.delivered < p.sent ? ` (${p.sent - p.delivered} not delivered)` : ''}`
        : '-';
    for (const h of halfLoad)
      console.log(
        `| ${h.message} | ${f0(h.gateway?.offeredPerSec)} | ${lat(h.gateway)} | ${f0(h.postfix?.offeredPerSec)} | ${lat(h.postfix)} |`,
      );
    console.log('');
  }
}

if (!only || only === 'tracking') {
  const n = Number(process.env.BENCH_TRACKING_RECORDS?.replace(/[_,]/g, '') || (quick ? 100_000 : 1_000_000));
  const runs = Number(process.env.BENCH_TRACKING_RUNS || 60);
  if (!Number.isInteger(n) || n < 1000) throw new Error('BENCH_TRACKING_RECORDS: a whole number, at least 1000');
  if (!Number.isInteger(runs) || runs < 1) throw new Error('BENCH_TRACKING_RUNS: a whole number, at least 1');
  process.stderr.write(`tracking: loading ${n} records…\n`);
  tracking = await runTracking(n, runs);
  const t = tracking;
  console.log(
    `Tracking search over ${t.records.toLocaleString('en')} records (loaded in ${t.loadSeconds.toFixed(0)} s, database ${t.dbMb.toFixed(0)} MB, gateway started on it in ${t.gatewayStartSeconds.toFixed(1)} s); p50 / p99 of ${t.runs} runs${t.runs < 100 ? ' (p99: the slowest)' : ''}, limit ${t.limit}; bench process peak RSS ${f0(t.peakRssMb)} MB (gateway in process)`,
  );
  console.log(
    'API: GET /api/v1/tracking/messages with the admin token, JSON read; tracker.search: the same gateway, no HTTP; raw SQL: hand-written query on a read-only connection to the same file (MIDs only)',
  );
  console.log('| query | API p50 / p99 ms | tracker.search p50 / p99 ms | raw SQL p50 / p99 ms | rows |');
  console.log('|---|---|---|---|---|');
  const f = (n: number): string => n.toFixed(n < 10 ? 2 : 1);
  const ms = (x: { p50: number; p99: number }): string =>
    `${f(x.p50)} / ${f(x.p99)}${x.p99 >= 1000 ? ' **OVER 1 s**' : ''}`;
  for (const q of t.queries) {
    const rows = q.sameMids
      ? String(q.rows)
      : `${q.rows} **not the same MIDs (API ${q.apiRows}, raw SQL ${q.rawRows})**`;
    console.log(`| ${q.name} | ${ms(q.api)} | ${ms(q.search)} | ${ms(q.rawSql)} | ${rows} |`);
  }
  console.log('');
}

if (!only || only === 'outbreak') {
  process.stderr.write('outbreak: rule engine, modification, click-time service…\n');
  const rules = await runRulesBench({ minMs: quick ? 300 : 2000 });
  const modify = runModifyBench();
  const clickTime = await runClickTimeBench({ durationSeconds: quick ? 2 : 5 });
  outbreak = { rules, modify, clickTime };
  const f1 = (n: number) => n.toFixed(1);
  console.log(
    `Outbreak rule engine: ${rules.rules} rules × ${rules.messages} parsed messages (mean ${f1(rules.meanMessageBytes / 1024)} KB), ${rules.hitsPerMessage.toFixed(2)} hits per message`,
  );
  console.log('| engine | compile ms | evaluations/s | p50 µs | p99 µs |');
  console.log('|---|---|---|---|---|');
  for (const [name, e] of [
    ['indexed (ours)', rules.indexed],
    ['linear, every rule (reference)', rules.linear],
  ] as const)
    console.log(`| ${name} | ${f1(e.compileMs)} | ${f0(e.evaluationsPerSec)} | ${f1(e.p50Us)} | ${f1(e.p99Us)} |`);
  console.log('');
  console.log(
    `Message modification: ${f0(modify.messageBytes / 1024)} KB HTML + text, ${modify.links} distinct links wrapped, ${modify.iterations} runs`,
  );
  console.log('| | messages/s | p50 ms | p99 ms |');
  console.log('|---|---|---|---|');
  for (const [name, m] of [
    ['modifyMessage: subject, headers, disclaimer, links (8bit)', modify.modify],
    ['modifyMessage, HTML quoted-printable', modify.modifyQuotedPrintable],
    ['reference: Buffer copy + one regex href replace', modify.reference],
  ] as const)
    console.log(`| ${name} | ${f0(m.messagesPerSec)} | ${m.p50Ms.toFixed(2)} | ${m.p99Ms.toFixed(2)} |`);
  console.log('');
  console.log(
    `Click-time service: autocannon, ${clickTime.connections} connections, ${clickTime.durationSeconds} s; server in its own process`,
  );
  console.log('| target | status | requests/s | p50 ms | p99 ms | failures | server CPU s |');
  console.log('|---|---|---|---|---|---|---|');
  for (const c of [clickTime.clickTime, clickTime.warningPage, clickTime.reference])
    console.log(
      `| ${c.name} | ${c.status} | ${f0(c.requestsPerSec)} | ${c.p50Ms} | ${c.p99Ms} | ${c.failures} | ${c.serverCpuSeconds.toFixed(1)} |`,
    );
  console.log('');
}

let clamd: ClamdBenchResult | null = null;
if (!only || only === 'clamd') {
  if (!hasClamd()) console.log('clamd: skipped (clamav-daemon not installed; see .ci/run)\n');
  else {
    process.stderr.write('clamd: INSTREAM throughput…\n');
    clamd = await runClamdBench({ quick });
    printClamdBench(clamd);
  }
}

let rspamd: RspamdBenchResult | null = null;
if (!only || only === 'rspamd') {
  if (!hasRspamd() || !hasBinary('smtp-source'))
    console.log('rspamd: skipped (rspamd or Postfix tools not installed; see .ci/run)\n');
  else {
    process.stderr.write('rspamd: /checkv2 alone, then the 5 KB relay without and with the stage…\n');
    rspamd = await runRspamdBench({ quick });
    printRspamdBench(rspamd);
  }
}

let senderAuth: SenderAuthBenchResult | null = null;
if (!only || only === 'sender-auth') {
  if (!hasDnsmasq() || !hasBinary('smtp-source') || !hasBinary('smtp-sink'))
    console.log('Sender authentication: skipped (dnsmasq or Postfix tools not installed; see .ci/run)\n');
  else {
    senderAuth = await runSenderAuthBench({ quick });
    printSenderAuthBench(senderAuth);
  }
}

let quarantine: QuarantineBenchResult | null = null;
if (!only || only === 'quarantine') {
  if (!hasBinary('smtp-source') || !hasBinary('smtp-sink'))
    console.log('Quarantine: skipped (Postfix smtp-source/smtp-sink not installed; see .ci/run)\n');
  else {
    quarantine = await runQuarantineBench(quick);
    printQuarantineBench(quarantine);
  }
}

let hub: HubBenchResult | null = null;
if (!only || only === 'hub') {
  process.stderr.write('hub: streaming and search…\n');
  hub = await runHubBench({ streamMessages: quick ? 5_000 : 20_000, stored: quick ? 100_000 : 1_000_000 });
  printHubBench(hub);
}

let hubRules: HubRulesBenchResult | null = null;
if (!only || only === 'hub-rules') {
  process.stderr.write('hub rules: publication to every gateway…\n');
  hubRules = await runHubRulesBench(20);
  printHubRulesBench(hubRules);
}

let remediation: RemediationBenchResult | null = null;
if (!only || only === 'remediation') {
  if (!hasDovecot()) console.log('Remediation: skipped (dovecot not installed; see .ci/run)\n');
  else {
    remediation = await runRemediationBench(quick);
    printRemediationBench(remediation);
  }
}

let web: WebBenchResult | null = null;
if (!only || only === 'web') {
  if (!hasChromium()) console.log('Web UI: skipped (Chromium or the built UI missing: .ci/run, npm run build:web)\n');
  else {
    process.stderr.write('web: dashboard first paint…\n');
    web = await runWebBench(quick);
    printWebBench(web);
  }
}

const out = path.resolve(import.meta.dirname, 'results');
mkdirSync(out, { recursive: true });
writeFileSync(
  path.join(out, 'latest.json'),
  JSON.stringify(
    {
      at: new Date().toISOString(),
      quick,
      cpu,
      smtp,
      halfLoad,
      tracking,
      outbreak,
      clamd,
      rspamd,
      senderAuth,
      quarantine,
      hub,
      hubRules,
      remediation,
      web,
    },
    null,
    2,
  ),
);
