// A message's sender-authentication result as tracking recorded it (the last `auth.checked` event), for
// those who need it after the scan without asking DNS again — DNS may have changed, and a DKIM key may
// be gone days later: re-evaluation of held mail (outbreak/reevaluation.ts) and a restart resuming
// delivery (flow/recovery.ts, which needs our Authentication-Results value).
import type { Store } from '../store/db.ts';
import type { TrackingEvent } from '../tracking/events.ts';
import { isAuthResultKeyword, type AuthResultKeyword, type SenderAuthResult } from './verify.ts';

type AuthChecked = Extract<TrackingEvent, { type: 'auth.checked' }>;

function keywordOf(v: unknown): AuthResultKeyword {
  return isAuthResultKeyword(v) ? v : 'none';
}

function stringOrNull(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}

/**
 * The sender-authentication result of a message's last scan, rebuilt from its recorded `auth.checked`
 * event: what the adaptive rules on sender authentication read (SPF, DKIM, DMARC with domain, policy and
 * override) and our Authentication-Results value (`header`, '' when an older version did not record it).
 * null when no check ran (senderAuth off for its policy, or the stage failed), as at scan time.
 */
export function recordedSenderAuth(store: Pick<Store, 'stmt'>, mid: number): SenderAuthResult | null {
  const row = store
    .stmt("select data from events where mid = ? and type = 'auth.checked' order by id desc limit 1")
    .get(mid) as { data: string } | undefined;
  if (!row) return null;
  let e: Partial<Record<keyof AuthChecked, unknown>>;
  try {
    e = JSON.parse(row.data) as typeof e;
  } catch {
    return null;
  }
  if (!e || typeof e !== 'object') return null;
  const policy = (['none', 'quarantine', 'reject'] as const).find((p) => p === e.dmarcPolicy) ?? null;
  return {
    authservId: '',
    spf: { result: keywordOf(e.spf), domain: stringOrNull(e.spfDomain), comment: null },
    spfHelo: typeof e.spfHelo === 'string' ? { result: keywordOf(e.spfHelo), domain: '' } : null,
    dkim: (Array.isArray(e.dkim) ? (e.dkim as unknown[]) : [])
      .filter((d): d is Record<string, unknown> => !!d && typeof d === 'object')
      .map((d) => ({
        result: keywordOf(d.result),
        domain: stringOrNull(d.domain),
        selector: stringOrNull(d.selector),
        aligned: d.aligned === true,
        comment: null,
      })),
    dmarc: {
      result: keywordOf(e.dmarc),
      domain: stringOrNull(e.dmarcDomain),
      policy,
      // not recorded, and not weighed by the adaptive rules: the effective policy above is
      p: null,
      sp: null,
      pct: 100,
      comment: null,
    },
    arc: { result: keywordOf(e.arc), instance: null, comment: null },
    ...(typeof e.dmarcOverride === 'string' ? { dmarcOverride: e.dmarcOverride } : {}),
    header: Array.isArray(e.header) ? (e.header as unknown[]).filter((l) => typeof l === 'string').join('\r\n') : '',
    lookups: typeof e.lookups === 'number' ? e.lookups : 0,
    budgetExhausted: false,
    ms: typeof e.ms === 'number' ? e.ms : 0,
  };
}
