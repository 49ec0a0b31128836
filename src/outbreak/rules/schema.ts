// The rule and bundle schema of published outbreak rules: types, validation (every error with its path),
// and the rule type a condition implies. The condition language is described in ../rules.ts.
import { z } from 'zod';
import { threatCategories, type RuleHit, type ThreatCategory } from '../types.ts';

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
