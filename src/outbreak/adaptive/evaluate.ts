// Evaluation of the adaptive rules on one message (and on one URL at click time). The message is
// read once into a small context (sender, recipient, visible text, analysed URLs), then each group
// of rules adds hits; combination rules look at what the others found. Work is bounded: at most
// MAX_URLS URLs, MAX_ATTACHMENTS attachments, MAX_BODY characters of text and MAX_HTML characters
// of HTML are looked at, whatever the message.
//
// The rules are grouped by what they look at: context.ts (the message read once), check-attachments.ts,
// check-urls.ts, check-sender.ts, check-combinations.ts (lures, and rules that weigh the others).
import type { MessageFacts, RuleHit } from '../types.ts';
import { analyseUrl, hostInSet } from './url.ts';
import { attachmentRules, htmlRules } from './check-attachments.ts';
import { combinationRules, lureRules } from './check-combinations.ts';
import { senderRules } from './check-sender.ts';
import { urlOnlyRules, urlRules } from './check-urls.ts';
import { Hits, buildContext } from './context.ts';

// ---------------------------------------------------------------------------------------------
// entry points

/** Runs every adaptive rule on a message. */
export function evaluateMessage(facts: MessageFacts): RuleHit[] {
  const ctx = buildContext(facts);
  const hits = new Hits();
  attachmentRules(ctx, hits);
  htmlRules(ctx, hits);
  urlRules(ctx, hits);
  const brand = senderRules(ctx, hits);
  lureRules(ctx, hits);
  combinationRules(ctx, hits, brand);
  return hits.list();
}

/** Runs the URL-only adaptive rules on one URL (click time). */
export function evaluateUrl(url: string): RuleHit[] {
  const u = analyseUrl(url.length > 8192 ? url.slice(0, 8192) : url);
  if (!u) {
    return [];
  }
  const hits = new Hits();
  urlOnlyRules(u, hits, 'click');
  if (u.freeHosting) {
    hits.add('URL_FREE_HOSTING', u.url);
  }
  return hits.list();
}

export { hostInSet };
export { MANY_SIGNALS_SCORE, MULTIPLE_SIGNALS_SCORE } from './context.ts';
