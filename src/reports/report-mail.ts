// What the daily reports the gateway sends to other domains share, the formats: the UTC day a report
// covers, its report-id and file name, mailto: report URIs, and the report mail — a multipart message
// with a short text and the gzipped report as attachment. SMTP TLS reports (RFC 8460 §5.3,
// delivery/tlsrpt.ts) and DMARC aggregate reports (RFC 7489 §7.2.1.1, senderauth/dmarc-report.ts) are
// such mails. No I/O; the service side is daily-reports.ts.
import { randomBytes } from 'node:crypto';
import { rfc5322Date, safeHostname } from '../alerts/message.ts';

/** A UTC day (YYYY-MM-DD) and its first and last second. */
export function dayRange(day: string): { start: string; end: string; startMs: number; endMs: number } {
  const startMs = Date.parse(`${day}T00:00:00Z`);
  return { start: `${day}T00:00:00Z`, end: `${day}T23:59:59Z`, startMs, endMs: startMs + 86_399_000 };
}

export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/**
 * The report-id: one report per policy domain, day and submitting gateway, in the msg-id form both RFCs
 * put in the subject. `instance` (installationTag) keeps two gateways that share a hostname, and so a
 * submitter name, from sending reports with one ID.
 */
export function reportId(day: string, domain: string, submitter: string, instance?: string): string {
  return `${day}.${domain}${instance ? `.${instance}` : ''}@${submitter}`;
}

/**
 * submitter!policy-domain!begin-timestamp!end-timestamp.EXTENSION (seconds since the epoch): RFC 8460
 * §5.3 and RFC 7489 §7.2.1.1 name the attachment alike.
 */
export function reportFileName(submitter: string, domain: string, day: string, extension: string): string {
  const { startMs, endMs } = dayRange(day);
  return `${submitter}!${domain}!${startMs / 1000}!${endMs / 1000}.${extension}`;
}

/** The address of a mailto: report URI (RFC 6068; no hfields used), or null when it is not one we mail. */
export function mailtoAddress(uri: string): string | null {
  const m = /^mailto:([^?]+)/i.exec(uri);
  if (!m) return null;
  let a: string;
  try {
    a = decodeURIComponent(m[1]);
  } catch {
    return null;
  }
  return /^[^\s<>()[\]\\,;:"@\u0000-\u001f\u007f]{1,64}@[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(a)
    ? a
    : null;
}

/** One report mail: the report of a policy domain and day, to one address. */
export interface ReportMailInput {
  from: string;
  to: string;
  domain: string;
  day: string;
  /** the report's submitter (our host name) */
  submitter: string;
  reportId: string;
  /** the gzipped report */
  gzip: Buffer;
  now: number;
}

/** What a kind of report mail has of its own. */
export interface ReportMailKind {
  /** "tlsrpt", "dmarc": the Message-ID's and the boundary's prefix */
  kind: string;
  /** header fields after Message-ID ("TLS-Report-Domain: …") */
  headers: string[];
  /** the top-level type with its parameters: `multipart/report; report-type="tlsrpt"`, `multipart/mixed` */
  multipart: string;
  /** the first part, US-ASCII text */
  text: string;
  /** of the attachment, and its file name's extension ("json.gz") */
  contentType: string;
  extension: string;
}

/**
 * A report mail: the subject both RFCs prescribe (RFC 8460 §5.3, RFC 7489 §7.2.1.1), a multipart message
 * with the text first and the gzipped report as base64 attachment.
 */
export function buildReportMail(m: ReportMailInput, k: ReportMailKind): Buffer {
  const boundary = `bw-${k.kind}-${randomBytes(12).toString('hex')}`;
  const base64 = m.gzip.toString('base64').replace(/.{1,76}/g, '$&\r\n');
  const lines = [
    `From: <${m.from}>`,
    `To: <${m.to}>`,
    `Date: ${rfc5322Date(m.now)}`,
    `Subject: Report Domain: ${m.domain} Submitter: ${m.submitter} Report-ID: <${m.reportId}>`,
    `Message-ID: <${k.kind}.${randomBytes(8).toString('hex')}@${safeHostname(m.submitter)}>`,
    ...k.headers,
    'Auto-Submitted: auto-generated',
    'MIME-Version: 1.0',
    `Content-Type: ${k.multipart}; boundary="${boundary}"`,
    '',
    'This is a multipart message in MIME format.',
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=us-ascii',
    'Content-Transfer-Encoding: 7bit',
    '',
    k.text,
    '',
    `--${boundary}`,
    `Content-Type: ${k.contentType}`,
    'Content-Transfer-Encoding: base64',
    'Content-Disposition: attachment;',
    ` filename="${reportFileName(m.submitter, m.domain, m.day, k.extension)}"`,
    '',
    base64.trimEnd(),
    `--${boundary}--`,
    '',
  ];
  return Buffer.from(lines.join('\r\n'));
}
