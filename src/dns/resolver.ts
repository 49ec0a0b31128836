// The DNS client every subsystem shares, built from the config's `dns` section (src/config/dns-schema.ts):
// the configured servers (or the system's), tries, and one overall deadline per query, so that a silent
// server can never hold a caller longer than `dns.timeout`.
import { Resolver } from 'node:dns/promises';
import { parseDuration } from '../config/schema.ts';
import type { DnsConfig } from '../config/dns-schema.ts';

export interface DnsClientOptions {
  /** "ip" or "ip:port" ("[v6]:port"); empty: the system's resolvers */
  servers: readonly string[];
  /** overall deadline of one query, ms */
  timeoutMs: number;
  tries: number;
}

/** The query had no answer within the deadline (or every server failed to answer). */
export class DnsTimeoutError extends Error {
  readonly code = 'ETIMEOUT';
}

/** Node's answer codes for "the name (or that record type) does not exist": a definite answer. */
const NO_SUCH_NAME = new Set(['ENOTFOUND', 'ENODATA', 'NXDOMAIN']);

export class DnsClient {
  /** node:dns's resolver on the configured servers, for libraries that take one (mailauth, …) */
  readonly resolver: Resolver;
  readonly timeoutMs: number;

  constructor(opts: DnsClientOptions) {
    this.timeoutMs = opts.timeoutMs;
    // c-ares' own timeout is per try and doubles; the deadline below bounds the whole query
    const perTry = Math.max(50, Math.floor(opts.timeoutMs / opts.tries));
    this.resolver = new Resolver({ timeout: perTry, tries: opts.tries });
    if (opts.servers.length) this.resolver.setServers([...opts.servers]);
  }

  static fromConfig(cfg: DnsConfig): DnsClient {
    return new DnsClient({ servers: cfg.servers, timeoutMs: parseDuration(cfg.timeout), tries: cfg.tries });
  }

  /**
   * A records of `name` with their TTL; [] when the name or the record type does not exist
   * (NXDOMAIN, NODATA). Throws DnsTimeoutError past the deadline, other errors (SERVFAIL, REFUSED) as they are.
   */
  async resolve4(name: string): Promise<Array<{ address: string; ttl: number }>> {
    return this.bounded(
      this.resolver.resolve4(name, { ttl: true }).catch((err: NodeJS.ErrnoException) => {
        if (err.code && NO_SUCH_NAME.has(err.code)) return [];
        throw err;
      }),
    );
  }

  /**
   * TXT records of `name`, each as its strings joined (RFC 7208 §3.3, RFC 6376 §3.6.2.2); [] when the
   * name or the record type does not exist. Same deadline and errors as resolve4.
   */
  async resolveTxt(name: string): Promise<string[]> {
    return this.bounded(
      this.resolver.resolveTxt(name).then(
        (records) => records.map((r) => r.join('')),
        (err: NodeJS.ErrnoException) => {
          if (err.code && NO_SUCH_NAME.has(err.code)) return [];
          throw err;
        },
      ),
    );
  }

  /** PTR names of an address; [] when there are none. Same deadline and errors as resolve4. */
  async reverse(ip: string): Promise<string[]> {
    return this.bounded(
      this.resolver.reverse(ip).catch((err: NodeJS.ErrnoException) => {
        if (err.code && NO_SUCH_NAME.has(err.code)) return [];
        throw err;
      }),
    );
  }

  private async bounded<T>(query: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DnsTimeoutError(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    try {
      return await Promise.race([
        query.catch((err: NodeJS.ErrnoException) => {
          if (err.code === 'ETIMEOUT' || err.code === 'ECONNREFUSED') throw new DnsTimeoutError(err.message);
          throw err;
        }),
        deadline,
      ]);
    } finally {
      clearTimeout(timer);
      // a query that lost the race settles later; its rejection is not an unhandled one
      query.catch(() => {});
    }
  }
}
