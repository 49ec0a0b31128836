// Cloud services (DESIGN §10): the gateway's registration with a threat-response hub. States
// `disabled` → `in-progress` → `registered`, or `failed` with the reason the hub (or the network) gave.
// The device secret the hub issues lives in `dataDir/cloud.secret` (mode 0600): never in the database,
// logs or API answers.
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/schema.ts';
import type { Store } from '../store/db.ts';
import { installation } from '../store/installation.ts';
import { HUB_AUDIENCE, signDeviceToken } from './device-jwt.ts';

export type CloudStatus = 'disabled' | 'in-progress' | 'registered' | 'failed';

export interface CloudState {
  status: CloudStatus;
  /** the region registered in (or being registered in) */
  region: string | null;
  hubUrl: string | null;
  deviceId: string | null;
  /** ISO 8601: the last call the hub answered */
  lastContact: string | null;
  /** why registration failed, or what needs doing */
  reason: string | null;
}

/** A refused cloud operation, with a stable code for the API. */
export class CloudError extends Error {
  readonly code: string;
  readonly status: number;
  constructor(code: string, message: string, status = 409) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

interface Persisted {
  region: string | null;
  hubUrl: string | null;
  deviceId: string | null;
  status: 'registered' | 'failed' | null;
  reason: string | null;
  lastContact: string | null;
  /** the hub's rule signing key, pinned at registration (older registrations: none) */
  rulesPublicKey?: string | null;
}

export interface CloudDeps {
  config: Config;
  dataDir: string;
  store: Pick<Store, 'getMeta' | 'setMeta'>;
  version: string;
  log: { info(line: string): void; warning(line: string): void };
}

const META = 'cloud.state';
const ENABLED = 'cloud.enabled';

export class CloudService {
  private readonly deps: CloudDeps;
  private persisted: Persisted;
  private registering = false;
  /** `cloud enable|disable` said so (null: the config decides; undefined: not read yet) */
  private enabledOverride: boolean | null | undefined = undefined;
  /** told when the registration changes (the stream starts or stops) */
  onChange: (() => void) | null = null;

  constructor(deps: CloudDeps) {
    this.deps = deps;
    this.persisted = this.load();
  }

  private load(): Persisted {
    const raw = this.deps.store.getMeta(META);
    const empty: Persisted = {
      region: null,
      hubUrl: null,
      deviceId: null,
      status: null,
      reason: null,
      lastContact: null,
    };
    if (!raw) return empty;
    try {
      return { ...empty, ...(JSON.parse(raw) as Partial<Persisted>) };
    } catch {
      return empty;
    }
  }

  private save(): void {
    this.deps.store.setMeta(META, JSON.stringify(this.persisted));
  }

  private get secretFile(): string {
    return path.join(this.deps.dataDir, 'cloud.secret');
  }

  /** Cloud services on: the config says so, unless `cloud enable|disable` said otherwise since. */
  get enabled(): boolean {
    if (this.enabledOverride === undefined) {
      const v = this.deps.store.getMeta(ENABLED);
      this.enabledOverride = v === undefined ? null : v === 'true';
    }
    return this.enabledOverride ?? this.deps.config.cloud.enabled;
  }

  setEnabled(on: boolean): CloudState {
    // kept in memory too: the database write commits a moment later
    this.enabledOverride = on;
    this.deps.store.setMeta(ENABLED, String(on));
    this.deps.log.info(`cloud services ${on ? 'enabled' : 'disabled'}`);
    queueMicrotask(() => this.onChange?.());
    return this.state();
  }

  /** This installation's identity, as the hub sees it. */
  identity(): {
    uuid: string;
    hostname: string;
    name: string;
    model: string;
    version: string;
    deployment: 'standalone';
  } {
    const { uuid } = installation(this.deps.store);
    return {
      uuid,
      hostname: this.deps.config.hostname,
      name: this.deps.config.hostname,
      model: this.deps.config.cloud.model,
      version: this.deps.version,
      deployment: 'standalone',
    };
  }

  installDate(): string {
    return installation(this.deps.store).date;
  }

  /** The hub URL of a region name, or the URL itself. */
  hubUrlFor(region: string): string {
    const r = this.deps.config.cloud.regions as Record<string, string>;
    return (r[region] ?? region).replace(/\/+$/, '');
  }

  state(): CloudState {
    const p = this.persisted;
    const status: CloudStatus = this.registering
      ? 'in-progress'
      : p.status === 'registered'
        ? 'registered'
        : p.status === 'failed'
          ? 'failed'
          : 'disabled';
    let reason = p.reason;
    const wanted = this.deps.config.cloud.region;
    if (status === 'registered' && p.region !== wanted)
      reason = `cloud.region is ${wanted} but the gateway is registered in ${p.region}: deregister first, then register with a token for ${wanted}`;
    return {
      // cloud services off: nothing is sent, whatever the registration (it is kept for `cloud enable`)
      status: this.enabled ? status : 'disabled',
      region: p.region ?? wanted,
      hubUrl: p.hubUrl ?? this.hubUrlFor(wanted),
      deviceId: p.deviceId,
      lastContact: p.lastContact,
      reason,
    };
  }

  /** The key the hub signs its outbreak rule bundles with (pinned at registration), or null. */
  rulesPublicKey(): string | null {
    return this.persisted.status === 'registered' ? (this.persisted.rulesPublicKey ?? null) : null;
  }

  /** Registered and allowed to talk to the hub: the device id, hub URL and secret. */
  credentials(): { deviceId: string; hubUrl: string; secret: string } | null {
    const p = this.persisted;
    if (p.status !== 'registered' || !p.deviceId || !p.hubUrl || !existsSync(this.secretFile)) return null;
    return { deviceId: p.deviceId, hubUrl: p.hubUrl, secret: readFileSync(this.secretFile, 'utf8').trim() };
  }

  /** A call to the hub with this device's JWT; notes the contact. */
  async call(
    method: string,
    urlPath: string,
    body?: unknown,
    timeoutMs = 30_000,
    signal?: AbortSignal,
  ): Promise<Response> {
    const c = this.credentials();
    if (!c) throw new CloudError('cloud_not_registered', 'the gateway is not registered with a hub');
    const res = await fetch(`${c.hubUrl}${urlPath}`, {
      method,
      headers: {
        authorization: `Bearer ${await signDeviceToken(c.deviceId, c.secret, HUB_AUDIENCE)}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
      signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs),
    });
    if (res.status === 401) {
      const answer = (await res
        .clone()
        .json()
        .catch(() => null)) as { error?: { code?: string } } | null;
      if (answer?.error?.code === 'device_not_registered') this.lostRegistration();
    } else this.contact();
    return res;
  }

  private contact(): void {
    this.persisted.lastContact = new Date().toISOString();
    this.save();
  }

  /** The hub no longer knows this device (removed there): stop talking, say why. */
  private lostRegistration(): void {
    if (this.persisted.status !== 'registered') return;
    this.persisted.status = 'failed';
    this.persisted.reason = 'the hub no longer knows this device (removed on the hub): register again with a new token';
    this.save();
    this.deps.log.warning(`cloud: ${this.persisted.reason}`);
    this.onChange?.();
  }

  /** Registers with the hub of `region` (default cloud.region) using a one-time token. */
  async register(token: string, region = this.deps.config.cloud.region): Promise<CloudState> {
    if (!this.enabled)
      throw new CloudError('cloud_disabled', 'cloud services are disabled: `breakwater cloud enable` first');
    if (this.persisted.status === 'registered')
      throw new CloudError(
        'cloud_already_registered',
        this.persisted.region === region
          ? `already registered in ${region} as device ${this.persisted.deviceId}`
          : `registered in ${this.persisted.region}: deregister first (breakwater cloud deregister), then register in ${region} with a token for it`,
      );
    if (this.registering) throw new CloudError('cloud_in_progress', 'a registration is already in progress');
    if (!/^[0-9a-f]{32}$/i.test(token.trim()))
      throw new CloudError('invalid_token', 'a registration token is 32 hexadecimal characters', 400);
    const hubUrl = this.hubUrlFor(region);
    this.registering = true;
    try {
      await this.exchange(token, region, hubUrl);
    } finally {
      this.registering = false;
    }
    return this.state();
  }

  /** The registration call itself: the outcome is recorded in the persisted state. */
  private async exchange(token: string, region: string, hubUrl: string): Promise<void> {
    {
      let res: Response;
      try {
        res = await fetch(`${hubUrl}/api/v1/register`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ token: token.trim().toLowerCase(), region, identity: this.identity() }),
          signal: AbortSignal.timeout(30_000),
        });
      } catch (err) {
        return this.failed(
          region,
          hubUrl,
          `hub unreachable at ${hubUrl}: ${(err as Error).cause ?? (err as Error).message}`,
        );
      }
      const answer = (await res.json().catch(() => null)) as {
        deviceId?: string;
        secret?: string;
        rulesPublicKey?: string;
        error?: { code: string; message: string };
      } | null;
      if (!res.ok || !answer?.deviceId || !answer.secret) {
        this.failed(
          region,
          hubUrl,
          answer?.error ? `${answer.error.code}: ${answer.error.message}` : `the hub answered HTTP ${res.status}`,
        );
        return;
      }
      writeFileSync(this.secretFile, answer.secret + '\n', { mode: 0o600 });
      this.persisted = {
        region,
        hubUrl,
        deviceId: answer.deviceId,
        status: 'registered',
        reason: null,
        lastContact: new Date().toISOString(),
        rulesPublicKey: typeof answer.rulesPublicKey === 'string' ? answer.rulesPublicKey : null,
      };
      this.save();
      this.deps.log.info(`cloud: registered with ${hubUrl} (region ${region}) as device ${answer.deviceId}`);
      queueMicrotask(() => this.onChange?.());
    }
  }

  private failed(region: string, hubUrl: string, reason: string): void {
    this.persisted = { ...this.persisted, region, hubUrl, deviceId: null, status: 'failed', reason };
    this.save();
    this.deps.log.warning(`cloud: registration failed: ${reason}`);
  }

  /** Removes the device from the hub, then forgets the credentials. `force`: forget even if the hub cannot be reached. */
  async deregister(force = false): Promise<CloudState> {
    if (this.persisted.status !== 'registered') {
      this.persisted = { region: null, hubUrl: null, deviceId: null, status: null, reason: null, lastContact: null };
      this.save();
      return this.state();
    }
    try {
      const res = await this.call('POST', '/api/v1/device/deregister', undefined, 15_000);
      if (!res.ok && res.status !== 401) throw new Error(`the hub answered HTTP ${res.status}`);
    } catch (err) {
      if (!force)
        throw new CloudError(
          'cloud_hub_unreachable',
          `the hub could not be told (${(err as Error).message}); retry, or deregister with force to forget it here only`,
          502,
        );
    }
    const id = this.persisted.deviceId;
    rmSync(this.secretFile, { force: true });
    this.persisted = { region: null, hubUrl: null, deviceId: null, status: null, reason: null, lastContact: null };
    this.save();
    this.deps.log.info(`cloud: device ${id} deregistered`);
    queueMicrotask(() => this.onChange?.());
    return this.state();
  }
}
