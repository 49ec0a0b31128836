// The outbound TLS policy of one delivery (DESIGN §3.6): what the destination needs — per recipient domain
// (outbound.tls.domains, default outbound.tls.default, delivery.requireTls) and the domain's MTA-STS policy
// (RFC 8461) for MX delivery — and what a connection achieved, for the TLS column of tracking.
import tls, { type TLSSocket } from 'node:tls';
import net from 'node:net';
import type { Config } from '../config/schema.ts';
import type { TlsLevel } from '../config/outbound-schema.ts';
import { domainOf } from '../smtp/address.ts';
import type { DeliveryTlsInfo } from '../tracking/events.ts';
import { mxMatches, type MtaSts, type StsFailure, type StsPolicy } from './mta-sts.ts';

const RANK: Record<TlsLevel, number> = { none: 0, opportunistic: 1, require: 2, verify: 3 };

/** What a delivery needs from its connections. */
export interface TlsRequirement {
  level: TlsLevel;
  /** why: "default", "domain example.com", "mta-sts enforce" … */
  source: string;
  /** the recipient domain's MTA-STS policy in force (MX delivery only) */
  sts: StsPolicy | null;
  /** what the MTA-STS lookup said when it found no usable policy (a fetch error) */
  stsNote: string | null;
  /** that failure in RFC 8460's terms, for TLS reports */
  stsFailure: StsFailure | null;
}

/** The TLS of one delivery attempt, as tracking shows it (delivery events' `tls`). */
export type DeliveryTls = DeliveryTlsInfo;

/** The level a recipient domain asks for: its own entry, ".parent" entries, else the default. */
export function levelForDomain(config: Config, domain: string): { level: TlsLevel; source: string } {
  const t = config.outbound.tls;
  const d0 = domain.toLowerCase();
  let d = d0;
  while (d) {
    const own = d === d0 ? t.domains[d] : undefined;
    const sub = t.domains['.' + d];
    if (own) return { level: own, source: `domain ${d}` };
    if (sub) return { level: sub, source: `domain .${d}` };
    const dot = d.indexOf('.');
    d = dot < 0 ? '' : d.slice(dot + 1);
  }
  if (config.delivery.requireTls && RANK[t.default] < RANK.require)
    return { level: 'require', source: 'delivery.requireTls' };
  return { level: t.default, source: 'default' };
}

/**
 * What a delivery to these recipients needs: the strictest of their domains' levels, raised to verify by
 * an MTA-STS policy in enforce mode (MX delivery to one domain).
 */
export async function requirementFor(
  config: Config,
  recipients: readonly string[],
  mx: { domain: string; sts: MtaSts | null } | null,
): Promise<TlsRequirement> {
  let best: { level: TlsLevel; source: string } | null = null;
  for (const r of recipients) {
    const l = levelForDomain(config, domainOf(r));
    if (!best || RANK[l.level] > RANK[best.level]) best = l;
  }
  const req: TlsRequirement = {
    ...(best ?? levelForDomain(config, '')),
    sts: null,
    stsNote: null,
    stsFailure: null,
  };
  if (mx?.sts && req.level !== 'none') {
    const found = await mx.sts.lookup(mx.domain);
    if (found.error) req.stsNote = `MTA-STS: ${found.error}`;
    if (found.source === 'error') req.stsFailure = found.failure ?? 'sts-policy-fetch-error';
    const p = found.policy;
    if (p && p.mode !== 'none') {
      req.sts = p;
      if (p.mode === 'enforce' && RANK[req.level] < RANK.verify) {
        req.level = 'verify';
        req.source = 'mta-sts enforce';
      }
    }
  }
  return req;
}

export function policyName(req: TlsRequirement): string {
  if (req.sts?.mode === 'enforce' && req.source === 'mta-sts enforce') return 'mta-sts enforce';
  if (req.sts?.mode === 'testing') return `${req.level} (mta-sts testing)`;
  return req.level;
}

/**
 * MX hosts an MTA-STS policy lets this delivery use: in enforce mode the matching ones only (§5), in
 * testing mode all of them, with a note for those that do not match.
 */
export function filterMx(
  req: TlsRequirement,
  hosts: Array<{ host: string; name: string }>,
): { allowed: Array<{ host: string; name: string }>; note: string | null } {
  const p = req.sts;
  if (!p) return { allowed: hosts, note: null };
  const bad = hosts.filter((h) => !mxMatches(h.name, p));
  if (!bad.length) return { allowed: hosts, note: null };
  const names = [...new Set(bad.map((h) => h.name))].join(', ');
  if (p.mode === 'testing')
    return { allowed: hosts, note: `MTA-STS testing: MX ${names} not in the policy of ${p.domain} (delivered anyway)` };
  return {
    allowed: hosts.filter((h) => mxMatches(h.name, p)),
    note: `MX ${names} not in the MTA-STS policy of ${p.domain}`,
  };
}

/** The TLS options of a connection to `name` (the host name the certificate must carry). */
export function connectTls(level: TlsLevel, name: string, ca: string[] | undefined): Record<string, unknown> {
  if (level === 'none') return { ignoreTLS: true };
  return {
    // STARTTLS whenever offered; whether the session may go on without is decided after the handshake
    opportunisticTLS: true,
    ...(net.isIP(name) ? {} : { servername: name }),
    tls: { rejectUnauthorized: false, ...(ca ? { ca } : {}), ...(net.isIP(name) ? {} : { servername: name }) },
  };
}

/** What a connected session achieved, from its socket (a TLSSocket after STARTTLS). */
export function sessionTls(
  socket: net.Socket | TLSSocket | undefined,
  secure: boolean,
  starttlsOffered: boolean,
  name: string,
  policy: string,
): DeliveryTls {
  if (!secure || !socket || !(socket as TLSSocket).encrypted) {
    return {
      protocol: null,
      cipher: null,
      verified: false,
      reason:
        policy === 'none' ? 'TLS off by policy' : starttlsOffered ? 'STARTTLS failed' : 'peer does not offer STARTTLS',
      policy,
    };
  }
  const s = socket as TLSSocket;
  let reason: string | null = null;
  if (!s.authorized) reason = `certificate not trusted: ${String(s.authorizationError ?? 'unknown')}`;
  else {
    const err = tls.checkServerIdentity(name, s.getPeerCertificate());
    if (err) reason = `certificate does not name ${name}: ${err.message}`;
  }
  return {
    protocol: s.getProtocol() ?? null,
    cipher: s.getCipher()?.name ?? null,
    verified: reason === null,
    reason,
    policy,
  };
}

/**
 * Whether a session with this TLS may carry the delivery; else the deferral reply (RFC 3463 4.7.x).
 * MTA-STS testing mode never refuses: its findings become a note.
 */
export function admits(
  req: TlsRequirement,
  t: DeliveryTls,
  host: string,
): { ok: true; note?: string } | { ok: false; reply: string } {
  const why = `${host}: ${t.reason ?? 'no TLS'} (TLS policy ${policyName(req)}, ${req.source})`;
  if (req.level === 'require' && !t.protocol)
    return { ok: false, reply: `4.7.10 TLS required but not available: ${why}` };
  if (req.level === 'verify' && !t.verified) return { ok: false, reply: `4.7.5 verified TLS required: ${why}` };
  if (req.sts?.mode === 'testing' && !t.verified)
    return { ok: true, note: `MTA-STS testing: ${t.reason ?? 'no TLS'} on ${host} (delivered anyway)` };
  return { ok: true };
}
