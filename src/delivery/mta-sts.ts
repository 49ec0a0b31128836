// MTA-STS (RFC 8461): a receiving domain publishes `_mta-sts.DOMAIN` TXT "v=STSv1; id=…" and a policy at
// https://mta-sts.DOMAIN/.well-known/mta-sts.txt (mode, mx patterns, max_age). The policy is cached for
// max_age; a changed id is fetched again (§3.3); a policy that cannot be refreshed stays in force until it
// expires (§5.1). Lookups go through the gateway's DNS servers (`dns`), the fetch trusts the system roots
// plus outbound.tls.caFile. Parsing and MX pattern matching are mailauth's.
import https from 'node:https';
import tls from 'node:tls';
import type { Resolver } from 'node:dns/promises';
import { parsePolicy, validateMx } from 'mailauth/lib/mta-sts.js';

export interface StsPolicy {
  domain: string;
  id: string;
  mode: 'enforce' | 'testing' | 'none';
  mx: string[];
  maxAge: number;
  /** epoch ms */
  expiresAt: number;
  /** the policy as fetched, one entry a non-empty line (TLSRPT's policy-string, RFC 8460 §4.2) */
  lines: string[];
}

/** Why no policy could be had, in RFC 8460's terms (§4.3): for TLS reports. */
export type StsFailure = 'sts-policy-fetch-error' | 'sts-policy-invalid' | 'sts-webpki-invalid';

export interface StsLookup {
  policy: StsPolicy | null;
  /** how the answer was obtained: fetched, cached, none (no policy), error (no usable policy: why) */
  source: 'fetched' | 'cached' | 'none' | 'error';
  error?: string;
  /** with source error: what kind of failure it was */
  failure?: StsFailure;
}

export interface MtaStsOptions {
  resolver: Pick<Resolver, 'resolveTxt' | 'resolve4'>;
  /** trusted CAs (system roots plus configured ones); undefined: the system roots */
  ca?: string[];
  timeoutMs: number;
  maxEntries: number;
  /** the policy host's HTTPS port: 443 (RFC 8461 §3.3) */
  port?: number;
  now?: () => number;
}

const MAX_POLICY_BYTES = 64 * 1024;
/** after a failed fetch with nothing cached, the domain counts as without policy this long */
const FAILED_FETCH_RETRY_MS = 5 * 60_000;
/**
 * How long a `_mta-sts` TXT answer (an id, or none) is reused before it is asked again: deliveries to a
 * domain do not cost a DNS query each, and a new policy id is still seen within minutes (§3.3).
 */
const TXT_RECHECK_MS = 5 * 60_000;

/** Whether an MX host name is allowed by a policy's mx patterns (§4.1: "*." matches one left-most label). */
export function mxMatches(host: string, policy: Pick<StsPolicy, 'mode' | 'mx'>): boolean {
  return validateMx(host.replace(/\.$/, ''), { mode: policy.mode, mx: policy.mx }).valid;
}

export class MtaSts {
  private readonly o: MtaStsOptions;
  private readonly cache = new Map<string, StsPolicy>();
  /** domains whose last fetch failed with nothing cached: epoch ms until which no fetch is tried */
  private readonly failed = new Map<string, { until: number; error: string; failure: StsFailure }>();
  private readonly inflight = new Map<string, Promise<StsLookup>>();
  /** the last `_mta-sts` TXT answer per domain (id or null) and until when it is reused */
  private readonly ids = new Map<string, { id: string | null; until: number }>();

  constructor(o: MtaStsOptions) {
    this.o = o;
  }

  private now(): number {
    return this.o.now?.() ?? Date.now();
  }

  /** The policy of a recipient domain (concurrent lookups for one domain share one fetch). */
  lookup(domain: string): Promise<StsLookup> {
    const d = domain.toLowerCase().replace(/\.$/, '');
    let p = this.inflight.get(d);
    if (!p) {
      p = this.resolve(d).finally(() => this.inflight.delete(d));
      this.inflight.set(d, p);
    }
    return p;
  }

  private async resolve(domain: string): Promise<StsLookup> {
    const cached = this.cache.get(domain);
    const valid = cached && cached.expiresAt > this.now() ? cached : null;
    let id: string | null;
    try {
      const known = this.ids.get(domain);
      if (known && known.until > this.now()) id = known.id;
      else {
        id = await this.policyId(domain);
        this.ids.delete(domain);
        this.ids.set(domain, { id, until: this.now() + TXT_RECHECK_MS });
        while (this.ids.size > this.o.maxEntries) this.ids.delete(this.ids.keys().next().value!);
      }
    } catch (err) {
      // DNS trouble: a cached policy stays in force (§5.1)
      if (valid) return { policy: valid, source: 'cached' };
      return {
        policy: null,
        source: 'error',
        error: `_mta-sts.${domain} TXT: ${(err as Error).message}`,
        failure: 'sts-policy-fetch-error',
      };
    }
    if (!id) return valid ? { policy: valid, source: 'cached' } : { policy: null, source: 'none' };
    if (valid && valid.id === id) return { policy: valid, source: 'cached' };
    const failed = this.failed.get(domain);
    if (!valid && failed && failed.until > this.now())
      return { policy: null, source: 'error', error: failed.error, failure: failed.failure };
    let failure: StsFailure = 'sts-policy-fetch-error';
    try {
      const text = await this.fetchPolicy(domain).catch((err: NodeJS.ErrnoException) => {
        if (isCertificateError(err)) failure = 'sts-webpki-invalid';
        throw err;
      });
      failure = 'sts-policy-invalid';
      const parsed = parsePolicy(text);
      const maxAge = Math.min(parsed.maxAge ?? 86_400, 31_557_600);
      const policy: StsPolicy = {
        domain,
        id,
        mode: parsed.mode,
        mx: parsed.mx ?? [],
        maxAge,
        expiresAt: this.now() + maxAge * 1000,
        lines: text
          .split(/\r?\n/)
          .map((l) => l.trim())
          .filter(Boolean),
      };
      this.store(domain, policy);
      this.failed.delete(domain);
      return { policy, source: 'fetched' };
    } catch (err) {
      const error = `https://mta-sts.${domain}/.well-known/mta-sts.txt: ${(err as Error).message}`;
      if (valid) return { policy: valid, source: 'cached', error };
      this.failed.set(domain, { until: this.now() + FAILED_FETCH_RETRY_MS, error, failure });
      return { policy: null, source: 'error', error, failure };
    }
  }

  private store(domain: string, policy: StsPolicy): void {
    this.cache.delete(domain);
    this.cache.set(domain, policy);
    while (this.cache.size > this.o.maxEntries) this.cache.delete(this.cache.keys().next().value!);
  }

  /** The id of the domain's STSv1 TXT record; null when it has none (or several: §3.1 says ignore them). */
  private async policyId(domain: string): Promise<string | null> {
    let records: string[][];
    try {
      records = await withTimeout(this.o.resolver.resolveTxt(`_mta-sts.${domain}`), this.o.timeoutMs);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTFOUND' || code === 'ENODATA' || code === 'NXDOMAIN') return null;
      throw err;
    }
    const sts = records.map((r) => r.join('')).filter((t) => /^v=STSv1\s*(;|$)/.test(t));
    if (sts.length !== 1) return null;
    const m = /(?:^|;)\s*id=([A-Za-z0-9]{1,32})\s*(;|$)/.exec(sts[0]);
    return m ? m[1] : null;
  }

  /** GET the policy over HTTPS with a verified certificate for mta-sts.DOMAIN; no redirects (§3.3). */
  private async fetchPolicy(domain: string): Promise<string> {
    const host = `mta-sts.${domain}`;
    const addrs = await withTimeout(this.o.resolver.resolve4(host), this.o.timeoutMs);
    if (!addrs.length) throw new Error(`${host} has no address`);
    return new Promise<string>((resolve, reject) => {
      const req = https.request(
        {
          host: addrs[0],
          port: this.o.port ?? 443,
          path: '/.well-known/mta-sts.txt',
          method: 'GET',
          servername: host,
          headers: { host },
          ca: this.o.ca,
          rejectUnauthorized: true,
          checkServerIdentity: (_name, cert) => tls.checkServerIdentity(host, cert),
          agent: false,
          timeout: this.o.timeoutMs,
        },
        (res) => {
          if (res.statusCode !== 200) {
            res.resume();
            return reject(new Error(`HTTP ${res.statusCode}`));
          }
          const chunks: Buffer[] = [];
          let n = 0;
          res.on('data', (c: Buffer) => {
            n += c.length;
            if (n > MAX_POLICY_BYTES) {
              req.destroy(new Error('policy larger than 64 KiB'));
              return;
            }
            chunks.push(c);
          });
          res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
          res.on('error', reject);
        },
      );
      const timer = setTimeout(
        () => req.destroy(new Error(`no answer within ${this.o.timeoutMs} ms`)),
        this.o.timeoutMs,
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.o.timeoutMs} ms`)));
      req.on('error', reject);
      req.on('close', () => clearTimeout(timer));
      req.end();
    });
  }
}

/** A TLS error about the certificate (not the network): RFC 8460's sts-webpki-invalid. */
export function isCertificateError(err: NodeJS.ErrnoException): boolean {
  return /^(CERT_|ERR_TLS_CERT|UNABLE_TO_(GET|VERIFY)|DEPTH_ZERO|SELF_SIGNED|HOSTNAME_MISMATCH)/.test(err.code ?? '');
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no DNS answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
