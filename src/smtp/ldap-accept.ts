// LDAP accept queries (issue 15): does a recipient exist in the directory? The configured filter gets
// the address, its local part and its domain, each escaped as RFC 4515 §3 says, so that a recipient such
// as "*)(uid=*" is a value and never filter syntax. Answers are cached (found and not found apart); one
// connection per server, bound once and re-bound after a reconnect; servers are tried in order.
import { Client, SizeLimitExceededError } from 'ldapts';
import { parseDuration } from '../config/schema.ts';
import type { LdapQueryConfig } from '../config/directory-schema.ts';

export type RecipientAnswer =
  | { result: 'known' | 'unknown'; cached: boolean }
  /** no server answered: the listener's failureMode decides */
  | { result: 'unavailable'; error: string };

/**
 * RFC 4515 §3: in an assertion value, "*", "(", ")", "\" and NUL are written as a backslash and two hex
 * digits. Everything else (UTF-8 included) may stand as it is.
 */
export function escapeFilterValue(value: string): string {
  return value.replace(/[*()\\\0]/g, (c) => '\\' + c.charCodeAt(0).toString(16).padStart(2, '0'));
}

/** The filter for one address: {a} the address, {u} its local part, {d} its domain (lower case), escaped. */
export function recipientFilter(template: string, address: string): string {
  const at = address.lastIndexOf('@');
  const parts: Record<string, string> = {
    a: address,
    u: at < 0 ? address : address.slice(0, at),
    d: at < 0 ? '' : address.slice(at + 1).toLowerCase(),
  };
  return template.replace(/\{([aud])\}/g, (_, k: string) => escapeFilterValue(parts[k]));
}

interface Server {
  url: string;
  client: Client;
  /** the connect and bind in progress, shared by every lookup that needs it */
  binding: Promise<void> | null;
}

export class LdapAcceptQuery {
  readonly name: string;
  readonly failureMode: 'tempfail' | 'accept';
  private readonly cfg: LdapQueryConfig;
  private readonly timeoutMs: number;
  private readonly positiveTtlMs: number;
  private readonly negativeTtlMs: number;
  private readonly servers: Server[];
  private readonly cache = new Map<string, { known: boolean; expires: number }>();
  private readonly inflight = new Map<string, Promise<RecipientAnswer>>();
  /** the server that answered last: tried first next time */
  private preferred = 0;

  constructor(cfg: LdapQueryConfig) {
    this.cfg = cfg;
    this.name = cfg.name;
    this.failureMode = cfg.failureMode;
    this.timeoutMs = parseDuration(cfg.timeout);
    this.positiveTtlMs = parseDuration(cfg.cache.positiveTtl);
    this.negativeTtlMs = parseDuration(cfg.cache.negativeTtl);
    this.servers = cfg.urls.map((url) => ({
      url,
      client: new Client({
        url,
        timeout: this.timeoutMs,
        connectTimeout: this.timeoutMs,
        tlsOptions: url.startsWith('ldaps:') ? { rejectUnauthorized: cfg.tlsRejectUnauthorized } : undefined,
      }),
      binding: null,
    }));
  }

  /** Is `address` in the directory? Cached answers first; concurrent questions about one address share a lookup. */
  check(address: string): Promise<RecipientAnswer> {
    const key = address.toLowerCase();
    const hit = this.cache.get(key);
    if (hit && hit.expires > Date.now())
      return Promise.resolve({ result: hit.known ? 'known' : 'unknown', cached: true });
    const running = this.inflight.get(key);
    if (running) return running;
    const lookup = this.lookup(address)
      .then((known): RecipientAnswer => {
        this.remember(key, known);
        return { result: known ? 'known' : 'unknown', cached: false };
      })
      .catch((err: Error): RecipientAnswer => ({ result: 'unavailable', error: err.message }))
      .finally(() => this.inflight.delete(key));
    this.inflight.set(key, lookup);
    return lookup;
  }

  async close(): Promise<void> {
    await Promise.all(this.servers.map((s) => (s.client.isConnected ? s.client.unbind().catch(() => {}) : undefined)));
  }

  private remember(key: string, known: boolean): void {
    const max = this.cfg.cache.maxEntries;
    if (max === 0) return;
    this.cache.delete(key);
    while (this.cache.size >= max) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, { known, expires: Date.now() + (known ? this.positiveTtlMs : this.negativeTtlMs) });
  }

  /** Servers in order, starting with the one that answered last; the first answer decides. */
  private async lookup(address: string): Promise<boolean> {
    const filter = recipientFilter(this.cfg.filter, address);
    const errors: string[] = [];
    for (let i = 0; i < this.servers.length; i++) {
      const n = (this.preferred + i) % this.servers.length;
      const server = this.servers[n];
      try {
        const found = await this.search(server, filter);
        this.preferred = n;
        return found;
      } catch (err) {
        errors.push(`${server.url}: ${oneLine(err)}`);
      }
    }
    throw new Error(errors.join('; '));
  }

  private async search(server: Server, filter: string): Promise<boolean> {
    if (!server.client.isBound) {
      server.binding ??= server.client
        // an anonymous simple bind (RFC 4513 §5.1.1) when no bindDn is set
        .bind(this.cfg.bindDn ?? '', this.cfg.bindPassword ?? '')
        .catch(async (err: unknown) => {
          // a refused bind leaves the connection unauthenticated: start again next time
          await server.client.unbind().catch(() => {});
          throw err;
        })
        .finally(() => {
          server.binding = null;
        });
      await server.binding;
    }
    try {
      const { searchEntries } = await server.client.search(this.cfg.base, {
        scope: this.cfg.scope,
        filter,
        // two: one is enough to know, and a filter that matches many entries still answers quickly
        sizeLimit: 2,
        timeLimit: Math.max(1, Math.ceil(this.timeoutMs / 1000)),
        // "1.1": no attributes (RFC 4511 §4.5.1.8)
        attributes: ['1.1'],
      });
      return searchEntries.length > 0;
    } catch (err) {
      if (err instanceof SizeLimitExceededError) return true;
      // an operation that timed out leaves the connection in doubt: a new one next time
      await server.client.unbind().catch(() => {});
      throw err;
    }
  }
}

function oneLine(err: unknown): string {
  const text = err instanceof Error ? `${err.name === 'Error' ? '' : err.name + ': '}${err.message}` : String(err);
  return text.replace(/\s+/g, ' ').slice(0, 300);
}
