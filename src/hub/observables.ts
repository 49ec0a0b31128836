// The observables of a message summary (DESIGN §10, §11.3): what an analyst can search the hub by. Each
// is indexed with a normalized value, so a search is one index lookup over every gateway's messages.
import { parse } from 'tldts';
import type { MessageSummary } from '../xdr/summary.ts';
import { SEARCHABLE_TYPES, type SearchableType } from '../xdr/observables.ts';

/** What the hub indexes: the searchable observable types but `ipv6` (kept as `ip`). */
export const OBSERVABLE_TYPES = SEARCHABLE_TYPES.filter((t): t is Exclude<SearchableType, 'ipv6'> => t !== 'ipv6') as [
  Exclude<SearchableType, 'ipv6'>,
  ...Array<Exclude<SearchableType, 'ipv6'>>,
];
export type ObservableType = (typeof OBSERVABLE_TYPES)[number];

/** The value as it is indexed and searched: case-insensitive where the thing is. */
export function normalizeObservable(type: ObservableType, value: string): string {
  const v = value.trim();
  switch (type) {
    case 'email_messageid':
      // with or without the angle brackets
      return v.replace(/^<(.*)>$/, '$1');
    case 'url':
    case 'ip':
    case 'cisco_mid':
      return v;
    default:
      return v.toLowerCase();
  }
}

export function observablesOf(s: MessageSummary): Array<{ type: ObservableType; value: string }> {
  const out = new Map<string, { type: ObservableType; value: string }>();
  const add = (type: ObservableType, value: string | null | undefined): void => {
    if (!value) return;
    const v = normalizeObservable(type, value);
    if (v && v.length <= 2048) out.set(`${type}\u0000${v}`, { type, value: v });
  };
  add('ip', s.senderIp);
  add('email', s.sender);
  add('domain', s.sender.split('@')[1]);
  for (const r of s.recipients) add('email', r.address);
  if (s.headerFrom) {
    const addr = /<([^>]+)>/.exec(s.headerFrom)?.[1] ?? s.headerFrom;
    if (addr.includes('@')) {
      add('email', addr);
      add('domain', addr.split('@')[1]);
    }
  }
  add('email_subject', s.subject);
  add('email_messageid', s.messageId);
  add('cisco_mid', String(s.mid));
  for (const a of s.attachments) {
    add('sha256', a.sha256);
    add('file_name', a.name);
  }
  for (const u of s.urls) {
    add('url', u);
    // host and registrable domain in one pass (tldts parses the URL itself)
    const p = parse(u);
    add('domain', p.hostname);
    add('domain', p.domain);
  }
  return [...out.values()];
}
