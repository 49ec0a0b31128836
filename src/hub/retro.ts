// Retro-remediation (issue 14; DESIGN §11.5): an outbreak rule the hub publishes also describes mail the
// gateways already delivered before it existed. On every publication the hub looks at each published rule
// of a high enough level once per version of it (its level and condition), finds the incoming messages
// delivered within the window that it matches — from the summaries the gateways streamed — and proposes
// remediating them from the mailboxes (delete or forward-and-delete, per configuration). Nothing leaves the
// hub until a user approves the proposal: it becomes one response action per message on the gateway that
// delivered it (hub/actions.ts, awaiting approval), carried out through that gateway's mailbox profiles.
//
// Summaries carry the envelope and header sender, subject, attachments (name, true type, size, SHA-256)
// and URLs, not the body or archive members: a rule's `body`, `member` and `avSignatureOlderThan` leaves
// never match here. That only narrows what is proposed, unless such a leaf sits under a `not` — then the
// rule would match too much, and it is not evaluated on delivered mail at all (the proposal says so).
import { createHash, randomUUID } from 'node:crypto';
import { parse } from 'tldts';
import { extensionOf } from '../mime/content.ts';
import type { ParsedMessage } from '../mime/types.ts';
import { registrableDomain, urlHost } from '../mime/urls.ts';
import { compileRules, type Rule } from '../outbreak/rules.ts';
import type { MessageFacts } from '../outbreak/types.ts';
import type { MessageSummary } from '../xdr/summary.ts';
import type { DeviceAction, DeviceActions } from './actions.ts';
import { ApprovalError } from './approvals.ts';
import { normalizeObservable, type ObservableType } from './observables.ts';
import type { HubRule } from './rules.ts';
import type { HubStore } from './store.ts';

const SCHEMA = `
create table if not exists retro_proposals (
  id text primary key,
  rule_id text not null,
  fingerprint text not null,
  rule_level integer not null,
  action text not null,
  status text not null,
  note text,
  created_at integer not null,
  decided_by text,
  decided_at integer,
  messages text not null,
  unique (rule_id, fingerprint)
);
create index if not exists retro_proposals_created on retro_proposals(created_at);
`;

export const RETRO_ACTIONS = ['delete', 'forward-and-delete'] as const;
export type RetroAction = (typeof RETRO_ACTIONS)[number];

export interface RetroSettings {
  enabled: boolean;
  /** how far back delivered mail is looked at */
  windowMs: number;
  action: RetroAction;
  /** rules below this level propose nothing */
  minLevel: number;
  /** most messages one proposal names (the newest first) */
  maxMessages: number;
}

/** 'proposed': waits for a user; 'none': the rule matched no delivered message; 'not_evaluable': see note */
export const RETRO_STATUSES = ['proposed', 'approved', 'dismissed', 'none', 'not_evaluable'] as const;
export type RetroStatus = (typeof RETRO_STATUSES)[number];

export interface RetroMessage {
  deviceId: string;
  mid: number;
  receivedAt: string;
  sender: string;
  subject: string | null;
  /** the recipients it was delivered to (whose mailboxes are remediated) */
  recipients: string[];
  /** the response action made for it (awaiting approval until the proposal is decided) */
  actionId: string;
}

export interface RetroProposal {
  id: string;
  ruleId: string;
  ruleLevel: number;
  action: RetroAction;
  status: RetroStatus;
  note: string | null;
  createdAt: string;
  decidedBy: string | null;
  decidedAt: string | null;
  messages: RetroMessage[];
}

interface Row {
  id: string;
  rule_id: string;
  fingerprint: string;
  rule_level: number;
  action: RetroAction;
  status: RetroStatus;
  note: string | null;
  created_at: number;
  decided_by: string | null;
  decided_at: number | null;
  messages: string;
}

/** the most candidates a rule without an indexable leaf is evaluated on (the newest of the window) */
const MAX_SCAN = 200_000;
/** candidates looked up through the observable index, per observable */
const MAX_PER_OBSERVABLE = 50_000;

export class RetroRemediation {
  private readonly store: HubStore;
  private readonly actions: DeviceActions;
  private readonly settings: () => RetroSettings;
  private readonly log: (line: string) => void;

  constructor(deps: {
    store: HubStore;
    actions: DeviceActions;
    settings: () => RetroSettings;
    log: (line: string) => void;
  }) {
    this.store = deps.store;
    this.actions = deps.actions;
    this.settings = deps.settings;
    this.log = deps.log;
    this.store.db.exec(SCHEMA);
  }

  /**
   * The published rules after a publication: each one (at or above the level) not yet looked at in this
   * version gets a proposal — or a record that nothing delivered matched. Returns the new proposals.
   */
  onPublished(published: HubRule[], now = Date.now()): RetroProposal[] {
    const c = this.settings();
    if (!c.enabled) return [];
    const made: RetroProposal[] = [];
    for (const rule of published) {
      if (rule.level < c.minLevel || (rule.expiresAt && Date.parse(rule.expiresAt) <= now)) continue;
      const fingerprint = createHash('sha256')
        .update(JSON.stringify([rule.level, rule.condition]))
        .digest('hex')
        .slice(0, 32);
      if (
        this.store.stmt('select 1 from retro_proposals where rule_id = ? and fingerprint = ?').get(rule.id, fingerprint)
      )
        continue;
      try {
        made.push(this.propose(rule, fingerprint, c, now));
      } catch (err) {
        this.log(`retro-remediation: ${rule.id}: ${(err as Error).message}`);
      }
    }
    return made;
  }

  list(filter: { status?: RetroStatus; limit: number }): RetroProposal[] {
    return (
      this.store
        .stmt('select * from retro_proposals where (?1 is null or status = ?1) order by created_at desc, id limit ?2')
        .all(filter.status ?? null, filter.limit) as unknown as Row[]
    ).map(toProposal);
  }

  get(id: string): RetroProposal | null {
    const r = this.store.stmt('select * from retro_proposals where id = ?').get(id) as Row | undefined;
    return r ? toProposal(r) : null;
  }

  /** Approves every action of a proposal still waiting: each goes to the gateway that delivered the message. */
  approve(id: string, by: string): { proposal: RetroProposal; actions: DeviceAction[] } {
    const p = this.pending(id);
    const approved: DeviceAction[] = [];
    for (const m of p.messages) {
      const a = this.actions.get(m.actionId);
      if (a?.status === 'awaiting_approval') approved.push(this.actions.approve(m.actionId, by));
    }
    this.decide(id, 'approved', by);
    this.log(`retro-remediation: ${by} approved ${p.id} (${p.ruleId}, ${approved.length} messages)`);
    return { proposal: this.get(id)!, actions: approved };
  }

  /** Dismisses a proposal: its actions are refused, nothing is remediated. */
  dismiss(id: string, by: string): RetroProposal {
    const p = this.pending(id);
    for (const m of p.messages)
      if (this.actions.get(m.actionId)?.status === 'awaiting_approval') this.actions.refuse(m.actionId, by);
    this.decide(id, 'dismissed', by);
    return this.get(id)!;
  }

  private pending(id: string): RetroProposal {
    const p = this.get(id);
    if (!p) throw new ApprovalError('proposal_not_found', 'no retro-remediation proposal with that id');
    if (p.status !== 'proposed') throw new ApprovalError('not_pending', `the proposal is ${p.status}, not proposed`);
    return p;
  }

  private decide(id: string, status: RetroStatus, by: string): void {
    this.store.run(
      'update retro_proposals set status = ?, decided_by = ?, decided_at = ? where id = ?',
      status,
      by,
      Date.now(),
      id,
    );
  }

  private propose(rule: HubRule, fingerprint: string, c: RetroSettings, now: number): RetroProposal {
    const id = randomUUID();
    const insert = (status: RetroStatus, note: string | null, messages: RetroMessage[]): RetroProposal => {
      this.store.run(
        `insert into retro_proposals(id, rule_id, fingerprint, rule_level, action, status, note, created_at, messages)
         values (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        id,
        rule.id,
        fingerprint,
        rule.level,
        c.action,
        status,
        note,
        now,
        JSON.stringify(messages),
      );
      return this.get(id)!;
    };
    const blind = unevaluableUnderNot(rule.condition as unknown);
    if (blind)
      return insert(
        'not_evaluable',
        `the rule tests ${blind} under "not", which message summaries do not carry: it is not evaluated on delivered mail`,
        [],
      );
    const since = now - c.windowMs;
    const { hits, note } = this.matches(rule, since, c.maxMessages);
    // a message an earlier version of this rule already proposed is not proposed twice
    const earlier = new Set(
      (
        this.store.stmt('select messages from retro_proposals where rule_id = ?').all(rule.id) as Array<{
          messages: string;
        }>
      ).flatMap((r) => (JSON.parse(r.messages) as RetroMessage[]).map((m) => `${m.deviceId}\u0000${m.mid}`)),
    );
    const fresh = hits.filter((h) => !earlier.has(`${h.deviceId}\u0000${h.summary.mid}`));
    if (!fresh.length) {
      this.log(`retro-remediation: ${rule.id} matches no mail delivered since ${new Date(since).toISOString()}`);
      return insert('none', note, []);
    }
    // the actions and the proposal naming them are written together (never an action nobody can decide)
    return this.store.transaction(() => {
      const messages = fresh.map(({ deviceId, summary: s }) => ({
        deviceId,
        mid: s.mid,
        receivedAt: s.receivedAt,
        sender: s.sender,
        subject: s.subject,
        recipients: s.recipients.filter((r) => r.status === 'delivered').map((r) => r.address),
        actionId: this.actions.queue(
          deviceId,
          c.action,
          { type: 'cisco_mid', value: String(s.mid) },
          `retro:${rule.id}`,
          {
            awaitingApproval: true,
          },
        ).id,
      }));
      this.log(
        `retro-remediation: ${rule.id} matches ${messages.length} delivered messages on ${new Set(messages.map((m) => m.deviceId)).size} gateways: proposal ${id} waits for approval`,
      );
      return insert('proposed', note, messages);
    });
  }

  /** Incoming messages delivered since `since` that the rule matches, newest first. */
  private matches(
    rule: HubRule,
    since: number,
    max: number,
  ): { hits: Array<{ deviceId: string; summary: MessageSummary }>; note: string | null } {
    const compiled = compileRules([
      {
        id: rule.id,
        level: rule.level,
        category: rule.category,
        description: rule.description,
        published: rule.publishedAt ?? new Date(0).toISOString(),
        condition: rule.condition,
      } satisfies Rule,
    ]);
    const queries = candidateQueries(rule.condition as unknown);
    let note: string | null = null;
    const rows: Array<{ device_id: string; data: string }> = [];
    if (queries) {
      const byObservable = this.store.stmt(
        `select m.device_id, m.data from observables o join messages m on m.device_id = o.device_id and m.mid = o.mid
         where o.type = ? and o.value = ? and o.at >= ? order by o.at desc limit ?`,
      );
      for (const q of queries)
        rows.push(
          ...(byObservable.all(q.type, normalizeObservable(q.type, q.value), since, MAX_PER_OBSERVABLE) as Array<{
            device_id: string;
            data: string;
          }>),
        );
    } else {
      rows.push(
        ...(this.store
          .stmt('select device_id, data from messages where received_at >= ? order by received_at desc limit ?')
          .all(since, MAX_SCAN) as Array<{ device_id: string; data: string }>),
      );
      if (rows.length === MAX_SCAN) note = `only the newest ${MAX_SCAN} messages of the window were looked at`;
    }
    const seen = new Set<string>();
    const hits: Array<{ deviceId: string; summary: MessageSummary }> = [];
    for (const r of rows) {
      const s = JSON.parse(r.data) as MessageSummary;
      const key = `${r.device_id}\u0000${s.mid}`;
      if (seen.has(key)) continue;
      seen.add(key);
      if (s.direction !== 'incoming' || !s.recipients.some((x) => x.status === 'delivered')) continue;
      if ((Date.parse(s.receivedAt) || 0) < since) continue;
      if (compiled.evaluate(summaryFacts(s)).length) hits.push({ deviceId: r.device_id, summary: s });
    }
    hits.sort((a, b) => Date.parse(b.summary.receivedAt) - Date.parse(a.summary.receivedAt));
    if (hits.length > max) {
      note = `${hits.length} delivered messages match; the newest ${max} are proposed`;
      hits.length = max;
    }
    return { hits, note };
  }
}

/** What a rule sees of a delivered message: its summary as a message without a body. */
export function summaryFacts(s: MessageSummary): MessageFacts {
  const parsed: ParsedMessage = {
    size: s.size,
    headers: [],
    from: s.headerFrom,
    subject: s.subject,
    messageId: s.messageId,
    parts: [],
    attachments: s.attachments.map((a, i) => ({
      partPath: String(i + 1),
      name: a.name,
      extension: extensionOf(a.name),
      declaredType: '',
      trueType: a.trueType,
      size: a.size,
      sha256: a.sha256,
      isArchive: false,
      members: [],
      encrypted: false,
    })),
    urls: s.urls.flatMap((url) => {
      const host = urlHost(url);
      return host ? [{ url, host, domain: registrableDomain(host), source: 'text' as const, anchorText: null }] : [];
    }),
    text: '',
    html: '',
    anomalies: [],
  };
  return { parsed, sender: s.sender.toLowerCase(), avSignatureVersion: null };
}

const BLIND_LEAVES = ['body', 'member', 'avSignatureOlderThan'];

/** The first leaf summaries cannot test that sits under a `not` (where missing data would match), or null. */
export function unevaluableUnderNot(cond: unknown, negated = false): string | null {
  if (!cond || typeof cond !== 'object') return null;
  const [key, value] = Object.entries(cond as Record<string, unknown>)[0] ?? [];
  if (key === 'all' || key === 'any') {
    for (const c of value as unknown[]) {
      const found = unevaluableUnderNot(c, negated);
      if (found) return found;
    }
    return null;
  }
  if (key === 'not') return unevaluableUnderNot(value, !negated);
  return negated && key && BLIND_LEAVES.includes(key) ? key : null;
}

/**
 * Observables through which every message a condition can match is found in the hub's index, or null
 * when some match has none (the window is scanned then). Each result is a superset: the rule decides.
 */
export function candidateQueries(cond: unknown): Array<{ type: ObservableType; value: string }> | null {
  if (!cond || typeof cond !== 'object') return null;
  const [key, value] = Object.entries(cond as Record<string, unknown>)[0] ?? [];
  switch (key) {
    case 'all': {
      // any one child's candidates hold every match: the smallest set wins
      const sets = (value as unknown[]).map(candidateQueries).filter((q) => q !== null);
      return sets.length ? sets.sort((a, b) => a.length - b.length)[0] : null;
    }
    case 'any': {
      const out: Array<{ type: ObservableType; value: string }> = [];
      for (const c of value as unknown[]) {
        const q = candidateQueries(c);
        if (!q) return null;
        out.push(...q);
      }
      return out;
    }
    case 'attachment': {
      const sha = (value as { sha256?: string[] }).sha256;
      return sha ? sha.map((v) => ({ type: 'sha256' as const, value: v.toLowerCase() })) : null;
    }
    case 'url': {
      const m = value as { host?: string[]; domain?: string[]; url?: string[] };
      if (m.domain) return m.domain.map((d) => ({ type: 'domain' as const, value: d }));
      if (m.host)
        // the hub indexes every URL's host and registrable domain: a suffix entry is found by the latter
        return m.host.map((h) => ({
          type: 'domain' as const,
          value: h.startsWith('.') ? (parse(h.slice(1)).domain ?? h.slice(1)) : h,
        }));
      if (m.url && m.url.every((u) => !u.includes('*'))) return m.url.map((u) => ({ type: 'url' as const, value: u }));
      return null;
    }
    case 'sender': {
      // senders' domains are indexed as written: a ".domain" entry (every subdomain) has no single key
      const entries = value as string[];
      if (entries.some((s) => s.startsWith('.'))) return null;
      return entries.map((s) =>
        s.includes('@') && !s.startsWith('@')
          ? { type: 'email' as const, value: s }
          : { type: 'domain' as const, value: s.replace(/^@/, '') },
      );
    }
    default:
      return null;
  }
}

function toProposal(r: Row): RetroProposal {
  return {
    id: r.id,
    ruleId: r.rule_id,
    ruleLevel: r.rule_level,
    action: r.action,
    status: r.status,
    note: r.note,
    createdAt: new Date(r.created_at).toISOString(),
    decidedBy: r.decided_by,
    decidedAt: r.decided_at === null ? null : new Date(r.decided_at).toISOString(),
    messages: JSON.parse(r.messages) as RetroMessage[],
  };
}
