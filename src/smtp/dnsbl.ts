// DNS blocklists and allowlists (RFC 5782): is the client's address listed in a zone? The query is the
// address reversed (IPv4 octets, IPv6 nibbles, §2.1 / §2.4) under the zone, type A; an answer in
// 127.0.0.0/8 means listed, NXDOMAIN means not. Answers are cached; a query that fails or times out is
// not an answer ("unknown"), and the HAT treats it as not listed (fail open, logged by the session).
import { isIPv4, isIPv6 } from 'node:net';
import { DnsTimeoutError, type DnsClient } from '../dns/resolver.ts';

export interface DnsListAnswer {
  /** the A records returned (127.0.0.x), [] when not listed */
  codes: string[];
  /** the answer came from the cache */
  cached: boolean;
}

export type DnsListResult = DnsListAnswer | { error: string; timeout: boolean };

/** The RFC 5782 query name of an address under a zone; null for something that is not an address. */
export function dnsListQueryName(rawIp: string, zone: string): string | null {
  const ip = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(rawIp)?.[1] ?? rawIp;
  if (isIPv4(ip)) return `${ip.split('.').reverse().join('.')}.${zone}`;
  if (!isIPv6(ip)) return null;
  return `${expandIPv6(ip).split('').reverse().join('.')}.${zone}`;
}

/** 32 hex digits of an IPv6 address, no colons ("::1" → "000…0001"). */
function expandIPv6(ip: string): string {
  let text = ip.toLowerCase();
  // a trailing embedded IPv4 ("::ffff:1.2.3.4" not caught above, "64:ff9b::1.2.3.4")
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)?.[1];
  if (v4) {
    const o = v4.split('.').map(Number);
    text = text.slice(0, -v4.length) + `${((o[0] << 8) | o[1]).toString(16)}:${((o[2] << 8) | o[3]).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, null];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === null ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.map((g) => g.padStart(4, '0')).join('');
}

/**
 * Does an answer count as a listing? With returnCodes, only those; without, any 127.0.0.0/8 answer
 * except 127.255.255.0/24, which list operators use for "your query was refused" (Spamhaus: public
 * resolver, over the limit), not for a listing.
 */
export function listedCodes(codes: readonly string[], returnCodes: readonly string[] | undefined): string[] {
  if (returnCodes) return codes.filter((c) => returnCodes.includes(c));
  return codes.filter((c) => c.startsWith('127.') && !c.startsWith('127.255.255.'));
}

const MIN_TTL_MS = 30_000;
const MAX_ENTRIES = 50_000;

/** Lookups in DNS lists with a cache shared by every listener; concurrent identical queries share one. */
export class DnsLists {
  private readonly client: DnsClient;
  private readonly cacheTtlMs: number;
  private readonly cache = new Map<string, { codes: string[]; expires: number }>();
  private readonly inflight = new Map<string, Promise<DnsListResult>>();

  constructor(client: DnsClient, cacheTtlMs: number) {
    this.client = client;
    this.cacheTtlMs = cacheTtlMs;
  }

  get timeoutMs(): number {
    return this.client.timeoutMs;
  }

  lookup(ip: string, zone: string): Promise<DnsListResult> {
    const name = dnsListQueryName(ip, zone);
    if (!name) return Promise.resolve({ codes: [], cached: false });
    const hit = this.cache.get(name);
    if (hit && hit.expires > Date.now()) return Promise.resolve({ codes: hit.codes, cached: true });
    const running = this.inflight.get(name);
    if (running) return running;
    const query = this.query(name).finally(() => this.inflight.delete(name));
    this.inflight.set(name, query);
    return query;
  }

  private async query(name: string): Promise<DnsListResult> {
    try {
      const records = await this.client.resolve4(name);
      const codes = records.map((r) => r.address).sort();
      // the record's TTL when shorter than the configured one (but not so short that every connection asks)
      const ttlMs = records.length
        ? Math.min(this.cacheTtlMs, Math.max(MIN_TTL_MS, Math.min(...records.map((r) => r.ttl)) * 1000))
        : this.cacheTtlMs;
      if (this.cache.size >= MAX_ENTRIES) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(name, { codes, expires: Date.now() + ttlMs });
      return { codes, cached: false };
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      return { error: e.code ? `${e.code}` : e.message, timeout: err instanceof DnsTimeoutError };
    }
  }
}
