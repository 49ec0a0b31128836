// Outbreak rules from the hub (DESIGN §4.2, §11.5): a gateway registered with a hub and with no rule feed
// of its own (`outbreakFilters.ruleFeed`) takes the hub's signed bundles (`cloud.rules`, on). It holds a
// long poll open on its device channel (`GET /api/v1/device/rules?since=<installed>&wait=20`): the hub
// answers it the moment it publishes, and the gateway fetches and verifies the bundle with the key it
// pinned at registration (RuleUpdater, the same checks as any feed). The poll's own cadence is the
// fallback when the hub cannot answer early; a gateway offline during a publication gets it on reconnect.
import type { Config } from '../config/schema.ts';
import type { CloudService } from './cloud.ts';

export interface HubRulesHealth {
  running: boolean;
  /** the latest version the hub announced */
  announced: number;
  lastError: string | null;
}

const POLL_WAIT_S = 20;
const MAX_BACKOFF_MS = 60_000;

export class HubRulesSync {
  private readonly deps: {
    config: Config;
    cloud: CloudService;
    installed: () => number;
    update: () => Promise<unknown>;
    log: { info(line: string): void; warning(line: string): void };
  };
  private stopped = true;
  private loop: Promise<void> | null = null;
  private poll: AbortController | null = null;
  private wake: (() => void) | null = null;
  private readonly health_ = { announced: 0, lastError: null as string | null };

  constructor(deps: HubRulesSync['deps']) {
    this.deps = deps;
  }

  /** Polling the hub for rules: started, and rules come from the hub. */
  get active(): boolean {
    return !this.stopped && this.applies;
  }

  /** Rules come from the hub: registered, cloud.rules on, and no rule feed configured locally. */
  get applies(): boolean {
    const { cloud, config } = this.deps;
    const feed = config.outbreakFilters.ruleFeed;
    return (
      cloud.enabled && config.cloud.rules && !feed.url && !feed.dir && !!cloud.credentials() && !!cloud.rulesPublicKey()
    );
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

  /** The registration changed: poll now (or stop). */
  poke(): void {
    this.poll?.abort();
    this.wake?.();
  }

  health(): HubRulesHealth {
    return { running: this.active, ...this.health_ };
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
      if (!this.active) {
        await this.sleep(5_000);
        continue;
      }
      try {
        const announced = await this.announced(this.deps.installed());
        this.health_.announced = announced;
        if (announced > this.deps.installed()) await this.deps.update();
        backoff = 0;
        this.health_.lastError = null;
      } catch (err) {
        if (this.stopped) break;
        if ((err as Error).name === 'AbortError') continue;
        this.health_.lastError = (err as Error).message;
        if (backoff === 0) this.deps.log.warning(`hub rules: ${(err as Error).message}; polling again`);
        backoff = Math.min(Math.max(backoff * 2, 1000), MAX_BACKOFF_MS);
        await this.sleep(backoff);
      }
    }
  }

  private async announced(since: number): Promise<number> {
    this.poll = new AbortController();
    try {
      const res = await this.deps.cloud.call(
        'GET',
        `/api/v1/device/rules?since=${since}&wait=${POLL_WAIT_S}`,
        undefined,
        (POLL_WAIT_S + 15) * 1000,
        this.poll.signal,
      );
      if (!res.ok) throw new Error(`the hub answered the rule poll with HTTP ${res.status}`);
      return ((await res.json()) as { version: number }).version;
    } finally {
      this.poll = null;
    }
  }

  /** The signed bundle text, for the RuleUpdater (which verifies it with the pinned key). */
  async fetchBundle(): Promise<string> {
    const res = await this.deps.cloud.call('GET', '/api/v1/device/rules/bundle');
    if (!res.ok) throw Object.assign(new Error(`the hub answered HTTP ${res.status}`), { code: 'http_status' });
    return res.text();
  }
}
