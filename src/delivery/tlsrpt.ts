// SMTP TLS Reporting (RFC 8460), the formats: what one MX session counts as (success or an RFC 8460
// result type), the `_smtp._tls` TXT record, the JSON report of one policy domain and UTC day (§4), its
// file name and the report mail (§5.3), made with what all our reports share (reports/report-mail.ts).
// No I/O; the service that records, schedules and sends is tls-reports.ts.
import { mxMatches, type StsFailure } from './mta-sts.ts';
import type { DeliveryTls, TlsRequirement } from './tls-policy.ts';
import { buildReportMail, dayRange, mailtoAddress, reportId, type ReportMailInput } from '../reports/report-mail.ts';

/** RFC 8460 §4.3 result types the gateway can tell apart (no DANE: it does not do DANE). */
export type TlsrptResultType =
  | 'starttls-not-supported'
  | 'certificate-host-mismatch'
  | 'certificate-expired'
  | 'certificate-not-trusted'
  | 'validation-failure'
  | StsFailure;

export type TlsrptResult = 'success' | TlsrptResultType;

/** The policy a session was held to (RFC 8460 §4.2): an MTA-STS policy, or none found. */
export interface TlsrptPolicy {
  type: 'sts' | 'no-policy-found';
  /** the policy's lines (sts; empty when it could not be fetched) */
  strings: string[];
  /** its mx patterns */
  mx: string[];
}

/** One MX session attempt, as the delivery queue reports it. */
export interface TlsSessionOutcome {
  /** the policy domain: the recipient domain the mail went to over MX */
  domain: string;
  policy: TlsrptPolicy;
  result: TlsrptResult;
  /** our address of the session; null when no session was opened */
  sendingIp: string | null;
  mxHost: string;
  receivingIp: string | null;
  /** failure-reason-code: what the failure was in detail */
  reason: string | null;
}

/** The policy of a delivery, for its sessions' records. */
export function reportPolicy(req: TlsRequirement): TlsrptPolicy {
  if (req.sts) return { type: 'sts', strings: req.sts.lines, mx: req.sts.mx };
  if (req.stsFailure) return { type: 'sts', strings: [], mx: [] };
  return { type: 'no-policy-found', strings: [], mx: [] };
}

/**
 * What a session that was opened counts as; null when it is not counted (TLS off by our own policy).
 *
 * RFC 8460 §4.3.1 counts "successfully negotiated TLS-enabled connections" and §4.3.2 the failures to
 * establish one, so a session in clear is a failure (starttls-not-supported) whatever the policy, even
 * when the mail went through it. A certificate is held against the host only when the delivery needed it
 * verified: an MTA-STS policy (enforce or testing), or `verify` in our own TLS policy; opportunistic TLS
 * with an unverified certificate is a successful TLS session. An MTA-STS policy that could not be had
 * makes every session of that delivery a failure of that kind (sts-policy-fetch-error, …).
 */
export function sessionResult(
  req: TlsRequirement,
  tls: DeliveryTls,
  mxName: string,
): { result: TlsrptResult; reason: string | null } | null {
  if (req.level === 'none') return null;
  if (req.stsFailure) return { result: req.stsFailure, reason: req.stsNote };
  if (!tls.protocol) return { result: 'starttls-not-supported', reason: tls.reason };
  if (req.sts && !mxMatches(mxName, req.sts))
    return { result: 'validation-failure', reason: `MX ${mxName} not in the MTA-STS policy` };
  if (tls.verified || (!req.sts && req.level !== 'verify')) return { result: 'success', reason: null };
  return certificateResult(tls.reason ?? 'not verified');
}

/** A certificate that did not verify (sessionTls's reasons), in RFC 8460's terms. */
export function certificateResult(reason: string): { result: TlsrptResultType; reason: string } {
  const untrusted = /^certificate not trusted: (\S+)/.exec(reason);
  if (untrusted) {
    const code = untrusted[1];
    if (code === 'CERT_HAS_EXPIRED') return { result: 'certificate-expired', reason: code };
    return { result: 'certificate-not-trusted', reason: code };
  }
  if (reason.startsWith('certificate does not name ')) return { result: 'certificate-host-mismatch', reason };
  return { result: 'validation-failure', reason };
}

/** A session that failed to connect counts only when the TLS handshake after STARTTLS failed. */
export function connectFailureResult(err: { code?: unknown; command?: unknown; message: string }): {
  result: TlsrptResultType;
  reason: string;
} | null {
  if (err.code !== 'ETLS' || err.command !== 'STARTTLS') return null;
  return { result: 'validation-failure', reason: err.message.slice(0, 200) };
}

/** The `_smtp._tls` TXT answer: the report URIs, or why the domain does not get reports (§3). */
export function parseTlsrptRecord(records: string[][]): { rua: string[] } | { error: string } {
  // §3: records not starting with v=TLSRPTv1 are discarded; any other number than one means no reports
  const own = records.map((r) => r.join('')).filter((t) => /^v=TLSRPTv1\s*(;|$)/.test(t));
  if (!own.length) return { error: 'no v=TLSRPTv1 record' };
  if (own.length > 1) return { error: `${own.length} v=TLSRPTv1 records (exactly one is needed)` };
  const fields = own[0].split(';').map((f) => f.trim());
  const rua = fields.find((f) => /^rua\s*=/i.test(f));
  if (!rua) return { error: 'the record has no rua=' };
  const uris: string[] = [];
  for (const raw of rua.replace(/^rua\s*=\s*/i, '').split(',')) {
    const u = raw.trim();
    if (/^mailto:/i.test(u) ? mailtoAddress(u) : httpsUrl(u)) uris.push(u);
  }
  if (!uris.length) return { error: `no usable mailto: or https: URI in ${JSON.stringify(rua)}` };
  // a domain cannot make us send one report more than a few times
  return { rua: [...new Set(uris)].slice(0, MAX_RUA) };
}

const MAX_RUA = 5;

/** An https: report URI as a URL, or null. */
export function httpsUrl(uri: string): URL | null {
  try {
    const u = new URL(uri);
    return u.protocol === 'https:' && u.hostname && !u.username && !u.password ? u : null;
  } catch {
    return null;
  }
}

/** One recorded row: sessions of one day and domain with the same policy, result and hosts. */
export interface SessionRow {
  policyType: 'sts' | 'no-policy-found';
  policyString: string[];
  mxHost: string[];
  result: TlsrptResult;
  sendingIp: string;
  receivingMx: string;
  receivingIp: string;
  reason: string;
  count: number;
}

export interface TlsrptFailureDetail {
  'result-type': TlsrptResultType;
  'sending-mta-ip'?: string;
  'receiving-mx-hostname'?: string;
  'receiving-ip'?: string;
  'failed-session-count': number;
  'failure-reason-code'?: string;
}

/** The report (RFC 8460 §4), field names as the RFC spells them. */
export interface TlsrptReport {
  'organization-name': string;
  'date-range': { 'start-datetime': string; 'end-datetime': string };
  'contact-info': string;
  'report-id': string;
  policies: Array<{
    policy: {
      'policy-type': 'sts' | 'no-policy-found';
      'policy-string'?: string[];
      'policy-domain': string;
      'mx-host'?: string[];
    };
    summary: { 'total-successful-session-count': number; 'total-failure-session-count': number };
    'failure-details'?: TlsrptFailureDetail[];
  }>;
}

/** failure-details kept per policy, the largest counts first (the rest are in the summary only) */
export const MAX_FAILURE_DETAILS = 1000;

export interface ReportMeta {
  organization: string;
  contact: string;
  submitter: string;
  /** this gateway's installationTag, in the report-id */
  instance?: string;
}

/** The report of one policy domain and day from its recorded rows; null when there are none. */
export function buildReport(domain: string, day: string, rows: SessionRow[], meta: ReportMeta): TlsrptReport | null {
  if (!rows.length) return null;
  const { start, end } = dayRange(day);
  const byPolicy = new Map<string, SessionRow[]>();
  for (const r of rows) {
    const key = JSON.stringify([r.policyType, r.policyString, r.mxHost]);
    const list = byPolicy.get(key);
    if (list) list.push(r);
    else byPolicy.set(key, [r]);
  }
  const policies: TlsrptReport['policies'] = [];
  for (const list of byPolicy.values()) {
    const p = list[0];
    let ok = 0;
    let failed = 0;
    const details = new Map<string, TlsrptFailureDetail>();
    for (const r of list) {
      if (r.result === 'success') {
        ok += r.count;
        continue;
      }
      failed += r.count;
      const key = JSON.stringify([r.result, r.sendingIp, r.receivingMx, r.receivingIp, r.reason]);
      const d = details.get(key);
      if (d) d['failed-session-count'] += r.count;
      else
        details.set(key, {
          'result-type': r.result,
          ...(r.sendingIp ? { 'sending-mta-ip': r.sendingIp } : {}),
          ...(r.receivingMx ? { 'receiving-mx-hostname': r.receivingMx } : {}),
          ...(r.receivingIp ? { 'receiving-ip': r.receivingIp } : {}),
          'failed-session-count': r.count,
          ...(r.reason ? { 'failure-reason-code': r.reason } : {}),
        });
    }
    const failures = [...details.values()]
      .sort((a, b) => b['failed-session-count'] - a['failed-session-count'])
      .slice(0, MAX_FAILURE_DETAILS);
    policies.push({
      policy: {
        'policy-type': p.policyType,
        ...(p.policyString.length ? { 'policy-string': p.policyString } : {}),
        'policy-domain': domain,
        ...(p.mxHost.length ? { 'mx-host': p.mxHost } : {}),
      },
      summary: { 'total-successful-session-count': ok, 'total-failure-session-count': failed },
      ...(failures.length ? { 'failure-details': failures } : {}),
    });
  }
  return {
    'organization-name': meta.organization,
    'date-range': { 'start-datetime': start, 'end-datetime': end },
    'contact-info': meta.contact,
    'report-id': reportId(day, domain, meta.submitter, meta.instance),
    policies,
  };
}

/** The report mail (RFC 8460 §5.3): multipart/report; report-type="tlsrpt", the gzip as attachment. */
export function buildReportMessage(m: ReportMailInput): Buffer {
  return buildReportMail(m, {
    kind: 'tlsrpt',
    headers: [`TLS-Report-Domain: ${m.domain}`, `TLS-Report-Submitter: ${m.submitter}`],
    multipart: 'multipart/report; report-type="tlsrpt"',
    text: `This is an aggregate TLS report (RFC 8460) from ${m.submitter} for ${m.domain}, ${m.day} (UTC).`,
    contentType: 'application/tlsrpt+gzip',
    extension: 'json.gz',
  });
}
