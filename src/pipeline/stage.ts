// What a pipeline stage is. The ordered list itself lives in pipeline.ts.
import type { Readable } from 'node:stream';
import type { ParsedMessage } from '../mime/types.ts';
import type { Finding } from '../policy/verdict.ts';
import type { SpoolEnvelope } from '../spool/spool.ts';
import type { OutbreakAssessment } from '../outbreak/engine.ts';
import type { AntivirusResult } from '../antivirus/types.ts';
import type { ScoreResult } from '../outbreak/offload.ts';
import type { RspamdAnswer } from '../antispam/rspamd.ts';
import type { SenderAuthResult } from '../senderauth/verify.ts';

/**
 * What happens when a stage throws or times out. Never "continue as if nothing happened":
 * - tempfail: the message stays queued and the pipeline runs again later;
 * - skip: the message goes on without this stage's findings, and the failure is a tracking event
 *   and a finding later stages and the policy layer can see;
 * - quarantine: the message is held for an administrator (available with quarantines).
 */
export type FailureMode = 'tempfail' | 'skip' | 'quarantine';

export interface StageContext {
  mid: number;
  env: SpoolEnvelope;
  /** spool file and the offset where the message bytes start */
  file: string;
  bodyOffset: number;
  size: number;
  direction: 'incoming' | 'outgoing';
  policy: string;
  /** recipients of this copy */
  recipients: string[];
  parsed: ParsedMessage | null;
  /** Outbreak Filters' score; null when the stage did not run (disabled for the policy) */
  outbreak: OutbreakAssessment | null;
  /**
   * Outbreak hits the parse worker computed next to the parse (outbreak/offload.ts); the outbreak stage
   * applies them, or scores itself when this is unset, resolves to null, or was computed with another
   * bundle, adaptive switch or anti-virus version than the stage sees.
   */
  outbreakScore?: Promise<ScoreResult | null> | null;
  /** anti-virus result; null when the stage did not run (no clamd, or disabled for the policy) */
  antivirus: AntivirusResult | null;
  /** rspamd's answer; unset or null when the stage did not run (no rspamd, or disabled for the policy) */
  antispam?: RspamdAnswer | null;
  /** SPF, DKIM, DMARC and ARC results; unset or null when the senderAuth stage did not run */
  senderAuth?: SenderAuthResult | null;
  /** rescanned on its way out of these quarantines (never held in them again); empty on first scan */
  releasedFrom: readonly string[];
  findings: Finding[];
  /** the message bytes when they are in memory (small messages); otherwise use openMessage() */
  bytes: Buffer | null;
  /** opens the message bytes (without the spool envelope) as a stream */
  openMessage(): Readable;
  /**
   * The first HEAD_BYTES of the message (where its header fields are), read once for every stage that
   * looks at them (forged Authentication-Results, spam verdict fields); a view of `bytes` in memory.
   */
  head(): Promise<Buffer>;
}

/** How much of a message head() gives: header blocks beyond this are not looked through. */
export const HEAD_BYTES = 256 * 1024;

export interface Stage {
  name: string;
  description: string;
  timeoutMs: number;
  failureMode: FailureMode;
  /** settings shown by `breakwater pipeline show` */
  settings: Record<string, unknown>;
  run(ctx: StageContext): Promise<void>;
}
