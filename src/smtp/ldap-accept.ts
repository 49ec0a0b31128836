// LDAP accept queries (issue 15): does a recipient exist in the directory? The configured filter gets
// the address, its local part and its domain, each escaped as RFC 4515 §3 says, so that a recipient such
// as "*)(uid=*" is a value and never filter syntax. Answers are cached (found and not found apart); one
// connection per server, bound once and re-bound after a reconnect; servers are tried in order. TLS is
// ldaps:// or StartTLS on ldap://, certificates verified unless told otherwise; while no server answers,
// an answer past its TTL still serves for `cache.staleTtl`. The bind password (inline or from
// `bindPasswordFile`) appears in no error and no log line.
import { readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { connect as tlsConnect, rootCertificates, type ConnectionOptions } from 'node:tls';
import { Client, SizeLimitExceededError } from 'ldapts';
import { parseDuration } from '../config/schema.ts';
import type { LdapQueryConfig } from '../config/directory-schema.ts';

export type RecipientAnswer =
  | {
      result: 'known' | 'unknown';
      cached: boolean;
      /** no server answered and this cached answer is past its TTL (within cache.staleTtl): why, and how long ago it expired */
      stale?: { error: string; expiredMs: number };
    }
  /** no server answered: the listener's failureMode decides */
  | { result: 'unavailable'; error: string };

export interface LdapAcceptOptions {
  /** bindPasswordFile and tls.caFile are relative to it (default: the working directory) */
  dataDir?: string;
  /** start-time warnings: a password file others may read, a password sent in clear */
  warn?: (line: string) => void;
}

/**
 * The bind password in `file` (its first line). The warning, when group or others may read the file,
 * names the file and its mode, never the content.
 */
export function loadBindPassword(file: string): { password: string; warning?: string } {
  const password = readFileSync(file, 'utf8').split(/\r?\n/)[0];
  if (!password) throw new Error(`${file}: empty (the bind password is its first line)`);
  const mode = statSync(file).mode & 0o777;
  const warning = mode & 0o077 ? `${file} is readable by others (mode ${mode.toString(8)}); chmod 600 it` : undefined;
  return { password, ...(warning ? { warning } : {}) };
}

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
  /** ldaps:// */
  secure: boolean;
  tlsOptions: ConnectionOptions;
  client: Client;
  /** StartTLS on an ldap:// server (tls.startTls) */
  startTls: boolean;
  /**
   * The StartTLS connection closed (server restart, idle timeout): the client is replaced. ldapts
   * watches only the plain socket under the TLS one, would go on writing to the dead connection and
   * wait out the timeout.
   */
  tlsClosed: boolean;
  /** the connect and bind in progress, shared by every lookup that needs it */
  binding: Promise<void> | null;
}

interface CacheEntry {
  known: boolean;
  expires: number;
}

export class LdapAcceptQuery {
  readonly name: string;
  readonly failureMode: 'tempfail' | 'accept';
  private readonly cfg: LdapQueryConfig;
  private readonly timeoutMs: number;
  private readonly positiveTtlMs: number;
  private readonly negativeTtlMs: number;
  private readonly staleTtlMs: number;
  /** from bindPassword or bindPasswordFile; '' for an anonymous bind */
  private readonly password: string;
  private readonly servers: Server[];
  private readonly cache = new Map<string, CacheEntry>();
  private readonly inflight = new Map<string, Promise<RecipientAnswer>>();
  /** the server that answered last: tried first next time */
  private preferred = 0;

  constructor(cfg: LdapQueryConfig, opts: LdapAcceptOptions = {}) {
    this.cfg = cfg;
    this.name = cfg.name;
    this.failureMode = cfg.failureMode;
    this.timeoutMs = parseDuration(cfg.timeout);
    this.positiveTtlMs = parseDuration(cfg.cache.positiveTtl);
    this.negativeTtlMs = parseDuration(cfg.cache.negativeTtl);
    this.staleTtlMs = parseDuration(cfg.cache.staleTtl);
    const dataDir = opts.dataDir ?? process.cwd();
    const warn = opts.warn ?? (() => {});
    this.password = cfg.bindPassword ?? '';
    if (cfg.bindPasswordFile) {
      const file = path.resolve(dataDir, cfg.bindPasswordFile);
      let loaded;
      try {
        loaded = loadBindPassword(file);
      } catch (err) {
        // readFileSync's message names the file and the reason, never the content
        throw new Error(`directory.ldap ${cfg.name}: bindPasswordFile: ${(err as Error).message}`);
      }
      this.password = loaded.password;
      if (loaded.warning) warn(`directory.ldap ${cfg.name}: bindPasswordFile ${loaded.warning}`);
    }
    const tls = cfg.tls;
    let ca: string[] | undefined;
    try {
      if (tls.caFile) ca = [...rootCertificates, readFileSync(path.resolve(dataDir, tls.caFile), 'utf8')];
    } catch (err) {
      throw new Error(`directory.ldap ${cfg.name}: tls.caFile: ${(err as Error).message}`);
    }
    this.servers = cfg.urls.map((url) => {
      const secure = url.startsWith('ldaps:');
      const host = new URL(url).hostname.replace(/^\[(.*)\]$/, '$1');
      const tlsOptions: ConnectionOptions = {
        rejectUnauthorized: tls.verify,
        ...(ca ? { ca } : {}),
        // the name the certificate must carry; SNI takes host names only (RFC 6066 §3)
        host,
        ...(isIP(host) ? {} : { servername: host }),
      };
      if (this.password && !secure && !tls.startTls)
        warn(`directory.ldap ${cfg.name}: ${url} without tls.startTls: the bind password crosses the network in clear`);
      const server: Server = {
        url,
        secure,
        tlsOptions,
        startTls: !secure && tls.startTls,
        tlsClosed: false,
        binding: null,
        client: null!,
      };
      server.client = this.newClient(server);
      return server;
    });
  }

  private newClient(server: Server): Client {
    server.tlsClosed = false;
    return new Client({
      url: server.url,
      timeout: this.timeoutMs,
      connectTimeout: this.timeoutMs,
      // TLS options on an ldap:// client would make ldapts speak TLS from the first byte: StartTLS gets
      // them at the upgrade instead
      tlsOptions: server.secure ? server.tlsOptions : undefined,
      // only StartTLS calls this on an ldap:// client
      createSecureConnection: server.startTls
        ? (((options: ConnectionOptions) => {
            const socket = tlsConnect(options);
            socket.once('close', () => {
              server.tlsClosed = true;
            });
            return socket;
          }) as typeof tlsConnect)
        : undefined,
    });
  }

  /**
   * Is `address` in the directory? Cached answers first; concurrent questions about one address share a
   * lookup. When no server answers, an expired answer still within cache.staleTtl is used (marked stale).
   */
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
      .catch((err: Error): RecipientAnswer => {
        const error = this.redact(err.message);
        // read again: the entry may have been replaced or evicted while the servers were tried
        const old = this.cache.get(key);
        const expiredMs = old ? Date.now() - old.expires : Infinity;
        if (old && expiredMs < this.staleTtlMs)
          return { result: old.known ? 'known' : 'unknown', cached: true, stale: { error, expiredMs } };
        if (old) this.cache.delete(key);
        return { result: 'unavailable', error };
      })
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
    if (server.tlsClosed && !server.binding) server.client = this.newClient(server);
    if (!server.client.isBound) {
      server.binding ??= this.bind(server)
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

  /** StartTLS first when configured, so that the password never crosses a plain connection. */
  private async bind(server: Server): Promise<void> {
    if (server.startTls) {
      // a copy: ldapts adds the plain socket to the options it is given
      await server.client.startTLS({ ...server.tlsOptions });
      // ldapts reconnects a closed connection without TLS before sending: checked in the same tick as the bind
      if (!server.client.isConnected) throw new Error('the connection closed after StartTLS');
    }
    // an anonymous simple bind (RFC 4513 §5.1.1) when no bindDn is set
    await server.client.bind(this.cfg.bindDn ?? '', this.password);
  }

  /** A server's error text, should it ever echo the password, without it. */
  private redact(text: string): string {
    return this.password ? text.split(this.password).join('***') : text;
  }
}

function oneLine(err: unknown): string {
  const text = err instanceof Error ? `${err.name === 'Error' ? '' : err.name + ': '}${err.message}` : String(err);
  return text.replace(/\s+/g, ' ').slice(0, 300);
}
