// Outbreak scoring in the parse worker (issue 11): the worker that parsed a message scores it right
// away with its own compiled copy of the rule bundle, so the event loop only applies the result.
//
// How rules reach the workers: every install of a bundle gets a new generation (engine.ts). A request
// names the generation it is to be scored with; before the first such request to a worker, the pool
// posts that worker the bundle's validated rules (`RulesMessage`, JSON-safe), and the worker compiles
// them on first use. Messages on one port arrive in order, so a worker always has the generation of
// each request it gets. A result carries the generation, the adaptive switch and the anti-virus
// signature version it was computed with; the outbreak stage uses it only when all three still hold
// when the stage runs, and otherwise scores on the event loop as before (a bundle swapped mid-flight).
import type { ParsedMessage } from '../mime/types.ts';
import { scoreHits, truncatedContent, urlThreat, type ActiveBundle } from './engine.ts';
import { compileRules, type CompiledRules, type Rule } from './rules.ts';
import type { RuleHit } from './types.ts';
import type { ClickThreat } from '../clicktime/token.ts';

export interface RulesMessage {
  type: 'rules';
  generation: number;
  version: number;
  rules: readonly Rule[];
}

export interface ScoreRequest {
  /** bundle generation to score with; null: no bundle (adaptive rules only, if on) */
  generation: number | null;
  adaptive: boolean;
  /** envelope sender, lower case */
  sender: string;
  avSignatureVersion: number | null;
  bypassExtensions: readonly string[];
  /** score content up to this many characters (the message is larger than maxScanSize); null: all */
  truncateTo: number | null;
}

/** The rules a worker judges URLs with (rewritten links carry what matches them now). */
export interface UrlRulesRequest {
  /** bundle generation; null: no bundle (adaptive URL rules only, if on) */
  generation: number | null;
  adaptive: boolean;
}

export interface ScoreResult {
  generation: number | null;
  adaptive: boolean;
  avSignatureVersion: number | null;
  hits: RuleHit[];
}

/** Bundles a worker keeps: the newest two generations (a request may still name the previous one). */
const KEEP = 2;

/** The worker's side: rule bundles by generation, compiled on first use. */
export class WorkerScorer {
  private readonly bundles = new Map<number, { source: readonly Rule[]; compiled: CompiledRules | null }>();

  load(msg: RulesMessage): void {
    // only the newest generation stays compiled; an older one is compiled again if a request still names it
    for (const b of this.bundles.values()) b.compiled = null;
    this.bundles.set(msg.generation, { source: msg.rules, compiled: null });
    while (this.bundles.size > KEEP) this.bundles.delete(Math.min(...this.bundles.keys()));
  }

  /** The compiled rules of a generation; undefined when that bundle is not here. */
  private rules(generation: number | null): CompiledRules | null | undefined {
    if (generation === null) return null;
    const b = this.bundles.get(generation);
    if (!b) return undefined;
    b.compiled ??= compileRules(b.source);
    return b.compiled;
  }

  /**
   * The URL threat lookup for a rewritten link (engine.urlThreat with this worker's copy of the bundle);
   * null when the request's bundle is not here. A rule that throws counts as no match.
   */
  urlThreatLookup(req: UrlRulesRequest): ((url: string) => ClickThreat | undefined) | null {
    const rules = this.rules(req.generation);
    if (rules === undefined) return null;
    return (url) => {
      try {
        return urlThreat(rules, req.adaptive, url);
      } catch {
        return undefined;
      }
    };
  }

  /** The hits of a parsed message; null when the request's bundle is not here (the stage then scores). */
  score(parsed: ParsedMessage, req: ScoreRequest): ScoreResult | null {
    const rules = this.rules(req.generation);
    if (rules === undefined) return null;
    const content = req.truncateTo === null ? parsed : truncatedContent(parsed, req.truncateTo);
    const hits = scoreHits(
      rules,
      req.adaptive,
      { parsed: content, sender: req.sender, avSignatureVersion: req.avSignatureVersion },
      req.bypassExtensions,
    );
    return { generation: req.generation, adaptive: req.adaptive, avSignatureVersion: req.avSignatureVersion, hits };
  }
}

/** The message that hands the engine's active bundle to workers, built once per bundle. */
export class BundleMessages {
  private readonly engine: { readonly bundle: ActiveBundle | null };
  private built: { bundle: ActiveBundle; message: RulesMessage } | null = null;

  constructor(engine: { readonly bundle: ActiveBundle | null }) {
    this.engine = engine;
  }

  /** The active bundle's message; null when no bundle is active. */
  current(): RulesMessage | null {
    const bundle = this.engine.bundle;
    if (!bundle) return null;
    if (this.built?.bundle !== bundle)
      this.built = {
        bundle,
        message: { type: 'rules', generation: bundle.generation, version: bundle.version, rules: bundle.source },
      };
    return this.built.message;
  }
}
