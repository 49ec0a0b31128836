// Adaptive rules on the sender: brand impersonation in the display name or address, random-looking
// senders, look-alike and free-mail senders.
import { addressesIn, fromMalformation, parseMailbox, type Mailbox } from './address.ts';
import { BRANDS, FREEMAIL_DOMAINS, SERVICE_WORDS, SUSPICIOUS_TLDS, type Brand } from './lists.ts';
import { findDisguise, fold } from './text.ts';
import { brandFusedInDomain, brandOwns, domainNamedBy } from './url.ts';
import { Hits, header, type Context } from './context.ts';

// ---------------------------------------------------------------------------------------------
// sender

export interface BrandMatch {
  brand: Brand;
  phrase: string;
}

/** One pattern per brand name, closed on both sides (a name inside a longer word is not the brand). */
export const BRAND_NAME_PATTERNS: Array<{ brand: Brand; re: RegExp; phrase: string }> = [];
const brandPatterns = BRAND_NAME_PATTERNS;
for (const brand of BRANDS) {
  for (const name of brand.names) {
    const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    brandPatterns.push({ brand, phrase: name, re: new RegExp(`(?:^|[^a-z0-9-])${escaped}(?:$|[^a-z0-9-])`) });
  }
}

export function findBrand(folded: string): BrandMatch | null {
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

/** The service-desk words of SERVICE_WORDS as whole words. */
export const SERVICE_NAME = new RegExp(
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
export function swappedBrand(s: string): BrandMatch | null {
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

/** A visible subject followed by a long run of spaces and a short trailing token ("Lowest rates       ihsxq"). */
const SUBJECT_PADDING = /\S[ \t\u00a0]{6,}[^\s]{1,24}\s*$/;

/** True when at least `ratio` of the letters of `s` (with at least `min` letters) are capitals. */
function shoutingIn(s: string, min: number, ratio: number): boolean {
  const t = s.length > 4096 ? s.slice(0, 4096) : s;
  let letters = 0;
  let upper = 0;
  for (let i = 0; i < t.length; i++) {
    const c = t.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) {
      upper++;
      letters++;
    } else if (c >= 0x61 && c <= 0x7a) {
      letters++;
    }
  }
  return letters >= min && upper >= ratio * letters;
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

/**
 * Parts only machine reports carry: delivery status (RFC 3464, RFC 6533), read receipts (RFC 8098) and
 * abuse reports (RFC 5965). A "report" without one is a message dressed up as a bounce.
 */
const REPORT_PART = /^message\/(?:(?:global-)?delivery-status|(?:global-)?disposition-notification|feedback-report)$/;

/**
 * Subjects (folded: lower case, no accents) of bounces and auto-replies from programs that write neither
 * a report part nor Auto-Submitted.
 */
export const AUTOMATED_SUBJECT =
  /^(?:undeliver(?:able|ed)|delivery (?:status notification|failure|has failed)|returned mail|mail delivery (?:failed|failure|system)|failure notice|non-?delivery|out of (?:the )?office|automatic reply|auto-?(?:reply|response)|autoreply|abwesenheit|automatische antwort|unzustellbar|reponse automatique|respuesta automatica|resposta automatica)(?![a-z])/;

/**
 * Why a message sent with the null envelope sender is a notice the null sender is meant for (RFC 5321
 * §4.5.5, RFC 3834 §3.3), or null: a report part, Auto-Submitted, a mailer daemon, a bounce or auto-reply subject.
 */
function automatedNotice(ctx: Context): string | null {
  if (ctx.parsed.parts.some((p) => REPORT_PART.test(p.contentType))) {
    return 'report';
  }
  const auto = header(ctx.parsed, 'auto-submitted');
  if ((auto !== null && !/^\s*no\b/i.test(auto)) || header(ctx.parsed, 'x-autoreply') !== null) {
    return 'auto-submitted';
  }
  if (/^(?:mailer-daemon|postmaster)$/.test(ctx.from?.local ?? '')) {
    return 'mailer daemon';
  }
  return AUTOMATED_SUBJECT.test(fold(ctx.subject, 200)) ? 'subject' : null;
}

/** The words bulk mailers put in To instead of an address ("<Undisclosed.Recipients@host>"). */
export const UNDISCLOSED_RECIPIENTS = /(?<![a-z])undisclosed[\s._-]?recipients?(?![a-z])/;

/**
 * A To header that names no recipient: an empty group ("undisclosed-recipients:;", what MTAs write when
 * every recipient was a blind copy) or a stand-in address written instead.
 */
function hidesRecipients(to: string): boolean {
  const colon = to.indexOf(':');
  return (colon > 0 && /^\s*;/.test(to.slice(colon + 1))) || UNDISCLOSED_RECIPIENTS.test(to.toLowerCase());
}

function rawLocalPart(fromRaw: string): string {
  const lt = fromRaw.lastIndexOf('<');
  const inner = lt >= 0 ? fromRaw.slice(lt + 1) : fromRaw;
  const at = inner.indexOf('@');
  return at > 0 ? inner.slice(0, at).trim() : '';
}

export function senderRules(ctx: Context, hits: Hits): BrandMatch | null {
  // the null sender is for notices about other mail; on anything else it means no bounce can come back
  // and no sender domain is checked. Unknown (null) is not the null sender ("").
  if (ctx.envelopeSender === '' && !automatedNotice(ctx)) {
    const shown = ctx.from?.address ?? ctx.fromRaw.trim().slice(0, 60);
    hits.add('NULL_SENDER', shown ? `MAIL FROM:<>, From ${shown}` : 'MAIL FROM:<>, no From address');
  }
  const to = header(ctx.parsed, 'to');
  if (to !== null && hidesRecipients(to)) {
    hits.add('UNDISCLOSED_RECIPIENTS', `To: ${to.slice(0, 60)}`);
  }
  const from = ctx.from;
  if (!from) {
    return null;
  }
  // webmail and mail apps write a plain-text part beside the HTML; a free mailbox sending HTML alone is
  // a bulk-mailing tool wearing a person's address
  if (ctx.freemailFrom && /\S/.test(ctx.parsed.html) && !/\S/.test(ctx.parsed.text)) {
    hits.add('FREE_MAIL_HTML_ONLY', from.address);
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
  if (ctx.freemailFrom && !brandMatch && SERVICE_NAME.test(displayFolded)) {
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
  const padded = SUBJECT_PADDING.exec(ctx.subject.length > 400 ? ctx.subject.slice(-400) : ctx.subject);
  if (padded) {
    hits.add('SUBJECT_PADDED', ctx.subject.trim().slice(0, 80));
  }
  const shouting = shoutingIn(ctx.subject, 10, 0.7) ? 'subject' : shoutingIn(ctx.bodyText, 200, 0.3) ? 'body' : null;
  if (shouting) {
    hits.add('SHOUTING', `${shouting}: ${(shouting === 'subject' ? ctx.subject : ctx.bodyText).trim().slice(0, 60)}`);
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

  // body words mixing scripts or carrying foreign marks ("Kееріng уоur іnfоrmаtіоn"): invisible characters
  // alone do not count there, modern newsletters pad their preheaders with them
  const inBody = findDisguise(ctx.bodyText, 4096);
  if (inBody && (inBody.kind === 'mixed-script word' || inBody.kind === 'foreign combining marks')) {
    hits.add('DISGUISED_TEXT', `body (${inBody.kind})`);
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
