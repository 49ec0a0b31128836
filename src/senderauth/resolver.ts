// The DNS resolver sender authentication uses (DESIGN §7): node:dns on the configured servers with a
// per-query timeout, a cache of answers (records, NXDOMAIN and no-data; never failures), one query in
// flight per question, a per-message lookup budget and deadline, and a "servers down" state so that a
// gateway without DNS (the offline quick start) answers temperror at once instead of waiting on every
// message. Errors carry node's codes: ENOTFOUND / ENODATA are definite answers (RFC 7208 "none",
// DKIM "no key"); everything else (ETIMEOUT, SERVFAIL, the budget) is a temporary error for mailauth.
import { Resolver } from 'node:dns/promises';
import { parseDuration } from '../config/schema.ts';

export interface AuthResolverOptions {
  /** "ip" or "ip:port"; empty: the system's resolvers */
  servers: readonly string[];
  /** one query's deadline (all tries), ms */
  timeoutMs: number;
  tries: number;
  /** 0: no cache */
  cacheTtlMs: number;
  cacheSize: number;
  /** consecutive timeouts after which the servers count as down; 0: never */
  downAfter: number;
  /** how long "down" lasts before one query probes again, ms */
  downProbeMs?: number;
}

/** What mailauth calls: (name, rrtype) → records, like dns.promises.resolve. */
export type MessageResolver = ((name: string, type: string) => Promise<unknown>) & {
  /** lookups this message asked for (cache hits included) */
  lookups(): number;
  /** the budget ran out (some lookups were refused) */
  exhausted(): boolean;
};

interface Cached {
  expires: number;
  value?: unknown;
  code?: string;
}

const DEFINITE = new Set(['ENOTFOUND', 'ENODATA']);
const TYPES = new Set(['A', 'AAAA', 'TXT', 'MX', 'PTR', 'CNAME', 'NS']);

export class DnsError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

export class AuthResolver {
  private readonly resolver: Resolver;
  private readonly opts: Required<AuthResolverOptions>;
  private readonly cache = new Map<string, Cached>();
  private readonly inflight = new Map<string, Promise<unknown>>();
  private consecutiveTimeouts = 0;
  private downUntil = 0;
  /** counters for `breakwater status` and tests */
  readonly stats = { queries: 0, cacheHits: 0, failures: 0, refusedDown: 0 };

  constructor(opts: AuthResolverOptions) {
    this.opts = { downProbeMs: 5000, ...opts };
    // c-ares' timeout is per try (and grows); the race in ask() bounds the whole query
    const perTry = Math.max(50, Math.floor(opts.timeoutMs / opts.tries));
    this.resolver = new Resolver({ timeout: perTry, tries: opts.tries });
    if (opts.servers.length) this.resolver.setServers([...opts.servers]);
  }

  /** The servers count as down (too many timeouts in a row): lookups fail at once. */
  get down(): boolean {
    return this.downUntil > Date.now();
  }

  /**
   * A resolver for one message: at most `budget` lookups, none after `deadline` (epoch ms). Past
   * either, a lookup is a temporary error (ETIMEOUT / EBUDGET), never a pass and never a crash.
   */
  forMessage(budget: number, deadline: number): MessageResolver {
    let n = 0;
    let over = false;
    const fn = async (name: string, type: string): Promise<unknown> => {
      n++;
      if (n > budget) {
        over = true;
        throw new DnsError('EBUDGET', `DNS lookup budget of ${budget} per message exhausted`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new DnsError('ETIMEOUT', 'sender authentication time limit reached');
      return this.lookup(String(name), String(type).toUpperCase(), left);
    };
    return Object.assign(fn, { lookups: () => n, exhausted: () => over });
  }

  /** One question, from the cache or the servers; `maxWaitMs` bounds the wait of this caller. */
  async lookup(name: string, type: string, maxWaitMs = this.opts.timeoutMs): Promise<unknown> {
    if (!TYPES.has(type)) throw new DnsError('ENOTIMP', `record type ${type} is not looked up`);
    const key = `${type} ${name.toLowerCase()}`;
    const hit = this.cache.get(key);
    if (hit) {
      if (hit.expires > Date.now()) {
        this.stats.cacheHits++;
        if (hit.code) throw new DnsError(hit.code, `${hit.code} ${name}`);
        return copy(hit.value);
      }
      this.cache.delete(key);
    }
    let q = this.inflight.get(key);
    if (!q) {
      q = this.ask(name, type, key);
      this.inflight.set(key, q);
      void q.then(
        () => this.inflight.delete(key),
        () => this.inflight.delete(key),
      );
    }
    let timer: NodeJS.Timeout | undefined;
    try {
      const value = await Promise.race([
        q,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new DnsError('ETIMEOUT', `no answer for ${name} within the time left`)),
            maxWaitMs,
          );
        }),
      ]);
      return copy(value);
    } finally {
      clearTimeout(timer);
    }
  }

  private async ask(name: string, type: string, key: string): Promise<unknown> {
    if (this.down) {
      this.stats.refusedDown++;
      throw new DnsError('ETIMEOUT', 'DNS servers not answering (checked again every few seconds)');
    }
    // while down, one query at a time probes; the others keep failing fast until it answers
    if (this.opts.downAfter && this.consecutiveTimeouts >= this.opts.downAfter)
      this.downUntil = Date.now() + this.opts.downProbeMs;
    this.stats.queries++;
    let timer: NodeJS.Timeout | undefined;
    const query = this.resolver.resolve(name, type);
    query.catch(() => {});
    try {
      const value = await Promise.race([
        query,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new DnsError('ETIMEOUT', `no answer for ${name} ${type} within ${this.opts.timeoutMs} ms`)),
            this.opts.timeoutMs,
          );
        }),
      ]);
      this.answered();
      this.store(key, { value });
      return value;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'ESERVFAIL';
      if (DEFINITE.has(code)) {
        this.answered();
        this.store(key, { code });
        throw new DnsError(code, `${code} ${name}`);
      }
      this.stats.failures++;
      if (code === 'ETIMEOUT' || code === 'ECONNREFUSED') {
        this.consecutiveTimeouts++;
        if (this.opts.downAfter && this.consecutiveTimeouts >= this.opts.downAfter)
          this.downUntil = Date.now() + this.opts.downProbeMs;
        throw new DnsError('ETIMEOUT', (err as Error).message);
      }
      // SERVFAIL, REFUSED, bad answers: the server answered, so it is not down
      this.answered();
      throw new DnsError(code, (err as Error).message);
    } finally {
      clearTimeout(timer);
    }
  }

  private answered(): void {
    this.consecutiveTimeouts = 0;
    this.downUntil = 0;
  }

  private store(key: string, entry: Omit<Cached, 'expires'>): void {
    if (!this.opts.cacheTtlMs || !this.opts.cacheSize) return;
    if (this.cache.size >= this.opts.cacheSize) {
      // the oldest entry goes first (Map keeps insertion order)
      const oldest = this.cache.keys().next();
      if (!oldest.done) this.cache.delete(oldest.value);
    }
    this.cache.set(key, { ...entry, expires: Date.now() + this.opts.cacheTtlMs });
  }
}

/** mailauth sorts and edits what it gets: every caller gets its own copy of a cached answer. */
function copy(v: unknown): unknown {
  return Array.isArray(v) ? v.map((x) => (Array.isArray(x) ? [...x] : typeof x === 'object' && x ? { ...x } : x)) : v;
}

/** The resolver of `senderAuth.dns` (servers: its own, else the shared `dns` section's, else the system's). */
export function senderAuthResolver(config: {
  senderAuth: {
    dns: { servers: string[]; timeout: string; tries: number; cacheTtl: string; cacheSize: number; downAfter: number };
  };
  dns?: { servers?: string[] };
}): AuthResolver {
  const d = config.senderAuth.dns;
  return new AuthResolver({
    servers: d.servers.length ? d.servers : (config.dns?.servers ?? []),
    timeoutMs: parseDuration(d.timeout),
    tries: d.tries,
    cacheTtlMs: parseDuration(d.cacheTtl),
    cacheSize: d.cacheSize,
    downAfter: d.downAfter,
  });
}
