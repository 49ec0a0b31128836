// The hub's published outbreak rules as STIX 2.1 indicators, served as a TAXII 2.1 collection (OASIS
// TAXII 2.1: discovery, API root, collections, objects, manifest), so that other tools can read what the
// hub pushes to its gateways. A rule becomes one indicator whose STIX pattern says the same as its
// condition; a condition STIX patterns cannot say (a `not`, a body phrase, an anti-virus version) is left
// out of the collection, and the collection's description counts what was left out.
import { createHash } from 'node:crypto';
import type { Condition } from '../outbreak/rules.ts';
import type { HubRule } from './rules.ts';

export const TAXII_MEDIA = 'application/taxii+json;version=2.1';
export const STIX_MEDIA = 'application/stix+json;version=2.1';
export const COLLECTION_ID = '6f9a3c2e-8f1b-4d3a-9a55-0c1b2e3d4f50';

/** A STIX string literal (single quotes; quote and backslash escaped). */
const lit = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
/** A glob (* and ?) or a substring as a LIKE operand. */
const like = (glob: string, substring: boolean) => {
  const body = glob.replace(/\*/g, '%').replace(/\?/g, '_');
  return lit(substring && !/[*?]/.test(glob) ? `%${body}%` : body);
};

type Pattern = string | null;

/** One observation per leaf, joined by AND / OR; null when a part cannot be said in STIX. */
export function patternOf(c: Condition): Pattern {
  const k = Object.keys(c)[0] as keyof Condition;
  const v = (c as Record<string, unknown>)[k];
  const join = (list: Condition[], op: 'AND' | 'OR'): Pattern => {
    const parts = list.map(patternOf);
    if (parts.some((p) => p === null)) return null;
    return parts.length === 1 ? parts[0] : `(${parts.join(` ${op} `)})`;
  };
  const anyOf = (terms: string[]): string => (terms.length === 1 ? terms[0] : terms.join(' OR '));
  switch (k) {
    case 'all':
      return join(v as Condition[], 'AND');
    case 'any':
      return join(v as Condition[], 'OR');
    case 'attachment':
    case 'member': {
      const f = v as {
        extension?: string[];
        trueType?: string[];
        name?: string[];
        size?: { min?: number; max?: number };
        sha256?: string[];
      };
      const terms: string[] = [];
      if (f.extension)
        terms.push(`(${anyOf(f.extension.map((e) => `file:name LIKE ${like(`*.${e.replace(/^\./, '')}`, false)}`))})`);
      if (f.trueType)
        terms.push(
          `(${anyOf(f.trueType.map((t) => (t.endsWith('/*') ? `file:mime_type LIKE ${lit(`${t.slice(0, -1)}%`)}` : `file:mime_type = ${lit(t)}`)))})`,
        );
      if (f.name) terms.push(`(${anyOf(f.name.map((n) => `file:name LIKE ${like(n, true)}`))})`);
      if (f.size?.min !== undefined) terms.push(`file:size >= ${f.size.min}`);
      if (f.size?.max !== undefined) terms.push(`file:size <= ${f.size.max}`);
      if (f.sha256) terms.push(`(${anyOf(f.sha256.map((h) => `file:hashes.'SHA-256' = ${lit(h.toLowerCase())}`))})`);
      return terms.length ? `[${terms.join(' AND ')}]` : null;
    }
    case 'url': {
      const u = v as { host?: string[]; domain?: string[]; path?: string[]; url?: string[] };
      const parts: string[] = [];
      if (u.host)
        parts.push(
          `[${anyOf(u.host.map((h) => (h.startsWith('.') ? `domain-name:value LIKE ${lit(`%${h}`)} OR domain-name:value = ${lit(h.slice(1))}` : `domain-name:value = ${lit(h)}`)))}]`,
        );
      if (u.domain)
        parts.push(
          `[${anyOf(u.domain.map((d) => `domain-name:value = ${lit(d)} OR domain-name:value LIKE ${lit(`%.${d}`)}`))}]`,
        );
      if (u.path) parts.push(`[${anyOf(u.path.map((p) => `url:value LIKE ${like(`*://*${p}`, false)}`))}]`);
      if (u.url)
        parts.push(
          `[${anyOf(u.url.map((x) => (x.includes('*') ? `url:value LIKE ${like(x, false)}` : `url:value = ${lit(x)}`)))}]`,
        );
      return parts.length ? (parts.length === 1 ? parts[0] : `(${parts.join(' AND ')})`) : null;
    }
    case 'sender': {
      const terms = (v as string[]).map((s) => {
        if (s.includes('@') && !s.startsWith('@')) return `email-message:from_ref.value = ${lit(s.toLowerCase())}`;
        const d = s.replace(/^@/, '').toLowerCase();
        return d.startsWith('.')
          ? `email-message:from_ref.value LIKE ${lit(`%@%${d}`)} OR email-message:from_ref.value LIKE ${lit(`%@${d.slice(1)}`)}`
          : `email-message:from_ref.value LIKE ${lit(`%@${d}`)}`;
      });
      return `[${anyOf(terms)}]`;
    }
    case 'subject':
      return `[${anyOf((v as string[]).map((p) => `email-message:subject LIKE ${like(p, true)}`))}]`;
    default:
      // not, body, avSignatureOlderThan: nothing STIX patterns can say
      return null;
  }
}

/** A rule as an indicator; its id stays the same across versions (derived from the rule id). */
export function ruleIndicator(r: HubRule, hubIdentity: string): Record<string, unknown> | null {
  const pattern = patternOf(r.condition);
  if (!pattern) return null;
  const h = createHash('sha256').update(`breakwater-rule:${r.id}`).digest('hex');
  const uuid = `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${((parseInt(h[16], 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
  const published = r.publishedAt ?? r.createdAt;
  return {
    type: 'indicator',
    spec_version: '2.1',
    id: `indicator--${uuid}`,
    created: r.createdAt,
    modified: published,
    created_by_ref: hubIdentity,
    name: r.id,
    description: r.description,
    indicator_types: [r.level >= 3 ? 'malicious-activity' : 'anomalous-activity'],
    pattern,
    pattern_type: 'stix',
    pattern_version: '2.1',
    valid_from: published,
    ...(r.expiresAt ? { valid_until: r.expiresAt } : {}),
    labels: [`threat-level-${r.level}`, r.category],
  };
}
