// The remediation service (DESIGN §10): on request (the admin API, the CLI, later the hub), finds where
// a message was delivered (tracking: recipients with status `delivered`, and its Message-ID), and in
// each recipient's mailbox deletes it, forwards it (attached, through our own queue), or both.
//
// Per mailbox: the profile its domain maps to (remediation.mappings), then that profile's `next` chain.
// Per profile: up to `attempts` attempts of at most `timeout` each, with backoff, while the failure is
// transient (timeout, error); auth_failed, mailbox_not_found and message_not_found are final for that
// profile. Every attempt is a `remediation.attempt` event per message. A request never throws on a bad
// target: a message that was never delivered, or is gone already, is counted failed with its reason.
import type { Config } from '../../config/schema.ts';
import { parseDuration } from '../../config/schema.ts';
import type { RemediationProfileConfig } from '../../config/remediation-schema.ts';
import type { EventBus } from '../../tracking/bus.ts';
import type { Tracker, TrackingRecord } from '../../tracking/tracker.ts';
import { domainOf } from '../../smtp/address.ts';
import { buildForward } from './forward.ts';
import { GraphBackend } from './graph.ts';
import { ImapBackend } from './imap.ts';
import {
  isTransient,
  RemediationError,
  type FailureReason,
  type MailboxBackend,
  type MailboxItem,
  type RemediationAction,
} from './types.ts';

export interface RemediationRequest {
  action: RemediationAction;
  mids?: number[];
  messageIds?: string[];
  /** for forward and forward-and-delete (default remediation.forwardTo) */
  forwardTo?: string;
  /** who asks: recorded in tracking and the mail log */
  by: string | null;
}

export interface RemediationFailure {
  mid: number | null;
  messageId: string | null;
  recipient: string | null;
  reason: FailureReason;
  /** for people; not stable */
  detail: string;
}

export interface RemediationResult {
  action: RemediationAction;
  /** messages × recipient mailboxes acted on (and requested messages that had none) */
  total: number;
  deleted: number;
  forwarded: number;
  forwardedAndDeleted: number;
  failed: number;
  failures: RemediationFailure[];
  /** what was done: the mailbox, the profile that did it, the MID of the forwarded copy */
  remediated: Array<{ mid: number; recipient: string; profile: string; forwardMid: number | null }>;
}

/** A request the service cannot start (not a bad target: those are counted failed). */
export class RemediationRequestError extends Error {
  readonly code: 'forward_address_required';
  constructor(code: 'forward_address_required', message: string) {
    super(message);
    this.code = code;
  }
}

export interface RemediationDeps {
  config: Config;
  tracker: Pick<Tracker, 'show' | 'search'>;
  events: Pick<EventBus, 'emit'>;
  /** hands a message we wrote to our own spool and delivery queue; returns its MID */
  inject(sender: string, recipients: string[], message: Buffer): Promise<number>;
  /** a backend for a profile (tests may replace it); default: IMAP or Graph */
  backend?: (profile: RemediationProfileConfig, timeoutMs: number) => MailboxBackend;
}

/** Mailboxes worked on at once. */
const MAILBOX_CONCURRENCY = 4;
/** At most this many messages per request (by MID or Message-ID). */
export const REMEDIATION_LIMIT = 10_000;

interface Target extends MailboxItem {
  recipient: string;
  subject: string | null;
  sender: string;
  /** the last failure, or null once done */
  failure: { reason: FailureReason; detail: string } | null;
  profile: string | null;
}

export class RemediationService {
  private readonly deps: RemediationDeps;
  private readonly backends = new Map<string, MailboxBackend>();
  private readonly running = new Set<AbortController>();
  private stopped = false;

  constructor(deps: RemediationDeps) {
    this.deps = deps;
  }

  private get settings(): Config['remediation'] {
    return this.deps.config.remediation;
  }

  async run(req: RemediationRequest): Promise<RemediationResult> {
    const forwarding = req.action !== 'delete';
    const forwardTo = req.forwardTo ?? this.settings.forwardTo;
    if (forwarding && !forwardTo)
      throw new RemediationRequestError(
        'forward_address_required',
        `${req.action} needs a forward address: give forwardTo or set remediation.forwardTo`,
      );
    const { targets, failures } = this.targets(req);
    const byMailbox = new Map<string, Target[]>();
    for (const t of targets) byMailbox.set(t.recipient, [...(byMailbox.get(t.recipient) ?? []), t]);
    const queue = [...byMailbox.entries()];
    const worker = async (): Promise<void> => {
      for (let next = queue.shift(); next; next = queue.shift()) await this.mailbox(next[0], next[1], req, forwardTo);
    };
    await Promise.all(Array.from({ length: Math.min(MAILBOX_CONCURRENCY, queue.length) }, worker));

    const result: RemediationResult = {
      action: req.action,
      total: targets.length + failures.length,
      deleted: 0,
      forwarded: 0,
      forwardedAndDeleted: 0,
      failed: failures.length,
      failures,
      remediated: [],
    };
    for (const t of targets) {
      if (t.failure) {
        result.failed++;
        failures.push({ mid: t.mid, messageId: t.messageId, recipient: t.recipient, ...t.failure });
        continue;
      }
      if (req.action === 'delete') result.deleted++;
      else if (req.action === 'forward') result.forwarded++;
      else result.forwardedAndDeleted++;
      result.remediated.push({ mid: t.mid, recipient: t.recipient, profile: t.profile!, forwardMid: t.forwardMid });
    }
    return result;
  }

  /** What tracking says was delivered where: one target per (message copy, delivered recipient). */
  private targets(req: RemediationRequest): { targets: Target[]; failures: RemediationFailure[] } {
    const failures: RemediationFailure[] = [];
    const targets = new Map<string, Target>();
    const add = (r: TrackingRecord): void => {
      for (const rcpt of r.recipients) {
        if (rcpt.status === 'splintered') continue; // its policy copy has it
        if (rcpt.status !== 'delivered') {
          failures.push({
            mid: r.mid,
            messageId: r.messageId,
            recipient: rcpt.address,
            reason: 'not_delivered',
            detail: `recipient status ${rcpt.status}`,
          });
          continue;
        }
        if (!r.messageId) {
          failures.push({
            mid: r.mid,
            messageId: null,
            recipient: rcpt.address,
            reason: 'message_not_found',
            detail: 'the message has no Message-ID header to find it by',
          });
          continue;
        }
        const key = `${r.mid} ${rcpt.address}`;
        if (!targets.has(key))
          targets.set(key, {
            mid: r.mid,
            messageId: r.messageId,
            recipient: rcpt.address,
            subject: r.subject,
            sender: r.sender,
            found: false,
            forwardMid: null,
            failure: null,
            profile: null,
          });
      }
    };
    const withCopies = (r: TrackingRecord): TrackingRecord[] => {
      if (r.status !== 'splintered') return [r];
      const split = r.events.find((e) => e.type === 'policy.split') as { children?: number[] } | undefined;
      return (split?.children ?? []).map((c) => this.deps.tracker.show(c)).filter((x): x is TrackingRecord => !!x);
    };
    for (const mid of req.mids ?? []) {
      const r = this.deps.tracker.show(mid);
      if (!r) {
        failures.push({ mid, messageId: null, recipient: null, reason: 'not_delivered', detail: 'no such MID' });
        continue;
      }
      for (const c of withCopies(r)) add(c);
    }
    for (const id of req.messageIds ?? []) {
      const found = this.deps.tracker
        .search({ messageId: id, limit: REMEDIATION_LIMIT })
        .flatMap((r) => withCopies(this.deps.tracker.show(r.mid) ?? r));
      if (!found.length)
        failures.push({
          mid: null,
          messageId: id,
          recipient: null,
          reason: 'not_delivered',
          detail: 'no message with this Message-ID in tracking',
        });
      for (const r of found) add(r);
    }
    return { targets: [...targets.values()], failures };
  }

  /** The profiles to try for a recipient: its mapping, then the `next` chain. */
  private chain(recipient: string): RemediationProfileConfig[] {
    const { mappings, profiles } = this.settings;
    let d = domainOf(recipient).toLowerCase();
    let mapped: string | undefined;
    // the domain, ".domain" (subdomains), then each parent, as delivery routes are found; then "*"
    while (d && !mapped) {
      mapped = mappings.find((m) => m.domain.toLowerCase() === d || m.domain.toLowerCase() === '.' + d)?.profile;
      const dot = d.indexOf('.');
      d = dot < 0 ? '' : d.slice(dot + 1);
    }
    mapped ??= mappings.find((m) => m.domain === '*')?.profile;
    const out: RemediationProfileConfig[] = [];
    for (let n = mapped; n !== undefined;) {
      const p = profiles.find((x) => x.name === n);
      if (!p || out.includes(p)) break;
      out.push(p);
      n = p.next;
    }
    return out;
  }

  private backend(p: RemediationProfileConfig, timeoutMs: number): MailboxBackend {
    let b = this.backends.get(p.name);
    if (!b) {
      b = this.deps.backend
        ? this.deps.backend(p, timeoutMs)
        : p.type === 'imap'
          ? new ImapBackend(p, timeoutMs)
          : new GraphBackend(p);
      this.backends.set(p.name, b);
    }
    return b;
  }

  /** Every target in one mailbox, through the recipient's profile chain. */
  private async mailbox(
    recipient: string,
    items: Target[],
    req: RemediationRequest,
    forwardTo?: string,
  ): Promise<void> {
    const chain = this.chain(recipient);
    if (!chain.length) {
      for (const t of items)
        t.failure = { reason: 'no_profile', detail: `no remediation.mappings entry covers ${domainOf(recipient)}` };
      return;
    }
    const attempts = this.settings.attempts;
    const timeoutMs = parseDuration(this.settings.timeout);
    const from = this.settings.from ?? `breakwater@${this.deps.config.hostname}`;
    let pending = items;
    for (const profile of chain) {
      for (let attempt = 1; attempt <= attempts && !this.stopped; attempt++) {
        const ctl = new AbortController();
        this.running.add(ctl);
        const timer = setTimeout(() => ctl.abort(), timeoutMs);
        let failure: RemediationError | null = null;
        try {
          await this.backend(profile, timeoutMs).remediate({
            mailbox: recipient,
            action: req.action,
            items: pending,
            signal: ctl.signal,
            forward: async (item, original) => {
              const t = item as Target;
              const message = buildForward({
                mid: t.mid,
                messageId: t.messageId,
                mailbox: recipient,
                profile: profile.name,
                original,
                subject: t.subject,
                sender: t.sender,
                from,
                to: forwardTo!,
                hostname: this.deps.config.hostname,
                by: req.by,
              });
              item.forwardMid = await this.deps.inject(from, [forwardTo!], message);
            },
          });
        } catch (err) {
          failure =
            err instanceof RemediationError
              ? err
              : ctl.signal.aborted
                ? new RemediationError('timeout', 'no answer in time')
                : new RemediationError('error', String((err as Error).message ?? err).slice(0, 200));
          if (ctl.signal.aborted && failure.reason === 'error')
            failure = new RemediationError('timeout', failure.message);
        } finally {
          clearTimeout(timer);
          this.running.delete(ctl);
        }
        for (const t of pending) {
          const itemFailure =
            failure && !t.found
              ? failure
              : !t.found
                ? new RemediationError('message_not_found', `no message ${t.messageId} in the mailbox`)
                : null;
          t.failure = itemFailure ? { reason: itemFailure.reason, detail: itemFailure.message } : null;
          if (!itemFailure) t.profile = profile.name;
          this.deps.events.emit(t.mid, {
            type: 'remediation.attempt',
            action: req.action,
            recipient,
            profile: profile.name,
            attempt,
            result: itemFailure ? 'failed' : 'done',
            reason: itemFailure?.reason ?? null,
            by: req.by,
            ...(t.forwardMid !== null && !itemFailure ? { forwardMid: t.forwardMid } : {}),
          });
        }
        pending = pending.filter((t) => t.failure);
        if (!failure || !isTransient(failure.reason) || !pending.length) break;
        if (attempt < attempts) await this.sleep(Math.min(1000 * 2 ** (attempt - 1), 8000));
      }
      if (!pending.length) return;
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const ctl = new AbortController();
      const done = (): void => {
        clearTimeout(timer);
        this.running.delete(ctl);
        resolve();
      };
      const timer = setTimeout(done, ms);
      ctl.signal.addEventListener('abort', done);
      this.running.add(ctl);
    });
  }

  /** Ends the attempts in flight (they count as timeouts) and starts no more. */
  stop(): void {
    this.stopped = true;
    for (const c of this.running) c.abort();
  }
}
