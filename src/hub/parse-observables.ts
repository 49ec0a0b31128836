// Observables from what an analyst pastes (DESIGN §11.3): an alert, a header block, a list. Explicit
// `type: value` lines are taken as they are (and refused clearly when malformed); everything else is
// found by shape: Message-IDs, URLs, addresses, IPs, SHA-256 hashes, "MID 123", "Subject:" lines and bare
// domains with a public suffix. Every item the hub cannot search gets its own error; the rest are still
// investigated.
import net from 'node:net';
import { parse } from 'tldts';
import { MIN_SUBJECT_LENGTH } from '../xdr/observables.ts';
import { normalizeObservable, OBSERVABLE_TYPES, type ObservableType } from './observables.ts';

export interface ParsedObservable {
  type: ObservableType;
  value: string;
}

export interface ObservableError {
  /** the text the item came from */
  input: string;
  error: string;
}

/** At most this many observables in one investigation; the rest are refused item by item. */
export const MAX_OBSERVABLES = 100;

const ALIASES: Record<string, ObservableType> = {
  email: 'email',
  address: 'email',
  ip: 'ip',
  ipv4: 'ip',
  ipv6: 'ip',
  domain: 'domain',
  subject: 'email_subject',
  email_subject: 'email_subject',
  'message-id': 'email_messageid',
  messageid: 'email_messageid',
  email_messageid: 'email_messageid',
  mid: 'cisco_mid',
  cisco_mid: 'cisco_mid',
  sha256: 'sha256',
  hash: 'sha256',
  file: 'file_name',
  file_name: 'file_name',
  filename: 'file_name',
  url: 'url',
};

/** Header-like lines whose value is one or more addresses. */
const ADDRESS_HEADERS = new Set(['from', 'to', 'cc', 'reply-to', 'sender', 'recipient', 'return-path']);

const ADDRESS = /^[^\s@<>"(),;:]{1,64}@[A-Za-z0-9.-]{1,253}$/;

/** One explicit observable checked: its normalised value, or why it cannot be searched. */
export function checkObservable(type: string, value: string): ParsedObservable | { error: string } {
  const t: string = ALIASES[type.trim().toLowerCase()] ?? type.trim().toLowerCase();
  if (t === 'md5' || t === 'sha1')
    return { error: `${t} hashes are not kept by the gateways: search the attachment's sha256` };
  if (!(OBSERVABLE_TYPES as readonly string[]).includes(t))
    return { error: `unknown observable type "${type}" (one of ${OBSERVABLE_TYPES.join(', ')})` };
  const v = value.trim();
  if (!v) return { error: 'empty value' };
  if (v.length > 2048) return { error: 'longer than 2048 characters' };
  const ok = (type: ObservableType): ParsedObservable => ({ type, value: normalizeObservable(type, v) });
  switch (t as ObservableType) {
    case 'email':
      return ADDRESS.test(v) ? ok('email') : { error: `"${v}" is not an e-mail address` };
    case 'ip':
      return net.isIP(v) ? ok('ip') : { error: `"${v}" is not an IP address` };
    case 'domain': {
      const d = v.replace(/\.$/, '');
      return parse(d).hostname === d.toLowerCase() && d.includes('.')
        ? { type: 'domain', value: normalizeObservable('domain', d) }
        : { error: `"${v}" is not a domain name` };
    }
    case 'sha256':
      return /^[0-9a-fA-F]{64}$/.test(v) ? ok('sha256') : { error: 'a sha256 is 64 hexadecimal characters' };
    case 'cisco_mid':
      return /^\d{1,15}$/.test(v) ? ok('cisco_mid') : { error: 'a MID is a number' };
    case 'url':
      try {
        const u = new URL(v);
        return /^https?:$/.test(u.protocol) ? ok('url') : { error: 'only http and https URLs are kept' };
      } catch {
        return { error: `"${v}" is not a URL` };
      }
    case 'email_subject':
      return v.length >= MIN_SUBJECT_LENGTH ? ok('email_subject') : { error: 'a subject needs 3 characters or more' };
    case 'email_messageid':
      return /^<?[^\s<>]+@[^\s<>]+>?$/.test(v) ? ok('email_messageid') : { error: `"${v}" is not a Message-ID` };
    case 'file_name':
      return ok('file_name');
  }
}

/** Observables in pasted text, deduplicated, in the order found. */
export function parseObservables(text: string): { observables: ParsedObservable[]; errors: ObservableError[] } {
  const found = new Map<string, ParsedObservable>();
  const errors: ObservableError[] = [];
  const add = (o: ParsedObservable | { error: string }, input: string): void => {
    if ('error' in o) {
      errors.push({ input: input.slice(0, 200), error: o.error });
      return;
    }
    const key = `${o.type}\u0000${o.value}`;
    if (found.has(key)) return;
    if (found.size >= MAX_OBSERVABLES) {
      errors.push({
        input: input.slice(0, 200),
        error: `more than ${MAX_OBSERVABLES} observables: investigate in parts`,
      });
      return;
    }
    found.set(key, o);
  };
  let rest = '';
  for (const line of text.split(/\r?\n/)) {
    // `type: value` (or `type=value`) with a known type name: explicit, refused clearly when malformed
    const explicit = /^\s*([A-Za-z][A-Za-z0-9_-]{1,19})\s*[:=]\s*(.+?)\s*$/.exec(line);
    const name = explicit?.[1].toLowerCase();
    if (explicit && name && ADDRESS_HEADERS.has(name)) {
      // From:, To:, Cc: … lines: every address in them (display names and lists are fine)
      const list = (explicit[2].match(/[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+/g) ?? []).map((a) =>
        a.replace(/^'+/, ''),
      );
      if (!list.length) add({ error: 'no e-mail address in it' }, line.trim());
      for (const a of list) add(checkObservable('email', a), a);
      continue;
    }
    if (explicit && name && (name in ALIASES || name === 'md5' || name === 'sha1')) {
      add(checkObservable(name, explicit[2]), line.trim());
      continue;
    }
    rest += line + '\n';
  }
  // Shapes, most specific first; each match is blanked so that its parts are not found again.
  const take = (re: RegExp, fn: (m: RegExpExecArray) => void): void => {
    rest = rest.replace(re, (...args: unknown[]) => {
      fn(args.slice(0, -2) as unknown as RegExpExecArray);
      return ' ';
    });
  };
  take(/<([^\s<>@]+@[^\s<>]+)>/g, (m) => add(checkObservable('email_messageid', m[1]), m[0]));
  take(/\bhttps?:\/\/[^\s<>"'`]+/gi, (m) => add(checkObservable('url', m[0].replace(/[).,;:!?]+$/, '')), m[0]));
  // local parts may hold an apostrophe (o'brien@…); one quoting the address is not part of it
  take(/[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+/g, (m) =>
    add(checkObservable('email', m[0].replace(/^'+/, '')), m[0]),
  );
  take(/\b[0-9a-fA-F]{64}\b/g, (m) => add(checkObservable('sha256', m[0]), m[0]));
  take(/\b(?:[0-9a-fA-F]{40}|[0-9a-fA-F]{32})\b/g, (m) =>
    add(checkObservable(m[0].length === 40 ? 'sha1' : 'md5', m[0]), m[0]),
  );
  take(/\bMID\s*[#:]?\s*(\d{1,15})\b/gi, (m) => add(checkObservable('cisco_mid', m[1]), m[0]));
  take(/\b(?:\d{1,3}\.){3}\d{1,3}\b/g, (m) => add(checkObservable('ip', m[0]), m[0]));
  // IPv6: hex groups and colons (two at least), kept when the address parses
  take(/(?<![\w:.])[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7}(?![\w:])/g, (m) => {
    if (net.isIPv6(m[0])) add(checkObservable('ip', m[0]), m[0]);
  });
  take(/\b(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}\b/g, (m) => {
    // only names with a known public suffix: "invoice.pdf" is a file name, not a domain
    const p = parse(m[0]);
    if (p.isIcann && p.domain) add(checkObservable('domain', m[0]), m[0]);
  });
  return { observables: [...found.values()], errors };
}

/**
 * Observables from a request: text to find them in and/or a list, deduplicated; every item that cannot be
 * searched as an error of its own (investigations answer them; casebooks refuse the request).
 */
export function collectObservables(input: { text?: string; observables?: Array<{ type: string; value: string }> }): {
  observables: ParsedObservable[];
  errors: ObservableError[];
} {
  const parsed = input.text ? parseObservables(input.text) : { observables: [], errors: [] };
  const seen = new Set(parsed.observables.map((x) => `${x.type}\u0000${x.value}`));
  for (const item of input.observables ?? []) {
    const c = checkObservable(item.type, item.value);
    if ('error' in c) parsed.errors.push({ input: `${item.type}: ${item.value}`.slice(0, 200), error: c.error });
    else if (!seen.has(`${c.type}\u0000${c.value}`)) {
      seen.add(`${c.type}\u0000${c.value}`);
      parsed.observables.push(c);
    }
  }
  return parsed;
}
