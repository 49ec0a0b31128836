// Scoring (DESIGN §4.1–4.2): the active outbreak rule bundle plus the adaptive rules give every
// message a threat level, the maximum over matching rules. The engine only reports; the policy layer
// (policy/outbreak.ts) decides what the level means for a given mail policy.
import type { AttachmentInfo, ParsedMessage } from '../mime/types.ts';
import { evaluateAdaptive, evaluateAdaptiveUrl } from './adaptive.ts';
import { authHits } from './adaptive/auth.ts';
import { compileRules, type CompiledRules, type Rule } from './rules.ts';
import type { MessageFacts, RuleHit, ThreatCategory } from './types.ts';
import type { SenderAuthResult } from '../senderauth/verify.ts';

export interface OutbreakAssessment {
  /** false when the stage did not score the message (see skipped) */
  scanned: boolean;
  skipped: null | 'too_large' | 'not_parsed';
  /** larger than maxScanSize: attachment metadata and the first maxScanSize bytes of content were scored */
  partial: boolean;
  level: number;
  /** category and type of the strongest hit; null at level 0 */
  category: ThreatCategory | null;
  type: RuleHit['type'] | null;
  /** the strongest hit is on an attachment */
  viral: boolean;
  description: string;
  hits: RuleHit[];
  /** version of the outbreak rule bundle used, null when none was active */
  ruleVersion: number | null;
}

export interface ActiveBundle {
  version: number;
  published: string;
  /** compiled on first use on this thread (parse workers compile their own copy from `source`) */
  readonly rules: CompiledRules;
  ruleCount: number;
  /** the validated rules as installed: what parse workers compile their own copy from */
  source: readonly Rule[];
  /** increases with every install (a bundle may be installed again under the same version) */
  generation: number;
}

let generations = 0;

export const emptyAssessment = (skipped: OutbreakAssessment['skipped'], ruleVersion: number | null) =>
  ({
    scanned: false,
    skipped,
    partial: false,
    level: 0,
    category: null,
    type: null,
    viral: false,
    description: '',
    hits: [],
    ruleVersion,
  }) satisfies OutbreakAssessment;

/** Holds the active bundle; swapping it is atomic for every message scored afterwards. */
export class OutbreakEngine {
  private active: ActiveBundle | null = null;
  adaptive: boolean;

  constructor(adaptive: boolean) {
    this.adaptive = adaptive;
  }

  get bundle(): ActiveBundle | null {
    return this.active;
  }

  install(bundle: { version: number; published: string; rules: readonly Rule[] } | null): void {
    if (!bundle) {
      this.active = null;
      return;
    }
    // Messages are scored in the parse workers, each with its own compiled copy: this thread compiles
    // the bundle only when it scores itself (click time, re-evaluation, a bundle swapped mid-flight).
    const source = bundle.rules;
    let compiled: CompiledRules | null = null;
    this.active = {
      version: bundle.version,
      published: bundle.published,
      get rules() {
        return (compiled ??= compileRules(source));
      },
      ruleCount: source.length,
      source,
      generation: ++generations,
    };
  }

  /**
   * Scores a message. Bypassed extensions (per policy) are left out of the attachment facts, also
   * inside archives; but when the other attachments match an attachment rule, the message is
   * scored whole (reference R24: a bypass only counts when nothing else in the message is covered).
   */
  score(facts: MessageFacts, bypassExtensions: readonly string[] = []): OutbreakAssessment {
    return assess(
      scoreHits(this.active?.rules ?? null, this.adaptive, facts, bypassExtensions),
      this.active?.version ?? null,
    );
  }

  /** Level of one URL at click time: published URL rules and the URL-only adaptive rules. */
  scoreUrl(url: string): RuleHit[] {
    return scoreUrlHits(this.active?.rules ?? null, this.adaptive, url);
  }

  /** The level and strongest rules matching a URL now (see urlThreat below). */
  urlThreat(url: string): { level: number; ruleIds: string[] } | undefined {
    return urlThreat(this.active?.rules ?? null, this.adaptive, url);
  }
}

/** The hits of one URL: published URL rules (when a bundle is active) and the URL-only adaptive rules. */
export function scoreUrlHits(rules: CompiledRules | null, adaptive: boolean, url: string): RuleHit[] {
  const hits = rules ? rules.evaluateUrl(url) : [];
  if (adaptive) hits.push(...evaluateAdaptiveUrl(url));
  return hits;
}

/**
 * The level and strongest rules that match a URL (carried in its rewritten link's token); undefined
 * when nothing matches or the URL does not parse. Throws when a rule fails. The URL is judged as the
 * click-time service will see it (and judge it again): normalised by the URL parser.
 */
export function urlThreat(
  rules: CompiledRules | null,
  adaptive: boolean,
  url: string,
): { level: number; ruleIds: string[] } | undefined {
  let href: string;
  try {
    href = new URL(url).href;
  } catch {
    return undefined;
  }
  const hits = scoreUrlHits(rules, adaptive, href);
  const level = Math.max(0, ...hits.map((h) => h.level));
  return level > 0 ? { level, ruleIds: hits.filter((h) => h.level === level).map((h) => h.id) } : undefined;
}

/**
 * The hits of a message: published rules (when a bundle is active) and the adaptive rules. Bypassed
 * extensions (per policy) are left out of the attachment facts, also inside archives; but when the other
 * attachments match an attachment rule, the message is scored whole (reference R24). Pure: the engine
 * and the parse workers (mime/worker.ts, with their own compiled copy of the bundle) both use it.
 */
export function scoreHits(
  rules: CompiledRules | null,
  adaptive: boolean,
  facts: MessageFacts,
  bypassExtensions: readonly string[] = [],
): RuleHit[] {
  const hitsFor = (f: MessageFacts): RuleHit[] => {
    const hits = rules ? rules.evaluate(f) : [];
    if (adaptive) hits.push(...evaluateAdaptive(f));
    return hits;
  };
  if (bypassExtensions.length && facts.parsed.attachments.length) {
    const filtered = withoutBypassed(facts.parsed, new Set(bypassExtensions));
    const hits = hitsFor({ ...facts, parsed: filtered });
    return filtered !== facts.parsed && hits.some((h) => h.viral) ? hitsFor(facts) : hits;
  }
  return hitsFor(facts);
}

/** The parsed message with its text content cut to the first `max` characters (text first, then HTML). */
export function truncatedContent(parsed: ParsedMessage, max: number): ParsedMessage {
  const text = parsed.text.length > max ? parsed.text.slice(0, max) : parsed.text;
  const room = Math.max(0, max - text.length);
  const html = parsed.html.length > room ? parsed.html.slice(0, room) : parsed.html;
  return text === parsed.text && html === parsed.html ? parsed : { ...parsed, text, html };
}

/**
 * The assessment with the sender-authentication hits (adaptive/auth.ts) added: they need the senderAuth
 * stage's results, which the parse worker never has, so whoever scores a message with its results at
 * hand (the outbreak stage; re-evaluation, with the results recorded at scan time) adds them here.
 */
export function withAuthHits(
  a: OutbreakAssessment,
  adaptive: boolean,
  senderAuth: SenderAuthResult | null | undefined,
  from: string | null,
): OutbreakAssessment {
  const auth = adaptive && senderAuth ? authHits(senderAuth, from, a.hits) : [];
  return auth.length ? assess([...a.hits, ...auth], a.ruleVersion) : a;
}

/** Level = max over hits; the strongest hit names category and type (viral wins a tie: longer hold). */
export function assess(hits: RuleHit[], ruleVersion: number | null): OutbreakAssessment {
  let top: RuleHit | null = null;
  for (const h of hits) {
    if (!top || h.level > top.level || (h.level === top.level && h.viral && !top.viral)) top = h;
  }
  const sorted = [...hits].sort((a, b) => b.level - a.level || a.id.localeCompare(b.id));
  return {
    scanned: true,
    skipped: null,
    partial: false,
    level: top?.level ?? 0,
    category: top && top.level > 0 ? top.category : null,
    type: top && top.level > 0 ? top.type : null,
    viral: !!top && top.level > 0 && top.viral,
    description: top && top.level > 0 ? top.description : '',
    hits: sorted,
    ruleVersion,
  };
}

function withoutBypassed(parsed: ParsedMessage, bypass: Set<string>): ParsedMessage {
  let changed = false;
  const attachments: AttachmentInfo[] = [];
  for (const a of parsed.attachments) {
    if (bypass.has(a.extension)) {
      changed = true;
      continue;
    }
    const members = a.members.filter((m) => !bypass.has(m.extension));
    if (members.length !== a.members.length) {
      changed = true;
      attachments.push({ ...a, members });
    } else attachments.push(a);
  }
  return changed ? { ...parsed, attachments } : parsed;
}
