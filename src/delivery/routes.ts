// Delivery routes (DESIGN §3.6): recipient domain → ordered targets. Pure functions, no I/O.
import type { Config } from '../config/schema.ts';
import { domainOf } from '../smtp/address.ts';

export type RouteTarget =
  /** lmtp: the peer speaks LMTP (RFC 2033: LHLO, one reply per recipient after the data), e.g. Dovecot */
  { kind: 'smtp'; host: string; port: number; lmtp?: boolean } | { kind: 'mx' } | { kind: 'file'; dir: string };

export function parseTarget(t: string): RouteTarget {
  if (t === 'mx') return { kind: 'mx' };
  if (t.startsWith('file:')) return { kind: 'file', dir: t.slice(5) };
  const m = /^(smtp|lmtp):\/\/(\[[^\]]+\]|[^:/]+):(\d+)$/.exec(t);
  if (!m) throw new Error(`bad route target ${t}`);
  const host = m[2].replace(/^\[|\]$/g, '');
  return m[1] === 'lmtp'
    ? { kind: 'smtp', host, port: Number(m[3]), lmtp: true }
    : { kind: 'smtp', host, port: Number(m[3]) };
}

export interface Route {
  /** a stable key: recipients with the same key share connections and concurrency limits */
  key: string;
  targets: RouteTarget[];
  domain: string;
}

/** Finds the route for a recipient: exact domain, then parent domains ("a.b.test" → "b.test"), then "*". */
export function routeFor(config: Config, address: string): Route {
  const domain = domainOf(address);
  const routes = config.routes;
  let spec: string[] | undefined;
  let d = domain;
  while (d && !spec) {
    spec = routes[d] ?? routes['.' + d];
    const dot = d.indexOf('.');
    d = dot < 0 ? '' : d.slice(dot + 1);
  }
  spec ??= routes['*'] ?? ['mx'];
  const targets = spec.map(parseTarget);
  // MX routes depend on the domain itself; fixed routes are shared by every domain that uses them.
  const key = spec.includes('mx') ? `${spec.join(',')}|${domain}` : spec.join(',');
  return { key, targets, domain };
}
