// Starts a gateway for a test: a fresh data directory, dynamic ports, config overrides.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import YAML from 'yaml';
import { validateConfig, type LoadedConfig } from '../../src/config/load.ts';
import { runGateway, type RunningGateway } from '../../src/gateway/run.ts';
import { once } from 'node:events';
import { readAdminToken } from '../../src/api/token.ts';
import type { TrackingRecord } from '../../src/tracking/tracker.ts';
import { tempDir, waitFor } from './peers.ts';

// Every admin API answer in the tests is checked against its route schema (src/api/validation.ts), in
// this process and in gateways the tests spawn: the OpenAPI document cannot drift from what is sent.
process.env.BREAKWATER_API_CHECK_RESPONSES ??= '1';

export function testConfig(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    hostname: 'gw.test',
    listeners: [
      {
        name: 'incoming',
        host: '127.0.0.1',
        port: 0,
        direction: 'incoming',
        acceptDomains: ['dst.test', 'example.test'],
        hat: [{ name: 'loopback', match: ['127.0.0.0/8', '::1'], action: 'accept', earlyTalkerDelay: '0ms' }],
      },
      {
        name: 'outgoing',
        host: '127.0.0.1',
        port: 0,
        direction: 'outgoing',
        hat: [{ name: 'relay', match: ['127.0.0.0/8', '::1'], action: 'relay', earlyTalkerDelay: '0ms' }],
        defaultAction: 'reject',
      },
    ],
    admin: { host: '127.0.0.1', port: 0 },
    clickTime: { host: '127.0.0.1', port: 0 },
    delivery: { retrySchedule: ['1s'], maxQueueLifetime: '1h', connectTimeout: '2s' },
    // Sender authentication asks DNS and adds a header: tests that want it turn it on with a test DNS
    // server (test/sender-auth.e2e.test.ts); the others keep comparing delivered bytes with sent ones.
    senderAuth: { enabled: false },
    ...overrides,
  };
}

export function writeTestConfig(doc: Record<string, unknown>, dir?: string): { file: string; dir: string } {
  const d = dir ?? tempDir('bw-gw-');
  const file = path.join(d, 'breakwater.yaml');
  writeFileSync(file, YAML.stringify({ dataDir: './data', ...doc }));
  return { file, dir: d };
}

export async function startTestGateway(
  doc: Record<string, unknown>,
  inDir?: string,
): Promise<RunningGateway & { dataDir: string; dir: string; port(name: string): number }> {
  const { file, dir } = writeTestConfig(doc, inDir);
  const v = validateConfig(YAML.parse(YAML.stringify({ dataDir: './data', ...doc })));
  if (!v.config) throw new Error('bad test config: ' + JSON.stringify(v.errors));
  const loaded: LoadedConfig = { config: v.config, file, dataDir: path.join(dir, 'data') };
  const running = await runGateway(loaded);
  return {
    ...running,
    dataDir: loaded.dataDir,
    dir,
    port: (name: string) => running.gateway.ports.get(name)!,
  };
}

/** Runs the gateway as a child process (`breakwater start`), for crash tests. */
export async function spawnGateway(
  configFile: string,
  /** more options for node (e.g. `--import` of a module that injects a fault) */
  nodeArgs: string[] = [],
): Promise<{ proc: ChildProcess; output: () => string; ports: Map<string, number>; adminPort: number }> {
  const bin = path.resolve(import.meta.dirname, '../../bin/breakwater.js');
  const proc = spawn(
    process.execPath,
    ['--max-semi-space-size=16', ...nodeArgs, bin, 'start', '--config', configFile],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const ports = new Map<string, number>();
  await waitFor(() => out.includes('admin API on') || proc.exitCode !== null, 15_000, 'gateway start');
  if (proc.exitCode !== null) throw new Error(`gateway exited: ${out}`);
  for (const m of out.matchAll(/listener (\S+) on port (\d+)/g)) ports.set(m[1], Number(m[2]));
  const adminPort = Number(/admin API on http:\/\/[^\s:]+:(\d+)/.exec(out)?.[1]);
  return { proc, output: () => out, ports, adminPort };
}

/**
 * A `breakwater start` child process on a config of its own (ports 0: each start gets new ones), for
 * tests that kill -9 it and start it again on the same data directory.
 */
export class ChildGateway {
  readonly file: string;
  readonly dataDir: string;
  private child!: Awaited<ReturnType<typeof spawnGateway>>;
  /** output of the earlier runs of this gateway (before kills and restarts) */
  private earlier = '';

  private constructor(file: string, dir: string) {
    this.file = file;
    this.dataDir = path.join(dir, 'data');
  }

  static async start(doc: Record<string, unknown>): Promise<ChildGateway> {
    const { file, dir } = writeTestConfig(doc);
    const gw = new ChildGateway(file, dir);
    gw.child = await spawnGateway(file);
    return gw;
  }

  get proc(): ChildProcess {
    return this.child.proc;
  }

  port(listener: string): number {
    return this.child.ports.get(listener)!;
  }

  /** still running (not exited, not killed) */
  alive(): boolean {
    return this.child.proc.exitCode === null && this.child.proc.signalCode === null;
  }

  /** output of every run so far */
  output(): string {
    return this.earlier + this.child.output();
  }

  /** kill -9, waits for the exit */
  async kill(): Promise<void> {
    await endProcess(this.child.proc, 'SIGKILL');
    this.earlier += this.child.output() + '\n--- killed ---\n';
  }

  /** starts again on the same config and data directory (after kill()) */
  async restart(): Promise<void> {
    if (this.alive()) throw new Error('the gateway is still running');
    this.child = await spawnGateway(this.file);
  }

  /** SIGTERM (graceful stop), waits for the exit */
  async stop(): Promise<void> {
    await endProcess(this.child.proc, 'SIGTERM');
  }

  /** The admin API (bearer token from the data directory); throws on a status other than 2xx. */
  async api(method: string, route: string, body?: unknown): Promise<any> {
    return adminJson(`http://127.0.0.1:${this.child.adminPort}/api/v1${route}`, this.dataDir, method, body);
  }

  /** The tracking record of a MID (GET /tracking/messages/:mid), or null when there is none. */
  async track(mid: number): Promise<TrackingRecord | null> {
    return this.api('GET', `/tracking/messages/${mid}`).catch((err: Error) => {
      if (/: 404 /.test(err.message)) return null;
      throw err;
    });
  }
}

/** Sends `signal` to a child process (unless it has exited) and waits for the exit. */
export async function endProcess(proc: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = once(proc, 'exit');
  proc.kill(signal);
  await exited;
}

/** A JSON call with the admin token of `dataDir` (gateway or hub); throws on a status other than 2xx. */
export async function adminJson(url: string, dataDir: string, method: string, body?: unknown): Promise<any> {
  const r = await fetch(url, {
    method,
    headers: {
      authorization: `Bearer ${readAdminToken(dataDir)}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const json = await r.json();
  if (!r.ok) throw new Error(`${method} ${url}: ${r.status} ${JSON.stringify(json)}`);
  return json;
}

/** The CLI against an in-process gateway of `dir` (asynchronously: the gateway answers from this event loop). */
export function breakwaterCli(
  dir: string,
  args: string[],
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const bin = path.resolve(import.meta.dirname, '../../bin/breakwater.js');
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [bin, ...args, '--config', path.join(dir, 'breakwater.yaml')]);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}
