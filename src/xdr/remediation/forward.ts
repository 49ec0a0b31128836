// The message a remediation `forward` sends: the message as found in the recipient's mailbox, attached
// unchanged as message/rfc822 (RFC 2046 §5.2.1) under a short note saying where it came from. It goes
// out through the gateway's own queue as generated mail (never scanned: it is the threat itself, sent
// on purpose to whoever investigates it). No I/O here.
import { singleLine } from '../../alerts/message.ts';
import { buildCoverMessage } from '../../mime/cover-message.ts';

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
  return buildCoverMessage({
    mid: input.mid,
    note: [
      `Message remediation: MID ${input.mid}, forwarded from the mailbox of <${singleLine(input.mailbox)}>` +
        (input.by ? ` at the request of ${singleLine(input.by)}.` : '.'),
      'The attachment is the message as it was in the mailbox, unchanged and not scanned again: open it with care.',
      '',
      `Message-ID:  ${singleLine(input.messageId)}`,
      `Sender:      <${singleLine(input.sender)}>`,
      `Subject:     ${singleLine(input.subject ?? '(none)')}`,
      `Mailbox:     <${singleLine(input.mailbox)}> (profile ${singleLine(input.profile)})`,
      '',
    ],
    original: input.original,
    from: input.from,
    to: [input.to],
    subjectTag: '[Remediation]',
    originalSubject: input.subject,
    idPrefix: 'remed',
    marker: `X-Breakwater-Remediation: MID ${input.mid} from <${singleLine(input.mailbox)}>`,
    hostname: input.hostname,
    now: input.now,
  });
}
