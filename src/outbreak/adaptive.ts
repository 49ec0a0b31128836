// Adaptive rules (DESIGN §4.2): built-in heuristics that give a message a threat level without a
// published outbreak rule. The catalogue (ids, levels, categories, descriptions) is in
// adaptive/catalogue.ts, the lists they use in adaptive/lists.ts, the evaluation in
// adaptive/evaluate.ts (the rules themselves in adaptive/check-*.ts). Every hit is adaptive; hits on
// attachments are viral.
//
//   evaluateAdaptive(facts)   every adaptive rule on a parsed message
//   evaluateAdaptiveUrl(url)  the URL-only rules, for a fresh verdict at click time (§4.6)
import type { MessageFacts, RuleHit } from './types.ts';
import { RULES, type AdaptiveRule } from './adaptive/catalogue.ts';
import { evaluateMessage, evaluateUrl } from './adaptive/evaluate.ts';

export type { AdaptiveRule } from './adaptive/catalogue.ts';
export { MANY_SIGNALS_SCORE, MULTIPLE_SIGNALS_SCORE } from './adaptive/evaluate.ts';

/** Every adaptive rule, highest level first (the catalogue the CLI shows). */
export const adaptiveRules: ReadonlyArray<AdaptiveRule> = Object.freeze(
  Object.values(RULES).sort((a, b) => b.level - a.level || a.id.localeCompare(b.id)),
);

/** Adaptive rules matching a message: at most one hit per rule, in no particular order. */
export function evaluateAdaptive(facts: MessageFacts): RuleHit[] {
  return evaluateMessage(facts);
}

/** Adaptive rules that judge a URL alone (IP-literal host, user info, look-alike host, shortener…). */
export function evaluateAdaptiveUrl(url: string): RuleHit[] {
  return evaluateUrl(url);
}

/** Highest level among hits (0 when none), as the outbreak stage computes it (DESIGN §4.2). */
export function adaptiveLevel(hits: readonly RuleHit[]): number {
  let level = 0;
  for (const h of hits) {
    if (h.level > level) {
      level = h.level;
    }
  }
  return level;
}
