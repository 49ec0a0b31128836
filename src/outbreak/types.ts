// Shared types of Outbreak Filters (DESIGN §4): what rules see of a message, and what a matching rule
// reports. Published outbreak rules (rules.ts) and built-in adaptive rules (adaptive.ts) both produce
// RuleHits; the outbreak stage takes the maximum level and the policy layer decides what to do.
import type { ParsedMessage } from '../mime/types.ts';

export type ThreatCategory = 'virus' | 'malware' | 'phish' | 'scam' | 'other';

export const threatCategories: readonly ThreatCategory[] = ['virus', 'malware', 'phish', 'scam', 'other'];

/** Labels shown next to a level (DESIGN §4.1). */
export const threatLevelNames = ['None', 'Low', 'Low/Medium', 'Medium', 'High', 'Extreme'] as const;

/** What outbreak and adaptive rules see of a message. */
export interface MessageFacts {
  parsed: ParsedMessage;
  /**
   * envelope sender (MAIL FROM), lower case; "" for the null sender (MAIL FROM:<>); null when no envelope
   * is known (a message read from a file without its envelope), which is not the same thing
   */
  sender: string | null;
  /** anti-virus signature version (clamd's daily version) when anti-virus ran, else null */
  avSignatureVersion: number | null;
}

/** One rule that matched a message (or a URL at click time). */
export interface RuleHit {
  /** stable id: OUTBREAK_… for published rules, ADAPTIVE_… for built-in ones */
  id: string;
  /** 0–5 */
  level: number;
  category: ThreatCategory;
  /** what the evidence is: "attachment", "url", "content", "sender" */
  type: 'attachment' | 'url' | 'content' | 'sender';
  description: string;
  /** the match is on an attachment (viral: decides retention and modification, DESIGN §4.1) */
  viral: boolean;
  adaptive: boolean;
  /** short evidence: the file name, URL or phrase that matched (bounded, for tracking) */
  evidence?: string;
}
