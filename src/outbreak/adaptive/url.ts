// What a single URL looks like to the adaptive rules: the host as a browser would reach it (IP
// literal, user info, internationalised labels), and which well-known kinds of host it points to
// (shortener, free hosting, abused TLD, a brand name on someone else's domain).
import { domainToUnicode } from 'node:url';
import { registrableDomain, urlHost } from '../../mime/urls.ts';
import { BRANDS, FREE_HOSTING, SUSPICIOUS_TLDS, URL_SHORTENERS, type Brand } from './lists.ts';
import { findDisguise, skeleton } from './text.ts';

export interface UrlFacts {
  url: string;
  host: string;
  /** registrable domain, null for IP literals and unknown suffixes */
  domain: string | null;
  /** dotted quad, integer/hex IPv4 or bracketed IPv6 */
  ipLiteral: boolean;
  /** private, loopback or link-local address (an intranet link, not a phishing host) */
  privateIp: boolean;
  /** text before "@" in the authority, or null */
  userinfo: string | null;
  /** host as Unicode when it has punycode or non-ASCII labels, else null */
  unicodeHost: string | null;
  /** the Unicode host disguises itself (mixed scripts, look-alikes) */
  idnDisguised: boolean;
  /** a brand the internationalised host imitates */
  idnBrand: Brand | null;
  shortener: boolean;
  freeHosting: boolean;
  suspiciousTld: boolean;
  /** a brand whose name appears in the host while the domain is not the brand's */
  brandInHost: Brand | null;
  /** the brand name is fused into the registrable domain itself (paypal-login.com), not a subdomain */
  brandInDomain: boolean;
}

const IPV4 = /^(?:\d{1,3}\.){3}\d{1,3}$/;
const IPV4_OTHER = /^(?:0x[0-9a-f]{1,8}|\d{8,10}|(?:0[0-7]*|0x[0-9a-f]+|\d+)(?:\.(?:0[0-7]*|0x[0-9a-f]+|\d+)){1,3})$/i;

function isPrivateIpv4(host: string): boolean {
  const p = host.split('.').map((x) => Number(x));
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x > 255)) {
    return false;
  }
  return (
    p[0] === 10 ||
    p[0] === 127 ||
    (p[0] === 172 && p[1] >= 16 && p[1] <= 31) ||
    (p[0] === 192 && p[1] === 168) ||
    (p[0] === 169 && p[1] === 254) ||
    p[0] === 0
  );
}

function authorityOf(url: string): string {
  const m = /^[a-z][a-z0-9+.-]{0,20}:[/\\]*/i.exec(url);
  const start = m ? m[0].length : 0;
  let end = url.length;
  for (let i = start; i < url.length && i < start + 2048; i++) {
    const c = url.charCodeAt(i);
    if (c === 0x2f || c === 0x5c || c === 0x3f || c === 0x23) {
      end = i;
      break;
    }
    if (i === start + 2047) {
      end = i;
    }
  }
  return url.slice(start, end);
}

/** True when `host` is `entry` or a subdomain of it. */
function hostIs(host: string, entry: string): boolean {
  return (
    host === entry ||
    (host.length > entry.length && host.endsWith(entry) && host[host.length - entry.length - 1] === '.')
  );
}

/** True when `host` (or its registrable domain) is one of `set`, also for dotted entries below the registrable domain. */
export function hostInSet(host: string, domain: string | null, set: ReadonlySet<string>): boolean {
  if (domain !== null && set.has(domain)) {
    return true;
  }
  if (set.has(host)) {
    return true;
  }
  // entries like storage.googleapis.com or blob.core.windows.net: try every suffix of the host
  let dot = host.indexOf('.');
  let guard = 0;
  while (dot >= 0 && guard++ < 16) {
    const suffix = host.slice(dot + 1);
    if (set.has(suffix)) {
      return true;
    }
    dot = host.indexOf('.', dot + 1);
  }
  return false;
}

/** The brand legitimately owns `domain` (listed, or the domain's first label is one of its tokens or names). */
export function brandOwns(brand: Brand, domain: string | null): boolean {
  if (domain === null) {
    return false;
  }
  for (const d of brand.domains) {
    if (domain === d || hostIs(domain, d)) {
      return true;
    }
  }
  const first = domain.split('.')[0];
  if (brand.tokens.includes(first)) {
    return true;
  }
  const compact = first.replace(/-/g, '');
  return brand.names.some((n) => n.replace(/[^a-z0-9]/g, '') === compact);
}

interface TokenIndex {
  token: string;
  brand: Brand;
}

let tokenIndex: TokenIndex[] | null = null;

function brandTokens(): TokenIndex[] {
  if (!tokenIndex) {
    tokenIndex = [];
    for (const brand of BRANDS) {
      for (const token of brand.tokens) {
        if (token.length >= 4) {
          tokenIndex.push({ token, brand });
        }
      }
    }
  }
  return tokenIndex;
}

/** A brand whose token equals one of the host's labels (split on dots and hyphens), or is contained in its skeleton. */
function brandForHostLabels(labels: readonly string[]): Brand | null {
  for (const label of labels) {
    for (const { token, brand } of brandTokens()) {
      if (label === token) {
        return brand;
      }
    }
  }
  return null;
}

/** Words fused to a brand name in look-alike domains (paypalsecure, secure-paypal, applesupport…). */
const LOOKALIKE_AFFIXES: ReadonlySet<string> = new Set([
  'secure',
  'security',
  'login',
  'signin',
  'verify',
  'verification',
  'support',
  'account',
  'accounts',
  'update',
  'service',
  'services',
  'online',
  'help',
  'billing',
  'alert',
  'alerts',
  'notice',
  'mail',
  'email',
  'team',
  'rewards',
  'reward',
  'survey',
  'center',
  'app',
  'id',
  'auth',
  'wallet',
  'pay',
  'payment',
  'refund',
  'claim',
  'bonus',
  'gift',
  'promo',
  'info',
  'official',
  'customer',
  'care',
  'web',
  'my',
  'get',
  'go',
  'the',
  'www',
  'portal',
  'connect',
  'access',
  'recovery',
  'unlock',
  'confirm',
  'check',
  'delivery',
  'tracking',
  'track',
  'parcel',
  'shop',
  'store',
  'us',
  'usa',
  'uk',
  'de',
  'br',
]);

/**
 * A brand whose name is fused into the first label of `domain` (paypal-login.com, applesupport.net,
 * netflix2.com) while the brand does not own the domain, or null. Plain substrings do not count
 * (pineapple is not Apple): the brand must be a hyphen/digit-separated part, or the label must be
 * the brand plus one of a few words phishing domains add.
 */
export function brandFusedInDomain(domain: string | null): Brand | null {
  if (!domain) {
    return null;
  }
  const cached = fusedCache.get(domain);
  if (cached !== undefined) {
    return cached;
  }
  const result = computeFused(domain);
  if (fusedCache.size >= 10_000) {
    fusedCache.clear();
  }
  fusedCache.set(domain, result);
  return result;
}

const fusedCache = new Map<string, Brand | null>();

function computeFused(domain: string): Brand | null {
  const label = domain.split('.')[0];
  const parts = label.split(/[-0-9]+/).filter(Boolean);
  const separated = /[0-9-]/.test(label);
  for (const { token, brand } of brandTokens()) {
    if (label.indexOf(token) < 0) {
      continue;
    }
    let hit = parts.length > 1 && parts.includes(token);
    if (!hit && label.length > token.length) {
      for (const part of parts) {
        if (part.length > token.length && (part.startsWith(token) || part.endsWith(token))) {
          const rest = part.startsWith(token) ? part.slice(token.length) : part.slice(0, part.length - token.length);
          if (LOOKALIKE_AFFIXES.has(rest)) {
            hit = true;
            break;
          }
        }
      }
    }
    if (!hit && parts.length === 1 && separated && parts[0] === token) {
      hit = true;
    }
    if (hit && !brandOwns(brand, domain)) {
      return brand;
    }
  }
  return null;
}

function brandForSkeleton(sk: string): Brand | null {
  for (const { token, brand } of brandTokens()) {
    if (sk.includes(token)) {
      return brand;
    }
  }
  return null;
}

/** The facts of one URL. `host`/`domain` may be passed when already known (from the parser). */
export function analyseUrl(url: string, knownHost?: string, knownDomain?: string | null): UrlFacts | null {
  const host = knownHost ?? urlHost(url);
  if (!host) {
    return null;
  }
  const domain = knownDomain !== undefined ? knownDomain : registrableDomain(host);
  const bare = host.startsWith('[') ? host : host.endsWith('.') ? host.slice(0, -1) : host;
  const ipLiteral = host.startsWith('[') || IPV4.test(bare) || IPV4_OTHER.test(bare);
  const privateIp = ipLiteral && (bare === '[::1]' || (IPV4.test(bare) && isPrivateIpv4(bare)));

  const authority = authorityOf(url);
  const at = authority.lastIndexOf('@');
  const userinfo = at > 0 ? authority.slice(0, at) : null;

  let unicodeHost: string | null = null;
  let idnDisguised = false;
  let idnBrand: Brand | null = null;
  const nonAscii = /[^\x00-\x7f]/.test(bare);
  if (!ipLiteral && (nonAscii || bare.includes('xn--'))) {
    unicodeHost = nonAscii ? bare : domainToUnicode(bare) || bare;
    // a label mixing scripts (Latin with Cyrillic/Greek/Armenian look-alikes); an all-Cyrillic name is honest
    const d = findDisguise(unicodeHost.replace(/[.-]/g, ' '));
    // styled letters or digits (𝚠𝚊𝚔𝚎, 𝟜) that a browser maps to plain ones: written so filters miss the name
    idnDisguised = (d !== null && d.strength >= 3) || (nonAscii && bare.normalize('NFKC') !== bare);
    // the look-alike label: compare its skeleton with brand tokens, unless the brand owns the domain
    const sk = skeleton(unicodeHost);
    const brand = brandForSkeleton(sk);
    if (brand && !brandOwns(brand, domain)) {
      idnBrand = brand;
    }
  }

  const tld = bare.slice(bare.lastIndexOf('.') + 1);
  let brandInHost: Brand | null = null;
  let brandInDomain = false;
  if (!ipLiteral) {
    const fused = brandFusedInDomain(domain);
    if (fused) {
      brandInHost = fused;
      brandInDomain = true;
    } else {
      const brand = brandForHostLabels(bare.split(/[.-]/));
      if (brand && !brandOwns(brand, domain)) {
        brandInHost = brand;
      }
    }
  }

  return {
    url,
    host,
    domain,
    ipLiteral,
    privateIp,
    userinfo,
    unicodeHost,
    idnDisguised,
    idnBrand,
    shortener: hostInSet(bare.startsWith('www.') ? bare.slice(4) : bare, domain, URL_SHORTENERS),
    freeHosting: hostInSet(bare, domain, FREE_HOSTING),
    suspiciousTld: !ipLiteral && SUSPICIOUS_TLDS.has(tld),
    brandInHost,
    brandInDomain,
  };
}

const DOMAIN_IN_TEXT =
  /(?:^|[^a-z0-9@._-])((?:[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?\.){1,6}[a-z]{2,24})(?=$|[^a-z0-9-])/i;

/**
 * The registrable domain that a link's visible text names ("www.paypal.com", "https://bank.example/login"),
 * or null when the text names no domain. E-mail addresses in the text do not count.
 */
export function domainNamedBy(text: string): string | null {
  const t = text.length > 200 ? text.slice(0, 200) : text;
  const m = DOMAIN_IN_TEXT.exec(t);
  if (!m) {
    return null;
  }
  const candidate = m[1].toLowerCase();
  // file names (invoice.pdf) and version numbers are not domains: the suffix must be a real public suffix
  return registrableDomain(candidate);
}
