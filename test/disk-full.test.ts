// A full disk never takes the gateway down and never loses an acknowledged message: the data directory
// on a small tmpfs (mounted by the test; needs root) is filled up for real. Elsewhere the mail log's
// write path is tested against /dev/full, which fails every write with ENOSPC, without root.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import path from 'node:path';
import { deadPort, hasBinary, startSmtpSink, waitFor, freePort, tempDir } from './helpers/peers.ts';
import { spawnGateway, testConfig, writeTestConfig } from './helpers/gateway.ts';
import { sendFiller as send, waitForAsync } from './helpers/rawsmtp.ts';
import { MailLog } from '../src/tracking/maillog.ts';
import { StorageGuard } from '../src/spool/storage.ts';

function canMountTmpfs(): boolean {
  if (process.getuid?.() !== 0) return false;
  const probe = tempDir('bw-tmpfs-probe-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], { stdio: 'ignore' });
    execFileSync('umount', [probe], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const skipTmpfs = !hasBinary('smtp-sink')
  ? 'Postfix smtp-sink is not installed (run .ci/run)'
  : canMountTmpfs()
    ? false
    : 'needs root to mount a tmpfs (the /dev/full tests below cover the mail log without it)';

async function api(adminPort: number, token: string, p: string): Promise<any> {
  const r = await fetch(`http://127.0.0.1:${adminPort}/api/v1${p}`, { headers: { authorization: `Bearer ${token}` } });
  return r.json();
}

for (const variant of [
  { name: 'with no reserve: real ENOSPC on every write path', minFree: '0B', leaveFree: 3 << 20 },
  { name: 'below the reserve: refused before the disk is full', minFree: '6MiB', leaveFree: 8 << 20 },
]) {
  test(
    `disk full ${variant.name}: the process stays up, MAIL FROM gets 452 4.3.1, acceptance resumes by itself, nothing acknowledged is lost`,
    { skip: skipTmpfs, timeout: 180_000 },
    async (t) => {
      const dir = tempDir('bw-diskfull-');
      const dataDir = path.join(dir, 'data');
      mkdirSync(dataDir);
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', dataDir]);
      // downstream is down until the end: a held port, so no other test's server answers in its place
      const sinkDead = await deadPort();
      const sinkPort = sinkDead.port;
      const adminPort = await freePort();
      const inPort = await freePort();
      const doc = testConfig({
        routes: { '*': [`smtp://127.0.0.1:${sinkPort}`] },
        admin: { host: '127.0.0.1', port: adminPort },
        delivery: { retrySchedule: ['1s'], maxQueueLifetime: '1h', connectTimeout: '1s' },
        spool: { fsync: true, minFree: variant.minFree },
        outbreakFilters: { enabled: false },
        clickTime: { enabled: false },
      });
      (doc.listeners as any[])[0].port = inPort;
      (doc.listeners as any[]).splice(1, 1);
      const { file } = writeTestConfig(doc, dir);
      let gw: Awaited<ReturnType<typeof spawnGateway>> | null = null;
      let sink: Awaited<ReturnType<typeof startSmtpSink>> | null = null;
      try {
        gw = await spawnGateway(file);
        const token = readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();
        // Fill the file system, leaving a little room that the mail then uses up.
        const fs0 = await statfs(dataDir);
        const filler = path.join(dataDir, 'filler.bin');
        const fillBytes = fs0.bavail * fs0.bsize - variant.leaveFree;
        writeFileSync(filler, Buffer.alloc(Math.max(0, fillBytes), 1));

        // A refused connection means the listener is gone: the error says why, with the gateway's last words.
        const sendOrExplain = (subject: string, bytes: number) =>
          send(inPort, subject, bytes).catch((err: Error) => {
            throw new Error(
              `${subject}: ${err.message}; gateway exit ${gw!.proc.exitCode} ${gw!.proc.signalCode}: ${gw!.output().slice(-3000)}`,
            );
          });
        const accepted: string[] = [];
        const refusals: string[] = [];
        let sawMailFrom452 = false;
        for (let i = 0; i < 120 && !sawMailFrom452; i++) {
          // Mixed sizes: small ones go to the shared journal, large ones to files of their own.
          const subject = `fill-${i}`;
          const r = await sendOrExplain(subject, i % 3 === 2 ? 400_000 : 5_000);
          if (r.stage === 'end' && r.reply.startsWith('250')) accepted.push(subject);
          else refusals.push(`${r.stage}: ${r.reply}`);
          if (r.stage === 'mail' && /^452 4\.3\.1 /.test(r.reply)) sawMailFrom452 = true;
          assert.equal(gw.proc.exitCode, null, `the gateway exited: ${gw.output().slice(-2000)}`);
        }
        t.diagnostic(
          `${accepted.length} accepted before the disk filled; refusals: ${[...new Set(refusals)].join(' | ')}`,
        );
        assert.ok(
          sawMailFrom452,
          `new mail is refused at MAIL FROM with 452 4.3.1 (${refusals.slice(-3).join(' | ')})`,
        );
        assert.ok(
          refusals.every((r) => /^4\d\d /.test(r.replace(/^\w+: /, ''))),
          `every refusal is temporary: ${refusals.join(' | ')}`,
        );
        assert.ok(accepted.length > 0, 'some mail was accepted before the disk filled');
        // Still alive and answering its API, which reports the state.
        const status = await api(adminPort, token, '/status');
        assert.equal(status.storage.accepting, false, JSON.stringify(status.storage));

        // Space frees up (the operator deletes something): acceptance resumes with no restart.
        rmSync(filler);
        const again = await waitForAsync(
          async () => {
            const r = await sendOrExplain('after-space-freed', 1000);
            return r.stage === 'end' && r.reply.startsWith('250') ? r : null;
          },
          30_000,
          'acceptance to resume',
        ).catch(async () => sendOrExplain('after-space-freed', 1000));
        assert.match(
          again.reply,
          /^250 /,
          `accepted again once space is free: ${again.stage} ${again.reply} ${JSON.stringify((await api(adminPort, token, '/status')).storage)}`,
        );
        accepted.push('after-space-freed');
        assert.equal(gw.proc.exitCode, null);

        // One critical system alert for the full disk (repeats suppressed), then one that it is over.
        const resolvedAlerts = await waitForAsync(
          async () => {
            const list = (await api(adminPort, token, '/alerts')) as { alerts?: any[] } | any[];
            const rows: any[] = Array.isArray(list) ? list : (list.alerts ?? []);
            return rows.some((a) => a.key === 'system.storage_ok') ? rows : null;
          },
          20_000,
          'storage alerts',
        );
        assert.equal(resolvedAlerts.filter((a: any) => a.key === 'system.storage_full').length, 1);

        // Downstream comes up: every acknowledged message is delivered.
        await sinkDead.release();
        sink = await startSmtpSink({ dump: true, port: sinkPort });
        const missing = await waitFor(
          () => {
            const bodies = sink!.messages().map((m) => m.body);
            const left = accepted.filter((s) => !bodies.some((b) => b.includes(`unique ${s}\n`)));
            return left.length === 0 ? [] : null;
          },
          90_000,
          'every accepted message delivered',
        ).catch(() => {
          const bodies = sink!.messages().map((m) => m.body);
          return accepted.filter((s) => !bodies.some((b) => b.includes(`unique ${s}\n`)));
        });
        assert.deepEqual(missing, [], 'accepted but not delivered');
        // The mail log survived: it is still being written after the disk was full.
        const log = readFileSync(path.join(dataDir, 'logs', 'mail.log'), 'utf8');
        assert.match(log, /storage: space is back above the reserve/);
      } finally {
        if (gw && gw.proc.exitCode === null) {
          gw.proc.kill('SIGTERM');
          await once(gw.proc, 'exit');
        }
        await sink?.stop();
        await sinkDead.release();
        try {
          execFileSync('umount', ['-l', dataDir]);
        } catch {
          /* already gone */
        }
      }
    },
  );
}

test('the mail log survives ENOSPC on every write (/dev/full): lines are counted, never fatal', async () => {
  if (!existsSync('/dev/full')) return;
  const dir = tempDir('bw-maillog-full-');
  symlinkSync('/dev/full', path.join(dir, 'mail.log'));
  const log = new MailLog(dir, 1 << 30, 3);
  const errors: string[] = [];
  log.onWriteError = (e) => errors.push(e.code ?? e.message);
  for (let i = 0; i < 50; i++) log.info(`MID ${i} line that cannot be written`);
  await new Promise((r) => setTimeout(r, 50));
  for (let i = 0; i < 50; i++) log.warning(`MID ${i} another`);
  await log.close();
  assert.equal(log.health.droppedLines, 100);
  assert.ok(errors.length >= 1 && errors.every((c) => c === 'ENOSPC'), errors.join(','));
  assert.match(log.health.lastError ?? '', /ENOSPC/);
});

test('the mail log reports the lines it lost once it can write again', async () => {
  const dir = tempDir('bw-maillog-recover-');
  const log = new MailLog(dir, 1 << 30, 3);
  // Fail the next write the way a full disk does, then let the file system work again.
  const fs = await import('node:fs');
  const fd = (log as unknown as { fd: number }).fd;
  const full = fs.openSync('/dev/full', 'w');
  (log as unknown as { fd: number }).fd = full;
  log.info('lost line');
  await new Promise((r) => setTimeout(r, 30));
  (log as unknown as { fd: number }).fd = fd;
  log.info('kept line');
  await log.close();
  fs.closeSync(full);
  const text = readFileSync(path.join(dir, 'mail.log'), 'utf8');
  assert.match(text, /mail log: 1 line\(s\) could not be written \(ENOSPC/);
  assert.match(text, /kept line/);
  assert.doesNotMatch(text, /lost line/);
});

test('the storage guard refuses below the reserve and after a write failure, and resumes by itself', async () => {
  const dir = tempDir('bw-guard-');
  const changes: boolean[] = [];
  const fs0 = await statfs(dir);
  const free = fs0.bavail * fs0.bsize;
  // A reserve above what is free: refused at once.
  const high = new StorageGuard({ dir, minFreeBytes: free * 2, onChange: (s) => changes.push(s.accepting) });
  await high.start();
  assert.equal(high.accepting, false);
  assert.match(high.snapshot().reason ?? '', /reserve/);
  high.stop();
  // No reserve: accepting until a write fails for lack of space, then again after the hold.
  // (A negative margin stands for "space was freed since": the shared /tmp cannot be emptied by a test.)
  const g = new StorageGuard({
    dir,
    minFreeBytes: 0,
    holdAfterFailureMs: 200,
    recheckEveryMs: 50,
    resumeMarginBytes: -(256 << 20),
  });
  assert.equal(g.accepting, true);
  const enospc = Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
  assert.equal(g.reportFailure('spool journal', enospc), true);
  assert.equal(g.accepting, false);
  assert.equal(g.reportFailure('spool journal', new Error('a bug')), false, 'a bug is not a storage error');
  await g.start();
  assert.equal(g.accepting, false, 'held right after the failure');
  await waitFor(() => g.accepting, 3000, 'acceptance to resume after the hold');
  assert.deepEqual(g.snapshot().writeFailures, { 'spool journal': 1 });
  g.stop();
  // A write failed with space known: no flapping back to accepting until clearly more is free, or
  // until the raised reserve expires (ENOSPC also comes with bytes to spare: no inodes, a quota);
  // each failure right after resuming doubles the expiry.
  const f = new StorageGuard({
    dir,
    minFreeBytes: 0,
    holdAfterFailureMs: 200,
    recheckEveryMs: 20,
    resumeMarginBytes: free,
  });
  await f.start();
  const full = () => Object.assign(new Error('database or disk is full'), { errcode: 13 });
  f.reportFailure('database', full());
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(f.accepting, false, 'still refused: no space was freed since the failure');
  await waitFor(() => f.accepting, 3000, 'acceptance to resume once the raised reserve expires');
  const relapse = Date.now();
  f.reportFailure('database', full());
  await waitFor(() => f.accepting, 5000, 'acceptance to resume after the relapse');
  assert.ok(Date.now() - relapse >= 380, `a relapse holds twice as long (${Date.now() - relapse} ms)`);
  f.stop();
});
