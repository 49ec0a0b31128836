// The audit log (DESIGN §9): every change made through the admin API — who (user and role, or the
// local admin token), when, what (the operation, its target, the request's fields with secrets
// redacted), from which address, and how it ended — plus logins, failed logins and logouts. Kept in the
// gateway's database, written through the store's group commit (off the event loop, like tracking),
// searchable through the API, the CLI and the UI.
import type { UserStore } from './store.ts';

const SCHEMA = `
create table if not exists audit (
  id integer primary key,
  at integer not null,
  user text not null,
  role text not null,
  action text not null,
  target text not null,
  detail text,
  ip text not null,
  status integer not null
);
create index if not exists audit_at on audit(at, id);
create index if not exists audit_user on audit(user, at);
create index if not exists audit_action on audit(action, at);
`;

export interface AuditEntry {
  id: number;
  at: string;
  /** the user name; "admin-token" for the local admin token; the name tried for a failed login */
  user: string;
  role: string;
  /** the API operation (e.g. releaseQuarantinedMessages) or login / loginFailed / logout */
  action: string;
  /** what it acted on: the request path */
  target: string;
  /** the request's fields, secrets redacted */
  detail: unknown;
  ip: string;
  /** the HTTP status of the answer */
  status: number;
}

export interface AuditQuery {
  user?: string;
  action?: string;
  /** text anywhere in target or detail */
  text?: string;
  since?: number;
  until?: number;
  limit: number;
  /** entries with an id below this (paging backwards) */
  before?: number;
}

const SECRET_KEY = /pass(word)?|secret|token|key|credential|authorization/i;
const MAX_DETAIL = 8 * 1024;

/** A copy with every field that looks like a secret replaced by "[redacted]". */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.slice(0, 100).map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>))
    out[k] = SECRET_KEY.test(k) ? '[redacted]' : redact(v, depth + 1);
  return out;
}

const INSERT = 'insert into audit(at, user, role, action, target, detail, ip, status) values (?, ?, ?, ?, ?, ?, ?, ?)';

export class AuditLog {
  private readonly store: UserStore;

  constructor(store: UserStore) {
    this.store = store;
    store.db.exec(SCHEMA);
  }

  record(e: Omit<AuditEntry, 'id' | 'at'> & { at?: number }): void {
    let detail = e.detail === undefined ? null : JSON.stringify(redact(e.detail));
    if (detail && detail.length > MAX_DETAIL) detail = JSON.stringify({ truncated: detail.slice(0, MAX_DETAIL) });
    this.store.run(
      INSERT,
      e.at ?? Date.now(),
      e.user.slice(0, 200),
      e.role,
      e.action,
      e.target.slice(0, 1000),
      detail,
      e.ip.slice(0, 100),
      e.status,
    );
  }

  /** Newest first, including every entry recorded before the call. */
  async search(q: AuditQuery): Promise<AuditEntry[]> {
    await this.store.committed();
    const rows = this.store
      .stmt(
        `select * from audit
         where (?1 is null or user = ?1) and (?2 is null or action = ?2)
           and (?3 is null or at >= ?3) and (?4 is null or at < ?4) and (?5 is null or id < ?5)
           and (?6 is null or instr(lower(target), lower(?6)) > 0 or instr(lower(coalesce(detail, '')), lower(?6)) > 0)
         order by id desc limit ?7`,
      )
      .all(
        q.user ?? null,
        q.action ?? null,
        q.since ?? null,
        q.until ?? null,
        q.before ?? null,
        q.text ?? null,
        q.limit,
      ) as Array<Omit<AuditEntry, 'at' | 'detail'> & { at: number; detail: string | null }>;
    return rows.map((r) => ({
      ...r,
      at: new Date(r.at).toISOString(),
      detail: r.detail ? JSON.parse(r.detail) : null,
    }));
  }
}
