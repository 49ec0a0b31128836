// The pages end users see at click time (DESIGN §1, §4.6): warning, block, invalid link, error, and the
// "link not opened" page behind "Go back". Self-contained HTML (inline CSS and SVG, no script, no
// external request except an optional branded logo), one accessible layout, light and dark.
// Everything that can come from a URL, a token or a verdict goes through escapeHtml().
import { domainToUnicode } from 'node:url';
import { getDomain } from 'tldts';
import type { ClickSource } from './verdict.ts';

export interface Branding {
  /** name shown in the header and the text, e.g. "Breakwater" or "Contoso Mail Security" */
  productName: string;
  /** http(s) URL, data:image/… URL or same-origin path of a logo (shown at 28 px high) */
  logoUrl?: string;
  /** who to contact, e.g. "IT Service Desk, ext. 4357" */
  contactText?: string;
  /** http(s), mailto: or tel: link for the contact text */
  contactUrl?: string;
}

export interface Page {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface WarningPageInfo {
  /** the destination (an absolute http(s) URL) */
  url: string;
  /** why the link is suspicious, from the verdict (plain text) */
  reason: string;
  ruleIds: readonly string[];
  mid: number;
  /** form action of "Continue", e.g. "/c/<token>/continue" */
  continueAction: string;
  /** href of "Go back", e.g. "/back" */
  backHref: string;
  /** what the verdict rests on (named in the technical details; "message" also changes the wording) */
  source?: ClickSource;
}

export interface BlockPageInfo {
  url: string;
  reason: string;
  ruleIds: readonly string[];
  mid: number;
  backHref: string;
  source?: ClickSource;
}

const SOURCE_LABELS: Record<ClickSource, string> = {
  allow_list: 'Allow list',
  block_list: 'Block list',
  url_rules: 'Threat rules for this address (checked now)',
  url_at_rewrite: 'Threat rules for this address (when the email was scanned)',
  message: 'Threat level of the email',
  none: '',
};

function sourceLabel(source: ClickSource | undefined): string {
  return source ? escapeHtml(SOURCE_LABELS[source] ?? '') : '';
}

/** why a link cannot be opened: a damaged or altered token, an expired one, or a non-web destination */
export type InvalidLinkKind = 'malformed' | 'bad_signature' | 'expired' | 'unsupported';

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for HTML element content and double- or single-quoted attribute values. */
export function escapeHtml(s: string): string {
  return String(s).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

interface PreparedBranding {
  name: string;
  brandHtml: string;
  contactHtml: string;
  imgSrc: string;
}

const prepared = new WeakMap<Branding, PreparedBranding>();

function prepare(b: Branding): PreparedBranding {
  let p = prepared.get(b);
  if (p) return p;
  const name = (b.productName ?? '').trim() || 'Breakwater';
  let imgSrc = "'self' data:";
  let logo = '';
  const logoUrl = b.logoUrl?.trim();
  if (logoUrl) {
    if (/^https?:\/\//i.test(logoUrl)) {
      try {
        const u = new URL(logoUrl);
        imgSrc = u.origin;
        logo = u.href;
      } catch {
        // an unparsable logo URL is left out
      }
    } else if (/^data:image\/(png|gif|jpeg|webp|svg\+xml)[;,]/i.test(logoUrl) || /^\/(?!\/)/.test(logoUrl)) {
      logo = logoUrl;
    }
  }
  const mark = logo
    ? `<img class="logo" src="${escapeHtml(logo)}" alt="" height="28">`
    : `<svg class="logo" viewBox="0 0 24 24" width="28" height="28" aria-hidden="true" focusable="false"><path fill="currentColor" d="M12 2 4 5v6c0 5 3.4 9.4 8 11 4.6-1.6 8-6 8-11V5l-8-3Zm0 2.2 6 2.2V11c0 3.9-2.5 7.4-6 8.9-3.5-1.5-6-5-6-8.9V6.4l6-2.2Z"/></svg>`;
  const brandHtml = `${mark}<span class="product">${escapeHtml(name)}</span><span class="service">Link protection</span>`;
  let contactHtml = '';
  const contactText = b.contactText?.trim();
  const contactUrl = b.contactUrl?.trim();
  const safeContactUrl = contactUrl && /^(https?:\/\/|mailto:|tel:)/i.test(contactUrl) ? contactUrl : '';
  if (contactText || safeContactUrl) {
    const label = escapeHtml(contactText || safeContactUrl.replace(/^(mailto|tel):/i, ''));
    contactHtml = safeContactUrl ? `<a href="${escapeHtml(safeContactUrl)}">${label}</a>` : label;
  }
  p = { name, brandHtml, contactHtml, imgSrc };
  prepared.set(b, p);
  return p;
}

/**
 * Response headers of every page: a CSP that allows nothing but inline style, the logo and form posts
 * to this service (plus `formActionExtra`: the destination a form post may be redirected to, which
 * Chromium checks against form-action too), no framing, no referrer, no caching.
 */
export function pageHeaders(branding: Branding, formActionExtra?: string): Record<string, string> {
  const b = prepare(branding);
  const formAction = formActionExtra ? `'self' ${formActionExtra}` : "'self'";
  return {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Security-Policy': `default-src 'none'; style-src 'unsafe-inline'; img-src ${b.imgSrc}; form-action ${formAction}; frame-ancestors 'none'; base-uri 'none'`,
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'no-referrer',
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    'X-Robots-Tag': 'noindex, nofollow',
  };
}

/**
 * The CSP source a form post to `url` may be redirected to: its origin, or its scheme when the origin
 * cannot be written as a CSP host source (IPv6 literals).
 */
export function formActionSource(url: string): string {
  const u = new URL(url);
  return u.hostname.startsWith('[') ? u.protocol : u.origin;
}

const CSS = `
:root{color-scheme:light dark;--bg:#eef1f5;--card:#fff;--text:#1b1f24;--muted:#4a525c;--line:#d5dae1;--brand:#0f2a44;--brand-text:#fff;--primary:#0b57d0;--primary-hover:#0842a0;--primary-text:#fff;--code-bg:#f4f6f8;--focus:#f59e0b;--tone-bg:#fff4d6;--tone-line:#b35900;--tone-text:#6b3400}
.tone-block{--tone-bg:#fde8e8;--tone-line:#b3261e;--tone-text:#7f1d1d}
.tone-info{--tone-bg:#e8f0fe;--tone-line:#1a56c4;--tone-text:#173f8a}
.tone-ok{--tone-bg:#e6f4ea;--tone-line:#1e7e34;--tone-text:#14532d}
@media (prefers-color-scheme:dark){:root{--bg:#0f1317;--card:#1a1f25;--text:#e7eaee;--muted:#b2bac4;--line:#39414b;--brand:#0b1d30;--primary:#8ab4f8;--primary-hover:#aecbfa;--primary-text:#0b1d30;--code-bg:#12171c;--tone-bg:#3a2a0b;--tone-line:#f0a33a;--tone-text:#ffd9a0}
.tone-block{--tone-bg:#3b1416;--tone-line:#f28b82;--tone-text:#ffc9c4}.tone-info{--tone-bg:#132640;--tone-line:#8ab4f8;--tone-text:#c7dbff}.tone-ok{--tone-bg:#10301b;--tone-line:#81c995;--tone-text:#c4ecd0}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--text);font:16px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans",sans-serif}
a{color:var(--primary)}
a:hover{color:var(--primary-hover)}
:focus-visible{outline:3px solid var(--focus);outline-offset:2px}
.brandbar{background:var(--brand);color:var(--brand-text)}
.brandbar .in{max-width:46rem;margin:0 auto;padding:.75rem 1.25rem;display:flex;align-items:center;gap:.6rem}
.logo{height:28px;width:auto;flex:none}
.product{font-weight:650;font-size:1.05rem;letter-spacing:.01em}
.service{margin-left:auto;font-size:.85rem;opacity:.85}
main{max-width:46rem;margin:2rem auto;padding:0 1.25rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:14px;box-shadow:0 1px 2px rgba(0,0,0,.06),0 8px 24px rgba(15,42,68,.08);overflow:hidden}
.banner{display:flex;align-items:center;gap:.75rem;padding:.9rem 1.75rem;background:var(--tone-bg);color:var(--tone-text);border-bottom:3px solid var(--tone-line);font-weight:650;font-size:.95rem;letter-spacing:.02em;text-transform:uppercase}
.banner svg{flex:none;color:var(--tone-line)}
.body{padding:1.5rem 1.75rem 1.75rem}
h1{font-size:1.75rem;line-height:1.25;margin:0 0 .75rem}
h2{font-size:1rem;margin:1.5rem 0 .4rem}
p{margin:0 0 .75rem}
.lead{font-size:1.08rem}
.muted{color:var(--muted)}
.dest{margin:1.25rem 0;padding:1rem 1.25rem;border:1px solid var(--line);border-left:5px solid var(--tone-line);border-radius:10px;background:var(--code-bg)}
.dest h2{margin:0 0 .25rem;font-size:.8rem;text-transform:uppercase;letter-spacing:.06em;color:var(--muted)}
.host{margin:0 0 .5rem;font-size:1.55rem;line-height:1.3;font-weight:500;overflow-wrap:anywhere}
.host strong{font-weight:800}
.url{display:block;margin:0;max-height:9.5em;overflow:auto;font:.9rem/1.5 ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;color:var(--muted);word-break:break-all}
.note{margin:.6rem 0 0;font-size:.92rem;color:var(--tone-text)}
.dest .note{color:var(--text)}
ul{margin:.25rem 0 0;padding-left:1.25rem}
li{margin:.25rem 0}
.actions{display:flex;flex-wrap:wrap;align-items:center;gap:.75rem;margin-top:1.75rem}
.actions form{margin:0}
.btn{display:inline-flex;align-items:center;justify-content:center;min-height:2.75rem;padding:.6rem 1.2rem;border-radius:8px;font:inherit;font-weight:600;text-decoration:none;cursor:pointer;border:1px solid transparent;max-width:100%;overflow-wrap:anywhere;text-align:center}
.btn-primary{background:var(--primary);color:var(--primary-text)}
.btn-primary:hover{background:var(--primary-hover);color:var(--primary-text)}
.btn-secondary{background:transparent;color:var(--text);border-color:var(--muted)}
.btn-secondary:hover{background:var(--code-bg)}
details{margin-top:1.75rem;border-top:1px solid var(--line);padding-top:1rem;font-size:.92rem}
summary{cursor:pointer;color:var(--muted);font-weight:600}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.35rem 1rem;margin:.75rem 0 0}
dt{color:var(--muted)}
dd{margin:0;overflow-wrap:anywhere}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:.9em}
footer{max-width:46rem;margin:0 auto 2rem;padding:0 1.25rem;color:var(--muted);font-size:.9rem;text-align:center}
footer p{margin:.3rem 0}
@media (max-width:560px){main{margin:1rem auto;padding:0 .75rem}.banner,.body{padding-left:1.1rem;padding-right:1.1rem}h1{font-size:1.4rem}.host{font-size:1.25rem}.actions{flex-direction:column;align-items:stretch}.actions .btn{width:100%}.service{display:none}dl{grid-template-columns:1fr}dd{margin-bottom:.4rem}}
`.trim();

const ICONS = {
  warn: '<path fill="currentColor" d="M12 2 1 21h22L12 2Zm0 4.3L19.5 19h-15L12 6.3ZM11 10v5h2v-5h-2Zm0 6v2h2v-2h-2Z"/>',
  block:
    '<path fill="currentColor" d="M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20Zm0 2a8 8 0 0 1 6.3 12.9L7.1 5.7A8 8 0 0 1 12 4ZM5.7 7.1l11.2 11.2A8 8 0 0 1 5.7 7.1Z"/>',
  info: '<path fill="currentColor" d="M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20Zm0 2a8 8 0 1 1 0 16 8 8 0 0 1 0-16Zm-1 4v2h2V8h-2Zm0 4v5h2v-5h-2Z"/>',
  ok: '<path fill="currentColor" d="M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20Zm0 2a8 8 0 1 1 0 16 8 8 0 0 1 0-16Zm4.3 4.3L10.5 14l-2.8-2.8-1.4 1.4 4.2 4.2 7.2-7.1-1.4-1.4Z"/>',
};

type Tone = 'warn' | 'block' | 'info' | 'ok';

function layout(
  b: PreparedBranding,
  o: { title: string; tone: Tone; banner: string; content: string; extraFooter?: string },
): string {
  const contact = b.contactHtml ? `<p>Questions or think this is a mistake? Contact ${b.contactHtml}.</p>` : '';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(o.title)} · ${escapeHtml(b.name)}</title>
<style>${CSS}</style>
</head>
<body class="tone-${o.tone}">
<header class="brandbar"><div class="in">${b.brandHtml}</div></header>
<main>
<div class="card">
<div class="banner"><svg viewBox="0 0 24 24" width="24" height="24" aria-hidden="true" focusable="false">${ICONS[o.tone]}</svg><span>${escapeHtml(o.banner)}</span></div>
<div class="body">
${o.content}
</div>
</div>
</main>
<footer>${contact}${o.extraFooter ?? ''}<p>Protected by ${escapeHtml(b.name)}</p></footer>
</body>
</html>
`;
}

/** The host with its registrable domain in bold, as browsers show it in the address bar. */
function hostHtml(u: URL): string {
  const hostname = u.hostname;
  const port = u.port ? `:${u.port}` : '';
  const domain = hostname.startsWith('[') ? null : getDomain(hostname, { allowPrivateDomains: false });
  if (domain && hostname.endsWith('.' + domain)) {
    const sub = hostname.slice(0, hostname.length - domain.length);
    return `<span class="sub">${escapeHtml(sub)}</span><strong>${escapeHtml(domain)}</strong>${escapeHtml(port)}`;
  }
  return `<strong>${escapeHtml(hostname)}</strong>${escapeHtml(port)}`;
}

/** Warnings about tricks that make a URL look like another site. */
function urlNotes(u: URL): string {
  const notes: string[] = [];
  if (u.username || u.password) {
    const shown = decodeURIComponentSafe(u.username);
    notes.push(
      `The link starts with “${escapeHtml(shown)}@”, which can make it look like a different site. It really goes to the address above.`,
    );
  }
  if (!u.hostname.startsWith('[')) {
    const unicode = domainToUnicode(u.hostname);
    if (unicode && unicode !== u.hostname)
      notes.push(
        `This address uses international characters. In the email it may look like “${escapeHtml(unicode)}”, which can imitate a different site.`,
      );
  }
  return notes.map((n) => `<p class="note">${n}</p>`).join('');
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function detailsHtml(rows: Array<[string, string]>): string {
  const items = rows
    .filter(([, v]) => v !== '')
    .map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${v}</dd>`)
    .join('');
  return `<details><summary>Technical details</summary><dl>${items}</dl></details>`;
}

function ruleList(ids: readonly string[]): string {
  return ids.map((id) => `<code>${escapeHtml(id)}</code>`).join(', ');
}

function page(branding: Branding, status: number, html: string, formActionExtra?: string): Page {
  return { status, headers: pageHeaders(branding, formActionExtra), body: html };
}

/** 200: a suspicious link. Names the real destination; "Continue" posts to `continueAction`. */
export function renderWarningPage(branding: Branding, info: WarningPageInfo): Page {
  const b = prepare(branding);
  const u = new URL(info.url);
  const host = escapeHtml(u.host);
  const reason = info.reason.trim();
  const lead =
    info.source === 'message'
      ? `You clicked a link in an email that ${escapeHtml(b.name)} rated as a likely threat, such as phishing or malware. Links in such an email may lead to a harmful site even when the site itself is not known yet.`
      : `You clicked a link in an email. ${escapeHtml(b.name)} checked where it leads and found signs of phishing or malware.`;
  const content = `<h1>This link may not be safe</h1>
<p class="lead">${lead}</p>
<section class="dest" aria-labelledby="dest-label">
<h2 id="dest-label">This link goes to</h2>
<p class="host">${hostHtml(u)}</p>
<code class="url" tabindex="0" aria-label="Full address">${escapeHtml(u.href)}</code>
${urlNotes(u)}
</section>
<h2>Why you are seeing this</h2>
<p>${reason ? escapeHtml(reason) : 'The site or the way the link is written resembles known attacks.'}</p>
<h2>Before you continue</h2>
<ul>
<li>Continue only if you expected this email and you know and trust <strong>${host}</strong>.</li>
<li>Never enter your password, payment or personal details on a page you reached from an unexpected link.</li>
</ul>
<div class="actions">
<a class="btn btn-primary" href="${escapeHtml(info.backHref)}">Go back</a>
<form method="post" action="${escapeHtml(info.continueAction)}"><button type="submit" class="btn btn-secondary">Continue to ${host}</button></form>
</div>
${detailsHtml([
  ['Verdict', 'Suspicious'],
  ['Based on', sourceLabel(info.source)],
  ['Rules', ruleList(info.ruleIds)],
  ['Message reference', info.mid > 0 ? `MID ${info.mid}` : ''],
  ['Checked at', escapeHtml(new Date().toISOString().replace('T', ' ').slice(0, 19) + ' UTC')],
])}`;
  return page(
    branding,
    200,
    layout(b, { title: 'Suspicious link', tone: 'warn', banner: 'Warning: suspicious link', content }),
    formActionSource(u.href),
  );
}

/** 403: a malicious link. Names the site as text only: there is no way to the destination. */
export function renderBlockPage(branding: Branding, info: BlockPageInfo): Page {
  const b = prepare(branding);
  const u = new URL(info.url);
  const reason = info.reason.trim();
  const content = `<h1>This link has been blocked</h1>
<p class="lead">${escapeHtml(b.name)} stopped this link because it leads to a site known to be dangerous. Your organization does not allow opening it.</p>
<section class="dest" aria-labelledby="dest-label">
<h2 id="dest-label">Blocked site</h2>
<p class="host">${hostHtml(u)}</p>
${urlNotes(u)}
</section>
<h2>Why it was blocked</h2>
<p>${reason ? escapeHtml(reason) : 'The site is used for phishing or to spread malware.'}</p>
<h2>What you can do</h2>
<ul>
<li>Close this tab and delete the email if you did not expect it.</li>
<li>If you already entered a password on a similar page, change it now and tell your IT team.</li>
</ul>
<div class="actions">
<a class="btn btn-primary" href="${escapeHtml(info.backHref)}">Go back</a>
</div>
${detailsHtml([
  ['Verdict', 'Malicious'],
  ['Based on', sourceLabel(info.source)],
  ['Address', `<code>${escapeHtml(u.href)}</code>`],
  ['Rules', ruleList(info.ruleIds)],
  ['Message reference', info.mid > 0 ? `MID ${info.mid}` : ''],
  ['Checked at', escapeHtml(new Date().toISOString().replace('T', ' ').slice(0, 19) + ' UTC')],
])}`;
  return page(
    branding,
    403,
    layout(b, { title: 'Link blocked', tone: 'block', banner: 'Blocked: dangerous link', content }),
  );
}

/** 400: the link cannot be opened (damaged, altered, expired, or not a web address). Never redirects. */
export function renderInvalidLinkPage(branding: Branding, kind: InvalidLinkKind): Page {
  const b = prepare(branding);
  const name = escapeHtml(b.name);
  let title: string;
  let content: string;
  if (kind === 'expired') {
    title = 'Link expired';
    content = `<h1>This link has expired</h1>
<p class="lead">Links in email are protected by ${name} for a limited time, and this one is too old to be opened.</p>
<h2>What you can do</h2>
<ul>
<li>If you still need the page, ask the sender for a new link.</li>
<li>Or go to the site yourself by typing its address, rather than following an old link.</li>
</ul>`;
  } else if (kind === 'unsupported') {
    title = 'Link not supported';
    content = `<h1>This link cannot be opened</h1>
<p class="lead">It does not lead to a web page, so ${name} will not open it.</p>
<h2>What you can do</h2>
<ul><li>Ask the sender what the link was meant to do.</li></ul>`;
  } else {
    title = 'Invalid link';
    content = `<h1>This link is not valid</h1>
<p class="lead">The link you followed is incomplete or has been changed, so ${name} cannot tell where it leads. For your safety it will not be opened.</p>
<h2>What you can do</h2>
<ul>
<li>Go back to the email and click the link again.</li>
<li>If you copied the link, make sure you copied all of it.</li>
</ul>`;
  }
  return page(branding, 400, layout(b, { title, tone: 'info', banner: 'Link not opened', content }));
}

/** Any other status (404, 405, 403, 413, 500…) with a title and a plain-text explanation. */
export function renderErrorPage(branding: Branding, status: number, title: string, message: string): Page {
  const b = prepare(branding);
  const content = `<h1>${escapeHtml(title)}</h1>
<p class="lead">${escapeHtml(message)}</p>
<p class="muted">Error ${status}</p>`;
  return page(branding, status, layout(b, { title, tone: 'info', banner: 'Link protection', content }));
}

/** 200: what "Go back" leads to. */
export function renderBackPage(branding: Branding): Page {
  const b = prepare(branding);
  const content = `<h1>The link was not opened</h1>
<p class="lead">Good call. You can close this tab now.</p>
<p class="muted">If the email looked suspicious, report it to your IT team and delete it.</p>`;
  return page(branding, 200, layout(b, { title: 'Link not opened', tone: 'ok', banner: 'You are safe', content }));
}
