// "Send a copy" (DESIGN §5): a held message goes to an administrator attached, unchanged, as
// message/rfc822 inside a short cover note. The original stays held; the copy is our own generated mail
// (never scanned: the administrator asked for exactly these bytes). No I/O here.
import { randomBytes } from 'node:crypto';
import { quotedPrintable, rfc5322Date, safeHostname, singleLine, unstructuredHeader } from '../alerts/message.ts';
import { quarantineTitle, type QuarantineEntry } from './quarantine.ts';

export interface QuarantineCopyInput {
  entry: Pick<
    QuarantineEntry,
    'mid' | 'quarantine' | 'enteredAt' | 'exitAt' | 'reason' | 'ruleIds' | 'sender' | 'recipients' | 'subject' | 'level'
  >;
  /** the held message, exactly as held */
  original: Buffer;
  from: string;
  to: string[];
  hostname: string;
  by: string | null;
  now?: number;
}

export function buildQuarantineCopy(input: QuarantineCopyInput): Buffer {
  const { entry: e, original, from, to } = input;
  const host = safeHostname(input.hostname);
  const boundary = `=_breakwater_${randomBytes(12).toString('hex')}`;
  const note = [
    `A copy of MID ${e.mid}, held in the ${quarantineTitle(e.quarantine)} quarantine, sent ${input.by ? `at the request of ${singleLine(input.by)}` : 'by an administrator'}.`,
    'The message itself is still held. The attachment is the held message, unchanged and not scanned again:',
    'open it with care.',
    '',
    `Sender:          <${singleLine(e.sender)}>`,
    `Recipients:      ${e.recipients.map((r) => `<${singleLine(r)}>`).join(', ')}`,
    `Subject:         ${singleLine(e.subject ?? '(none)')}`,
    `Reason:          ${singleLine(e.reason)}`,
    ...(e.ruleIds.length ? [`Rules / viruses: ${e.ruleIds.map(singleLine).join(', ')}`] : []),
    ...(e.quarantine === 'outbreak' ? [`Threat level:    ${e.level}`] : []),
    `Entered:         ${isoOrUnknown(e.enteredAt)}`,
    `Scheduled exit:  ${isoOrUnknown(e.exitAt)}`,
    '',
  ].join('\r\n');
  const sevenBit = /^[\t\r\n\x20-\x7e]*$/.test(note);
  // RFC 2046 §5.2.1: a message/rfc822 body is 7bit, 8bit or binary, never encoded.
  const originalCte = original.some((b) => b >= 0x80) ? '8bit' : '7bit';
  const head = [
    `Date: ${rfc5322Date(input.now ?? Date.now())}`,
    `From: Breakwater <${from}>`,
    `To: ${to.join(',\r\n ')}`,
    unstructuredHeader('Subject', `[Quarantine copy] MID ${e.mid}: ${singleLine(e.subject ?? '(no subject)')}`),
    `Message-ID: <qcopy-${e.mid}.${randomBytes(8).toString('hex')}@${host}>`,
    'Auto-Submitted: auto-generated',
    'X-Auto-Response-Suppress: All',
    `X-Breakwater-Quarantine: copy of MID ${e.mid} from ${quarantineTitle(e.quarantine)}`,
    'MIME-Version: 1.0',
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    `Content-Transfer-Encoding: ${sevenBit ? '7bit' : 'quoted-printable'}`,
    '',
    sevenBit ? note : quotedPrintable(note),
    `--${boundary}`,
    `Content-Type: message/rfc822; name="mid-${e.mid}.eml"`,
    `Content-Disposition: attachment; filename="mid-${e.mid}.eml"`,
    `Content-Transfer-Encoding: ${originalCte}`,
    '',
    '',
  ].join('\r\n');
  const tail = `${original.subarray(-2).equals(Buffer.from('\r\n')) ? '' : '\r\n'}--${boundary}--\r\n`;
  return Buffer.concat([Buffer.from(head, 'utf8'), original, Buffer.from(tail, 'utf8')]);
}

/** A stored time, or "unknown" for one no Date can show (a damaged row must not stop the copy). */
function isoOrUnknown(ms: number): string {
  return Number.isFinite(ms) ? new Date(ms).toISOString() : 'unknown';
}
