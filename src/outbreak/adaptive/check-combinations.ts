// Adaptive lure rules (from the lures found in the text) and the combination rules that weigh what the
// other rules found.
import { RULES } from './catalogue.ts';
import { HTML_ATTACHMENT_EXTENSIONS } from './lists.ts';
import { fold } from './text.ts';
import { brandOwns } from './url.ts';
import { findBrand, swappedBrand, type BrandMatch } from './check-sender.ts';
import {
  COMBINATIONS,
  Hits,
  LANGUAGE_SIGNALS,
  LINK_SIGNALS,
  MANY_LINK_DOMAINS,
  MANY_SIGNALS_SCORE,
  MULTIPLE_SIGNALS_SCORE,
  SCORE_WEIGHT,
  type Context,
} from './context.ts';

// ---------------------------------------------------------------------------------------------
// lures and combinations

export function lureRules(ctx: Context, hits: Hits): void {
  const { counts, evidence: ev } = ctx.lures;
  // account wording is everyday service mail ("mailbox full", "update your profile") until something
  // leads the reader away from the sender's own domain: a foreign link, a form posting elsewhere, a local page
  if (counts.credential > 0 && ctx.away) {
    hits.add('CREDENTIAL_LURE', `"${ev.credential ?? ''}", ${ctx.away}`);
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
export const BUSINESS_DOCUMENT =
  /(?<![a-z])(?:invoice|order|payment|remittance|statement|receipt|purchase|quotation|quote|rfq|proforma|po|swift|wire|transfer|voice ?mail|voice message|fax|scan(?:ned)?|document|contract|agreement|shipping|delivery|bill|billing|account|fatura|boleto|comprovante|pedido|rechnung|zahlung|facture|factura|pago|nota fiscal)s?(?![a-z])/;

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

export function combinationRules(ctx: Context, hits: Hits, brand: BrandMatch | null): void {
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
    // file names run words together ("PaymentAdvice.htm"): split them where the case changes
    const name = htmlAttachment.name.replace(/([a-z])(?=[A-Z])/g, '$1 ');
    const document = BUSINESS_DOCUMENT.exec(fold(`${ctx.subject} ${name}`, 1024));
    if (document) {
      hits.add('HTML_ATTACHMENT_LURE', `${htmlAttachment.name} ("${document[0]}")`, true);
    } else if (anyLure && (ctx.freemailFrom || ctx.sharedFrom)) {
      hits.add('HTML_ATTACHMENT_LURE', `${htmlAttachment.name} from ${ctx.from?.address ?? ''}`, true);
    }
  }
  if (counts.credential > 0 && ctx.away && !ctx.home) {
    hits.add('CREDENTIAL_LURE_LINK', `"${ev.credential ?? ''}" → ${ctx.away}`);
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
