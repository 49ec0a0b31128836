// A small pool of parse worker threads (DESIGN §2: worker threads where CPU-bound work needs them).
// Every message is parsed off the event loop: even for 5 KB mail, handing the bytes to a worker costs
// less event-loop time than parsing them there (measured: ~1,150 instead of ~900 msg/s end to end).
// Messages below SMALL_MESSAGE_BYTES stay on the event loop; 0 means none do.
import { Worker } from 'node:worker_threads';
import os from 'node:os';
import { parseMessage } from './parse.ts';
import { ParseTimeoutError, type ParseLimits, type ParsedMessage } from './types.ts';
import type { ModifyRequest, ParseRequest, WorkerReply } from './worker.ts';
import type { RulesMessage, ScoreRequest, ScoreResult, UrlRulesRequest } from '../outbreak/offload.ts';
import type { ModificationJob, ModificationOutcome } from '../flow/modification-job.ts';

export const SMALL_MESSAGE_BYTES = 0;

interface Pending {
  /** a parse job's result; a modification job's result (or null) through `modified` instead */
  resolve: (p: ParsedMessage) => void;
  modified?: (m: ModificationOutcome | null) => void;
  reject: (e: Error) => void;
  /** present when the worker also scores the message (outbreak/offload.ts) */
  score: { resolve: (r: ScoreResult | null) => void; reject: (e: Error) => void } | null;
  worker: PoolWorker;
  /** how long the job may go without an answer before its worker counts as stuck */
  stuckAfterMs: number;
}

interface PoolWorker {
  worker: Worker;
  busy: number;
  /** generation of the rule bundle this worker was last sent */
  rulesGeneration: number | null;
  /** performance.now() of its last answer (or of the job that made it busy) */
  progress: number;
}

/** Outbreak scoring done by the worker after the parse: how long it may take, at most, before the worker is replaced. */
export const SCORE_BUDGET_MS = 5_000;

/** A modification on a worker: how long it may take before the worker counts as stuck and is replaced. */
export const MODIFY_BUDGET_MS = 30_000;

/** A parse, and when asked for, the worker's outbreak score of the same message. */
export interface ParseJob {
  parsed: Promise<ParsedMessage>;
  /** null when not asked for; resolves to null when the worker could not score (the caller scores) */
  score: Promise<ScoreResult | null> | null;
}

export class ParsePool {
  private readonly workers: PoolWorker[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private readonly size: number;
  private closed = false;

  constructor(size: number | 'auto' = 'auto') {
    // Two workers even on two cores: measured on 2 vCPUs, the second one raised 60 KB HTML with every
    // link rewritten from 105–118 to 137 delivered/s and cut accept→delivered p99 at half load, because
    // the event loop leaves the second core half idle while one worker is the queue (docs/benchmarks.md).
    if (size === 'auto') size = Math.max(2, Math.min(4, os.availableParallelism() - 1));
    this.size = size;
  }

  private spawn(): PoolWorker {
    const w: PoolWorker = {
      worker: new Worker(new URL('./worker.ts', import.meta.url)),
      busy: 0,
      rulesGeneration: null,
      progress: performance.now(),
    };
    w.worker.unref();
    w.worker.on('message', (msg: WorkerReply) => {
      const p = this.pending.get(msg.id);
      if (!p) return;
      w.progress = performance.now();
      if ('modified' in msg) {
        this.finish(msg.id, w);
        const m = msg.modified;
        // a transferred or cloned Uint8Array arrives; the event loop works with Buffers
        if (m) m.bytes = Buffer.from(m.bytes.buffer, m.bytes.byteOffset, m.bytes.byteLength);
        p.modified?.(m);
      } else if ('score' in msg) {
        this.finish(msg.id, w);
        p.score?.resolve(msg.score);
      } else if ('scoreError' in msg) {
        this.finish(msg.id, w);
        p.score?.reject(new Error(`outbreak scoring failed in the parse worker: ${msg.scoreError}`));
      } else if ('parsed' in msg) {
        // the score, when asked for, follows in a second message
        if (!p.score) this.finish(msg.id, w);
        p.resolve(msg.parsed);
      } else {
        this.finish(msg.id, w);
        const e =
          msg.error.name === 'ParseTimeoutError'
            ? new ParseTimeoutError(msg.error.message)
            : new Error(msg.error.message);
        p.reject(e);
        p.score?.reject(new Error('not parsed'));
      }
    });
    // A worker that dies (a bug, out of memory) fails its jobs; the next job gets a fresh worker.
    const fail = (err: Error): void => {
      const i = this.workers.indexOf(w);
      if (i >= 0) this.workers.splice(i, 1);
      for (const [id, p] of this.pending) {
        if (p.worker !== w) continue;
        this.pending.delete(id);
        const e = new Error(`parse worker failed: ${err.message}`);
        p.reject(e); // no effect once parsed: then only the score fails
        p.score?.reject(e);
      }
      this.watchdogIfBusy();
    };
    w.worker.on('error', fail);
    w.worker.on('exit', (code) => fail(new Error(`exited with code ${code}`)));
    this.workers.push(w);
    return w;
  }

  private finish(id: number, w: PoolWorker): void {
    this.pending.delete(id);
    w.busy--;
    this.watchdogIfBusy();
  }

  private watchdog: NodeJS.Timeout | null = null;

  /**
   * While jobs are out, a worker that has not answered for longer than its oldest job may take (a
   * parse that ignores its timeout, scoring stuck on crafted input) is terminated: its jobs fail
   * (each stage then takes its declared failure mode) and the next job gets a fresh worker.
   */
  private watchdogIfBusy(): void {
    const busy = this.pending.size > 0;
    if (busy && !this.watchdog) {
      this.watchdog = setInterval(() => {
        const now = performance.now();
        for (const w of [...this.workers]) {
          let limit = 0;
          for (const p of this.pending.values()) if (p.worker === w) limit = Math.max(limit, p.stuckAfterMs);
          if (limit && now - w.progress > limit) void w.worker.terminate();
        }
      }, 1000);
      this.watchdog.unref();
    } else if (!busy && this.watchdog) {
      clearInterval(this.watchdog);
      this.watchdog = null;
    }
  }

  private pick(): PoolWorker {
    const idle = this.workers.find((w) => w.busy === 0);
    if (idle) return idle;
    if (this.workers.length < this.size) return this.spawn();
    return this.workers.reduce((a, b) => (a.busy <= b.busy ? a : b));
  }

  /** Parses bytes in memory or a byte range of a file; small in-memory messages stay on this thread. */
  parse(
    source: { bytes: Buffer } | { file: string; start: number; size: number },
    limits: ParseLimits,
  ): Promise<ParsedMessage> {
    return this.parseAndScore(source, limits, null).parsed;
  }

  /**
   * Parses, and with `score`, has the same worker score the parsed message with the outbreak rules of
   * the request's bundle generation (`rules`: that bundle, sent to a worker the first time it needs it).
   */
  parseAndScore(
    source: { bytes: Buffer } | { file: string; start: number; size: number },
    limits: ParseLimits,
    score: { request: ScoreRequest; rules: RulesMessage | null } | null,
  ): ParseJob {
    if ('bytes' in source && (source.bytes.length < SMALL_MESSAGE_BYTES || this.closed))
      return { parsed: parseMessage(source.bytes, limits), score: score ? Promise.resolve(null) : null };
    const w = this.pick();
    const id = this.nextId++;
    const req: ParseRequest =
      'bytes' in source
        ? { id, bytes: source.bytes, limits, score: score?.request ?? null }
        : { id, file: source.file, start: source.start, size: source.size, limits, score: score?.request ?? null };
    if (score?.rules && w.rulesGeneration !== score.rules.generation) {
      w.worker.postMessage(score.rules);
      w.rulesGeneration = score.rules.generation;
    }
    let scoreCallbacks: Pending['score'] = null;
    const scored = score
      ? new Promise<ScoreResult | null>((resolve, reject) => (scoreCallbacks = { resolve, reject }))
      : null;
    scored?.catch(() => {}); // a caller that stops after a failed parse never awaits it
    const parsed = new Promise<ParsedMessage>((resolve, reject) => {
      if (w.busy === 0) w.progress = performance.now();
      this.pending.set(id, {
        resolve,
        reject,
        score: scoreCallbacks,
        worker: w,
        stuckAfterMs: limits.timeoutMs + (score ? SCORE_BUDGET_MS : 0) + 10_000,
      });
      w.busy++;
      w.worker.postMessage(req);
      this.watchdogIfBusy();
    });
    return { parsed, score: scored };
  }

  /**
   * Runs a deliver verdict's modification on a worker (flow/modification-job.ts); resolves to null when
   * it did not run there (pool closed, or the worker lacks the rule bundle it needs: the caller then
   * modifies on the event loop). `rules`: the bundle of `urlRules.generation`, sent to a worker the
   * first time it needs it.
   */
  modify(
    source: { bytes: Buffer } | { file: string; start: number; size: number },
    job: ModificationJob,
    urlRules: UrlRulesRequest,
    rules: RulesMessage | null,
  ): Promise<ModificationOutcome | null> {
    if (this.closed) return Promise.resolve(null);
    const w = this.pick();
    const id = this.nextId++;
    const req: ModifyRequest =
      'bytes' in source
        ? { id, bytes: source.bytes, modify: job, urlRules }
        : { id, file: source.file, start: source.start, size: source.size, modify: job, urlRules };
    if (rules && w.rulesGeneration !== rules.generation) {
      w.worker.postMessage(rules);
      w.rulesGeneration = rules.generation;
    }
    return new Promise<ModificationOutcome | null>((resolve, reject) => {
      if (w.busy === 0) w.progress = performance.now();
      this.pending.set(id, {
        resolve: () => {},
        modified: resolve,
        reject,
        score: null,
        worker: w,
        stuckAfterMs: MODIFY_BUDGET_MS,
      });
      w.busy++;
      w.worker.postMessage(req);
      this.watchdogIfBusy();
    });
  }

  /** V8 heap figures of each worker thread (for status). */
  /** Heap figures of the workers that answer; one still starting (or just replaced) is left out. */
  async heapStats(): Promise<Array<{ usedHeapSize: number; totalHeapSize: number }>> {
    const stats = await Promise.all(
      this.workers.map(async (w) => {
        try {
          const h = await w.worker.getHeapStatistics();
          return { usedHeapSize: h.used_heap_size, totalHeapSize: h.total_heap_size };
        } catch {
          return null; // ERR_WORKER_NOT_RUNNING while a worker starts: not an error for /status
        }
      }),
    );
    return stats.filter((s) => s !== null);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = null;
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
    this.workers.length = 0;
  }
}
