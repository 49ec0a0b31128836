// The click verdict (DESIGN §4.6): what the link's token says was known when the link was rewritten,
// combined with the fresh verdict at click time. Pure; the service (server.ts) applies the result.
//
// Signals, and what each can lead to (`warnLevel` / `blockLevel`: clickTime.warnLevel, default 1, and
// clickTime.blockLevel, default 4):
//
//   allow list (click time)      clean, whatever else is known: an administrator's explicit decision
//                                wins, also over the message's level (the way to unblock a false positive)
//   block list (click time)      malicious
//   URL rules now (click time)   ≥ blockLevel malicious, ≥ warnLevel suspicious (the gateway's verdict)
//   URL rules at rewrite (token) ≥ blockLevel malicious, ≥ warnLevel suspicious
//   message level (token)        ≥ 1 suspicious, never more: links are only rewritten in messages at or
//                                above their policy's modification threshold, so any level carried means
//                                the message was judged a threat; that the message is a threat does not
//                                prove that every link in it is, so this alone warns and never blocks
//
// The strongest verdict wins; on a tie the first source in the order above is named. When there is no
// fresh verdict (timeout, error) the token alone decides; if it says nothing the click is let through as
// "unknown", as before.

/** What decided a click's verdict (recorded with every click). */
export type ClickSource =
  /** clickTime.allowList */
  | 'allow_list'
  /** clickTime.blockList */
  | 'block_list'
  /** the current outbreak and adaptive URL rules, evaluated at click time */
  | 'url_rules'
  /** the rules that matched the URL when the link was rewritten (carried in the token) */
  | 'url_at_rewrite'
  /** the threat level of the message the link was in (carried in the token) */
  | 'message'
  /** nothing flagged the link, or there was no verdict (unknown, invalid link) */
  | 'none';

export type VerdictKind = 'clean' | 'suspicious' | 'malicious';

/** A verdict for a URL at click time, from the verdict function (the gateway's clickVerdict). */
export interface FreshVerdict {
  verdict: VerdictKind;
  ruleIds: readonly string[];
  reason: string;
  /** what decided it; taken as "url_rules" when not given (and "none" for a clean one) */
  source?: 'allow_list' | 'block_list' | 'url_rules';
}

export interface TokenThreats {
  messageThreat?: { level: number; ruleIds: readonly string[] };
  urlThreat?: { level: number; ruleIds: readonly string[] };
}

export interface VerdictLevels {
  /** a URL level at or above this warns (default 1) */
  warnLevel: number;
  /** a URL level at or above this blocks (default 4) */
  blockLevel: number;
}

export interface CombinedVerdict {
  verdict: VerdictKind;
  ruleIds: string[];
  /** shown on the warning and block pages and recorded with the click */
  reason: string;
  source: ClickSource;
}

const RANK: Record<VerdictKind, number> = { clean: 0, suspicious: 1, malicious: 2 };

function urlLevelVerdict(level: number, levels: VerdictLevels): VerdictKind {
  if (level > 0 && level >= levels.blockLevel) return 'malicious';
  if (level > 0 && level >= levels.warnLevel) return 'suspicious';
  return 'clean';
}

/**
 * The verdict for a click. `fresh` is the click-time verdict, or null when there is none (timeout or
 * error; `unavailable` says why). Returns null when nothing is known at all: the caller lets the click
 * through as "unknown".
 */
export function combineVerdict(
  fresh: FreshVerdict | null,
  token: TokenThreats,
  levels: VerdictLevels,
  unavailable = '',
): CombinedVerdict | null {
  if (fresh && fresh.source === 'allow_list')
    return { verdict: 'clean', ruleIds: [...fresh.ruleIds], reason: fresh.reason, source: 'allow_list' };
  const candidates: CombinedVerdict[] = [];
  if (fresh && fresh.verdict !== 'clean')
    candidates.push({
      verdict: fresh.verdict,
      ruleIds: [...fresh.ruleIds],
      reason: fresh.reason,
      source: fresh.source ?? 'url_rules',
    });
  const u = token.urlThreat;
  if (u) {
    const v = urlLevelVerdict(u.level, levels);
    if (v !== 'clean')
      candidates.push({
        verdict: v,
        ruleIds: [...u.ruleIds],
        reason: `This link matched threat rules (level ${u.level} of 5) when the email was scanned.`,
        source: 'url_at_rewrite',
      });
  }
  const m = token.messageThreat;
  if (m && m.level > 0)
    candidates.push({
      verdict: 'suspicious',
      ruleIds: [...m.ruleIds],
      reason: `The email this link came in was rated a threat (level ${m.level} of 5) when it was scanned.`,
      source: 'message',
    });
  let best: CombinedVerdict | null = null;
  for (const c of candidates) if (!best || RANK[c.verdict] > RANK[best.verdict]) best = c;
  if (best) {
    if (!fresh && unavailable) best.reason += ` (The check at click time was not available: ${unavailable}.)`;
    return best;
  }
  if (!fresh) return null;
  return { verdict: 'clean', ruleIds: [...fresh.ruleIds], reason: fresh.reason, source: 'none' };
}
