// The hub-managed block list (DESIGN §11.4, issue 14): senders and sender domains blocked on every
// gateway, for incoming mail, outgoing mail (a compromised internal user) or both, each with a reason and
// an optional expiry. With `approvals.block`, an entry waits for a second user's approval (never the
// requester's own) before it is active. Gateways fetch the active entries over their device channel and
// apply them at MAIL FROM and, on the header From, in the policy layer. Every request, approval,
// refusal and removal is audited by the API (src/api/auth.ts).
import { randomUUID } from 'node:crypto';
import type { HubStore } from './store.ts';

const SCHEMA = `
create table if not exists block_entries (
  id text primary key,
  kind text not null,
  value text not null,
  direction text not null,
  reason text not null,
  requested_by text not null,
  created_at integer not null,
  expires_at integer,
  status text not null,
  decided_by text,
  decided_at integer,
  updated_at integer not null
);
create index if not exists block_entries_status on block_entries(status, updated_at);
`;

export const BLOCK_KINDS = ['sender', 'domain'] as const;
export const BLOCK_DIRECTIONS = ['incoming', 'outgoing', 'both'] as const;
export const BLOCK_STATUSES = ['pending', 'active', 'expired', 'refused', 'removed'] as const;
export type BlockKind = (typeof BLOCK_KINDS)[number];
export type BlockDirection = (typeof BLOCK_DIRECTIONS)[number];
export type BlockStatus = (typeof BLOCK_STATUSES)[number];

export interface BlockEntry {
  id: string;
  kind: BlockKind;
  /** an address (sender) or a domain (its subdomains too), lower case */
  value: string;
  direction: BlockDirection;
  reason: string;
  requestedBy: string;
  createdAt: string;
  expiresAt: string | null;
  status: BlockStatus;
  /** who approved, refused or removed it */
  decidedBy: string | null;
  decidedAt: string | null;
}

interface Row {
  id: string;
  kind: BlockKind;
  value: string;
  direction: BlockDirection;
  reason: string;
  requested_by: string;
  created_at: number;
  expires_at: number | null;
  status: Exclude<BlockStatus, 'expired'>;
  decided_by: string | null;
  decided_at: number | null;
  updated_at: number;
}

export class BlockListError extends Error {
  readonly code: 'block_not_found' | 'not_pending' | 'approval_by_requester' | 'invalid_parameter';
  constructor(code: BlockListError['code'], message: string) {
    super(message);
    this.code = code;
  }
}

const ADDRESS = /^[^\s@<>"]{1,64}@[a-z0-9.-]{1,253}$/;
const DOMAIN = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;

/** The value checked and lower-cased, or why not. */
export function blockValue(kind: BlockKind, value: string): string {
  const v = value.trim().toLowerCase().replace(/^@/, '');
  if (kind === 'sender' && !ADDRESS.test(v))
    throw new BlockListError('invalid_parameter', `"${value}" is not an address`);
  if (kind === 'domain' && !DOMAIN.test(v)) throw new BlockListError('invalid_parameter', `"${value}" is not a domain`);
  return v;
}

export class HubBlockList {
  private readonly store: HubStore;
  private readonly requireApproval: () => boolean;
  /** told when what gateways apply may have changed (the device channel pushes it) */
  private readonly onChange: () => void;

  constructor(store: HubStore, o: { requireApproval: () => boolean; onChange?: () => void }) {
    this.store = store;
    this.requireApproval = o.requireApproval;
    this.onChange = o.onChange ?? (() => {});
    store.db.exec(SCHEMA);
  }

  /** Blocks at once, or waits for approval (approvals.block). */
  request(
    input: { kind: BlockKind; value: string; direction: BlockDirection; reason: string; expiresAt: number | null },
    by: string,
  ): BlockEntry {
    const value = blockValue(input.kind, input.value);
    if (input.expiresAt !== null && input.expiresAt <= Date.now())
      throw new BlockListError('invalid_parameter', 'the expiry is in the past');
    const now = Date.now();
    const id = randomUUID();
    this.store.run(
      `insert into block_entries(id, kind, value, direction, reason, requested_by, created_at, expires_at, status, updated_at)
       values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      id,
      input.kind,
      value,
      input.direction,
      input.reason,
      by,
      now,
      input.expiresAt,
      this.requireApproval() ? 'pending' : 'active',
      now,
    );
    const entry = this.get(id)!;
    if (entry.status === 'active') this.onChange();
    return entry;
  }

  /** A second user approves a pending entry: it becomes active. The requester may not approve their own. */
  approve(id: string, by: string): BlockEntry {
    const r = this.pending(id);
    if (r.requested_by === by)
      throw new BlockListError('approval_by_requester', 'a request is approved by someone other than its requester');
    return this.decide(id, 'active', by);
  }

  refuse(id: string, by: string): BlockEntry {
    this.pending(id);
    return this.decide(id, 'refused', by);
  }

  /** Unblocks (or withdraws a pending request). */
  remove(id: string, by: string): BlockEntry {
    const r = this.row(id);
    if (!r) throw new BlockListError('block_not_found', 'no block list entry with that id');
    if (r.status === 'removed' || r.status === 'refused') return this.entry(r);
    return this.decide(id, 'removed', by);
  }

  get(id: string): BlockEntry | null {
    const r = this.row(id);
    return r ? this.entry(r) : null;
  }

  list(o: { status?: BlockStatus; limit?: number } = {}): BlockEntry[] {
    const rows = this.store
      .stmt('select * from block_entries order by created_at desc limit ?')
      .all(o.limit ?? 1000) as unknown as Row[];
    const all = rows.map((r) => this.entry(r));
    return o.status ? all.filter((e) => e.status === o.status) : all;
  }

  /** What gateways apply now: active and not expired. */
  active(): BlockEntry[] {
    const now = Date.now();
    return (
      this.store
        .stmt(
          "select * from block_entries where status = 'active' and (expires_at is null or expires_at > ?) order by created_at",
        )
        .all(now) as unknown as Row[]
    ).map((r) => this.entry(r));
  }

  /** Changes whenever what is active may have changed (a gateway asks whether to fetch again). */
  version(): number {
    const r = this.store.stmt('select coalesce(max(updated_at), 0) v, count(*) n from block_entries').get() as {
      v: number;
      n: number;
    };
    return r.v + r.n;
  }

  private pending(id: string): Row {
    const r = this.row(id);
    if (!r) throw new BlockListError('block_not_found', 'no block list entry with that id');
    if (r.status !== 'pending') throw new BlockListError('not_pending', `the entry is ${r.status}, not pending`);
    return r;
  }

  private decide(id: string, status: Row['status'], by: string): BlockEntry {
    const now = Date.now();
    this.store.run(
      'update block_entries set status = ?, decided_by = ?, decided_at = ?, updated_at = ? where id = ?',
      status,
      by,
      now,
      now,
      id,
    );
    this.onChange();
    return this.get(id)!;
  }

  private row(id: string): Row | undefined {
    return this.store.stmt('select * from block_entries where id = ?').get(id) as unknown as Row | undefined;
  }

  private entry(r: Row): BlockEntry {
    const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
    const expired = r.status === 'active' && r.expires_at !== null && r.expires_at <= Date.now();
    return {
      id: r.id,
      kind: r.kind,
      value: r.value,
      direction: r.direction,
      reason: r.reason,
      requestedBy: r.requested_by,
      createdAt: iso(r.created_at)!,
      expiresAt: iso(r.expires_at),
      status: expired ? 'expired' : r.status,
      decidedBy: r.decided_by,
      decidedAt: iso(r.decided_at),
    };
  }
}
