// The byte changes of a deliver verdict, as one pure job: infected attachments stripped (anti-virus),
// Outbreak Filters' subject, header fields, disclaimer and rewritten links, then the anti-virus and
// release subject tags. Pure and structured-cloneable, so that a parse worker runs it off the event loop
// (mime/worker.ts; link rewriting signs an HMAC and scores every URL against the rules, several ms for a
// message with 20 links), and the event loop runs the same code when no worker can.
import { stripParts, type StripTarget } from '../mime/edit/replace.ts';
import { modifyMessage, type ModifyResult } from '../outbreak/modify.ts';
import { LinkSigner, type LinkSignerOptions } from '../clicktime/link-signer.ts';
import type { ClickThreat } from '../clicktime/token.ts';
import { applyAuthResults } from '../senderauth/headers.ts';
import { removeFields } from '../mime/edit/remove-fields.ts';
import { isSpamVerdictField } from '../antispam/headers.ts';

export interface ModificationJob {
  /** anti-virus: parts replaced by a notice, first */
  strip: StripTarget[];
  subject: { mode: 'prepend' | 'append'; text: string } | null;
  addHeaders: Array<{ name: string; value: string }>;
  disclaimer: { text: string; html: string } | null;
  /** null: links are not rewritten (off, or no click-time service) */
  rewrite: {
    mode: 'unsigned' | 'all';
    bypassDomains: string[];
    signer: LinkSignerOptions;
    mid: number;
    /** "" when the copy goes to several recipients */
    recipient: string;
    /** the message's threat, carried in every link (level 0: none) */
    messageThreat: ClickThreat;
  } | null;
  /** leave signed messages as signed (see ModifyOptions.protectSigned) */
  protectSigned: boolean;
  /** subject tags put in front, in this order (anti-virus, then release) */
  tags: string[];
  /**
   * sender authentication: Authentication-Results fields claiming this authserv-id are removed as forged
   * (ours goes on top at send time, delivery/signing.ts)
   */
  removeAuthResults?: string | null;
  /** the rspamd stage judged it: spam verdict fields it came with go (antispam/headers.ts) */
  removeSpamFields?: boolean;
}

/** The job only removes forged fields (header-block edits, cheap on the event loop). */
export function onlyRemovesFields(job: ModificationJob): boolean {
  return (
    (!!job.removeAuthResults || !!job.removeSpamFields) &&
    !job.strip.length &&
    !job.subject &&
    !job.addHeaders.length &&
    !job.disclaimer &&
    !job.rewrite &&
    !job.tags.length
  );
}

export interface ModificationOutcome {
  bytes: Buffer;
  changed: boolean;
  /** parts actually stripped */
  stripped: string[];
  subjectChanged: boolean;
  disclaimerParts: number;
  rewrittenUrls: number;
  rewriteSkipped: ModifyResult['rewriteSkipped'];
}

/** The threat of one URL now (published and adaptive URL rules), for its rewritten link. */
export type UrlThreatLookup = (url: string) => ClickThreat | undefined;

/** Runs the job on a message's bytes. Never throws on message content (modifyMessage and stripParts do not). */
export function runModification(input: Buffer, job: ModificationJob, urlThreat: UrlThreatLookup): ModificationOutcome {
  // forged fields first: the modification below may add our own X-Spam-Status
  if (job.removeAuthResults) input = applyAuthResults(input, null, job.removeAuthResults).bytes;
  if (job.removeSpamFields) input = removeFields(input, isSpamVerdictField).bytes;
  const removed = !!job.removeAuthResults || !!job.removeSpamFields;
  if (onlyRemovesFields(job)) {
    return {
      bytes: input,
      changed: true,
      stripped: [],
      subjectChanged: false,
      disclaimerParts: 0,
      rewrittenUrls: 0,
      rewriteSkipped: null,
    };
  }
  let original = input;
  let stripped: string[] = [];
  if (job.strip.length) {
    const r = stripParts(original, job.strip);
    stripped = r.stripped;
    original = r.bytes;
  }
  let rewrite;
  if (job.rewrite) {
    const { signer: signerOptions, mid, recipient, messageThreat } = job.rewrite;
    const signer = new LinkSigner(signerOptions);
    rewrite = {
      mode: job.rewrite.mode,
      bypassDomains: job.rewrite.bypassDomains,
      wrap: (url: string): string => {
        try {
          // The link carries what is known now: the message's level and what matches the URL itself,
          // so that a click is never judged on the URL's current rules alone (docs/outbreak.md).
          return signer.wrap(url, {
            mid,
            recipient,
            reason: 'outbreak',
            messageThreat: messageThreat.level > 0 ? messageThreat : undefined,
            urlThreat: urlThreat(url),
          });
        } catch {
          // A URL too long to carry in a signed link (several KB) is not left clickable in a threat
          // message: it points at the service's "this link cannot be opened" page instead.
          return `${signer.baseUrl}/c/unavailable`;
        }
      },
      isOwnLink: (url: string) => signer.isOwnLink(url),
    };
  }
  let result = modifyMessage(original, {
    subject: job.subject ?? undefined,
    addHeaders: job.addHeaders,
    disclaimer: job.disclaimer ?? undefined,
    rewrite,
    protectSigned: job.protectSigned,
  });
  if (stripped.length) result = { ...result, changed: true };
  // Anti-virus tag, then the release tag, each in front of what came before.
  for (const tag of job.tags) {
    const tagged = modifyMessage(result.bytes, {
      subject: { mode: 'prepend', text: tag },
      protectSigned: job.protectSigned,
    });
    result = { ...result, bytes: tagged.bytes, changed: result.changed || tagged.changed };
  }
  if (removed) result = { ...result, changed: true };
  return {
    bytes: result.bytes,
    changed: result.changed,
    stripped,
    subjectChanged: result.subjectChanged,
    disclaimerParts: result.disclaimerParts,
    rewrittenUrls: result.rewrittenUrls.length,
    rewriteSkipped: result.rewriteSkipped,
  };
}
