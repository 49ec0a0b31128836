// A real DNS server for the tests (issue 15): Debian's dnsmasq in the foreground on a loopback port,
// answering only from the records a test gives it — TXT (SPF, DKIM, DMARC, MTA-STS, long ones split into
// 255-byte strings as RFC 1035 requires), A, MX, PTR — and NXDOMAIN for anything else under the zones it
// is told are local (so nothing is ever forwarded). Restart it with other records with `reload`.
import { spawn, type ChildProcess } from 'node:child_process';
import { Resolver } from 'node:dns/promises';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import net from 'node:net';
import dgram from 'node:dgram';
import { tempDir } from './peers.ts';

export interface DnsRecords {
  /**
   * name → TXT value (one record per entry; a value longer than 255 bytes is split into strings; commas
   * are fine: such records go to a dnsmasq config file, where strings are quoted)
   */
  txt?: Array<[string, string]>;
  /** name → IPv4 address (exactly that name) */
  a?: Array<[string, string]>;
  /** domain → [exchange, preference] */
  mx?: Array<[string, string, number]>;
  /** IPv4 address → host name (the in-addr.arpa PTR record); not for 127.0.0.1, which dnsmasq answers itself */
  ptr?: Array<[string, string]>;
  /** zones answered only from these records (NXDOMAIN otherwise), e.g. ['test'] */
  localZones?: string[];
}

export interface TestDns {
  port: number;
  /** "127.0.0.1:PORT", for Resolver.setServers and the gateway's dns.servers */
  server: string;
  resolver(): Resolver;
  /** restarts with these records (same port) */
  reload(records: DnsRecords): Promise<void>;
  stop(): Promise<void>;
}

export const DNSMASQ = ['/usr/sbin/dnsmasq', '/usr/bin/dnsmasq'].find((p) => existsSync(p)) ?? null;

export function hasDnsmasq(): boolean {
  return DNSMASQ !== null;
}

/** A port free for both UDP and TCP on 127.0.0.1. */
async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const udpFree = await new Promise<boolean>((resolve) => {
      const u = dgram.createSocket('udp4');
      u.once('error', () => resolve(false));
      u.bind(port, '127.0.0.1', () => u.close(() => resolve(true)));
    });
    if (udpFree) return port;
  }
}

function args(port: number, r: DnsRecords): string[] {
  const out = [
    '--no-daemon',
    '--keep-in-foreground',
    `--port=${port}`,
    '--listen-address=127.0.0.1',
    '--bind-interfaces',
    '--no-resolv',
    '--no-hosts',
    '--no-poll',
    '--pid-file=',
    '--conf-file=/dev/null',
    '--user=root',
    '--cache-size=0',
  ];
  for (const z of [...(r.localZones ?? ['test']), 'in-addr.arpa']) out.push(`--local=/${z}/`);
  const quoted: string[] = [];
  for (const [name, value] of r.txt ?? []) {
    const chunks: string[] = [];
    for (let i = 0; i < value.length; i += 255) chunks.push(value.slice(i, i + 255));
    // dnsmasq reads "," as the separator of a record's strings; only its config file reads quoted strings
    // (which may hold commas), so such records go into one
    if (chunks.some((c) => c.includes(','))) {
      if (chunks.some((c) => /["\\]/.test(c))) throw new Error(`TXT value for ${name} has a comma and a quote`);
      quoted.push(`txt-record=${name},${chunks.map((c) => `"${c}"`).join(',')}`);
    } else out.push(`--txt-record=${name},${chunks.join(',')}`);
  }
  if (quoted.length) {
    const file = path.join(tempDir('bw-dnsmasq-'), 'txt.conf');
    writeFileSync(file, quoted.join('\n') + '\n');
    out[out.indexOf('--conf-file=/dev/null')] = `--conf-file=${file}`;
  }
  for (const [name, ip] of r.a ?? []) out.push(`--host-record=${name},${ip}`);
  for (const [domain, exchange, pref] of r.mx ?? []) out.push(`--mx-host=${domain},${exchange},${pref}`);
  for (const [ip, host] of r.ptr ?? [])
    out.push(`--ptr-record=${ip.split('.').reverse().join('.')}.in-addr.arpa,${host}`);
  return out;
}

async function launch(port: number, r: DnsRecords): Promise<ChildProcess> {
  if (!DNSMASQ) throw new Error('dnsmasq is not installed (run .ci/run)');
  const proc = spawn(DNSMASQ, args(port, r), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  // ready when it answers a query over UDP
  const probe = new Resolver({ timeout: 200, tries: 1 });
  probe.setServers([`127.0.0.1:${port}`]);
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`dnsmasq exited: ${out}`);
    try {
      await probe.resolveTxt('ready.probe.invalid');
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // any DNS answer (NXDOMAIN, refused) means it is up
      if (code && code !== 'ETIMEOUT' && code !== 'ECONNREFUSED') break;
    }
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`dnsmasq did not answer within 10 s: ${out}`);
    }
    await new Promise((res) => setTimeout(res, 50));
  }
  return proc;
}

function stopProc(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    proc.once('exit', () => resolve());
    proc.kill('SIGTERM');
    setTimeout(() => proc.kill('SIGKILL'), 3000).unref();
  });
}

export async function startDns(records: DnsRecords): Promise<TestDns> {
  const port = await freePort();
  let proc = await launch(port, records);
  return {
    port,
    server: `127.0.0.1:${port}`,
    resolver() {
      const r = new Resolver({ timeout: 1000, tries: 2 });
      r.setServers([`127.0.0.1:${port}`]);
      return r;
    },
    async reload(next) {
      await stopProc(proc);
      proc = await launch(port, next);
    },
    stop: () => stopProc(proc),
  };
}
