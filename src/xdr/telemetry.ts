// Usage telemetry (DESIGN §10): opt-in (`cloud.telemetry`, off by default). The device, its version and
// install date, and per feature whether it is on — never message content. Sent every
// cloud.telemetryInterval (a day) and on demand.
import type { Config } from '../config/schema.ts';
import { parseDuration } from '../config/schema.ts';
import type { CloudService } from './cloud.ts';

export interface TelemetryReport {
  deviceUid: string;
  model: string;
  deployment: 'standalone' | 'cluster';
  accountId: string | null;
  version: string;
  installDate: string;
  features: Array<{ name: string; featureId: string; enabled: boolean; status: string; expiry: string | null }>;
}

export function telemetryReport(config: Config, cloud: CloudService, antivirusOn: boolean): TelemetryReport {
  const id = cloud.identity();
  const feature = (name: string, featureId: string, enabled: boolean) => ({
    name,
    featureId,
    enabled,
    status: enabled ? 'active' : 'off',
    // open source: no licence expires
    expiry: null,
  });
  return {
    deviceUid: id.uuid,
    model: id.model,
    deployment: id.deployment,
    accountId: config.cloud.accountId,
    version: id.version,
    installDate: cloud.installDate(),
    features: [
      feature('Outbreak Filters', 'outbreak_filters', config.outbreakFilters.enabled),
      feature(
        'Adaptive rules',
        'adaptive_rules',
        config.outbreakFilters.enabled && config.outbreakFilters.adaptiveRules,
      ),
      feature('Anti-virus', 'antivirus', antivirusOn),
      feature('Click-time protection', 'click_time', config.clickTime.enabled),
      feature('Web interaction tracking', 'web_interaction_tracking', config.outbreakFilters.webInteractionTracking),
      feature('XDR data sharing', 'xdr', config.cloud.xdr),
    ],
  };
}

export class Telemetry {
  private readonly config: Config;
  private readonly cloud: CloudService;
  private readonly antivirusOn: () => boolean;
  private timer: NodeJS.Timeout | null = null;
  lastSent: string | null = null;
  lastError: string | null = null;

  constructor(config: Config, cloud: CloudService, antivirusOn: () => boolean) {
    this.config = config;
    this.cloud = cloud;
    this.antivirusOn = antivirusOn;
  }

  start(): void {
    const every = parseDuration(this.config.cloud.telemetryInterval);
    const tick = (): void => {
      void this.send().catch(() => {});
      this.timer = setTimeout(tick, every);
      this.timer.unref();
    };
    // the first report shortly after start, then on the interval
    this.timer = setTimeout(tick, 5_000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
  }

  /** Sends a report now; refused unless telemetry is on and the gateway is registered. */
  async send(): Promise<TelemetryReport> {
    if (!this.config.cloud.telemetry) throw new Error('telemetry is off (cloud.telemetry: false)');
    if (!this.cloud.enabled || !this.cloud.credentials()) throw new Error('not registered with a hub');
    const report = telemetryReport(this.config, this.cloud, this.antivirusOn());
    const res = await this.cloud.call('POST', '/api/v1/device/telemetry', report);
    if (!res.ok) {
      this.lastError = `the hub answered HTTP ${res.status}`;
      throw new Error(this.lastError);
    }
    this.lastSent = new Date().toISOString();
    this.lastError = null;
    return report;
  }
}
