// Storage pressure: whether the data directory can take new mail. Every write path (spool journal,
// message files, held files, the database, the mail log) reports its ENOSPC/EIO failures here instead
// of crashing; ingress asks `accepting` at MAIL FROM and answers 452 4.3.1 while it is false (RFC 3463:
// "mail system full"). Acceptance resumes by itself once free space is back above the reserve — the
// same idea as Postfix's queue_minfree, plus a short hold after every real write failure so a reserve
// set too low cannot flap between 250 and 451.
import { statfs } from 'node:fs/promises';

/** Errors that mean "the disk cannot take this write now", not "this write was wrong". */
const STORAGE_ERROR_CODES = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EROFS', 'EFBIG']);

export function isStorageError(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false;
  const e = err as { code?: unknown; errcode?: unknown; message?: unknown };
  if (typeof e.code === 'string' && STORAGE_ERROR_CODES.has(e.code)) return true;
  // node:sqlite: SQLITE_FULL (13) and SQLITE_IOERR (10, with extended codes in the high bits)
  if (typeof e.errcode === 'number' && [13, 10].includes(e.errcode & 0xff)) return true;
  return typeof e.message === 'string' && /database or disk is full|disk I\/O error|ENOSPC|EIO\b/.test(e.message);
}

/**
 * "Out of space" (as opposed to a failing or read-only device): only these raise the reserve until
 * space is freed. An EIO frees no space when it ends, so after one the guard just holds for a while and
 * lets the next write tell whether the device works again.
 */
export function isSpaceError(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false;
  const e = err as { code?: unknown; errcode?: unknown; message?: unknown };
  if (typeof e.code === 'string') return ['ENOSPC', 'EDQUOT', 'EFBIG'].includes(e.code);
  if (typeof e.errcode === 'number') return (e.errcode & 0xff) === 13; // SQLITE_FULL
  return typeof e.message === 'string' && /database or disk is full|ENOSPC/.test(e.message);
}

export type StorageState =
  | { accepting: true }
  | { accepting: false; reason: 'below_reserve' | 'write_failed'; freeBytes: number | null; detail: string };

export interface StorageGuardOptions {
  dir: string;
  /** free bytes the file system must keep for new mail to be accepted */
  minFreeBytes: number;
  /** called on every change between accepting and not */
  onChange?: (state: StorageState) => void;
  /** how often free space is read while accepting / while not (ms) */
  checkEveryMs?: number;
  recheckEveryMs?: number;
  /** after a write failed for lack of space, refuse new mail for at least this long (ms) */
  holdAfterFailureMs?: number;
  /** after a write failure, how much more than was free then must be free before mail is taken again */
  resumeMarginBytes?: number;
}

export class StorageGuard {
  private state: StorageState = { accepting: true };
  private timer: NodeJS.Timeout | null = null;
  private lastFailureAt = 0;
  private lastFailure = '';
  /**
   * After a write failed for lack of space, the reserve is raised to what was free then plus a margin
   * until acceptance resumes: with a reserve set too low, a full disk would otherwise flap between
   * accepting (a byte free) and failing. The raise expires (`raisedUntil`), because ENOSPC also comes
   * with bytes to spare (no inodes left, a quota): freeing space must not be the only way back. Each
   * time acceptance resumes and fails again the expiry doubles, up to five minutes.
   */
  private raisedReserve = 0;
  private raiseReserve = false;
  private raisedUntil = 0;
  /** space failures that followed a resumption: the exponent of the next raise's lifetime */
  private relapses = 0;
  private freeInodes: number | null = null;
  private freeBytes: number | null = null;
  private totalBytes: number | null = null;
  private checking: Promise<void> | null = null;
  private stopped = false;
  /** write failures by path ("spool journal", "mail log", …) since start */
  readonly failures = new Map<string, number>();
  private readonly o: Required<Omit<StorageGuardOptions, 'onChange'>> & Pick<StorageGuardOptions, 'onChange'>;

  constructor(o: StorageGuardOptions) {
    this.o = { checkEveryMs: 5000, recheckEveryMs: 1000, holdAfterFailureMs: 5000, resumeMarginBytes: 4 << 20, ...o };
  }

  get accepting(): boolean {
    return this.state.accepting;
  }

  current(): StorageState {
    return this.state;
  }

  snapshot(): {
    accepting: boolean;
    reason: string | null;
    freeBytes: number | null;
    totalBytes: number | null;
    minFreeBytes: number;
    writeFailures: Record<string, number>;
  } {
    return {
      accepting: this.state.accepting,
      reason: this.state.accepting ? null : this.state.detail,
      freeBytes: this.freeBytes,
      totalBytes: this.totalBytes,
      minFreeBytes: this.o.minFreeBytes,
      writeFailures: Object.fromEntries(this.failures),
    };
  }

  async start(): Promise<void> {
    await this.check();
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /**
   * A write path failed. Storage errors stop acceptance at once (and are re-checked soon); returns
   * whether it was one, so callers can tell "disk full, retry later" from a bug.
   */
  reportFailure(where: string, err: unknown): boolean {
    if (!isStorageError(err)) return false;
    this.failures.set(where, (this.failures.get(where) ?? 0) + 1);
    this.lastFailureAt = Date.now();
    this.lastFailure = `${where}: ${(err as Error).message ?? String(err)}`;
    // The reserve is raised from a fresh reading (the last one may predate whatever filled the disk).
    if (isSpaceError(err)) {
      this.raiseReserve = true;
      // failing again within ten minutes of the last raise's expiry is a relapse; later, a new episode
      if (this.state.accepting)
        this.relapses = Date.now() - this.raisedUntil < 600_000 ? Math.min(this.relapses + 1, 6) : 0;
      this.raisedUntil = Date.now() + Math.min(this.o.holdAfterFailureMs * 2 ** this.relapses, 300_000);
    }
    if (this.state.accepting)
      this.set({ accepting: false, reason: 'write_failed', freeBytes: this.freeBytes, detail: this.lastFailure });
    this.schedule(this.o.recheckEveryMs);
    return true;
  }

  /** Reads free space now and updates the state. */
  check(): Promise<void> {
    this.checking ??= this.readFree().finally(() => (this.checking = null));
    return this.checking;
  }

  private async readFree(): Promise<void> {
    try {
      const fs = await statfs(this.o.dir);
      this.freeBytes = fs.bavail * fs.bsize;
      this.totalBytes = fs.blocks * fs.bsize;
      // file systems without an inode count report 0 files
      this.freeInodes = fs.files > 0 ? fs.ffree : null;
    } catch {
      // Cannot read it: judge by write failures alone.
      this.freeBytes = null;
    }
    if (this.raiseReserve) {
      this.raiseReserve = false;
      // Never above half the file system: freeing space must always be able to bring mail back.
      const cap = this.totalBytes ? Math.max(this.o.minFreeBytes, this.totalBytes / 2) : Infinity;
      const want = Math.min((this.freeBytes ?? 0) + this.o.resumeMarginBytes, cap);
      this.raisedReserve = Math.max(this.raisedReserve, want);
    }
    const held = Date.now() - this.lastFailureAt < this.o.holdAfterFailureMs;
    const below = this.freeBytes !== null && this.freeBytes < this.o.minFreeBytes;
    const noInodes = this.freeInodes === 0;
    const stillFull =
      this.raisedReserve > 0 &&
      Date.now() < this.raisedUntil &&
      (this.freeBytes === null || this.freeBytes < this.raisedReserve);
    if (below || noInodes)
      this.set({
        accepting: false,
        reason: 'below_reserve',
        freeBytes: this.freeBytes,
        detail: noInodes
          ? "no free inodes on the data directory's file system"
          : `${mib(this.freeBytes!)} free on the data directory's file system, reserve is ${mib(this.o.minFreeBytes)} (spool.minFree)`,
      });
    else if (held || stillFull)
      this.set({ accepting: false, reason: 'write_failed', freeBytes: this.freeBytes, detail: this.lastFailure });
    else {
      // space really came back: the next failure starts a new episode
      if (this.raisedReserve > 0 && this.freeBytes !== null && this.freeBytes >= this.raisedReserve) this.relapses = 0;
      this.raisedReserve = 0;
      this.set({ accepting: true });
    }
  }

  private set(next: StorageState): void {
    const changed = next.accepting !== this.state.accepting;
    this.state = next;
    if (changed) this.o.onChange?.(next);
  }

  private schedule(ms?: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    const wait = ms ?? (this.state.accepting ? this.o.checkEveryMs : this.o.recheckEveryMs);
    this.timer = setTimeout(() => {
      void this.check().then(() => this.schedule());
    }, wait);
    this.timer.unref();
  }
}

function mib(n: number): string {
  return `${(n / 1048576).toFixed(1)} MiB`;
}
