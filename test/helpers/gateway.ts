// Starts a gateway for a test: a fresh data directory, dynamic ports, config overrides.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import YAML from 'yaml';
import { validateConfig, type LoadedConfig } from '../../src/config/load.ts';
import { runGateway, type RunningGateway } from '../../src/gateway/run.ts';
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
): Promise<{ proc: ChildProcess; output: () => string; ports: Map<string, number> }> {
  const bin = path.resolve(import.meta.dirname, '../../bin/breakwater.js');
  const proc = spawn(process.execPath, ['--max-semi-space-size=16', bin, 'start', '--config', configFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const ports = new Map<string, number>();
  await waitFor(() => out.includes('admin API on') || proc.exitCode !== null, 15_000, 'gateway start');
  if (proc.exitCode !== null) throw new Error(`gateway exited: ${out}`);
  for (const m of out.matchAll(/listener (\S+) on port (\d+)/g)) ports.set(m[1], Number(m[2]));
  return { proc, output: () => out, ports };
}
