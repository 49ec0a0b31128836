// The gateway: wires listeners, spool, policy split, pipeline, delivery queue, tracking and the admin
// API together, and recovers unfinished mail at start. Service functions used by the API and CLI live
// in service.ts.
import { createReadStream, existsSync, openSync, readSync, closeSync, readFileSync, writeFileSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import type { LoadedConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { parseByteSize } from '../config/schema.ts';
import { Spool, type SpoolEnvelope, type SpooledMessage } from '../spool/spool.ts';
import { StorageGuard, type StorageState } from '../spool/storage.ts';
import { Store } from '../store/db.ts';
import { MailLog } from '../tracking/maillog.ts';
import { Tracker } from '../tracking/tracker.ts';
import { escapeControls } from '../tracking/escape.ts';
import { Ingress, type AcceptedMessage } from '../smtp/ingress.ts';
import type { ReverseResolver } from '../smtp/hat.ts';
import { splitByPolicy } from '../policy/policies.ts';
import { buildPipeline, runPipeline } from '../pipeline/pipeline.ts';
import { ParsePool } from '../mime/pool.ts';
import type { Stage, StageContext } from '../pipeline/stage.ts';
import { decide, unscannableAction } from '../policy/decide.ts';
import { limitsReached } from '../policy/unscannable.ts';
import { DeliveryQueue, type DeliveryJob, type RecipientResult } from '../delivery/queue.ts';
import { buildDsn, statusFromReply } from '../delivery/dsn.ts';
import { ensureTls } from './tls.ts';
import { Metrics } from './metrics.ts';
import { OutbreakEngine, type OutbreakAssessment } from '../outbreak/engine.ts';
import { RuleUpdater, type RuleChange } from '../outbreak/updater.ts';
import { effectiveOutbreakSettings, type ModificationPlan } from '../policy/outbreak.ts';
import {
  QuarantineIndex,
  quarantineSettings,
  quarantineTitle,
  type QuarantineEntry,
  type QuarantineFilter,
  type QuarantineName,
  type QuarantineSettings,
} from '../quarantine/quarantine.ts';
import { ClamdClient } from '../antivirus/clamd.ts';
import { antivirusState, clamdTarget, describeTarget, type AntivirusState } from '../antivirus/auto.ts';
import { stripParts } from '../mime/edit/replace.ts';
import { buildQuarantineCopy } from '../quarantine/copy-message.ts';
import type { Verdict } from '../policy/verdict.ts';
import { modifyMessage } from '../outbreak/modify.ts';
import { ClickTimeService, type ClickRecord, type UrlVerdict } from '../clicktime/server.ts';
import { Alerts, type AlertInput } from '../alerts/alerts.ts';
import { parseDuration } from '../config/schema.ts';
import { urlHost } from '../mime/urls.ts';
import { defaultParseLimits } from '../mime/types.ts';

export interface GatewayOptions {
  resolver?: ReverseResolver;
  /** print the admin token on first start (the CLI does; tests do not) */
  announce?: (line: string) => void;
  /** how `antivirus.clamd: auto` was resolved (runGateway probes before building the gateway) */
  antivirus?: AntivirusState;
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
  /** on its way out of these quarantines: rescanned, never held in them again */
  releasedFrom: QuarantineName[];
  /** subject tag for a message released by its quarantine's default action (scheduled exit, overflow) */
  releaseTag: string | null;
  /** X-Breakwater-Quarantine: how it left the quarantine */
  releaseNote: string | null;
  /** alternate mail host chosen by Outbreak Filters' modification */
  routeOverride: string | null;
}

const MAX_CONCURRENT_PIPELINES = 16;
/** Quarantine usage thresholds (percent of quarantine.maxSize) that raise an alert when crossed upward. */
const CAPACITY_THRESHOLDS = [5, 50, 75, 95];
/** Messages scanning or waiting for delivery beyond which a system alert goes out. */
const QUEUE_ALERT_THRESHOLD = 10_000;

/** Why and how a held message leaves a quarantine by release. */
interface ReleaseHow {
  reason: string;
  by: string | null;
  /** subject tag (the quarantine's default action only) */
  tag: string | null;
  /** the X-Breakwater-Quarantine header */
  note: string;
}
/** Rule changes alerted one by one; beyond this, one summary alert per bundle change. */
const MAX_RULE_ALERTS = 10;
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
  readonly parsePool: ParsePool;
  readonly outbreak: OutbreakEngine;
  readonly rules: RuleUpdater;
  readonly quarantine: QuarantineIndex;
  readonly alerts: Alerts;
  /** whether the data directory has room for new mail (452 4.3.1 at MAIL FROM when not) */
  readonly storage: StorageGuard;
  clickTime: ClickTimeService | null = null;
  readonly clamd: ClamdClient | null;
  /** anti-virus on or off, and why (status, the start banner) */
  readonly antivirus: AntivirusState;
  /** clamd's signature version as last read (null: unknown or no clamd) */
  avSignatureVersion: number | null = null;
  private avTimer: NodeJS.Timeout | null = null;
  /** while clamd does not answer: the next probe (antivirus.probeInterval) */
  private clamdProbe: NodeJS.Timeout | null = null;
  private exitTimer: NodeJS.Timeout | null = null;
  /** a re-evaluation of held mail is running or queued */
  private reevaluating: Promise<void> | null = null;
  private reevaluateAgain = false;
  /** copies waiting to be scanned again (a stage failed: clamd down, a timeout) */
  private readonly rescans = new Map<number, NodeJS.Timeout>();
  private clamdDown = false;
  private reevaluateWithAv = false;
  /**
   * MIDs on their way out of a quarantine. Index writes commit a moment later, so a concurrent
   * re-evaluation, scheduled exit or administrator action must not take the same message out twice.
   */
  private readonly leaving = new Set<number>();
  private readonly commitWaiters: Array<() => void> = [];
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
  /** every quarantine the configuration defines */
  private readonly quarantineSettings: QuarantineSettings[];
  /** quarantine.maxSize in bytes */
  private readonly quarantineMaxBytes: number;
  /** the capacity threshold (percent) usage last rose past; alerts fire only when it rises */
  private capacityLevel = 0;
  private overflowing: Promise<void> | null = null;
  /** system alerts: the disk threshold last crossed, and whether the queue alert is active */
  private diskLevel = 0;
  private queueAlerted = false;

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
    this.storage = new StorageGuard({
      dir: this.dataDir,
      minFreeBytes: parseByteSize(this.config.spool.minFree),
      onChange: (s) => this.storageChanged(s),
    });
    // Every write path reports a full or failing disk here instead of taking the process down.
    this.mailLog.onWriteError = (err) => this.storage.reportFailure('mail log', err);
    this.store.onStorageError = (err) => this.storage.reportFailure('database', err);
    this.spool = new Spool(path.join(this.dataDir, 'spool'), this.config.spool.fsync);
    this.metrics = new Metrics();
    this.tracker.bus.subscribe('metrics', (e) => this.metrics.onEvent(e.event));
    this.tracker.bus.onSubscriberError = (name, err) =>
      this.mailLog.warning(`event subscriber ${name} failed: ${err.message}`);
    this.delivery = new DeliveryQueue(this.config, this.dataDir, this.tracker, {
      onFinal: (job, results) => this.onDeliveryFinal(job, results),
      onDeferred: (job) => this.dropBytes(this.copies.get(job.mid)),
    });
    this.parsePool = new ParsePool();
    this.outbreak = new OutbreakEngine(this.config.outbreakFilters.adaptiveRules);
    this.quarantine = new QuarantineIndex(this.store);
    this.quarantineSettings = quarantineSettings(this.config);
    this.quarantineMaxBytes = parseByteSize(this.config.quarantine.maxSize);
    this.alerts = new Alerts({
      recipients: this.config.alerts.recipients,
      from: this.config.alerts.from ?? `breakwater@${this.config.hostname}`,
      hostname: this.config.hostname,
      webhooks: this.config.alerts.webhooks,
      minSeverity: this.config.alerts.minSeverity,
      suppressFor: parseDuration(this.config.alerts.suppressFor),
      sendMail: async (sender, recipients, message) => {
        await this.injectGenerated(sender, recipients, message);
      },
      store: this.store,
    });
    this.rules = new RuleUpdater({
      config: this.config,
      configDir: path.dirname(this.configFile),
      dataDir: this.dataDir,
      store: this.store,
      engine: this.outbreak,
      onChange: (c) => this.onRulesChanged(c),
      onFailure: (e) =>
        this.outbreakAlert({
          class: 'outbreak',
          severity: 'warning',
          key: `outbreak.feed_failed:${e.code}`,
          title: `rule update failed: ${e.code}`,
          text: `The outbreak rule feed could not be updated (${e.code}: ${e.message}). The previous rules stay active.`,
          data: { code: e.code },
        }),
      log: (l) => this.mailLog.info(l),
    });
    const av = this.config.antivirus;
    const target = clamdTarget(this.config);
    this.antivirus = options.antivirus ?? antivirusState(this.config);
    this.clamd = target
      ? new ClamdClient({
          target,
          timeoutMs: parseDuration(av.timeout),
          maxStreamBytes: parseByteSize(av.maxScanSize),
          maxConnections: av.maxConnections,
        })
      : null;
    this.stages = buildPipeline(this.config, {
      parsePool: this.parsePool,
      outbreak: this.outbreak,
      antivirus: this.clamd ? { clamd: this.clamd, signatureVersion: () => this.avSignatureVersion } : undefined,
    });
  }

  async start(): Promise<void> {
    await this.storage.start();
    await this.spool.init();
    const maxDbMid = (this.store.db.prepare('select max(mid) m from messages').get() as { m: number | null }).m ?? 0;
    this.nextMid = maxDbMid + 1; // recover() raises it past every MID in the spool
    const maxIcid = Number(this.store.getMeta('icid_hwm') ?? 0);
    this.nextIcid = maxIcid + 1;
    this.store.setMeta('icid_hwm', String(this.nextIcid + 1000));
    const tls = await ensureTls(this.dataDir, this.config.hostname, this.config.listeners, (l) =>
      this.mailLog.warning(l),
    );
    this.rules.loadPersisted();
    await this.recover();
    this.capacityLevel = Number(this.store.getMeta('quarantine.capacity_level') ?? 0);
    // A smaller maxSize than the quarantines hold (changed config): the oldest leave first, now.
    this.capacityChanged();
    if (this.config.clickTime.enabled) await this.startClickTime();
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
        storage: this.storage,
        smtp: {
          allowNul: this.config.smtp.allowNul,
          dataTimeoutMs: parseDuration(this.config.smtp.dataTimeout),
          dataMinRate: this.config.smtp.dataMinRate,
          dataRateGraceMs: parseDuration(this.config.smtp.dataRateGrace),
          postmaster: this.config.smtp.postmaster ?? this.config.alerts.recipients[0] ?? null,
        },
      });
      const port = await ingress.listen();
      this.ports.set(l.name, port);
      this.listeners.push(ingress);
      this.mailLog.info(`listener ${l.name} (${l.direction}) on ${l.host}:${port}`);
    }
    this.rules.start();
    this.mailLog.info(this.antivirus.summary);
    if (this.clamd) {
      await this.checkSignatures();
      const every = parseDuration(this.config.antivirus.signatureCheckInterval);
      const poll = (): void => {
        void this.checkSignatures().finally(() => {
          if (!this.stopped) {
            this.avTimer = setTimeout(poll, every);
            this.avTimer.unref();
          }
        });
      };
      this.avTimer = setTimeout(poll, every);
      this.avTimer.unref();
    }
    const every = parseDuration(this.config.outbreakFilters.reevaluateInterval);
    const tick = (): void => {
      void Promise.all([this.applyScheduledExits(), this.checkSystem()]).finally(() => {
        if (!this.stopped) {
          this.exitTimer = setTimeout(tick, every);
          this.exitTimer.unref();
        }
      });
    };
    this.exitTimer = setTimeout(tick, every);
    this.exitTimer.unref();
  }

  private allocateIcid(): number {
    const icid = this.nextIcid++;
    // ICIDs stay increasing across restarts: persist a high-water mark every 1000 sessions.
    if (icid % 1000 === 0) this.store.setMeta('icid_hwm', String(icid + 1000));
    return icid;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.storage.stop();
    this.rules.stop();
    if (this.exitTimer) clearTimeout(this.exitTimer);
    if (this.avTimer) clearTimeout(this.avTimer);
    if (this.clamdProbe) clearTimeout(this.clamdProbe);
    await this.clamd?.close();
    await this.clickTime?.close();
    await Promise.all(this.listeners.map((l) => l.close()));
    await this.alerts.close();
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
      releasedFrom: [],
      releaseTag: null,
      releaseNote: null,
      routeOverride: env.routeOverride ?? null,
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
      };
      const started = performance.now();
      const result = await runPipeline(this.stages, ctx);
      this.metrics.pipelineSeconds.observe((performance.now() - started) / 1000);
      // clamd failing a scan: the signature check notices when it answers again and rescans at once.
      const avFailure = result.failures.find((f) => f.stage === 'antivirus');
      if (avFailure) this.clamdUnavailable(avFailure.error);
      // A scan that worked while clamd was taken for down: it is back, rescan what waits for it now.
      else if (this.clamdDown && ctx.antivirus) void this.checkSignatures();
      for (const f of result.failures)
        this.tracker.event(copy.mid, {
          type: 'stage.failed',
          stage: f.stage,
          error: f.error,
          failureMode: f.failureMode,
        });
      if (ctx.parsed) {
        // A rescan (after a restart, or on release from a quarantine) replaces what the first scan recorded.
        this.tracker.setParsed(copy.mid, ctx.parsed, copy.recovered || copy.releasedFrom.length > 0);
        this.tracker.event(copy.mid, {
          type: 'scan.parsed',
          subject: ctx.parsed.subject,
          messageId: ctx.parsed.messageId,
          attachments: ctx.parsed.attachments.length,
          urls: ctx.parsed.urls.length,
          anomalies: ctx.parsed.anomalies,
        });
      }
      if (ctx.parsed && this.config.outbreakFilters.logUrls) {
        // Operators asked for every URL in the mail log (outbreakFilters.logUrls); bounded per message.
        for (const u of ctx.parsed.urls.slice(0, 200)) this.mailLog.info(`MID ${copy.mid} URL ${u.url}`);
      }
      if (ctx.antivirus)
        this.tracker.event(copy.mid, {
          type: 'antivirus.scanned',
          verdict: ctx.antivirus.verdict,
          names: ctx.antivirus.names,
          reason: ctx.antivirus.reason,
          signatureVersion: ctx.antivirus.signatureVersion,
          infectedParts: ctx.antivirus.infectedParts.map((p) => p.partPath),
        });
      if (ctx.outbreak) this.recordScore(copy.mid, ctx.outbreak, copy.recovered || copy.releasedFrom.length > 0);
      const verdict = decide(this.config, result, ctx);
      const limits = limitsReached(ctx.findings);
      if (limits.length && !result.stoppedBy)
        this.tracker.event(copy.mid, {
          type: 'scan.unscannable',
          limits,
          action: unscannableAction(this.config, ctx, new Set(ctx.releasedFrom)).kind,
          details: ctx.findings
            .filter((f) => f.code.startsWith('limit.'))
            .map((f) => f.detail)
            .slice(0, 10),
        });
      this.tracker.event(copy.mid, { type: 'verdict', verdict: verdict.kind, reason: verdict.reason });
      switch (verdict.kind) {
        case 'deliver':
          if (verdict.modify || verdict.strip?.length || verdict.subjectTag || copy.releaseTag || copy.releaseNote)
            await this.modifyCopy(copy, verdict);
          this.tracker.setStatus(copy.mid, 'queued', false);
          this.submitDelivery(copy);
          break;
        case 'quarantine':
          await this.hold(copy, verdict, ctx.outbreak, ctx.parsed?.subject ?? null);
          break;
        case 'tempfail': {
          this.tracker.setStatus(copy.mid, 'deferred', false);
          const t = setTimeout(() => {
            this.rescans.delete(copy.mid);
            void this.scan(copy);
          }, verdict.retryAfterMs);
          t.unref();
          this.rescans.set(copy.mid, t);
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
      // A full disk (held file, modified copy) or a bug must not lose mail: the copy stays in the
      // spool and is scanned again — soon for a disk that may free up, in a minute for a bug.
      const full = this.storage.reportFailure(`MID ${copy.mid} processing`, err);
      this.mailLog.warning(
        `MID ${copy.mid} ${full ? 'cannot be stored now' : 'pipeline error'}: ${full ? (err as Error).message : ((err as Error).stack ?? err)}`,
      );
      const t = setTimeout(() => void this.scan(copy), full ? 10_000 : 60_000);
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
      ...(copy.routeOverride ? { routeOverride: copy.routeOverride } : {}),
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
    const settle = () => {
      for (const r of results) this.settle(copy, r.rid, r.outcome === 'delivered' ? 'delivered' : 'bounced');
    };
    // Finished (and its spool file let go) only once the DSN is in the spool: a crash in between leaves
    // the copy unfinished, and recovery sends the DSN (resendLostDsns).
    if (bounced.length) void this.sendDsn(copy, bounced).then(settle);
    else settle();
  }

  /** Recovery: sends the DSNs a crash kept out of the spool (bounced, no DSN event), then `then`. */
  private resendLostDsns(copy: Copy, then: () => void): void {
    const lost = this.tracker.bouncesWithoutDsn(copy.mid);
    if (lost.length) void this.sendDsn(copy, lost).then(then);
    else then();
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

  // ---- Outbreak Filters: scores, modification, the Outbreak quarantine --------------------------

  private recordScore(mid: number, a: OutbreakAssessment, rescan = true): void {
    this.tracker.setThreat(mid, a.level, a.hits, rescan);
    this.tracker.event(mid, {
      type: 'outbreak.scored',
      level: a.level,
      category: a.category,
      threatType: a.type,
      viral: a.viral,
      ruleIds: a.hits.map((h) => h.id).slice(0, 20),
      ruleVersion: a.ruleVersion,
      skipped: a.skipped,
      ...(a.partial ? { partial: true } : {}),
    });
  }

  /** The message bytes of a copy, from memory or its spool file. */
  private async copyBytes(copy: Pick<Copy, 'bytes' | 'file' | 'bodyOffset' | 'size'>): Promise<Buffer> {
    if (copy.bytes) return copy.bytes;
    const chunks: Buffer[] = [];
    for await (const c of createReadStream(copy.file, {
      start: copy.bodyOffset,
      end: copy.bodyOffset + copy.size - 1,
    }))
      chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  /**
   * Applies Outbreak Filters' modification (and a release tag) and makes the result durable as a
   * "modified" spool file before delivery, so retries and restarts deliver exactly these bytes.
   */
  private async modifyCopy(copy: Copy, verdict: Extract<Verdict, { kind: 'deliver' }>): Promise<void> {
    const plan: ModificationPlan | null = verdict.modify ?? null;
    let original = await this.copyBytes(copy);
    let stripped = false;
    if (verdict.strip?.length) {
      // Anti-virus: infected attachments out first, each replaced by a notice; the rest stays as it was.
      const r = stripParts(original, verdict.strip);
      this.tracker.event(copy.mid, {
        type: 'antivirus.stripped',
        parts: r.stripped,
        subjectTag: verdict.subjectTag ?? null,
      });
      stripped = r.stripped.length > 0;
      original = r.bytes;
    }
    const addHeaders = [...(plan?.headers ?? [])];
    const subject = plan?.subject ?? null;
    if (copy.releaseNote) addHeaders.push({ name: 'X-Breakwater-Quarantine', value: copy.releaseNote });
    const click = this.clickTime;
    const single = copy.recipients.length === 1 ? copy.recipients[0].address : '';
    const rewrite =
      plan && plan.urlRewriting !== 'off' && click
        ? {
            mode: plan.urlRewriting,
            bypassDomains: plan.bypassDomains,
            wrap: (url: string) => {
              try {
                // The link carries what is known now: the message's level and what matches the URL itself,
                // so that a click is never judged on the URL's current rules alone (docs/outbreak.md).
                return click.wrap(url, {
                  mid: copy.mid,
                  recipient: single,
                  reason: 'outbreak',
                  messageThreat: plan.threat.level > 0 ? plan.threat : undefined,
                  urlThreat: this.urlThreatNow(url),
                });
              } catch {
                // A URL too long to carry in a signed link (several KB) is not left clickable in a threat
                // message: it points at the service's "this link cannot be opened" page instead.
                return `${click.baseUrl}/c/unavailable`;
              }
            },
            isOwnLink: (url: string) => click.isOwnLink(url),
          }
        : undefined;
    // Signed mail keeps a valid signature unless the policy rewrites everything ("all"), also when the
    // click-time service is off and no rewrite happens at all.
    const protectSigned = (plan?.urlRewriting ?? 'unsigned') !== 'all';
    let result = modifyMessage(original, {
      subject: subject ?? undefined,
      addHeaders,
      disclaimer: plan?.disclaimer ?? undefined,
      rewrite,
      protectSigned,
    });
    if (stripped) result = { ...result, changed: true };
    // Anti-virus tag, then the release tag, each in front of what came before.
    for (const tag of [verdict.subjectTag, copy.releaseTag]) {
      if (!tag) continue;
      const tagged = modifyMessage(result.bytes, { subject: { mode: 'prepend', text: tag }, protectSigned });
      result = { ...result, bytes: tagged.bytes, changed: result.changed || tagged.changed };
    }
    if (plan)
      this.tracker.event(copy.mid, {
        type: 'outbreak.modified',
        subject: result.subjectChanged,
        headers: addHeaders.map((h) => h.name),
        disclaimerParts: result.disclaimerParts,
        rewrittenUrls: result.rewrittenUrls.length,
        rewriteSkipped:
          plan.urlRewriting !== 'off' && !click ? 'click-time service disabled' : (result.rewriteSkipped ?? null),
        alternateMailHost: plan.alternateMailHost,
      });
    if (!result.changed && !plan?.alternateMailHost) return;
    const env: SpoolEnvelope = { ...copy.env, mid: copy.mid, derived: 'modified' };
    if (plan?.alternateMailHost) env.routeOverride = plan.alternateMailHost;
    else delete env.routeOverride;
    // Modified bytes are short-lived (delivered within moments): the group-commit journal makes them
    // durable at the cost of one shared write, where a file of their own would cost an fsync each.
    const loc = await this.spool.append(env, result.bytes);
    const old = copy.file;
    this.dropBytes(copy);
    copy.file = loc.file;
    copy.bodyOffset = loc.bodyOffset;
    copy.size = loc.size;
    copy.routeOverride = env.routeOverride ?? null;
    if (this.heldBytes + result.bytes.length <= MAX_HELD_BYTES) {
      copy.bytes = result.bytes;
      this.heldBytes += result.bytes.length;
    }
    // The old bytes go only once the database no longer points at them: a held file released before
    // the index row saying so is committed would leave, after a crash, a quarantine entry with no file.
    void this.store.committed().then(() => this.spool.release(old));
  }

  /**
   * Moves a copy into one or more quarantines: one durable file of its own, an index row per
   * quarantine, then the shared spool bytes are let go.
   */
  private async hold(
    copy: Copy,
    verdict: Extract<Verdict, { kind: 'quarantine' }>,
    a: OutbreakAssessment | null,
    subject: string | null,
  ): Promise<void> {
    const bytes = await this.copyBytes(copy);
    const loc = await this.spool.writeDerived({ ...copy.env, mid: copy.mid, derived: 'held' }, bytes);
    const now = Date.now();
    const pending = copy.recipients.filter((r) => copy.pending.has(r.rid));
    const held: QuarantineEntry['copy'] = {
      mid: copy.mid,
      parentMid: copy.parentMid,
      env: { ...copy.env, derived: undefined, routeOverride: undefined },
      policy: copy.policy,
      recipients: pending,
    };
    for (const h of verdict.holds) {
      const outbreak = h.quarantine === 'outbreak';
      const entry: QuarantineEntry = {
        mid: copy.mid,
        quarantine: h.quarantine,
        enteredAt: now,
        exitAt: now + h.retentionMs,
        size: loc.size,
        file: loc.file,
        bodyOffset: loc.bodyOffset,
        level: a?.level ?? 0,
        category: outbreak ? (a?.category ?? null) : 'virus',
        viral: !outbreak || (a?.viral ?? false),
        ruleIds: h.ids,
        reason: h.reason,
        sender: escapeControls(copy.env.sender),
        recipients: pending.map((r) => r.address),
        // shown in listings and terminals: peer control characters escaped (the held file keeps them)
        subject: subject === null ? null : escapeControls(subject),
        policy: copy.policy,
        copy: held,
      };
      this.quarantine.add(entry);
      this.tracker.event(copy.mid, {
        type: 'quarantine.held',
        quarantine: h.quarantine,
        reason: h.reason,
        exitAt: entry.exitAt,
        level: entry.level,
        ruleIds: entry.ruleIds,
      });
    }
    for (const r of pending) this.tracker.setRecipient(copy.mid, r.rid, 'quarantined', null, null);
    this.tracker.setStatus(copy.mid, 'quarantined', false);
    // The copy leaves the active set; its shared spool bytes go once the index is durable.
    this.copies.delete(copy.mid);
    this.dropBytes(copy);
    await this.store.committed();
    this.spool.release(copy.file);
    this.capacityChanged();
  }

  /**
   * Takes a held message out of one quarantine. Still in others: it stays held there (delivered only
   * when released from all). Otherwise it is put back on its way: rescan with current rules, then
   * delivery. Returns false when it is already leaving.
   */
  private releaseHeld(e: QuarantineEntry, how: ReleaseHow): boolean {
    // (A row read before a queued write committed may describe a message already gone.)
    if (this.leaving.has(e.mid) || this.copies.has(e.mid) || !this.quarantine.has(e.mid, e.quarantine)) return false;
    const rest = this.quarantine.remove(e.mid, e.quarantine);
    this.tracker.event(e.mid, {
      type: 'quarantine.released',
      quarantine: e.quarantine,
      reason: how.reason,
      by: how.by,
      ...(rest.length ? { stillIn: rest } : { note: how.note, tag: how.tag }),
    });
    if (rest.length) {
      // The others remember it, so that the last release delivers it rather than holding it again.
      this.quarantine.markReleased(e.mid, [...new Set([...(e.copy.releasedFrom ?? []), e.quarantine])]);
      return true;
    }
    this.leaving.add(e.mid);
    // The index removal and the status change are queued in the same turn, so they commit in one
    // transaction (a crash between two commits would leave a held file nobody owns).
    for (const r of e.copy.recipients) this.tracker.setRecipient(e.mid, r.rid, 'released', null, null);
    this.tracker.setStatus(e.mid, 'scanning', false);
    void this.afterCommit(() => this.leaving.delete(e.mid));
    const copy = this.resumeHeld(e.copy, { file: e.file, bodyOffset: e.bodyOffset, size: e.size });
    copy.releasedFrom = [...new Set([...(e.copy.releasedFrom ?? []), e.quarantine])];
    copy.releaseTag = how.tag || null;
    copy.releaseNote = how.note;
    void this.scan(copy);
    return true;
  }

  /**
   * Runs `fn` once what is queued now is committed. Quarantine actions of one event-loop turn share a
   * single commit: a bulk release or delete of thousands is a few transactions, not one per message.
   */
  private afterCommit(fn: () => void): Promise<void> {
    return new Promise((resolve) => {
      this.commitWaiters.push(() => {
        fn();
        resolve();
      });
      if (this.commitWaiters.length > 1) return;
      setImmediate(() => {
        const batch = this.commitWaiters.splice(0);
        void this.store.committed().then(() => {
          for (const w of batch) w();
        });
      });
    });
  }

  /** A copy made from a held file; the file's reference passes from the quarantine to the copy. */
  private resumeHeld(h: QuarantineEntry['copy'], loc: { file: string; bodyOffset: number; size: number }): Copy {
    const copy: Copy = {
      mid: h.mid,
      parentMid: h.parentMid,
      file: loc.file,
      bodyOffset: loc.bodyOffset,
      bytes: null,
      size: loc.size,
      env: h.env,
      policy: h.policy,
      recipients: h.recipients,
      pending: new Set(h.recipients.map((r) => r.rid)),
      outcomes: new Map(),
      recovered: false,
      releasedFrom: [],
      releaseTag: null,
      releaseNote: null,
      routeOverride: null,
    };
    this.copies.set(h.mid, copy);
    return copy;
  }

  /** Deletes a held message: deleted from one quarantine means deleted from all it is in. */
  private async deleteHeld(e: QuarantineEntry, reason: string, by: string | null): Promise<boolean> {
    if (this.leaving.has(e.mid) || this.copies.has(e.mid) || !this.quarantine.has(e.mid, e.quarantine)) return false;
    this.leaving.add(e.mid);
    const others = this.quarantine.memberships(e.mid).filter((q) => q !== e.quarantine);
    this.quarantine.remove(e.mid, e.quarantine);
    for (const q of others) this.quarantine.remove(e.mid, q);
    this.tracker.event(e.mid, {
      type: 'quarantine.deleted',
      quarantine: e.quarantine,
      reason,
      by,
      ...(others.length ? { alsoIn: others } : {}),
    });
    for (const r of e.copy.recipients) this.tracker.setRecipient(e.mid, r.rid, 'deleted', null, null);
    this.tracker.setStatus(e.mid, 'deleted', true);
    this.tracker.event(e.mid, { type: 'message.done', status: 'deleted' }, e.copy.env.icid);
    // The file goes once the database says the message is deleted.
    void this.afterCommit(() => {
      this.leaving.delete(e.mid);
      this.spool.release(e.file);
    });
    return true;
  }

  /** A quarantine's default action (scheduled exit, overflow): release (rescan first, tagged) or delete. */
  private async defaultAction(e: QuarantineEntry, why: 'scheduled exit' | 'overflow'): Promise<boolean> {
    const q = this.quarantineConfig(e.quarantine);
    const action = q?.defaultAction ?? 'release';
    if (action === 'delete') return this.deleteHeld(e, why === 'overflow' ? 'quarantine full' : 'expired', null);
    return this.releaseHeld(e, {
      reason: why === 'overflow' ? 'quarantine full: oldest released first' : 'scheduled exit',
      by: null,
      tag: q?.releaseSubjectTag ?? null,
      note: `released from ${quarantineTitle(e.quarantine)} ${why === 'overflow' ? 'when the quarantines were full' : 'at its scheduled exit'}`,
    });
  }

  /** Scheduled exits: the quarantine's default action. */
  private async applyScheduledExits(): Promise<void> {
    await this.store.committed();
    for (const e of this.quarantine.due(Date.now())) {
      if (this.stopped) return;
      await this.defaultAction(e, 'scheduled exit');
    }
    this.capacityAlert();
  }

  /** Settings of a quarantine by name; null for a name the configuration no longer has. */
  quarantineConfig(name: QuarantineName): QuarantineSettings | null {
    return this.quarantineSettings.find((q) => q.name === name) ?? null;
  }

  /**
   * Capacity (DESIGN §5): past `quarantine.maxSize`, the oldest messages first take their quarantine's
   * default action until the total fits; alerts when usage rises past 5, 50, 75 and 95 %.
   */
  private capacityChanged(): void {
    const max = this.quarantineMaxBytes;
    if (this.quarantine.usage().bytes > max && !this.overflowing) {
      this.overflowing = this.relieveOverflow().finally(() => {
        this.overflowing = null;
        this.capacityAlert();
      });
    }
    this.capacityAlert();
  }

  private async relieveOverflow(): Promise<void> {
    const max = this.quarantineMaxBytes;
    let after: { enteredAt: number; mid: number } | undefined;
    while (this.quarantine.usage().bytes > max && !this.stopped) {
      const batch = this.quarantine.oldest(100, after);
      if (!batch.length) break;
      for (const e of batch) {
        after = { enteredAt: e.enteredAt, mid: e.mid };
        if (this.quarantine.usage().bytes <= max) break;
        const q = this.quarantineConfig(e.quarantine);
        this.tracker.event(e.mid, {
          type: 'quarantine.overflow',
          quarantine: e.quarantine,
          action: q?.defaultAction ?? 'release',
          usedBytes: this.quarantine.usage().bytes,
          maxSize: max,
        });
        await this.defaultAction(e, 'overflow');
      }
      await this.store.committed();
    }
  }

  /** Raises a quarantine capacity alert when usage rises past a threshold; not again while it stays above. */
  private capacityAlert(): void {
    const max = this.quarantineMaxBytes;
    const used = this.quarantine.usage().bytes;
    const percent = max > 0 ? (used / max) * 100 : 0;
    const level = CAPACITY_THRESHOLDS.filter((t) => percent >= t).pop() ?? 0;
    if (level === this.capacityLevel) return;
    const rising = level > this.capacityLevel;
    this.capacityLevel = level;
    this.store.setMeta('quarantine.capacity_level', String(level));
    if (!rising) return;
    const severity = level >= 95 ? 'critical' : level >= 75 ? 'warning' : 'info';
    this.alerts
      .raise({
        class: 'quarantine',
        severity,
        key: `quarantine.capacity:${level}`,
        title: `Quarantines at ${percent.toFixed(0)} % of their capacity`,
        text: `The quarantines hold ${this.quarantine.usage().messages} message(s), ${used} bytes: ${percent.toFixed(1)} % of quarantine.maxSize (${max} bytes), past the ${level} % threshold. When they are full, the oldest messages take their quarantine's default action (release or delete) first.`,
        data: { percent: Math.round(percent * 10) / 10, threshold: level, usedBytes: used, maxSize: max },
      })
      .catch((err: Error) => this.mailLog.warning(`quarantine capacity alert could not be raised: ${err.message}`));
  }

  /** Raises an alert; a failure to record or send it is logged, never thrown into the mail flow. */
  private raiseAlert(a: AlertInput): void {
    this.alerts
      .raise(a)
      .catch((err: Error) => this.mailLog.warning(`alert ${a.key} could not be raised: ${err.message}`));
  }

  /** The data disk crossed the reserve (or a write failed for lack of space), or it has room again. */
  private storageChanged(s: StorageState): void {
    if (!s.accepting) {
      this.mailLog.warning(`storage: not accepting new mail (452 4.3.1): ${s.detail}`);
      this.raiseAlert({
        class: 'system',
        severity: 'critical',
        key: 'system.storage_full',
        title: 'data disk full: new mail is refused with 452 4.3.1',
        text: `The gateway stopped accepting new mail: ${s.detail}. Mail already accepted is kept and delivered; senders retry later. Free space under ${this.dataDir} (or raise its file system's size); acceptance resumes by itself once at least spool.minFree is free.`,
        data: { reason: s.reason, freeBytes: s.freeBytes, minFreeBytes: parseByteSize(this.config.spool.minFree) },
      });
    } else {
      this.mailLog.info('storage: space is back above the reserve; accepting new mail again');
      this.raiseAlert({
        class: 'system',
        severity: 'info',
        key: 'system.storage_ok',
        title: 'data disk has room again: accepting new mail',
        text: `Free space under ${this.dataDir} is back above spool.minFree; the gateway accepts new mail again.`,
        data: {},
      });
    }
  }

  /** clamd failed a scan or a check: mail waits for it (never delivered unscanned); alert once per outage. */
  private clamdUnavailable(why: string): void {
    if (this.clamdDown) return;
    this.clamdDown = true;
    this.probeClamd();
    this.mailLog.warning(`anti-virus: ${why}; messages wait to be scanned`);
    this.raiseAlert({
      class: 'antivirus',
      severity: 'critical',
      key: 'antivirus.clamd_down',
      title: 'clamd does not answer: mail waits for anti-virus',
      text: `The anti-virus scanner failed (${why}). Messages that need scanning are kept and retried; none is delivered unscanned. They are scanned as soon as clamd answers again.`,
      data: { error: why },
    });
  }

  /**
   * System health (DESIGN §6): the spool's file system filling up, the queue growing. Alerts when a
   * threshold is crossed upward, as for quarantine capacity.
   */
  private async checkSystem(): Promise<void> {
    try {
      const fs = await statfs(this.dataDir);
      const used = fs.blocks > 0 ? ((fs.blocks - fs.bavail) / fs.blocks) * 100 : 0;
      const level = used >= 95 ? 95 : used >= 90 ? 90 : 0;
      if (level > this.diskLevel)
        this.raiseAlert({
          class: 'system',
          severity: level >= 95 ? 'critical' : 'warning',
          key: `system.disk:${level}`,
          title: `the data directory's file system is ${used.toFixed(0)} % full`,
          text: `The file system holding ${this.dataDir} (spool, quarantines, database) is ${used.toFixed(1)} % full, ${Math.round((fs.bavail * fs.bsize) / 1048576)} MiB left. When it is full, the gateway answers 4xx to new mail.`,
          data: { percent: Math.round(used * 10) / 10, freeBytes: fs.bavail * fs.bsize },
        });
      this.diskLevel = level;
    } catch (err) {
      this.mailLog.warning(`system check: cannot read the file system of ${this.dataDir}: ${(err as Error).message}`);
    }
    const queued = this.copies.size;
    const growing = queued >= QUEUE_ALERT_THRESHOLD;
    if (growing && !this.queueAlerted)
      this.raiseAlert({
        class: 'system',
        severity: 'warning',
        key: 'system.queue',
        title: `${queued} messages in the queue`,
        text: `${queued} messages are being scanned or waiting for delivery (alert threshold ${QUEUE_ALERT_THRESHOLD}). Check the downstream mail servers (breakwater queue list) and clamd.`,
        data: { queued, threshold: QUEUE_ALERT_THRESHOLD },
      });
    this.queueAlerted = growing;
  }

  private outbreakAlert(a: AlertInput): void {
    if (!this.config.outbreakFilters.alerts) return;
    this.alerts
      .raise(a)
      .catch((err: Error) => this.mailLog.warning(`alert ${a.key} could not be raised: ${err.message}`));
  }

  /** Rules changed: alert on rules crossing a policy threshold, then re-evaluate every held message. */
  private onRulesChanged(c: RuleChange): void {
    const thresholds = new Set<number>();
    for (const dir of ['incoming', 'outgoing'] as const)
      for (const p of this.config.policies[dir]) {
        const s = effectiveOutbreakSettings(this.config, dir, p.name);
        if (s) thresholds.add(s.quarantineThreshold);
      }
    const threshold = thresholds.size ? Math.min(...thresholds) : 6;
    const before = new Map((c.previous?.rules ?? []).map((r) => [r.id, r]));
    const after = new Map((c.next?.rules ?? []).map((r) => [r.id, r]));
    const raised = [...after.values()].filter((r) => {
      const old = before.get(r.id);
      return r.level >= threshold && (!old || old.level < threshold);
    });
    const lowered = [...before.values()].filter((old) => {
      const r = after.get(old.id);
      return old.level >= threshold && (!r || r.level < threshold);
    });
    const version = c.next?.version ?? null;
    // One alert per rule while changes are few; a summary when a bundle moves many rules at once (a
    // first bundle of 2,000 rules must not send 2,000 e-mails).
    if (raised.length <= MAX_RULE_ALERTS)
      for (const r of raised)
        this.outbreakAlert({
          class: 'outbreak',
          severity: r.level >= 4 ? 'critical' : 'warning',
          key: `outbreak.rule_raised:${r.id}:${r.level}`,
          title: `${r.id} at level ${r.level} (${r.category})`,
          text: `Outbreak rule ${r.id} (${r.description}) is now at threat level ${r.level}, at or above the quarantine threshold ${threshold}. Matching messages are held in the Outbreak quarantine.`,
          data: { ruleId: r.id, level: r.level, previousLevel: before.get(r.id)?.level ?? null, version },
        });
    else
      this.outbreakAlert({
        class: 'outbreak',
        severity: raised.some((r) => r.level >= 4) ? 'critical' : 'warning',
        key: `outbreak.rules_raised:${version}`,
        title: `${raised.length} outbreak rules at or above level ${threshold} (version ${version})`,
        text: `Rules version ${version} puts ${raised.length} rules at or above the quarantine threshold ${threshold}; matching messages are held in the Outbreak quarantine. First ones: ${raised
          .slice(0, 20)
          .map((r) => `${r.id} (level ${r.level}, ${r.category}: ${r.description})`)
          .join('; ')}.`,
        data: { ruleIds: raised.map((r) => r.id).slice(0, 200), count: raised.length, version },
      });
    if (lowered.length <= MAX_RULE_ALERTS)
      for (const old of lowered) {
        const r = after.get(old.id);
        this.outbreakAlert({
          class: 'outbreak',
          severity: 'info',
          key: `outbreak.rule_lowered:${old.id}:${r?.level ?? 'retired'}`,
          title: r ? `${old.id} lowered to level ${r.level}` : `${old.id} retired`,
          text: `Outbreak rule ${old.id} (${old.description}) fell below the quarantine threshold ${threshold}${r ? ` (now level ${r.level})` : ' (retired)'}. Held messages are re-evaluated and released when no longer a threat.`,
          data: { ruleId: old.id, level: r?.level ?? null, previousLevel: old.level, version },
        });
      }
    else
      this.outbreakAlert({
        class: 'outbreak',
        severity: 'info',
        key: `outbreak.rules_lowered:${version ?? 'flushed'}`,
        title: `${lowered.length} outbreak rules fell below level ${threshold}`,
        text: `${c.reason === 'flush' ? 'The cached rules were flushed' : `Rules version ${version} lowers or retires ${lowered.length} rules`}; held messages are re-evaluated and released when no longer a threat. First ones: ${lowered
          .slice(0, 20)
          .map((r) => r.id)
          .join(', ')}.`,
        data: { ruleIds: lowered.map((r) => r.id).slice(0, 200), count: lowered.length, version },
      });
    void this.reevaluateHeld();
  }

  /**
   * Scores every message in the Outbreak quarantine again; those now below threshold leave at once.
   * With `antivirus` (clamd's signatures changed) each is also scanned: one that is now infected leaves
   * the Outbreak quarantine into the pipeline, where the anti-virus policy takes it.
   */
  reevaluateHeld(antivirus = false): Promise<void> {
    this.reevaluateWithAv ||= antivirus;
    if (this.reevaluating) {
      this.reevaluateAgain = true;
      return this.reevaluating;
    }
    this.reevaluating = (async () => {
      do {
        this.reevaluateAgain = false;
        const av = this.reevaluateWithAv;
        this.reevaluateWithAv = false;
        await this.reevaluateOnce(av);
      } while (this.reevaluateAgain && !this.stopped);
    })().finally(() => {
      this.reevaluating = null;
    });
    return this.reevaluating;
  }

  private async reevaluateOnce(antivirus: boolean): Promise<void> {
    await this.store.committed();
    let released = 0;
    for (const e of this.quarantine.each({ quarantine: 'outbreak' })) {
      if (this.stopped) return;
      const settings = effectiveOutbreakSettings(this.config, e.copy.env.direction, e.policy);
      let a: OutbreakAssessment | null = null;
      try {
        const parsed = await this.parsePool.parse(
          { file: e.file, start: e.bodyOffset, size: e.size },
          defaultParseLimits,
        );
        a = this.outbreak.score(
          { parsed, sender: e.copy.env.sender.toLowerCase(), avSignatureVersion: this.avSignatureVersion },
          settings?.bypassExtensions ?? [],
        );
        if (antivirus && this.clamd) {
          const r = await this.clamd.scan(
            createReadStream(e.file, { start: e.bodyOffset, end: e.bodyOffset + e.size - 1 }),
            e.size,
          );
          if (r.verdict === 'infected' && !this.leaving.has(e.mid) && !this.copies.has(e.mid)) {
            if (
              this.releaseHeld(e, {
                reason: `new anti-virus signatures: ${r.names.join(', ')}`,
                by: null,
                tag: null,
                note: 'released from Outbreak for anti-virus after a signature update',
              })
            )
              released++;
            continue;
          }
        }
      } catch (err) {
        this.mailLog.warning(`MID ${e.mid} re-evaluation failed: ${(err as Error).message}; it stays held`);
        continue;
      }
      // Still held only while it still meets its policy's quarantine threshold.
      // Released or deleted meanwhile (an administrator, a scheduled exit)?
      if (this.leaving.has(e.mid) || this.copies.has(e.mid) || !this.quarantine.has(e.mid, 'outbreak')) continue;
      if (!settings || a.level < settings.quarantineThreshold) {
        this.recordScore(e.mid, a);
        if (
          this.releaseHeld(e, {
            reason: `re-evaluated with rules version ${a.ruleVersion ?? '-'}: level ${a.level}`,
            by: null,
            tag: null,
            note: `released from Outbreak early: rules version ${a.ruleVersion ?? '-'} puts it at level ${a.level}`,
          })
        )
          released++;
      } else if (a.level !== e.level || a.hits.map((h) => h.id).join(' ') !== e.ruleIds.join(' ')) {
        const ids = a.hits.filter((h) => h.level > 0).map((h) => h.id);
        this.quarantine.rescored(e.mid, 'outbreak', a.level, ids);
        this.recordScore(e.mid, a);
        this.tracker.event(e.mid, {
          type: 'quarantine.rescored',
          quarantine: 'outbreak',
          level: a.level,
          ruleIds: ids,
          ruleVersion: a.ruleVersion,
        });
      }
    }
    if (released) this.mailLog.info(`Outbreak quarantine re-evaluated: ${released} message(s) released early`);
  }

  // ---- click-time service ---------------------------------------------------------------------

  private async startClickTime(): Promise<void> {
    const c = this.config.clickTime;
    const keyFile = path.join(this.dataDir, 'clicktime.key');
    let key: Buffer;
    if (existsSync(keyFile)) key = Buffer.from(readFileSync(keyFile, 'utf8').trim(), 'base64');
    else {
      key = randomBytes(32);
      writeFileSync(keyFile, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
    }
    // Port 0 (tests): find the port first, since the links must name it.
    const port0 = c.port === 0 ? await freeTcpPort(c.host) : c.port;
    const service = new ClickTimeService({
      host: c.host,
      port: port0,
      baseUrl: c.baseUrl ?? `http://${c.host.includes(':') ? `[${c.host}]` : c.host}:${port0}`,
      keys: [key],
      branding: c.branding,
      verdictTimeoutMs: parseDuration(c.verdictTimeout),
      linkLifetimeSeconds: Math.round(parseDuration(c.linkLifetime) / 1000),
      verdict: (url) => this.clickVerdict(url),
      warnLevel: c.warnLevel,
      blockLevel: c.blockLevel,
      onClick: (r) => this.recordClick(r),
    });
    const port = await service.listen();
    this.clickTime = service;
    this.ports.set('clickTime', port);
    this.mailLog.info(`click-time service on ${c.host}:${port}`);
  }

  /** The level and strongest rules that match a URL now (for a rewritten link's token); undefined for none. */
  private urlThreatNow(url: string): { level: number; ruleIds: string[] } | undefined {
    let href: string;
    try {
      // the URL as the click-time service will see it (and judge it again)
      href = new URL(url).href;
    } catch {
      return undefined;
    }
    let hits: ReturnType<OutbreakEngine['scoreUrl']>;
    try {
      hits = this.outbreak.scoreUrl(href);
    } catch (err) {
      this.mailLog.warning(`click-time: URL rules failed at rewrite time: ${(err as Error).message}`);
      return undefined;
    }
    const level = Math.max(0, ...hits.map((h) => h.level));
    return level > 0 ? { level, ruleIds: hits.filter((h) => h.level === level).map((h) => h.id) } : undefined;
  }

  /**
   * Verdict for a URL at click time: allow/block lists, then current outbreak and adaptive rules. The
   * click-time service combines it with what the link's token carries (src/clicktime/verdict.ts).
   */
  clickVerdict(url: string): UrlVerdict {
    const c = this.config.clickTime;
    if (listMatches(c.allowList, url))
      return { verdict: 'clean', ruleIds: [], reason: 'allow list', source: 'allow_list' };
    if (listMatches(c.blockList, url))
      return { verdict: 'malicious', ruleIds: [], reason: 'block list', source: 'block_list' };
    const hits = this.outbreak.scoreUrl(url);
    const level = Math.max(0, ...hits.map((h) => h.level));
    const ids = hits.filter((h) => h.level === level && level > 0).map((h) => h.id);
    if (level >= c.blockLevel)
      return { verdict: 'malicious', ruleIds: ids, reason: `level ${level}`, source: 'url_rules' };
    if (level >= c.warnLevel)
      return { verdict: 'suspicious', ruleIds: ids, reason: `level ${level}`, source: 'url_rules' };
    return { verdict: 'clean', ruleIds: [], reason: 'no rule matched', source: 'url_rules' };
  }

  private recordClick(r: ClickRecord): void {
    if (!this.config.outbreakFilters.webInteractionTracking) return;
    let domain: string | null = null;
    try {
      domain = urlHost(r.url);
    } catch {
      domain = null;
    }
    this.store.run(
      'insert into clicks(at, mid, recipient, url, domain, verdict, action, reason, rule_ids, source) values (?,?,?,?,?,?,?,?,?,?)',
      r.at,
      r.mid,
      r.recipient,
      r.url,
      domain,
      r.verdict,
      r.action,
      r.reason,
      r.ruleIds.join(' '),
      r.source,
    );
    this.tracker.event(r.mid, {
      type: 'click',
      recipient: r.recipient,
      url: r.url,
      verdict: r.verdict,
      action: r.action,
      ruleIds: r.ruleIds,
      source: r.source,
    });
  }

  /** Web interaction tracking report (DESIGN §8): clicks per URL, and who clicked malicious links. */
  async webInteractionReport(since: number, until: number, top = 20): Promise<Record<string, unknown>> {
    await this.store.committed();
    const urls = this.store
      .stmt(
        `select url, domain,
           sum(action in ('redirected','continued')) allowed,
           sum(action = 'blocked') blocked,
           sum(verdict = 'unknown') unknown,
           sum(action = 'warned') warned,
           count(*) clicks,
           count(distinct mid) messages
         from clicks where at >= ? and at < ? and action != 'invalid'
         group by url order by clicks desc limit ?`,
      )
      .all(since, until, top);
    const users = this.store
      .stmt(
        `select recipient, count(*) clicks, count(distinct url) urls
         from clicks where at >= ? and at < ? and (verdict = 'malicious' or action = 'continued') and recipient != ''
         group by recipient order by clicks desc limit ?`,
      )
      .all(since, until, top);
    const totals = this.store
      .stmt(
        `select count(*) clicks, sum(action in ('redirected','continued')) allowed, sum(action = 'blocked') blocked,
           sum(verdict = 'unknown') unknown, sum(action = 'warned') warned
         from clicks where at >= ? and at < ? and action != 'invalid'`,
      )
      .get(since, until);
    return {
      since: new Date(since).toISOString(),
      until: new Date(until).toISOString(),
      totals,
      urls,
      topMaliciousClickers: users,
    };
  }

  /** Outbreak Filters report (DESIGN §8): messages by threat level, by category and by rule. */
  async outbreakReport(since: number, until: number, top = 20): Promise<Record<string, unknown>> {
    await this.store.committed();
    const byLevel = this.store
      .stmt(
        `select threat_level level, count(*) messages from messages
         where received_at >= ? and received_at < ? and threat_level is not null
         group by threat_level order by threat_level`,
      )
      .all(since, until);
    const rules = this.store
      .stmt(
        `select r.rule_id ruleId, r.category, r.type, r.description, r.adaptive, max(r.level) level, count(*) messages
         from messages m join message_rules r on r.mid = m.mid
         where m.threat_level > 0 and m.received_at >= ? and m.received_at < ? and r.level > 0
         group by r.rule_id order by messages desc, r.rule_id limit ?`,
      )
      .all(since, until, top) as Array<Record<string, unknown>>;
    const byCategory = this.store
      .stmt(
        `select r.category, count(distinct m.mid) messages
         from messages m join message_rules r on r.mid = m.mid and r.level = m.threat_level
         where m.threat_level > 0 and m.received_at >= ? and m.received_at < ?
         group by r.category order by messages desc`,
      )
      .all(since, until);
    return {
      since: new Date(since).toISOString(),
      until: new Date(until).toISOString(),
      byLevel,
      byCategory,
      topRules: rules.map((r) => ({ ...r, adaptive: !!r.adaptive })),
      quarantine: this.quarantine.usage(),
    };
  }

  // ---- generated mail (alerts) ------------------------------------------------------------------

  /** Hands a message the gateway wrote itself to its own spool and delivery queue. */
  private async injectGenerated(
    sender: string,
    recipients: string[],
    message: Buffer,
    kind: 'alert' | 'copy' = 'alert',
  ): Promise<number> {
    const env: SpoolEnvelope = {
      mid: this.nextMid++,
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
    const loc = await this.spool.append(env, message);
    this.onAccepted({ ...loc, env, bytes: message });
    return env.mid;
  }

  // ---- quarantine service functions (API, CLI) --------------------------------------------------

  async quarantineList(f: QuarantineFilter): Promise<QuarantineEntry[]> {
    await this.store.committed();
    return this.quarantine.list(f);
  }

  /** Bulk actions read every match a page at a time unless the filter has its own limit. */
  private async *bulk(f: QuarantineFilter): AsyncGenerator<QuarantineEntry> {
    await this.store.committed();
    if (f.limit !== undefined) yield* this.quarantine.list(f);
    else yield* this.quarantine.each(f);
  }

  /** Quarantines with their settings and usage; the capacity budget. */
  async quarantineSummary(): Promise<{
    quarantines: Array<QuarantineSettings & { messages: number; bytes: number }>;
    usage: { messages: number; bytes: number; maxSize: number; percent: number };
  }> {
    await this.store.committed();
    const per = this.quarantine.perQuarantine();
    const usage = this.quarantine.usage();
    return {
      quarantines: this.quarantineSettings.map((q) => ({ ...q, ...(per.get(q.name) ?? { messages: 0, bytes: 0 }) })),
      usage: {
        ...usage,
        maxSize: this.quarantineMaxBytes,
        percent: this.quarantineMaxBytes > 0 ? Math.round((usage.bytes / this.quarantineMaxBytes) * 1000) / 10 : 100,
      },
    };
  }

  async quarantineRelease(f: QuarantineFilter, by: string | null): Promise<number[]> {
    const done: number[] = [];
    for await (const e of this.bulk(f))
      if (
        this.releaseHeld(e, {
          reason: by ? `released by ${by}` : 'released by administrator',
          by,
          tag: null,
          note: `released from ${quarantineTitle(e.quarantine)} by ${by ?? 'an administrator'}`,
        })
      )
        done.push(e.mid);
    await this.store.committed();
    this.capacityAlert();
    return done;
  }

  async quarantineDelete(f: QuarantineFilter, by: string | null): Promise<number[]> {
    const done: number[] = [];
    for await (const e of this.bulk(f))
      if (await this.deleteHeld(e, by ? `deleted by ${by}` : 'deleted by administrator', by)) done.push(e.mid);
    await this.store.committed();
    this.capacityAlert();
    return done;
  }

  /** Extends scheduled exits by `byMs`, never past `maxHoldMs` from now (a bad stored exit starts from now). */
  async quarantineDelay(
    f: QuarantineFilter,
    byMs: number,
    by: string | null,
    maxHoldMs = 3650 * 86_400_000,
  ): Promise<number[]> {
    const done: number[] = [];
    const latest = Date.now() + maxHoldMs;
    for await (const e of this.bulk(f)) {
      const from = Number.isFinite(e.exitAt) && e.exitAt <= latest ? e.exitAt : Date.now();
      const exitAt = Math.min(from + byMs, latest);
      this.quarantine.delay(e.mid, e.quarantine, exitAt);
      this.tracker.event(e.mid, { type: 'quarantine.delayed', quarantine: e.quarantine, exitAt, by });
      done.push(e.mid);
    }
    await this.store.committed();
    return done;
  }

  /**
   * Moves messages to another quarantine (e.g. from Outbreak to a policy quarantine for a longer
   * look). The target's retention starts now; the entry time is kept, so overflow still sees its age.
   */
  async quarantineMove(f: QuarantineFilter, to: QuarantineName, by: string | null): Promise<number[]> {
    const target = this.quarantineConfig(to);
    if (!target) throw new Error(`no quarantine ${to}`);
    const done: number[] = [];
    for await (const e of this.bulk(f)) {
      if (e.quarantine === to || this.leaving.has(e.mid) || this.copies.has(e.mid)) continue;
      // The Outbreak quarantine's retention is its policy's; a policy may since have lost its settings.
      const settings = effectiveOutbreakSettings(this.config, e.copy.env.direction, e.policy);
      const retention =
        target.retentionMs ??
        (settings ? parseDuration(e.viral ? settings.retention.viral : settings.retention.other) : null) ??
        (Number.isFinite(e.exitAt) ? Math.max(e.exitAt - Date.now(), 0) : 0);
      const exitAt = Date.now() + retention;
      if (!this.quarantine.move(e.mid, e.quarantine, to, exitAt, `moved from ${e.quarantine}: ${e.reason}`)) continue;
      this.tracker.event(e.mid, { type: 'quarantine.moved', quarantine: e.quarantine, to, exitAt, by });
      done.push(e.mid);
    }
    await this.store.committed();
    return done;
  }

  /** Sends a copy of each held message to administrators; the messages stay held. */
  async quarantineCopy(f: QuarantineFilter, to: string[], by: string | null): Promise<number[]> {
    const from = this.config.alerts.from ?? `breakwater@${this.config.hostname}`;
    const done: number[] = [];
    for await (const e of this.bulk(f)) {
      if (!this.quarantine.has(e.mid, e.quarantine)) continue;
      const original = await this.copyBytes({ bytes: null, file: e.file, bodyOffset: e.bodyOffset, size: e.size });
      const message = buildQuarantineCopy({ entry: e, original, from, to, hostname: this.config.hostname, by });
      const copyMid = await this.injectGenerated(from, to, message, 'copy');
      this.tracker.event(e.mid, { type: 'quarantine.copied', quarantine: e.quarantine, to, copyMid, by });
      done.push(e.mid);
    }
    await this.store.committed();
    return done;
  }

  /**
   * "Manage by rule": per outbreak rule (Outbreak quarantine) or virus name (virus and policy
   * quarantines), its description, messages and total size.
   */
  async quarantineRules(
    quarantine: QuarantineName = 'outbreak',
  ): Promise<Array<{ ruleId: string; description: string; messages: number; totalSize: number }>> {
    await this.store.committed();
    const descriptions = new Map(this.rules.activeRules().map((r) => [r.id, r.description]));
    return this.quarantine.rules(quarantine).map((r) => ({
      ...r,
      description:
        descriptions.get(r.ruleId) ??
        (r.ruleId.startsWith('ADAPTIVE_')
          ? 'adaptive rule'
          : quarantine === 'outbreak'
            ? 'rule no longer published'
            : 'virus or scan result'),
    }));
  }

  // ---- recovery ------------------------------------------------------------------------------

  /** Resumes every spooled message that was not finished (after a crash or a restart). */
  private async recover(): Promise<void> {
    let resumed = 0;
    let maxMid = 0;
    const all = [...this.spool.scan((file, why) => this.mailLog.warning(`spool file ${file}: ${why}`))];
    for (const m of all) maxMid = Math.max(maxMid, m.env.mid);
    this.nextMid = Math.max(this.nextMid, maxMid + 1);
    // Files written after a scan (held, modified) belong to one copy and are resumed apart.
    const spooled = all.filter((m) => !m.env.derived);
    const derived = new Map<number, SpooledMessage[]>();
    for (const m of all)
      if (m.env.derived) {
        const list = derived.get(m.env.mid) ?? [];
        list.push(m);
        derived.set(m.env.mid, list);
      }
    // Held messages stay held: the quarantine index owns their files.
    const heldFiles = new Set<string>();
    // (A message in several quarantines has one file: one reference for the index.)
    for (const file of this.quarantine.files()) {
      if (existsSync(file)) {
        this.spool.retain(file);
        heldFiles.add(file);
      } else this.mailLog.warning(`quarantine file ${file} is missing`);
    }
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
      const undone = rows.filter(
        (r) => !r.done && r.status !== 'splintered' && r.status !== 'quarantined' && !derived.has(r.mid),
      );
      for (const r of undone) {
        const rcpts = this.recipientRows(r.mid);
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
        // every recipient was settled but the crash came before the finish (or a DSN)
        const settled = !copy.pending.size;
        this.resendLostDsns(copy, () => settled && this.finish(copy));
        if (settled) continue;
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
    resumed += this.recoverDerived(derived, heldFiles);
    this.spool.removeUnreferenced();
    if (resumed) this.mailLog.info(`recovered ${resumed} unfinished message(s) from the spool`);
  }

  /**
   * The quarantines a copy was released from (its tracking events say: never held there again), and the
   * header and tag its last release gave it.
   */
  private releasedQuarantines(mid: number): { quarantines: QuarantineName[]; note: string | null; tag: string | null } {
    const rows = this.store
      .stmt("select data from events where mid = ? and type = 'quarantine.released' order by id")
      .all(mid) as Array<{ data: string }>;
    const events = rows.map((r) => JSON.parse(r.data) as { quarantine: string; note?: string; tag?: string | null });
    const last = events.at(-1);
    return {
      quarantines: [...new Set(events.map((e) => e.quarantine))],
      note: last?.note ?? null,
      tag: last?.tag ?? null,
    };
  }

  /**
   * While clamd is down it is asked every antivirus.probeInterval whether it answers again; the first
   * answer rescans the waiting messages at once (checkSignatures), instead of at their retry time.
   */
  private probeClamd(): void {
    if (this.clamdProbe || this.stopped || !this.clamd) return;
    this.clamdProbe = setTimeout(() => {
      void this.checkSignatures().finally(() => {
        this.clamdProbe = null;
        if (this.clamdDown) this.probeClamd();
      });
    }, parseDuration(this.config.antivirus.probeInterval));
    this.clamdProbe.unref();
  }

  /**
   * Reads clamd's signature version; a change re-evaluates the Outbreak quarantine, where new
   * signatures may condemn (or clear) held mail (DESIGN §5).
   */
  private async checkSignatures(): Promise<void> {
    if (!this.clamd) return;
    const v = await this.clamd.version().catch(() => null);
    if (!v) {
      this.clamdUnavailable('clamd does not answer');
      return;
    }
    if (this.clamdDown) {
      // clamd is back: what waited for it is scanned now, not at its retry time.
      this.clamdDown = false;
      const n = this.rescanNow();
      this.mailLog.info(`anti-virus: clamd answers again; ${n} waiting message(s) rescanned`);
      this.raiseAlert({
        class: 'antivirus',
        severity: 'info',
        key: 'antivirus.clamd_up',
        title: 'clamd answers again',
        text: `clamd answers again (${v.raw}); ${n} message(s) that waited for a scan are being scanned now.`,
        data: { waiting: n },
      });
    }
    if (v.signatureVersion === null) return;
    const previous = this.avSignatureVersion;
    this.avSignatureVersion = v.signatureVersion;
    if (previous !== v.signatureVersion) {
      this.store.setMeta('antivirus.signature_version', String(v.signatureVersion));
      this.mailLog.info(`anti-virus signatures: ${v.raw}`);
      if (previous !== null) {
        void this.reevaluateHeld(true);
        this.raiseAlert({
          class: 'antivirus',
          severity: 'info',
          key: `antivirus.signatures:${v.signatureVersion}`,
          title: `anti-virus signatures updated to version ${v.signatureVersion}`,
          text: `clamd's signatures changed from version ${previous} to ${v.signatureVersion} (${v.raw}). The Outbreak quarantine is being rescanned with them.`,
          data: { previous, version: v.signatureVersion },
        });
      }
    }
  }

  private recipientRows(
    mid: number,
  ): Array<{ rid: number; address: string; status: string; attempts: number; next_attempt_at: number | null }> {
    return this.store
      .stmt('select rid, address, status, attempts, next_attempt_at from recipients where mid = ? order by rid')
      .all(mid) as Array<{
      rid: number;
      address: string;
      status: string;
      attempts: number;
      next_attempt_at: number | null;
    }>;
  }

  /**
   * Resumes copies that had a file of their own when the process stopped. A "modified" file is the
   * output of a finished scan: deliver it. A "held" file whose copy is not in the quarantine index was
   * being quarantined or released: scan it again (it holds the original bytes).
   */
  private recoverDerived(derived: Map<number, SpooledMessage[]>, heldFiles: Set<string>): number {
    let resumed = 0;
    for (const [mid, files] of derived) {
      const row = this.store
        .stmt('select mid, parent_mid, status, policy, done from messages where mid = ?')
        .get(mid) as
        { mid: number; parent_mid: number | null; status: string; policy: string | null; done: number } | undefined;
      const live = files.filter((f) => !heldFiles.has(f.file));
      if (!row || row.done || !live.length) continue;
      // Still "quarantined" with no index row: a release was under way (older versions committed the
      // two apart). Its held file is the message: rescan it like any release, never drop it.
      if (row.status === 'quarantined' && this.quarantine.memberships(mid).length) continue;
      const pick = live.find((f) => f.env.derived === 'modified') ?? live[live.length - 1];
      const rcpts = this.recipientRows(mid);
      const env: SpoolEnvelope = { ...pick.env };
      delete env.derived;
      const copy = this.addCopy(
        mid,
        row.parent_mid,
        pick.file,
        pick.bodyOffset,
        null,
        pick.size,
        env,
        row.policy ?? 'default',
        rcpts.map((x) => ({ rid: x.rid, address: x.address })),
      );
      copy.recovered = true;
      for (const x of rcpts)
        if (['delivered', 'bounced', 'deleted', 'dropped'].includes(x.status)) {
          copy.pending.delete(x.rid);
          copy.outcomes.set(
            x.rid,
            x.status === 'dropped' ? 'deleted' : (x.status as 'delivered' | 'bounced' | 'deleted'),
          );
        }
      const settled = !copy.pending.size;
      this.resendLostDsns(copy, () => settled && this.finish(copy));
      if (settled) continue;
      resumed++;
      if (pick.env.derived === 'modified') {
        this.tracker.setStatus(mid, 'queued', false);
        const attempts = new Map(rcpts.map((x) => [x.rid, x.attempts]));
        const due = Math.max(0, ...rcpts.filter((x) => copy.pending.has(x.rid)).map((x) => x.next_attempt_at ?? 0));
        this.submitDelivery(copy, attempts, due);
      } else {
        const releasing = row.status === 'quarantined' || rcpts.some((x) => x.status === 'released');
        if (releasing) {
          const r = this.releasedQuarantines(mid);
          copy.releasedFrom = r.quarantines;
          copy.releaseNote = r.note;
          copy.releaseTag = r.tag;
        }
        void this.scan(copy);
      }
    }
    return resumed;
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

  /** Scans copies waiting after a stage failure now (one, or all), instead of at their retry time. */
  rescanNow(mid?: number): number {
    let n = 0;
    for (const [m, t] of [...this.rescans]) {
      if (mid !== undefined && m !== mid) continue;
      clearTimeout(t);
      this.rescans.delete(m);
      const copy = this.copies.get(m);
      if (copy) {
        void this.scan(copy);
        n++;
      }
    }
    return n;
  }

  queueRetry(mid: number): { mid: number; recipients: number } | null {
    if (!this.copies.has(mid)) return null;
    if (this.rescans.has(mid)) {
      const n = this.rescanNow(mid);
      this.tracker.event(mid, { type: 'admin.retry', rids: [...this.copies.get(mid)!.pending] });
      return { mid, recipients: n ? this.copies.get(mid)!.pending.size : 0 };
    }
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
      antivirus: {
        enabled: this.antivirus.enabled,
        mode: this.antivirus.mode,
        clamd: this.antivirus.clamd ? describeTarget(this.antivirus.clamd) : null,
        probed: this.antivirus.probed,
        answering: this.clamd ? !this.clamdDown : null,
        signatureVersion: this.avSignatureVersion,
        summary: this.antivirus.summary,
      },
      storage: { ...this.storage.snapshot(), databaseRetries: this.store.storageRetries },
      mailLog: { ...this.mailLog.health },
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

function freeTcpPort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Allow/block list entries: a domain (matching its subdomains too) or a URL prefix. */
function listMatches(list: readonly string[], url: string): boolean {
  if (!list.length) return false;
  let host: string | null = null;
  try {
    host = urlHost(url);
  } catch {
    host = null;
  }
  for (const entry of list) {
    const e = entry.toLowerCase();
    if (e.includes('/')) {
      if (url.toLowerCase().startsWith(e)) return true;
    } else if (host && (host === e || host.endsWith('.' + e.replace(/^\./, '')))) return true;
  }
  return false;
}
