// `breakwater hub start` as a child process, for tests and benchmarks.
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { readAdminToken } from '../../src/api/token.ts';

/** `breakwater hub start` as a child process; its URL and admin token. */
export async function spawnHub(file: string): Promise<{ proc: ChildProcess; url: string; token: string }> {
  const bin = path.resolve(import.meta.dirname, '../../bin/breakwater.js');
  const proc = spawn(process.execPath, [bin, 'hub', 'start', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const deadline = Date.now() + 15_000;
  while (!/hub on (http:\S+)/.test(out)) {
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`hub did not start: ${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const url = /hub on (http:\S+)/.exec(out)![1];
  return { proc, url, token: readAdminToken(path.join(path.dirname(file), 'data'))! };
}
