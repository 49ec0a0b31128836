// Reading addresses out of header values (From, Reply-To, To) the way a mail client shows them,
// and noticing the malformations a legitimate mail client never writes.
import { registrableDomain } from '../../mime/urls.ts';

export interface Mailbox {
  /** display name with quotes removed, trimmed ("" when none) */
  display: string;
  /** lower-case address as written ("" when none could be found) */
  address: string;
  local: string;
  /** lower-case domain part, without a trailing dot */
  domain: string;
  /** registrable domain of `domain`, null for IP literals, unknown suffixes and no domain */
  registrable: string | null;
}

const MAX_HEADER = 2048;
const VALID_DOMAIN = /^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?)+$/;
// RFC 5321 domain syntax: one or more LDH labels (a single-label host such as swaks' default
// user@hostname is valid syntax), at most 253 characters, a top-level label that is not all digits
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const IPV4_LITERAL = /^\[(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\]$/;
const IPV6_LITERAL = /^\[ipv6:[0-9a-f:.]{2,45}\]$/;
const ADDRESS_IN_TEXT = /[^\s<>"'(),;:@]{1,64}@[a-z0-9-]{1,63}(?:\.[a-z0-9-]{1,63}){1,8}/i;

const LEADING_JUNK = new Set(['"', "'", ' ', '\t']);
const TRAILING_JUNK = new Set(['"', "'", ' ', '\t', ',', ';', ':', '_']);

function cleanDisplay(s: string): string {
  // only real whitespace: invisible characters (U+FEFF…) are evidence and must survive
  const d = s.replace(/\\"/g, '"').replace(/[ \t\r\n]+/g, ' ');
  let start = 0;
  let end = d.length;
  while (start < end && LEADING_JUNK.has(d[start])) {
    start++;
  }
  while (end > start && TRAILING_JUNK.has(d[end - 1])) {
    end--;
  }
  return d.slice(start, end);
}

function splitAddress(raw: string): { address: string; local: string; domain: string } {
  let address = raw.trim().toLowerCase();
  if (address.startsWith('mailto:')) {
    address = address.slice(7);
  }
  const at = address.lastIndexOf('@');
  if (at < 0) {
    return { address, local: address, domain: '' };
  }
  const local = address.slice(0, at);
  let domain = address.slice(at + 1).trim();
  if (domain.endsWith('.')) {
    domain = domain.slice(0, -1);
  }
  return { address, local, domain };
}

/** Parses one mailbox: `Name <addr>`, `addr (Name)` or a bare address. Never throws. */
export function parseMailbox(value: string | null | undefined): Mailbox | null {
  if (!value) {
    return null;
  }
  const v = value.length > MAX_HEADER ? value.slice(0, MAX_HEADER) : value;
  let display = '';
  let addrRaw = '';
  const lt = v.lastIndexOf('<');
  const gt = lt >= 0 ? v.indexOf('>', lt) : -1;
  if (lt >= 0 && gt > lt) {
    addrRaw = v.slice(lt + 1, gt);
    display = v.slice(0, lt);
  } else {
    const paren = v.indexOf('(');
    if (paren > 0 && v.lastIndexOf(')') > paren) {
      addrRaw = v.slice(0, paren);
      display = v.slice(paren + 1, v.lastIndexOf(')'));
    } else {
      const m = ADDRESS_IN_TEXT.exec(v);
      addrRaw = m ? m[0] : v;
      display = m ? v.slice(0, m.index) + v.slice(m.index + m[0].length) : '';
    }
  }
  const { address, local, domain } = splitAddress(addrRaw);
  return {
    display: cleanDisplay(display),
    address,
    local,
    domain,
    registrable: domain && VALID_DOMAIN.test(domain) ? registrableDomain(domain) : null,
  };
}

/** The first address of an address list header (To, Delivered-To). */
export function firstAddress(value: string | null | undefined): string | null {
  if (!value) {
    return null;
  }
  const v = value.length > MAX_HEADER ? value.slice(0, MAX_HEADER) : value;
  const m = ADDRESS_IN_TEXT.exec(v);
  return m ? m[0].toLowerCase().replace(/^mailto:/, '') : null;
}

/**
 * Whether `domain` (lower case, no trailing dot) is syntactically a mail domain (RFC 5321 §4.1.2):
 * LDH labels, or an address literal. Says nothing about whether the name exists or has a public
 * suffix: single-label hosts (`root@vm`) and reserved names (`.test`, `.example`, `.invalid`,
 * `.localhost`, `.local`, `.home.arpa`, RFC 2606/6761/6762/8375) are valid syntax.
 */
export function validDomainSyntax(domain: string): boolean {
  if (domain.startsWith('[')) {
    return IPV4_LITERAL.test(domain) || IPV6_LITERAL.test(domain);
  }
  if (!domain || domain.length > 253) {
    return false;
  }
  const labels = domain.split('.');
  if (!labels.every((l) => LABEL.test(l))) {
    return false;
  }
  // a dotted name ending in an all-digit label is a bare IP address or a typo, never a domain
  return labels.length === 1 || !/^\d+$/.test(labels[labels.length - 1]);
}

/**
 * What is wrong with a From header that a mail client would never write, or null: several
 * mailboxes, an unquoted comma in the display name (the header then lists an empty mailbox), no
 * address, an address whose domain is not valid domain syntax, or spaces inside the angle brackets.
 * Only syntax counts: a single-label host, a reserved name or an unknown top-level domain is not a
 * malformation (the quick start's swaks mail comes from root@<hostname> to example.test).
 */
export function fromMalformation(value: string, mb: Mailbox): string | null {
  const v = value.length > MAX_HEADER ? value.slice(0, MAX_HEADER) : value;
  if (!mb.address.includes('@')) {
    return 'no address';
  }
  let angles = 0;
  let inQuote = false;
  let unquotedComma = false;
  let escaped = false;
  for (let i = 0; i < v.length; i++) {
    const c = v[i];
    if (escaped) {
      escaped = false;
      continue;
    }
    if (c === '\\') {
      escaped = true;
    } else if (c === '"') {
      inQuote = !inQuote;
    } else if (!inQuote && c === '<') {
      angles++;
    } else if (!inQuote && c === ',' && angles === 0) {
      unquotedComma = true;
    }
  }
  if (angles > 1) {
    return 'several mailboxes';
  }
  if (unquotedComma && v.indexOf('<') > 0) {
    return 'unquoted comma in the display name';
  }
  if (!validDomainSyntax(mb.domain)) {
    return `invalid sender domain "${mb.domain.slice(0, 60)}"`;
  }
  const lt = v.lastIndexOf('<');
  const gt = v.indexOf('>', lt);
  if (lt >= 0 && gt > lt && (/\s/.test(v[lt + 1] ?? '') || /\s/.test(v[gt - 1] ?? ''))) {
    return 'spaces inside the angle brackets';
  }
  return null;
}

/** Every address-like token in `s` (lower case), at most `max`. */
export function addressesIn(s: string, max = 4): string[] {
  const out: string[] = [];
  const re = new RegExp(ADDRESS_IN_TEXT.source, 'gi');
  let m: RegExpExecArray | null;
  const text = s.length > MAX_HEADER ? s.slice(0, MAX_HEADER) : s;
  while ((m = re.exec(text)) !== null && out.length < max) {
    out.push(m[0].toLowerCase());
  }
  return out;
}

export { VALID_DOMAIN };
