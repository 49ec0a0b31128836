// Host access table (DESIGN §3.1): ordered sender groups, first match wins. IP and CIDR entries are
// answered synchronously; reverse-DNS suffixes and DNS lists (dnsbl / dnswl, src/smtp/dnsbl.ts) need
// lookups, which are bounded by a timeout and cached so that DNS can never hold a session. A DNS list
// that does not answer in time is "not listed" (fail open: a broken list must not refuse all mail).
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { promises as dns } from 'node:dns';
import type { ListenerConfig, SenderGroup } from '../config/schema.ts';
import type { DnsListCondition } from '../config/directory-schema.ts';
import { listedCodes, type DnsLists } from './dnsbl.ts';

export interface HatMatch {
  group: SenderGroup | null;
  /** the group name, or "(default)" when no group matched */
  name: string;
  action: 'accept' | 'relay' | 'reject' | 'tempfail';
  /** the DNS list condition that put the client in the group: "dnsbl bl.example 127.0.0.2" */
  listing?: string;
}

interface CompiledList {
  kind: 'dnsbl' | 'dnswl';
  zone: string;
  returnCodes: string[] | undefined;
}

interface CompiledGroup {
  group: SenderGroup;
  ips: BlockList;
  suffixes: string[];
  lists: CompiledList[];
  all: boolean;
}

/** What the DNS lists said about a client: every listing (for tracking) and what went wrong. */
export interface Reputation {
  /** "dnsbl bl.example 127.0.0.2" for each zone that lists the client (with the codes that count) */
  listings: string[];
  /** "dnsbl bl.example: no answer within 2000 ms (not listed: fail open)" */
  notes: string[];
}

export type ReverseResolver = (ip: string) => Promise<string[]>;

const rdnsCache = new Map<string, { names: string[]; at: number }>();
const RDNS_TTL_MS = 10 * 60_000;

export class HostAccessTable {
  private readonly groups: CompiledGroup[];
  private readonly defaultAction: 'accept' | 'reject' | 'tempfail';
  private readonly resolver: ReverseResolver;
  private readonly dnsLists: DnsLists | null;
  readonly rdnsTimeoutMs: number;

  constructor(
    listener: ListenerConfig,
    resolver: ReverseResolver = (ip) => dns.reverse(ip),
    rdnsTimeoutMs = 1500,
    dnsLists: DnsLists | null = null,
  ) {
    this.defaultAction = listener.defaultAction;
    this.resolver = resolver;
    this.rdnsTimeoutMs = rdnsTimeoutMs;
    this.dnsLists = dnsLists;
    this.groups = listener.hat.map((group) => {
      const ips = new BlockList();
      const suffixes: string[] = [];
      const lists: CompiledList[] = [];
      let all = false;
      for (const m of group.match) {
        if (typeof m === 'object') lists.push(compileList(m));
        else if (m === 'ALL') all = true;
        else if (m.startsWith('.')) suffixes.push(m.toLowerCase());
        else {
          const [ip, bits] = m.split('/');
          const type = isIPv4(ip) ? 'ipv4' : 'ipv6';
          if (bits !== undefined) ips.addSubnet(ip, Number(bits), type);
          else ips.addAddress(ip, type);
        }
      }
      return { group, ips, suffixes, lists, all };
    });
    if (this.groups.some((g) => g.lists.length) && !dnsLists)
      throw new Error(`listener ${listener.name}: DNS list conditions need a DNS client`);
  }

  private static normalise(ip: string): { ip: string; type: 'ipv4' | 'ipv6' } {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
    if (mapped) return { ip: mapped[1], type: 'ipv4' };
    return { ip, type: isIPv6(ip) ? 'ipv6' : 'ipv4' };
  }

  private result(g: CompiledGroup | null): HatMatch {
    if (!g) return { group: null, name: '(default)', action: this.defaultAction };
    return { group: g.group, name: g.group.name, action: g.group.action };
  }

  /**
   * Classifies without DNS: returns the match when every group before it can be decided from the
   * address alone, or null when a reverse-DNS or DNS list group must be consulted first.
   */
  classifySync(rawIp: string): HatMatch | null {
    const { ip, type } = HostAccessTable.normalise(rawIp);
    for (const g of this.groups) {
      if (g.all || g.ips.check(ip, type)) return this.result(g);
      if (g.suffixes.length || g.lists.length) return null;
    }
    return this.result(null);
  }

  /**
   * Full classification; the reverse lookup and the DNS list queries (when needed) run at once, are
   * cached and bounded by their timeouts. A client listed on any dnswl zone of this listener matches
   * no dnsbl condition, wherever the groups stand: an allowlist listing wins.
   */
  async classify(rawIp: string): Promise<{ match: HatMatch; rdns: string | null; reputation: Reputation }> {
    const reputation: Reputation = { listings: [], notes: [] };
    const quick = this.classifySync(rawIp);
    if (quick) return { match: quick, rdns: null, reputation };
    const { ip, type } = HostAccessTable.normalise(rawIp);
    // only the groups after the last one the address alone decides can matter
    const first = this.groups.findIndex((g) => g.all || g.ips.check(ip, type));
    const pending = first < 0 ? this.groups : this.groups.slice(0, first);
    const wantRdns = pending.some((g) => g.suffixes.length);
    const [names, listed] = await Promise.all([
      wantRdns ? this.reverse(rawIp) : Promise.resolve([] as string[]),
      this.queryLists(ip, pending, reputation),
    ]);
    const allowlisted = [...listed.keys()].some((k) => k.startsWith('dnswl '));
    const rdns = names[0] ?? null;
    for (const g of this.groups) {
      if (g.all || g.ips.check(ip, type)) return { match: this.result(g), rdns, reputation };
      if (g.suffixes.some((s) => names.some((n) => n.toLowerCase().endsWith(s))))
        return { match: this.result(g), rdns, reputation };
      for (const l of g.lists) {
        const codes = listedCodes(listed.get(`${l.kind} ${l.zone}`) ?? [], l.returnCodes);
        if (!codes.length || (l.kind === 'dnsbl' && allowlisted)) continue;
        return { match: { ...this.result(g), listing: `${l.kind} ${l.zone} ${codes.join(',')}` }, rdns, reputation };
      }
    }
    return { match: this.result(null), rdns, reputation };
  }

  /**
   * Asks every zone these groups name (and every allowlist of the listener, whose listing exempts
   * from blocklists); returns "kind zone" → the codes answered. Listings and failures go to reputation.
   */
  private async queryLists(
    ip: string,
    groups: CompiledGroup[],
    reputation: Reputation,
  ): Promise<Map<string, string[]>> {
    const lists = new Map<string, CompiledList>();
    const wanted = groups.flatMap((g) => g.lists);
    if (wanted.some((l) => l.kind === 'dnsbl'))
      for (const g of this.groups) for (const l of g.lists) if (l.kind === 'dnswl') wanted.push(l);
    for (const l of wanted) lists.set(`${l.kind} ${l.zone}`, l);
    const out = new Map<string, string[]>();
    if (!lists.size || !this.dnsLists) return out;
    const dnsLists = this.dnsLists;
    await Promise.all(
      [...lists].map(async ([key, l]) => {
        const r = await dnsLists.lookup(ip, l.zone);
        if ('error' in r) {
          reputation.notes.push(
            r.timeout
              ? `${key}: no answer within ${dnsLists.timeoutMs} ms (not listed: fail open)`
              : `${key}: lookup failed (${r.error}; not listed: fail open)`,
          );
          return;
        }
        out.set(key, r.codes);
        // every answer in 127/8 is recorded; whether it counts is each condition's returnCodes
        const codes = listedCodes(r.codes, undefined);
        if (codes.length) reputation.listings.push(`${key} ${codes.join(',')}`);
      }),
    );
    reputation.listings.sort();
    return out;
  }

  private async reverse(ip: string): Promise<string[]> {
    const hit = rdnsCache.get(ip);
    if (hit && Date.now() - hit.at < RDNS_TTL_MS) return hit.names;
    let timer: NodeJS.Timeout | undefined;
    const names = await Promise.race([
      this.resolver(ip).catch(() => [] as string[]),
      new Promise<string[]>((resolve) => {
        timer = setTimeout(() => resolve([]), this.rdnsTimeoutMs);
      }),
    ]);
    clearTimeout(timer);
    // Only hostnames that look like hostnames: a PTR is controlled by whoever owns the address.
    const clean = names.filter((n) => /^[a-z0-9.-]{1,253}$/i.test(n));
    rdnsCache.set(ip, { names: clean, at: Date.now() });
    if (rdnsCache.size > 10_000) rdnsCache.delete(rdnsCache.keys().next().value!);
    return clean;
  }
}

function compileList(c: DnsListCondition): CompiledList {
  return 'dnsbl' in c
    ? { kind: 'dnsbl', zone: c.dnsbl, returnCodes: c.returnCodes }
    : { kind: 'dnswl', zone: c.dnswl, returnCodes: c.returnCodes };
}
