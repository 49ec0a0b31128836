// Sender authentication's cost to mail flow (issue 15, "Measured"): the 5 KB relay (smtp-source, 50
// sessions → gateway → smtp-sink, fsync on) with the senderAuth stage off and on, in the same run. With it
// on, every message is checked (SPF of MAIL FROM and HELO, DKIM, DMARC, ARC) against the test DNS server
// (dnsmasq, test/helpers/dns.ts) serving SPF and DMARC for the bench's sender domain: answers come from
// the gateway's cache after the first message ("cached DNS"), and each delivered message gets its
// Authentication-Results header (put on top at send time; no second copy is written). Off and on
// alternate twice; the best of each.
//   BENCH_ONLY=sender-auth npm run bench        BENCH_QUICK=1 for a short run
import { makeMessages } from './messages.ts';
import { gatewayRun, type SmtpResult } from './smtp.ts';
import { startDns } from '../test/helpers/dns.ts';

export interface SenderAuthBenchResult {
  message: string;
  count: number;
  off: NonNullable<SmtpResult['gateway']>;
  on: NonNullable<SmtpResult['gateway']>;
}

export async function runSenderAuthBench(opts: { quick?: boolean } = {}): Promise<SenderAuthBenchResult> {
  const quick = opts.quick ?? process.env.BENCH_QUICK === '1';
  const dns = await startDns({
    localZones: ['test'],
    txt: [
      ['src.test', 'v=spf1 ip4:127.0.0.1 -all'],
      ['_dmarc.src.test', 'v=DMARC1; p=none'],
    ],
  });
  try {
    const msg = (await makeMessages()).find((m) => m.bytes < 20_000)!;
    const count = quick ? 500 : 5000;
    const warmup = quick ? 100 : 500;
    const off = { label: 'sender auth off', config: () => ({ senderAuth: { enabled: false } }) };
    const on = {
      label: 'sender auth on',
      config: () => ({ senderAuth: { enabled: true, dns: { servers: [dns.server] } } }),
    };
    const runs: Array<{ on: boolean; r: NonNullable<SmtpResult['gateway']> }> = [];
    for (const variant of [off, on, off, on]) {
      process.stderr.write(`sender-auth: ${variant.label}…\n`);
      runs.push({ on: variant === on, r: await gatewayRun(msg, count, 50, warmup, variant) });
    }
    const best = (isOn: boolean) =>
      runs.filter((x) => x.on === isOn).sort((a, b) => b.r.deliveredPerSec - a.r.deliveredPerSec)[0].r;
    return { message: msg.name, count, off: best(false), on: best(true) };
  } finally {
    await dns.stop();
  }
}

export function printSenderAuthBench(r: SenderAuthBenchResult): void {
  const f0 = (n: number) => n.toFixed(0);
  console.log(
    `Sender authentication: ${r.message} relay, ${r.count} messages, smtp-source 50 sessions → gateway → smtp-sink, fsync on; DNS: dnsmasq on loopback, cached by the gateway (best of 2 runs each)`,
  );
  console.log('| senderAuth | accepted/s | delivered/s | p50 / p99 accept→delivered ms | peak RSS MB | CPU s |');
  console.log('|---|---|---|---|---|---|');
  for (const [name, g] of [
    ['off', r.off],
    ['on', r.on],
  ] as const)
    console.log(
      `| ${name} | ${f0(g.acceptedPerSec)} | ${f0(g.deliveredPerSec)} | ${f0(g.p50Ms)} / ${f0(g.p99Ms)} | ${f0(g.peakRssMb)} | ${g.cpuSeconds.toFixed(1)} |`,
    );
  const slower = (1 - r.on.deliveredPerSec / r.off.deliveredPerSec) * 100;
  console.log(
    `\nwith sender authentication on: delivered/s ${slower >= 0 ? `${slower.toFixed(1)} % slower` : `${(-slower).toFixed(1)} % faster`} (target: at most 15 % slower)\n`,
  );
}
