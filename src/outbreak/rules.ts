/*
 * Published outbreak rules (DESIGN §4.2): the rule and bundle schema, and one evaluation engine.
 *
 * A condition is a JSON object with exactly one key:
 *
 *   { "all": [Condition, ...] }      every child matches (1–256 children)
 *   { "any": [Condition, ...] }      at least one child matches
 *   { "not": Condition }             the child does not match
 *
 *   { "attachment": FileMatch }      one attachment satisfies every key of FileMatch
 *   { "member": FileMatch }          one archive member (any depth, zip/gz/… as listed by the parser)
 *                                    satisfies every key of FileMatch
 *     FileMatch = {
 *       "extension": ["exe", ".scr"],           extension of the name, case-insensitive, dot optional
 *       "trueType": ["application/x-msdownload", "application/*"],
 *                                                type from magic bytes: exact, or "major/*"; unknown never matches
 *       "name": ["*.pdf.exe", "invoice"],        with * or ?: a glob over the base name (after the last / or \);
 *                                                without: a substring of the whole name; case-insensitive
 *       "size": { "min": 1024, "max": 65536 },   bytes, inclusive, either bound optional
 *       "sha256": ["<64 hex>"]
 *     }                                          (at least one key)
 *
 *   { "url": UrlMatch }              one URL of the message satisfies every key of UrlMatch
 *     UrlMatch = {
 *       "host": ["evil.test", ".evil.test"],     exact host, or with a leading dot: that host and every subdomain
 *       "domain": ["evil.co.uk"],                registrable domain (public suffix + 1; hosts under a suffix not in
 *                                                the public suffix list, such as .test, have none and never match)
 *       "path": ["/wp-admin/*"],                 glob over the path (no query); only * is a wildcard
 *       "url": ["https://evil.test/login*"]      the whole URL: exact, or a glob when it contains *;
 *     }                                          only * is a wildcard (? is the query separator in URLs)
 *                                                (at least one key; all comparisons case-insensitive; IDN hosts
 *                                                are compared in punycode)
 *
 *   { "sender": ["bad@evil.test", "@evil.test", "evil.test", ".evil.test"] }
 *                                    the envelope sender or the header From address is one of these: a full
 *                                    address; a domain (with or without "@") exactly; or, with a leading dot, the
 *                                    domain and every subdomain of it
 *   { "subject": ["phrase", ...] }   the subject contains one phrase
 *   { "body": ["phrase", ...] }      the text/plain or the raw text/html body contains one phrase
 *                                    (phrases: case-insensitive, runs of white space match any run of white space)
 *   { "avSignatureOlderThan": 27500 }
 *                                    anti-virus ran with a signature version below this; unknown never matches
 *
 * Every list holds 1–10,000 entries; a condition nests at most 16 deep and has at most 256 leaves; globs are at most
 * 512 characters. A condition that would match an empty message (e.g. a lone `not`) is refused: it would flag
 * almost every message.
 *
 * Rules and bundles may carry extra keys (publishers can add metadata without breaking older gateways); they are
 * ignored and reported as warnings. Condition objects are strict: an unknown key there would silently change what a
 * rule matches.
 */
import { domainToASCII } from 'node:url';
import { z } from 'zod';
import { registrableDomain, urlHost } from '../mime/urls.ts';
import type { ParsedMessage } from '../mime/types.ts';
import { threatCategories, type MessageFacts, type RuleHit, type ThreatCategory } from './types.ts';

export const RULE_LIMITS = {
  maxDepth: 16,
  maxLeaves: 256,
  maxList: 10_000,
  maxGlob: 512,
  maxPhrase: 512,
  maxExactUrl: 2048,
  maxRules: 100_000,
  maxEvidence: 200,
} as const;

export type RuleType = RuleHit['type'];

export interface FileMatch {
  extension?: string[];
  trueType?: string[];
  name?: string[];
  size?: { min?: number; max?: number };
  sha256?: string[];
}

export interface UrlMatch {
  host?: string[];
  domain?: string[];
  path?: string[];
  url?: string[];
}

export type Condition =
  | { all: Condition[] }
  | { any: Condition[] }
  | { not: Condition }
  | { attachment: FileMatch }
  | { member: FileMatch }
  | { url: UrlMatch }
  | { sender: string[] }
  | { subject: string[] }
  | { body: string[] }
  | { avSignatureOlderThan: number };

export interface Rule {
  id: string;
  level: number;
  category: ThreatCategory;
  type?: RuleType;
  description: string;
  published: string;
  expires?: string;
  condition: Condition;
}

export interface Bundle {
  version: number;
  published: string;
  publisher?: string;
  rules: Rule[];
}

// ---------------------------------------------------------------------------------------------------------------
// Schema

const conditionKeys = [
  'all',
  'any',
  'not',
  'attachment',
  'member',
  'url',
  'sender',
  'subject',
  'body',
  'avSignatureOlderThan',
] as const;

const list = <T extends z.ZodType>(item: T) =>
  z.array(item).min(1, 'needs at least one entry').max(RULE_LIMITS.maxList, `at most ${RULE_LIMITS.maxList} entries`);

const hasControl = /[\x00-\x1f\x7f]/;

const extension = z.string().regex(/^\.?[^\s./\\]{1,32}$/, 'a file extension such as "exe" (no dots inside)');
const mimeType = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9!#$&^_.+-]*\/(\*|[a-z0-9][a-z0-9!#$&^_.+-]*)$/i,
    'a MIME type such as "application/x-msdownload" or "application/*"',
  );
const fileName = z
  .string()
  .min(1, 'must not be empty')
  .max(RULE_LIMITS.maxGlob, `at most ${RULE_LIMITS.maxGlob} characters`)
  .refine((s) => !hasControl.test(s), 'must not contain control characters');
const sha256 = z.string().regex(/^[0-9a-f]{64}$/i, '64 hexadecimal characters');
const byteCount = z.number().int('must be an integer').min(0).max(Number.MAX_SAFE_INTEGER);

const fileMatchSchema = z
  .strictObject({
    extension: list(extension).optional(),
    trueType: list(mimeType).optional(),
    name: list(fileName).optional(),
    size: z
      .strictObject({ min: byteCount.optional(), max: byteCount.optional() })
      .refine((s) => s.min !== undefined || s.max !== undefined, 'needs min, max or both')
      .refine((s) => s.min === undefined || s.max === undefined || s.min <= s.max, 'min is larger than max')
      .optional(),
    sha256: list(sha256).optional(),
  })
  .refine((m) => Object.keys(m).length > 0, 'needs at least one of extension, trueType, name, size, sha256');

const hostName = z
  .string()
  .max(254, 'at most 254 characters')
  .regex(/^\.?[^\s/\\:?#@.][^\s/\\?#@]*$/, 'a host name such as "evil.test" or ".evil.test"');
const domainName = z
  .string()
  .max(253, 'at most 253 characters')
  .regex(/^[^\s/\\:?#@.][^\s/\\:?#@]*$/, 'a domain such as "evil.test"');
const urlPath = z
  .string()
  .max(RULE_LIMITS.maxGlob, `at most ${RULE_LIMITS.maxGlob} characters`)
  .regex(/^[/*][^\s]*$/, 'a path starting with "/" or "*", without white space');
const fullUrl = z
  .string()
  .max(RULE_LIMITS.maxExactUrl, `at most ${RULE_LIMITS.maxExactUrl} characters`)
  .regex(/^(https?:\/\/|\*)[^\s]*$/i, 'an http(s) URL, or a glob starting with "*"')
  .refine(
    (s) => !s.includes('*') || s.length <= RULE_LIMITS.maxGlob,
    `a URL glob is at most ${RULE_LIMITS.maxGlob} characters`,
  );

const urlMatchSchema = z
  .strictObject({
    host: list(hostName).optional(),
    domain: list(domainName).optional(),
    path: list(urlPath).optional(),
    url: list(fullUrl).optional(),
  })
  .refine((m) => Object.keys(m).length > 0, 'needs at least one of host, domain, path, url');

const senderEntry = z
  .string()
  .max(320, 'at most 320 characters')
  .regex(/^([^\s@]+@|@)?\.?[^\s@.][^\s@]*$/, 'an address, "@domain", "domain" or ".domain"');
const phrase = z
  .string()
  .max(RULE_LIMITS.maxPhrase, `at most ${RULE_LIMITS.maxPhrase} characters`)
  .refine((s) => s.trim().length > 0, 'must not be empty')
  .refine((s) => !/[\x00-\x08\x0b\x0e-\x1f\x7f]/.test(s), 'must not contain control characters');

// Conditions are validated in two steps: a structural walk (depth, leaf count, exactly one key — cheap, iterative,
// and safe on hostile nesting) and then this schema for the leaf details, which only runs on bounded trees.
const conditionSchema: z.ZodType<unknown> = z.lazy(() =>
  z.strictObject({
    all: z.array(conditionSchema).min(1, 'needs at least one condition').optional(),
    any: z.array(conditionSchema).min(1, 'needs at least one condition').optional(),
    not: conditionSchema.optional(),
    attachment: fileMatchSchema.optional(),
    member: fileMatchSchema.optional(),
    url: urlMatchSchema.optional(),
    sender: list(senderEntry).optional(),
    subject: list(phrase).optional(),
    body: list(phrase).optional(),
    avSignatureOlderThan: z
      .number()
      .int('must be an integer')
      .min(1)
      .max(2 ** 31)
      .optional(),
  }),
);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

interface StructureIssue {
  path: Array<string | number>;
  message: string;
  /** the tree is too large for the detailed (recursive) schema to be run on it */
  bound: boolean;
}

const MAX_STRUCTURE_ISSUES = 100;

/**
 * Bounds and shape of a condition tree, without recursion so hostile nesting cannot exhaust the stack; stops after
 * MAX_STRUCTURE_ISSUES issues. Nodes that are not objects are left to the schema, which names the expected shape.
 */
function checkStructure(root: unknown): StructureIssue[] {
  const issues: StructureIssue[] = [];
  const stack: Array<{ node: unknown; path: Array<string | number>; depth: number }> = [
    { node: root, path: [], depth: 1 },
  ];
  let leaves = 0;
  let tooDeepReported = false;
  while (stack.length > 0 && issues.length < MAX_STRUCTURE_ISSUES) {
    const { node, path, depth } = stack.pop()!;
    if (!isObject(node)) continue;
    if (depth > RULE_LIMITS.maxDepth) {
      if (!tooDeepReported) {
        issues.push({ path, message: `conditions nest at most ${RULE_LIMITS.maxDepth} levels deep`, bound: true });
        tooDeepReported = true;
      }
      continue;
    }
    const keys = Object.keys(node).filter((k) => (conditionKeys as readonly string[]).includes(k));
    if (keys.length !== 1) {
      issues.push({
        path,
        message: `a condition needs exactly one of ${conditionKeys.join(', ')}${keys.length > 1 ? ` (found ${keys.join(', ')})` : ''}`,
        bound: false,
      });
    }
    for (const key of keys) {
      const child = node[key];
      if (key === 'all' || key === 'any') {
        if (Array.isArray(child)) {
          for (let i = child.length - 1; i >= 0; i--) {
            stack.push({ node: child[i], path: [...path, key, i], depth: depth + 1 });
          }
        }
      } else if (key === 'not') {
        stack.push({ node: child, path: [...path, key], depth: depth + 1 });
      } else {
        leaves++;
      }
    }
  }
  if (leaves > RULE_LIMITS.maxLeaves) {
    issues.push({
      path: [],
      message: `a condition has at most ${RULE_LIMITS.maxLeaves} leaves (found ${leaves})`,
      bound: true,
    });
  }
  return issues;
}

/** Whether a (valid) condition matches a message with no attachments, URLs, sender, subject or body. */
function matchesEmpty(c: unknown): boolean {
  if (!isObject(c)) return false;
  if (Array.isArray(c.all)) return c.all.every(matchesEmpty);
  if (Array.isArray(c.any)) return c.any.some(matchesEmpty);
  if ('not' in c) return !matchesEmpty(c.not);
  return false;
}

const conditionField = z.unknown().superRefine((value, ctx) => {
  const structural = checkStructure(value);
  for (const issue of structural) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
  if (structural.some((i) => i.bound)) return;
  const detail = conditionSchema.safeParse(value);
  if (!detail.success) {
    for (const issue of detail.error.issues) {
      ctx.addIssue({ code: 'custom', path: issue.path as Array<string | number>, message: issue.message });
    }
  }
  if (structural.length === 0 && detail.success && matchesEmpty(value)) {
    ctx.addIssue({
      code: 'custom',
      message:
        'this condition matches a message with no attachment, URL, sender or text, so it would flag almost every message',
    });
  }
});

const isoDateTime = z.iso.datetime({ offset: true, message: 'an ISO 8601 date-time such as 2025-01-31T12:00:00Z' });

export const ruleSchema = z.object({
  id: z.string().regex(/^[A-Z0-9_-]{3,64}$/, '3–64 characters of A–Z, 0–9, _ and -, e.g. OUTBREAK_0001234'),
  level: z.number().int('must be an integer').min(0).max(5),
  category: z.enum(threatCategories as [ThreatCategory, ...ThreatCategory[]]),
  type: z.enum(['attachment', 'url', 'content', 'sender']).optional(),
  description: z
    .string()
    .min(1, 'must not be empty')
    .max(1000, 'at most 1000 characters')
    .refine((s) => !hasControl.test(s), 'must not contain control characters'),
  published: isoDateTime,
  expires: isoDateTime.optional(),
  condition: conditionField,
});

export const bundleSchema = z.object({
  version: z.number().int('must be an integer').min(1).max(Number.MAX_SAFE_INTEGER),
  published: isoDateTime,
  publisher: z.string().max(200, 'at most 200 characters').optional(),
  rules: z.array(ruleSchema).max(RULE_LIMITS.maxRules, `at most ${RULE_LIMITS.maxRules} rules`),
});

/**
 * Checks across fields (duplicate ids, expires after published), made on the raw input: a zod refinement only
 * runs once everything under it is valid, and the author should see all errors in one go.
 */
function crossFieldErrors(json: unknown): string[] {
  const rules = isObject(json) && Array.isArray(json.rules) ? json.rules : [];
  const first = new Map<string, number>();
  const errors: string[] = [];
  rules.forEach((r: unknown, i) => {
    if (!isObject(r)) return;
    if (typeof r.id === 'string') {
      const seen = first.get(r.id);
      if (seen === undefined) first.set(r.id, i);
      else errors.push(`rules[${i}].id: duplicate rule id ${r.id} (first at rules[${seen}])`);
    }
    if (typeof r.expires === 'string' && typeof r.published === 'string') {
      const expires = Date.parse(r.expires);
      if (expires <= Date.parse(r.published)) errors.push(`rules[${i}].expires: expires must be after published`);
    }
  });
  return errors;
}

/** "rules[3].condition.all[0].url.host" */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out ? `.${String(p)}` : String(p);
  }
  return out || '(bundle)';
}

const knownRuleKeys = new Set(['id', 'level', 'category', 'type', 'description', 'published', 'expires', 'condition']);
const knownBundleKeys = new Set(['version', 'published', 'publisher', 'rules']);

// a bundle of garbage can produce an issue per list entry; past this many the rest are counted, not listed
const MAX_REPORTED_ERRORS = 1000;

/** Validates a bundle; on failure returns every error as "path: message". */
export function parseBundle(json: unknown): { bundle: Bundle; warnings: string[] } | { errors: string[] } {
  const result = bundleSchema.safeParse(json);
  const all = [
    ...(result.success ? [] : result.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`)),
    ...crossFieldErrors(json),
  ];
  if (!result.success || all.length > 0) {
    const errors = all.slice(0, MAX_REPORTED_ERRORS);
    if (all.length > MAX_REPORTED_ERRORS) errors.push(`… and ${all.length - MAX_REPORTED_ERRORS} more errors`);
    return { errors };
  }
  const warnings: string[] = [];
  const raw = json as Record<string, unknown>;
  for (const key of Object.keys(raw)) if (!knownBundleKeys.has(key)) warnings.push(`${key}: unknown key, ignored`);
  (raw.rules as Array<Record<string, unknown>>).forEach((rule, i) => {
    for (const key of Object.keys(rule)) {
      if (!knownRuleKeys.has(key)) warnings.push(`rules[${i}].${key}: unknown key, ignored`);
    }
  });
  // the condition field is z.unknown() refined by hand, so its type is asserted here after validation
  return { bundle: result.data as unknown as Bundle, warnings };
}

/** The rule type implied by a condition: its first positive leaf kind, attachment before url before sender. */
export function inferRuleType(condition: Condition): RuleType {
  const found = new Set<RuleType>();
  const walk = (c: Condition): void => {
    if ('all' in c) c.all.forEach(walk);
    else if ('any' in c) c.any.forEach(walk);
    else if ('not' in c) return;
    else if ('attachment' in c || 'member' in c) found.add('attachment');
    else if ('url' in c) found.add('url');
    else if ('sender' in c) found.add('sender');
    else found.add('content');
  };
  walk(condition);
  for (const t of ['attachment', 'url', 'sender'] as const) if (found.has(t)) return t;
  return 'content';
}

// ---------------------------------------------------------------------------------------------------------------
// Matching primitives

/**
 * Glob match, both sides already lower case. `*` matches any run (including "/"), `?` one character when
 * `question` is set. Two pointers with a single resumable star position: at most O(pattern × text) steps, where a
 * regex with several `.*` can backtrack polynomially deeper on hostile input.
 */
export function globMatch(pattern: string, text: string, question: boolean): boolean {
  let p = 0;
  let t = 0;
  let star = -1;
  let resume = 0;
  while (t < text.length) {
    const pc = p < pattern.length ? pattern.charCodeAt(p) : -1;
    if (pc === 42) {
      star = p++;
      resume = t;
    } else if (pc !== -1 && (pc === text.charCodeAt(t) || (question && pc === 63))) {
      p++;
      t++;
    } else if (star >= 0) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern.charCodeAt(p) === 42) p++;
  return p === pattern.length;
}

interface Glob {
  pattern: string;
  /** literal text before the first wildcard: a cheap early reject */
  prefix: string;
  question: boolean;
}

function compileGlob(pattern: string, question: boolean): Glob {
  const p = pattern.toLowerCase().replace(/\*{2,}/g, '*');
  const wild = question ? /[*?]/ : /\*/;
  const m = wild.exec(p);
  return { pattern: p, prefix: m ? p.slice(0, m.index) : p, question };
}

function testGlob(g: Glob, text: string): boolean {
  return text.startsWith(g.prefix) && globMatch(g.pattern, text, g.question);
}

/** Lower case, no trailing dot, internationalised names in punycode so both spellings compare equal. */
function normalizeHost(host: string): string {
  let h = host.toLowerCase();
  if (h.endsWith('.')) h = h.slice(0, -1);
  if (/[^\x00-\x7f]/.test(h)) h = domainToASCII(h) || h;
  return h;
}

/** Text as phrases see it: lower case, every run of white space one space. */
function normalizeText(s: string): string {
  return s.toLowerCase().replace(/\s+/g, ' ');
}

function truncate(s: string): string {
  return s.length > RULE_LIMITS.maxEvidence ? s.slice(0, RULE_LIMITS.maxEvidence - 1) + '…' : s;
}

/** Path of an http(s) URL, lower case, "\" read as "/" like browsers do; "/" when the URL has none. */
function urlPathOf(url: string): string {
  const m = /^https?:[/\\]*/i.exec(url);
  if (!m) return '/';
  let i = m[0].length;
  while (i < url.length) {
    const c = url.charCodeAt(i);
    if (c === 0x2f || c === 0x5c) break;
    if (c === 0x3f || c === 0x23) return '/';
    i++;
  }
  if (i >= url.length) return '/';
  let end = i;
  while (end < url.length && url.charCodeAt(end) !== 0x3f && url.charCodeAt(end) !== 0x23) end++;
  return url.slice(i, end).replace(/\\/g, '/').toLowerCase();
}

function headerFromAddress(from: string | null): string | null {
  if (!from) return null;
  const angle = /<([^<>]*)>[^<>]*$/.exec(from);
  const candidate = angle ? angle[1] : from.split(/\s+/).find((w) => w.includes('@'));
  const addr = candidate?.trim().toLowerCase();
  return addr && addr.includes('@') ? addr : null;
}

let foldTable: Uint16Array | null = null;
const SPACE = 0xffff;

/**
 * Per UTF-16 code unit: its lower-case form (when that is one code unit), or SPACE for white space — what
 * normalizeText does, as a table, so messages can be scanned without building lower-cased copies.
 */
function fold(): Uint16Array {
  if (foldTable) return foldTable;
  const t = new Uint16Array(0x10000);
  for (let c = 0; c < 0x10000; c++) {
    const lower = String.fromCharCode(c).toLowerCase();
    t[c] = lower.length === 1 ? lower.charCodeAt(0) : c;
  }
  // what \s matches in a JavaScript regular expression
  for (const c of [0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0xa0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000, 0xfeff]) {
    t[c] = SPACE;
  }
  for (let c = 0x2000; c <= 0x200a; c++) t[c] = SPACE;
  return (foldTable = t);
}

// a dense transition table costs nodes × alphabet entries; past this, transitions stay in per-node maps
const DENSE_TABLE_BUDGET = 4_000_000;

/**
 * Multi-phrase search (Aho–Corasick) so a message is scanned once for all phrases of a bundle instead of once per
 * phrase. Characters are folded (lower case, white space runs as one space) while scanning; the alphabet is the
 * characters that occur in phrases, every other character is class 0 and sends the automaton back to its root.
 * Small enough automata get a full transition table: one array read per character of the message.
 * Exported for tests; `denseBudget` only exists so they can exercise the map-based fallback.
 */
export class PhraseAutomaton {
  readonly size: number;
  /** code unit → character class; 0 = in no phrase */
  private readonly classOf: Uint16Array;
  private readonly next: Array<Map<number, number>> = [new Map()];
  private readonly output: number[] = [-1];
  private readonly fail: Int32Array;
  /** nearest node on the fail chain that ends a phrase, 0 when none */
  private readonly dict: Int32Array;
  private readonly dense: Int32Array | null = null;
  private readonly classes: number;
  private readonly seen: Uint32Array;
  private epoch = 0;

  /** `phrases` as normalizeText leaves them (lower case, single spaces, trimmed) */
  constructor(phrases: readonly string[], denseBudget = DENSE_TABLE_BUDGET) {
    this.size = phrases.length;
    const table = fold();
    const alphabet = new Map<number, number>();
    for (const p of phrases) {
      for (let i = 0; i < p.length; i++) {
        const c = table[p.charCodeAt(i)];
        if (!alphabet.has(c)) alphabet.set(c, alphabet.size + 1);
      }
    }
    this.classes = alphabet.size + 1;
    this.classOf = new Uint16Array(0x10000);
    for (let c = 0; c < 0x10000; c++) this.classOf[c] = alphabet.get(table[c]) ?? 0;

    phrases.forEach((phrase, id) => {
      let node = 0;
      for (let i = 0; i < phrase.length; i++) {
        const k = this.classOf[phrase.charCodeAt(i)];
        let to = this.next[node].get(k);
        if (to === undefined) {
          to = this.next.length;
          this.next.push(new Map());
          this.output.push(-1);
          this.next[node].set(k, to);
        }
        node = to;
      }
      this.output[node] = id;
    });
    const n = this.next.length;
    this.fail = new Int32Array(n);
    this.dict = new Int32Array(n);
    this.seen = new Uint32Array(n);
    const order: number[] = [0];
    for (let q = 0; q < order.length; q++) {
      const node = order[q];
      for (const [k, child] of this.next[node]) {
        if (node !== 0) {
          let f = this.fail[node];
          while (f !== 0 && !this.next[f].has(k)) f = this.fail[f];
          this.fail[child] = this.next[f].get(k) ?? 0;
        }
        const fc = this.fail[child];
        this.dict[child] = this.output[fc] >= 0 ? fc : this.dict[fc];
        order.push(child);
      }
    }
    if (n * this.classes <= denseBudget) {
      const classes = this.classes;
      const dense = new Int32Array(n * classes);
      // breadth-first, so a node's fail target (shallower) already has its full row
      for (const node of order) {
        const row = node * classes;
        const failRow = this.fail[node] * classes;
        for (let k = 1; k < classes; k++) {
          const to = this.next[node].get(k);
          dense[row + k] = to !== undefined ? to : node === 0 ? 0 : dense[failRow + k];
        }
      }
      this.dense = dense;
    }
  }

  /** Adds to `found` the ids of the phrases that occur in `text`; the automaton starts afresh for each call. */
  scan(text: string, found: Set<number>): void {
    if (this.size === 0) return;
    if (++this.epoch === 0xffffffff) {
      this.seen.fill(0);
      this.epoch = 1;
    }
    const epoch = this.epoch;
    const table = fold();
    const classOf = this.classOf;
    const dense = this.dense;
    const classes = this.classes;
    const output = this.output;
    const dict = this.dict;
    const seen = this.seen;
    let previousSpace = false;
    let s = 0;
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      // the second and later characters of a white space run are skipped: the run reads as one space
      if (table[code] === SPACE) {
        if (previousSpace) continue;
        previousSpace = true;
      } else previousSpace = false;
      const k = classOf[code];
      if (k === 0) {
        s = 0;
        continue;
      }
      if (dense) s = dense[s * classes + k];
      else s = this.step(s, k);
      if (s === 0) continue;
      // a node already reported in this scan had its whole dictionary chain reported with it
      let o = output[s] >= 0 ? s : dict[s];
      while (o !== 0 && seen[o] !== epoch) {
        seen[o] = epoch;
        found.add(output[o]);
        o = dict[o];
      }
    }
  }

  private step(s: number, k: number): number {
    let to = this.next[s].get(k);
    while (to === undefined && s !== 0) {
      s = this.fail[s];
      to = this.next[s].get(k);
    }
    return to ?? 0;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Compiled conditions

interface FileMatcher {
  ext: Set<string> | null;
  types: Set<string> | null;
  /** "application/" for "application/*" */
  typePrefixes: string[] | null;
  substrings: string[] | null;
  globs: Glob[] | null;
  min: number;
  max: number;
  sha: Set<string> | null;
}

interface UrlMatcher {
  hosts: Set<string> | null;
  /** ".evil.test" entries, stored without the dot */
  hostSuffixes: string[] | null;
  domains: Set<string> | null;
  paths: Glob[] | null;
  exactUrls: Set<string> | null;
  urlGlobs: Glob[] | null;
}

interface SenderMatcher {
  addresses: Set<string>;
  domains: Set<string>;
  suffixes: string[];
}

type Node =
  | { k: 'all'; c: Node[] }
  | { k: 'any'; c: Node[] }
  | { k: 'not'; c: Node }
  | { k: 'file'; member: boolean; m: FileMatcher }
  | { k: 'url'; m: UrlMatcher }
  | { k: 'sender'; m: SenderMatcher }
  | { k: 'subject' | 'body'; ids: number[] }
  | { k: 'av'; below: number };

interface CompiledRule {
  id: string;
  level: number;
  category: ThreatCategory;
  type: RuleType;
  description: string;
  expiresAt: number;
  root: Node;
}

const optSet = (xs: string[] | undefined, f: (s: string) => string): Set<string> | null =>
  xs ? new Set(xs.map(f)) : null;

/** Shared between the rules of one bundle: phrase ids index the automaton. */
class PhraseTable {
  readonly phrases: string[] = [];
  readonly originals: string[] = [];
  private readonly ids = new Map<string, number>();

  id(phrase: string): number {
    const norm = normalizeText(phrase.trim());
    let id = this.ids.get(norm);
    if (id === undefined) {
      id = this.phrases.length;
      this.ids.set(norm, id);
      this.phrases.push(norm);
      this.originals.push(phrase.trim());
    }
    return id;
  }
}

function compileFile(f: FileMatch): FileMatcher {
  const names = f.name?.map((n) => n.toLowerCase());
  const wildName = (n: string) => n.includes('*') || n.includes('?');
  const types = f.trueType?.map((t) => t.toLowerCase());
  const exactTypes = types?.filter((t) => !t.endsWith('/*'));
  const prefixTypes = types?.filter((t) => t.endsWith('/*')).map((t) => t.slice(0, -1));
  return {
    ext: optSet(f.extension, (e) => e.replace(/^\./, '').toLowerCase()),
    types: exactTypes?.length ? new Set(exactTypes) : null,
    typePrefixes: prefixTypes?.length ? prefixTypes : null,
    substrings: names?.some((n) => !wildName(n)) ? names.filter((n) => !wildName(n)) : null,
    globs: names?.some(wildName) ? names.filter(wildName).map((n) => compileGlob(n, true)) : null,
    min: f.size?.min ?? 0,
    max: f.size?.max ?? Infinity,
    sha: optSet(f.sha256, (h) => h.toLowerCase()),
  };
}

function compileUrl(u: UrlMatch): UrlMatcher {
  const hosts = u.host?.filter((h) => !h.startsWith('.')).map(normalizeHost);
  const suffixes = u.host?.filter((h) => h.startsWith('.')).map((h) => normalizeHost(h.slice(1)));
  const exact = u.url?.filter((x) => !x.includes('*')).map((x) => x.toLowerCase());
  const globs = u.url?.filter((x) => x.includes('*')).map((x) => compileGlob(x, false));
  return {
    hosts: hosts?.length ? new Set(hosts) : null,
    hostSuffixes: suffixes?.length ? suffixes : null,
    domains: optSet(u.domain, normalizeHost),
    paths: u.path ? u.path.map((p) => compileGlob(p, false)) : null,
    exactUrls: exact?.length ? new Set(exact) : null,
    urlGlobs: globs?.length ? globs : null,
  };
}

function compileSender(entries: string[]): SenderMatcher {
  const m: SenderMatcher = { addresses: new Set(), domains: new Set(), suffixes: [] };
  for (const raw of entries) {
    const e = raw.toLowerCase();
    const at = e.lastIndexOf('@');
    if (at > 0) {
      m.addresses.add(e.slice(0, at + 1) + normalizeHost(e.slice(at + 1)));
    } else {
      const d = at === 0 ? e.slice(1) : e;
      if (d.startsWith('.')) m.suffixes.push(normalizeHost(d.slice(1)));
      else m.domains.add(normalizeHost(d));
    }
  }
  return m;
}

function compileNode(c: Condition, phrases: PhraseTable): Node {
  if ('all' in c) return { k: 'all', c: c.all.map((x) => compileNode(x, phrases)) };
  if ('any' in c) return { k: 'any', c: c.any.map((x) => compileNode(x, phrases)) };
  if ('not' in c) return { k: 'not', c: compileNode(c.not, phrases) };
  if ('attachment' in c) return { k: 'file', member: false, m: compileFile(c.attachment) };
  if ('member' in c) return { k: 'file', member: true, m: compileFile(c.member) };
  if ('url' in c) return { k: 'url', m: compileUrl(c.url) };
  if ('sender' in c) return { k: 'sender', m: compileSender(c.sender) };
  if ('subject' in c) return { k: 'subject', ids: c.subject.map((p) => phrases.id(p)) };
  if ('body' in c) return { k: 'body', ids: c.body.map((p) => phrases.id(p)) };
  return { k: 'av', below: c.avSignatureOlderThan };
}

// ---------------------------------------------------------------------------------------------------------------
// Per-message view

interface FileView {
  /** whole name, lower case */
  name: string;
  /** after the last / or \, lower case */
  base: string;
  ext: string;
  type: string | null;
  size: number;
  sha: string | null;
  evidence: string;
}

interface UrlView {
  url: string;
  lc: string;
  host: string;
  domain: string | null;
  path: string;
}

interface SenderView {
  address: string;
  domain: string;
}

interface Evidence {
  text: string;
  kind: RuleType;
  viral: boolean;
}

function baseName(name: string): string {
  const slash = Math.max(name.lastIndexOf('/'), name.lastIndexOf('\\'));
  return slash >= 0 ? name.slice(slash + 1) : name;
}

class MessageView {
  readonly files: FileView[] = [];
  readonly members: FileView[] = [];
  readonly urls: UrlView[] = [];
  readonly senders: SenderView[] = [];
  readonly av: number | null;
  private readonly parsed: ParsedMessage;
  private readonly automaton: PhraseAutomaton | null;
  private readonly table: PhraseTable;
  private subjectText: string | null = null;
  private bodyText: string | null = null;
  private subjectFound: Set<number> | null = null;
  private bodyFound: Set<number> | null = null;

  constructor(facts: MessageFacts, table: PhraseTable, automaton: PhraseAutomaton | null) {
    const parsed = facts.parsed;
    this.parsed = parsed;
    this.table = table;
    this.automaton = automaton;
    this.av = facts.avSignatureVersion;
    for (const a of parsed.attachments) {
      const name = a.name.toLowerCase();
      this.files.push({
        name,
        base: baseName(name),
        ext: a.extension.toLowerCase(),
        type: a.trueType?.toLowerCase() ?? null,
        size: a.size,
        sha: a.sha256.toLowerCase(),
        evidence: a.name || `sha256:${a.sha256}`,
      });
      for (const m of a.members) {
        const mname = m.name.toLowerCase();
        this.members.push({
          name: mname,
          base: baseName(mname),
          ext: m.extension.toLowerCase(),
          type: m.trueType?.toLowerCase() ?? null,
          size: m.size,
          sha: m.sha256?.toLowerCase() ?? null,
          evidence: `${a.name || a.partPath}/${m.name}`,
        });
      }
    }
    for (const u of parsed.urls) {
      const host = normalizeHost(u.host);
      const domain = u.domain ?? registrableDomain(u.host);
      this.urls.push({
        url: u.url,
        lc: u.url.toLowerCase(),
        host,
        domain: domain ? normalizeHost(domain) : null,
        path: urlPathOf(u.url),
      });
    }
    const addSender = (address: string | null): void => {
      if (!address || this.senders.some((s) => s.address === address)) return;
      const at = address.lastIndexOf('@');
      const domain = at >= 0 ? normalizeHost(address.slice(at + 1)) : '';
      this.senders.push({ address: at >= 0 ? address.slice(0, at + 1) + domain : address, domain });
    };
    addSender(facts.sender ? facts.sender.toLowerCase() : null);
    addSender(headerFromAddress(parsed.from));
  }

  private subject(): string {
    return (this.subjectText ??= normalizeText(this.parsed.subject ?? ''));
  }

  private body(): string {
    // NUL never occurs in a phrase, so no phrase can span the two bodies
    return (this.bodyText ??= normalizeText(this.parsed.text) + '\u0000' + normalizeText(this.parsed.html));
  }

  subjectPhrases(): Set<number> {
    if (!this.subjectFound) {
      this.subjectFound = new Set();
      this.automaton!.scan(this.parsed.subject ?? '', this.subjectFound);
    }
    return this.subjectFound;
  }

  bodyPhrases(): Set<number> {
    if (!this.bodyFound) {
      // two scans, so no phrase spans the end of the text and the start of the HTML
      this.bodyFound = new Set();
      this.automaton!.scan(this.parsed.text, this.bodyFound);
      this.automaton!.scan(this.parsed.html, this.bodyFound);
    }
    return this.bodyFound;
  }

  hasPhrase(where: 'subject' | 'body', id: number): boolean {
    if (this.automaton) return (where === 'subject' ? this.subjectPhrases() : this.bodyPhrases()).has(id);
    return (where === 'subject' ? this.subject() : this.body()).includes(this.table.phrases[id]);
  }
}

function fileMatches(m: FileMatcher, f: FileView): boolean {
  if (m.sha && (f.sha === null || !m.sha.has(f.sha))) return false;
  if (m.ext && !m.ext.has(f.ext)) return false;
  if (f.size < m.min || f.size > m.max) return false;
  if (m.types || m.typePrefixes) {
    const t = f.type;
    if (t === null) return false;
    if (!(m.types?.has(t) || m.typePrefixes?.some((p) => t.startsWith(p)))) return false;
  }
  if (m.substrings || m.globs) {
    if (!(m.substrings?.some((s) => f.name.includes(s)) || m.globs?.some((g) => testGlob(g, f.base)))) return false;
  }
  return true;
}

function hostHasSuffix(host: string, suffix: string): boolean {
  return host === suffix || (host.endsWith(suffix) && host.charCodeAt(host.length - suffix.length - 1) === 0x2e);
}

function urlMatches(m: UrlMatcher, u: UrlView): boolean {
  if (m.hosts || m.hostSuffixes) {
    if (!(m.hosts?.has(u.host) || m.hostSuffixes?.some((s) => hostHasSuffix(u.host, s)))) return false;
  }
  if (m.domains && (u.domain === null || !m.domains.has(u.domain))) return false;
  if (m.paths && !m.paths.some((g) => testGlob(g, u.path))) return false;
  if (m.exactUrls || m.urlGlobs) {
    if (!(m.exactUrls?.has(u.lc) || m.urlGlobs?.some((g) => testGlob(g, u.lc)))) return false;
  }
  return true;
}

function senderMatches(m: SenderMatcher, s: SenderView): boolean {
  return (
    m.addresses.has(s.address) ||
    (s.domain !== '' && (m.domains.has(s.domain) || m.suffixes.some((x) => hostHasSuffix(s.domain, x))))
  );
}

/** Evaluates a node; when `out` is given, the evidence of a match is appended to it (and only of a match). */
function evalNode(n: Node, v: MessageView, table: PhraseTable, out: Evidence[] | null): boolean {
  switch (n.k) {
    case 'all': {
      const mark = out?.length ?? 0;
      for (const c of n.c) {
        if (!evalNode(c, v, table, out)) {
          if (out) out.length = mark;
          return false;
        }
      }
      return true;
    }
    case 'any':
      for (const c of n.c) if (evalNode(c, v, table, out)) return true;
      return false;
    case 'not':
      return !evalNode(n.c, v, table, null);
    case 'file':
      for (const f of n.member ? v.members : v.files) {
        if (fileMatches(n.m, f)) {
          out?.push({ text: f.evidence, kind: 'attachment', viral: true });
          return true;
        }
      }
      return false;
    case 'url':
      for (const u of v.urls) {
        if (urlMatches(n.m, u)) {
          out?.push({ text: u.url, kind: 'url', viral: false });
          return true;
        }
      }
      return false;
    case 'sender':
      for (const s of v.senders) {
        if (senderMatches(n.m, s)) {
          out?.push({ text: s.address, kind: 'sender', viral: false });
          return true;
        }
      }
      return false;
    case 'subject':
    case 'body':
      for (const id of n.ids) {
        if (v.hasPhrase(n.k, id)) {
          out?.push({ text: table.originals[id], kind: 'content', viral: false });
          return true;
        }
      }
      return false;
    case 'av':
      if (v.av !== null && v.av < n.below) {
        out?.push({ text: `anti-virus signature version ${v.av}`, kind: 'content', viral: false });
        return true;
      }
      return false;
  }
}

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
