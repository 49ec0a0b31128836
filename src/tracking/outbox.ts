// The durable outbox of events: the tracking subscriber appends every event on the bus to the events
// table in emission order, in the same commit as the record it changes. A consumer (the hub stream)
// reads what follows the last id it acknowledged, sends it, then acknowledges: at least once, in order
// (per message and overall), resumable across restarts of either side.
import type { Store } from '../store/db.ts';
import type { TrackingEventType } from './events.ts';

export interface OutboxEvent {
  /** position in the outbox: increasing, never reused */
  id: number;
  mid: number;
  /** epoch ms */
  at: number;
  type: TrackingEventType;
  data: Record<string, unknown>;
}

export class EventOutbox {
  private readonly store: Store;
  /** the consumer's name: each consumer has its own acknowledged position */
  private readonly consumer: string;

  constructor(store: Store, consumer: string) {
    if (!/^[a-z0-9][a-z0-9._-]{0,63}$/.test(consumer)) throw new Error(`bad outbox consumer name ${consumer}`);
    this.store = store;
    this.consumer = consumer;
  }

  private get key(): string {
    return `outbox.${this.consumer}.acked`;
  }

  /** The last id this consumer acknowledged (0: nothing yet). */
  acknowledged(): number {
    return Number(this.store.getMeta(this.key) ?? 0);
  }

  /** Up to `limit` committed events after the acknowledged position, oldest first. */
  async next(limit = 500): Promise<OutboxEvent[]> {
    await this.store.committed();
    const rows = this.store
      .stmt('select id, mid, at, type, data from events where id > ? order by id limit ?')
      .all(this.acknowledged(), Math.min(Math.max(limit, 1), 10_000)) as Array<{
      id: number;
      mid: number;
      at: number;
      type: TrackingEventType;
      data: string | null;
    }>;
    return rows.map((r) => ({ ...r, data: r.data ? (JSON.parse(r.data) as Record<string, unknown>) : {} }));
  }

  /** Everything up to `id` was delivered: the next read starts after it. Never moves backwards. */
  async acknowledge(id: number): Promise<void> {
    if (!Number.isSafeInteger(id) || id <= this.acknowledged()) return;
    this.store.setMeta(this.key, String(id));
    await this.store.committed();
  }

  /** The newest committed event's id (0: none). */
  async latest(): Promise<number> {
    await this.store.committed();
    const r = this.store.stmt('select max(id) id from events').get() as { id: number | null };
    return r.id ?? 0;
  }

  /**
   * Events not yet acknowledged (how far behind the consumer is). Ids are dense (events are never
   * deleted), so this is a difference, not a count over the backlog.
   */
  async backlog(): Promise<number> {
    return Math.max((await this.latest()) - this.acknowledged(), 0);
  }
}
