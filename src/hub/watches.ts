// The watchlist (DESIGN §11.4; issue 14): an analyst watches an observable, and every new message that
// carries it, on any gateway, is a hit — counted, listed with the gateway and MID, and, when the watch asks
// for it, a ticket (one per watch per intake batch, src/hub/tickets.ts). Checked as summaries arrive:
// the watched keys are kept in memory, so the intake pays one map lookup per observable.
import { randomUUID } from 'node:crypto';
import type { MessageSummary } from '../xdr/summary.ts';
import { ApprovalError, requestedBy } from './approvals.ts';
import { observablesOf } from './observables.ts';
import type { ParsedObservable } from './parse-observables.ts';
import type { HubStore } from './store.ts';
import type { TicketDesk } from './tickets.ts';

const SCHEMA = `
create table if not exists watches (
  id text primary key,
  type text not null,
  value text not null,
  note text not null,
  ticket integer not null,
  created_by text not null,
  created_at integer not null,
  expires_at integer,
  hits integer not null default 0,
  last_hit_at integer,
  removed integer not null default 0,
  status text not null default 'active',
  decided_by text
);
create table if not exists watch_hits (
  watch_id text not null,
  at integer not null,
  device_id text not null,
  mid integer not null,
  subject text,
  primary key (watch_id, device_id, mid)
) without rowid;
`;

export interface Watch {
  id: string;
  type: string;
  value: string;
  note: string;
  /** open a ticket on new sightings */
  ticket: boolean;
  createdBy: string;
  createdAt: string;
  expiresAt: string | null;
  hits: number;
  lastHitAt: string | null;
  /** awaiting_approval: counts no hit until a second user approves (approvals.watch) */
  status: 'awaiting_approval' | 'active' | 'refused';
  decidedBy: string | null;
}

interface Row {
  id: string;
  type: string;
  value: string;
  note: string;
  ticket: number;
  created_by: string;
  created_at: number;
  expires_at: number | null;
  hits: number;
  last_hit_at: number | null;
  status: Watch['status'];
  decided_by: string | null;
}

export class Watchlist {
  private readonly store: HubStore;
  private readonly tickets: TicketDesk;
  /** `type\0value` → watch ids */
  private readonly keys = new Map<string, Set<string>>();
  /** hits of this intake batch, per watch: ticketed once the batch is stored */
  private readonly pending = new Map<string, Array<{ deviceId: string; mid: number; subject: string | null }>>();

  /** tickets wait for a second user's approval (approvals.ticket), those a watch opens too */
  private readonly ticketsNeedApproval: () => boolean;

  constructor(deps: { store: HubStore; tickets: TicketDesk; ticketsNeedApproval?: () => boolean }) {
    this.store = deps.store;
    this.tickets = deps.tickets;
    this.ticketsNeedApproval = deps.ticketsNeedApproval ?? (() => false);
    this.store.db.exec(SCHEMA);
    // hubs made before approvals of watches: every watch they have is active
    const columns = this.store.db.prepare('pragma table_info(watches)').all() as Array<{ name: string }>;
    if (!columns.some((c) => c.name === 'status'))
      this.store.db.exec(
        "alter table watches add column status text not null default 'active'; alter table watches add column decided_by text;",
      );
    for (const w of this.list()) if (w.status === 'active') this.index(w);
  }

  /** Watches at once, or waits for a second user's approval (approvals.watch). */
  add(
    o: ParsedObservable,
    input: { note: string; ticket: boolean; expiresAt: number | null },
    by: string,
    opts: { awaitingApproval?: boolean } = {},
  ): Watch {
    const id = randomUUID();
    this.store.run(
      'insert into watches(id, type, value, note, ticket, created_by, created_at, expires_at, status) values (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      id,
      o.type,
      o.value,
      input.note,
      input.ticket ? 1 : 0,
      by,
      Date.now(),
      input.expiresAt,
      opts.awaitingApproval ? 'awaiting_approval' : 'active',
    );
    const w = this.get(id)!;
    if (w.status === 'active') this.index(w);
    return w;
  }

  /** A second user approves a watch: it counts hits from now on. Its requester may not approve it. */
  approve(id: string, by: string): Watch {
    const w = this.awaiting(id);
    if (requestedBy(w.createdBy, by))
      throw new ApprovalError('approval_by_requester', 'a watch is approved by someone other than its requester');
    this.store.run("update watches set status = 'active', decided_by = ? where id = ?", by, id);
    const approved = this.get(id)!;
    this.index(approved);
    return approved;
  }

  refuse(id: string, by: string): Watch {
    this.awaiting(id);
    this.store.run("update watches set status = 'refused', decided_by = ? where id = ?", by, id);
    return this.get(id)!;
  }

  private awaiting(id: string): Watch {
    const w = this.get(id);
    if (!w) throw new ApprovalError('watch_not_found', 'no watch with that id');
    if (w.status !== 'awaiting_approval')
      throw new ApprovalError('not_pending', `the watch is ${w.status}, not awaiting approval`);
    return w;
  }

  remove(id: string): boolean {
    const w = this.get(id);
    if (!w) return false;
    this.store.run('update watches set removed = 1 where id = ?', id);
    this.keys.get(`${w.type}\u0000${w.value}`)?.delete(id);
    return true;
  }

  get(id: string): Watch | null {
    const r = this.store.stmt('select * from watches where id = ? and removed = 0').get(id) as unknown as
      Row | undefined;
    return r ? toWatch(r) : null;
  }

  list(): Watch[] {
    return (
      this.store.stmt('select * from watches where removed = 0 order by created_at desc').all() as unknown as Row[]
    ).map(toWatch);
  }

  hits(id: string, limit = 200): Array<{ at: string; deviceId: string; mid: number; subject: string | null }> {
    return (
      this.store
        .stmt('select at, device_id, mid, subject from watch_hits where watch_id = ? order by at desc limit ?')
        .all(id, limit) as Array<{ at: number; device_id: string; mid: number; subject: string | null }>
    ).map((h) => ({ at: new Date(h.at).toISOString(), deviceId: h.device_id, mid: h.mid, subject: h.subject }));
  }

  /** A message stored for the first time (inside the intake's transaction). */
  observe(deviceId: string, s: MessageSummary): void {
    if (!this.keys.size) return;
    const now = Date.now();
    for (const o of observablesOf(s)) {
      const ids = this.keys.get(`${o.type}\u0000${o.value}`);
      if (!ids?.size) continue;
      for (const id of ids) {
        const w = this.get(id);
        if (!w || w.status !== 'active' || (w.expiresAt && Date.parse(w.expiresAt) <= now)) continue;
        this.store.run(
          'insert or ignore into watch_hits(watch_id, at, device_id, mid, subject) values (?, ?, ?, ?, ?)',
          id,
          now,
          deviceId,
          s.mid,
          s.subject,
        );
        this.store.run('update watches set hits = hits + 1, last_hit_at = ? where id = ?', now, id);
        if (w.ticket) {
          const list = this.pending.get(id) ?? [];
          list.push({ deviceId, mid: s.mid, subject: s.subject });
          this.pending.set(id, list);
        }
      }
    }
  }

  /** After a batch is stored: one ticket per watch that asked for one and had hits. */
  flush(names: (deviceId: string) => string): void {
    for (const [id, hits] of this.pending) {
      const w = this.get(id);
      if (!w || !this.tickets.enabled) continue;
      this.tickets.open(
        {
          title: `Watched ${w.type} ${w.value} seen again: ${hits.length} new message(s)`,
          text: [
            w.note ? `Watch note: ${w.note}` : '',
            ...hits.slice(0, 50).map((h) => `${names(h.deviceId)} MID ${h.mid}: ${h.subject ?? '(no subject)'}`),
          ]
            .filter(Boolean)
            .join('\n'),
          observables: [{ type: w.type, value: w.value }],
        },
        `watch:${w.createdBy}`,
        { awaitingApproval: this.ticketsNeedApproval() },
      );
    }
    this.pending.clear();
  }

  private index(w: Watch): void {
    const k = `${w.type}\u0000${w.value}`;
    const set = this.keys.get(k) ?? new Set<string>();
    set.add(w.id);
    this.keys.set(k, set);
  }
}

function toWatch(r: Row): Watch {
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  return {
    id: r.id,
    type: r.type,
    value: r.value,
    note: r.note,
    ticket: !!r.ticket,
    createdBy: r.created_by,
    createdAt: iso(r.created_at)!,
    expiresAt: iso(r.expires_at),
    hits: r.hits,
    lastHitAt: iso(r.last_hit_at),
    status: r.status,
    decidedBy: r.decided_by,
  };
}
