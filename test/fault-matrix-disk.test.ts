// The fault matrix, disk side (issue 10): each write path fails with EIO or ENOSPC while mail flows,
// injected by the kernel through strace's syscall tampering (`-e inject=…:error=EIO`, `-P` for one
// file) into a running `breakwater start` — no fault hooks in the product. For each cell: the process
// stays up, every refusal is temporary, every message that got a 250 is delivered with a tracking
// record, and acceptance resumes by itself once the fault is gone. A real full disk (a tmpfs) is in
// test/disk-full.test.ts; downstream, clamd and kill -9 faults in test/fault-matrix-flow.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { freePort, hasBinary, startSmtpSink, waitFor } from './helpers/peers.ts';
import { spawnGateway, testConfig, writeTestConfig } from './helpers/gateway.ts';
import { sendFiller, waitForAsync } from './helpers/rawsmtp.ts';
import { canTrace, injectFault, type Fault } from './helpers/strace.ts';

const skip = !hasBinary('smtp-sink')
  ? 'Postfix smtp-sink is not installed (run .ci/run)'
  : canTrace()
    ? false
    : 'needs strace, and ptrace allowed, to inject syscall faults (run .ci/run)';

async function api(adminPort: number, token: string, p: string): Promise<any> {
  const r = await fetch(`http://127.0.0.1:${adminPort}/api/v1${p}`, { headers: { authorization: `Bearer ${token}` } });
  return r.json();
}

const FILE_WRITES = ['pwrite64', 'pwritev', 'fdatasync', 'fsync'];

const cells: Array<{
  name: string;
  error: 'EIO' | 'ENOSPC';
  syscalls: string[];
  paths?: (dataDir: string) => string[];
  /** the fault must make the gateway refuse new mail (the spool cannot take it) */
  refuses: boolean;
}> = [
  { name: 'every file write and sync fails with EIO', error: 'EIO', syscalls: FILE_WRITES, refuses: true },
  { name: 'every file write and sync fails with ENOSPC', error: 'ENOSPC', syscalls: FILE_WRITES, refuses: true },
  {
    // the journal only: small messages fail at the end of DATA, large ones (files of their own) pass.
    // A segment whose messages are all delivered is removed and the next number opened, so the
    // current segments and the next few are named.
    name: 'the spool journal fails with EIO',
    error: 'EIO',
    syscalls: [...FILE_WRITES, 'openat'],
    paths: (d) => {
      const numbers = readdirSync(path.join(d, 'spool'))
        .map((f) => /^seg-(\d+)\.log$/.exec(f)?.[1])
        .filter((n): n is string => !!n)
        .map(Number);
      const first = Math.min(...numbers, Infinity) === Infinity ? 1 : Math.min(...numbers);
      return Array.from({ length: 40 }, (_, i) =>
        path.join(d, 'spool', `seg-${String(first + i).padStart(8, '0')}.log`),
      );
    },
    refuses: true,
  },
  {
    name: 'the database fails with EIO',
    error: 'EIO',
    syscalls: FILE_WRITES,
    paths: (d) => ['', '-wal', '-journal'].map((s) => path.join(d, `breakwater.db${s}`)),
    refuses: false,
  },
  {
    name: 'the mail log fails with ENOSPC',
    error: 'ENOSPC',
    syscalls: ['write', 'writev', 'pwrite64'],
    paths: (d) => [path.join(d, 'logs', 'mail.log')],
    refuses: false,
  },
];

for (const cell of cells) {
  test(
    `fault matrix: ${cell.name} — the process stays up, nothing acknowledged is lost, acceptance resumes`,
    {
      skip,
      timeout: 120_000,
    },
    async (t) => {
      const sink = await startSmtpSink({ dump: true });
      const adminPort = await freePort();
      const inPort = await freePort();
      const doc = testConfig({
        routes: { '*': [`smtp://127.0.0.1:${sink.port}`] },
        admin: { host: '127.0.0.1', port: adminPort },
        spool: { fsync: true, minFree: '0B' },
        outbreakFilters: { enabled: false },
        clickTime: { enabled: false },
      });
      (doc.listeners as any[])[0].port = inPort;
      (doc.listeners as any[]).splice(1, 1);
      const { file, dir } = writeTestConfig(doc);
      const dataDir = path.join(dir, 'data');
      const gw = await spawnGateway(file);
      let fault: Fault | null = null;
      try {
        const token = readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();
        const accepted: string[] = [];
        const refusals: string[] = [];
        const sendOne = async (subject: string, bytes: number) => {
          const r = await sendFiller(inPort, subject, bytes);
          if (r.stage === 'end' && r.reply.startsWith('250')) accepted.push(subject);
          else refusals.push(`${r.stage}: ${r.reply}`);
          return r;
        };
        for (let i = 0; i < 2; i++) assert.match((await sendOne(`before-${i}`, 5_000)).reply, /^250 /);

        fault = await injectFault(gw.proc.pid!, { error: cell.error }, cell.syscalls, cell.paths?.(dataDir));
        // small messages go to the shared journal, large ones to files of their own
        for (let i = 0; i < 6; i++) await sendOne(`during-${i}`, i % 2 ? 400_000 : 5_000);
        assert.equal(gw.proc.exitCode, null, `the gateway exited: ${gw.output().slice(-2000)}`);
        t.diagnostic(`${accepted.length} accepted; refusals: ${[...new Set(refusals)].join(' | ') || 'none'}`);
        assert.ok(
          refusals.every((r) => /^4\d\d /.test(r.replace(/^\w+: /, ''))),
          `every refusal is temporary: ${refusals.join(' | ')}`,
        );
        if (cell.refuses) assert.ok(refusals.length > 0, 'mail the spool cannot store is refused, not acknowledged');
        await fault.stop();
        fault = null;

        // The fault is over: acceptance resumes without a restart.
        const again = await waitForAsync(
          async () => {
            const r = await sendFiller(inPort, 'after-fault', 1000);
            return r.stage === 'end' && r.reply.startsWith('250') ? r : null;
          },
          45_000,
          'acceptance to resume',
        );
        assert.match(again.reply, /^250 /);
        accepted.push('after-fault');
        assert.equal(gw.proc.exitCode, null);

        // Every acknowledged message is delivered, and tracking says so.
        await waitFor(
          () => {
            const bodies = sink.messages().map((m) => m.body);
            return accepted.every((s) => bodies.some((b) => b.includes(`unique ${s}\n`)));
          },
          60_000,
          'every accepted message delivered',
        ).catch(() => {
          const bodies = sink.messages().map((m) => m.body);
          assert.deepEqual(
            accepted.filter((s) => !bodies.some((b) => b.includes(`unique ${s}\n`))),
            [],
            'accepted but not delivered',
          );
        });
        for (const subject of accepted) {
          const rec = await waitForAsync(
            async () => {
              const r = await api(adminPort, token, `/tracking/messages?subject=${encodeURIComponent(subject)}`);
              return (r.messages as any[]).find((m) => m.subject === subject && m.status === 'delivered') ?? null;
            },
            30_000,
            `tracking of ${subject}`,
          );
          assert.equal(rec.status, 'delivered', subject);
        }
        if (cell.paths && cell.name.includes('mail log')) {
          const log = await waitFor(
            () => {
              const text = readFileSync(path.join(dataDir, 'logs', 'mail.log'), 'utf8');
              return /line\(s\) could not be written/.test(text) ? text : null;
            },
            20_000,
            'the mail log to report its lost lines',
          );
          assert.match(log, /after-fault/, 'the mail log is written again');
        }
      } finally {
        await fault?.stop();
        if (gw.proc.exitCode === null) {
          gw.proc.kill('SIGTERM');
          await once(gw.proc, 'exit');
        }
        await sink.stop();
      }
    },
  );
}
