// System alerts (DESIGN §6): the data disk crossing the reserve (new mail refused with 452 4.3.1, then
// accepted again), the spool's file system filling up, the queue growing. Each alerts when a threshold
// is crossed upward, and not again while it stays there.
import { statfs } from 'node:fs/promises';
import type { StorageState } from '../spool/storage.ts';
import type { AlertInput } from './alerts.ts';

/** Messages scanning or waiting for delivery beyond which a system alert goes out. */
const QUEUE_ALERT_THRESHOLD = 10_000;

export interface SystemHealthDeps {
  dataDir: string;
  minFreeBytes: number;
  raiseAlert: (a: AlertInput) => void;
  log: { info(line: string): void; warning(line: string): void };
  /** copies in flight (scanning, queued, deferred) */
  queued: () => number;
}

export class SystemHealth {
  private readonly deps: SystemHealthDeps;
  /** the disk threshold last crossed */
  private diskLevel = 0;
  private queueAlerted = false;

  constructor(deps: SystemHealthDeps) {
    this.deps = deps;
  }

  /** The data disk crossed the reserve (or a write failed for lack of space), or it has room again. */
  storageChanged(s: StorageState): void {
    const { log, raiseAlert, dataDir } = this.deps;
    if (!s.accepting) {
      log.warning(`storage: not accepting new mail (452 4.3.1): ${s.detail}`);
      raiseAlert({
        class: 'system',
        severity: 'critical',
        key: 'system.storage_full',
        title: 'data disk full: new mail is refused with 452 4.3.1',
        text: `The gateway stopped accepting new mail: ${s.detail}. Mail already accepted is kept and delivered; senders retry later. Free space under ${dataDir} (or raise its file system's size); acceptance resumes by itself once at least spool.minFree is free.`,
        data: { reason: s.reason, freeBytes: s.freeBytes, minFreeBytes: this.deps.minFreeBytes },
      });
    } else {
      log.info('storage: space is back above the reserve; accepting new mail again');
      raiseAlert({
        class: 'system',
        severity: 'info',
        key: 'system.storage_ok',
        title: 'data disk has room again: accepting new mail',
        text: `Free space under ${dataDir} is back above spool.minFree; the gateway accepts new mail again.`,
        data: {},
      });
    }
  }

  /** The spool's file system filling up, the queue growing (checked on a timer). */
  async check(): Promise<void> {
    const { dataDir, raiseAlert } = this.deps;
    try {
      const fs = await statfs(dataDir);
      const used = fs.blocks > 0 ? ((fs.blocks - fs.bavail) / fs.blocks) * 100 : 0;
      const level = used >= 95 ? 95 : used >= 90 ? 90 : 0;
      if (level > this.diskLevel)
        raiseAlert({
          class: 'system',
          severity: level >= 95 ? 'critical' : 'warning',
          key: `system.disk:${level}`,
          title: `the data directory's file system is ${used.toFixed(0)} % full`,
          text: `The file system holding ${dataDir} (spool, quarantines, database) is ${used.toFixed(1)} % full, ${Math.round((fs.bavail * fs.bsize) / 1048576)} MiB left. When it is full, the gateway answers 4xx to new mail.`,
          data: { percent: Math.round(used * 10) / 10, freeBytes: fs.bavail * fs.bsize },
        });
      this.diskLevel = level;
    } catch (err) {
      this.deps.log.warning(`system check: cannot read the file system of ${dataDir}: ${(err as Error).message}`);
    }
    const queued = this.deps.queued();
    const growing = queued >= QUEUE_ALERT_THRESHOLD;
    if (growing && !this.queueAlerted)
      raiseAlert({
        class: 'system',
        severity: 'warning',
        key: 'system.queue',
        title: `${queued} messages in the queue`,
        text: `${queued} messages are being scanned or waiting for delivery (alert threshold ${QUEUE_ALERT_THRESHOLD}). Check the downstream mail servers (breakwater queue list) and clamd.`,
        data: { queued, threshold: QUEUE_ALERT_THRESHOLD },
      });
    this.queueAlerted = growing;
  }
}
