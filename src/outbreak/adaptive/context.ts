// The context the adaptive rules read a message through (sender, recipient, visible text, analysed URLs,
// lures), built once per message with bounded work, and the hit list they add to.
import type { ParsedMessage } from '../../mime/types.ts';
import type { MessageFacts, RuleHit } from '../types.ts';
import { firstAddress, parseMailbox, type Mailbox } from './address.ts';
import { RULES, type AdaptiveRule, type RuleKey } from './catalogue.ts';
import { findLures, type LureFindings } from './content.ts';
import { FREEMAIL_DOMAINS, HTML_ATTACHMENT_EXTENSIONS, SHARED_SENDER_DOMAINS } from './lists.ts';
import { registrableDomain, urlHost } from '../../mime/urls.ts';
import { fold, scanHtml, type HtmlScan } from './text.ts';
import { analyseUrl, type UrlFacts } from './url.ts';

export const MAX_URLS = 300;
export const MAX_ATTACHMENTS = 100;
export const MAX_MEMBERS = 500;
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
export const SCORE_WEIGHT: Partial<Record<RuleKey, number>> = { URGENCY: 0.5, SHOUTING: 0.5 };

/** Rules about one link among many: they say little about a message with links to many domains. */
export const LINK_SIGNALS: ReadonlySet<RuleKey> = new Set([
  'URL_FREE_HOSTING',
  'URL_SUSPICIOUS_TLD',
  'URL_SHORTENER',
  'URL_IP_HOST_TEXT',
]);
/** Distinct link domains above which LINK_SIGNALS do not count towards the combination score. */
export const MANY_LINK_DOMAINS = 10;

/** Combination rules: they restate what other rules found, so they do not add to the score again. */
export const COMBINATIONS: ReadonlySet<RuleKey> = new Set([
  'BRAND_LURE',
  'CREDENTIAL_LURE_LINK',
  'ADVANCE_FEE_FRAUD',
  'FREE_MAIL_LURE',
  'HTML_ATTACHMENT_LURE',
  'MULTIPLE_SIGNALS',
  'MANY_SIGNALS',
]);

/** Language rules: words alone never add up to level 3, at least one technical sign must be there. */
export const LANGUAGE_SIGNALS: ReadonlySet<RuleKey> = new Set([
  'CREDENTIAL_LURE',
  'DELIVERY_LURE',
  'PRIZE_LURE',
  'MONEY_LURE',
  'ADVANCE_FEE_LURE',
  'AUTHORITY_LURE',
  'CALLBACK_LURE',
  'VICE_LURE',
  'SHOUTING',
  'URGENCY',
]);

const CONTROL = /[\u0000-\u001f\u007f]+/g;

export function evidence(s: string): string {
  const clean = s.replace(CONTROL, ' ').trim();
  return clean.length > MAX_EVIDENCE ? clean.slice(0, MAX_EVIDENCE - 1) + '…' : clean;
}

export class Hits {
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

export interface Context {
  parsed: ParsedMessage;
  /** envelope sender: "" for the null sender (MAIL FROM:<>), null when no envelope is known */
  envelopeSender: string | null;
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
  /**
   * What leads the reader away from the sender's organisational (registrable) domains, for evidence:
   * a link to another domain or a bare IP, a form posting to one, or a local HTML page attached; null
   * when everything stays with the sender.
   */
  away: string | null;
  /** some link goes to one of the sender's own domains */
  home: boolean;
}

export function header(parsed: ParsedMessage, key: string): string | null {
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

export function buildContext(facts: MessageFacts): Context {
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
  let away: string | null = null;
  let home = false;
  for (const u of urls) {
    if (u.domain !== null && senderDomains.has(u.domain)) {
      home = true;
    } else {
      away ??= `link to ${u.host}`;
    }
  }
  for (const action of html?.formActions ?? []) {
    const host = /^https?:\/\//i.test(action) ? urlHost(action) : null;
    const domain = host ? registrableDomain(host) : null;
    if (host && (domain === null || !senderDomains.has(domain))) {
      away = `form posting to ${host}`;
      break;
    }
  }
  if (!away) {
    const page = parsed.attachments.find(
      (a) => HTML_ATTACHMENT_EXTENSIONS.has(a.extension) || (a.declaredType === 'text/html' && a.name),
    );
    away = page ? `local page ${page.name}` : null;
  }
  return {
    parsed,
    envelopeSender: facts.sender,
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
    away,
    home,
  };
}
