// DMARC aggregate reports (RFC 7489 §7.2), the formats: one counted row (a source IP, the identifiers,
// the authentication results and what was done), the report of one policy domain and UTC day and its
// XML (Appendix C), the rua= destinations we mail (mailto: with an optional size limit, §6.2), whether a
// destination outside the domain must authorize reports (§7.1), and the report mail (§7.2.1.1). No I/O;
// the service that counts, schedules and sends is dmarc-reports.ts.
import type { DmarcDetail } from '../tracking/events.ts';
import { buildReportMail, dayRange, mailtoAddress, reportId, type ReportMailInput } from '../reports/report-mail.ts';

/** DKIMResultType and SPFResultType of Appendix C */
export type DkimResult = 'none' | 'pass' | 'fail' | 'policy' | 'neutral' | 'temperror' | 'permerror';
export type SpfResult = 'none' | 'neutral' | 'pass' | 'fail' | 'softfail' | 'temperror' | 'permerror';

/** Messages of one policy domain and day that look alike in the report: one <record> with their count. */
export interface DmarcRow {
  sourceIp: string;
  headerFrom: string;
  envelopeFrom: string;
  dkim: Array<{ domain: string; selector: string; result: DkimResult }>;
  spf: { domain: string; scope: 'mfrom' | 'helo'; result: SpfResult };
  dkimAligned: boolean;
  spfAligned: boolean;
  disposition: DmarcDetail['disposition'];
  reasons: DmarcDetail['reasons'];
}

export type DmarcPublished = DmarcDetail['published'];

/** The report (Appendix C), element names as the XML spells them. */
export interface DmarcAggregate {
  report_metadata: {
    org_name: string;
    email: string;
    report_id: string;
    date_range: { begin: number; end: number };
  };
  policy_published: { domain: string; adkim: 'r' | 's'; aspf: 'r' | 's'; p: string; sp: string; pct: number };
  record: Array<{
    row: {
      source_ip: string;
      count: number;
      policy_evaluated: {
        disposition: DmarcRow['disposition'];
        dkim: 'pass' | 'fail';
        spf: 'pass' | 'fail';
        reason: DmarcRow['reasons'];
      };
    };
    identifiers: { header_from: string; envelope_from: string };
    auth_results: { dkim: DmarcRow['dkim']; spf: DmarcRow['spf'] };
  }>;
}

export interface AggregateMeta {
  orgName: string;
  email: string;
  submitter: string;
  /** this gateway's installationTag, in the report_id */
  instance?: string;
}

/** records kept per report, the largest counts first (the biggest receivers cut too) */
export const MAX_RECORDS = 10_000;
/** rua= destinations mailed per report */
export const MAX_DESTINATIONS = 2;
/** characters kept of a value the sender chose (a selector, a domain) */
const MAX_VALUE = 255;

const DKIM_RESULTS = new Set<string>(['none', 'pass', 'fail', 'policy', 'neutral', 'temperror', 'permerror']);
const SPF_RESULTS = new Set<string>(['none', 'neutral', 'pass', 'fail', 'softfail', 'temperror', 'permerror']);

/** A DKIM result keyword in DKIMResultType's terms (softfail is not one DKIM has: fail). */
export function dkimResult(r: string): DkimResult {
  if (r === 'softfail') return 'fail';
  return DKIM_RESULTS.has(r) ? (r as DkimResult) : 'neutral';
}

export function spfResult(r: string): SpfResult {
  return SPF_RESULTS.has(r) ? (r as SpfResult) : 'neutral';
}

/** A value from the message for a row: one line, bounded; the XML escapes it when it is written. */
export function rowValue(v: string | null | undefined): string {
  return (v ?? '').replace(/[\r\n\t]+/g, ' ').slice(0, MAX_VALUE);
}

/** The report of one policy domain and day from its rows; null when there are none. */
export function buildAggregate(
  domain: string,
  day: string,
  published: DmarcPublished,
  rows: Array<{ row: DmarcRow; count: number }>,
  meta: AggregateMeta,
): DmarcAggregate | null {
  if (!rows.length) return null;
  const { startMs, endMs } = dayRange(day);
  return {
    report_metadata: {
      org_name: meta.orgName,
      email: meta.email,
      report_id: reportId(day, domain, meta.submitter, meta.instance),
      date_range: { begin: startMs / 1000, end: endMs / 1000 },
    },
    policy_published: {
      domain,
      adkim: published.adkim,
      aspf: published.aspf,
      p: published.p,
      sp: published.sp,
      pct: published.pct,
    },
    record: [...rows]
      .sort((a, b) => b.count - a.count)
      .slice(0, MAX_RECORDS)
      .map(({ row, count }) => ({
        row: {
          source_ip: row.sourceIp,
          count,
          policy_evaluated: {
            disposition: row.disposition,
            dkim: row.dkimAligned ? 'pass' : 'fail',
            spf: row.spfAligned ? 'pass' : 'fail',
            reason: row.reasons,
          },
        },
        identifiers: { header_from: row.headerFrom, envelope_from: row.envelopeFrom },
        auth_results: { dkim: row.dkim, spf: row.spf },
      })),
  };
}

/** XML 1.0 character data: the five special characters escaped, characters XML cannot carry removed. */
export function xmlText(v: string | number): string {
  return String(v)
    .replace(/[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/** The report as Appendix C's XML (element order per its schema; every value escaped). */
export function aggregateXml(a: DmarcAggregate): string {
  const out: string[] = ['<?xml version="1.0" encoding="UTF-8"?>', '<feedback>', '  <version>1.0</version>'];
  const el = (indent: number, name: string, value: string | number): void => {
    out.push(`${' '.repeat(indent)}<${name}>${xmlText(value)}</${name}>`);
  };
  const m = a.report_metadata;
  out.push('  <report_metadata>');
  el(4, 'org_name', m.org_name);
  el(4, 'email', m.email);
  el(4, 'report_id', m.report_id);
  out.push('    <date_range>');
  el(6, 'begin', m.date_range.begin);
  el(6, 'end', m.date_range.end);
  out.push('    </date_range>', '  </report_metadata>', '  <policy_published>');
  const p = a.policy_published;
  for (const k of ['domain', 'adkim', 'aspf', 'p', 'sp', 'pct'] as const) el(4, k, p[k]);
  out.push('  </policy_published>');
  for (const r of a.record) {
    out.push('  <record>', '    <row>');
    el(6, 'source_ip', r.row.source_ip);
    el(6, 'count', r.row.count);
    const e = r.row.policy_evaluated;
    out.push('      <policy_evaluated>');
    el(8, 'disposition', e.disposition);
    el(8, 'dkim', e.dkim);
    el(8, 'spf', e.spf);
    for (const reason of e.reason) {
      out.push('        <reason>');
      el(10, 'type', reason.type);
      if (reason.comment) el(10, 'comment', reason.comment);
      out.push('        </reason>');
    }
    out.push('      </policy_evaluated>', '    </row>', '    <identifiers>');
    el(6, 'header_from', r.identifiers.header_from);
    el(6, 'envelope_from', r.identifiers.envelope_from);
    out.push('    </identifiers>', '    <auth_results>');
    for (const d of r.auth_results.dkim) {
      out.push('      <dkim>');
      el(8, 'domain', d.domain);
      if (d.selector) el(8, 'selector', d.selector);
      el(8, 'result', d.result);
      out.push('      </dkim>');
    }
    out.push('      <spf>');
    el(8, 'domain', r.auth_results.spf.domain);
    el(8, 'scope', r.auth_results.spf.scope);
    el(8, 'result', r.auth_results.spf.result);
    out.push('      </spf>', '    </auth_results>', '  </record>');
  }
  out.push('</feedback>', '');
  return out.join('\n');
}

/** A mailto: rua destination: the address and the size limit of its `!size` suffix (bytes; null: none). */
export interface RuaDestination {
  uri: string;
  address: string;
  maxBytes: number | null;
}

const UNITS: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

/**
 * The rua= URIs we mail (RFC 7489 §6.2, §7.2.1: mailto: only; `!10m` limits the report's size in bytes,
 * units base 2), at most MAX_DESTINATIONS; others (https:, malformed) are left out.
 */
export function ruaDestinations(rua: readonly string[]): RuaDestination[] {
  const out: RuaDestination[] = [];
  for (const uri of rua) {
    const m = /^(.*?)(?:!(\d{1,12})([kmgt]?))?$/i.exec(uri.trim())!;
    const address = mailtoAddress(m[1]);
    if (!address || out.some((d) => d.address.toLowerCase() === address.toLowerCase())) continue;
    out.push({ uri, address, maxBytes: m[2] ? Number(m[2]) * UNITS[m[3].toLowerCase()] : null });
    if (out.length === MAX_DESTINATIONS) break;
  }
  return out;
}

/**
 * The name whose TXT record authorizes reports about `policyDomain` to an address outside its
 * Organizational Domain (§7.1); null when the address is within it (no authorization needed).
 */
export function authorizationName(policyDomain: string, orgDomain: string, address: string): string | null {
  const host = address.slice(address.lastIndexOf('@') + 1).toLowerCase();
  const org = orgDomain || policyDomain;
  if (host === org || host.endsWith(`.${org}`)) return null;
  return `${policyDomain}._report._dmarc.${host}`;
}

/** §7.1: the destination's domain publishes a record starting v=DMARC1 at the authorization name. */
export function authorizes(records: readonly string[]): boolean {
  return records.some((r) => /^v=DMARC1\s*(;|$)/.test(r.trim()));
}

/** The report mail (§7.2.1.1): the subject it prescribes, the gzip as application/gzip attachment. */
export function buildAggregateMessage(m: ReportMailInput): Buffer {
  return buildReportMail(m, {
    kind: 'dmarc',
    headers: [],
    multipart: 'multipart/mixed',
    text: `This is a DMARC aggregate report (RFC 7489) from ${m.submitter} for ${m.domain}, ${m.day} (UTC).`,
    contentType: 'application/gzip',
    extension: 'xml.gz',
  });
}
