// The quarantine index (DESIGN §5): which message copies are held, why, until when. Message bytes live
// in a "held" spool file of their own (Spool.writeDerived), so a held message never pins a shared
// journal segment. The gateway's quarantine flow (gateway/held.ts) moves messages in and out; this
// file is the index and its queries, shared by the API and the CLI.
import type { Store } from '../store/db.ts';
import type { SpoolEnvelope } from '../spool/spool.ts';

export type QuarantineName = 'outbreak' | 'virus';

export const quarantineNames: readonly QuarantineName[] = ['outbreak', 'virus'];

/** What is needed to put a held copy back on its way (rescan, then delivery). */
export interface HeldCopy {
  mid: number;
  parentMid: number | null;
  env: SpoolEnvelope;
  policy: string;
  recipients: Array<{ rid: number; address: string }>;
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
create table if not exists quarantine_rules (
  mid integer not null,
  quarantine text not null,
  rule_id text not null,
  primary key (rule_id, quarantine, mid)
) without rowid;
`;

interface Row {
  mid: number;
  quarantine: string;
  entered_at: number;
  exit_at: number;
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

export class QuarantineIndex {
  private readonly store: Store;

  constructor(store: Store) {
    this.store = store;
    store.db.exec(SCHEMA);
  }

  add(e: QuarantineEntry): void {
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
  }

  remove(mid: number, quarantine: QuarantineName): void {
    this.store.run('delete from quarantine where mid = ? and quarantine = ?', mid, quarantine);
    this.store.run('delete from quarantine_rules where mid = ? and quarantine = ?', mid, quarantine);
  }

  /** A re-evaluation changed a held message's score (it stays held). */
  rescored(mid: number, quarantine: QuarantineName, level: number, ruleIds: string[]): void {
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
      ? this.store.stmt('select * from quarantine where mid = ? and quarantine = ?').get(mid, quarantine)
      : this.store.stmt('select * from quarantine where mid = ? order by entered_at limit 1').get(mid)) as unknown as
      Row | undefined;
    return row ? toEntry(row) : null;
  }

  list(f: QuarantineFilter = {}): QuarantineEntry[] {
    const where: string[] = [];
    const args: Array<string | number> = [];
    if (f.quarantine) {
      where.push('q.quarantine = ?');
      args.push(f.quarantine);
    }
    if (f.rule) {
      where.push('q.mid in (select mid from quarantine_rules where rule_id = ? and quarantine = q.quarantine)');
      args.push(f.rule);
    }
    if (f.level !== undefined) {
      where.push('q.level >= ?');
      args.push(f.level);
    }
    if (f.sender) {
      where.push('q.sender = ?');
      args.push(f.sender.toLowerCase());
    }
    if (f.recipient) {
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
    if (f.mids?.length) {
      where.push(`q.mid in (${f.mids.map(() => '?').join(',')})`);
      args.push(...f.mids);
    }
    const limit = Math.min(Math.max(f.limit ?? 1000, 1), 100_000);
    const sql = `select q.* from quarantine q ${where.length ? 'where ' + where.join(' and ') : ''}
      order by q.entered_at, q.mid limit ${limit}`;
    return (this.store.db.prepare(sql).all(...args) as unknown as Row[]).map(toEntry);
  }

  /** Held messages whose scheduled exit has come. */
  due(now: number, limit = 500): QuarantineEntry[] {
    return (
      this.store
        .stmt('select * from quarantine where exit_at <= ? order by exit_at limit ?')
        .all(now, limit) as unknown as Row[]
    ).map(toEntry);
  }

  /** The "manage by rule" summary (reference R58/R82): rule, messages, total size. */
  rules(quarantine: QuarantineName = 'outbreak'): Array<{ ruleId: string; messages: number; totalSize: number }> {
    return (
      this.store
        .stmt(
          `select r.rule_id, count(*) n, sum(q.size) total from quarantine_rules r
           join quarantine q on q.mid = r.mid and q.quarantine = r.quarantine
           where r.quarantine = ? group by r.rule_id order by n desc, r.rule_id`,
        )
        .all(quarantine) as unknown as Array<{ rule_id: string; n: number; total: number }>
    ).map((r) => ({ ruleId: r.rule_id, messages: r.n, totalSize: r.total }));
  }

  usage(): { messages: number; bytes: number } {
    const r = this.store.stmt('select count(*) n, coalesce(sum(size), 0) b from quarantine').get() as {
      n: number;
      b: number;
    };
    return { messages: r.n, bytes: r.b };
  }
}

function toEntry(r: Row): QuarantineEntry {
  return {
    mid: r.mid,
    quarantine: r.quarantine as QuarantineName,
    enteredAt: r.entered_at,
    exitAt: r.exit_at,
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
