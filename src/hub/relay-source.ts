// The relay module on the hub (DESIGN §10, §11.3): the same protocol as a gateway's, answered from the
// summaries every gateway streamed, so a commercial XDR sees all gateways through one module.
import type { TrackingQuery } from '../tracking/tracker.ts';
import type { MessageSource } from '../xdr/relay.ts';
import type { MessageSummary } from '../xdr/summary.ts';
import { normalizeObservable, type ObservableType } from './observables.ts';
import type { HubStore } from './store.ts';

/** The hub's observable index for one tracking query of the relay (observableQueries). */
function lookupOf(q: TrackingQuery): { type: ObservableType; value: string } | null {
  if (q.ip) return { type: 'ip', value: q.ip };
  if (q.senderDomain) return { type: 'domain', value: q.senderDomain };
  if (q.urlDomain) return { type: 'domain', value: q.urlDomain };
  if (q.sender) return { type: 'email', value: q.sender };
  if (q.fromAddress) return { type: 'email', value: q.fromAddress };
  if (q.recipient) return { type: 'email', value: q.recipient };
  // the hub indexes whole subjects (case-insensitive), not words in them
  if (q.subject) return { type: 'email_subject', value: q.subject };
  if (q.messageId) return { type: 'email_messageid', value: q.messageId };
  if (q.mid !== undefined) return { type: 'cisco_mid', value: String(q.mid) };
  if (q.sha256) return { type: 'sha256', value: q.sha256 };
  if (q.attachment) return { type: 'file_name', value: q.attachment };
  if (q.url) return { type: 'url', value: q.url };
  return null;
}

export function hubSource(store: HubStore): MessageSource {
  return {
    find(q, limit) {
      const l = lookupOf(q);
      if (!l) return [];
      return store
        .search(l.type, normalizeObservable(l.type, l.value), limit)
        .filter(({ summary }) => roleMatches(q, summary))
        .map(({ deviceId, summary }): MessageSummary => ({ ...summary, device: deviceId }));
    },
  };
}

/** The index says where an address or domain was seen; the relay asks in which role. */
function roleMatches(q: TrackingQuery, s: MessageSummary): boolean {
  const lower = (x: string | null | undefined) => (x ?? '').toLowerCase();
  if (q.sender) return lower(s.sender) === lower(q.sender);
  if (q.recipient) return s.recipients.some((r) => lower(r.address) === lower(q.recipient));
  if (q.fromAddress) return lower(s.headerFrom).includes(lower(q.fromAddress));
  if (q.senderDomain) return lower(s.sender).endsWith(`@${lower(q.senderDomain)}`);
  if (q.urlDomain) {
    const d = lower(q.urlDomain);
    return s.urls.some((u) => {
      try {
        const h = new URL(u).hostname.toLowerCase();
        return h === d || h.endsWith(`.${d}`);
      } catch {
        return false;
      }
    });
  }
  return true;
}
