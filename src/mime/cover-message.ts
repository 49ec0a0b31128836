// A message of ours that carries another one unchanged: a short cover note, then the original attached
// as message/rfc822 (RFC 2046 §5.2.1). Quarantine "send a copy" and remediation's forward both send
// one; it is generated mail and never scanned (it is the suspect message, sent on purpose). No I/O here.
import { randomBytes } from 'node:crypto';
import { quotedPrintable, rfc5322Date, safeHostname, singleLine, unstructuredHeader } from '../alerts/message.ts';

export interface CoverMessage {
  mid: number;
  /** the note's lines (CRLF-joined; non-ASCII is sent quoted-printable) */
  note: string[];
  original: Buffer;
  from: string;
  to: string[];
  /** e.g. `[Quarantine copy]`, in front of `MID n: <original subject>` */
  subjectTag: string;
  originalSubject: string | null;
  /** Message-ID local part prefix (`qcopy`, `remed`) */
  idPrefix: string;
  /** one header saying what this is (X-Breakwater-…) */
  marker: string;
  hostname: string;
  now?: number;
}

export function buildCoverMessage(m: CoverMessage): Buffer {
  const { original } = m;
  const host = safeHostname(m.hostname);
  const boundary = `=_breakwater_${randomBytes(12).toString('hex')}`;
  const note = m.note.join('\r\n');
  const sevenBit = /^[\t\r\n\x20-\x7e]*$/.test(note);
  // RFC 2046 §5.2.1: a message/rfc822 body is 7bit, 8bit or binary, never encoded.
  const originalCte = original.some((b) => b >= 0x80) ? '8bit' : '7bit';
  const head = [
    `Date: ${rfc5322Date(m.now ?? Date.now())}`,
    `From: Breakwater <${m.from}>`,
    `To: ${m.to.map((t) => `<${t}>`).join(',\r\n ')}`,
    unstructuredHeader('Subject', `${m.subjectTag} MID ${m.mid}: ${singleLine(m.originalSubject ?? '(no subject)')}`),
    `Message-ID: <${m.idPrefix}-${m.mid}.${randomBytes(8).toString('hex')}@${host}>`,
    'Auto-Submitted: auto-generated',
    'X-Auto-Response-Suppress: All',
    m.marker,
    'MIME-Version: 1.0',
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    `Content-Transfer-Encoding: ${sevenBit ? '7bit' : 'quoted-printable'}`,
    '',
    sevenBit ? note : quotedPrintable(note),
    `--${boundary}`,
    `Content-Type: message/rfc822; name="mid-${m.mid}.eml"`,
    `Content-Disposition: attachment; filename="mid-${m.mid}.eml"`,
    `Content-Transfer-Encoding: ${originalCte}`,
    '',
    '',
  ].join('\r\n');
  const tail = `${original.subarray(-2).equals(Buffer.from('\r\n')) ? '' : '\r\n'}--${boundary}--\r\n`;
  return Buffer.concat([Buffer.from(head, 'utf8'), original, Buffer.from(tail, 'utf8')]);
}
