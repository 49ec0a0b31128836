// The message flow (DESIGN §3): accept → policy split → scan → apply the verdict → settle each
// recipient → finish. Every step announces itself on the event bus; tracking, the mail log and metrics
// follow from those events. Quarantining, bounces and modification are other services this one calls.
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Config } from '../config/schema.ts';
import type { Spool, SpoolEnvelope } from '../spool/spool.ts';
import type { Store } from '../store/db.ts';
import type { EventBus } from '../tracking/bus.ts';
import type { AcceptedMessage } from '../smtp/ingress.ts';
import { splitByPolicy } from '../policy/policies.ts';
import { runPipeline } from '../pipeline/pipeline.ts';
import { HEAD_BYTES, type Stage, type StageContext } from '../pipeline/stage.ts';
import { decide, unscannableAction } from '../policy/decide.ts';
import { limitsReached } from '../policy/unscannable.ts';
import type { Verdict } from '../policy/verdict.ts';
import type { DeliveryJob, DeliveryQueue, RecipientResult } from '../delivery/queue.ts';
import type { OutbreakAssessment } from '../outbreak/engine.ts';
import type { QuarantineEntry, QuarantineName } from '../quarantine/quarantine.ts';
import type { Bounces } from '../delivery/bounces.ts';
import { CopyTable, MidAllocator, readCopyStart, type Copy, type Outcome } from './copies.ts';
import { needsModification, type CopyModifier } from './modify-copy.ts';
import { parsedEvent, scoreEvent } from '../pipeline/scan-events.ts';
import { senderAuthAction, withSenderAuth } from '../policy/sender-auth.ts';
import { withoutIncomingSpamFields } from '../policy/antispam.ts';
import { authCheckedEvent, dmarcReportDetail } from '../pipeline/stages/sender-auth.ts';

/** Pipelines running at once; more copies wait their turn (each holds a parse and maybe a clamd scan). */
const MAX_CONCURRENT_PIPELINES = 16;

export interface MessageFlowDeps {
  config: Config;
  spool: Spool;
  store: Pick<Store, 'committed'>;
  events: Pick<EventBus, 'emit'>;
  log: { info(line: string): void; warning(line: string): void };
  stages: Stage[];
  delivery: Pick<DeliveryQueue, 'submit' | 'retryNow' | 'removeDeferred' | 'deferred'>;
  copies: CopyTable;
  mids: MidAllocator;
  modifier: CopyModifier;
  bounces: Pick<Bounces, 'send'>;
  /** a quarantine verdict: the copy leaves the flow for one or more quarantines */
  hold: (
    copy: Copy,
    verdict: Extract<Verdict, { kind: 'quarantine' }>,
    a: OutbreakAssessment | null,
    subject: string | null,
  ) => Promise<void>;
  /** what the anti-virus stage said about clamd: failed (it waits for clamd), or answered */
  antivirus: { failed(error: string): void; answered(): void };
  /** a write failed for lack of space or an I/O error: true when that is why (the storage guard) */
  storageFailure: (what: string, err: unknown) => boolean;
  observePipelineSeconds: (s: number) => void;
  /** every recipient of the copy allow-listed its sender (end-user quarantine) */
  allowListed?: (sender: string, recipients: readonly string[]) => boolean;
  /** the header From is blocked for this direction (the hub's block list) */
  blockedFrom?: (
    headerFrom: string | null,
    direction: 'incoming' | 'outgoing',
  ) => { id: string; reason: string } | null;
}

/** A held message put back on its way: where its bytes are and how it left its quarantine. */
export interface Resumption {
  file: string;
  bodyOffset: number;
  size: number;
  releasedFrom: QuarantineName[];
  releaseTag: string | null;
  releaseNote: string | null;
}

export class MessageFlow {
  private readonly deps: MessageFlowDeps;
  private stopped = false;
  private pipelinesRunning = 0;
  private readonly pipelineWaiting: Array<() => void> = [];
  /** copies waiting to be scanned again (a stage failed: clamd down, a timeout) */
  private readonly rescans = new Map<number, NodeJS.Timeout>();

  constructor(deps: MessageFlowDeps) {
    this.deps = deps;
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.rescans.values()) clearTimeout(t);
  }

  // ---- accept → policy split -------------------------------------------------------------------

  /** A message is durable in the spool (the 250 went out, or we wrote it ourselves): record and split it. */
  accept(m: AcceptedMessage): void {
    const { env } = m;
    // Keep the bytes only within the memory budget; otherwise every stage reads the spool file.
    const bytes = this.deps.copies.fits(m.bytes) ? m.bytes : null;
    this.deps.events.emit(
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
        direction: env.direction,
        rdns: env.rdns,
        receivedAt: env.receivedAt,
        spoolFile: m.file,
        ...(env.generated ? { generated: env.generated } : {}),
        ...(env.senderGroup ? { senderGroup: env.senderGroup } : {}),
        ...(env.reputation ? { reputation: env.reputation } : {}),
        ...(env.directory ? { directory: env.directory } : {}),
      },
      env.icid,
    );
    this.split(m.file, m.bodyOffset, bytes, m.size, env);
    // Every copy now holds the file; the acceptance's own hold on it ends here.
    this.deps.spool.release(m.file);
  }

  /** Hands a message the gateway wrote itself (an alert, a quarantine copy) to its own spool and queue. */
  async inject(
    sender: string,
    recipients: string[],
    message: Buffer,
    kind: 'alert' | 'copy' | 'remediation' | 'digest',
  ): Promise<number> {
    const env: SpoolEnvelope = {
      mid: this.deps.mids.next(),
      icid: 0,
      listener: '(internal)',
      direction: 'outgoing',
      sender,
      recipients,
      senderIp: '127.0.0.1',
      rdns: null,
      helo: null,
      tls: null,
      receivedAt: Date.now(),
      generated: kind,
    };
    const loc = await this.deps.spool.append(env, message);
    this.accept({ ...loc, env, bytes: message });
    return env.mid;
  }

  /**
   * One recipient's release of a held message that others still wait on (end-user quarantine): the
   * held bytes are spooled again as a new message for that recipient alone (durable before the held
   * one forgets them), rescanned like any release and never held in `releasedFrom` again.
   */
  async reinjectReleased(
    original: SpoolEnvelope,
    recipients: string[],
    message: Buffer,
    releasedFrom: string[],
  ): Promise<number> {
    const env: SpoolEnvelope = {
      ...original,
      mid: this.deps.mids.next(),
      recipients,
      receivedAt: Date.now(),
      releasedFrom,
      releasedMid: original.mid,
    };
    delete env.derived;
    delete env.routeOverride;
    const loc = await this.deps.spool.append(env, message);
    this.accept({ ...loc, env, bytes: message });
    return env.mid;
  }

  /** Splits recipients by policy into copies and starts each copy's pipeline. */
  split(file: string, bodyOffset: number, bytes: Buffer | null, size: number, env: SpoolEnvelope): void {
    const { events } = this.deps;
    const all = (rids: number[]) => rids.map((rid) => ({ rid, address: env.recipients[rid] }));
    if (env.generated) {
      // Our own bounces and alerts skip policies and scanning: bounces carry only headers of the
      // original, alerts only our own text.
      const copy = this.addCopy(
        env.mid,
        null,
        file,
        bodyOffset,
        bytes,
        size,
        env,
        'system',
        all([...env.recipients.keys()]),
      );
      this.queueForDelivery(copy);
      return;
    }
    const groups = splitByPolicy(this.deps.config, env.direction, env.sender, env.recipients);
    if (groups.length === 1) {
      const g = groups[0];
      events.emit(env.mid, { type: 'policy.matched', policy: g.policy, splinteredFrom: null });
      const copy = this.addCopy(env.mid, null, file, bodyOffset, bytes, size, env, g.policy, all(g.rids));
      void this.scan(copy);
      return;
    }
    const children = groups.map((g) => ({ g, mid: this.deps.mids.next() }));
    events.emit(env.mid, {
      type: 'policy.split',
      policy: '(multiple)',
      children: children.map((c) => c.mid),
      copies: children.map(({ g, mid }) => ({
        mid,
        policy: g.policy,
        recipients: g.rids.map((r) => env.recipients[r]),
      })),
    });
    for (const { g, mid } of children) {
      const rcpts = g.rids.map((rid, i) => ({ rid: i, address: env.recipients[rid] }));
      events.emit(mid, { type: 'policy.matched', policy: g.policy, splinteredFrom: env.mid });
      const copy = this.addCopy(mid, env.mid, file, bodyOffset, bytes, size, env, g.policy, rcpts);
      void this.scan(copy);
    }
  }

  addCopy(
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
      releasedFrom: (env.releasedFrom ?? []) as QuarantineName[],
      releaseTag: null,
      releaseNote: env.releasedFrom ? 'released by its recipient' : null,
      routeOverride: env.routeOverride ?? null,
    };
    this.deps.copies.add(copy);
    this.deps.spool.retain(file);
    return copy;
  }

  /**
   * A held message leaves its last quarantine: a copy made from its held file (whose reference passes
   * from the quarantine to the copy) is rescanned with current rules, then delivered per policy.
   */
  resume(h: QuarantineEntry['copy'], r: Resumption): void {
    const copy: Copy = {
      mid: h.mid,
      parentMid: h.parentMid,
      file: r.file,
      bodyOffset: r.bodyOffset,
      bytes: null,
      size: r.size,
      env: h.env,
      policy: h.policy,
      recipients: h.recipients,
      pending: new Set(h.recipients.map((x) => x.rid)),
      outcomes: new Map(),
      recovered: false,
      releasedFrom: r.releasedFrom,
      releaseTag: r.releaseTag,
      releaseNote: r.releaseNote,
      routeOverride: null,
    };
    this.deps.copies.add(copy);
    void this.readOnceThenScan(copy);
  }

  /**
   * A released message is read from its held file once, within the memory budget: the parse worker,
   * the modification (release header and tag) and the delivery then share those bytes.
   */
  private async readOnceThenScan(copy: Copy): Promise<void> {
    if (this.deps.copies.fitsSize(copy.size))
      try {
        const fh = await open(copy.file, 'r');
        try {
          const bytes = Buffer.alloc(copy.size);
          const { bytesRead } = await fh.read(bytes, 0, copy.size, copy.bodyOffset);
          if (bytesRead === copy.size) this.deps.copies.keepBytes(copy, bytes);
        } finally {
          await fh.close();
        }
      } catch {
        // unreadable now: the stages read the file themselves and report what they find
      }
    await this.scan(copy);
  }

  // ---- pipeline → verdict ----------------------------------------------------------------------

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

  /** Runs the pipeline over a copy and applies its verdict. */
  async scan(copy: Copy): Promise<void> {
    await this.acquirePipeline();
    try {
      if (this.stopped) return;
      const ctx = this.stageContext(copy);
      const started = performance.now();
      const result = await runPipeline(this.deps.stages, ctx);
      // Stopping (a restart, SIGTERM) ends the parse workers and scanners under a scan in flight: its
      // failures are the stop's, not the message's (it would be held as unscannable). Nothing is applied;
      // the message is still in the spool and scanned again at the next start.
      if (this.stopped) return;
      this.deps.observePipelineSeconds((performance.now() - started) / 1000);
      const avFailure = result.failures.find((f) => f.stage === 'antivirus');
      if (avFailure) this.deps.antivirus.failed(avFailure.error);
      else if (ctx.antivirus) this.deps.antivirus.answered();
      const decided = decide(this.deps.config, result, ctx, {
        allowListed: ctx.direction === 'incoming' && !!this.deps.allowListed?.(ctx.env.sender, ctx.recipients),
        blocked: this.deps.blockedFrom?.(ctx.parsed?.from ?? null, ctx.direction) ?? null,
      });
      // our Authentication-Results header (and a DMARC subject tag) on what is delivered
      const verdict = withoutIncomingSpamFields(withSenderAuth(this.deps.config, decided, ctx), ctx.antispam);
      this.announceScan(copy, ctx, result, verdict);
      await this.applyVerdict(copy, verdict, ctx.outbreak, ctx.parsed?.subject ?? null);
    } catch (err) {
      // A full disk (held file, modified copy) or a bug must not lose mail: the copy stays in the
      // spool and is scanned again — soon for a disk that may free up, in a minute for a bug.
      const full = this.deps.storageFailure(`MID ${copy.mid} processing`, err);
      this.deps.log.warning(
        `MID ${copy.mid} ${full ? 'cannot be stored now' : 'pipeline error'}: ${full ? (err as Error).message : ((err as Error).stack ?? err)}`,
      );
      const t = setTimeout(() => void this.scan(copy), full ? 10_000 : 60_000);
      t.unref();
    } finally {
      this.releasePipeline();
    }
  }

  private stageContext(copy: Copy): StageContext {
    let head: Promise<Buffer> | null = null;
    return {
      mid: copy.mid,
      env: copy.env,
      file: copy.file,
      bodyOffset: copy.bodyOffset,
      size: copy.size,
      direction: copy.env.direction,
      policy: copy.policy,
      recipients: copy.recipients.map((r) => r.address),
      parsed: null,
      outbreak: null,
      antivirus: null,
      releasedFrom: copy.releasedFrom,
      bytes: copy.bytes,
      findings: [],
      openMessage: () =>
        createReadStream(copy.file, {
          start: copy.bodyOffset,
          end: copy.bodyOffset + copy.size - 1,
          highWaterMark: 256 * 1024,
        }),
      head: () => (head ??= readCopyStart(copy, HEAD_BYTES)),
    };
  }

  /** Announces what the stages found and the verdict, in the order tracking and the mail log show them. */
  private announceScan(
    copy: Copy,
    ctx: StageContext,
    result: Awaited<ReturnType<typeof runPipeline>>,
    verdict: Verdict,
  ): void {
    const { events, config } = this.deps;
    // A rescan (after a restart, or on release from a quarantine) replaces what the first scan recorded.
    const rescan = copy.recovered || copy.releasedFrom.length > 0;
    for (const f of result.failures)
      events.emit(copy.mid, { type: 'stage.failed', stage: f.stage, error: f.error, failureMode: f.failureMode });
    const p = ctx.parsed;
    if (p) {
      events.emit(copy.mid, parsedEvent(p, rescan));
      // Operators asked for every URL in the mail log (outbreakFilters.logUrls); bounded per message.
      if (config.outbreakFilters.logUrls)
        for (const u of p.urls.slice(0, 200)) this.deps.log.info(`MID ${copy.mid} URL ${u.url}`);
    }
    if (ctx.antivirus)
      events.emit(copy.mid, {
        type: 'antivirus.scanned',
        verdict: ctx.antivirus.verdict,
        names: ctx.antivirus.names,
        reason: ctx.antivirus.reason,
        signatureVersion: ctx.antivirus.signatureVersion,
        infectedParts: ctx.antivirus.infectedParts.map((x) => x.partPath),
      });
    if (ctx.senderAuth) {
      const action = senderAuthAction(config, ctx, new Set(ctx.releasedFrom)).kind;
      // aggregate reports count a message once: at its first scan (not a rescan), one copy of a split one
      const report = rescan
        ? null
        : dmarcReportDetail(config, { ...ctx, senderAuth: ctx.senderAuth }, action, copy.parentMid);
      events.emit(copy.mid, authCheckedEvent(ctx.senderAuth, action, report));
    }
    if (ctx.antispam)
      events.emit(copy.mid, {
        type: 'antispam.scanned',
        action: ctx.antispam.action,
        score: ctx.antispam.score,
        requiredScore: ctx.antispam.requiredScore,
        // the symbols that scored (zero-score ones are rspamd's notes: RCPT_COUNT_ONE, TO_DN_NONE…)
        symbols: ctx.antispam.symbols.filter((s) => s.score !== 0).slice(0, 20),
        skipped: ctx.antispam.note ?? (ctx.antispam.skipped ? 'skipped by rspamd' : null),
      });
    if (ctx.outbreak) events.emit(copy.mid, scoreEvent(ctx.outbreak, rescan));
    const limits = limitsReached(ctx.findings);
    if (limits.length && !result.stoppedBy)
      events.emit(copy.mid, {
        type: 'scan.unscannable',
        limits,
        action: unscannableAction(config, ctx, new Set(ctx.releasedFrom)).kind,
        details: ctx.findings
          .filter((f) => f.code.startsWith('limit.'))
          .map((f) => f.detail)
          .slice(0, 10),
      });
    events.emit(copy.mid, { type: 'verdict', verdict: verdict.kind, reason: verdict.reason });
  }

  /** Carries out the one verdict; the quarantine gets the score and subject for its listings. */
  private async applyVerdict(
    copy: Copy,
    verdict: Verdict,
    outbreak: OutbreakAssessment | null,
    subject: string | null,
  ): Promise<void> {
    switch (verdict.kind) {
      case 'deliver':
        copy.authResults = verdict.authResults?.value ?? null;
        if (needsModification(copy, verdict)) await this.deps.modifier.apply(copy, verdict);
        this.queueForDelivery(copy);
        break;
      case 'quarantine':
        await this.deps.hold(copy, verdict, outbreak, subject);
        break;
      case 'tempfail': {
        const t = setTimeout(() => {
          this.rescans.delete(copy.mid);
          void this.scan(copy);
        }, verdict.retryAfterMs);
        t.unref();
        this.rescans.set(copy.mid, t);
        break;
      }
      case 'drop':
        for (const r of copy.recipients) this.settle(copy, r.rid, 'dropped');
        break;
      case 'bounce': {
        const results: RecipientResult[] = copy.recipients.map((r) => ({
          rid: r.rid,
          address: r.address,
          outcome: 'bounced',
          reply: verdict.reply,
          target: 'policy',
        }));
        for (const r of results)
          this.deps.events.emit(copy.mid, {
            type: 'delivery.bounced',
            dcid: null,
            rid: r.rid,
            address: r.address,
            target: r.target,
            reply: r.reply,
          });
        this.onDeliveryFinal(copy.mid, results);
        break;
      }
      default: {
        const never: never = verdict;
        throw new Error(`unhandled verdict ${JSON.stringify(never)}`);
      }
    }
  }

  // ---- delivery --------------------------------------------------------------------------------

  /** Hands the copy's unsettled recipients to the delivery queue (its bytes are final and durable). */
  queueForDelivery(copy: Copy, attempts = new Map<number, number>(), dueAt = 0, resumed = false): void {
    const rcpts = copy.recipients
      .filter((r) => copy.pending.has(r.rid))
      .map((r) => ({ ...r, attempts: attempts.get(r.rid) ?? 0 }));
    this.deps.events.emit(copy.mid, {
      type: 'delivery.queued',
      rids: rcpts.map((r) => r.rid),
      ...(resumed ? { resumed: true } : {}),
    });
    const job: Omit<DeliveryJob, 'route' | 'recipients'> = {
      mid: copy.mid,
      file: copy.file,
      bodyOffset: copy.bodyOffset,
      bytes: copy.bytes,
      size: copy.size,
      sender: copy.env.sender,
      receivedAt: copy.env.receivedAt,
      ...(copy.routeOverride ? { routeOverride: copy.routeOverride } : {}),
      origin: {
        listener: copy.env.listener,
        direction: copy.env.direction,
        ...(copy.env.generated ? { generated: copy.env.generated } : {}),
        ...(copy.modified ? { modified: true } : {}),
        ...(copy.authResults ? { authResults: copy.authResults } : {}),
      },
    };
    this.deps.delivery.submit(job, rcpts, dueAt);
  }

  /** Final results for some recipients of a copy (delivered or bounced): bounce notice, then settle. */
  onDeliveryFinal(mid: number, results: RecipientResult[]): void {
    const copy = this.deps.copies.get(mid);
    if (!copy) return;
    const bounced = results.filter((r) => r.outcome === 'bounced');
    const settle = (): void => {
      for (const r of results) this.settle(copy, r.rid, r.outcome === 'delivered' ? 'delivered' : 'bounced');
    };
    // Finished (and its spool file let go) only once the DSN is in the spool: a crash in between leaves
    // the copy unfinished, and recovery sends the DSN (resendLostBounces).
    if (bounced.length) void this.deps.bounces.send(copy, bounced).then(settle);
    else settle();
  }

  /** Recovery: sends the DSNs a crash kept out of the spool (bounced, no DSN event), then `then`. */
  resendLostBounces(copy: Copy, lost: RecipientResult[], then: () => void): void {
    if (lost.length) void this.deps.bounces.send(copy, lost).then(then);
    else then();
  }

  /** A delivery attempt will be retried later: waiting mail does not hold memory. */
  onDeferred(mid: number): void {
    this.deps.copies.dropBytes(this.deps.copies.get(mid));
  }

  /** Records a recipient's final outcome; finishes the copy when none is left. */
  settle(copy: Copy, rid: number, outcome: Outcome): void {
    if (!copy.pending.delete(rid)) return;
    copy.outcomes.set(rid, outcome);
    if (!copy.pending.size) this.finish(copy);
  }

  /** Every recipient of the copy is settled: record the result and let go of its spool file. */
  finish(copy: Copy): void {
    const values = [...copy.outcomes.values()];
    // "dropped" (the policy decided) and "deleted" (someone decided) stay apart in tracking and reports
    const status = values.every((v) => v === 'dropped')
      ? 'dropped'
      : values.every((v) => v === 'deleted' || v === 'dropped')
        ? 'deleted'
        : values.some((v) => v === 'delivered')
          ? 'delivered'
          : 'bounced';
    this.deps.events.emit(copy.mid, { type: 'message.done', status }, copy.env.icid);
    this.deps.copies.delete(copy);
    // The spool file goes only after the database says the message is finished.
    void this.deps.store.committed().then(() => this.deps.spool.release(copy.file));
  }

  /** The copy left the flow for a quarantine: its shared spool bytes go once the index is durable. */
  async handedOver(copy: Copy): Promise<void> {
    this.deps.copies.delete(copy);
    await this.deps.store.committed();
    this.deps.spool.release(copy.file);
  }

  // ---- queue operations (API, CLI) -------------------------------------------------------------

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
    for (const { job, dueAt } of this.deps.delivery.deferred())
      deferred.set(job.mid, Math.min(deferred.get(job.mid) ?? Infinity, dueAt));
    return [...this.deps.copies.values()].map((c) => ({
      mid: c.mid,
      sender: c.env.sender,
      recipients: c.recipients.filter((r) => c.pending.has(r.rid)),
      policy: c.policy,
      receivedAt: new Date(c.env.receivedAt).toISOString(),
      state: deferred.has(c.mid) ? 'deferred' : 'active',
      nextAttemptAt: deferred.has(c.mid) ? new Date(deferred.get(c.mid)!).toISOString() : null,
    }));
  }

  /** Scans copies waiting after a stage failure now (one, or all), instead of at their retry time. */
  rescanNow(mid?: number): number {
    let n = 0;
    for (const [m, t] of [...this.rescans]) {
      if (mid !== undefined && m !== mid) continue;
      clearTimeout(t);
      this.rescans.delete(m);
      const copy = this.deps.copies.get(m);
      if (copy) {
        void this.scan(copy);
        n++;
      }
    }
    return n;
  }

  queueRetry(mid: number): { mid: number; recipients: number } | null {
    const copy = this.deps.copies.get(mid);
    if (!copy) return null;
    if (this.rescans.has(mid)) {
      const n = this.rescanNow(mid);
      this.deps.events.emit(mid, { type: 'admin.retry', rids: [...copy.pending] });
      return { mid, recipients: n ? copy.pending.size : 0 };
    }
    const n = this.deps.delivery.retryNow(mid);
    if (n) this.deps.events.emit(mid, { type: 'admin.retry', rids: [...copy.pending] });
    return { mid, recipients: n };
  }

  queueDelete(mid: number): { mid: number; recipients: number } | null {
    const copy = this.deps.copies.get(mid);
    if (!copy) return null;
    const removed = this.deps.delivery.removeDeferred(mid);
    // Only recipients waiting for a retry can be deleted; one in flight finishes its attempt.
    const rids = removed.map((r) => r.rid);
    if (!rids.length) return { mid, recipients: 0 };
    this.deps.events.emit(mid, { type: 'admin.deleted', rids });
    for (const rid of rids) this.settle(copy, rid, 'deleted');
    return { mid, recipients: rids.length };
  }

  /** Copies in flight (scanning, queued, deferred). */
  active(): number {
    return this.deps.copies.size;
  }
}
