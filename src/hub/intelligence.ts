// Outbreak intelligence (DESIGN §11.5; issue 14): the hub counts, per hour and per gateway, every
// attachment SHA-256, linked registrable domain and campaign fingerprint (the subject with its numbers
// masked, and the sender's domain) of the mail its gateways stream. When one of them appears on several
// gateways at a rate far above its own baseline (the average hourly count of the previous week), the hub
// drafts an outbreak rule for it, with the evidence, for an analyst to publish, edit or reject — or
// publishes it itself above a configured confidence. The level comes from what the gateways judged: a
// burst they held at least half of makes a threat (4), one they held some of a 3; a burst of mail nobody
// held would only be an informational 2, below every default threshold, so a legitimate mass mailing never
// holds mail by itself; so would a key with mail nobody held on several gateways the week before (a
// domain in everyday use, such as a search engine or a link shortener a campaign also uses): blocking it
// would hold that everyday mail. Informational drafts are made only with `informationalDrafts` on (they
// match legitimate mail: mailing-list threads burst too). Measured on the public corpus: scripts/hub-campaigns.ts,
// docs/benchmarks.md.
import { parse } from 'tldts';
import type { MessageSummary } from '../xdr/summary.ts';
import { fromAddressOf } from '../xdr/observables.ts';
import type { HubRule, HubRules } from './rules.ts';
import type { HubStore } from './store.ts';

const SCHEMA = `
create table if not exists intel_counts (
  kind text not null,
  key text not null,
  hour integer not null,
  device_id text not null,
  n integer not null,
  flagged integer not null default 0,
  max_level integer not null default 0,
  primary key (kind, key, hour, device_id)
) without rowid;
create index if not exists intel_counts_hour on intel_counts(hour);
create table if not exists intel_drafts (
  kind text not null,
  key text not null,
  rule_id text not null,
  created_at integer not null,
  confidence real not null,
  evidence text not null,
  primary key (kind, key)
) without rowid;
`;

export type IntelKind = 'sha256' | 'url_domain' | 'campaign';

export interface IntelligenceSettings {
  enabled: boolean;
  /** distinct gateways that must see it within the hour */
  minGateways: number;
  /** messages within the hour, every gateway together */
  minMessages: number;
  /** how far above its baseline (average per hour over the previous week) */
  factor: number;
  /** publish a draft at once at or above this confidence (0–1); null: analysts publish */
  autoPublishConfidence: number | null;
  /** also draft level-2 rules for bursts nobody held and for keys in everyday use */
  informationalDrafts: boolean;
}

export interface Evidence {
  kind: IntelKind;
  key: string;
  hour: string;
  messages: number;
  gateways: Array<{ deviceId: string; messages: number }>;
  baselinePerHour: number;
  flagged: number;
  maxLevel: number;
  /** gateways that had mail with it, not held, in the previous week (everyday use: level 2 at most) */
  everydayOn: number;
  sampleSubjects: string[];
}

export interface DraftFinding {
  rule: HubRule;
  confidence: number;
  evidence: Evidence;
  published: boolean;
}

const HOUR = 3_600_000;
const WEEK_HOURS = 168;

/** The subject with its numbers and ids masked, so one campaign's messages share it. */
export function campaignSubject(subject: string | null): string | null {
  if (!subject) return null;
  const s = subject
    .toLowerCase()
    .replace(/^(?:\s*(?:re|fw|fwd|aw|sv|tr)\s*:\s*)+/i, '')
    .replace(/[0-9a-f]{8,}|\d+/g, '#')
    .replace(/\s+/g, ' ')
    .trim();
  return s.length >= 6 ? s : null;
}

/** the SHA-256 of zero bytes: empty attachments are in much unrelated mail */
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/**
 * What a message contributes: its attachment hashes, linked domains and campaign fingerprint. The
 * fingerprint takes the header From's domain (what the reader sees, and what campaigns keep while they
 * rotate envelope senders; a mailing list's bounce address is not its author), else the envelope's.
 */
export function intelKeys(s: MessageSummary): Array<{ kind: IntelKind; key: string }> {
  const out = new Map<string, { kind: IntelKind; key: string }>();
  for (const a of s.attachments) {
    const sha = a.sha256.toLowerCase();
    if (/^[0-9a-f]{64}$/.test(sha) && a.size > 0 && sha !== EMPTY_SHA256)
      out.set(`h${sha}`, { kind: 'sha256', key: sha });
  }
  for (const u of s.urls) {
    const d = parse(u).domain;
    if (d) out.set(`u${d}`, { kind: 'url_domain', key: d.toLowerCase() });
  }
  const subject = campaignSubject(s.subject);
  const domain = (fromAddressOf(s.headerFrom) ?? s.sender).split('@')[1]?.toLowerCase();
  if (subject && domain) out.set(`c${domain}|${subject}`, { kind: 'campaign', key: `${domain}|${subject}` });
  return [...out.values()];
}

export class OutbreakIntelligence {
  private readonly store: HubStore;
  private readonly rules: HubRules;
  private readonly settings: () => IntelligenceSettings;
  private readonly log: (line: string) => void;
  /** keys seen since the last evaluation */
  private readonly touched = new Map<string, { kind: IntelKind; key: string; hour: number }>();

  constructor(deps: {
    store: HubStore;
    rules: HubRules;
    settings: () => IntelligenceSettings;
    log: (line: string) => void;
  }) {
    this.store = deps.store;
    this.rules = deps.rules;
    this.settings = deps.settings;
    this.log = deps.log;
    this.store.db.exec(SCHEMA);
  }

  /** A message stored for the first time (called inside the intake's transaction). */
  observe(deviceId: string, s: MessageSummary): void {
    if (!this.settings().enabled) return;
    const at = Date.parse(s.receivedAt);
    if (!Number.isFinite(at)) return;
    const hour = Math.floor(at / HOUR);
    const flagged = s.status === 'quarantined' || s.verdict === 'quarantine' || s.verdict === 'drop' ? 1 : 0;
    const level = s.threatLevel ?? 0;
    for (const { kind, key } of intelKeys(s)) {
      this.store.run(
        `insert into intel_counts(kind, key, hour, device_id, n, flagged, max_level) values (?, ?, ?, ?, 1, ?, ?)
         on conflict(kind, key, hour, device_id) do update set n = n + 1, flagged = flagged + excluded.flagged,
           max_level = max(max_level, excluded.max_level)`,
        kind,
        key,
        hour,
        deviceId,
        flagged,
        level,
      );
      this.touched.set(`${kind}\u0000${key}\u0000${hour}`, { kind, key, hour });
    }
  }

  /**
   * Looks at every key seen since the last call: a burst on enough gateways, far enough above its
   * baseline, becomes a draft (once per key), published at once above the configured confidence.
   */
  evaluate(now = Date.now()): DraftFinding[] {
    const c = this.settings();
    const found: DraftFinding[] = [];
    const current = Math.floor(now / HOUR);
    const touched = [...this.touched.values()];
    this.touched.clear();
    if (!c.enabled) return found;
    for (const t of touched) {
      // only the current and the previous hour are bursts; older data only feeds baselines
      if (t.hour < current - 1) continue;
      if (this.store.stmt('select 1 from intel_drafts where kind = ? and key = ?').get(t.kind, t.key)) continue;
      const rows = this.store
        .stmt('select device_id, n, flagged, max_level from intel_counts where kind = ? and key = ? and hour = ?')
        .all(t.kind, t.key, t.hour) as Array<{ device_id: string; n: number; flagged: number; max_level: number }>;
      const messages = rows.reduce((a, r) => a + r.n, 0);
      if (rows.length < c.minGateways || messages < c.minMessages) continue;
      const before = this.store
        .stmt('select coalesce(sum(n), 0) n from intel_counts where kind = ? and key = ? and hour >= ? and hour < ?')
        .get(t.kind, t.key, t.hour - WEEK_HOURS, t.hour) as { n: number };
      const baseline = before.n / WEEK_HOURS;
      if (messages < c.factor * Math.max(baseline, 0.5)) continue;
      const flagged = rows.reduce((a, r) => a + r.flagged, 0);
      const maxLevel = Math.max(...rows.map((r) => r.max_level));
      const everyday = this.store
        .stmt(
          `select count(distinct device_id) n from intel_counts
           where kind = ? and key = ? and hour >= ? and hour < ? and n > flagged`,
        )
        .get(t.kind, t.key, t.hour - WEEK_HOURS, t.hour) as { n: number };
      const evidence: Evidence = {
        kind: t.kind,
        key: t.key,
        hour: new Date(t.hour * HOUR).toISOString(),
        messages,
        gateways: rows.map((r) => ({ deviceId: r.device_id, messages: r.n })).sort((a, b) => b.messages - a.messages),
        baselinePerHour: Math.round(baseline * 100) / 100,
        flagged,
        maxLevel,
        everydayOn: everyday.n,
        sampleSubjects: this.sampleSubjects(t),
      };
      const finding = this.draft(evidence, c);
      if (finding) found.push(finding);
    }
    return found;
  }

  /** Drafts already made: key → rule, with their evidence and confidence. */
  drafts(): Array<{ ruleId: string; confidence: number; evidence: Evidence; createdAt: string }> {
    return (
      this.store
        .stmt('select rule_id, confidence, evidence, created_at from intel_drafts order by created_at desc limit 500')
        .all() as Array<{ rule_id: string; confidence: number; evidence: string; created_at: number }>
    ).map((r) => ({
      ruleId: r.rule_id,
      confidence: r.confidence,
      // drafts made before everydayOn was recorded have none
      evidence: { everydayOn: 0, ...(JSON.parse(r.evidence) as Partial<Evidence>) } as Evidence,
      createdAt: new Date(r.created_at).toISOString(),
    }));
  }

  /** Counts older than two weeks are no baseline any more. */
  prune(now = Date.now()): void {
    this.store.run('delete from intel_counts where hour < ?', Math.floor(now / HOUR) - 2 * WEEK_HOURS);
  }

  private sampleSubjects(t: { kind: IntelKind; key: string }): string[] {
    const obs =
      t.kind === 'sha256'
        ? { type: 'sha256' as const, value: t.key }
        : t.kind === 'url_domain'
          ? { type: 'domain' as const, value: t.key }
          : { type: 'domain' as const, value: t.key.split('|')[0] };
    return [
      ...new Set(
        this.store
          .search(obs.type, obs.value, 20)
          .map((m) => m.summary.subject ?? '')
          .filter(Boolean),
      ),
    ].slice(0, 5);
  }

  private draft(e: Evidence, c: IntelligenceSettings): DraftFinding | null {
    // What the gateways held decides the level (one suspicious message in a mailing-list thread must not
    // make the thread a threat); spread and the rate above baseline the confidence.
    const held = e.flagged * 2 >= e.messages ? 4 : e.flagged > 0 ? 3 : 2;
    const level = e.everydayOn >= c.minGateways ? Math.min(held, 2) : held;
    // an informational rule holds nothing at default thresholds but can match legitimate mail
    if (level < 3 && !c.informationalDrafts) return null;
    const spread = Math.min(1, e.gateways.length / 3);
    const surge = Math.min(1, e.messages / (c.factor * Math.max(e.baselinePerHour, 0.5) * 3));
    const judged = level >= 4 ? 1 : level === 3 ? 0.5 : 0;
    const confidence = Math.round((0.35 * spread + 0.25 * surge + 0.4 * judged) * 100) / 100;
    const condition = conditionFor(e);
    if (!condition) return null;
    const what =
      e.kind === 'sha256'
        ? `attachment ${e.key.slice(0, 16)}…`
        : e.kind === 'url_domain'
          ? `links to ${e.key}`
          : `campaign "${e.key.split('|')[1]}" from ${e.key.split('|')[0]}`;
    let rule: HubRule;
    try {
      rule = this.rules.draft(
        {
          level,
          category: level >= 3 ? 'phish' : 'other',
          description: `Burst: ${what} on ${e.gateways.length} gateways, ${e.messages} messages in an hour (baseline ${e.baselinePerHour}/h)`,
          condition,
        },
        'intelligence',
      );
    } catch (err) {
      this.log(`outbreak intelligence: no draft for ${e.kind} ${e.key}: ${(err as Error).message}`);
      return null;
    }
    this.store.run(
      'insert or ignore into intel_drafts(kind, key, rule_id, created_at, confidence, evidence) values (?, ?, ?, ?, ?, ?)',
      e.kind,
      e.key,
      rule.id,
      Date.now(),
      confidence,
      JSON.stringify(e),
    );
    this.log(`outbreak intelligence: drafted ${rule.id} (${what}, level ${level}, confidence ${confidence})`);
    let published = false;
    if (c.autoPublishConfidence !== null && confidence >= c.autoPublishConfidence && level >= 3) {
      this.rules.publish([rule.id], 'intelligence');
      published = true;
      this.log(`outbreak intelligence: published ${rule.id} on its own (confidence ${confidence})`);
    }
    return { rule: this.rules.get(rule.id)!, confidence, evidence: e, published };
  }
}

/** The rule condition that catches what the evidence describes. */
function conditionFor(e: Evidence): Record<string, unknown> | null {
  if (e.kind === 'sha256') return { attachment: { sha256: [e.key] } };
  if (e.kind === 'url_domain') return { url: { domain: [e.key] } };
  const [domain, subject] = [e.key.slice(0, e.key.indexOf('|')), e.key.slice(e.key.indexOf('|') + 1)];
  // the longest run of the subject without a masked number: a phrase every message of the campaign has
  const phrase = subject
    .split('#')
    .map((p) => p.trim())
    .sort((a, b) => b.length - a.length)[0];
  if (!phrase || phrase.length < 4) return null;
  return { all: [{ sender: [`.${domain}`] }, { subject: [phrase] }] };
}
