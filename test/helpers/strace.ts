// Syscall fault injection into a running process with strace's tampering (`-e inject=…`): the kernel
// makes chosen syscalls fail or wait, on chosen files only (`-P`), with no fault hooks in the product.
import { once } from 'node:events';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { hasBinary, waitFor } from './peers.ts';

/** strace can trace and tamper with a process here (installed; ptrace not forbidden by a sandbox) */
export function canTrace(): boolean {
  if (!hasBinary('strace')) return false;
  const r = spawnSync('strace', ['-f', '-o', '/dev/null', '-e', 'inject=getppid:error=EIO', 'true'], {
    timeout: 10_000,
  });
  return r.status === 0;
}

export interface Fault {
  stop(): Promise<void>;
}

/**
 * Tampers with `syscalls` of every thread of `pid` (only on `paths`, when given) until stop(): they
 * fail with `error`, or are held `delayMs` before they run; `when` picks which calls (strace's syntax:
 * `2` the second one only, `2+` from the second on). strace attaches to each thread, follows new ones,
 * and detaches on SIGINT.
 */
export async function injectFault(
  pid: number,
  fault: { error: 'EIO' | 'ENOSPC' } | { delayMs: number },
  syscalls: string[],
  paths: string[] = [],
  when?: string,
): Promise<Fault> {
  const list = syscalls.join(',');
  const how = 'error' in fault ? `error=${fault.error}` : `delay_enter=${fault.delayMs * 1000}`;
  const args = [
    '-f',
    '-o',
    '/dev/null',
    '-e',
    `trace=${list}`,
    '-e',
    `inject=${list}:${how}${when ? `:when=${when}` : ''}`,
  ];
  for (const p of paths) args.push('-P', p);
  // -f with -p seizes every thread of the process ("attached with N threads") and follows new ones
  args.push('-p', String(pid));
  const proc: ChildProcess = spawn('strace', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (d) => (err += d));
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGINT');
      await once(proc, 'exit');
    }
  };
  try {
    await waitFor(() => /attached/.test(err) || proc.exitCode !== null, 10_000, 'strace to attach');
    if (proc.exitCode !== null) throw new Error(`strace failed: ${err}`);
    await new Promise((r) => setTimeout(r, 500));
  } catch (e) {
    await stop();
    throw e;
  }
  return { stop };
}
