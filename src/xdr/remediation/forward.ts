// The message a remediation `forward` sends: the message as found in the recipient's mailbox, attached
// unchanged as message/rfc822 (RFC 2046 §5.2.1) under a short note saying where it came from. It goes
// out through the gateway's own queue as generated mail (never scanned: it is the threat itself, sent
// on purpose to whoever investigates it). No I/O here.
import { randomBytes } from 'node:crypto';
import { quotedPrintable, rfc5322Date, safeHostname, singleLine, unstructuredHeader } from '../../alerts/message.ts';

export interface ForwardInput {
  mid: number;
  messageId: string;
  /** the mailbox it was found in */
  mailbox: string;
  profile: string;
  /** the message as the mailbox holds it */
  original: Buffer;
  subject: string | null;
  sender: string;
  from: string;
  to: string;
  hostname: string;
  by: string | null;
  now?: number;
}

export function buildForward(input: ForwardInput): Buffer {
  const { original } = input;
  const host = safeHostname(input.hostname);
  const boundary = `=_breakwater_${randomBytes(12).toString('hex')}`;
  const note = [
    `Message remediation: MID ${input.mid}, forwarded from the mailbox of <${singleLine(input.mailbox)}>` +
      (input.by ? ` at the request of ${singleLine(input.by)}.` : '.'),
    'The attachment is the message as it was in the mailbox, unchanged and not scanned again: open it with care.',
    '',
    `Message-ID:  ${singleLine(input.messageId)}`,
    `Sender:      <${singleLine(input.sender)}>`,
    `Subject:     ${singleLine(input.subject ?? '(none)')}`,
    `Mailbox:     <${singleLine(input.mailbox)}> (profile ${singleLine(input.profile)})`,
    '',
  ].join('\r\n');
  const sevenBit = /^[\t\r\n\x20-\x7e]*$/.test(note);
  const originalCte = original.some((b) => b >= 0x80) ? '8bit' : '7bit';
  const head = [
    `Date: ${rfc5322Date(input.now ?? Date.now())}`,
    `From: Breakwater <${input.from}>`,
    `To: <${input.to}>`,
    unstructuredHeader('Subject', `[Remediation] MID ${input.mid}: ${singleLine(input.subject ?? '(no subject)')}`),
    `Message-ID: <remed-${input.mid}.${randomBytes(8).toString('hex')}@${host}>`,
    'Auto-Submitted: auto-generated',
    'X-Auto-Response-Suppress: All',
    `X-Breakwater-Remediation: MID ${input.mid} from <${singleLine(input.mailbox)}>`,
    'MIME-Version: 1.0',
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    `Content-Transfer-Encoding: ${sevenBit ? '7bit' : 'quoted-printable'}`,
    '',
    sevenBit ? note : quotedPrintable(note),
    `--${boundary}`,
    `Content-Type: message/rfc822; name="mid-${input.mid}.eml"`,
    `Content-Disposition: attachment; filename="mid-${input.mid}.eml"`,
    `Content-Transfer-Encoding: ${originalCte}`,
    '',
    '',
  ].join('\r\n');
  const tail = `${original.subarray(-2).equals(Buffer.from('\r\n')) ? '' : '\r\n'}--${boundary}--\r\n`;
  return Buffer.concat([Buffer.from(head, 'utf8'), original, Buffer.from(tail, 'utf8')]);
}
