// Keeps the active outbreak rule bundle current (DESIGN §4.2): polls the feed, verifies the Ed25519
// signature, persists the bundle so it survives restarts, and reports changes (for re-evaluation of
// held mail and alerts). A bundle that fails verification is rejected and the previous one stays.
import {
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  openSync,
  fsyncSync,
  closeSync,
} from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/schema.ts';
import { parseByteSize, parseDuration } from '../config/schema.ts';
import type { Store } from '../store/db.ts';
import { verifySignedBundle } from './bundle.ts';
import { fetchBundle } from './feed.ts';
import type { OutbreakEngine } from './engine.ts';
import type { Rule } from './rules.ts';

export interface RuleChange {
  previous: { version: number; rules: Rule[] } | null;
  next: { version: number; rules: Rule[] } | null;
  reason: 'update' | 'flush';
}

export interface UpdateResult {
  status: 'updated' | 'unchanged' | 'failed' | 'no_feed';
  version: number | null;
  ruleCount: number;
  error?: { code: string; message: string };
}

export interface RuleUpdaterOptions {
  config: Config;
  configDir: string;
  dataDir: string;
  store: Store;
  engine: OutbreakEngine;
  onChange: (change: RuleChange) => void;
  onFailure: (error: { code: string; message: string }) => void;
  log: (line: string) => void;
  /**
   * Rules published by the hub (xdr/hub-rules.ts), used when no ruleFeed is configured: the signed
   * bundle's text and the key it must be signed with (pinned at registration). Null: not registered.
   */
  hubSource?: () => { fetch(): Promise<string>; publicKey: string } | null;
}

export class RuleUpdater {
  private readonly o: RuleUpdaterOptions;
  private readonly file: string;
  private rules: Rule[] = [];
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<UpdateResult> | null = null;
  private queued: Promise<UpdateResult> | null = null;

  constructor(o: RuleUpdaterOptions) {
    this.o = o;
    const dir = path.join(o.dataDir, 'rules');
    mkdirSync(dir, { recursive: true });
    this.file = path.join(dir, 'bundle.json');
  }

  private get feed(): { url?: string; dir?: string } | null {
    const f = this.o.config.outbreakFilters.ruleFeed;
    if (f.url) return { url: f.url };
    if (f.dir) return { dir: path.resolve(this.o.configDir, f.dir) };
    return null;
  }

  /** Where bundles come from now: the configured feed, else the hub's rules, else nowhere. */
  private source(): { fetch(): Promise<string>; publicKey: string } | null {
    const f = this.o.config.outbreakFilters.ruleFeed;
    const feed = this.feed;
    if (feed)
      return {
        fetch: () => fetchBundle(feed, { timeoutMs: parseDuration(f.timeout), maxBytes: parseByteSize(f.maxSize) }),
        publicKey: f.publicKey!,
      };
    return this.o.hubSource?.() ?? null;
  }

  /** Installs the persisted bundle (verified again: the file could have been altered on disk). */
  loadPersisted(): void {
    if (!existsSync(this.file)) return;
    const key = this.source()?.publicKey;
    if (!key) {
      this.o.log('outbreak rules: a persisted bundle exists but no ruleFeed.publicKey is configured; not loaded');
      return;
    }
    const r = verifySignedBundle(readFileSync(this.file, 'utf8'), key, {});
    if (!r.ok) {
      this.o.log(`outbreak rules: persisted bundle rejected (${r.code}: ${r.message})`);
      return;
    }
    this.rules = r.bundle.rules;
    this.o.engine.install(r.bundle);
    this.o.log(`outbreak rules: version ${r.bundle.version} loaded (${r.bundle.rules.length} rules)`);
  }

  start(): void {
    if (!this.feed) return;
    const every = parseDuration(this.o.config.outbreakFilters.ruleUpdateInterval);
    const tick = (): void => {
      void this.update().finally(() => {
        if (this.timer) {
          this.timer = setTimeout(tick, every);
          this.timer.unref();
        }
      });
    };
    this.timer = setTimeout(tick, 0);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /**
   * Fetches, verifies and installs the feed's bundle. A caller arriving while a run is under way gets
   * the run after it (shared by every caller that arrives meanwhile): the run in progress may have read
   * the feed before the change this caller wants to see.
   */
  update(): Promise<UpdateResult> {
    if (this.running) {
      this.queued ??= this.running
        .catch(() => undefined)
        .then(() => {
          this.queued = null;
          return this.update();
        });
      return this.queued;
    }
    // Resolves once what the update recorded (version, times, errors) is committed and readable.
    this.running = this.doUpdate()
      .then(async (r) => {
        await this.o.store.committed();
        return r;
      })
      .finally(() => {
        this.running = null;
      });
    return this.running;
  }

  private async doUpdate(): Promise<UpdateResult> {
    const source = this.source();
    const current = this.o.engine.bundle;
    if (!source) return { status: 'no_feed', version: current?.version ?? null, ruleCount: current?.ruleCount ?? 0 };
    this.o.store.setMeta('outbreak.last_check', String(Date.now()));
    let text: string;
    try {
      text = await source.fetch();
    } catch (err) {
      return this.failed({
        code: `feed_${(err as { code?: string }).code ?? 'error'}`,
        message: (err as Error).message,
      });
    }
    const highest = Number(this.o.store.getMeta('outbreak.highest_version') ?? 0);
    const r = verifySignedBundle(text, source.publicKey, {
      minVersion: highest || undefined,
      activeDigest: this.o.store.getMeta('outbreak.highest_digest') || undefined,
    });
    if (!r.ok) return this.failed({ code: r.code, message: r.message });
    const b = r.bundle;
    if (current && current.version === b.version) {
      this.o.store.setMeta('outbreak.last_error', '');
      return { status: 'unchanged', version: b.version, ruleCount: current.ruleCount };
    }
    writeDurably(this.file, text);
    const previous = current ? { version: current.version, rules: this.rules } : null;
    this.rules = b.rules;
    this.o.engine.install(b);
    const now = String(Date.now());
    this.o.store.setMeta('outbreak.updated_at', now);
    if (b.version >= highest) {
      this.o.store.setMeta('outbreak.highest_version', String(b.version));
      this.o.store.setMeta('outbreak.highest_digest', r.digest);
    }
    this.o.store.setMeta('outbreak.last_error', '');
    this.o.log(`outbreak rules: version ${b.version} installed (${b.rules.length} rules)`);
    this.o.onChange({ previous, next: { version: b.version, rules: b.rules }, reason: 'update' });
    return { status: 'updated', version: b.version, ruleCount: b.rules.length };
  }

  private failed(error: { code: string; message: string }): UpdateResult {
    this.o.store.setMeta('outbreak.last_error', `${new Date().toISOString()} ${error.code}: ${error.message}`);
    this.o.log(`outbreak rules: update failed (${error.code}: ${error.message}); the active rules stay`);
    this.o.onFailure(error);
    const current = this.o.engine.bundle;
    return { status: 'failed', version: current?.version ?? null, ruleCount: current?.ruleCount ?? 0, error };
  }

  /** Clears the cached rules (`breakwater outbreak flush`); the next update fetches them again. */
  flush(): { removedVersion: number | null } {
    const current = this.o.engine.bundle;
    rmSync(this.file, { force: true });
    const previous = current ? { version: current.version, rules: this.rules } : null;
    this.rules = [];
    this.o.engine.install(null);
    this.o.store.setMeta('outbreak.updated_at', String(Date.now()));
    this.o.log('outbreak rules: cache flushed by administrator');
    if (previous) this.o.onChange({ previous, next: null, reason: 'flush' });
    return { removedVersion: current?.version ?? null };
  }

  status(): Record<string, unknown> {
    const b = this.o.engine.bundle;
    const meta = (k: string) => this.o.store.getMeta(k) || null;
    const time = (k: string) => {
      const v = meta(k);
      return v ? new Date(Number(v)).toISOString() : null;
    };
    const feed = this.feed;
    return {
      outbreakRules: b
        ? { version: b.version, published: b.published, rules: b.ruleCount }
        : { version: null, published: null, rules: 0 },
      adaptiveRules: { enabled: this.o.engine.adaptive },
      feed: feed ? (feed.url ? { url: feed.url } : { dir: feed.dir }) : null,
      lastUpdate: time('outbreak.updated_at'),
      lastCheck: time('outbreak.last_check'),
      lastError: meta('outbreak.last_error'),
    };
  }

  activeRules(): Rule[] {
    return this.rules;
  }
}

/** Write to a temp file, fsync, rename, fsync the directory: a crash leaves the old or the new file. */
function writeDurably(file: string, text: string): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, text);
  const fd = openSync(tmp, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  const dfd = openSync(path.dirname(file), 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}
