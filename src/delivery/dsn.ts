// Delivery status notifications (RFC 3464, multipart/report per RFC 6522).
import { randomBytes } from 'node:crypto';

export interface DsnRecipient {
  address: string;
  /** "failed" for bounces */
  action: 'failed' | 'delayed';
  /** enhanced status code such as 5.1.1 */
  status: string;
  /** the remote reply, when there was one */
  diagnostic: string | null;
  remoteMta: string | null;
}

export interface DsnInput {
  reportingMta: string;
  originalSender: string;
  originalMid: number;
  arrivalDate: Date;
  recipients: DsnRecipient[];
  /** the original message's header block (never the body: it may carry the threat) */
  originalHeaders: string;
}

export function statusFromReply(reply: string, fallback: string): string {
  const m = /\b([245]\.\d{1,3}\.\d{1,3})\b/.exec(reply);
  return m ? m[1] : fallback;
}

function rfc5322Date(d: Date): string {
  return d.toUTCString().replace('GMT', '+0000');
}

function clean(s: string): string {
  return s.replace(/[\r\n]+/g, ' ').replace(/[^\x20-\x7e]/g, '?');
}

export function buildDsn(input: DsnInput): Buffer {
  const boundary = `bw-dsn-${randomBytes(12).toString('hex')}`;
  const now = new Date();
  const human = input.recipients
    .map((r) => `  <${clean(r.address)}>: ${r.diagnostic ? clean(r.diagnostic) : 'delivery failed'}`)
    .join('\r\n');
  const perRecipient = input.recipients
    .map((r) =>
      [
        `Final-Recipient: rfc822; ${clean(r.address)}`,
        `Action: ${r.action}`,
        `Status: ${r.status}`,
        ...(r.remoteMta ? [`Remote-MTA: dns; ${clean(r.remoteMta)}`] : []),
        ...(r.diagnostic ? [`Diagnostic-Code: smtp; ${clean(r.diagnostic)}`] : []),
        `Last-Attempt-Date: ${rfc5322Date(now)}`,
      ].join('\r\n'),
    )
    .join('\r\n\r\n');
  const headers = input.originalHeaders.replace(/\r?\n/g, '\r\n').replace(/(\r\n)*$/, '\r\n');
  const lines = [
    `From: Mail Delivery System <MAILER-DAEMON@${input.reportingMta}>`,
    `To: <${clean(input.originalSender)}>`,
    `Subject: Undelivered Mail Returned to Sender`,
    `Date: ${rfc5322Date(now)}`,
    `Message-ID: <dsn.${input.originalMid}.${Date.now()}@${input.reportingMta}>`,
    `Auto-Submitted: auto-replied`,
    `MIME-Version: 1.0`,
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    ``,
    `This is a MIME-encapsulated message.`,
    ``,
    `--${boundary}`,
    `Content-Type: text/plain; charset=us-ascii`,
    ``,
    `This is the mail system at host ${input.reportingMta}.`,
    ``,
    `Your message (MID ${input.originalMid}) could not be delivered to one or more recipients:`,
    ``,
    human,
    ``,
    `--${boundary}`,
    `Content-Type: message/delivery-status`,
    ``,
    `Reporting-MTA: dns; ${input.reportingMta}`,
    `X-Breakwater-MID: ${input.originalMid}`,
    `Arrival-Date: ${rfc5322Date(input.arrivalDate)}`,
    ``,
    perRecipient,
    ``,
    `--${boundary}`,
    `Content-Type: text/rfc822-headers`,
    ``,
    headers,
    `--${boundary}--`,
    ``,
  ];
  return Buffer.from(lines.join('\r\n'));
}
