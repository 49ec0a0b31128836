// The event bus: services announce what happened to a message as one of the closed catalogue of
// events (events.ts); tracking records, the mail log, metrics and alerts subscribe. Nothing outside
// tracking/ writes a tracking record: it emits.
//
// Delivery is synchronous and in emission order, so every subscriber sees the events of one message in
// the order they happened, and an event is handed to every subscriber before emit() returns. The
// tracking subscriber appends each event to the `events` table (id order = emission order) in the
// store's write batch: that table is the durable outbox a hub stream reads from (at least once, in
// order per message, resumable from the last id it acknowledged).
import type { TrackingEvent } from './events.ts';

export interface BusEvent {
  /** emission order since start, 1-based */
  seq: number;
  mid: number;
  /** epoch ms */
  at: number;
  /** the SMTP connection, when the event is about one */
  icid?: number;
  event: TrackingEvent;
}

export type BusHandler = (e: BusEvent) => void;

export interface SubscriberHealth {
  name: string;
  /** events this subscriber threw on (counted, never passed on to the emitter) */
  errors: number;
  lastError: string | null;
}

export class EventBus {
  private seq = 0;
  private readonly subscribers: Array<{ handle: BusHandler; health: SubscriberHealth }> = [];
  /** told when a subscriber throws (the first error of each subscriber and every 1000th after) */
  onSubscriberError: ((name: string, err: Error) => void) | null = null;

  /** Adds a subscriber after those already there; returns a function that removes it. */
  subscribe(name: string, handle: BusHandler): () => void {
    const entry = { handle, health: { name, errors: 0, lastError: null as string | null } };
    this.subscribers.push(entry);
    return () => {
      const i = this.subscribers.indexOf(entry);
      if (i >= 0) this.subscribers.splice(i, 1);
    };
  }

  emit(mid: number, event: TrackingEvent, icid?: number): BusEvent {
    const e: BusEvent = { seq: ++this.seq, mid, at: Date.now(), event, ...(icid !== undefined ? { icid } : {}) };
    for (const s of this.subscribers) {
      try {
        s.handle(e);
      } catch (err) {
        // One broken subscriber (a metrics bug, a full disk under the mail log) never stops the others
        // or the message: it is counted and reported.
        s.health.errors++;
        s.health.lastError = (err as Error).message;
        if (s.health.errors === 1 || s.health.errors % 1000 === 0)
          this.onSubscriberError?.(s.health.name, err as Error);
      }
    }
    return e;
  }

  health(): SubscriberHealth[] {
    return this.subscribers.map((s) => ({ ...s.health }));
  }
}
