// Scoring (DESIGN §4.1–4.2): the active outbreak rule bundle plus the adaptive rules give every
// message a threat level, the maximum over matching rules. The engine only reports; the policy layer
// (policy/outbreak.ts) decides what the level means for a given mail policy.
import type { AttachmentInfo, ParsedMessage } from '../mime/types.ts';
import { evaluateAdaptive, evaluateAdaptiveUrl } from './adaptive.ts';
import { compileRules, type CompiledRules } from './rules.ts';
import type { MessageFacts, RuleHit, ThreatCategory } from './types.ts';

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
  rules: CompiledRules;
  ruleCount: number;
}

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

  install(bundle: { version: number; published: string; rules: Parameters<typeof compileRules>[0] } | null): void {
    this.active = bundle
      ? {
          version: bundle.version,
          published: bundle.published,
          rules: compileRules(bundle.rules),
          ruleCount: bundle.rules.length,
        }
      : null;
  }

  /**
   * Scores a message. Bypassed extensions (per policy) are left out of the attachment facts, also
   * inside archives; but when the other attachments match an attachment rule, the message is
   * scored whole (reference R24: a bypass only counts when nothing else in the message is covered).
   */
  score(facts: MessageFacts, bypassExtensions: readonly string[] = []): OutbreakAssessment {
    let hits: RuleHit[];
    if (bypassExtensions.length && facts.parsed.attachments.length) {
      const filtered = withoutBypassed(facts.parsed, new Set(bypassExtensions));
      hits = this.hitsFor({ ...facts, parsed: filtered });
      if (filtered !== facts.parsed && hits.some((h) => h.viral)) hits = this.hitsFor(facts);
    } else hits = this.hitsFor(facts);
    return assess(hits, this.active?.version ?? null);
  }

  /** Level of one URL at click time: published URL rules and the URL-only adaptive rules. */
  scoreUrl(url: string): RuleHit[] {
    const hits = this.active ? this.active.rules.evaluateUrl(url) : [];
    if (this.adaptive) hits.push(...evaluateAdaptiveUrl(url));
    return hits;
  }

  private hitsFor(facts: MessageFacts): RuleHit[] {
    const hits = this.active ? this.active.rules.evaluate(facts) : [];
    if (this.adaptive) hits.push(...evaluateAdaptive(facts));
    return hits;
  }
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
