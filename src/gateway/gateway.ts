// The gateway: wires listeners, spool, policy split, pipeline, delivery queue, tracking and the admin
// API together, and recovers unfinished mail at start. Service functions used by the API and CLI live
// in service.ts.
import { createReadStream, existsSync, openSync, readSync, closeSync } from 'node:fs';
import path from 'node:path';
import type { LoadedConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { parseByteSize } from '../config/schema.ts';
import { Spool, type SpoolEnvelope } from '../spool/spool.ts';
import { Store } from '../store/db.ts';
import { MailLog } from '../tracking/maillog.ts';
import { Tracker } from '../tracking/tracker.ts';
import { Ingress, type AcceptedMessage } from '../smtp/ingress.ts';
import type { ReverseResolver } from '../smtp/hat.ts';
import { splitByPolicy } from '../policy/policies.ts';
import { buildPipeline, runPipeline } from '../pipeline/pipeline.ts';
import { ParsePool } from '../mime/pool.ts';
import type { Stage, StageContext } from '../pipeline/stage.ts';
import { decide } from '../policy/decide.ts';
import { DeliveryQueue, type DeliveryJob, type RecipientResult } from '../delivery/queue.ts';
import { buildDsn, statusFromReply } from '../delivery/dsn.ts';
import { ensureTls } from './tls.ts';
import { Metrics } from './metrics.ts';

export interface GatewayOptions {
  resolver?: ReverseResolver;
  /** print the admin token on first start (the CLI does; tests do not) */
  announce?: (line: string) => void;
}

/** One message copy moving through the pipeline and the delivery queue. */
interface Copy {
  mid: number;
  parentMid: number | null;
  file: string;
  bodyOffset: number;
  /** message bytes kept from ingress for small messages; null means read the spool file */
  bytes: Buffer | null;
  size: number;
  env: SpoolEnvelope;
  policy: string;
  recipients: Array<{ rid: number; address: string }>;
  /** rids not yet delivered, bounced or deleted */
  pending: Set<number>;
  outcomes: Map<number, 'delivered' | 'bounced' | 'deleted'>;
  /** resumed from the spool at start: an earlier run may have recorded part of its scan */
  recovered: boolean;
}

const MAX_CONCURRENT_PIPELINES = 16;
/** Message bytes kept in memory between ingress and delivery, across all messages; beyond it, read the spool. */
const MAX_HELD_BYTES = 16 * 1024 * 1024;

export class Gateway {
  readonly config: Config;
  readonly configFile: string;
  readonly dataDir: string;
  readonly store: Store;
  readonly tracker: Tracker;
  readonly spool: Spool;
  readonly mailLog: MailLog;
  readonly delivery: DeliveryQueue;
  readonly stages: Stage[];
  private readonly parsePool: ParsePool;
  readonly metrics: Metrics;
  readonly listeners: Ingress[] = [];
  readonly ports = new Map<string, number>();
  readonly startedAt = Date.now();
  private readonly options: GatewayOptions;
  private nextMid = 1;
  private nextIcid = 1;
  /** active copies by MID */
  private readonly copies = new Map<number, Copy>();
  private pipelinesRunning = 0;
  /** bytes of messages held in memory (Copy.bytes), bounded by MAX_HELD_BYTES */
  private heldBytes = 0;
  private readonly pipelineWaiting: Array<() => void> = [];
  private stopped = false;

  constructor(loaded: LoadedConfig, options: GatewayOptions = {}) {
    this.config = loaded.config;
    this.configFile = loaded.file;
    this.dataDir = loaded.dataDir;
    this.options = options;
    this.store = new Store(path.join(this.dataDir, 'breakwater.db'));
    this.mailLog = new MailLog(
      path.join(this.dataDir, 'logs'),
      parseByteSize(this.config.log.maxSize),
      this.config.log.keep,
    );
    this.tracker = new Tracker(this.store, this.mailLog);
    this.spool = new Spool(path.join(this.dataDir, 'spool'), this.config.spool.fsync);
    this.metrics = new Metrics();
    this.tracker.onEvent = (_mid, e) => this.metrics.onEvent(e);
    this.delivery = new DeliveryQueue(this.config, this.dataDir, this.tracker, {
      onFinal: (job, results) => this.onDeliveryFinal(job, results),
      onDeferred: (job) => this.dropBytes(this.copies.get(job.mid)),
    });
    this.parsePool = new ParsePool();
    this.stages = buildPipeline(this.config, { parsePool: this.parsePool });
  }

  async start(): Promise<void> {
    await this.spool.init();
    const maxDbMid = (this.store.db.prepare('select max(mid) m from messages').get() as { m: number | null }).m ?? 0;
    this.nextMid = maxDbMid + 1; // recover() raises it past every MID in the spool
    const maxIcid = Number(this.store.getMeta('icid_hwm') ?? 0);
    this.nextIcid = maxIcid + 1;
    this.store.setMeta('icid_hwm', String(this.nextIcid + 1000));
    const tls = await ensureTls(this.dataDir, this.config.listeners, (l) => this.mailLog.warning(l));
    await this.recover();
    for (const l of this.config.listeners) {
      const ingress = new Ingress(l, {
        hostname: this.config.hostname,
        spool: this.spool,
        allocateMid: () => this.nextMid++,
        allocateIcid: () => this.allocateIcid(),
        onAccepted: (m) => this.onAccepted(m),
        log: (line) => this.tracker.connection(line),
        tls: tls.get(l.name) ?? null,
        resolver: this.options.resolver,
      });
      const port = await ingress.listen();
      this.ports.set(l.name, port);
      this.listeners.push(ingress);
      this.mailLog.info(`listener ${l.name} (${l.direction}) on ${l.host}:${port}`);
    }
  }

  private allocateIcid(): number {
    const icid = this.nextIcid++;
    // ICIDs stay increasing across restarts: persist a high-water mark every 1000 sessions.
    if (icid % 1000 === 0) this.store.setMeta('icid_hwm', String(icid + 1000));
    return icid;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.listeners.map((l) => l.close()));
    await this.delivery.stop();
    await this.parsePool.close();
    await this.store.close();
    this.spool.close();
    await this.mailLog.close();
  }

  // ---- ingress → policy split -------------------------------------------------------------

  private onAccepted(m: AcceptedMessage): void {
    const { env } = m;
    // Keep the bytes only within the memory budget; otherwise every stage reads the spool file.
    const bytes = m.bytes && this.heldBytes + m.bytes.length <= MAX_HELD_BYTES ? m.bytes : null;
    this.tracker.recordMessage({
      mid: env.mid,
      icid: env.icid,
      parentMid: null,
      spoolFile: m.file,
      receivedAt: env.receivedAt,
      direction: env.direction,
      listener: env.listener,
      policy: null,
      sender: env.sender,
      senderIp: env.senderIp,
      rdns: env.rdns,
      helo: env.helo,
      tls: env.tls,
      size: m.size,
      recipients: env.recipients.map((address, rid) => ({ rid, address })),
      status: 'received',
    });
    this.tracker.event(
      env.mid,
      {
        type: 'ingress.accepted',
        icid: env.icid,
        listener: env.listener,
        sender: env.sender,
        recipients: env.recipients,
        size: m.size,
        senderIp: env.senderIp,
        helo: env.helo,
        tls: env.tls,
      },
      env.icid,
    );
    this.split(m.file, m.bodyOffset, bytes, m.size, env);
    // Every copy now holds the file; the acceptance's own hold on it ends here.
    this.spool.release(m.file);
  }

  /** Splits recipients by policy into copies and starts each copy's pipeline. */
  private split(file: string, bodyOffset: number, bytes: Buffer | null, size: number, env: SpoolEnvelope): void {
    if (env.generated === 'dsn') {
      // Our own bounces skip policies and scanning: they carry only headers of the original.
      const copy = this.addCopy(
        env.mid,
        null,
        file,
        bodyOffset,
        bytes,
        size,
        env,
        'system',
        env.recipients.map((a, rid) => ({ rid, address: a })),
      );
      this.tracker.setStatus(env.mid, 'queued', false);
      this.submitDelivery(copy);
      return;
    }
    const groups = splitByPolicy(this.config, env.direction, env.sender, env.recipients);
    if (groups.length === 1) {
      const g = groups[0];
      this.tracker.setPolicy(env.mid, g.policy);
      this.tracker.event(env.mid, { type: 'policy.matched', policy: g.policy, splinteredFrom: null });
      const copy = this.addCopy(
        env.mid,
        null,
        file,
        bodyOffset,
        bytes,
        size,
        env,
        g.policy,
        g.rids.map((rid) => ({ rid, address: env.recipients[rid] })),
      );
      this.tracker.setStatus(env.mid, 'scanning', false);
      void this.scan(copy);
      return;
    }
    const children = groups.map((g) => ({ g, mid: this.nextMid++ }));
    this.tracker.event(env.mid, { type: 'policy.split', policy: '(multiple)', children: children.map((c) => c.mid) });
    for (const { g, mid } of children) {
      const rcpts = g.rids.map((rid, i) => ({ rid: i, address: env.recipients[rid] }));
      this.tracker.recordMessage({
        mid,
        icid: env.icid,
        parentMid: env.mid,
        spoolFile: file,
        receivedAt: env.receivedAt,
        direction: env.direction,
        listener: env.listener,
        policy: g.policy,
        sender: env.sender,
        senderIp: env.senderIp,
        rdns: env.rdns,
        helo: env.helo,
        tls: env.tls,
        size,
        recipients: rcpts,
        status: 'scanning',
      });
      this.tracker.event(mid, { type: 'policy.matched', policy: g.policy, splinteredFrom: env.mid });
      const copy = this.addCopy(mid, env.mid, file, bodyOffset, bytes, size, env, g.policy, rcpts);
      void this.scan(copy);
    }
    for (let rid = 0; rid < env.recipients.length; rid++)
      this.tracker.setRecipient(env.mid, rid, 'splintered', null, null);
    this.tracker.setStatus(env.mid, 'splintered', true);
  }

  private addCopy(
    mid: number,
    parentMid: number | null,
    file: string,
    bodyOffset: number,
    bytes: Buffer | null,
    size: number,
    env: SpoolEnvelope,
    policy: string,
    recipients: Array<{ rid: number; address: string }>,
  ): Copy {
    const copy: Copy = {
      mid,
      parentMid,
      file,
      bodyOffset,
      bytes,
      size,
      env,
      policy,
      recipients,
      pending: new Set(recipients.map((r) => r.rid)),
      outcomes: new Map(),
      recovered: false,
    };
    this.copies.set(mid, copy);
    this.spool.retain(file);
    if (bytes) this.heldBytes += bytes.length;
    return copy;
  }

  // ---- pipeline → verdict ----------------------------------------------------------------

  private async acquirePipeline(): Promise<void> {
    if (this.pipelinesRunning < MAX_CONCURRENT_PIPELINES) {
      this.pipelinesRunning++;
      return;
    }
    await new Promise<void>((resolve) => this.pipelineWaiting.push(resolve));
  }

  private releasePipeline(): void {
    const next = this.pipelineWaiting.shift();
    if (next) next();
    else this.pipelinesRunning--;
  }

  private async scan(copy: Copy): Promise<void> {
    await this.acquirePipeline();
    try {
      if (this.stopped) return;
      const ctx: StageContext = {
        mid: copy.mid,
        env: copy.env,
        file: copy.file,
        bodyOffset: copy.bodyOffset,
        size: copy.size,
        direction: copy.env.direction,
        policy: copy.policy,
        recipients: copy.recipients.map((r) => r.address),
        parsed: null,
        bytes: copy.bytes,
        findings: [],
        openMessage: () =>
          createReadStream(copy.file, {
            start: copy.bodyOffset,
            end: copy.bodyOffset + copy.size - 1,
            highWaterMark: 256 * 1024,
          }),
      };
      const started = performance.now();
      const result = await runPipeline(this.stages, ctx);
      this.metrics.pipelineSeconds.observe((performance.now() - started) / 1000);
      for (const f of result.failures)
        this.tracker.event(copy.mid, {
          type: 'stage.failed',
          stage: f.stage,
          error: f.error,
          failureMode: f.failureMode,
        });
      if (ctx.parsed) {
        this.tracker.setParsed(copy.mid, ctx.parsed, copy.recovered);
        this.tracker.event(copy.mid, {
          type: 'scan.parsed',
          subject: ctx.parsed.subject,
          messageId: ctx.parsed.messageId,
          attachments: ctx.parsed.attachments.length,
          urls: ctx.parsed.urls.length,
          anomalies: ctx.parsed.anomalies,
        });
      }
      const verdict = decide(result, ctx.findings);
      this.tracker.event(copy.mid, { type: 'verdict', verdict: verdict.kind, reason: verdict.reason });
      switch (verdict.kind) {
        case 'deliver':
          this.tracker.setStatus(copy.mid, 'queued', false);
          this.submitDelivery(copy);
          break;
        case 'tempfail': {
          this.tracker.setStatus(copy.mid, 'deferred', false);
          const t = setTimeout(() => void this.scan(copy), verdict.retryAfterMs);
          t.unref();
          break;
        }
        case 'drop':
          for (const r of copy.recipients) {
            this.tracker.setRecipient(copy.mid, r.rid, 'dropped', null, null);
            this.settle(copy, r.rid, 'deleted');
          }
          break;
        case 'bounce': {
          const results: RecipientResult[] = copy.recipients.map((r) => ({
            rid: r.rid,
            address: r.address,
            outcome: 'bounced',
            reply: verdict.reply,
            target: 'policy',
          }));
          for (const r of copy.recipients) this.tracker.setRecipient(copy.mid, r.rid, 'bounced', verdict.reply, null);
          this.onDeliveryFinal(
            this.jobFor(
              copy,
              copy.recipients.map((r) => ({ ...r, attempts: 0 })),
            ),
            results,
          );
          break;
        }
        default: {
          const never: never = verdict;
          throw new Error(`unhandled verdict ${JSON.stringify(never)}`);
        }
      }
    } catch (err) {
      // A bug must not lose mail: leave the copy queued and try again later.
      this.mailLog.warning(`MID ${copy.mid} pipeline error: ${(err as Error).stack ?? err}`);
      const t = setTimeout(() => void this.scan(copy), 60_000);
      t.unref();
    } finally {
      this.releasePipeline();
    }
  }

  // ---- delivery ------------------------------------------------------------------------------

  private jobFor(copy: Copy, recipients: DeliveryJob['recipients']): DeliveryJob {
    return {
      mid: copy.mid,
      file: copy.file,
      bodyOffset: copy.bodyOffset,
      bytes: copy.bytes,
      size: copy.size,
      sender: copy.env.sender,
      receivedAt: copy.env.receivedAt,
      recipients,
      route: { key: '', targets: [], domain: '' },
    };
  }

  private submitDelivery(copy: Copy, attempts = new Map<number, number>(), dueAt = 0): void {
    const rcpts = copy.recipients
      .filter((r) => copy.pending.has(r.rid))
      .map((r) => ({ ...r, attempts: attempts.get(r.rid) ?? 0 }));
    const { route: _r, recipients: _x, ...base } = this.jobFor(copy, []);
    this.delivery.submit(base, rcpts, dueAt);
  }

  private onDeliveryFinal(job: DeliveryJob, results: RecipientResult[]): void {
    const copy = this.copies.get(job.mid);
    if (!copy) return;
    const bounced = results.filter((r) => r.outcome === 'bounced');
    if (bounced.length) void this.sendDsn(copy, bounced);
    for (const r of results) this.settle(copy, r.rid, r.outcome === 'delivered' ? 'delivered' : 'bounced');
  }

  /** Records a recipient's final outcome; finishes the copy when none is left. */
  private settle(copy: Copy, rid: number, outcome: 'delivered' | 'bounced' | 'deleted'): void {
    if (!copy.pending.delete(rid)) return;
    copy.outcomes.set(rid, outcome);
    if (!copy.pending.size) this.finish(copy);
  }

  /** Every recipient of the copy is settled: record the result and let go of its spool file. */
  private finish(copy: Copy): void {
    const values = [...copy.outcomes.values()];
    const status = values.every((v) => v === 'deleted')
      ? 'deleted'
      : values.some((v) => v === 'delivered')
        ? 'delivered'
        : 'bounced';
    this.tracker.setStatus(copy.mid, status, true);
    this.tracker.event(copy.mid, { type: 'message.done', status }, copy.env.icid);
    this.copies.delete(copy.mid);
    this.dropBytes(copy);
    // The spool file goes only after the database says the message is finished.
    void this.store.committed().then(() => this.spool.release(copy.file));
  }

  private dropBytes(copy: Copy | undefined): void {
    if (!copy?.bytes) return;
    this.heldBytes -= copy.bytes.length;
    copy.bytes = null;
  }

  private async sendDsn(copy: Copy, bounced: RecipientResult[]): Promise<void> {
    const rids = bounced.map((b) => b.rid);
    if (!copy.env.sender || copy.env.generated === 'dsn') {
      // RFC 5321 §6.1 / RFC 3464: never bounce a bounce or a null sender.
      this.tracker.event(copy.mid, {
        type: 'delivery.dsn_suppressed',
        rids,
        reason: copy.env.generated === 'dsn' ? 'message is a DSN' : 'null sender',
      });
      return;
    }
    try {
      const dsn = buildDsn({
        reportingMta: this.config.hostname,
        originalSender: copy.env.sender,
        originalMid: copy.mid,
        arrivalDate: new Date(copy.env.receivedAt),
        originalHeaders: readHeaderBlock(copy),
        recipients: bounced.map((b) => ({
          address: b.address,
          action: 'failed',
          status: statusFromReply(b.reply, '5.0.0'),
          diagnostic: b.reply,
          remoteMta: b.target.startsWith('file:') || b.target === 'policy' ? null : b.target.split(':')[0],
        })),
      });
      const mid = this.nextMid++;
      const env: SpoolEnvelope = {
        mid,
        icid: 0,
        listener: '(internal)',
        direction: 'outgoing',
        sender: '',
        recipients: [copy.env.sender],
        senderIp: '127.0.0.1',
        rdns: null,
        helo: null,
        tls: null,
        receivedAt: Date.now(),
        generated: 'dsn',
      };
      const loc = await this.spool.append(env, dsn);
      this.tracker.event(copy.mid, { type: 'delivery.dsn', bounceMid: mid, rids });
      this.onAccepted({ ...loc, env, bytes: dsn });
    } catch (err) {
      this.mailLog.warning(`MID ${copy.mid} could not create DSN: ${(err as Error).message}`);
    }
  }

  // ---- recovery ------------------------------------------------------------------------------

  /** Resumes every spooled message that was not finished (after a crash or a restart). */
  private async recover(): Promise<void> {
    let resumed = 0;
    let maxMid = 0;
    const spooled = [...this.spool.scan((file, why) => this.mailLog.warning(`spool file ${file}: ${why}`))];
    for (const m of spooled) maxMid = Math.max(maxMid, m.env.mid);
    this.nextMid = Math.max(this.nextMid, maxMid + 1);
    for (const { file, env, bodyOffset, size } of spooled) {
      // Copies made by the policy split share their original's bytes: found by parent MID.
      const rows = this.store
        .stmt('select mid, parent_mid, status, policy, done from messages where mid = ? or parent_mid = ? order by mid')
        .all(env.mid, env.mid) as Array<{
        mid: number;
        parent_mid: number | null;
        status: string;
        policy: string | null;
        done: number;
      }>;
      const own = rows.find((r) => r.mid === env.mid);
      if (!own) {
        // Accepted (250 sent) but the database never heard of it: start from the beginning.
        this.spool.retain(file);
        this.onAccepted({ file, env, size, bodyOffset, bytes: null });
        resumed++;
        continue;
      }
      if (own.status === 'received') {
        this.split(file, bodyOffset, null, size, env);
        resumed++;
        continue;
      }
      const undone = rows.filter((r) => !r.done && r.status !== 'splintered');
      for (const r of undone) {
        const rcpts = this.store
          .stmt('select rid, address, status, attempts, next_attempt_at from recipients where mid = ? order by rid')
          .all(r.mid) as Array<{
          rid: number;
          address: string;
          status: string;
          attempts: number;
          next_attempt_at: number | null;
        }>;
        const copy = this.addCopy(
          r.mid,
          r.parent_mid,
          file,
          bodyOffset,
          null,
          size,
          env,
          r.policy ?? 'default',
          rcpts.map((x) => ({ rid: x.rid, address: x.address })),
        );
        copy.recovered = true;
        for (const x of rcpts) {
          if (x.status === 'delivered' || x.status === 'bounced' || x.status === 'deleted' || x.status === 'dropped') {
            copy.pending.delete(x.rid);
            copy.outcomes.set(
              x.rid,
              x.status === 'dropped' ? 'deleted' : (x.status as 'delivered' | 'bounced' | 'deleted'),
            );
          }
        }
        if (!copy.pending.size) {
          this.finish(copy); // every recipient was settled but the crash came before the finish
          continue;
        }
        resumed++;
        if (r.status === 'scanning' || (r.status === 'deferred' && rcpts.every((x) => x.attempts === 0))) {
          void this.scan(copy);
        } else {
          // Keep the retry schedule the crash interrupted.
          const attempts = new Map(rcpts.map((x) => [x.rid, x.attempts]));
          const due = Math.max(...rcpts.filter((x) => copy.pending.has(x.rid)).map((x) => x.next_attempt_at ?? 0));
          this.submitDelivery(copy, attempts, due);
        }
      }
    }
    this.spool.removeUnreferenced();
    if (resumed) this.mailLog.info(`recovered ${resumed} unfinished message(s) from the spool`);
  }

  // ---- service functions (API, CLI) -----------------------------------------------------------

  /** Messages waiting for delivery: in the pipeline, queued or deferred. */
  queueList(): Array<{
    mid: number;
    sender: string;
    recipients: Array<{ rid: number; address: string }>;
    policy: string;
    receivedAt: string;
    state: 'active' | 'deferred';
    nextAttemptAt: string | null;
  }> {
    const deferred = new Map<number, number>();
    for (const { job, dueAt } of this.delivery.deferred())
      deferred.set(job.mid, Math.min(deferred.get(job.mid) ?? Infinity, dueAt));
    return [...this.copies.values()].map((c) => ({
      mid: c.mid,
      sender: c.env.sender,
      recipients: c.recipients.filter((r) => c.pending.has(r.rid)),
      policy: c.policy,
      receivedAt: new Date(c.env.receivedAt).toISOString(),
      state: deferred.has(c.mid) ? 'deferred' : 'active',
      nextAttemptAt: deferred.has(c.mid) ? new Date(deferred.get(c.mid)!).toISOString() : null,
    }));
  }

  queueRetry(mid: number): { mid: number; recipients: number } | null {
    if (!this.copies.has(mid)) return null;
    const n = this.delivery.retryNow(mid);
    if (n) this.tracker.event(mid, { type: 'admin.retry', rids: [...this.copies.get(mid)!.pending] });
    return { mid, recipients: n };
  }

  queueDelete(mid: number): { mid: number; recipients: number } | null {
    const copy = this.copies.get(mid);
    if (!copy) return null;
    const removed = this.delivery.removeDeferred(mid);
    // Only recipients waiting for a retry can be deleted; one in flight finishes its attempt.
    const rids = removed.map((r) => r.rid);
    if (!rids.length) return { mid, recipients: 0 };
    this.tracker.event(mid, { type: 'admin.deleted', rids });
    for (const rid of rids) {
      this.tracker.setRecipient(mid, rid, 'deleted', null, null);
      this.settle(copy, rid, 'deleted');
    }
    return { mid, recipients: rids.length };
  }

  async status(): Promise<Record<string, unknown>> {
    return {
      hostname: this.config.hostname,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      listeners: this.config.listeners.map((l) => ({
        name: l.name,
        direction: l.direction,
        address: `${l.host}:${this.ports.get(l.name) ?? l.port}`,
      })),
      queue: { active: this.copies.size, deferred: this.delivery.deferred().length },
      nextMid: this.nextMid,
      dataDir: this.dataDir,
      memory: {
        ...process.memoryUsage(),
        heldMessageBytes: this.heldBytes,
        parseWorkers: await this.parsePool.heapStats(),
        storeWriter: await this.store.writerHeap(),
      },
    };
  }

  activeCopies(): number {
    return this.copies.size;
  }
}

/** The header block of a message (for DSNs), bounded to 64 KiB. */
function readHeaderBlock(copy: Copy): string {
  let head: Buffer;
  if (copy.bytes) head = copy.bytes.subarray(0, 64 * 1024);
  else {
    if (!existsSync(copy.file)) return '';
    const fd = openSync(copy.file, 'r');
    try {
      head = Buffer.alloc(Math.min(64 * 1024, copy.size));
      head = head.subarray(0, readSync(fd, head, 0, head.length, copy.bodyOffset));
    } finally {
      closeSync(fd);
    }
  }
  const text = head.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  return end >= 0 ? text.slice(0, end + 2) : text;
}
