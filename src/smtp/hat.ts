// Host access table (DESIGN §3.1): ordered sender groups, first match wins. IP and CIDR entries are
// answered synchronously; reverse-DNS suffixes need a lookup, which is bounded by a timeout and cached
// so that DNS can never hold a session.
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { promises as dns } from 'node:dns';
import type { ListenerConfig, SenderGroup } from '../config/schema.ts';

export interface HatMatch {
  group: SenderGroup | null;
  /** the group name, or "(default)" when no group matched */
  name: string;
  action: 'accept' | 'relay' | 'reject' | 'tempfail';
}

interface CompiledGroup {
  group: SenderGroup;
  ips: BlockList;
  suffixes: string[];
  all: boolean;
}

export type ReverseResolver = (ip: string) => Promise<string[]>;

const rdnsCache = new Map<string, { names: string[]; at: number }>();
const RDNS_TTL_MS = 10 * 60_000;

export class HostAccessTable {
  private readonly groups: CompiledGroup[];
  private readonly defaultAction: 'accept' | 'reject' | 'tempfail';
  private readonly resolver: ReverseResolver;
  readonly rdnsTimeoutMs: number;

  constructor(listener: ListenerConfig, resolver: ReverseResolver = (ip) => dns.reverse(ip), rdnsTimeoutMs = 1500) {
    this.defaultAction = listener.defaultAction;
    this.resolver = resolver;
    this.rdnsTimeoutMs = rdnsTimeoutMs;
    this.groups = listener.hat.map((group) => {
      const ips = new BlockList();
      const suffixes: string[] = [];
      let all = false;
      for (const m of group.match) {
        if (m === 'ALL') all = true;
        else if (m.startsWith('.')) suffixes.push(m.toLowerCase());
        else {
          const [ip, bits] = m.split('/');
          const type = isIPv4(ip) ? 'ipv4' : 'ipv6';
          if (bits !== undefined) ips.addSubnet(ip, Number(bits), type);
          else ips.addAddress(ip, type);
        }
      }
      return { group, ips, suffixes, all };
    });
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
   * address alone, or null when a reverse-DNS group must be consulted first.
   */
  classifySync(rawIp: string): HatMatch | null {
    const { ip, type } = HostAccessTable.normalise(rawIp);
    for (const g of this.groups) {
      if (g.all || g.ips.check(ip, type)) return this.result(g);
      if (g.suffixes.length) return null;
    }
    return this.result(null);
  }

  /** Full classification; the reverse lookup (when needed) is cached and bounded by rdnsTimeoutMs. */
  async classify(rawIp: string): Promise<{ match: HatMatch; rdns: string | null }> {
    const quick = this.classifySync(rawIp);
    if (quick) return { match: quick, rdns: null };
    const names = await this.reverse(rawIp);
    const { ip, type } = HostAccessTable.normalise(rawIp);
    for (const g of this.groups) {
      if (g.all || g.ips.check(ip, type)) return { match: this.result(g), rdns: names[0] ?? null };
      if (g.suffixes.some((s) => names.some((n) => n.toLowerCase().endsWith(s))))
        return { match: this.result(g), rdns: names[0] ?? null };
    }
    return { match: this.result(null), rdns: names[0] ?? null };
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
