// One long poll to the hub, held open while it applies (registered, the feature on): the loop, its
// back-off after failures, being poked when the registration changes, and stopping. Response actions
// (hub-actions.ts) and outbreak rules (hub-rules.ts) each say what one round is. While the hub pushes
// events (hub-events.ts, `pushed`), a round does not wait at the hub and the next one comes when an
// event pokes the poller, or after RECONCILE_MS in case an event was lost.
const MAX_BACKOFF_MS = 60_000;
const IDLE_CHECK_MS = 5_000;
export const RECONCILE_MS = 5 * 60_000;

export abstract class HubPoller {
  protected stopped = true;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private poll: AbortController | null = null;
  protected lastError: string | null = null;
  private readonly label: string;
  private readonly warn: (line: string) => void;
  /** the hub pushes events now (set by the gateway from hub-events.ts) */
  pushed: () => boolean = () => false;
  /** nudged during a round: the next one comes at once */
  private again = false;

  constructor(label: string, warn: (line: string) => void) {
    this.label = label;
    this.warn = warn;
  }

  /** Whether polling applies now (registration and settings), started or not. */
  abstract get applies(): boolean;

  /** One round: ask the hub (the request ends when `signal` aborts) and act on the answer. */
  protected abstract round(signal: AbortSignal): Promise<void>;

  /** How long a round asks the hub to hold its poll: not at all while events are pushed. */
  protected pollWait(seconds: number): number {
    return this.pushed() ? 0 : seconds;
  }

  get active(): boolean {
    return !this.stopped && this.applies;
  }

  start(): void {
    this.stopped = false;
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.poll?.abort();
    this.wake?.();
    await this.loop;
    this.loop = null;
  }

  /** An event says something waits at the hub: a round now (after the current one), never aborting one. */
  nudge(): void {
    this.again = true;
    this.wake?.();
  }

  /** The registration changed: poll now (or stop polling). */
  poke(): void {
    this.poll?.abort();
    this.wake?.();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      t.unref();
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.wake = () => {
        this.wake = null;
        done();
      };
    });
  }

  private async run(): Promise<void> {
    let backoff = 0;
    while (!this.stopped) {
      if (!this.applies) {
        await this.sleep(IDLE_CHECK_MS);
        continue;
      }
      this.poll = new AbortController();
      this.again = false;
      try {
        await this.round(this.poll.signal);
        backoff = 0;
        this.lastError = null;
        if (this.pushed() && !this.again) await this.sleep(RECONCILE_MS);
      } catch (err) {
        if (this.stopped) break;
        if ((err as Error).name === 'AbortError') continue; // poked: the registration changed
        this.lastError = (err as Error).message;
        if (backoff === 0) this.warn(`${this.label}: ${(err as Error).message}; polling again`);
        backoff = Math.min(Math.max(backoff * 2, 1000), MAX_BACKOFF_MS);
        await this.sleep(backoff);
      } finally {
        this.poll = null;
      }
    }
  }
}
