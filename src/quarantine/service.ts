// The quarantine service (DESIGN §5): holds copies the verdict sends here, and lets them out by
// release (rescan, then delivery), delete, delay, move and copy — one at a time or in bulk — and at
// their scheduled exit. Capacity and first-in-first-out overflow are in capacity.ts.
import type { Config } from '../config/schema.ts';
import { parseDuration } from '../config/schema.ts';
import type { Spool } from '../spool/spool.ts';
import type { Store } from '../store/db.ts';
import type { EventBus } from '../tracking/bus.ts';
import { escapeControls } from '../tracking/escape.ts';
import type { Verdict } from '../policy/verdict.ts';
import { effectiveOutbreakSettings } from '../policy/outbreak.ts';
import type { OutbreakAssessment } from '../outbreak/engine.ts';
import { readCopyBytes, type Copy } from '../flow/copies.ts';
import type { Resumption } from '../flow/message-flow.ts';
import { buildQuarantineCopy } from './copy-message.ts';
import {
  quarantineTitle,
  type HeldCopy,
  type QuarantineEntry,
  type QuarantineFilter,
  type QuarantineIndex,
  type QuarantineName,
  type QuarantineSettings,
} from './quarantine.ts';

/** Why and how a held message leaves a quarantine by release. */
export interface ReleaseHow {
  reason: string;
  by: string | null;
  /** subject tag (the quarantine's default action only) */
  tag: string | null;
  /** the X-Breakwater-Quarantine header */
  note: string;
}

export interface QuarantineServiceDeps {
  config: Config;
  index: QuarantineIndex;
  settings: QuarantineSettings[];
  store: Pick<Store, 'committed'>;
  spool: Pick<Spool, 'writeDerived' | 'release'>;
  events: Pick<EventBus, 'emit'>;
  /** the message flow: whether a copy is in flight, and where a released copy goes on */
  flow: {
    isActive(mid: number): boolean;
    resume(h: QuarantineEntry['copy'], r: Resumption): void;
    handedOver(copy: Copy): Promise<void>;
    inject(sender: string, recipients: string[], message: Buffer, kind: 'copy'): Promise<number>;
    reinjectReleased(
      original: HeldCopy['env'],
      recipients: string[],
      message: Buffer,
      releasedFrom: string[],
    ): Promise<number>;
  };
  /** descriptions of the active outbreak rules (for "manage by rule") */
  ruleDescriptions: () => Map<string, string>;
  /** told whenever what the quarantines hold grew or shrank (capacity, overflow, alerts) */
  onUsageChanged: () => void;
}

export class QuarantineService {
  private readonly deps: QuarantineServiceDeps;
  /**
   * MIDs on their way out of a quarantine. Index writes commit a moment later, so a concurrent
   * re-evaluation, scheduled exit or administrator action must not take the same message out twice.
   */
  private readonly leaving = new Set<number>();
  private readonly commitWaiters: Array<() => void> = [];
  private stopped = false;

  constructor(deps: QuarantineServiceDeps) {
    this.deps = deps;
  }

  get index(): QuarantineIndex {
    return this.deps.index;
  }

  stop(): void {
    this.stopped = true;
  }

  /** Settings of a quarantine by name; null for a name the configuration no longer has. */
  settingsOf(name: QuarantineName): QuarantineSettings | null {
    return this.deps.settings.find((q) => q.name === name) ?? null;
  }

  /** Whether a message may be taken out of a quarantine now (not already leaving, not in flight). */
  isSettled(mid: number, quarantine: QuarantineName): boolean {
    return !this.leaving.has(mid) && !this.deps.flow.isActive(mid) && this.deps.index.has(mid, quarantine);
  }

  /**
   * Moves a copy into one or more quarantines: one durable file of its own, an index row per
   * quarantine, then the shared spool bytes are let go.
   */
  async hold(
    copy: Copy,
    verdict: Extract<Verdict, { kind: 'quarantine' }>,
    a: OutbreakAssessment | null,
    subject: string | null,
  ): Promise<void> {
    const bytes = await readCopyBytes(copy);
    const loc = await this.deps.spool.writeDerived({ ...copy.env, mid: copy.mid, derived: 'held' }, bytes);
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
      this.deps.index.add(entry);
      this.deps.events.emit(copy.mid, {
        type: 'quarantine.held',
        quarantine: h.quarantine,
        reason: h.reason,
        exitAt: entry.exitAt,
        level: entry.level,
        ruleIds: entry.ruleIds,
        rids: pending.map((r) => r.rid),
      });
    }
    // The copy leaves the flow; its shared spool bytes go once the index is durable.
    await this.deps.flow.handedOver(copy);
    this.deps.onUsageChanged();
  }

  /**
   * Takes a held message out of one quarantine. Still in others: it stays held there (delivered only
   * when released from all). Otherwise it is put back on its way: rescan with current rules, then
   * delivery. Returns false when it is already leaving.
   */
  release(e: QuarantineEntry, how: ReleaseHow): boolean {
    // (A row read before a queued write committed may describe a message already gone.)
    if (!this.isSettled(e.mid, e.quarantine)) return false;
    const rest = this.deps.index.remove(e.mid, e.quarantine);
    this.deps.events.emit(e.mid, {
      type: 'quarantine.released',
      quarantine: e.quarantine,
      reason: how.reason,
      by: how.by,
      ...(rest.length ? { stillIn: rest } : { note: how.note, tag: how.tag }),
    });
    const releasedFrom = [...new Set([...(e.copy.releasedFrom ?? []), e.quarantine])];
    if (rest.length) {
      // The others remember it, so that the last release delivers it rather than holding it again.
      this.deps.index.markReleased(e.mid, releasedFrom);
      return true;
    }
    this.leaving.add(e.mid);
    // The index removal and the status change (the event above) are queued in the same turn, so they
    // commit in one transaction (a crash between two commits would leave a held file nobody owns).
    void this.afterCommit(() => this.leaving.delete(e.mid));
    this.deps.flow.resume(e.copy, {
      file: e.file,
      bodyOffset: e.bodyOffset,
      size: e.size,
      releasedFrom,
      releaseTag: how.tag || null,
      releaseNote: how.note,
    });
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
        void this.deps.store.committed().then(() => {
          for (const w of batch) w();
        });
      });
    });
  }

  /** Deletes a held message: deleted from one quarantine means deleted from all it is in. */
  delete(e: QuarantineEntry, reason: string, by: string | null): boolean {
    if (!this.isSettled(e.mid, e.quarantine)) return false;
    const { index, events } = this.deps;
    this.leaving.add(e.mid);
    const others = index.memberships(e.mid).filter((q) => q !== e.quarantine);
    index.remove(e.mid, e.quarantine);
    for (const q of others) index.remove(e.mid, q);
    events.emit(e.mid, {
      type: 'quarantine.deleted',
      quarantine: e.quarantine,
      reason,
      by,
      ...(others.length ? { alsoIn: others } : {}),
    });
    events.emit(e.mid, { type: 'message.done', status: 'deleted' }, e.copy.env.icid);
    // The file goes once the database says the message is deleted.
    void this.afterCommit(() => {
      this.leaving.delete(e.mid);
      this.deps.spool.release(e.file);
    });
    return true;
  }

  /**
   * One recipient releases their own copy (end-user quarantine). The only recipient left: the message
   * is released as usual (rescanned, delivered). Others still wait on it: the held bytes go out again as
   * a new message for this recipient alone, and the held one forgets them. False: not theirs, or leaving.
   */
  async releaseFor(e: QuarantineEntry, address: string, by: string): Promise<{ mid: number } | false> {
    const mine = this.recipientRows(e, address);
    if (!mine.length || !this.isSettled(e.mid, e.quarantine)) return false;
    if (mine.length === e.copy.recipients.length) {
      const ok = this.release(e, {
        reason: 'released by its recipient',
        by,
        tag: null,
        note: `released from ${quarantineTitle(e.quarantine)} by its recipient`,
      });
      return ok ? { mid: e.mid } : false;
    }
    this.leaving.add(e.mid);
    try {
      const original = await readCopyBytes({ bytes: null, file: e.file, bodyOffset: e.bodyOffset, size: e.size });
      const releasedFrom = [...new Set([...(e.copy.releasedFrom ?? []), e.quarantine])];
      // spooled (fsync) before the held message forgets the recipient: a crash between leaves a
      // duplicate at worst, never a loss
      const copyMid = await this.deps.flow.reinjectReleased(
        e.copy.env,
        mine.map((r) => r.address),
        original,
        releasedFrom,
      );
      this.deps.index.dropRecipient(e.mid, address);
      this.deps.events.emit(e.mid, {
        type: 'quarantine.recipient_released',
        quarantine: e.quarantine,
        address: address.toLowerCase(),
        rids: mine.map((r) => r.rid),
        copyMid,
        by,
      });
      await this.deps.store.committed();
      return { mid: copyMid };
    } finally {
      this.leaving.delete(e.mid);
    }
  }

  /** One recipient deletes their own copy (end-user quarantine); the last one deletes the message. */
  async deleteFor(e: QuarantineEntry, address: string, by: string): Promise<boolean> {
    const mine = this.recipientRows(e, address);
    if (!mine.length || !this.isSettled(e.mid, e.quarantine)) return false;
    if (mine.length === e.copy.recipients.length) return this.delete(e, 'deleted by its recipient', by);
    this.deps.index.dropRecipient(e.mid, address);
    this.deps.events.emit(e.mid, {
      type: 'quarantine.recipient_deleted',
      quarantine: e.quarantine,
      address: address.toLowerCase(),
      rids: mine.map((r) => r.rid),
      by,
    });
    await this.deps.store.committed();
    return true;
  }

  private recipientRows(e: QuarantineEntry, address: string): HeldCopy['recipients'] {
    const a = address.toLowerCase();
    return e.copy.recipients.filter((r) => r.address.toLowerCase() === a);
  }

  /** A quarantine's default action (scheduled exit, overflow): release (rescan first, tagged) or delete. */
  defaultAction(e: QuarantineEntry, why: 'scheduled exit' | 'overflow'): boolean {
    const q = this.settingsOf(e.quarantine);
    const action = q?.defaultAction ?? 'release';
    if (action === 'delete') return this.delete(e, why === 'overflow' ? 'quarantine full' : 'expired', null);
    return this.release(e, {
      reason: why === 'overflow' ? 'quarantine full: oldest released first' : 'scheduled exit',
      by: null,
      tag: q?.releaseSubjectTag ?? null,
      note: `released from ${quarantineTitle(e.quarantine)} ${why === 'overflow' ? 'when the quarantines were full' : 'at its scheduled exit'}`,
    });
  }

  /** Scheduled exits: the quarantine's default action. */
  async applyScheduledExits(): Promise<void> {
    await this.deps.store.committed();
    for (const e of this.deps.index.due(Date.now())) {
      if (this.stopped) return;
      this.defaultAction(e, 'scheduled exit');
    }
    this.deps.onUsageChanged();
  }

  // ---- administrator actions (API, CLI, later the UI and the hub) -------------------------------

  async list(f: QuarantineFilter): Promise<QuarantineEntry[]> {
    await this.deps.store.committed();
    return this.deps.index.list(f);
  }

  /** Bulk actions read every match a page at a time unless the filter has its own limit. */
  private async *bulk(f: QuarantineFilter): AsyncGenerator<QuarantineEntry> {
    await this.deps.store.committed();
    if (f.limit !== undefined) yield* this.deps.index.list(f);
    else yield* this.deps.index.each(f);
  }

  async releaseMatching(f: QuarantineFilter, by: string | null): Promise<number[]> {
    const done: number[] = [];
    for await (const e of this.bulk(f))
      if (
        this.release(e, {
          reason: by ? `released by ${by}` : 'released by administrator',
          by,
          tag: null,
          note: `released from ${quarantineTitle(e.quarantine)} by ${by ?? 'an administrator'}`,
        })
      )
        done.push(e.mid);
    await this.deps.store.committed();
    this.deps.onUsageChanged();
    return done;
  }

  async deleteMatching(f: QuarantineFilter, by: string | null): Promise<number[]> {
    const done: number[] = [];
    for await (const e of this.bulk(f))
      if (this.delete(e, by ? `deleted by ${by}` : 'deleted by administrator', by)) done.push(e.mid);
    await this.deps.store.committed();
    this.deps.onUsageChanged();
    return done;
  }

  /** Extends scheduled exits by `byMs`, never past `maxHoldMs` from now (a bad stored exit starts from now). */
  async delay(f: QuarantineFilter, byMs: number, by: string | null, maxHoldMs = 3650 * 86_400_000): Promise<number[]> {
    const done: number[] = [];
    const latest = Date.now() + maxHoldMs;
    for await (const e of this.bulk(f)) {
      const from = Number.isFinite(e.exitAt) && e.exitAt <= latest ? e.exitAt : Date.now();
      const exitAt = Math.min(from + byMs, latest);
      this.deps.index.delay(e.mid, e.quarantine, exitAt);
      this.deps.events.emit(e.mid, { type: 'quarantine.delayed', quarantine: e.quarantine, exitAt, by });
      done.push(e.mid);
    }
    await this.deps.store.committed();
    return done;
  }

  /**
   * Moves messages to another quarantine (e.g. from Outbreak to a policy quarantine for a longer
   * look). The target's retention starts now; the entry time is kept, so overflow still sees its age.
   */
  async move(f: QuarantineFilter, to: QuarantineName, by: string | null): Promise<number[]> {
    const target = this.settingsOf(to);
    if (!target) throw new Error(`no quarantine ${to}`);
    const done: number[] = [];
    for await (const e of this.bulk(f)) {
      if (e.quarantine === to || this.leaving.has(e.mid) || this.deps.flow.isActive(e.mid)) continue;
      // The Outbreak quarantine's retention is its policy's; a policy may since have lost its settings.
      const settings = effectiveOutbreakSettings(this.deps.config, e.copy.env.direction, e.policy);
      const retention =
        target.retentionMs ??
        (settings ? parseDuration(e.viral ? settings.retention.viral : settings.retention.other) : null) ??
        (Number.isFinite(e.exitAt) ? Math.max(e.exitAt - Date.now(), 0) : 0);
      const exitAt = Date.now() + retention;
      if (!this.deps.index.move(e.mid, e.quarantine, to, exitAt, `moved from ${e.quarantine}: ${e.reason}`)) continue;
      this.deps.events.emit(e.mid, { type: 'quarantine.moved', quarantine: e.quarantine, to, exitAt, by });
      done.push(e.mid);
    }
    await this.deps.store.committed();
    return done;
  }

  /** Sends a copy of each held message to administrators; the messages stay held. */
  async copy(f: QuarantineFilter, to: string[], by: string | null): Promise<number[]> {
    const { config } = this.deps;
    const from = config.alerts.from ?? `breakwater@${config.hostname}`;
    const done: number[] = [];
    for await (const e of this.bulk(f)) {
      if (!this.deps.index.has(e.mid, e.quarantine)) continue;
      const original = await readCopyBytes({ bytes: null, file: e.file, bodyOffset: e.bodyOffset, size: e.size });
      const message = buildQuarantineCopy({ entry: e, original, from, to, hostname: config.hostname, by });
      const copyMid = await this.deps.flow.inject(from, to, message, 'copy');
      this.deps.events.emit(e.mid, { type: 'quarantine.copied', quarantine: e.quarantine, to, copyMid, by });
      done.push(e.mid);
    }
    await this.deps.store.committed();
    return done;
  }

  /**
   * "Manage by rule": per outbreak rule (Outbreak quarantine) or virus name (virus and policy
   * quarantines), its description, messages and total size.
   */
  async rules(
    quarantine: QuarantineName = 'outbreak',
  ): Promise<Array<{ ruleId: string; description: string; messages: number; totalSize: number }>> {
    await this.deps.store.committed();
    const descriptions = this.deps.ruleDescriptions();
    return this.deps.index.rules(quarantine).map((r) => ({
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
}
