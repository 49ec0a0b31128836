// Outbreak rules from the hub (DESIGN §4.2, §11.5): a gateway registered with a hub and with no rule feed
// of its own (`outbreakFilters.ruleFeed`) takes the hub's signed bundles (`cloud.rules`, on). It holds a
// long poll open on its device channel (`GET /api/v1/device/rules?since=<installed>&wait=20`): the hub
// answers it the moment it publishes, and the gateway fetches and verifies the bundle with the key it
// pinned at registration (RuleUpdater, the same checks as any feed). The poll's own cadence is the
// fallback when the hub cannot answer early; a gateway offline during a publication gets it on reconnect.
// While the hub pushes events (hub-events.ts) a publication is announced on the stream and fetched at once.
import type { Config } from '../config/schema.ts';
import type { CloudService } from './cloud.ts';
import { HubPoller } from './hub-poller.ts';

export interface HubRulesHealth {
  running: boolean;
  /** the latest version the hub announced */
  announced: number;
  lastError: string | null;
}

const POLL_WAIT_S = 20;

export class HubRulesSync extends HubPoller {
  private readonly deps: {
    config: Config;
    cloud: CloudService;
    installed: () => number;
    update: () => Promise<unknown>;
    log: { info(line: string): void; warning(line: string): void };
  };
  private announced = 0;

  constructor(deps: HubRulesSync['deps']) {
    super('hub rules', (l) => deps.log.warning(l));
    this.deps = deps;
  }

  /** Rules come from the hub: registered, cloud.rules on, and no rule feed configured locally. */
  get applies(): boolean {
    const { cloud, config } = this.deps;
    const feed = config.outbreakFilters.ruleFeed;
    return (
      cloud.enabled && config.cloud.rules && !feed.url && !feed.dir && !!cloud.credentials() && !!cloud.rulesPublicKey()
    );
  }

  health(): HubRulesHealth {
    return { running: this.active, announced: this.announced, lastError: this.lastError };
  }

  protected async round(signal: AbortSignal): Promise<void> {
    const res = await this.deps.cloud.call(
      'GET',
      `/api/v1/device/rules?since=${this.deps.installed()}&wait=${this.pollWait(POLL_WAIT_S)}`,
      undefined,
      (POLL_WAIT_S + 15) * 1000,
      signal,
    );
    if (!res.ok) throw new Error(`the hub answered the rule poll with HTTP ${res.status}`);
    this.announced = ((await res.json()) as { version: number }).version;
    if (this.announced > this.deps.installed()) await this.deps.update();
  }

  /**
   * The hub pushed a publication (hub-events.ts): fetch and verify it now, without a poll round first.
   * A failure is the poll's to retry (nudged).
   */
  announce(version: number): void {
    if (version > this.announced) this.announced = version;
    // stopped (or not taking the hub's rules): the next start's poll asks for what it missed
    if (version <= this.deps.installed() || !this.active) return;
    this.deps.update().then(
      () => {
        if (this.deps.installed() < version) this.nudge();
      },
      () => this.nudge(),
    );
  }

  /** The signed bundle text, for the RuleUpdater (which verifies it with the pinned key). */
  async fetchBundle(): Promise<string> {
    const res = await this.deps.cloud.call('GET', '/api/v1/device/rules/bundle');
    if (!res.ok) throw Object.assign(new Error(`the hub answered HTTP ${res.status}`), { code: 'http_status' });
    return res.text();
  }
}
