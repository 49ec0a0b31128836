// One verdict type. Scanners only report findings; the policy layer (policy/decide.ts) turns them
// into exactly one of these, and the gateway switches on it exhaustively.

import type { ModificationPlan } from './outbreak.ts';

export type Verdict =
  | {
      kind: 'deliver';
      reason: string;
      modify?: ModificationPlan;
      /** attachments anti-virus removes, each replaced by a notice */
      strip?: Array<{ partPath: string; notice: string }>;
      /** subject tag(s): anti-virus (infected or unscannable mail delivered by policy), anti-spam */
      subjectTag?: string;
      /** headers added on delivery (anti-spam: X-Spam-Status, X-Spam-Symbols) */
      headers?: Array<{ name: string; value: string }>;
      /**
       * sender authentication: our Authentication-Results value, put on top at send time; `removeForged`:
       * the message carries fields claiming authservId (or may: its header was too large to tell), which
       * a modified copy removes
       */
      authResults?: { value: string; authservId: string; removeForged: boolean };
      /** the rspamd stage judged it: spam verdict fields it arrived with are removed (antispam/headers.ts) */
      removeSpamFields?: boolean;
    }
  | {
      kind: 'quarantine';
      reason: string;
      /** one or more quarantines (DESIGN §5: delivered only when released from all of them) */
      holds: QuarantineHold[];
    }
  | { kind: 'drop'; reason: string }
  | { kind: 'bounce'; reason: string; reply: string }
  | { kind: 'tempfail'; reason: string; retryAfterMs: number };

export interface QuarantineHold {
  quarantine: string;
  reason: string;
  retentionMs: number;
  /** what the message is managed by in that quarantine: outbreak rule ids, virus names */
  ids: string[];
}

export type FindingSeverity = 'info' | 'suspicious' | 'threat';

/** A fact a stage observed about a message, with evidence. */
export interface Finding {
  stage: string;
  /** stable code, e.g. "mime.anomaly" */
  code: string;
  severity: FindingSeverity;
  detail: string;
}
