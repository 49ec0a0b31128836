// "Send a copy" (DESIGN §5): a held message goes to an administrator attached, unchanged, as
// message/rfc822 inside a short cover note. The original stays held; the copy is our own generated mail
// (never scanned: the administrator asked for exactly these bytes). No I/O here.
import { singleLine } from '../alerts/message.ts';
import { buildCoverMessage } from '../mime/cover-message.ts';
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
  const { entry: e } = input;
  return buildCoverMessage({
    mid: e.mid,
    note: [
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
    ],
    original: input.original,
    from: input.from,
    to: input.to,
    subjectTag: '[Quarantine copy]',
    originalSubject: e.subject,
    idPrefix: 'qcopy',
    marker: `X-Breakwater-Quarantine: copy of MID ${e.mid} from ${quarantineTitle(e.quarantine)}`,
    hostname: input.hostname,
    now: input.now,
  });
}

/** A stored time, or "unknown" for one no Date can show (a damaged row must not stop the copy). */
function isoOrUnknown(ms: number): string {
  return Number.isFinite(ms) ? new Date(ms).toISOString() : 'unknown';
}
