// Remediation of delivered mail (DESIGN §10): the actions, the stable failure reasons, and the one
// interface both mailbox back ends (IMAP, Microsoft Graph) implement.

export type RemediationAction = 'delete' | 'forward' | 'forward-and-delete';

/**
 * Why remediating one message in one mailbox failed (stable codes; docs/xdr.md explains each):
 * - mailbox_not_found: the server has no such mailbox (IMAP: the master user may not become it; Graph 404)
 * - message_not_found: the mailbox holds no message with that Message-ID (never there, or already removed)
 * - auth_failed: the profile's credentials were refused (master password, client secret, certificate)
 * - timeout: an attempt took longer than remediation.timeout (after every attempt)
 * - not_delivered: tracking shows no delivery to that recipient (or no such message): nothing to do
 * - no_profile: no mapping covers the recipient's domain
 * - error: anything else (connection refused, a protocol error, a 5xx), after every attempt
 */
export type FailureReason =
  'mailbox_not_found' | 'message_not_found' | 'auth_failed' | 'timeout' | 'not_delivered' | 'no_profile' | 'error';

export const FAILURE_REASONS: readonly FailureReason[] = [
  'mailbox_not_found',
  'message_not_found',
  'auth_failed',
  'timeout',
  'not_delivered',
  'no_profile',
  'error',
];

/** Failures worth another attempt; the others are final for the profile (a chain's next one may still work). */
export function isTransient(r: FailureReason): boolean {
  return r === 'timeout' || r === 'error';
}

/** A back end's failure, with its stable reason and a short detail for people (never a secret). */
export class RemediationError extends Error {
  readonly reason: FailureReason;
  constructor(reason: FailureReason, detail: string) {
    super(detail);
    this.reason = reason;
  }
}

/** One message to act on in a mailbox; the service keeps it across attempts (and chained profiles). */
export interface MailboxItem {
  /** the message copy's MID (for forwarding and tracking) */
  mid: number;
  /** the Message-ID header, with its angle brackets */
  messageId: string;
  /** set by the back end once it acted on the message (a retry that no longer finds it is not a failure) */
  found: boolean;
  /** set once forwarded, so a retry never forwards twice */
  forwardMid: number | null;
}

export interface MailboxRequest {
  /** the recipient address: the mailbox */
  mailbox: string;
  action: RemediationAction;
  items: MailboxItem[];
  /** sends the original bytes of a found message to the forward address (sets item.forwardMid) */
  forward: (item: MailboxItem, original: Buffer) => Promise<void>;
  /** aborted when the attempt's time is up */
  signal: AbortSignal;
}

/**
 * A mailbox back end: one session on one mailbox that acts on every item it finds and marks it found.
 * It throws a RemediationError for what concerns the whole mailbox (auth_failed, mailbox_not_found,
 * timeout, error); an item left unfound is message_not_found.
 */
export interface MailboxBackend {
  remediate(req: MailboxRequest): Promise<void>;
}
