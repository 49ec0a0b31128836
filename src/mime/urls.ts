// URL extraction from decoded text/plain and text/html bodies.
//
// Message content is attacker controlled, so every scan here is linear in the input and
// bounded: text goes through linkify-it one whitespace-delimited segment at a time, the way
// mailparser bounds it (segments over 4096 chars or chaining more than 6 host labels are
// skipped, and a message-wide work budget caps the total), HTML is scanned with a single
// forward regex for <a>, <area> and <form> tags plus a hand-written attribute reader.
import { LinkifyIt } from 'linkify-it';
import { parse as parseDomain } from 'tldts';
import type { ExtractedUrl } from './types.ts';

export const MAX_LINKIFY_SEGMENT_LENGTH = 4096;
export const MAX_LINKIFY_HOST_LABELS = 6;
/** work units (segment length * (length + 1024)) linkify may spend per message */
export const MAX_LINKIFY_WORK = 256 * 1024 * 1024;
export const MAX_ANCHOR_TEXT = 200;
// raw anchor inner HTML looked at for the visible text
const MAX_ANCHOR_RAW = 8192;
const MAX_URL_LENGTH = 8192;

/** Collects URLs, de-duplicated by (url, source), up to a bound. */
export class UrlCollector {
  readonly urls: ExtractedUrl[] = [];
  /** set when URLs were dropped because of maxUrls */
  limited = false;
  /** set when text was left unscanned because the linkify work budget ran out */
  workExhausted = false;
  linkifyWork = 0;
  private readonly seen = new Set<string>();
  private readonly max: number;

  constructor(maxUrls: number) {
    this.max = maxUrls;
  }

  get full(): boolean {
    return this.urls.length >= this.max;
  }

  /** Adds a URL; returns false when it is not an http(s) URL with a host. */
  add(url: string, source: 'text' | 'html', anchorText: string | null): boolean {
    if (url.length > MAX_URL_LENGTH) {
      url = url.slice(0, MAX_URL_LENGTH);
    }
    const host = urlHost(url);
    if (!host) {
      return false;
    }
    const key = source === 'text' ? 't' + url : 'h' + url;
    if (this.seen.has(key)) {
      return true;
    }
    if (this.urls.length >= this.max) {
      this.limited = true;
      return true;
    }
    this.seen.add(key);
    this.urls.push({ url, host, domain: registrableDomain(host), source, anchorText });
    return true;
  }
}

const HTTP_PREFIX = /^https?:[/\\]*/i;

/**
 * Lower-case host of an http(s) URL as written (no IDN conversion, no port, no
 * userinfo), or null when the URL is not http(s) or has no host.
 */
export function urlHost(url: string): string | null {
  const m = HTTP_PREFIX.exec(url);
  if (!m) {
    return null;
  }
  const start = m[0].length;
  let end = url.length;
  for (let i = start; i < url.length; i++) {
    const c = url.charCodeAt(i);
    // / \ ? #
    if (c === 0x2f || c === 0x5c || c === 0x3f || c === 0x23) {
      end = i;
      break;
    }
  }
  let authority = url.slice(start, end);
  const at = authority.lastIndexOf('@');
  if (at >= 0) {
    authority = authority.slice(at + 1);
  }
  let host: string;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    host = close > 0 ? authority.slice(0, close + 1) : authority;
  } else {
    const colon = authority.indexOf(':');
    host = colon >= 0 ? authority.slice(0, colon) : authority;
  }
  host = host.trim().toLowerCase();
  return host || null;
}

const domainCache = new Map<string, string | null>();

/** Registrable domain (ICANN public suffix + 1) or null for IP literals and unknown suffixes. */
export function registrableDomain(host: string): string | null {
  let cached = domainCache.get(host);
  if (cached !== undefined) {
    return cached;
  }
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  cached = null;
  if (name && !name.startsWith('[')) {
    try {
      const info = parseDomain(name, { extractHostname: false });
      if (!info.isIp && (info.isIcann || info.isPrivate)) {
        cached = info.domain;
      }
    } catch {
      cached = null;
    }
  }
  if (domainCache.size >= 10_000) {
    domainCache.clear();
  }
  domainCache.set(host, cached);
  return cached;
}

let linkify: LinkifyIt | null = null;

function getLinkify(): LinkifyIt {
  if (!linkify) {
    linkify = new LinkifyIt({ fuzzyLink: false, fuzzyEmail: false, fuzzyIP: false });
    linkify.add('ftp:', null).add('mailto:', null).add('//', null);
  }
  return linkify;
}

// Characters linkify-it accepts inside a host name (as in mailparser): letters, digits,
// a dash and anything non-ASCII.
function isHostChar(code: number): boolean {
  return (
    (code >= 0x61 && code <= 0x7a) ||
    (code >= 0x41 && code <= 0x5a) ||
    (code >= 0x30 && code <= 0x39) ||
    code === 0x2d ||
    code >= 0x80
  );
}

function chainsTooManyLabels(segment: string): boolean {
  let labels = 0;
  for (let i = 0; i < segment.length; i++) {
    const code = segment.charCodeAt(i);
    if (code === 0x2e) {
      if (++labels > MAX_LINKIFY_HOST_LABELS) {
        return true;
      }
    } else if (!isHostChar(code)) {
      labels = 0;
    }
  }
  return false;
}

function isSegmentSpace(code: number): boolean {
  // JS whitespace except U+FEFF, which linkify-it treats as a link character
  return (
    code === 0x20 ||
    (code >= 0x09 && code <= 0x0d) ||
    code === 0xa0 ||
    code === 0x1680 ||
    (code >= 0x2000 && code <= 0x200a) ||
    code === 0x2028 ||
    code === 0x2029 ||
    code === 0x202f ||
    code === 0x205f ||
    code === 0x3000
  );
}

// where a link may start: a scheme or a bare www.
const TEXT_CANDIDATE = /https?:|www\./gi;
const SEGMENT_END = /[^\S\uFEFF]/g;
// a bare "www." not already following a scheme or a host character
const BARE_WWW = /(^|[^/\w.\-@])(www\.)/gi;

/** Extracts http(s) and www. links from plain text. */
export function extractTextUrls(text: string, out: UrlCollector): void {
  if (!text || out.limited || out.workExhausted) {
    return;
  }
  TEXT_CANDIDATE.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = TEXT_CANDIDATE.exec(text)) !== null) {
    // expand the hit to its whitespace-delimited segment
    let start = m.index;
    const floor = Math.max(0, m.index - MAX_LINKIFY_SEGMENT_LENGTH - 1);
    while (start > floor && !isSegmentSpace(text.charCodeAt(start - 1))) {
      start--;
    }
    SEGMENT_END.lastIndex = m.index;
    const endMatch = SEGMENT_END.exec(text);
    const end = endMatch ? endMatch.index : text.length;
    TEXT_CANDIDATE.lastIndex = end;
    if (end - start > MAX_LINKIFY_SEGMENT_LENGTH || (start === floor && start > 0)) {
      continue;
    }
    let segment = text.slice(start, end);
    if (chainsTooManyLabels(segment)) {
      continue;
    }
    if (out.linkifyWork >= MAX_LINKIFY_WORK) {
      out.workExhausted = true;
      return;
    }
    out.linkifyWork += segment.length * (segment.length + 1024);
    if (segment.length > 4 && /www\./i.test(segment)) {
      segment = segment.replace(BARE_WWW, '$1http://$2');
    }
    let matches;
    try {
      matches = getLinkify().match(segment);
    } catch {
      matches = null;
    }
    if (!matches) {
      continue;
    }
    for (const match of matches) {
      if (match.schema.toLowerCase() !== 'http:' && match.schema.toLowerCase() !== 'https:') {
        continue;
      }
      out.add(match.url, 'text', null);
      if (out.limited && out.full) {
        return;
      }
    }
  }
}

// Opening <a>, <area>, <form> tags and closing </a>. The lookahead keeps <abbr>, <article>
// and friends out. One pass, no nested quantifiers.
const HTML_TAG = /<(\/?)(a|area|form)(?=[\s/>])/gi;
const TAG_STRIP = /<[^>]*>?/g;
const ENTITY = /&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z]{2,6});?/g;
const WHITESPACE_RUN = /\s+/g;
const URL_WHITESPACE = /[\t\n\r]/g;

const NAMED_ENTITIES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  nbsp: ' ',
  ndash: '–',
  mdash: '—',
  hellip: '…',
  copy: '©',
  reg: '®',
  trade: '™',
  laquo: '«',
  raquo: '»',
  lsquo: '‘',
  rsquo: '’',
  ldquo: '“',
  rdquo: '”',
  bull: '•',
  middot: '·',
  euro: '€',
  pound: '£',
  shy: '',
  zwnj: '',
  zwj: '',
};

function entityReplace(m: string, body: string): string {
  if (body.charCodeAt(0) === 0x23 /* # */) {
    const hex = body.charCodeAt(1) === 0x78 || body.charCodeAt(1) === 0x58;
    const code = parseInt(body.slice(hex ? 2 : 1), hex ? 16 : 10);
    if (!Number.isFinite(code) || code <= 0 || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
      return '\ufffd';
    }
    return String.fromCodePoint(code);
  }
  const named = NAMED_ENTITIES[body.toLowerCase()];
  return named ?? m;
}

/** Decodes numeric and the common named HTML entities. */
export function decodeEntities(s: string): string {
  return s.indexOf('&') < 0 ? s : s.replace(ENTITY, entityReplace);
}

function visibleText(raw: string): string | null {
  if (raw.length > MAX_ANCHOR_RAW) {
    raw = raw.slice(0, MAX_ANCHOR_RAW);
  }
  let text = raw.indexOf('<') >= 0 ? raw.replace(TAG_STRIP, ' ') : raw;
  text = decodeEntities(text).replace(WHITESPACE_RUN, ' ').trim();
  if (text.length > MAX_ANCHOR_TEXT) {
    text = text.slice(0, MAX_ANCHOR_TEXT);
  }
  return text || null;
}

interface TagScan {
  /** position after the tag's closing ">" (or end of input) */
  end: number;
  attrs: Map<string, string>;
}

function isAttrSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0c || c === 0x0d;
}

/** Reads the attributes of a tag starting at `pos` (just after the tag name). Linear. */
function scanAttributes(html: string, pos: number, wanted: ReadonlySet<string>): TagScan {
  const attrs = new Map<string, string>();
  const len = html.length;
  let i = pos;
  while (i < len) {
    let c = html.charCodeAt(i);
    if (isAttrSpace(c) || c === 0x2f /* / */) {
      i++;
      continue;
    }
    if (c === 0x3e /* > */) {
      return { end: i + 1, attrs };
    }
    // attribute name
    const nameStart = i;
    while (i < len) {
      c = html.charCodeAt(i);
      if (isAttrSpace(c) || c === 0x3d || c === 0x3e || (c === 0x2f && i > nameStart)) {
        break;
      }
      i++;
    }
    const name = html.slice(nameStart, i).toLowerCase();
    while (i < len && isAttrSpace(html.charCodeAt(i))) {
      i++;
    }
    if (html.charCodeAt(i) !== 0x3d /* = */) {
      continue;
    }
    i++;
    while (i < len && isAttrSpace(html.charCodeAt(i))) {
      i++;
    }
    let value: string;
    c = html.charCodeAt(i);
    if (c === 0x22 || c === 0x27) {
      const close = html.indexOf(c === 0x22 ? '"' : "'", i + 1);
      const valueEnd = close < 0 ? len : close;
      value = html.slice(i + 1, valueEnd);
      i = close < 0 ? len : close + 1;
    } else {
      const valueStart = i;
      while (i < len) {
        c = html.charCodeAt(i);
        if (isAttrSpace(c) || c === 0x3e) {
          break;
        }
        i++;
      }
      value = html.slice(valueStart, i);
    }
    if (wanted.has(name) && !attrs.has(name)) {
      attrs.set(name, value);
    }
  }
  return { end: len, attrs };
}

const A_ATTRS: ReadonlySet<string> = new Set(['href']);
const AREA_ATTRS: ReadonlySet<string> = new Set(['href', 'alt']);
const FORM_ATTRS: ReadonlySet<string> = new Set(['action']);

function cleanHref(value: string): string {
  return decodeEntities(value).replace(URL_WHITESPACE, '').trim();
}

/** Extracts href/action URLs of <a>, <area> and <form> with the anchors' visible text. */
export function extractHtmlUrls(html: string, out: UrlCollector): void {
  if (!html || out.limited || html.indexOf('<') < 0) {
    return;
  }
  HTML_TAG.lastIndex = 0;
  let open: { url: string; textStart: number } | null = null;
  const closeAnchor = (textEnd: number): void => {
    if (open) {
      const text = visibleText(html.slice(open.textStart, Math.min(textEnd, open.textStart + MAX_ANCHOR_RAW)));
      out.add(open.url, 'html', text);
      open = null;
    }
  };
  let m: RegExpExecArray | null;
  while ((m = HTML_TAG.exec(html)) !== null) {
    const closing = m[1] === '/';
    const tag = m[2].toLowerCase();
    if (closing) {
      if (tag === 'a') {
        closeAnchor(m.index);
      }
      continue;
    }
    const scan = scanAttributes(
      html,
      m.index + m[0].length,
      tag === 'a' ? A_ATTRS : tag === 'area' ? AREA_ATTRS : FORM_ATTRS,
    );
    HTML_TAG.lastIndex = scan.end;
    if (tag === 'a') {
      // anchors do not nest: a new one ends the previous one
      closeAnchor(m.index);
      const href = scan.attrs.get('href');
      if (href !== undefined) {
        const url = cleanHref(href);
        if (HTTP_PREFIX.test(url)) {
          open = { url, textStart: scan.end };
        }
      }
    } else {
      const raw = scan.attrs.get(tag === 'form' ? 'action' : 'href');
      if (raw !== undefined) {
        const alt = tag === 'area' ? scan.attrs.get('alt') : undefined;
        out.add(cleanHref(raw), 'html', alt !== undefined ? visibleText(alt) : null);
      }
    }
    if (out.full && out.limited) {
      return;
    }
  }
  closeAnchor(html.length);
}
