// Streaming to the hub without loss (DESIGN §11.2): the events outbox (tracking/outbox.ts, written in
// the same commit as each tracking record) is read from the last position the hub acknowledged; the
// messages those events touched are summarized and sent as one batch whose id is its outbox range, so
// a batch sent again (a timeout, a crash before the acknowledgement was saved) is stored once by the
// hub. The hub down: retries with backoff, nothing is lost, mail flow is never held up. Past
// `cloud.stream.maxBacklog` unsent events the oldest are skipped, with an alert and a counter.
import type { Config } from '../config/schema.ts';
import { parseDuration } from '../config/schema.ts';
import type { AlertInput } from '../alerts/alerts.ts';
import type { EventBus } from '../tracking/bus.ts';
import type { EventOutbox } from '../tracking/outbox.ts';
import type { Tracker } from '../tracking/tracker.ts';
import type { CloudService } from './cloud.ts';
import { summarize, type MessageSummary } from './summary.ts';

export interface HubStreamDeps {
  config: Config;
  cloud: CloudService;
  outbox: EventOutbox;
  tracker: Pick<Tracker, 'showMany'>;
  bus: Pick<EventBus, 'subscribe'>;
  raiseAlert: (a: AlertInput) => void;
  log: { info(line: string): void; warning(line: string): void };
}

export interface HubStreamHealth {
  running: boolean;
  sentBatches: number;
  sentSummaries: number;
  /** events skipped because the backlog passed cloud.stream.maxBacklog */
  skippedEvents: number;
  failures: number;
  lastError: string | null;
  /** the last outbox position the hub acknowledged */
  acknowledged: number;
}

const MAX_BACKOFF_MS = 60_000;

export class HubStream {
  private readonly deps: HubStreamDeps;
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  private stopped = true;
  private backoffMs = 0;
  private unsubscribe: (() => void) | null = null;
  private readonly health_: Omit<HubStreamHealth, 'running' | 'acknowledged'> = {
    sentBatches: 0,
    sentSummaries: 0,
    skippedEvents: 0,
    failures: 0,
    lastError: null,
  };

  constructor(deps: HubStreamDeps) {
    this.deps = deps;
  }

  /** Streams while cloud services are on, the gateway is registered and `cloud.xdr` shares data. */
  private get active(): boolean {
    return !this.stopped && this.deps.cloud.enabled && this.deps.config.cloud.xdr && !!this.deps.cloud.credentials();
  }

  start(): void {
    this.stopped = false;
    // New events: send soon (the interval bounds how often), not only on the next tick.
    this.unsubscribe = this.deps.bus.subscribe('hub stream', () => this.soon());
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    while (this.busy) await new Promise((r) => setTimeout(r, 10));
  }

  /** The registration changed: try now. */
  poke(): void {
    this.backoffMs = 0;
    this.schedule(0);
  }

  health(): HubStreamHealth {
    return { running: this.active, acknowledged: this.deps.outbox.acknowledged(), ...this.health_ };
  }

  private soon(): void {
    if (!this.timer && !this.busy && this.backoffMs === 0)
      this.schedule(parseDuration(this.deps.config.cloud.stream.interval));
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.tick();
    }, ms);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.busy || !this.active) return;
    this.busy = true;
    let more = false;
    try {
      more = await this.sendOne();
      this.backoffMs = 0;
      this.health_.lastError = null;
    } catch (err) {
      this.health_.failures++;
      this.health_.lastError = (err as Error).message;
      const first = this.backoffMs === 0;
      this.backoffMs = Math.min(Math.max(this.backoffMs * 2, 1000), MAX_BACKOFF_MS);
      if (first) this.deps.log.warning(`hub stream: ${(err as Error).message}; retrying, nothing is lost`);
    } finally {
      this.busy = false;
    }
    if (this.backoffMs) this.schedule(this.backoffMs);
    else if (more) this.schedule(0);
  }

  /** Sends the next batch; true when more is waiting. */
  private async sendOne(): Promise<boolean> {
    const { outbox, config } = this.deps;
    await this.skipPastBacklog();
    const batchSize = config.cloud.stream.batchSize;
    // Events of up to batchSize distinct messages, in outbox order.
    const events = await outbox.next(batchSize * 8);
    if (!events.length) return false;
    const version = new Map<number, number>();
    let lastId = events[0].id;
    for (const e of events) {
      if (!version.has(e.mid) && version.size >= batchSize) break;
      version.set(e.mid, e.id);
      lastId = e.id;
    }
    // Every record of the batch in a few queries (the summary needs only the verdict events).
    const summaries: MessageSummary[] = this.deps.tracker
      .showMany([...version.keys()], ['verdict'])
      .map((r) => summarize(r, version.get(r.mid)!));
    const batchId = `${events[0].id}-${lastId}`;
    if (summaries.length) {
      const res = await this.deps.cloud.call(
        'POST',
        '/api/v1/device/batches',
        { batchId, summaries },
        parseDuration(config.cloud.stream.timeout),
      );
      if (!res.ok) {
        const body = await res.text().catch(() => '');
        throw new Error(`the hub refused batch ${batchId}: HTTP ${res.status} ${body.slice(0, 200)}`);
      }
      this.health_.sentBatches++;
      this.health_.sentSummaries += summaries.length;
    }
    await outbox.acknowledge(lastId);
    return (await outbox.backlog()) > 0;
  }

  /** Past maxBacklog unsent events, the oldest are given up (the hub misses them; mail never waits). */
  private async skipPastBacklog(): Promise<void> {
    const max = this.deps.config.cloud.stream.maxBacklog;
    const backlog = await this.deps.outbox.backlog();
    if (backlog <= max) return;
    const skip = backlog - max;
    // The oldest `skip` events are given up: ids are dense, so the new position is a sum.
    await this.deps.outbox.acknowledge(this.deps.outbox.acknowledged() + skip);
    this.health_.skippedEvents += skip;
    this.deps.log.warning(`hub stream: ${skip} event(s) skipped: more than cloud.stream.maxBacklog (${max}) waiting`);
    this.deps.raiseAlert({
      class: 'system',
      severity: 'warning',
      key: 'cloud.stream_backlog',
      title: `hub stream behind: ${skip} events skipped`,
      text: `More than cloud.stream.maxBacklog (${max}) events waited to be sent to the hub (is it reachable?). The oldest ${skip} were skipped so the backlog stays bounded; the hub will not have them.`,
      data: { skipped: skip, maxBacklog: max },
    });
  }
}
