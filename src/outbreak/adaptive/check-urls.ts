// Adaptive rules on URLs: each URL alone (also at click time), the message's links, and link text that
// names another destination.
import { BRANDS, CLICK_TRACKERS, type Brand } from './lists.ts';
import { brandOwns, domainNamedBy, hostInSet, type UrlFacts } from './url.ts';
import { Hits, MAX_URLS, type Context } from './context.ts';

// ---------------------------------------------------------------------------------------------
// URLs

/** URL rules that need nothing but the URL (shared with click time). */
export function urlOnlyRules(u: UrlFacts, hits: Hits, source: 'text' | 'html' | 'click'): void {
  if (u.ipLiteral && !u.privateIp) {
    // a bare IP written out in plain text hides nothing; behind HTML link text (or clicked) it does
    hits.add(source === 'text' ? 'URL_IP_HOST_TEXT' : 'URL_IP_HOST', u.url);
  }
  if (u.userinfo !== null) {
    const info = decodeSafe(u.userinfo);
    if (
      /[a-z0-9-]+\.[a-z]{2,}/i.test(info) ||
      BRANDS.some((b) => b.tokens.some((t) => info.toLowerCase().includes(t)))
    ) {
      hits.add('URL_USERINFO_DECEPTIVE', u.url);
    } else {
      hits.add('URL_USERINFO', u.url);
    }
  }
  if (u.idnBrand) {
    hits.add('URL_PUNYCODE_BRAND', `${u.host} (${u.unicodeHost} ≈ ${u.idnBrand.name})`);
  } else if (u.idnDisguised) {
    hits.add('URL_IDN_DISGUISED', `${u.host} (${u.unicodeHost})`);
  }
  if (u.brandInHost && u.brandInDomain) {
    hits.add('URL_BRAND_IN_HOST', `${u.host} (${u.brandInHost.name})`);
  }
  if (u.shortener) {
    hits.add('URL_SHORTENER', u.url);
  }
  if (u.suspiciousTld) {
    hits.add('URL_SUSPICIOUS_TLD', u.host);
  }
}

function decodeSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function base64Forms(address: string): string[] {
  // the three alignments of the address inside a longer base64 string, without the unstable edges
  const out: string[] = [];
  for (let pad = 0; pad < 3; pad++) {
    const b = Buffer.from('x'.repeat(pad) + address, 'utf8').toString('base64');
    const start = pad === 0 ? 0 : 4;
    const core = b.slice(start, Math.max(start, b.length - 4));
    if (core.length >= 8) {
      out.push(core, core.replace(/\+/g, '-').replace(/\//g, '_'));
    }
  }
  return out;
}

export function urlRules(ctx: Context, hits: Hits): void {
  const r = ctx.recipient;
  const encoded = r && r.length >= 6 ? base64Forms(r) : [];
  // a newsletter whose links go to the sender's own site, with a few to a bare IP (an old ad
  // server, a partner's page), is not hiding its destination: then an IP link alone is a weak sign
  let homeLinks = 0;
  let ipLinks = 0;
  for (const u of ctx.urls) {
    if (u.domain !== null && ctx.senderDomains.has(u.domain)) {
      homeLinks++;
    } else if (u.ipLiteral && !u.privateIp) {
      ipLinks++;
    }
  }
  const ipAmongOwnLinks = ipLinks > 0 && homeLinks >= MIN_OWN_LINKS && homeLinks >= ipLinks;
  for (const u of ctx.urls) {
    urlOnlyRules(u, hits, ipAmongOwnLinks ? 'text' : u.source);
    const own = u.domain !== null && ctx.senderDomains.has(u.domain);
    if (u.freeHosting && !own) {
      hits.add('URL_FREE_HOSTING', u.url);
    }
    if (r && !hits.has('URL_HAS_RECIPIENT')) {
      const hash = u.url.indexOf('#');
      const inFragment =
        hash >= 0 &&
        decodeSafe(u.url.slice(hash + 1))
          .toLowerCase()
          .includes(r);
      if (inFragment || encoded.some((e) => u.url.includes(e))) {
        hits.add('URL_HAS_RECIPIENT', u.url);
      }
    }
  }
  linkTextRules(ctx, hits);
}

/** Links to the sender's own domain above which a few bare-IP links are a weak sign. */
const MIN_OWN_LINKS = 5;

/** First host labels of click trackers run under a sender's own or its mailing service's name. */
const TRACKER_LABEL =
  /^(?:click|clicks|clk|links?|track|tracking|trk|t|l|r|go|e|em|email|emails|url|redirect|lists?|news|newsletters?|mailing|mail|info)\d{0,2}$/;

/** A link through a click tracker: a mailing service's tracking domain, or a tracking host with an opaque path. */
function clickTracker(u: { url: string; host: string; domain: string | null }): boolean {
  if (hostInSet(u.host, u.domain, CLICK_TRACKERS)) {
    return true;
  }
  const label = u.host.slice(0, u.host.indexOf('.'));
  if (u.domain === null || u.host === u.domain || !TRACKER_LABEL.test(label)) {
    return false;
  }
  const path = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*([^#]*)/i.exec(u.url)?.[1] ?? '';
  return path.length > 8;
}

/** Domains the From display name writes out (a list's address shown by an alias or forwarding service). */
function displayDomains(ctx: Context): Set<string> {
  const out = new Set<string>();
  const display = (ctx.from?.display ?? '').toLowerCase();
  for (const word of display.split(/[\s"'<>()[\]/,;]+/).slice(0, 12)) {
    const at = word.lastIndexOf('@');
    const named = domainNamedBy(at >= 0 ? word.slice(at + 1) : word);
    if (named) {
      out.add(named);
    }
  }
  return out;
}

function linkTextRules(ctx: Context, hits: Hits): void {
  let shownBySender: Set<string> | null = null;
  for (const u of ctx.parsed.urls.slice(0, MAX_URLS)) {
    if (u.source !== 'html' || !u.anchorText) {
      continue;
    }
    // only text that reads as an address (one token: a URL, www.…, or a brand's domain) makes a promise
    const text = u.anchorText.trim();
    if (text.length > 200 || /\s/.test(text)) {
      continue;
    }
    const named = domainNamedBy(text);
    if (!named || named === u.domain) {
      continue;
    }
    if (!/^(?:https?:\/\/|www\.)/i.test(text) && !brandOfDomain(named)) {
      continue;
    }
    // the sender linking its own site through a click tracker is ordinary
    if (ctx.senderDomains.has(named) || (u.domain !== null && ctx.senderDomains.has(u.domain))) {
      continue;
    }
    // a redirector whose destination (in its query) is the domain the text promises keeps the promise
    if (redirectsTo(u.url, named)) {
      continue;
    }
    const brand = brandOfDomain(named);
    if (brand && brandOwns(brand, u.domain)) {
      continue;
    }
    // newsletters route links through click trackers (their mailing service's, or one under the name the
    // sender shows); only text promising a brand the sender is not stays a mismatch through them
    const impersonated = brand !== null && !brandOwns(brand, ctx.fromDomain);
    shownBySender ??= displayDomains(ctx);
    if (!impersonated && (clickTracker(u) || (u.domain !== null && shownBySender.has(u.domain)))) {
      continue;
    }
    hits.add('LINK_TEXT_MISMATCH', `text "${u.anchorText.slice(0, 50)}" → ${u.host}`);
    return;
  }
}

function redirectsTo(url: string, domain: string): boolean {
  const q = url.indexOf('?');
  if (q < 0) {
    return false;
  }
  let query = url.slice(q + 1, q + 1 + 4096);
  for (let i = 0; i < 3; i++) {
    const lower = query.toLowerCase();
    const at = lower.indexOf(domain);
    if (at >= 0 && /(?:^|[/.=&@]|%2f|%40)$/.test(lower.slice(Math.max(0, at - 3), at))) {
      return true;
    }
    const decoded = decodeSafe(query);
    if (decoded === query) {
      break;
    }
    query = decoded;
  }
  return false;
}

function brandOfDomain(domain: string): Brand | null {
  for (const b of BRANDS) {
    if (brandOwns(b, domain)) {
      return b;
    }
  }
  return null;
}
