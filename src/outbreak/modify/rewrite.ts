// Link rewriting and disclaimer insertion on decoded text. Message content is attacker
// controlled: every scan is a forward pass with simple regexes (no nested quantifiers) or a
// hand-written character loop, linear in the input.
import { domainToASCII } from 'node:url';

/** An exception thrown by the caller's wrap / isOwnLink, passed through to the caller as is. */
export class CallbackError extends Error {
  constructor(cause: unknown) {
    super('URL rewriting callback failed', { cause });
    this.name = 'CallbackError';
  }
}

/** Decides and performs the rewriting of one URL; shared by all parts of a message. */
export class LinkRewriter {
  /** original URLs rewritten, de-duplicated, at most `maxListed` */
  readonly rewritten: string[] = [];
  /** set when more URLs were rewritten than listed */
  truncated = false;
  private readonly seen = new Set<string>();
  private readonly cache = new Map<string, string | null>();
  private readonly bypass: Set<string>;
  private readonly wrap: (url: string) => string;
  private readonly isOwnLink: (url: string) => boolean;
  private readonly maxListed: number;

  constructor(
    bypassDomains: readonly string[],
    wrap: (url: string) => string,
    isOwnLink: (url: string) => boolean,
    maxListed = 1000,
  ) {
    this.bypass = new Set();
    for (const d of bypassDomains) {
      const n = normalizeBypass(d);
      if (n) {
        this.bypass.add(n);
      }
    }
    this.wrap = wrap;
    this.isOwnLink = isOwnLink;
    this.maxListed = maxListed;
  }

  /** The replacement for `url` (an http(s) URL as the reader's client sees it), or null to keep it. */
  rewrite(url: string): string | null {
    const cached = this.cache.get(url);
    if (cached !== undefined) {
      this.record(url, cached);
      return cached;
    }
    let wrapped: string | null = null;
    try {
      if (!this.isOwnLink(url) && !this.bypassed(url)) {
        wrapped = this.wrap(url);
      }
    } catch (err) {
      throw new CallbackError(err);
    }
    const out = typeof wrapped === 'string' && wrapped && wrapped !== url ? wrapped : null;
    if (this.cache.size < 100_000) {
      this.cache.set(url, out);
    }
    this.record(url, out);
    return out;
  }

  private record(url: string, out: string | null): void {
    if (out === null || this.seen.has(url)) {
      return;
    }
    if (this.rewritten.length >= this.maxListed) {
      this.truncated = true;
      return;
    }
    this.seen.add(url);
    this.rewritten.push(url);
  }

  /** True when the host the browser would contact is a bypass domain (or below one) or a bypassed IP. */
  bypassed(url: string): boolean {
    if (!this.bypass.size) {
      return false;
    }
    let host: string;
    try {
      host = new URL(url).hostname.toLowerCase();
    } catch {
      return false;
    }
    if (host.startsWith('[')) {
      return this.bypass.has(host);
    }
    if (host.endsWith('.')) {
      host = host.slice(0, -1);
    }
    if (this.bypass.has(host)) {
      return true;
    }
    if (/^[0-9.]+$/.test(host)) {
      // IPv4 literals only match exactly
      return false;
    }
    for (let dot = host.indexOf('.'); dot >= 0; dot = host.indexOf('.', dot + 1)) {
      if (this.bypass.has(host.slice(dot + 1))) {
        return true;
      }
    }
    return false;
  }
}

/** Canonical form of a bypass entry: ASCII (punycode) lower-case host, IPv6 in brackets. */
function normalizeBypass(entry: string): string | null {
  let d = entry.trim().toLowerCase();
  d = d.replace(/^\*?\.+/, '').replace(/\.+$/, '');
  if (!d) {
    return null;
  }
  if (d.includes(':')) {
    const bare = d.replace(/^\[|\]$/g, '');
    try {
      return new URL(`http://[${bare}]/`).hostname;
    } catch {
      return null;
    }
  }
  try {
    const host = new URL(`http://${d}/`).hostname;
    return host || null;
  } catch {
    const ascii = domainToASCII(d);
    return ascii || null;
  }
}

// ---------------------------------------------------------------------------------------------
// HTML

// numeric references with any number of leading zeros, and named references (a browser decodes
// "&#0000104;" and "&colon;", so the URL check must too)
const ENTITY = /&(?:#0*([0-9]{1,7})|#[xX]0*([0-9a-fA-F]{1,6})|([a-zA-Z][a-zA-Z0-9]{1,9}));?/g;

const NAMED: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  nbsp: '\u00a0',
  colon: ':',
  sol: '/',
  bsol: '\\',
  period: '.',
  comma: ',',
  semi: ';',
  quest: '?',
  num: '#',
  equals: '=',
  excl: '!',
  percnt: '%',
  plus: '+',
  lowbar: '_',
  hyphen: '-',
  dash: '-',
  dollar: '$',
  ast: '*',
  commat: '@',
  lpar: '(',
  rpar: ')',
  lsqb: '[',
  rsqb: ']',
  lbrack: '[',
  rbrack: ']',
  lcub: '{',
  rcub: '}',
  lbrace: '{',
  rbrace: '}',
  verbar: '|',
  vert: '|',
  grave: '`',
  hat: '^',
  tilde: '~',
  tab: '\t',
  newline: '\n',
  shy: '',
  zwnj: '',
  zwj: '',
};

function entityReplace(m: string, dec: string | undefined, hex: string | undefined, name: string | undefined): string {
  if (dec !== undefined || hex !== undefined) {
    const code = dec !== undefined ? parseInt(dec, 10) : parseInt(hex as string, 16);
    if (!Number.isFinite(code) || code <= 0 || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
      return '\ufffd';
    }
    return String.fromCodePoint(code);
  }
  const named = NAMED[(name as string).toLowerCase()];
  return named ?? m;
}

/** Decodes numeric and the named references that matter in URLs. */
export function decodeHtmlEntities(s: string): string {
  return s.indexOf('&') < 0 ? s : s.replace(ENTITY, entityReplace);
}

/** The URL a browser follows for an href value: entities decoded, controls trimmed, tab/newline removed. */
export function cleanHref(value: string): string {
  return decodeHtmlEntities(value)
    .replace(/[\t\n\r]/g, '')
    .replace(/^[\x00-\x20]+|[\x00-\x20]+$/g, '');
}

const HTTP_SCHEME = /^https?:/i;

/** An href that leads to http(s): absolute, or scheme-relative ("//host", read as https). */
function linkTarget(url: string): string | null {
  if (HTTP_SCHEME.test(url)) {
    return url;
  }
  if (url.startsWith('//') && url.length > 2) {
    return 'https:' + url;
  }
  return null;
}

function escapeAttr(value: string, quote: '"' | "'" | ''): string {
  let out = value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  if (quote !== "'") {
    out = out.replace(/"/g, '&quot;');
  }
  if (quote !== '"') {
    out = out.replace(/'/g, '&#39;');
  }
  if (quote === '') {
    out = out
      .replace(/=/g, '&#61;')
      .replace(/`/g, '&#96;')
      .replace(/[\s]/g, (c) => encodeURIComponent(c));
  }
  return out;
}

// Opening <a> and <area> tags. The lookahead keeps <abbr>, <address> and friends out.
const LINK_TAG = /<(a|area)(?=[\s/>])/gi;

function isAttrSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0c || c === 0x0d;
}

interface HrefSpan {
  /** offset of the value (after the opening quote) */
  start: number;
  /** offset after the value (before the closing quote) */
  end: number;
  quote: '"' | "'" | '';
}

/** Reads a tag's attributes from `pos` (after the tag name); returns the end of the tag and the first href. */
function scanTag(html: string, pos: number): { end: number; href: HrefSpan | null } {
  const len = html.length;
  let href: HrefSpan | null = null;
  let i = pos;
  while (i < len) {
    let c = html.charCodeAt(i);
    if (isAttrSpace(c) || c === 0x2f) {
      i++;
      continue;
    }
    if (c === 0x3e) {
      return { end: i + 1, href };
    }
    const nameStart = i;
    while (i < len) {
      c = html.charCodeAt(i);
      if (isAttrSpace(c) || c === 0x3d || c === 0x3e || (c === 0x2f && i > nameStart)) {
        break;
      }
      i++;
    }
    const isHref = i - nameStart === 4 && html.slice(nameStart, i).toLowerCase() === 'href';
    while (i < len && isAttrSpace(html.charCodeAt(i))) {
      i++;
    }
    if (html.charCodeAt(i) !== 0x3d) {
      continue;
    }
    i++;
    while (i < len && isAttrSpace(html.charCodeAt(i))) {
      i++;
    }
    c = html.charCodeAt(i);
    let span: HrefSpan;
    if (c === 0x22 || c === 0x27) {
      const close = html.indexOf(c === 0x22 ? '"' : "'", i + 1);
      const valueEnd = close < 0 ? len : close;
      span = { start: i + 1, end: valueEnd, quote: c === 0x22 ? '"' : "'" };
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
      span = { start: valueStart, end: i, quote: '' };
    }
    if (isHref && !href) {
      href = span;
    }
  }
  return { end: len, href };
}

/** Rewrites the href of every <a> and <area> that leads to http(s). Returns the new HTML (or the same string). */
export function rewriteHtmlLinks(html: string, rewriter: LinkRewriter): string {
  if (html.indexOf('<') < 0) {
    return html;
  }
  const out: string[] = [];
  let copied = 0;
  LINK_TAG.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = LINK_TAG.exec(html)) !== null) {
    const scan = scanTag(html, m.index + m[0].length);
    LINK_TAG.lastIndex = Math.max(scan.end, m.index + 1);
    const href = scan.href;
    if (!href) {
      continue;
    }
    // an unterminated quoted value runs to the end of the document: not a link a client shows
    if (href.quote && href.end >= html.length) {
      continue;
    }
    const target = linkTarget(cleanHref(html.slice(href.start, href.end)));
    if (!target) {
      continue;
    }
    const wrapped = rewriter.rewrite(target);
    if (wrapped === null) {
      continue;
    }
    out.push(html.slice(copied, href.start), asciiHtml(escapeAttr(wrapped, href.quote)));
    copied = href.end;
  }
  if (!out.length) {
    return html;
  }
  out.push(html.slice(copied));
  return out.join('');
}

// ---------------------------------------------------------------------------------------------
// Plain text

const TEXT_URL = /https?:\/\//gi;

function percentEncode(c: string): string {
  try {
    return encodeURIComponent(c);
  } catch {
    return '%EF%BF%BD';
  }
}

function endsUrl(c: number): boolean {
  return (
    c <= 0x20 ||
    c === 0x7f ||
    c === 0x3c /* < */ ||
    c === 0x3e /* > */ ||
    c === 0x22 /* " */ ||
    c === 0x60 /* ` */ ||
    c === 0xa0 ||
    (c >= 0x2000 && c <= 0x200b) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000 ||
    c === 0xfeff
  );
}

const TRAILING = new Set(['.', ',', ';', ':', '!', '?', "'", '*']);
const PAIRS: Record<string, string> = { ')': '(', ']': '[', '}': '{' };

/** Drops trailing punctuation that ends a sentence rather than the URL (unbalanced closing brackets too). */
function trimUrl(url: string, minLength: number): string {
  const balance: Record<string, number> = { '(': 0, '[': 0, '{': 0 };
  for (let i = 0; i < url.length; i++) {
    const c = url[i];
    if (c === '(' || c === '[' || c === '{') {
      balance[c]++;
    } else if (c === ')' || c === ']' || c === '}') {
      balance[PAIRS[c]]--;
    }
  }
  let end = url.length;
  while (end > minLength) {
    const last = url[end - 1];
    if (TRAILING.has(last)) {
      end--;
      continue;
    }
    const open = PAIRS[last];
    if (open && balance[open] < 0) {
      balance[open]++;
      end--;
      continue;
    }
    break;
  }
  return url.slice(0, end);
}

/** Rewrites bare http(s) URLs in plain text. Returns the new text (or the same string). */
export function rewriteTextLinks(text: string, rewriter: LinkRewriter): string {
  const out: string[] = [];
  let copied = 0;
  TEXT_URL.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = TEXT_URL.exec(text)) !== null) {
    const start = m.index;
    let end = start + m[0].length;
    while (end < text.length && !endsUrl(text.charCodeAt(end))) {
      end++;
    }
    TEXT_URL.lastIndex = end;
    const url = trimUrl(text.slice(start, end), m[0].length);
    if (url.length <= m[0].length) {
      continue;
    }
    const wrapped = rewriter.rewrite(url);
    if (wrapped === null) {
      continue;
    }
    out.push(text.slice(copied, start), wrapped.replace(/[\s<>"]|[^\x00-\x7f]/gu, percentEncode));
    copied = start + url.length;
  }
  if (!out.length) {
    return text;
  }
  out.push(text.slice(copied));
  return out.join('');
}

// ---------------------------------------------------------------------------------------------
// Disclaimers

/** The line break a decoded text uses (its first one), else `fallback`. */
export function textLineBreak(text: string, fallback: string): string {
  const nl = text.indexOf('\n');
  if (nl < 0) {
    return fallback;
  }
  return nl > 0 && text.charCodeAt(nl - 1) === 0x0d ? '\r\n' : '\n';
}

function normalizeBreaks(s: string, eol: string): string {
  return s.replace(/\r\n|\r|\n/g, eol);
}

/** Text disclaimer followed by a blank line, above the text (after a byte order mark). */
export function insertTextDisclaimer(text: string, disclaimer: string, eol: string): { text: string; added: string } {
  const bom = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const block = normalizeBreaks(disclaimer.replace(/(?:\r?\n|\r)+$/, ''), eol) + eol + eol;
  if (text.startsWith(block, bom)) {
    return { text, added: '' };
  }
  return { text: text.slice(0, bom) + block + text.slice(bom), added: block };
}

const SKIP_CONTENT = /^<(script|style|title|textarea|xmp)(?=[\s/>])/i;

/**
 * Where an HTML disclaimer goes: right after the <body> tag (outside comments, scripts and
 * styles), else after </head>, else after the <html> tag, else at the start.
 */
export function htmlInsertPoint(html: string): number {
  const len = html.length;
  let headEnd = -1;
  let htmlTagEnd = -1;
  let i = html.indexOf('<');
  while (i >= 0 && i < len) {
    if (html.startsWith('<!--', i)) {
      const close = html.indexOf('-->', i + 4);
      if (close < 0) {
        break;
      }
      i = html.indexOf('<', close + 3);
      continue;
    }
    const head = html.slice(i, i + 12);
    const skip = SKIP_CONTENT.exec(head);
    if (skip) {
      const closeTag = new RegExp('</' + skip[1], 'gi');
      closeTag.lastIndex = i + 1;
      const found = closeTag.exec(html);
      const close = found ? found.index : -1;
      if (close < 0) {
        break;
      }
      i = html.indexOf('<', close + 2);
      continue;
    }
    if (/^<body(?=[\s/>])/i.test(head)) {
      return scanTag(html, i + 5).end;
    }
    if (headEnd < 0 && /^<\/head(?=[\s>])/i.test(head)) {
      const gt = html.indexOf('>', i);
      headEnd = gt < 0 ? len : gt + 1;
    } else if (htmlTagEnd < 0 && /^<html(?=[\s/>])/i.test(head)) {
      htmlTagEnd = scanTag(html, i + 5).end;
    }
    i = html.indexOf('<', i + 1);
  }
  if (headEnd >= 0) {
    return headEnd;
  }
  if (htmlTagEnd >= 0) {
    return htmlTagEnd;
  }
  return html.charCodeAt(0) === 0xfeff ? 1 : 0;
}

export function insertHtmlDisclaimer(html: string, disclaimer: string, eol: string): { html: string; added: string } {
  const at = htmlInsertPoint(html);
  const block = normalizeBreaks(disclaimer, eol);
  if (!block || html.startsWith(block, at)) {
    return { html, added: '' };
  }
  return { html: html.slice(0, at) + block + html.slice(at), added: block };
}

/** Non-ASCII characters as numeric character references: the same markup in any ASCII-compatible charset. */
export function asciiHtml(html: string): string {
  return html.replace(/[^\x00-\x7f]/gu, (c) => `&#x${(c.codePointAt(0) as number).toString(16)};`);
}

/**
 * Points <meta> charset declarations at UTF-8, for an HTML part converted to UTF-8 (a client
 * that believes the meta over the MIME header would otherwise misread it).
 */
export function retargetMetaCharset(html: string): string {
  const re = /<meta(?=[\s/>])/gi;
  const out: string[] = [];
  let copied = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(html)) !== null) {
    const gt = html.indexOf('>', m.index);
    if (gt < 0) {
      break;
    }
    re.lastIndex = gt + 1;
    const tag = html.slice(m.index, gt + 1);
    const fixed = tag.replace(/(charset\s*=\s*["']?)[^"'\s;/>]+/i, '$1utf-8');
    if (fixed !== tag) {
      out.push(html.slice(copied, m.index), fixed);
      copied = gt + 1;
    }
  }
  if (!out.length) {
    return html;
  }
  out.push(html.slice(copied));
  return out.join('');
}
