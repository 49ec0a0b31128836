// The quarantine index (DESIGN §5): which message copies are held, why, until when. Message bytes live
// in a "held" spool file of their own (Spool.writeDerived), so a held message never pins a shared
// journal segment. The gateway's quarantine flow (gateway/held.ts) moves messages in and out; this
// file is the index and its queries, shared by the API and the CLI.
import type { Store } from '../store/db.ts';
import type { SpoolEnvelope } from '../spool/spool.ts';
import { parseDuration, type Config } from '../config/schema.ts';

/** `outbreak`, `virus`, or the name of a configured policy quarantine. */
export type QuarantineName = string;

export const systemQuarantines: readonly QuarantineName[] = ['outbreak', 'virus'];

/** A quarantine's settings, system or policy, in one shape. */
export interface QuarantineSettings {
  name: QuarantineName;
  kind: 'system' | 'policy';
  description: string;
  /** null for the Outbreak quarantine: its retention is each policy's outbreakFilters.maxRetention */
  retentionMs: number | null;
  defaultAction: 'release' | 'delete';
  releaseSubjectTag: string;
}

/** Every quarantine the configuration defines, system ones first. */
export function quarantineSettings(config: Config): QuarantineSettings[] {
  const q = config.quarantine;
  return [
    {
      name: 'outbreak',
      kind: 'system',
      description: 'Outbreak Filters: messages at or above a policy threshold',
      retentionMs: null,
      defaultAction: q.outbreak.defaultAction,
      releaseSubjectTag: q.outbreak.releaseSubjectTag,
    },
    {
      name: 'virus',
      kind: 'system',
      description: 'Anti-virus: infected and unscannable messages',
      retentionMs: parseDuration(q.virus.retention),
      defaultAction: q.virus.defaultAction,
      releaseSubjectTag: q.virus.releaseSubjectTag,
    },
    ...q.policy.map((p): QuarantineSettings => ({
      name: p.name,
      kind: 'policy',
      description: p.description,
      retentionMs: parseDuration(p.retention),
      defaultAction: p.defaultAction,
      releaseSubjectTag: p.releaseSubjectTag,
    })),
  ];
}

/** The display name used in headers and messages ("Outbreak", "Virus", or the policy quarantine's name). */
export function quarantineTitle(name: QuarantineName): string {
  return name === 'outbreak' ? 'Outbreak' : name === 'virus' ? 'Virus' : name;
}

/** What is needed to put a held copy back on its way (rescan, then delivery). */
export interface HeldCopy {
  mid: number;
  parentMid: number | null;
  env: SpoolEnvelope;
  policy: string;
  recipients: Array<{ rid: number; address: string }>;
  /** quarantines it was already released from while it sat in several (DESIGN §5: released from all) */
  releasedFrom?: QuarantineName[];
}

export interface QuarantineEntry {
  mid: number;
  quarantine: QuarantineName;
  enteredAt: number;
  exitAt: number;
  size: number;
  file: string;
  bodyOffset: number;
  level: number;
  category: string | null;
  viral: boolean;
  ruleIds: string[];
  reason: string;
  sender: string;
  recipients: string[];
  subject: string | null;
  policy: string;
  copy: HeldCopy;
}

export interface QuarantineFilter {
  quarantine?: QuarantineName;
  rule?: string;
  /** threat level at least */
  level?: number;
  sender?: string;
  recipient?: string;
  since?: number;
  until?: number;
  mids?: number[];
  limit?: number;
  /** paging: entries after this one in (entered_at, mid) order */
  after?: { enteredAt: number; mid: number };
}

const SCHEMA = `
create table if not exists quarantine (
  mid integer not null,
  quarantine text not null,
  entered_at integer not null,
  exit_at integer not null,
  size integer not null,
  file text not null,
  body_offset integer not null,
  level integer not null default 0,
  category text,
  viral integer not null default 0,
  rule_ids text not null default '',
  reason text not null,
  sender text not null,
  recipients text not null,
  subject text,
  policy text not null,
  copy text not null,
  primary key (mid, quarantine)
) without rowid;
create index if not exists quarantine_exit on quarantine(exit_at);
create index if not exists quarantine_entered on quarantine(quarantine, entered_at);
create index if not exists quarantine_level on quarantine(quarantine, level);
create index if not exists quarantine_sender on quarantine(sender);
create index if not exists quarantine_age on quarantine(entered_at, mid);
create table if not exists quarantine_rules (
  mid integer not null,
  quarantine text not null,
  rule_id text not null,
  primary key (rule_id, quarantine, mid)
) without rowid;
-- a message's rule rows go when it leaves: found by MID, not by scanning every rule's rows
create index if not exists quarantine_rules_mid on quarantine_rules(mid, quarantine);
create table if not exists quarantine_recipients (
  address text not null,
  quarantine text not null,
  mid integer not null,
  primary key (address, quarantine, mid)
) without rowid;
create index if not exists quarantine_recipients_mid on quarantine_recipients(mid, quarantine);
`;

/**
 * The columns every read selects. Times outside what a Date can show (±8.64e15 ms), or not integers
 * at all, read as NULL: node:sqlite throws on integers past 2^53, and one bad row must never break
 * every listing of its quarantine.
 */
function columns(alias: string): string {
  const time = (c: string) =>
    `case when typeof(${alias}.${c}) = 'integer' and ${alias}.${c} between -8640000000000000 and 8640000000000000 then ${alias}.${c} end as ${c}`;
  return [
    'mid',
    'quarantine',
    time('entered_at'),
    time('exit_at'),
    ...['size', 'file', 'body_offset', 'level', 'category', 'viral', 'rule_ids', 'reason', 'sender', 'recipients'],
    ...['subject', 'policy', 'copy'],
  ]
    .map((c) => (c.startsWith('case') ? c : `${alias}.${c}`))
    .join(', ');
}
const COLUMNS = columns('q');

interface Row {
  mid: number;
  quarantine: string;
  entered_at: number | null;
  exit_at: number | null;
  size: number;
  file: string;
  body_offset: number;
  level: number;
  category: string | null;
  viral: number;
  rule_ids: string;
  reason: string;
  sender: string;
  recipients: string;
  subject: string | null;
  policy: string;
  copy: string;
}

interface Membership {
  size: number;
  /** quarantine → the rule ids (or virus names) it is managed by there */
  quarantines: Map<QuarantineName, string[]>;
}

interface Tally {
  messages: number;
  bytes: number;
}

export class QuarantineIndex {
  private readonly store: Store;
  /**
   * Which quarantines each held message is in, kept in memory: writes reach SQLite through the
   * store's writer thread, so reads right after a write would not see it. Capacity and the
   * "released from all / deleted from any" rules are decided here.
   */
  private readonly members = new Map<number, Membership>();
  private readonly perName = new Map<QuarantineName, Tally>();
  /** quarantine → rule id → messages and bytes: the "manage by rule" summary without a query */
  private readonly perRule = new Map<QuarantineName, Map<string, Tally>>();
  private bytes = 0;

  constructor(store: Store) {
    this.store = store;
    store.db.exec(SCHEMA);
    // Databases from before the recipient table: fill it once from the recipients column.
    if (
      !store.db.prepare('select 1 from quarantine_recipients limit 1').get() &&
      store.db.prepare('select 1 from quarantine limit 1').get()
    )
      for (const r of store.db.prepare('select mid, quarantine, recipients from quarantine').all() as unknown as Array<{
        mid: number;
        quarantine: string;
        recipients: string;
      }>)
        for (const a of new Set(r.recipients.split(' ').filter(Boolean)))
          store.db
            .prepare('insert or ignore into quarantine_recipients(address, quarantine, mid) values (?, ?, ?)')
            .run(a, r.quarantine, r.mid);
    for (const r of store.db
      .prepare('select mid, quarantine, size, rule_ids from quarantine')
      .all() as unknown as Array<{
      mid: number;
      quarantine: string;
      size: number;
      rule_ids: string;
    }>)
      this.remember(r.mid, r.quarantine, r.size, r.rule_ids ? r.rule_ids.split(' ') : []);
  }

  private tally(quarantine: QuarantineName, ruleIds: readonly string[], size: number, sign: 1 | -1): void {
    const q = this.perName.get(quarantine) ?? { messages: 0, bytes: 0 };
    q.messages += sign;
    q.bytes += sign * size;
    this.perName.set(quarantine, q);
    let rules = this.perRule.get(quarantine);
    if (!rules) this.perRule.set(quarantine, (rules = new Map()));
    for (const id of new Set(ruleIds)) {
      const t = rules.get(id) ?? { messages: 0, bytes: 0 };
      t.messages += sign;
      t.bytes += sign * size;
      if (t.messages > 0) rules.set(id, t);
      else rules.delete(id);
    }
  }

  private remember(mid: number, quarantine: QuarantineName, size: number, ruleIds: readonly string[]): void {
    let m = this.members.get(mid);
    if (!m) {
      m = { size, quarantines: new Map() };
      this.members.set(mid, m);
      this.bytes += size;
    }
    if (m.quarantines.has(quarantine)) return;
    m.quarantines.set(quarantine, [...ruleIds]);
    this.tally(quarantine, ruleIds, m.size, 1);
  }

  private forget(mid: number, quarantine: QuarantineName): string[] {
    const m = this.members.get(mid);
    const ruleIds = m?.quarantines.get(quarantine);
    if (!m || !ruleIds) return [];
    m.quarantines.delete(quarantine);
    this.tally(quarantine, ruleIds, m.size, -1);
    if (!m.quarantines.size) {
      this.members.delete(mid);
      this.bytes -= m.size;
    }
    return ruleIds;
  }

  /** The quarantines a message is in. */
  memberships(mid: number): QuarantineName[] {
    return [...(this.members.get(mid)?.quarantines.keys() ?? [])];
  }

  has(mid: number, quarantine: QuarantineName): boolean {
    return this.members.get(mid)?.quarantines.has(quarantine) ?? false;
  }

  add(e: QuarantineEntry): void {
    this.remember(e.mid, e.quarantine, e.size, e.ruleIds);
    this.store.run(
      `insert or replace into quarantine(mid, quarantine, entered_at, exit_at, size, file, body_offset, level, category,
       viral, rule_ids, reason, sender, recipients, subject, policy, copy) values (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
      e.mid,
      e.quarantine,
      e.enteredAt,
      e.exitAt,
      e.size,
      e.file,
      e.bodyOffset,
      e.level,
      e.category,
      e.viral ? 1 : 0,
      e.ruleIds.join(' '),
      e.reason,
      e.sender.toLowerCase(),
      e.recipients.map((r) => r.toLowerCase()).join(' '),
      e.subject,
      e.policy,
      JSON.stringify(e.copy),
    );
    for (const id of e.ruleIds)
      this.store.run(
        'insert or ignore into quarantine_rules(mid, quarantine, rule_id) values (?, ?, ?)',
        e.mid,
        e.quarantine,
        id,
      );
    for (const a of new Set(e.recipients.map((r) => r.toLowerCase())))
      this.store.run(
        'insert or ignore into quarantine_recipients(address, quarantine, mid) values (?, ?, ?)',
        a,
        e.quarantine,
        e.mid,
      );
  }

  /** Takes a message out of one quarantine; returns the quarantines it is still in. */
  remove(mid: number, quarantine: QuarantineName): QuarantineName[] {
    this.forget(mid, quarantine);
    this.store.run('delete from quarantine where mid = ? and quarantine = ?', mid, quarantine);
    this.store.run('delete from quarantine_rules where mid = ? and quarantine = ?', mid, quarantine);
    this.store.run('delete from quarantine_recipients where mid = ? and quarantine = ?', mid, quarantine);
    return this.memberships(mid);
  }

  /** A message left one quarantine but stays in others: they remember it, so the last release delivers it. */
  markReleased(mid: number, releasedFrom: QuarantineName[]): void {
    this.store.run(
      "update quarantine set copy = json_set(copy, '$.releasedFrom', json(?)) where mid = ?",
      JSON.stringify(releasedFrom),
      mid,
    );
  }

  /**
   * One recipient is done with a held message (end-user quarantine: released their copy or deleted
   * it): it stays held for the others, and a later release delivers to them alone.
   */
  dropRecipient(mid: number, address: string): void {
    const a = address.toLowerCase();
    this.store.run(
      `update quarantine set
         recipients = trim(replace(' ' || recipients || ' ', ' ' || ? || ' ', ' ')),
         copy = json_set(copy, '$.recipients', (
           select json_group_array(json(r.value)) from json_each(copy, '$.recipients') r
           where lower(json_extract(r.value, '$.address')) <> ?))
       where mid = ?`,
      a,
      a,
      mid,
    );
    this.store.run('delete from quarantine_recipients where mid = ? and address = ?', mid, a);
  }

  /**
   * Moves a message between quarantines, keeping its entry time (first in, first out still sees its
   * age). Already in the target: it just leaves the source.
   */
  move(mid: number, from: QuarantineName, to: QuarantineName, exitAt: number, reason: string): boolean {
    if (!this.has(mid, from)) return false;
    if (this.has(mid, to)) {
      this.remove(mid, from);
      return true;
    }
    const size = this.members.get(mid)!.size;
    this.remember(mid, to, size, this.forget(mid, from));
    this.store.run(
      'update quarantine set quarantine = ?, exit_at = ?, reason = ? where mid = ? and quarantine = ?',
      to,
      exitAt,
      reason,
      mid,
      from,
    );
    this.store.run('update quarantine_rules set quarantine = ? where mid = ? and quarantine = ?', to, mid, from);
    this.store.run('update quarantine_recipients set quarantine = ? where mid = ? and quarantine = ?', to, mid, from);
    return true;
  }

  /** A re-evaluation changed a held message's score (it stays held). */
  rescored(mid: number, quarantine: QuarantineName, level: number, ruleIds: string[]): void {
    const size = this.members.get(mid)?.size;
    if (size !== undefined && this.has(mid, quarantine)) {
      this.forget(mid, quarantine);
      this.remember(mid, quarantine, size, ruleIds);
    }
    this.store.run(
      'update quarantine set level = ?, rule_ids = ? where mid = ? and quarantine = ?',
      level,
      ruleIds.join(' '),
      mid,
      quarantine,
    );
    this.store.run('delete from quarantine_rules where mid = ? and quarantine = ?', mid, quarantine);
    for (const id of ruleIds)
      this.store.run(
        'insert or ignore into quarantine_rules(mid, quarantine, rule_id) values (?, ?, ?)',
        mid,
        quarantine,
        id,
      );
  }

  delay(mid: number, quarantine: QuarantineName, exitAt: number): void {
    this.store.run('update quarantine set exit_at = ? where mid = ? and quarantine = ?', exitAt, mid, quarantine);
  }

  get(mid: number, quarantine?: QuarantineName): QuarantineEntry | null {
    const row = (quarantine
      ? this.store.stmt(`select ${COLUMNS} from quarantine q where mid = ? and quarantine = ?`).get(mid, quarantine)
      : this.store
          .stmt(`select ${COLUMNS} from quarantine q where mid = ? order by entered_at limit 1`)
          .get(mid)) as unknown as Row | undefined;
    return row ? toEntry(row) : null;
  }

  list(f: QuarantineFilter = {}): QuarantineEntry[] {
    const where: string[] = [];
    const args: Array<string | number> = [];
    if (f.quarantine) {
      where.push('q.quarantine = ?');
      args.push(f.quarantine);
    }
    // The most selective filter drives the query: a rule's or a recipient's own index rows (CROSS JOIN
    // keeps SQLite from walking the entry-time index instead), or the sender index. Then the matches
    // are sorted; other filters are checked on those rows only.
    let from = 'quarantine q';
    if (f.rule) {
      from = 'quarantine_rules r cross join quarantine q on q.mid = r.mid and q.quarantine = r.quarantine';
      where.push('r.rule_id = ?');
      args.push(f.rule);
      if (f.quarantine) {
        where.push('r.quarantine = ?');
        args.push(f.quarantine);
      }
    } else if (f.recipient) {
      from = 'quarantine_recipients x cross join quarantine q on q.mid = x.mid and q.quarantine = x.quarantine';
      where.push('x.address = ?');
      args.push(f.recipient.toLowerCase());
      if (f.quarantine) {
        where.push('x.quarantine = ?');
        args.push(f.quarantine);
      }
    } else if (f.sender && !f.mids?.length) from = 'quarantine q indexed by quarantine_sender';
    if (f.level !== undefined) {
      where.push('q.level >= ?');
      args.push(f.level);
    }
    if (f.sender) {
      where.push('q.sender = ?');
      args.push(f.sender.toLowerCase());
    }
    if (f.recipient && f.rule) {
      // recipients are stored space-separated; match a whole address
      where.push("(' ' || q.recipients || ' ') like ? escape '\\'");
      args.push(`% ${f.recipient.toLowerCase().replace(/[\\%_]/g, (c) => '\\' + c)} %`);
    }
    if (f.since !== undefined) {
      where.push('q.entered_at >= ?');
      args.push(f.since);
    }
    if (f.until !== undefined) {
      where.push('q.entered_at < ?');
      args.push(f.until);
    }
    if (f.after) {
      where.push('(q.entered_at, q.mid) > (?, ?)');
      args.push(f.after.enteredAt, f.after.mid);
    }
    if (f.mids?.length) {
      where.push(`q.mid in (${f.mids.map(() => '?').join(',')})`);
      args.push(...f.mids);
    }
    const limit = Math.min(Math.max(f.limit ?? 1000, 1), 100_000);
    const sql = `select ${COLUMNS} from ${from} ${where.length ? 'where ' + where.join(' and ') : ''}
      order by q.entered_at, q.mid limit ${limit}`;
    return (this.store.db.prepare(sql).all(...args) as unknown as Row[]).map(toEntry);
  }

  /** Every held file (one per message, whatever the number of quarantines it is in). */
  files(): string[] {
    return (this.store.stmt('select distinct file from quarantine').all() as unknown as Array<{ file: string }>).map(
      (r) => r.file,
    );
  }

  /** Every entry matching a filter, read a page at a time (bulk actions over any number of messages). */
  *each(f: Omit<QuarantineFilter, 'after' | 'limit'>, pageSize = 1000): Generator<QuarantineEntry> {
    let after: { enteredAt: number; mid: number } | undefined;
    for (;;) {
      const page = this.list({ ...f, after, limit: pageSize });
      yield* page;
      if (page.length < pageSize) return;
      const last = page[page.length - 1];
      after = { enteredAt: last.enteredAt, mid: last.mid };
    }
  }

  /** Held messages whose scheduled exit has come. */
  due(now: number, limit = 500): QuarantineEntry[] {
    return (
      this.store
        .stmt(`select ${COLUMNS} from quarantine q where exit_at <= ? order by exit_at limit ?`)
        .all(now, limit) as unknown as Row[]
    ).map(toEntry);
  }

  /** The oldest held entries, across all quarantines: first in, first out on overflow. */
  oldest(limit: number, after?: { enteredAt: number; mid: number }): QuarantineEntry[] {
    const rows = after
      ? this.store
          .stmt(`select ${COLUMNS} from quarantine q where (entered_at, mid) > (?, ?) order by entered_at, mid limit ?`)
          .all(after.enteredAt, after.mid, limit)
      : this.store.stmt(`select ${COLUMNS} from quarantine q order by entered_at, mid limit ?`).all(limit);
    return (rows as unknown as Row[]).map(toEntry);
  }

  /** Messages and bytes per quarantine (a message in two counts in each). */
  perQuarantine(): Map<QuarantineName, { messages: number; bytes: number }> {
    return new Map([...this.perName].map(([k, v]) => [k, { ...v }]));
  }

  /** The "manage by rule" summary (reference R58/R82): rule, messages, total size. */
  rules(quarantine: QuarantineName = 'outbreak'): Array<{ ruleId: string; messages: number; totalSize: number }> {
    return [...(this.perRule.get(quarantine) ?? new Map<string, Tally>())]
      .map(([ruleId, t]) => ({ ruleId, messages: t.messages, totalSize: t.bytes }))
      .sort((a, b) => b.messages - a.messages || (a.ruleId < b.ruleId ? -1 : a.ruleId > b.ruleId ? 1 : 0));
  }

  /** Distinct held messages and their bytes, all quarantines together (the capacity budget). */
  usage(): { messages: number; bytes: number } {
    return { messages: this.members.size, bytes: this.bytes };
  }
}

function toEntry(r: Row): QuarantineEntry {
  return {
    mid: r.mid,
    quarantine: r.quarantine as QuarantineName,
    // NaN for a time the row cannot hold (see columns()); the API shows it as null
    enteredAt: r.entered_at ?? NaN,
    exitAt: r.exit_at ?? NaN,
    size: r.size,
    file: r.file,
    bodyOffset: r.body_offset,
    level: r.level,
    category: r.category,
    viral: !!r.viral,
    ruleIds: r.rule_ids ? r.rule_ids.split(' ') : [],
    reason: r.reason,
    sender: r.sender,
    recipients: r.recipients ? r.recipients.split(' ') : [],
    subject: r.subject,
    policy: r.policy,
    copy: JSON.parse(r.copy) as HeldCopy,
  };
}
