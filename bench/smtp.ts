// SMTP end to end: smtp-source → gateway → smtp-sink, next to the same load straight into smtp-sink
// and through a Postfix relay (when Postfix is installed and we are root), all in the same run.
import { spawn, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync, mkdirSync, cpSync, chownSync, chmodSync, readdirSync, existsSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import path from 'node:path';
import YAML from 'yaml';
import { freePort, startSmtpSink, smtpSource, hasBinary, waitForPort, tempDir } from '../test/helpers/peers.ts';
import type { BenchMessage } from './messages.ts';
import { benchRules } from './outbreak-rules.ts';
import { generateKeyPair, signBundle } from '../src/outbreak/bundle.ts';

const root = path.resolve(import.meta.dirname, '..');

/** Gateway settings a row adds to the default config (e.g. 2,000 outbreak rules). */
export interface GatewayVariant {
  label: string;
  config: (dir: string) => Record<string, unknown>;
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
  postfix: { acceptedPerSec: number; deliveredPerSec: number } | null;
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

async function gatewayRun(
  msg: BenchMessage,
  count: number,
  sessions: number,
  warmup: number,
  variant: GatewayVariant | null = null,
): Promise<NonNullable<SmtpResult['gateway']>> {
  const sink = await startSmtpSink();
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
        hat: [{ name: 'loopback', match: ['127.0.0.0/8'], action: 'accept', earlyTalkerDelay: '0ms' }],
      },
    ],
    routes: { '*': [`smtp://127.0.0.1:${sink.port}`] },
    admin: { host: '127.0.0.1', port: adminPort },
    clickTime: { host: '127.0.0.1', port: await freePort() },
    ...(variant ? variant.config(dir) : {}),
  };
  writeFileSync(path.join(dir, 'breakwater.yaml'), YAML.stringify(config));
  const proc = spawn(
    process.execPath,
    [
      '--max-semi-space-size=16',
      path.join(root, 'bin/breakwater.js'),
      'start',
      '--config',
      path.join(dir, 'breakwater.yaml'),
    ],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  try {
    await waitForPort(inPort, 15_000);
    const db = () => new DatabaseSync(path.join(dir, 'data/breakwater.db'), { readOnly: true });
    const deliveredCount = (minMid: number): number => {
      const d = db();
      try {
        return (
          d.prepare("select count(*) n from events where type = 'delivery.delivered' and mid > ?").get(minMid) as {
            n: number;
          }
        ).n;
      } finally {
        d.close();
      }
    };
    if (warmup) {
      await load(inPort, msg, warmup, Math.min(sessions, 10));
      while (deliveredCount(0) < warmup) await new Promise((r) => setTimeout(r, 100));
    }
    const d0 = db();
    const baseMid = (d0.prepare('select coalesce(max(mid), 0) m from messages').get() as { m: number }).m;
    d0.close();
    let peak = rssOf(proc.pid!);
    const poll = setInterval(() => (peak = Math.max(peak, rssOf(proc.pid!))), 100);
    const cpu0 = cpuOf(proc.pid!);
    const t0 = Date.now();
    const r = await timed(() => load(inPort, msg, count, sessions));
    if (r.value.code !== 0) throw new Error(`smtp-source failed: ${r.value.out}`);
    const deadline = Date.now() + 300_000;
    while (deliveredCount(baseMid) < count && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
    clearInterval(poll);
    const cpu = cpuOf(proc.pid!) - cpu0;
    const d = db();
    const last = (
      d.prepare("select max(at) z from events where type = 'delivery.delivered' and mid > ?").get(baseMid) as {
        z: number;
      }
    ).z;
    const lat = (
      d
        .prepare(
          "select e.at - m.received_at l from events e join messages m on m.mid = e.mid where e.type = 'delivery.delivered' and e.mid > ? order by l",
        )
        .all(baseMid) as Array<{ l: number }>
    ).map((x) => x.l);
    d.close();
    return {
      acceptedPerSec: count / r.seconds,
      deliveredPerSec: lat.length / ((last - t0) / 1000),
      p50Ms: percentile(lat, 0.5),
      p99Ms: percentile(lat, 0.99),
      peakRssMb: peak,
      cpuSeconds: cpu,
    };
  } finally {
    proc.kill('SIGTERM');
    await once(proc, 'exit');
    await sink.stop();
  }
}

/** A private Postfix instance relaying to smtp-sink: the reference store-and-forward MTA. */
async function postfixRun(msg: BenchMessage, count: number, sessions: number): Promise<SmtpResult['postfix']> {
  const sink = await startSmtpSink();
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
    `relayhost=[127.0.0.1]:${sink.port}`,
    'default_transport=smtp',
    'relay_transport=smtp',
    'maillog_file=/dev/stdout',
    'smtp_host_lookup=native',
    'smtp_dns_support_level=disabled',
    'default_process_limit=200',
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
  try {
    execFileSync('postfix', ['-c', conf, 'start'], { stdio: 'ignore' });
    await waitForPort(port, 10_000);
    const queued = () =>
      ['incoming', 'active', 'deferred', 'maildrop'].reduce((n, q) => {
        const d = path.join(queue, q);
        if (!existsSync(d)) return n;
        const walk = (p: string): number =>
          readdirSync(p, { withFileTypes: true }).reduce(
            (k, e) => k + (e.isDirectory() ? walk(path.join(p, e.name)) : 1),
            0,
          );
        return n + walk(d);
      }, 0);
    const t0 = performance.now();
    const r = await load(port, msg, count, sessions);
    const accepted = (performance.now() - t0) / 1000;
    if (r.code !== 0) throw new Error(`smtp-source → postfix failed: ${r.out}`);
    while (queued() > 0) await new Promise((res) => setTimeout(res, 50));
    const total = (performance.now() - t0) / 1000;
    return { acceptedPerSec: count / accepted, deliveredPerSec: count / total };
  } finally {
    try {
      execFileSync('postfix', ['-c', conf, 'stop'], { stdio: 'ignore' });
    } catch {
      /* not started */
    }
    pc('-e', `alternate_config_directories=${before}`);
    await sink.stop();
  }
}

export async function runSmtp(messages: BenchMessage[], quick: boolean): Promise<SmtpResult[]> {
  const countFor = (m: BenchMessage): number => {
    const c = m.bytes < 20_000 ? [500, 5000] : m.bytes < 500_000 ? [200, 2000] : [30, 200];
    return quick ? c[0] : c[1];
  };
  const sessions = 50;
  const postfixOk = hasBinary('postfix') && process.getuid?.() === 0;
  const results: SmtpResult[] = [];
  for (const msg of messages) {
    const count = countFor(msg);
    process.stderr.write(`smtp: ${msg.name} × ${count}, ${sessions} sessions…\n`);
    const direct = await sinkDirect(msg, count, sessions);
    const warmup = Math.min(300, Math.floor(count / 10));
    const gateway = await gatewayRun(msg, count, sessions, warmup);
    let postfix: SmtpResult['postfix'] = null;
    if (postfixOk) {
      try {
        postfix = await postfixRun(msg, count, sessions);
      } catch (err) {
        process.stderr.write(`postfix reference skipped: ${(err as Error).message}\n`);
      }
    }
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
  }
  return results;
}
