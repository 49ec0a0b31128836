// The rspamd stage's cost to mail flow, next to rspamd alone, in the same run (issue 15, "Measured"):
// - rspamd alone: the 5 KB message POSTed to /checkv2 as fast as it answers (RspamdClient, keep-alive,
//   16 at once): the ceiling any gateway using this rspamd can reach;
// - the 5 KB relay (smtp-source, 50 sessions → gateway → smtp-sink, fsync on) without the stage and with
//   it (every message sent to the same rspamd), as bench/smtp.ts measures it.
// The rspamd is the test one (test/helpers/rspamd.ts): stock rules, network modules off, two workers.
//   BENCH_ONLY=rspamd npm run bench        BENCH_QUICK=1 for a short run
import { readFileSync } from 'node:fs';
import { RspamdClient } from '../src/antispam/rspamd.ts';
import { startRspamd } from '../test/helpers/rspamd.ts';
import { makeMessages } from './messages.ts';
import { gatewayRun, type SmtpResult } from './smtp.ts';

export interface RspamdBenchResult {
  message: string;
  count: number;
  rspamdWorkers: number;
  /** /checkv2 answers per second, 16 requests at once */
  rspamdAlone: { msgPerSec: number; failures: number; actions: Record<string, number> };
  gatewayOff: NonNullable<SmtpResult['gateway']>;
  gatewayOn: NonNullable<SmtpResult['gateway']>;
}

const CONCURRENCY = 16;

export async function runRspamdBench(opts: { quick?: boolean } = {}): Promise<RspamdBenchResult> {
  const quick = opts.quick ?? process.env.BENCH_QUICK === '1';
  const workers = 2;
  const rspamd = await startRspamd({ workers });
  try {
    const msg = (await makeMessages()).find((m) => m.bytes < 20_000)!;
    // smtp-source sends LF line ends and gets CRLF on the wire; rspamd sees the same bytes either way
    const buf = Buffer.from(readFileSync(msg.file, 'utf8').replace(/\r?\n/g, '\r\n'));
    const client = new RspamdClient({ url: rspamd.url, timeoutMs: 30_000, maxConnections: CONCURRENCY });
    const meta = {
      from: 'bench@src.test',
      rcpts: ['user@bench.test'],
      ip: '127.0.0.1',
      helo: 'bench.test',
      hostname: 'localhost',
      queueId: '1',
      mtaName: 'gw.bench.test',
    };
    const actions: Record<string, number> = {};
    let failures = 0;
    const drive = async (ms: number): Promise<{ n: number; seconds: number }> => {
      const t0 = performance.now();
      const end = t0 + ms;
      let n = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (performance.now() < end) {
            try {
              const a = await client.check(buf, buf.length, meta);
              actions[a.action] = (actions[a.action] ?? 0) + 1;
            } catch {
              failures++;
            }
            n++;
          }
        }),
      );
      return { n, seconds: (performance.now() - t0) / 1000 };
    };
    await drive(quick ? 300 : 1000);
    for (const k of Object.keys(actions)) delete actions[k];
    failures = 0;
    const alone = await drive(quick ? 2000 : 6000);
    client.close();

    const count = quick ? 500 : 5000;
    const warmup = Math.min(300, Math.floor(count / 10));
    process.stderr.write(`rspamd: 5 KB relay × ${count}, stage off…\n`);
    const gatewayOff = await gatewayRun(msg, count, 50, warmup);
    process.stderr.write(`rspamd: 5 KB relay × ${count}, stage on…\n`);
    const gatewayOn = await gatewayRun(msg, count, 50, warmup, {
      label: '+ rspamd',
      config: () => ({ antispam: { rspamd: { url: rspamd.url, timeout: '30s', maxConnections: CONCURRENCY } } }),
    });
    return {
      message: msg.name,
      count,
      rspamdWorkers: workers,
      rspamdAlone: { msgPerSec: alone.n / alone.seconds, failures, actions },
      gatewayOff,
      gatewayOn,
    };
  } finally {
    await rspamd.stop();
  }
}

export function printRspamdBench(r: RspamdBenchResult): void {
  const f0 = (n: number | undefined) => (n === undefined ? '-' : n.toFixed(0));
  console.log(
    `rspamd stage: ${r.message} relay (smtp-source, 50 sessions → gateway → smtp-sink, fsync on) next to rspamd alone (/checkv2, ${CONCURRENCY} at once; ${r.rspamdWorkers} rspamd workers, stock rules, network modules off)`,
  );
  console.log(
    '| run | n | accepted/s | delivered/s | p50 / p99 accept→delivered ms | gateway CPU s | rspamd alone checks/s |',
  );
  console.log('|---|---|---|---|---|---|---|');
  const row = (label: string, g: RspamdBenchResult['gatewayOff'], alone: string) =>
    console.log(
      `| ${label} | ${r.count} | ${f0(g.acceptedPerSec)} | ${f0(g.deliveredPerSec)} | ${f0(g.p50Ms)} / ${f0(g.p99Ms)} | ${g.cpuSeconds.toFixed(1)} | ${alone} |`,
    );
  row('gateway, rspamd stage off', r.gatewayOff, '');
  row('gateway, rspamd stage on', r.gatewayOn, f0(r.rspamdAlone.msgPerSec));
  console.log(
    `rspamd alone: ${f0(r.rspamdAlone.msgPerSec)} checks/s (${r.rspamdAlone.failures} failed; actions ${JSON.stringify(r.rspamdAlone.actions)}); with the stage on the gateway delivers ${((r.gatewayOn.deliveredPerSec / r.rspamdAlone.msgPerSec) * 100).toFixed(0)} % of that and ${((r.gatewayOn.deliveredPerSec / r.gatewayOff.deliveredPerSec) * 100).toFixed(0)} % of its own rate without the stage`,
  );
  console.log('');
}
