// The indexed rule engine: index keys per rule, evaluation of the candidate rules of a message, compileRules.
import { registrableDomain, urlHost } from '../../mime/urls.ts';
import type { ParsedMessage } from '../../mime/types.ts';
import { type MessageFacts, type RuleHit } from '../types.ts';
import {
  type CompiledRule,
  type Evidence,
  type FileMatcher,
  type FileView,
  MessageView,
  type Node,
  PhraseTable,
  type UrlMatcher,
  compileNode,
  evalNode,
} from './compiled.ts';
import { PhraseAutomaton, truncate } from './match.ts';
import { type Rule, inferRuleType } from './schema.ts';

// ---------------------------------------------------------------------------------------------------------------
// Index
//
// Each rule gets a set of keys such that, whenever the rule matches, the message has at least one of them (e.g. the
// extensions of its attachment leaf). Evaluation looks up the message's own keys and only checks those rules, plus
// the few rules no key could be found for. Key prefixes: e/s/t/p/A attachment extension, sha256, true type, major
// type, any attachment; E/S/T/P/M the same for archive members; h/x/d/u/U URL host, host suffix, domain, exact URL,
// any URL; a/D/X sender address, domain, domain suffix; j/b subject/body phrase id; V anti-virus version known.

const GENERIC_KEYS = new Set(['A', 'M', 'U', 'V']);
const keyCost = (keys: string[]): number => keys.reduce((sum, k) => sum + (GENERIC_KEYS.has(k) ? 1000 : 1), 0);

function fileKeys(m: FileMatcher, member: boolean): string[] {
  const [s, e, t, p, any] = member ? ['S', 'E', 'T', 'P', 'M'] : ['s', 'e', 't', 'p', 'A'];
  if (m.sha) return [...m.sha].map((h) => s + h);
  if (m.ext) return [...m.ext].map((x) => e + x);
  if (m.types || m.typePrefixes) {
    // typePrefixes end in "/": the key is the major type alone, as for the message side
    return [...(m.types ?? [])].map((x) => t + x).concat((m.typePrefixes ?? []).map((x) => p + x.slice(0, -1)));
  }
  return [any];
}

function urlKeys(m: UrlMatcher): string[] {
  if (m.hosts || m.hostSuffixes) {
    return [...(m.hosts ?? [])].map((h) => 'h' + h).concat((m.hostSuffixes ?? []).map((h) => 'x' + h));
  }
  if (m.domains) return [...m.domains].map((d) => 'd' + d);
  if (m.exactUrls && !m.urlGlobs) return [...m.exactUrls].map((u) => 'u' + u);
  return ['U'];
}

/** Keys one of which the message must have for `n` to match; null when there is no such set (e.g. under `not`). */
function requiredKeys(n: Node): string[] | null {
  switch (n.k) {
    case 'all': {
      let best: string[] | null = null;
      for (const c of n.c) {
        const keys = requiredKeys(c);
        if (keys && (best === null || keyCost(keys) < keyCost(best))) best = keys;
      }
      return best;
    }
    case 'any': {
      const union: string[] = [];
      for (const c of n.c) {
        const keys = requiredKeys(c);
        if (!keys) return null;
        union.push(...keys);
      }
      return [...new Set(union)];
    }
    case 'not':
      return null;
    case 'file':
      return fileKeys(n.m, n.member);
    case 'url':
      return urlKeys(n.m);
    case 'sender':
      return [...n.m.addresses]
        .map((a) => 'a' + a)
        .concat(
          [...n.m.domains].map((d) => 'D' + d),
          n.m.suffixes.map((d) => 'X' + d),
        );
    case 'subject':
      return n.ids.map((id) => 'j' + id);
    case 'body':
      return n.ids.map((id) => 'b' + id);
    case 'av':
      return ['V'];
  }
}

function* domainSuffixes(host: string): Generator<string> {
  let i = 0;
  while (i >= 0 && i < host.length) {
    yield host.slice(i);
    const dot = host.indexOf('.', i);
    i = dot < 0 ? -1 : dot + 1;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Public engine

export interface CompileOptions {
  /** clock for dropping rules already expired, ms since the epoch; default Date.now() */
  now?: number;
  /**
   * false: check every rule against every message and search phrases one by one. Same results, slower; the
   * reference for benchmarks and equivalence tests.
   */
  index?: boolean;
}

export interface CompiledRules {
  /** rules compiled (rules already expired at compile time are left out) */
  readonly size: number;
  /** rules left out because they had expired at compile time */
  readonly expired: number;
  /** rules that no index key could be found for and are checked on every message */
  readonly unindexed: number;
  /** Every matching, unexpired rule, in bundle order. `now` defaults to Date.now(). */
  evaluate(facts: MessageFacts, now?: number): RuleHit[];
  /** The rules against a message consisting of this one URL only (click time). */
  evaluateUrl(url: string, now?: number): RuleHit[];
}

class RuleEngine implements CompiledRules {
  readonly size: number;
  readonly expired: number;
  readonly unindexed: number;
  private readonly rules: CompiledRule[];
  private readonly table: PhraseTable;
  private readonly automaton: PhraseAutomaton | null;
  private readonly index: Map<string, number[]> | null;
  private readonly linear: number[];
  private readonly stamp: Uint32Array;
  private epoch = 0;
  private readonly keyKinds: Set<string>;

  constructor(rules: CompiledRule[], table: PhraseTable, expired: number, useIndex: boolean) {
    this.rules = rules;
    this.table = table;
    this.size = rules.length;
    this.expired = expired;
    this.stamp = new Uint32Array(rules.length);
    this.keyKinds = new Set();
    if (!useIndex) {
      this.automaton = null;
      this.index = null;
      this.linear = rules.map((_, i) => i);
      this.unindexed = rules.length;
      return;
    }
    this.automaton = new PhraseAutomaton(table.phrases);
    this.index = new Map();
    this.linear = [];
    rules.forEach((r, i) => {
      const keys = requiredKeys(r.root);
      if (!keys) {
        this.linear.push(i);
        return;
      }
      for (const k of keys) {
        this.keyKinds.add(k[0]);
        let bucket = this.index!.get(k);
        if (!bucket) this.index!.set(k, (bucket = []));
        bucket.push(i);
      }
    });
    this.unindexed = this.linear.length;
  }

  private candidates(v: MessageView): number[] {
    if (!this.index) return this.linear;
    if (++this.epoch === 0xffffffff) {
      this.stamp.fill(0);
      this.epoch = 1;
    }
    const epoch = this.epoch;
    const out: number[] = [];
    const index = this.index;
    const stamp = this.stamp;
    const kinds = this.keyKinds;
    const add = (key: string): void => {
      const bucket = index.get(key);
      if (!bucket) return;
      for (const r of bucket) {
        if (stamp[r] !== epoch) {
          stamp[r] = epoch;
          out.push(r);
        }
      }
    };
    const addFiles = (files: FileView[], keys: string): void => {
      if (files.length === 0) return;
      add(keys[4]);
      for (const f of files) {
        if (f.sha) add(keys[0] + f.sha);
        add(keys[1] + f.ext);
        if (f.type) {
          add(keys[2] + f.type);
          add(keys[3] + f.type.slice(0, Math.max(0, f.type.indexOf('/'))));
        }
      }
    };
    addFiles(v.files, 'setpA');
    addFiles(v.members, 'SETPM');
    if (v.urls.length > 0) {
      add('U');
      for (const u of v.urls) {
        add('h' + u.host);
        if (kinds.has('x')) for (const s of domainSuffixes(u.host)) add('x' + s);
        if (u.domain) add('d' + u.domain);
        add('u' + u.lc);
      }
    }
    for (const s of v.senders) {
      add('a' + s.address);
      if (s.domain) {
        add('D' + s.domain);
        if (kinds.has('X')) for (const x of domainSuffixes(s.domain)) add('X' + x);
      }
    }
    if (kinds.has('j')) for (const id of v.subjectPhrases()) add('j' + id);
    if (kinds.has('b')) for (const id of v.bodyPhrases()) add('b' + id);
    if (v.av !== null) add('V');
    for (const r of this.linear) {
      if (stamp[r] !== epoch) {
        stamp[r] = epoch;
        out.push(r);
      }
    }
    return out.sort((a, b) => a - b);
  }

  evaluate(facts: MessageFacts, now: number = Date.now()): RuleHit[] {
    const view = new MessageView(facts, this.table, this.automaton);
    const hits: RuleHit[] = [];
    for (const i of this.candidates(view)) {
      const rule = this.rules[i];
      if (rule.expiresAt <= now) continue;
      const evidence: Evidence[] = [];
      if (!evalNode(rule.root, view, this.table, evidence)) continue;
      const shown = evidence.find((e) => e.kind === rule.type) ?? evidence[0];
      const hit: RuleHit = {
        id: rule.id,
        level: rule.level,
        category: rule.category,
        type: rule.type,
        description: rule.description,
        viral: evidence.some((e) => e.viral),
        adaptive: false,
      };
      if (shown) hit.evidence = truncate(shown.text);
      hits.push(hit);
    }
    return hits;
  }

  evaluateUrl(url: string, now?: number): RuleHit[] {
    return this.evaluate(urlFacts(url), now);
  }
}

/** Compiles validated rules (from parseBundle) once per bundle. */
export function compileRules(rules: readonly Rule[], opts: CompileOptions = {}): CompiledRules {
  const now = opts.now ?? Date.now();
  const table = new PhraseTable();
  const compiled: CompiledRule[] = [];
  let expired = 0;
  for (const r of rules) {
    const expiresAt = r.expires ? Date.parse(r.expires) : Infinity;
    if (expiresAt <= now) {
      expired++;
      continue;
    }
    compiled.push({
      id: r.id,
      level: r.level,
      category: r.category,
      type: r.type ?? inferRuleType(r.condition),
      description: r.description,
      expiresAt,
      root: compileNode(r.condition, table),
    });
  }
  return new RuleEngine(compiled, table, expired, opts.index !== false);
}

/** Facts of a message that consists of one URL and nothing else (click-time verdicts). */
export function urlFacts(url: string): MessageFacts {
  const host = urlHost(url);
  const parsed: ParsedMessage = {
    size: 0,
    headers: [],
    from: null,
    subject: null,
    messageId: null,
    parts: [],
    attachments: [],
    urls: host ? [{ url, host, domain: registrableDomain(host), source: 'text', anchorText: null }] : [],
    text: '',
    html: '',
    anomalies: [],
  };
  return { parsed, sender: '', avSignatureVersion: null };
}

/** The message level: the highest level among the hits, 0 when none. */
export function maxLevel(hits: readonly RuleHit[]): number {
  let max = 0;
  for (const h of hits) if (h.level > max) max = h.level;
  return max;
}
