// SMTP end to end: smtp-source → gateway → smtp-sink, next to the same load straight into smtp-sink
// and through a Postfix relay (when Postfix is installed and we are root), all in the same run.
import { spawn, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync, mkdirSync, cpSync, chownSync, chmodSync, readdirSync, existsSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import path from 'node:path';
import { readAdminToken } from '../src/api/token.ts';
import { spawnHub } from '../test/helpers/hub.ts';
import YAML from 'yaml';
import { freePort, startSmtpSink, smtpSource, hasBinary, waitForPort, tempDir } from '../test/helpers/peers.ts';
import type { BenchMessage } from './messages.ts';
import { benchRules } from './outbreak-rules.ts';
import { generateKeyPair, signBundle } from '../src/outbreak/bundle.ts';
import { dataOf, pacedRun, startTimingSink, type PacedResult } from './latency.ts';

const root = path.resolve(import.meta.dirname, '..');

/** Gateway settings a row adds to the default config (e.g. 2,000 outbreak rules). */
export interface GatewayVariant {
  label: string;
  config: (dir: string) => Record<string, unknown>;
  /** run once the gateway listens (its data directory and admin port), before the load */
  afterStart?: (dataDir: string, adminPort: number) => Promise<void>;
}

/**
 * Cloud services on: the gateway registered with a hub (a process of its own) and streaming every
 * message's summary to it while the load runs — for "mail flow slowed by no more than 5 %".
 */
export function streamingVariant(hub: { url: string; token: string }): GatewayVariant {
  return {
    label: '+ streaming to a hub',
    config: () => ({ cloud: { enabled: true, region: hub.url } }),
    async afterStart(dataDir, adminPort) {
      const post = async (url: string, token: string, body: unknown) => {
        const r = await fetch(url, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        if (!r.ok) throw new Error(`${url}: HTTP ${r.status} ${await r.text()}`);
        return r.json() as Promise<any>;
      };
      const { token } = await post(`${hub.url}/api/v1/tokens`, hub.token, { region: 'nam' });
      const s = await post(`http://127.0.0.1:${adminPort}/api/v1/cloud/register`, readAdminToken(dataDir)!, {
        token,
      });
      if (s.status !== 'registered') throw new Error(`registration failed: ${JSON.stringify(s)}`);
    },
  };
}

/**
 * Outbreak Filters with 2,000 published rules. With `rewrite`, one more rule matches the links of the
 * 60 KB message (example.com) at level 3 and the policy modifies instead of holding, so every message
 * gets a subject tag, a disclaimer and its 20 links rewritten to the click-time service.
 */
export function outbreakVariant(rewrite: boolean): GatewayVariant {
  return {
    label: rewrite ? '+ 2,000 rules, links rewritten' : '+ 2,000 rules',
    config(dir) {
      const keys = generateKeyPair();
      const rules = benchRules(2000);
      if (rewrite)
        rules.push({
          id: 'OUTBREAK_BENCH_LINKS',
          level: 3,
          category: 'phish',
          description: 'bench: links of the 60 KB message',
          published: '2025-01-01T00:00:00Z',
          condition: { url: { domain: ['example.com'] } },
        });
      mkdirSync(path.join(dir, 'feed'), { recursive: true });
      const signed = signBundle({ version: 1, published: new Date().toISOString(), rules }, keys.privateKey);
      writeFileSync(path.join(dir, 'feed/bundle.json'), JSON.stringify(signed));
      return {
        outbreakFilters: { ruleFeed: { dir: './feed', publicKey: keys.publicKey } },
        policies: {
          incoming: [{ name: 'default', outbreakFilters: { deliverWithoutQuarantine: true } }],
        },
      };
    },
  };
}

export interface SmtpResult {
  message: string;
  /** what the gateway ran with besides the defaults ("" for the default config) */
  variant: string;
  count: number;
  sessions: number;
  sinkDirect: { acceptedPerSec: number };
  gateway: {
    acceptedPerSec: number;
    deliveredPerSec: number;
    p50Ms: number;
    p99Ms: number;
    peakRssMb: number;
    cpuSeconds: number;
  } | null;
  postfix: { acceptedPerSec: number; deliveredPerSec: number; peakPssMb: number } | null;
}

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; seconds: number }> {
  const t0 = performance.now();
  const value = await fn();
  return { value, seconds: (performance.now() - t0) / 1000 };
}

function load(port: number, msg: BenchMessage, count: number, sessions: number) {
  return smtpSource([
    '-s',
    String(sessions),
    '-d',
    '-m',
    String(count),
    '-F',
    msg.file,
    '-f',
    'a@src.test',
    '-t',
    'b@dst.test',
    `127.0.0.1:${port}`,
  ]);
}

async function sinkDirect(msg: BenchMessage, count: number, sessions: number): Promise<number> {
  const sink = await startSmtpSink();
  try {
    const r = await timed(() => load(sink.port, msg, count, sessions));
    if (r.value.code !== 0) throw new Error(`smtp-source failed: ${r.value.out}`);
    return count / r.seconds;
  } finally {
    await sink.stop();
  }
}

function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

function cpuOf(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in clock ticks of 10 ms
}

interface RunningGateway {
  inPort: number;
  pid: number;
  /** delivered events for messages above minMid */
  deliveredCount(minMid: number): number;
  maxMid(): number;
  /** accept→delivered latencies (ms, sorted) and the last delivery time of messages above minMid */
  latencies(minMid: number): { lat: number[]; last: number };
  stop(): Promise<void>;
}

/** `breakwater start` as a child process (default settings plus the variant's), relaying to sinkPort. */
async function startGateway(sinkPort: number, variant: GatewayVariant | null = null): Promise<RunningGateway> {
  const dir = tempDir('bw-bench-gw-');
  const inPort = await freePort();
  const adminPort = await freePort();
  const config = {
    hostname: 'bench.gw.test',
    dataDir: './data',
    listeners: [
      {
        name: 'incoming',
        host: '127.0.0.1',
        port: inPort,
        direction: 'incoming',
        acceptDomains: ['dst.test'],
        hat: [
          {
            name: 'loopback',
            match: ['127.0.0.0/8'],
            action: 'accept',
            earlyTalkerDelay: '0ms',
            maxConcurrentConnectionsPerIp: 250, // the 200-session rows
          },
        ],
      },
    ],
    routes: { '*': [`smtp://127.0.0.1:${sinkPort}`] },
    admin: { host: '127.0.0.1', port: adminPort },
    clickTime: { host: '127.0.0.1', port: await freePort() },
    // BENCH_WORKERS=1: the gateway's `workers` setting (parse/score/modify threads), to compare
    ...(process.env.BENCH_WORKERS ? { workers: Number(process.env.BENCH_WORKERS) } : {}),
    ...(variant ? variant.config(dir) : {}),
  };
  writeFileSync(path.join(dir, 'breakwater.yaml'), YAML.stringify(config));
  const proc = spawn(
    process.execPath,
    [
      '--max-semi-space-size=16',
      // e.g. BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the gateway (and its workers)
      ...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
      path.join(root, 'bin/breakwater.js'),
      'start',
      '--config',
      path.join(dir, 'breakwater.yaml'),
    ],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null) {
      proc.kill('SIGTERM');
      await once(proc, 'exit');
    }
  };
  try {
    await waitForPort(inPort, 15_000);
    if (variant?.afterStart) {
      await waitForPort(adminPort, 15_000);
      await variant.afterStart(path.join(dir, 'data'), adminPort);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  const db = () => new DatabaseSync(path.join(dir, 'data/breakwater.db'), { readOnly: true });
  const query = <T>(fn: (d: DatabaseSync) => T): T => {
    const d = db();
    try {
      return fn(d);
    } finally {
      d.close();
    }
  };
  return {
    inPort,
    pid: proc.pid!,
    deliveredCount: (minMid) =>
      query(
        (d) =>
          (
            d.prepare("select count(*) n from events where type = 'delivery.delivered' and mid > ?").get(minMid) as {
              n: number;
            }
          ).n,
      ),
    maxMid: () => query((d) => (d.prepare('select coalesce(max(mid), 0) m from messages').get() as { m: number }).m),
    latencies: (minMid) =>
      query((d) => ({
        last: (
          d.prepare("select max(at) z from events where type = 'delivery.delivered' and mid > ?").get(minMid) as {
            z: number;
          }
        ).z,
        lat: (
          d
            .prepare(
              "select e.at - m.received_at l from events e join messages m on m.mid = e.mid where e.type = 'delivery.delivered' and e.mid > ? order by l",
            )
            .all(minMid) as Array<{ l: number }>
        ).map((x) => x.l),
      })),
    stop,
  };
}

export async function gatewayRun(
  msg: BenchMessage,
  count: number,
  sessions: number,
  warmup: number,
  variant: GatewayVariant | null = null,
): Promise<NonNullable<SmtpResult['gateway']>> {
  const sink = await startSmtpSink();
  try {
    const gw = await startGateway(sink.port, variant);
    try {
      if (warmup) {
        await load(gw.inPort, msg, warmup, Math.min(sessions, 10));
        while (gw.deliveredCount(0) < warmup) await new Promise((r) => setTimeout(r, 100));
      }
      const baseMid = gw.maxMid();
      let peak = rssOf(gw.pid);
      const poll = setInterval(() => (peak = Math.max(peak, rssOf(gw.pid))), 100);
      const cpu0 = cpuOf(gw.pid);
      const t0 = Date.now();
      const r = await timed(() => load(gw.inPort, msg, count, sessions));
      if (r.value.code !== 0) throw new Error(`smtp-source failed: ${r.value.out}`);
      const deadline = Date.now() + 300_000;
      while (gw.deliveredCount(baseMid) < count && Date.now() < deadline)
        await new Promise((res) => setTimeout(res, 100));
      clearInterval(poll);
      const cpu = cpuOf(gw.pid) - cpu0;
      const { lat, last } = gw.latencies(baseMid);
      return {
        acceptedPerSec: count / r.seconds,
        deliveredPerSec: lat.length / ((last - t0) / 1000),
        p50Ms: percentile(lat, 0.5),
        p99Ms: percentile(lat, 0.99),
        peakRssMb: peak,
        cpuSeconds: cpu,
      };
    } finally {
      await gw.stop();
    }
  } finally {
    await sink.stop();
  }
}

interface RunningPostfix {
  port: number;
  /** files in Postfix's queues */
  queued(): number;
  /** sum of the proportional set size (shared pages split) of every process of this instance, MB */
  pssMb(): number;
  stop(): Promise<void>;
}

/** A private Postfix instance relaying to sinkPort: the reference store-and-forward MTA. */
async function startPostfix(sinkPort: number): Promise<RunningPostfix> {
  const port = await freePort();
  const dir = tempDir('bw-bench-pfx-');
  chmodSync(dir, 0o755); // Postfix's daemons run as the postfix user and must reach the queue
  const conf = path.join(dir, 'conf');
  const queue = path.join(dir, 'queue');
  mkdirSync(conf);
  mkdirSync(queue);
  mkdirSync(path.join(dir, 'data'));
  cpSync('/etc/postfix/main.cf', path.join(conf, 'main.cf'));
  cpSync('/etc/postfix/master.cf', path.join(conf, 'master.cf'));
  const pc = (...args: string[]) => execFileSync('postconf', args, { stdio: 'ignore' });
  // Postfix only starts an alternate config directory that the default main.cf lists.
  const before = execFileSync('postconf', ['-h', 'alternate_config_directories'], { encoding: 'utf8' }).trim();
  pc('-e', `alternate_config_directories=${[before, conf].filter(Boolean).join(' ')}`);
  pc(
    '-c',
    conf,
    '-e',
    `queue_directory=${queue}`,
    `data_directory=${path.join(dir, 'data')}`,
    'inet_interfaces=127.0.0.1',
    'inet_protocols=ipv4',
    'mydestination=',
    'relay_domains=dst.test',
    `relayhost=[127.0.0.1]:${sinkPort}`,
    'default_transport=smtp',
    'relay_transport=smtp',
    'maillog_file=/dev/stdout',
    'smtp_host_lookup=native',
    'smtp_dns_support_level=disabled',
    'default_process_limit=250',
    'smtpd_client_connection_count_limit=0',
    'smtpd_client_connection_rate_limit=0',
    'smtp_destination_concurrency_limit=50',
    'default_destination_concurrency_limit=50',
    'smtpd_peername_lookup=no',
    'in_flow_delay=0',
    'mynetworks=127.0.0.0/8',
    'syslog_name=bw-bench-pfx',
    'myhostname=pfx.bench.test',
    'alias_maps=',
    'alias_database=',
  );
  const master = readFileSync(path.join(conf, 'master.cf'), 'utf8').replace(/^smtp(\s+)inet/m, '#smtp$1inet');
  writeFileSync(path.join(conf, 'master.cf'), master + `127.0.0.1:${port} inet n - n - - smtpd\n`);
  chownSync(queue, 0, 0);
  const pw = execFileSync('id', ['-u', 'postfix'], { encoding: 'utf8' }).trim();
  const gr = execFileSync('id', ['-g', 'postfix'], { encoding: 'utf8' }).trim();
  chownSync(path.join(dir, 'data'), Number(pw), Number(gr));
  const stop = async (): Promise<void> => {
    try {
      execFileSync('postfix', ['-c', conf, 'stop'], { stdio: 'ignore' });
    } catch {
      /* not started */
    }
    pc('-e', `alternate_config_directories=${before}`);
  };
  try {
    execFileSync('postfix', ['-c', conf, 'start'], { stdio: 'ignore' });
    await waitForPort(port, 10_000);
  } catch (err) {
    await stop();
    throw err;
  }
  const masterPid = (): number => {
    try {
      return Number(readFileSync(path.join(queue, 'pid/master.pid'), 'utf8').trim());
    } catch {
      return 0;
    }
  };
  return {
    port,
    queued: () =>
      ['incoming', 'active', 'deferred', 'maildrop'].reduce((n, q) => {
        const d = path.join(queue, q);
        if (!existsSync(d)) return n;
        const walk = (p: string): number =>
          readdirSync(p, { withFileTypes: true }).reduce(
            (k, e) => k + (e.isDirectory() ? walk(path.join(p, e.name)) : 1),
            0,
          );
        return n + walk(d);
      }, 0),
    pssMb: () => {
      const root = masterPid();
      if (!root) return 0;
      let kb = pssKb(root);
      for (const pid of readdirSync('/proc')) {
        if (!/^\d+$/.test(pid)) continue;
        try {
          const ppid = Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[1]);
          if (ppid === root) kb += pssKb(Number(pid));
        } catch {
          /* gone */
        }
      }
      return kb / 1024;
    },
    stop,
  };
}

function pssKb(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

async function postfixRun(
  msg: BenchMessage,
  count: number,
  sessions: number,
): Promise<NonNullable<SmtpResult['postfix']>> {
  const sink = await startSmtpSink();
  try {
    const pf = await startPostfix(sink.port);
    try {
      let peak = pf.pssMb();
      const poll = setInterval(() => (peak = Math.max(peak, pf.pssMb())), 200);
      const t0 = performance.now();
      const r = await load(pf.port, msg, count, sessions);
      const accepted = (performance.now() - t0) / 1000;
      if (r.code !== 0) throw new Error(`smtp-source → postfix failed: ${r.out}`);
      while (pf.queued() > 0) await new Promise((res) => setTimeout(res, 50));
      const total = (performance.now() - t0) / 1000;
      clearInterval(poll);
      return { acceptedPerSec: count / accepted, deliveredPerSec: count / total, peakPssMb: peak };
    } finally {
      await pf.stop();
    }
  } finally {
    await sink.stop();
  }
}

/** Latency at a fixed rate through the gateway or Postfix, into the timing sink (see latency.ts). */
async function pacedThrough(
  target: 'gateway' | 'postfix',
  msg: BenchMessage,
  rate: number,
  count: number,
): Promise<PacedResult> {
  const sink = await startTimingSink();
  try {
    const relay = target === 'gateway' ? await startGateway(sink.port) : await startPostfix(sink.port);
    try {
      const port = 'inPort' in relay ? relay.inPort : relay.port;
      const data = dataOf(msg.file);
      // a short warm-up at the same rate (JIT, connection pools), not counted
      await pacedRun(port, sink, data, rate, Math.min(count, Math.max(20, Math.round(rate))), 50, 30_000);
      sink.arrivals.clear();
      return await pacedRun(port, sink, data, rate, count);
    } finally {
      await relay.stop();
    }
  } finally {
    await sink.stop();
  }
}

export interface HalfLoadResult {
  message: string;
  gateway: PacedResult | null;
  postfix: PacedResult | null;
}

export interface SmtpRun {
  rows: SmtpResult[];
  /** accept→delivered at half of each relay's measured maximum delivered/s, same timing sink */
  halfLoad: HalfLoadResult[];
}

export async function runSmtp(messages: BenchMessage[], quick: boolean): Promise<SmtpRun> {
  const countFor = (m: BenchMessage): number => {
    const c = m.bytes < 20_000 ? [500, 5000] : m.bytes < 500_000 ? [200, 2000] : [30, 200];
    return quick ? c[0] : c[1];
  };
  const sessions = 50;
  const postfixOk = hasBinary('postfix') && process.getuid?.() === 0;
  const results: SmtpResult[] = [];
  const halfLoad: HalfLoadResult[] = [];
  const tryPostfix = async <T>(fn: () => Promise<T>): Promise<T | null> => {
    if (!postfixOk) return null;
    try {
      return await fn();
    } catch (err) {
      process.stderr.write(`postfix reference skipped: ${(err as Error).message}\n`);
      return null;
    }
  };
  for (const msg of messages) {
    const count = countFor(msg);
    process.stderr.write(`smtp: ${msg.name} × ${count}, ${sessions} sessions…\n`);
    const direct = await sinkDirect(msg, count, sessions);
    const warmup = Math.min(300, Math.floor(count / 10));
    const gateway = await gatewayRun(msg, count, sessions, warmup);
    const postfix = await tryPostfix(() => postfixRun(msg, count, sessions));
    results.push({
      message: msg.name,
      variant: '',
      count,
      sessions,
      sinkDirect: { acceptedPerSec: direct },
      gateway,
      postfix,
    });
    // Outbreak Filters rows for the small and the HTML message, next to the rows above.
    if (msg.bytes < 500_000) {
      const variant = outbreakVariant(msg.bytes >= 20_000);
      process.stderr.write(`smtp: ${msg.name} ${variant.label}…\n`);
      const g = await gatewayRun(msg, count, sessions, warmup, variant);
      results.push({
        message: msg.name,
        variant: variant.label,
        count,
        sessions,
        sinkDirect: { acceptedPerSec: direct },
        gateway: g,
        postfix: null,
      });
    }
    // Streaming every summary to a hub while the 5 KB load runs: the cost to mail flow.
    if (msg.bytes < 20_000) {
      const hubDir = tempDir('bw-bench-smtp-hub-');
      writeFileSync(
        path.join(hubDir, 'hub.yaml'),
        YAML.stringify({ dataDir: './data', listen: { host: '127.0.0.1', port: 0 } }),
      );
      const hub = await spawnHub(path.join(hubDir, 'hub.yaml'));
      try {
        const variant = streamingVariant(hub);
        process.stderr.write(`smtp: ${msg.name} ${variant.label}…\n`);
        results.push({
          message: msg.name,
          variant: variant.label,
          count,
          sessions,
          sinkDirect: { acceptedPerSec: direct },
          gateway: await gatewayRun(msg, count, sessions, warmup, variant),
          postfix: null,
        });
      } finally {
        hub.proc.kill('SIGTERM');
        await once(hub.proc, 'exit');
      }
    }
    // 200 concurrent sessions: peak RSS (Postfix: PSS summed over its processes).
    process.stderr.write(`smtp: ${msg.name}, 200 sessions…\n`);
    const count200 = Math.max(count, 200);
    results.push({
      message: msg.name,
      variant: '200 sessions',
      count: count200,
      sessions: 200,
      sinkDirect: { acceptedPerSec: await sinkDirect(msg, count200, 200) },
      gateway: await gatewayRun(msg, count200, 200, warmup),
      postfix: await tryPostfix(() => postfixRun(msg, count200, 200)),
    });
    // Latency at half of each one's maximum delivered/s (from the 50-session row above), ~10 s of load.
    const seconds = quick ? 3 : 10;
    const half = (max: number | undefined): number => Math.max(1, Math.round((max ?? 0) / 2));
    process.stderr.write(`smtp: ${msg.name}, half load…\n`);
    const gwRate = half(gateway.deliveredPerSec);
    const pfRate = half(postfix?.deliveredPerSec);
    halfLoad.push({
      message: msg.name,
      gateway: await pacedThrough('gateway', msg, gwRate, Math.max(20, gwRate * seconds)),
      postfix: postfix
        ? await tryPostfix(() => pacedThrough('postfix', msg, pfRate, Math.max(20, pfRate * seconds)))
        : null,
    });
  }
  return { rows: results, halfLoad };
}
