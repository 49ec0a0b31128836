// The hub's block list on a gateway (DESIGN §11.4): while registered, the gateway fetches the active
// entries every 30 s (`GET /api/v1/device/blocklist?since=<version>`: nothing is sent when nothing
// changed) and keeps the last list in its database, so a restart applies it before the hub answers. A
// blocked envelope sender is refused at MAIL FROM (src/smtp/ingress.ts); a blocked header From is
// dropped by the policy layer (src/policy/decide.ts), for the entry's direction.
import type { Store } from '../store/db.ts';
import type { CloudService } from './cloud.ts';

export interface BlockListEntry {
  id: string;
  kind: 'sender' | 'domain';
  value: string;
  direction: 'incoming' | 'outgoing' | 'both';
  reason: string;
  expiresAt: string | null;
}

export interface HubBlockListHealth {
  version: number;
  entries: number;
  lastFetch: string | null;
  lastError: string | null;
}

const INTERVAL_MS = 30_000;
const META = 'hub_blocklist';

/** The entry that blocks an address for mail in a direction, or null. */
export function blockedBy<E extends BlockListEntry>(
  entries: readonly E[],
  address: string,
  direction: 'incoming' | 'outgoing',
  now = Date.now(),
): E | null {
  const a = address.trim().toLowerCase();
  if (!a.includes('@')) return null;
  const domain = a.slice(a.lastIndexOf('@') + 1);
  for (const e of entries) {
    if (e.direction !== 'both' && e.direction !== direction) continue;
    if (e.expiresAt && Date.parse(e.expiresAt) <= now) continue;
    if (e.kind === 'sender' ? a === e.value : domain === e.value || domain.endsWith(`.${e.value}`)) return e;
  }
  return null;
}

export class HubBlockListSync {
  private readonly cloud: CloudService;
  private readonly store: Pick<Store, 'getMeta' | 'setMeta'>;
  private readonly log: { info(line: string): void; warning(line: string): void };
  private entries: BlockListEntry[] = [];
  private version = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly health_: Omit<HubBlockListHealth, 'version' | 'entries'> = { lastFetch: null, lastError: null };

  constructor(deps: {
    cloud: CloudService;
    store: Pick<Store, 'getMeta' | 'setMeta'>;
    log: { info(line: string): void; warning(line: string): void };
  }) {
    this.cloud = deps.cloud;
    this.store = deps.store;
    this.log = deps.log;
    try {
      const saved = JSON.parse(this.store.getMeta(META) ?? 'null') as {
        version: number;
        entries: BlockListEntry[];
      } | null;
      if (saved) ({ version: this.version, entries: this.entries } = saved);
    } catch {
      // a damaged copy: fetched again from the hub
    }
  }

  start(): void {
    if (this.timer) return;
    const tick = (): void => {
      void this.fetch().finally(() => {
        if (!this.timer) return;
        this.timer = setTimeout(tick, INTERVAL_MS);
        this.timer.unref();
      });
    };
    this.timer = setTimeout(tick, 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Fetches the list now (also after registering or deregistering). */
  async fetch(): Promise<void> {
    if (!this.cloud.enabled || !this.cloud.credentials()) {
      // not registered (any more): nothing from a hub applies
      if (this.entries.length) this.replace(0, []);
      return;
    }
    try {
      const res = await this.cloud.call('GET', `/api/v1/device/blocklist?since=${this.version}`);
      if (!res.ok) throw new Error(`the hub answered the block list fetch with HTTP ${res.status}`);
      const body = (await res.json()) as { version: number; changed: boolean; entries: BlockListEntry[] };
      if (body.changed) {
        this.replace(body.version, body.entries);
        this.log.info(`hub block list version ${body.version}: ${body.entries.length} entr(ies) active`);
      }
      this.health_.lastFetch = new Date().toISOString();
      this.health_.lastError = null;
    } catch (err) {
      if (!this.health_.lastError) this.log.warning(`hub block list: ${(err as Error).message}`);
      this.health_.lastError = (err as Error).message;
    }
  }

  /** The entry that blocks this address for mail in this direction, or null. */
  blocked(address: string, direction: 'incoming' | 'outgoing'): BlockListEntry | null {
    return this.entries.length ? blockedBy(this.entries, address, direction) : null;
  }

  health(): HubBlockListHealth {
    return { version: this.version, entries: this.entries.length, ...this.health_ };
  }

  private replace(version: number, entries: BlockListEntry[]): void {
    this.version = version;
    this.entries = entries.map((e) => ({
      id: e.id,
      kind: e.kind,
      value: e.value,
      direction: e.direction,
      reason: e.reason,
      expiresAt: e.expiresAt,
    }));
    this.store.setMeta(META, JSON.stringify({ version, entries: this.entries }));
  }
}
