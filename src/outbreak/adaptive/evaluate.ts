// Evaluation of the adaptive rules on one message (and on one URL at click time). The message is
// read once into a small context (sender, recipient, visible text, analysed URLs), then each group
// of rules adds hits; combination rules look at what the others found. Work is bounded: at most
// MAX_URLS URLs, MAX_ATTACHMENTS attachments, MAX_BODY characters of text and MAX_HTML characters
// of HTML are looked at, whatever the message.
import type { AttachmentInfo, ParsedMessage } from '../../mime/types.ts';
import type { MessageFacts, RuleHit } from '../types.ts';
import { addressesIn, firstAddress, fromMalformation, parseMailbox, type Mailbox } from './address.ts';
import { RULES, type AdaptiveRule, type RuleKey } from './catalogue.ts';
import { findLures, type LureFindings } from './content.ts';
import {
  ARCHIVE_EXTENSIONS,
  BRANDS,
  DANGEROUS_ATTACHMENT_EXTENSIONS,
  DISK_IMAGE_EXTENSIONS,
  DOCUMENT_EXTENSIONS,
  EXECUTABLE_EXTENSIONS,
  EXECUTABLE_TRUE_TYPES,
  EXPECTED_TRUE_TYPES,
  FREEMAIL_DOMAINS,
  HTML_ATTACHMENT_EXTENSIONS,
  MACRO_EXTENSIONS,
  SERVICE_WORDS,
  SHARED_SENDER_DOMAINS,
  SUSPICIOUS_TLDS,
  type Brand,
} from './lists.ts';
import { findDisguise, fold, hasInvisible, scanHtml, type HtmlScan } from './text.ts';
import { analyseUrl, brandFusedInDomain, brandOwns, domainNamedBy, hostInSet, type UrlFacts } from './url.ts';

const MAX_URLS = 300;
const MAX_ATTACHMENTS = 100;
const MAX_MEMBERS = 500;
const MAX_BODY = 12 * 1024;
const MAX_HTML = 512 * 1024;
const MAX_EVIDENCE = 120;

/** Weighted sum of the other rules' levels at which the combination rules fire. */
export const MULTIPLE_SIGNALS_SCORE = 3;
export const MANY_SIGNALS_SCORE = 6;

/**
 * Weight of a rule in the combination score when it is not its level: deadline language is
 * everyday marketing, so it counts half.
 */
const SCORE_WEIGHT: Partial<Record<RuleKey, number>> = { URGENCY: 0.5 };

/** Rules about one link among many: they say little about a message with links to many domains. */
const LINK_SIGNALS: ReadonlySet<RuleKey> = new Set([
  'URL_FREE_HOSTING',
  'URL_SUSPICIOUS_TLD',
  'URL_SHORTENER',
  'URL_IP_HOST_TEXT',
]);
/** Distinct link domains above which LINK_SIGNALS do not count towards the combination score. */
const MANY_LINK_DOMAINS = 10;

/** Combination rules: they restate what other rules found, so they do not add to the score again. */
const COMBINATIONS: ReadonlySet<RuleKey> = new Set([
  'BRAND_LURE',
  'CREDENTIAL_LURE_LINK',
  'ADVANCE_FEE_FRAUD',
  'FREE_MAIL_LURE',
  'HTML_ATTACHMENT_LURE',
  'MULTIPLE_SIGNALS',
  'MANY_SIGNALS',
]);

/** Language rules: words alone never add up to level 3, at least one technical sign must be there. */
const LANGUAGE_SIGNALS: ReadonlySet<RuleKey> = new Set([
  'CREDENTIAL_LURE',
  'DELIVERY_LURE',
  'PRIZE_LURE',
  'MONEY_LURE',
  'ADVANCE_FEE_LURE',
  'AUTHORITY_LURE',
  'CALLBACK_LURE',
  'VICE_LURE',
  'URGENCY',
]);

const CONTROL = /[\u0000-\u001f\u007f]+/g;

function evidence(s: string): string {
  const clean = s.replace(CONTROL, ' ').trim();
  return clean.length > MAX_EVIDENCE ? clean.slice(0, MAX_EVIDENCE - 1) + '…' : clean;
}

class Hits {
  private readonly byId = new Map<string, RuleHit>();
  private readonly keys_: RuleKey[] = [];

  add(key: RuleKey, ev: string, viral = false): void {
    const rule: AdaptiveRule = RULES[key];
    if (this.byId.has(rule.id)) {
      return;
    }
    this.keys_.push(key);
    this.byId.set(rule.id, {
      id: rule.id,
      level: rule.level,
      category: rule.category,
      type: rule.type,
      description: rule.description,
      viral,
      adaptive: true,
      evidence: evidence(ev),
    });
  }

  has(key: RuleKey): boolean {
    return this.byId.has(RULES[key].id);
  }

  keys(): RuleKey[] {
    return [...this.keys_];
  }

  list(): RuleHit[] {
    return [...this.byId.values()];
  }
}

interface Context {
  parsed: ParsedMessage;
  fromRaw: string;
  from: Mailbox | null;
  /** registrable domain of the From address */
  fromDomain: string | null;
  /** registrable domains the sender legitimately controls as far as we can tell (From, envelope, Sender, Return-Path) */
  senderDomains: Set<string>;
  freemailFrom: boolean;
  sharedFrom: boolean;
  recipient: string | null;
  subject: string;
  html: HtmlScan | null;
  /** folded subject, display name and visible body text */
  folded: string;
  bodyText: string;
  urls: Array<UrlFacts & { source: 'text' | 'html' }>;
  lures: LureFindings;
  hasListId: boolean;
}

function header(parsed: ParsedMessage, key: string): string | null {
  for (const h of parsed.headers) {
    if (h.key === key) {
      return h.value;
    }
  }
  return null;
}

/** The recipient's address from a To-like header; local (dotless) domains are accepted here. */
function recipientAddress(value: string | null): string | null {
  const first = firstAddress(value);
  if (first || !value) {
    return first;
  }
  const mb = parseMailbox(value.split(',')[0]);
  return mb && mb.local && mb.domain && /^[a-z0-9.-]+$/.test(mb.domain) ? mb.address : null;
}

function buildContext(facts: MessageFacts): Context {
  const parsed = facts.parsed;
  const fromRaw = parsed.from ?? header(parsed, 'from') ?? '';
  const from = parseMailbox(fromRaw);
  const fromDomain = from?.registrable ?? null;
  const senderDomains = new Set<string>();
  if (fromDomain) {
    senderDomains.add(fromDomain);
  }
  for (const v of [facts.sender, header(parsed, 'sender'), header(parsed, 'return-path')]) {
    const mb = v ? parseMailbox(v) : null;
    if (mb?.registrable) {
      senderDomains.add(mb.registrable);
    }
  }
  let recipient = recipientAddress(header(parsed, 'to'));
  if (!recipient || recipient.includes('undisclosed')) {
    recipient = recipientAddress(header(parsed, 'delivered-to') ?? header(parsed, 'x-original-to'));
  }

  const html = parsed.html ? scanHtml(parsed.html, MAX_HTML, MAX_BODY) : null;
  let bodyText = parsed.text.length > MAX_BODY ? parsed.text.slice(0, MAX_BODY) : parsed.text;
  if (html && bodyText.length < MAX_BODY) {
    bodyText += '\n' + html.text.slice(0, MAX_BODY - bodyText.length);
  }
  const subject = parsed.subject ?? '';
  const folded = `${fold(subject, 1024)} | ${fold(from?.display ?? '', 512)} | ${fold(bodyText, MAX_BODY + 1)}`;

  const urls: Array<UrlFacts & { source: 'text' | 'html' }> = [];
  for (const u of parsed.urls) {
    if (urls.length >= MAX_URLS) {
      break;
    }
    const f = analyseUrl(u.url, u.host, u.domain);
    if (f) {
      urls.push({ ...f, source: u.source });
    }
  }
  return {
    parsed,
    fromRaw,
    from,
    fromDomain,
    senderDomains,
    freemailFrom: fromDomain !== null && FREEMAIL_DOMAINS.has(fromDomain),
    sharedFrom: fromDomain !== null && SHARED_SENDER_DOMAINS.has(fromDomain),
    recipient,
    subject,
    html,
    folded,
    bodyText,
    urls,
    lures: findLures(folded),
    hasListId: header(parsed, 'list-id') !== null,
  };
}

// ---------------------------------------------------------------------------------------------
// attachments

/** Extensions of a file name, last first, lower case ("a.pdf.exe" → ["exe", "pdf"]). */
function extensions(name: string): string[] {
  let base = name;
  const slash = Math.max(base.lastIndexOf('/'), base.lastIndexOf('\\'));
  if (slash >= 0) {
    base = base.slice(slash + 1);
  }
  base = base.replace(/[\s.]+$/, '');
  const parts = base.split('.');
  if (parts.length < 2) {
    return [];
  }
  return parts
    .slice(1)
    .reverse()
    .map((p) => p.trim().toLowerCase());
}

function isDoubleExtension(name: string): boolean {
  const ext = extensions(name);
  return ext.length >= 2 && EXECUTABLE_EXTENSIONS.has(ext[0]) && DOCUMENT_EXTENSIONS.has(ext[1]);
}

/** A single compressed program: "report.scr.xz", "setup.exe.gz" (the archive may not be listable). */
function isCompressedExecutable(name: string): boolean {
  const ext = extensions(name);
  return ext.length >= 2 && ARCHIVE_EXTENSIONS.has(ext[0]) && EXECUTABLE_EXTENSIONS.has(ext[1]);
}

const PADDED_EXTENSION = /\s{4}\.?[a-z0-9]{1,5}$|_{6,}\.[a-z0-9]{1,5}$/i;
const GENERIC_TYPES =
  /^(?:application\/(?:octet-stream|x-unknown|binary|unknown|force-download|x-download|download)|binary\/|text\/plain$)/;
const DECLARED_FAMILY: Readonly<Record<string, RegExp>> = {
  pdf: /pdf/,
  doc: /ms-?word|msword|officedocument|opendocument|rtf/,
  docx: /word|officedocument|zip/,
  xls: /excel|officedocument|spreadsheet/,
  xlsx: /excel|officedocument|spreadsheet|zip/,
  ppt: /powerpoint|officedocument|presentation/,
  pptx: /powerpoint|officedocument|presentation|zip/,
  jpg: /^image\//,
  jpeg: /^image\//,
  png: /^image\//,
  gif: /^image\//,
  ics: /calendar/,
  zip: /zip|compressed/,
  html: /html/,
  htm: /html/,
};
/** "Password: 7741", "the password is x7Kq": a password handed over in the message. */
const PASSWORD_WORDS =
  /\b(?:password|passwort|kennwort|senha|contrase.a|mot de passe|wachtwoord|parola|pwd|pass(?:code)?)\b(?:\s*[:=-]|\s+(?:is|ist|est|e|é|es))\s*["'“«]?[^\s"'”»]{3,}/i;

function attachmentRules(ctx: Context, hits: Hits): void {
  let members = 0;
  for (const att of ctx.parsed.attachments.slice(0, MAX_ATTACHMENTS)) {
    const name = att.name;
    const ext = att.extension;
    const trueType = att.trueType;
    const label = name || att.declaredType;

    const disguise = name ? filenameDisguise(name) : null;
    if (disguise) {
      hits.add('FILENAME_DISGUISE', `${name} (${disguise})`, true);
    }
    if (name && isDoubleExtension(name)) {
      hits.add('DOUBLE_EXTENSION', name, true);
    }
    if (name && isCompressedExecutable(name)) {
      hits.add('ARCHIVE_EXECUTABLE', name, true);
    }
    if (trueType && EXECUTABLE_TRUE_TYPES.has(trueType) && !EXECUTABLE_EXTENSIONS.has(ext)) {
      hits.add('EXECUTABLE_DISGUISED', `${label} is ${trueType}`, true);
    } else if (DANGEROUS_ATTACHMENT_EXTENSIONS.has(ext) || (trueType && EXECUTABLE_TRUE_TYPES.has(trueType))) {
      hits.add('DANGEROUS_FILE_TYPE', label, true);
    }
    if (MACRO_EXTENSIONS.has(ext)) {
      hits.add('MACRO_DOCUMENT', label, true);
    }
    if (att.encrypted) {
      const password = PASSWORD_WORDS.exec(ctx.bodyText);
      if (password) {
        hits.add('ENCRYPTED_ARCHIVE_WITH_PASSWORD', `${label}; body says "${password[0]}"`, true);
      } else {
        hits.add('ENCRYPTED_ARCHIVE', label, true);
      }
    }
    if (HTML_ATTACHMENT_EXTENSIONS.has(ext) || (att.declaredType === 'text/html' && name)) {
      hits.add('HTML_ATTACHMENT', label, true);
    }
    checkTrueType(att, hits);
    checkDeclaredType(att, hits);

    for (const m of att.members) {
      if (members++ >= MAX_MEMBERS) {
        break;
      }
      const mext = m.extension;
      const where = `${label} → ${m.name}`;
      if (m.trueType && EXECUTABLE_TRUE_TYPES.has(m.trueType) && !EXECUTABLE_EXTENSIONS.has(mext)) {
        hits.add('EXECUTABLE_DISGUISED', `${where} is ${m.trueType}`, true);
      }
      if (
        EXECUTABLE_EXTENSIONS.has(mext) ||
        DISK_IMAGE_EXTENSIONS.has(mext) ||
        (m.trueType !== null && EXECUTABLE_TRUE_TYPES.has(m.trueType))
      ) {
        hits.add('ARCHIVE_EXECUTABLE', where, true);
      }
      if (isDoubleExtension(m.name)) {
        hits.add('DOUBLE_EXTENSION', where, true);
      }
      if (MACRO_EXTENSIONS.has(mext) || m.name.toLowerCase().endsWith('vbaproject.bin')) {
        hits.add('MACRO_DOCUMENT', where, true);
      }
      const mdisguise = filenameDisguise(m.name);
      if (mdisguise) {
        hits.add('FILENAME_DISGUISE', `${where} (${mdisguise})`, true);
      }
    }
  }
}

/** Why a file name is disguised, or null: look-alike tricks, any invisible character, a padded extension. */
function filenameDisguise(name: string): string | null {
  const d = findDisguise(name, 512);
  if (d && d.strength >= 3) {
    return d.kind;
  }
  if (hasInvisible(name.length > 512 ? name.slice(0, 512) : name)) {
    return 'invisible characters';
  }
  return PADDED_EXTENSION.test(name) ? 'padded extension' : null;
}

function checkTrueType(att: AttachmentInfo, hits: Hits): void {
  const trueType = att.trueType;
  if (!trueType || !att.extension || EXECUTABLE_TRUE_TYPES.has(trueType)) {
    return;
  }
  const expected = EXPECTED_TRUE_TYPES[att.extension];
  if (expected === undefined) {
    return;
  }
  if (expected.length === 0) {
    // text formats: only a binary container or program contradicts them
    if (!trueType.startsWith('text/') && trueType !== 'application/xml' && !trueType.startsWith('image/svg')) {
      hits.add('TRUE_TYPE_MISMATCH', `${att.name} is ${trueType}`, true);
    }
    return;
  }
  if (!expected.includes(trueType)) {
    hits.add('TRUE_TYPE_MISMATCH', `${att.name} is ${trueType}`, true);
  }
}

function checkDeclaredType(att: AttachmentInfo, hits: Hits): void {
  const family = DECLARED_FAMILY[att.extension];
  const declared = att.declaredType.toLowerCase();
  if (!family || GENERIC_TYPES.test(declared) || !declared.includes('/')) {
    return;
  }
  if (!family.test(declared)) {
    hits.add('DECLARED_TYPE_MISMATCH', `${att.name} sent as ${declared}`, true);
  }
}

// ---------------------------------------------------------------------------------------------
// HTML content

function htmlRules(ctx: Context, hits: Hits): void {
  const html = ctx.html;
  if (!html) {
    return;
  }
  if (html.passwordFields > 0) {
    hits.add('HTML_PASSWORD_FORM', `${html.passwordFields} password field(s)`);
  } else if (html.forms > 0 && html.secretInputs > 0) {
    hits.add('HTML_CREDENTIAL_FORM', `${html.forms} form(s) asking for secrets`);
  }
  if (html.hiddenChars >= 300) {
    hits.add('HIDDEN_TEXT', `${html.hiddenChars} hidden characters`);
  }
}

// ---------------------------------------------------------------------------------------------
// URLs

/** URL rules that need nothing but the URL (shared with click time). */
function urlOnlyRules(u: UrlFacts, hits: Hits, source: 'text' | 'html' | 'click'): void {
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

function urlRules(ctx: Context, hits: Hits): void {
  const r = ctx.recipient;
  const encoded = r && r.length >= 6 ? base64Forms(r) : [];
  for (const u of ctx.urls) {
    urlOnlyRules(u, hits, u.source);
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

function linkTextRules(ctx: Context, hits: Hits): void {
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

// ---------------------------------------------------------------------------------------------
// sender

interface BrandMatch {
  brand: Brand;
  phrase: string;
}

const brandPatterns: Array<{ brand: Brand; re: RegExp; phrase: string }> = [];
for (const brand of BRANDS) {
  for (const name of brand.names) {
    const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    brandPatterns.push({ brand, phrase: name, re: new RegExp(`(?:^|[^a-z0-9-])${escaped}(?:$|[^a-z0-9-])`) });
  }
}

function findBrand(folded: string): BrandMatch | null {
  if (!folded) {
    return null;
  }
  for (const { brand, re, phrase } of brandPatterns) {
    if (re.test(folded)) {
      return { brand, phrase };
    }
  }
  return null;
}

const serviceWords = new RegExp(
  `(?:^|[^a-z])(?:${SERVICE_WORDS.map((w) => w.replace(/[-]/g, '[-_ ]?')).join('|')})(?:$|[^a-z])`,
);

/** Why an address looks machine-generated, or null. `localWritten` is the local part as written (with its case). */
function randomSender(mb: Mailbox, localWritten: string): string | null {
  const labels = mb.domain.split('.');
  let single = 0;
  for (const l of labels) {
    if (l.length === 1) {
      single++;
    }
  }
  if (single >= 4) {
    return 'chain of one-letter labels';
  }
  if (labels.length >= 7) {
    return `${labels.length} labels`;
  }
  const first = (mb.registrable ?? '').split('.')[0] ?? '';
  if (first.length >= 8 && alternations(first, isDigitCode) >= 4 && countOf(first, isDigitCode) >= 2) {
    return 'random letters and digits';
  }
  // random capitals in the local part as written ("xunIqVya"): the parsed address is lower case
  const local = localWritten.toLowerCase() === mb.local ? localWritten : '';
  if (local.length >= 6 && /^[A-Za-z]+$/.test(local) && alternations(local, isUpperCode) >= 4) {
    return 'random capitals';
  }
  return null;
}

function isDigitCode(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isUpperCode(c: number): boolean {
  return c >= 0x41 && c <= 0x5a;
}

function countOf(s: string, pred: (c: number) => boolean): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    if (pred(s.charCodeAt(i))) {
      n++;
    }
  }
  return n;
}

/** How often `pred` changes value along `s` (hyphens skipped). */
function alternations(s: string, pred: (c: number) => boolean): number {
  let switches = 0;
  let prev: boolean | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x2d) {
      continue;
    }
    const v = pred(c);
    if (prev !== null && prev !== v) {
      switches++;
    }
    prev = v;
  }
  return switches;
}

/** A mixed-case token of 10+ letters and digits at the end of a subject ("… - hSCXPVFj7yxfmvG"). */
function randomToken(subject: string): string | null {
  const m = /([A-Za-z0-9]{10,40})\W*$/.exec(subject.length > 400 ? subject.slice(-400) : subject);
  if (!m) {
    return null;
  }
  const t = m[1];
  const upper = countOf(t, isUpperCode);
  const lower = countOf(t, (c) => c >= 0x61 && c <= 0x7a);
  if (upper >= 2 && lower >= 2 && alternations(t, isUpperCode) >= 5) {
    return t;
  }
  return null;
}

/**
 * The text with the letter swaps phishing uses to spell a brand so filters miss it undone: a
 * capital I after a small letter read as l ("PayPaI"), a small l opening a capitalised word read
 * as I ("lTAUCARD"), 0 and 1 between letters read as o and l ("Netfl1x").
 */
function undoLetterSwaps(s: string): string {
  const out: string[] = [];
  for (let i = 0; i < s.length && i < 1024; i++) {
    const c = s[i];
    const prev = out.length ? out[out.length - 1] : '';
    const next = s[i + 1] ?? '';
    const isLower = (x: string): boolean => x >= 'a' && x <= 'z';
    const isUpper = (x: string): boolean => x >= 'A' && x <= 'Z';
    const isLetter = (x: string): boolean => isLower(x) || isUpper(x);
    if (c === 'I' && isLower(prev)) {
      out.push('l');
    } else if (c === 'l' && !isLetter(prev) && isUpper(next)) {
      out.push('I');
    } else if ((c === '0' || c === '1') && isLetter(prev) && isLetter(next)) {
      out.push(c === '0' ? 'o' : 'l');
    } else {
      out.push(c);
    }
  }
  return out.join('');
}

/** A brand named only once the letter swaps are undone. */
function swappedBrand(s: string): BrandMatch | null {
  const undone = undoLetterSwaps(s);
  if (undone === s.slice(0, 1024)) {
    return null;
  }
  const after = findBrand(fold(undone, 1024));
  if (!after) {
    return null;
  }
  const before = findBrand(fold(s, 1024));
  return before && before.brand === after.brand ? null : after;
}

const GREETING =
  /\b(?:dear|hello|hi|hey|greetings|good (?:morning|afternoon|evening|day)|ola|oi|prezado|prezada|caro|cara|bonjour|hallo|guten tag|liebe|lieber|hola|estimado|estimada|beste|geachte|ciao|gentile)\b[\s,:]{0,3}$/;

/** The greeting that addresses the recipient by address ("Dear jane@example.com,"), or null. */
function greetingAddress(body: string, recipient: string): string | null {
  const lower = body.length > 4096 ? body.slice(0, 4096).toLowerCase() : body.toLowerCase();
  let at = lower.indexOf(recipient);
  for (let n = 0; at >= 0 && n < 5; n++) {
    const before = lower.slice(Math.max(0, at - 30), at);
    const m = GREETING.exec(before.replace(/\s+/g, ' '));
    if (m) {
      return `${m[0]}${recipient}`.slice(0, 80);
    }
    at = lower.indexOf(recipient, at + recipient.length);
  }
  return null;
}

function rawLocalPart(fromRaw: string): string {
  const lt = fromRaw.lastIndexOf('<');
  const inner = lt >= 0 ? fromRaw.slice(lt + 1) : fromRaw;
  const at = inner.indexOf('@');
  return at > 0 ? inner.slice(0, at).trim() : '';
}

function senderRules(ctx: Context, hits: Hits): BrandMatch | null {
  const from = ctx.from;
  if (!from) {
    return null;
  }
  const malformed = fromMalformation(ctx.fromRaw, from);
  if (malformed) {
    hits.add('FROM_MALFORMED', `${malformed}: ${ctx.fromRaw.slice(0, 80)}`);
  }

  const display = from.display;
  const displayFolded = fold(display, 512);
  // an address in the display name that is not the sender's
  if (display) {
    const viaList = ctx.hasListId && / via /i.test(display);
    for (const a of addressesIn(display)) {
      const mb = parseMailbox(a);
      if (a !== from.address && mb && mb.registrable !== ctx.fromDomain && !viaList) {
        hits.add('DISPLAY_NAME_ADDRESS', `"${display.slice(0, 60)}" <${from.address}>`);
        break;
      }
    }
  }

  let brandMatch: BrandMatch | null = null;
  const b = findBrand(displayFolded);
  if (b && !brandOwns(b.brand, ctx.fromDomain)) {
    brandMatch = b;
    if (ctx.freemailFrom || ctx.sharedFrom) {
      hits.add('BRAND_FREE_MAIL', `"${display.slice(0, 60)}" <${from.address}> (${b.brand.name})`);
    } else {
      hits.add('DISPLAY_NAME_BRAND', `"${display.slice(0, 60)}" <${from.address}> (${b.brand.name})`);
    }
  } else if (display && !b) {
    // a domain written the way addresses are (lower case, or www.), not a title like "News.com"
    const named =
      /(?:^|[\s"'([])(?:www\.)?[a-z0-9-]+\.[a-z]{2,}(?:$|[\s"')\]])/.test(display) || /www\./i.test(display)
        ? domainNamedBy(display.toLowerCase())
        : null;
    if (named && ctx.fromDomain && named !== ctx.fromDomain && !ctx.senderDomains.has(named)) {
      hits.add('DISPLAY_NAME_BRAND', `"${display.slice(0, 60)}" <${from.address}> (names ${named})`);
    }
  }
  const lookalike = brandFusedInDomain(ctx.fromDomain);
  if (lookalike) {
    hits.add('SENDER_BRAND_LOOKALIKE', `${from.address} (${lookalike.name})`);
    brandMatch ??= { brand: lookalike, phrase: ctx.fromDomain ?? '' };
  }
  if (ctx.freemailFrom && !brandMatch && serviceWords.test(displayFolded)) {
    hits.add('SERVICE_NAME_FREE_MAIL', `"${display.slice(0, 60)}" <${from.address}>`);
  }
  if (ctx.sharedFrom) {
    hits.add('SHARED_PLATFORM_SENDER', from.address);
  }
  const random = from.domain ? randomSender(from, rawLocalPart(ctx.fromRaw)) : null;
  if (random) {
    hits.add('RANDOM_SENDER', `${from.address} (${random})`);
  }
  if (/\d{6}/.test(display.replace(/[\s.-]/g, ''))) {
    hits.add('DISPLAY_NAME_CODE', display.slice(0, 80));
  }
  const token = randomToken(ctx.subject);
  if (token) {
    hits.add('RANDOM_TOKEN_SUBJECT', token);
  }

  const replyTo = parseMailbox(header(ctx.parsed, 'reply-to'));
  if (
    replyTo?.registrable &&
    FREEMAIL_DOMAINS.has(replyTo.registrable) &&
    replyTo.address !== from.address &&
    replyTo.local !== from.local
  ) {
    hits.add('REPLY_TO_FREE_MAIL', `Reply-To ${replyTo.address} for ${from.address}`);
  }

  for (const [where, text] of [
    ['subject', ctx.subject],
    ['display name', display],
  ] as const) {
    const d = findDisguise(text);
    if (d && d.strength >= 3) {
      hits.add('DISGUISED_TEXT', `${where} (${d.kind}): ${text.slice(0, 60)}`);
    } else if (d) {
      hits.add('STYLED_TEXT', `${where}: ${text.slice(0, 60)}`);
    }
    const swapped = swappedBrand(text);
    if (swapped) {
      hits.add('DISGUISED_TEXT', `${where} spells ${swapped.brand.name} with look-alike letters: ${text.slice(0, 60)}`);
    }
  }

  const r = ctx.recipient;
  if (r && r.length >= 6 && r !== from.address) {
    const greeting = greetingAddress(ctx.bodyText, r);
    if (ctx.subject.toLowerCase().includes(r)) {
      hits.add('RECIPIENT_ADDRESS_QUOTED', `subject: ${ctx.subject.slice(0, 80)}`);
    } else if (display.toLowerCase().includes(r)) {
      hits.add('RECIPIENT_ADDRESS_QUOTED', `display name: ${display.slice(0, 80)}`);
    } else if (greeting) {
      hits.add('RECIPIENT_ADDRESS_QUOTED', `greeting: ${greeting}`);
    }
  }
  const tld = from.domain.slice(from.domain.lastIndexOf('.') + 1);
  if (from.registrable && SUSPICIOUS_TLDS.has(tld)) {
    hits.add('SENDER_SUSPICIOUS_TLD', from.domain);
  }
  return brandMatch;
}

// ---------------------------------------------------------------------------------------------
// lures and combinations

function lureRules(ctx: Context, hits: Hits): void {
  const { counts, evidence: ev } = ctx.lures;
  if (counts.credential > 0) {
    hits.add('CREDENTIAL_LURE', ev.credential ?? '');
  }
  if (counts.delivery > 0) {
    hits.add('DELIVERY_LURE', ev.delivery ?? '');
  }
  if (counts.prize > 0) {
    hits.add('PRIZE_LURE', ev.prize ?? '');
  }
  if (counts.money > 0) {
    hits.add('MONEY_LURE', ev.money ?? '');
  }
  if (counts.advance > 0) {
    hits.add('ADVANCE_FEE_LURE', ev.advance ?? '');
  }
  if (counts.authority > 0) {
    hits.add('AUTHORITY_LURE', ev.authority ?? '');
  }
  if (counts.callback > 0) {
    const phone = PHONE.exec(ctx.bodyText);
    if (phone) {
      hits.add('CALLBACK_LURE', `"${ev.callback ?? ''}", ${phone[0].trim()}`);
    }
  }
  if (counts.vice > 0) {
    hits.add('VICE_LURE', ev.vice ?? '');
  }
  if (counts.urgency > 0) {
    hits.add('URGENCY', ev.urgency ?? '');
  }
}

const PHONE = /(?:\+\d{1,3}[\s.-]?)?(?:\(\d{3}\)|\b\d{3})[\s.-]?\d{3}[\s.-]?\d{4}\b/;

/** Words that present an attachment as a business document (the usual wrapping of HTML-attachment phishing). */
const BUSINESS_DOCUMENT =
  /\b(?:invoice|order|payment|remittance|statement|receipt|purchase|quotation|quote|rfq|proforma|po\b|swift|wire|transfer|voice ?mail|voice message|fax|scan(?:ned)?|document|contract|agreement|shipping|delivery|bill|billing|account|fatura|boleto|comprovante|pedido|rechnung|zahlung|facture|factura|pago|nota fiscal)/;

const DOCUMENT_ATTACHMENT = new Set([
  'pdf',
  'doc',
  'docx',
  'xls',
  'xlsx',
  'rtf',
  'odt',
  'html',
  'htm',
  'shtml',
  'svg',
  'zip',
  'rar',
  '7z',
  'ics',
]);

function combinationRules(ctx: Context, hits: Hits, brand: BrandMatch | null): void {
  const { counts, evidence: ev } = ctx.lures;
  const lureKind = (['credential', 'delivery', 'authority', 'callback', 'money', 'prize', 'advance'] as const).find(
    (k) => counts[k] > 0,
  );
  if (brand && lureKind) {
    hits.add('BRAND_LURE', `${brand.brand.name}; "${ev[lureKind] ?? ''}"`);
  } else if (counts.credential + counts.delivery + counts.callback > 0) {
    // the subject names a brand that does not own the sender domain, and the lure is about an account or a parcel
    const inSubject = findBrand(fold(ctx.subject, 1024)) ?? swappedBrand(ctx.subject);
    if (inSubject && !brandOwns(inSubject.brand, ctx.fromDomain)) {
      const kind = counts.credential ? 'credential' : counts.delivery ? 'delivery' : 'callback';
      hits.add('BRAND_LURE', `subject names ${inSubject.brand.name}; "${ev[kind] ?? ''}"`);
    }
  }
  if (
    counts.advance >= 2 ||
    (counts.advance > 0 && (hits.has('REPLY_TO_FREE_MAIL') || ctx.freemailFrom || counts.money > 0))
  ) {
    hits.add('ADVANCE_FEE_FRAUD', `"${ev.advance ?? ''}"`);
  }
  if (ctx.freemailFrom || ctx.sharedFrom) {
    const doc = ctx.parsed.attachments.find((a) => DOCUMENT_ATTACHMENT.has(a.extension));
    const strong = counts.credential + counts.delivery + counts.authority + (hits.has('CALLBACK_LURE') ? 1 : 0) > 0;
    let business: string | null = null;
    if (strong) {
      const named = findBrand(ctx.folded);
      business =
        (named && `names ${named.brand.name}`) ||
        (doc && `attaches ${doc.name}`) ||
        (hits.has('DISPLAY_NAME_CODE') && 'reference number in the name') ||
        (hits.has('SERVICE_NAME_FREE_MAIL') && 'service name') ||
        null;
    } else if (counts.money > 0 && doc) {
      business = `attaches ${doc.name} to "${ev.money ?? ''}"`;
    }
    if (business) {
      hits.add(
        'FREE_MAIL_LURE',
        `${ctx.from?.address ?? ''} ${business}`,
        Boolean(doc) && business.startsWith('attaches'),
      );
    }
  }
  const htmlAttachment = ctx.parsed.attachments.find(
    (a) => HTML_ATTACHMENT_EXTENSIONS.has(a.extension) || (a.declaredType === 'text/html' && a.name),
  );
  if (htmlAttachment) {
    const anyLure = Object.entries(counts).some(([k, n]) => k !== 'urgency' && n > 0);
    const document = BUSINESS_DOCUMENT.exec(fold(`${ctx.subject} ${htmlAttachment.name}`, 1024));
    if (document) {
      hits.add('HTML_ATTACHMENT_LURE', `${htmlAttachment.name} ("${document[0]}")`, true);
    } else if (anyLure && (ctx.freemailFrom || ctx.sharedFrom)) {
      hits.add('HTML_ATTACHMENT_LURE', `${htmlAttachment.name} from ${ctx.from?.address ?? ''}`, true);
    }
  }
  if (counts.credential > 0) {
    const away = ctx.urls.find((u) => u.domain === null || !ctx.senderDomains.has(u.domain));
    const home = ctx.urls.some((u) => u.domain !== null && ctx.senderDomains.has(u.domain));
    if (away && !home) {
      hits.add('CREDENTIAL_LURE_LINK', `"${ev.credential ?? ''}" → ${away.host}`);
    }
  }
  const linkDomains = new Set(ctx.urls.map((u) => u.domain ?? u.host)).size;
  let score = 0;
  let counted = 0;
  let technical = false;
  for (const key of hits.keys()) {
    if (COMBINATIONS.has(key) || (LINK_SIGNALS.has(key) && linkDomains > MANY_LINK_DOMAINS)) {
      continue;
    }
    score += SCORE_WEIGHT[key] ?? RULES[key].level;
    counted++;
    technical ||= !LANGUAGE_SIGNALS.has(key);
  }
  if (counted < 2 || !technical) {
    return;
  }
  if (score >= MANY_SIGNALS_SCORE) {
    hits.add('MANY_SIGNALS', `score ${score}: ${topIds(hits)}`);
  } else if (score >= MULTIPLE_SIGNALS_SCORE) {
    hits.add('MULTIPLE_SIGNALS', `score ${score}: ${topIds(hits)}`);
  }
}

function topIds(hits: Hits): string {
  return hits
    .list()
    .map((h) => h.id.replace(/^ADAPTIVE_/, ''))
    .join(',');
}

// ---------------------------------------------------------------------------------------------
// entry points

/** Runs every adaptive rule on a message. */
export function evaluateMessage(facts: MessageFacts): RuleHit[] {
  const ctx = buildContext(facts);
  const hits = new Hits();
  attachmentRules(ctx, hits);
  htmlRules(ctx, hits);
  urlRules(ctx, hits);
  const brand = senderRules(ctx, hits);
  lureRules(ctx, hits);
  combinationRules(ctx, hits, brand);
  return hits.list();
}

/** Runs the URL-only adaptive rules on one URL (click time). */
export function evaluateUrl(url: string): RuleHit[] {
  const u = analyseUrl(url.length > 8192 ? url.slice(0, 8192) : url);
  if (!u) {
    return [];
  }
  const hits = new Hits();
  urlOnlyRules(u, hits, 'click');
  if (u.freeHosting) {
    hits.add('URL_FREE_HOSTING', u.url);
  }
  return hits.list();
}

export { hostInSet };
