// The Outbreak Filters part of the policy layer (DESIGN §4.4–4.5): a threat level and a mail policy's
// settings in, one action out. Pure functions; the gateway carries the action out.
import type { Config, PolicyOutbreakConfig } from '../config/schema.ts';
import { parseDuration } from '../config/schema.ts';
import type { OutbreakAssessment } from '../outbreak/engine.ts';
import { threatLevelNames } from '../outbreak/types.ts';

export type Direction = 'incoming' | 'outgoing';

/** The settings that apply to a policy after `inherit`, or null when Outbreak Filters are off for it. */
export function effectiveOutbreakSettings(
  config: Config,
  direction: Direction,
  policy: string,
): PolicyOutbreakConfig | null {
  if (!config.outbreakFilters.enabled) return null;
  const list = config.policies[direction];
  const own = list.find((p) => p.name === policy) ?? list[list.length - 1];
  let s = own.outbreakFilters;
  if (s.mode === 'inherit' && own.name !== 'default') s = list[list.length - 1].outbreakFilters;
  return s.mode === 'disabled' ? null : s;
}

/** What the gateway does to a message after modification, before delivery. */
export interface ModificationPlan {
  subject: { mode: 'prepend' | 'append'; text: string } | null;
  headers: Array<{ name: string; value: string }>;
  disclaimer: { text: string; html: string } | null;
  urlRewriting: 'unsigned' | 'all' | 'off';
  bypassDomains: string[];
  alternateMailHost: string | null;
  /** the message's threat level and strongest rules (at most 4), carried in its rewritten links */
  threat: { level: number; ruleIds: string[] };
}

export type OutbreakAction =
  | { kind: 'none' }
  | { kind: 'quarantine'; retentionMs: number; reason: string }
  | { kind: 'modify'; plan: ModificationPlan; reason: string };

export interface DecideOptions {
  /** the message comes out of the Outbreak quarantine: never hold it there again */
  released: boolean;
}

export function decideOutbreak(
  a: OutbreakAssessment,
  s: PolicyOutbreakConfig,
  opts: DecideOptions = { released: false },
): OutbreakAction {
  const m = s.modification;
  const ids = a.hits
    .filter((h) => h.level === a.level)
    .map((h) => h.id)
    .slice(0, 5)
    .join(', ');
  if (!opts.released && a.level >= s.quarantineThreshold) {
    // Viral threats are always held; non-viral ones only when modification is on and delivery without
    // quarantine is off (reference R37–R38).
    if (a.viral)
      return {
        kind: 'quarantine',
        retentionMs: parseDuration(s.retention.viral),
        reason: `level ${a.level} ≥ ${s.quarantineThreshold} (${ids})`,
      };
    if (m.enabled && !s.deliverWithoutQuarantine)
      return {
        kind: 'quarantine',
        retentionMs: parseDuration(s.retention.other),
        reason: `level ${a.level} ≥ ${s.quarantineThreshold} (${ids})`,
      };
  }
  const threat = !a.viral && m.enabled && a.level > 0 && a.level >= m.threshold;
  if (threat)
    return { kind: 'modify', plan: modificationPlan(a, s, true), reason: `level ${a.level} ≥ ${m.threshold} (${ids})` };
  if (a.scanned && m.headers === 'all')
    return { kind: 'modify', plan: modificationPlan(a, s, false), reason: 'status header on every message' };
  return { kind: 'none' };
}

function modificationPlan(a: OutbreakAssessment, s: PolicyOutbreakConfig, threat: boolean): ModificationPlan {
  const m = s.modification;
  const vars = threatVariables(a);
  const headers: ModificationPlan['headers'] = [];
  if (m.headers !== 'off') {
    headers.push({
      name: 'X-Breakwater-Outbreak-Status',
      value: `${threat ? 'yes' : 'no'}, level ${a.level}, ${vars.threat_category} - ${vars.threat_type}`,
    });
    if (m.descriptionHeader && threat)
      headers.push({ name: 'X-Breakwater-Outbreak-Description', value: asciiOnly(vars.threat_description) });
  }
  return {
    subject: threat && m.subject.mode !== 'none' ? { mode: m.subject.mode, text: expand(m.subject.text, vars) } : null,
    headers,
    disclaimer:
      threat && m.disclaimer.enabled
        ? { text: expand(m.disclaimer.text, vars), html: expand(m.disclaimer.html, vars, escapeHtml) }
        : null,
    urlRewriting: threat ? m.urlRewriting : 'off',
    bypassDomains: m.bypassDomains,
    alternateMailHost: threat ? (m.alternateMailHost ?? null) : null,
    threat: {
      level: a.level,
      ruleIds: a.level > 0 ? [...new Set(a.hits.filter((h) => h.level === a.level).map((h) => h.id))].slice(0, 4) : [],
    },
  };
}

export function threatVariables(a: OutbreakAssessment): Record<string, string> {
  const category = a.category ?? 'unknown';
  const type = a.type ?? 'unknown';
  return {
    threat_level: String(a.level),
    threat_category: cap(category),
    threat_type: cap(type),
    threat_description: a.description || `${threatLevelNames[a.level] ?? 'Unknown'} threat`,
    // The verdict word Cisco puts in "[Possible $threat_verdict Fraud]"-style tags.
    threat_verdict: category === 'phish' ? 'Phishing' : category === 'virus' ? 'Virus' : cap(category),
  };
}

/** Expands $threat_* variables (longest names first, so $threat_level never eats $threat_levels). */
export function expand(template: string, vars: Record<string, string>, escape: (s: string) => string = (s) => s) {
  return template.replace(/\$(threat_[a-z]+)/g, (all, name: string) => (name in vars ? escape(vars[name]) : all));
}

function cap(s: string): string {
  return s ? s[0].toUpperCase() + s.slice(1) : s;
}

function asciiOnly(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '?').slice(0, 200);
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
