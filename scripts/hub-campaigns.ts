// Detection quality of the hub's outbreak intelligence (issue 14): replays the shared test corpus's
// phishing campaigns (../shared/corpus, `phishing` = phishing-pot) over three simulated gateways with
// SpamAssassin `ham` in between, through the hub's own intake (HubStore.intake) and OutbreakIntelligence
// (observe on intake, evaluate after each intake, as src/hub/server.ts does), then judges every draft the
// hub made with the gateway's own rule engine (compileRules): which campaigns a draft would catch, and
// which drafts also match ham (the target is none). The same figures for even- and odd-numbered files
// are a generalisation check.
//
//   node scripts/hub-campaigns.ts [--json] [--limit N] [--corpus DIR]
//                                 [--min-gateways N] [--min-messages N] [--factor X] [--informational] [--list]
//
// --limit N keeps at most N phishing and N ham messages: each a contiguous run of files (in the order of
// the number in their names) so that campaigns, which arrive together, stay together. The --min-* and
// --factor options override the hub's defaults (src/hub/config.ts) for exploring; figures worth quoting are
// those at the defaults. --informational also drafts level-2 rules (intelligence.informationalDrafts). --list prints every campaign of 3 or more messages and what caught it.
//
// What is simulated, and why:
// - Each message's summary is built as the gateway's tracking would have it after the verdict
//   (src/xdr/summary.ts, src/pipeline/scan-events.ts): envelope sender from Return-Path (the header From
//   when there is none), subject, Message-ID, header From, URLs (deduplicated as tracking does), attachments
//   with true type and SHA-256, the threat level of the adaptive rules (no published rules, no anti-virus:
//   no clamd here), and status/verdict from the gateway's own policy decision (decideOutbreak) at the default
//   Outbreak settings (quarantine at level 3).
// - Campaigns are defined independently of the hub's keys where possible: phishing messages are joined
//   (union-find) when they carry the same non-image attachment payload, or when their visible text is a
//   near duplicate (MinHash estimate of the Jaccard similarity of word 4-shingles >= 0.5). The subject,
//   the sender and the linked domains are deliberately not used: those are what the hub counts, and a
//   campaign defined by them would be caught by construction. Images are left out because brand logos are
//   shared by unrelated kits; payloads under 256 bytes because a tiny identical file is no evidence of one
//   sender.
// - Time: a "baseline week" of ham first (every ham message once, evenly over 168 hours, no evaluation: the
//   hub has been running for a week), then the replay: phishing clusters in the order of their first Date
//   header, compressed so that each cluster of two or more messages gets an hour of its own (single
//   messages ride along in the hour of the cluster before them), with ham going on at the baseline week's
//   rate (the same stream again, so ham keys have the baseline steady traffic gives them). A campaign's
//   messages are dealt round-robin to the three gateways; ham is dealt round-robin too. Each gateway sends
//   one batch per 10 minutes, and the hub evaluates after each batch.
// - A draft "catches" a campaign when its condition matches at least one of the campaign's messages; a
//   draft "matches ham" when its condition matches any ham message of the run (every draft against every
//   ham message, not only the ham replayed near it).
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { hubConfigSchema } from '../src/hub/config.ts';
import { OutbreakIntelligence, intelKeys, type IntelKind, type IntelligenceSettings } from '../src/hub/intelligence.ts';
import { HubRules } from '../src/hub/rules.ts';
import { HubStore } from '../src/hub/store.ts';
import { policyOutbreakSchema } from '../src/config/outbreak-schema.ts';
import { parseMessage } from '../src/mime/parse.ts';
import type { ParsedMessage } from '../src/mime/types.ts';
import { decodeEntities } from '../src/mime/urls.ts';
import { assess, scoreHits } from '../src/outbreak/engine.ts';
import { compileRules, type Rule } from '../src/outbreak/rules.ts';
import type { MessageFacts, RuleHit } from '../src/outbreak/types.ts';
import { decideOutbreak } from '../src/policy/outbreak.ts';
import { escapeControls } from '../src/tracking/escape.ts';
import type { MessageSummary } from '../src/xdr/summary.ts';
import { readManifest, type ManifestEntry } from './corpus-manifest.ts';

const REPO = path.resolve(import.meta.dirname, '..');
const HOUR = 3_600_000;
const WEEK_HOURS = 168;
const GATEWAYS = ['gw-1', 'gw-2', 'gw-3'] as const;
const TICKS_PER_HOUR = 6;
/** the replay's clock starts here (any fixed time: the hub only compares hours) */
const T0 = Date.UTC(2026, 10, 1);
const MINHASH = 64;
const SHINGLE = 4;
const NEAR_DUPLICATE = 0.5;
const MIN_SHINGLES = 8;
const MIN_PAYLOAD_BYTES = 256;

export interface Sample {
  file: string;
  label: 'phishing' | 'ham';
  parity: 'even' | 'odd';
  /** the number in the file name (phishing-pot numbers follow collection time) */
  number: number;
  facts: MessageFacts;
  level: number;
  /** the gateway held it (level at or above the default quarantine threshold) */
  held: boolean;
  /** Date header, ms; null when missing or unreadable */
  date: number | null;
  /** the summary as the gateway streams it, without what the replay gives it (MID, time, version) */
  summary: Omit<MessageSummary, 'mid' | 'icid' | 'receivedAt' | 'version'>;
  /** MinHash of the visible text's word shingles; null when the text is too short to compare */
  signature: Uint32Array | null;
  /** SHA-256 of its non-image attachments of at least MIN_PAYLOAD_BYTES */
  payloads: string[];
}

export interface LoadedCorpus {
  corpusDir: string;
  samples: Sample[];
  failures: Array<{ path: string; error: string }>;
}

export interface CampaignResult {
  id: number;
  size: number;
  files: string[];
  subject: string | null;
  /** messages the gateways held on the adaptive rules alone */
  held: number;
  /** messages matched by a draft of any level / of a level that holds at the default threshold */
  caught: number;
  caughtHolding: number;
  drafts: string[];
  /** the most of its messages sharing one hub key (what a burst needs minMessages of) */
  maxShared: number;
  reason: string | null;
}

export interface DraftResult {
  ruleId: string;
  kind: IntelKind;
  key: string;
  level: number;
  confidence: number;
  condition: unknown;
  hour: string;
  gateways: number;
  messages: number;
  /** messages of the burst hour with this key, by label */
  origin: { phishing: number; ham: number };
  /** what burst made it: mostly phishing, or mostly ham (a legitimate burst, e.g. a mailing-list thread) */
  from: 'phishing' | 'ham';
  phishingMatched: number;
  campaignsCaught: number;
  /** messages carrying the drafted key that the draft matches (0: a draft that never fires on its own evidence) */
  ownMatched: number;
  hamMatched: number;
  hamExamples: Array<{ file: string; evidence: string | null }>;
}

export interface ReplayReport {
  settings: IntelligenceSettings;
  quarantineThreshold: number;
  messages: { phishing: number; ham: number };
  replay: {
    baselineHours: number;
    replayHours: number;
    summaries: number;
    hamReplayed: number;
    /** days the ham's Date headers span (5th to 95th percentile), compressed into the 7-day week */
    hamSpanDays: number | null;
  };
  clusters: { total: number; singletons: number; sizes: Record<string, number>; largest: number[] };
  campaigns: CampaignFigures & { list: CampaignResult[] };
  campaignsAtMinMessages: CampaignFigures;
  phishing: {
    heldByAdaptive: number;
    matchedByDrafts: number;
    matchedByHoldingDrafts: number;
    /** not held by the adaptive rules, held once the drafts of level >= threshold are published */
    addedByDrafts: number;
  };
  drafts: {
    total: number;
    byKindLevel: Record<string, Record<string, number>>;
    refused: string[];
    list: DraftResult[];
  };
  /** drafts that match at least one ham message */
  hamDrafts: DraftResult[];
  /** the same, by what burst made them and whether their level holds mail at the default threshold */
  hamDraftsBy: { phishing: number; phishingHolding: number; ham: number; hamHolding: number };
  hamMessagesMatched: number;
  hamMessagesMatchedHolding: number;
}

interface CampaignFigures {
  count: number;
  messages: number;
  caught: number;
  caughtHolding: number;
  messagesCaught: number;
  messagesCaughtHolding: number;
}

// ---- corpus ----------------------------------------------------------------------------------------

function fileNumber(file: string): number {
  const m = /\d+/.exec(path.basename(file));
  return m ? Number(m[0]) : 0;
}

/** The corpus directory, or null (with the reason) when it is absent: callers skip, never fail. */
export function findCorpus(dir?: string): { dir: string; missing: string | null } {
  const corpusDir = path.resolve(REPO, dir ?? '../shared/corpus');
  return existsSync(path.join(corpusDir, 'manifest.tsv'))
    ? { dir: corpusDir, missing: null }
    : { dir: corpusDir, missing: `corpus not found at ${corpusDir} (expected manifest.tsv)` };
}

/** The address in Return-Path, lower case ("" for the null sender), or null when there is none. */
function returnPath(headers: ParsedMessage['headers']): string | null {
  const rp = headers.find((h) => h.key === 'return-path')?.value;
  if (rp === undefined) return null;
  const m = /<([^<>]*)>/.exec(rp);
  return (m ? m[1] : rp).trim().toLowerCase();
}

function addressIn(value: string | null | undefined): string | null {
  if (!value) return null;
  const angle = /<([^<>]*@[^<>]*)>/.exec(value);
  const addr = (angle ? angle[1] : value.split(/[\s,;]+/).find((w) => w.includes('@')))?.trim().toLowerCase();
  return addr && addr.includes('@') ? addr : null;
}

/** Visible text for near-duplicate detection: the plain part, or the HTML without markup when that is empty. */
function visibleText(p: ParsedMessage): string {
  const words = (s: string) => s.match(/\p{L}{2,}/gu) ?? [];
  if (words(p.text).length >= 20) return p.text;
  return decodeEntities(
    p.html
      .replace(/<(style|script)\b[\s\S]*?<\/\1\s*>/gi, ' ')
      .replace(/<!--[\s\S]*?-->/g, ' ')
      .replace(/<[^>]*>/g, ' '),
  );
}

function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

function mix(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

const SEEDS = Array.from({ length: MINHASH }, (_, i) => mix(0x9e3779b9 + i * 0x632be5ab));

/** MinHash signature of the text's word 4-shingles (letters only: numbers and ids differ per recipient). */
export function minhash(text: string): Uint32Array | null {
  const words = text.toLowerCase().match(/\p{L}{2,}/gu) ?? [];
  const shingles = new Set<number>();
  for (let i = 0; i + SHINGLE <= words.length; i++) shingles.add(hash32(words.slice(i, i + SHINGLE).join(' ')));
  if (shingles.size < MIN_SHINGLES) return null;
  const sig = new Uint32Array(MINHASH).fill(0xffffffff);
  for (const s of shingles)
    for (let k = 0; k < MINHASH; k++) {
      const v = mix(s ^ SEEDS[k]);
      if (v < sig[k]) sig[k] = v;
    }
  return sig;
}

function similarity(a: Uint32Array, b: Uint32Array): number {
  let same = 0;
  for (let k = 0; k < MINHASH; k++) if (a[k] === b[k]) same++;
  return same / MINHASH;
}

const outbreakDefaults = policyOutbreakSchema.parse({});

/** One message as the gateway sees, judges and summarises it. */
export async function loadSample(corpusDir: string, file: string, label: Sample['label']): Promise<Sample> {
  const bytes = readFileSync(path.join(corpusDir, file));
  const parsed = await parseMessage(bytes);
  const sender = returnPath(parsed.headers) ?? addressIn(parsed.from) ?? '';
  const facts: MessageFacts = { parsed, sender, avSignatureVersion: null };
  // the gateway's scoring (adaptive rules, no bundle) and its policy decision at the default settings
  const assessment = assess(scoreHits(null, true, facts), null);
  const held = decideOutbreak(assessment, outbreakDefaults).kind === 'quarantine';
  const hits: RuleHit[] = assessment.hits;
  const rcpt = addressIn(parsed.headers.find((h) => h.key === 'to')?.value) ?? 'user@gateway.test';
  const dateHeader = parsed.headers.find((h) => h.key === 'date')?.value;
  const date = dateHeader ? Date.parse(dateHeader) : NaN;
  const urls = [...new Set(parsed.urls.map((u) => u.url))];
  return {
    file,
    label,
    number: fileNumber(file),
    parity: fileNumber(file) % 2 === 0 ? 'even' : 'odd',
    facts,
    level: assessment.level,
    held,
    date: Number.isFinite(date) ? date : null,
    summary: {
      parentMid: null,
      direction: 'incoming',
      listener: 'inbound',
      policy: 'default',
      sender,
      recipients: [
        { address: rcpt, status: held ? 'quarantined' : 'delivered', lastReply: held ? null : '250 2.0.0 Ok' },
      ],
      headerFrom: parsed.from === null ? null : escapeControls(parsed.from),
      subject: parsed.subject === null ? null : escapeControls(parsed.subject),
      messageId: parsed.messageId === null ? null : escapeControls(parsed.messageId),
      senderIp: '192.0.2.10',
      rdns: null,
      helo: null,
      size: bytes.length,
      attachments: parsed.attachments.map((a) => ({
        name: escapeControls(a.name),
        trueType: a.trueType,
        size: a.size,
        sha256: a.sha256,
      })),
      urls,
      status: held ? 'quarantined' : 'delivered',
      verdict: held ? 'quarantine' : 'deliver',
      threatLevel: assessment.level,
      rules: hits.map((h) => h.id),
    },
    signature: minhash(visibleText(parsed)),
    payloads: [
      ...new Set(
        parsed.attachments
          .filter((a) => a.size >= MIN_PAYLOAD_BYTES && !(a.trueType ?? a.declaredType).startsWith('image/'))
          .map((a) => a.sha256.toLowerCase()),
      ),
    ],
  };
}

/**
 * Parses the phishing and ham messages of the manifest. `limit`: at most that many of each label, a
 * contiguous run of file numbers from the middle of each collection (campaigns arrive together: a spread
 * sample would cut each one into pieces too small to burst).
 */
export async function loadCorpus(corpusDir: string, opts: { limit?: number } = {}): Promise<LoadedCorpus> {
  const entries = readManifest(corpusDir);
  const pick = (label: Sample['label']): ManifestEntry[] => {
    const all = entries.filter((e) => e.label === label).sort((a, b) => fileNumber(a.path) - fileNumber(b.path));
    if (!opts.limit || opts.limit >= all.length) return all;
    const start = Math.floor((all.length - opts.limit) / 2);
    return all.slice(start, start + opts.limit);
  };
  const samples: Sample[] = [];
  const failures: LoadedCorpus['failures'] = [];
  for (const label of ['phishing', 'ham'] as const)
    for (const e of pick(label)) {
      try {
        samples.push(await loadSample(corpusDir, e.path, label));
      } catch (err) {
        failures.push({ path: e.path, error: String((err as Error)?.message ?? err) });
      }
    }
  return { corpusDir, samples, failures };
}

// ---- campaigns -------------------------------------------------------------------------------------

/** Phishing clusters (see the top of this file): same payload or near-duplicate text, joined transitively. */
export function clusterCampaigns(phish: readonly Sample[]): Sample[][] {
  const parent = phish.map((_, i) => i);
  const find = (i: number): number => {
    while (parent[i] !== i) i = parent[i] = parent[parent[i]];
    return i;
  };
  const join = (a: number, b: number): void => {
    const [ra, rb] = [find(a), find(b)];
    if (ra !== rb) parent[Math.max(ra, rb)] = Math.min(ra, rb);
  };
  const byPayload = new Map<string, number>();
  phish.forEach((s, i) => {
    for (const h of s.payloads) {
      const first = byPayload.get(h);
      if (first === undefined) byPayload.set(h, i);
      else join(first, i);
    }
  });
  for (let i = 0; i < phish.length; i++) {
    const a = phish[i].signature;
    if (!a) continue;
    for (let j = i + 1; j < phish.length; j++) {
      const b = phish[j].signature;
      if (b && find(i) !== find(j) && similarity(a, b) >= NEAR_DUPLICATE) join(i, j);
    }
  }
  const groups = new Map<number, Sample[]>();
  phish.forEach((s, i) => {
    const r = find(i);
    let g = groups.get(r);
    if (!g) groups.set(r, (g = []));
    g.push(s);
  });
  const when = (s: Sample): number => s.date ?? Infinity;
  const clusters = [...groups.values()].map((g) => g.sort((a, b) => when(a) - when(b) || a.number - b.number));
  // in time order of their first message (file number for ties and undated mail)
  return clusters.sort((a, b) => when(a[0]) - when(b[0]) || a[0].number - b[0].number);
}

// ---- replay ----------------------------------------------------------------------------------------

export const defaultIntelligence = (): IntelligenceSettings =>
  (hubConfigSchema.shape.intelligence as unknown as { parse(v: unknown): IntelligenceSettings }).parse(undefined);

interface Arrival {
  sample: Sample;
  device: number;
  at: number;
}

/** Days between the 5th and 95th percentile of the messages' Date headers. */
function span(list: readonly Sample[]): number | null {
  const dates = list
    .map((s) => s.date)
    .filter((d): d is number => d !== null)
    .sort((a, b) => a - b);
  if (dates.length < 2) return null;
  const at = (p: number) => dates[Math.min(dates.length - 1, Math.floor(dates.length * p))];
  return Math.round((at(0.95) - at(0.05)) / 86_400_000);
}

/** Spreads n arrivals evenly over the hour starting at `start`. */
const spread = (start: number, j: number, n: number): number => start + Math.floor(((j + 0.5) / n) * HOUR);

/**
 * Replays `samples` (phishing and ham) through a hub store, rules and intelligence in a temporary directory,
 * then judges every draft against every message. Synchronous from the hub's point of view, as its intake is.
 */
export function replay(samples: readonly Sample[], settings: IntelligenceSettings): ReplayReport {
  const ham = samples.filter((s) => s.label === 'ham').sort((a, b) => a.number - b.number);
  const phish = samples.filter((s) => s.label === 'phishing');
  const clusters = clusterCampaigns(phish);
  // the hub's keys of each message, computed once (tldts parses every URL)
  const keyCache = new Map<Sample, Array<{ kind: IntelKind; key: string }>>();
  const keysOf = (s: Sample): Array<{ kind: IntelKind; key: string }> => {
    let k = keyCache.get(s);
    if (!k) keyCache.set(s, (k = intelKeys(s.summary as MessageSummary)));
    return k;
  };

  // hours of the replay: each cluster of two or more opens one, single messages join the one before
  const hours: Sample[][][] = [];
  for (const c of clusters) {
    if (c.length >= 2 || hours.length === 0) hours.push([c]);
    else hours[hours.length - 1].push(c);
  }
  const hamPerHour = (h: number): Sample[] => {
    if (!ham.length) return [];
    const [from, to] = [Math.floor((h * ham.length) / WEEK_HOURS), Math.floor(((h + 1) * ham.length) / WEEK_HOURS)];
    return Array.from({ length: to - from }, (_, k) => ham[(from + k) % ham.length]);
  };

  const dir = mkdtempSync(path.join(os.tmpdir(), 'bw-hub-campaigns-'));
  const store = new HubStore(dir);
  // a scratch database: durability is not what is measured, and an fsync per batch would dominate the run
  store.db.exec('pragma synchronous = off');
  const rules = new HubRules(store, dir);
  const refused: string[] = [];
  const intelligence = new OutbreakIntelligence({
    store,
    rules,
    settings: () => settings,
    log: (line) => {
      if (line.includes('no draft')) refused.push(line);
    },
  });
  const mids = GATEWAYS.map(() => 0);
  let summaries = 0;
  let hamReplayed = 0;
  let batch = 0;
  /** (kind, key, hour) → labels of the messages that carried it, in the replay hours */
  const origins = new Map<string, { phishing: number; ham: number }>();

  const runHour = (hourIndex: number, arrivals: Arrival[], evaluate: boolean): void => {
    const start = T0 + hourIndex * HOUR;
    arrivals.sort((a, b) => a.at - b.at);
    for (let t = 0; t < TICKS_PER_HOUR; t++) {
      const end = start + ((t + 1) * HOUR) / TICKS_PER_HOUR;
      for (let d = 0; d < GATEWAYS.length; d++) {
        const mine = arrivals.filter((a) => a.device === d && a.at >= end - HOUR / TICKS_PER_HOUR && a.at < end);
        if (!mine.length) continue;
        const list: MessageSummary[] = mine.map((a) => {
          const mid = ++mids[d];
          return { ...a.sample.summary, mid, icid: mid, receivedAt: new Date(a.at).toISOString(), version: 1 };
        });
        store.intake(GATEWAYS[d], `batch-${++batch}`, list, {
          onJudged: (s) => intelligence.observe(GATEWAYS[d], s),
        });
        summaries += list.length;
        if (evaluate)
          for (const a of mine)
            for (const k of keysOf(a.sample)) {
              const id = `${k.kind}\u0000${k.key}\u0000${hourIndex}`;
              const o = origins.get(id) ?? { phishing: 0, ham: 0 };
              o[a.sample.label]++;
              origins.set(id, o);
            }
      }
      // the hub evaluates a moment after each intake; here once per round of batches
      if (evaluate) intelligence.evaluate(end - 1);
    }
  };

  try {
    // the baseline week: ham only, counted but not evaluated (the hub has been running for a week)
    let hamDevice = 0;
    for (let h = 0; h < WEEK_HOURS; h++) {
      const list = hamPerHour(h);
      runHour(
        h,
        list.map((sample, j) => ({
          sample,
          device: hamDevice++ % GATEWAYS.length,
          at: spread(T0 + h * HOUR, j, list.length),
        })),
        false,
      );
    }
    let campaign = 0;
    hours.forEach((group, k) => {
      const h = WEEK_HOURS + k;
      const start = T0 + h * HOUR;
      const arrivals: Arrival[] = [];
      for (const c of group) {
        // a campaign's messages go round-robin to the three gateways, each campaign starting on the next one
        const first = campaign++;
        c.forEach((sample, j) =>
          arrivals.push({ sample, device: (first + j) % GATEWAYS.length, at: spread(start, j, c.length) }),
        );
      }
      const hamList = hamPerHour(k);
      hamReplayed += hamList.length;
      hamList.forEach((sample, j) =>
        arrivals.push({ sample, device: hamDevice++ % GATEWAYS.length, at: spread(start, j, hamList.length) }),
      );
      runHour(h, arrivals, true);
    });

    return judge({
      settings,
      store,
      rules,
      clusters,
      phish,
      ham,
      origins,
      refused,
      keysOf,
      replay: { baselineHours: WEEK_HOURS, replayHours: hours.length, summaries, hamReplayed, hamSpanDays: span(ham) },
    });
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function judge(o: {
  settings: IntelligenceSettings;
  store: HubStore;
  rules: HubRules;
  clusters: Sample[][];
  phish: Sample[];
  ham: Sample[];
  origins: Map<string, { phishing: number; ham: number }>;
  refused: string[];
  keysOf: (s: Sample) => Array<{ kind: IntelKind; key: string }>;
  replay: ReplayReport['replay'];
}): ReplayReport {
  const threshold = outbreakDefaults.quarantineThreshold;
  const rows = o.store.db
    .prepare('select kind, key, rule_id, confidence, evidence from intel_drafts order by rule_id')
    .all() as Array<{ kind: IntelKind; key: string; rule_id: string; confidence: number; evidence: string }>;
  const drafted = rows.map((r) => ({ row: r, rule: o.rules.get(r.rule_id)! }));
  // the drafts as the gateway would compile them once published
  const compiled = compileRules(
    drafted.map(({ rule }): Rule => ({
      id: rule.id,
      level: rule.level,
      category: rule.category,
      description: rule.description,
      published: rule.createdAt,
      condition: rule.condition,
    })),
  );
  const hitsOf = new Map<Sample, RuleHit[]>();
  for (const s of [...o.phish, ...o.ham]) hitsOf.set(s, compiled.size ? compiled.evaluate(s.facts) : []);
  const matched = (s: Sample): boolean => hitsOf.get(s)!.length > 0;
  const holding = (s: Sample): boolean => hitsOf.get(s)!.some((h) => h.level >= threshold);

  const campaignOf = new Map<Sample, number>();
  const campaigns: CampaignResult[] = [];
  o.clusters.forEach((c, i) => {
    for (const s of c) campaignOf.set(s, i);
    if (c.length < 3) return;
    const keyCount = new Map<string, number>();
    for (const s of c)
      for (const k of o.keysOf(s)) keyCount.set(`${k.kind}:${k.key}`, (keyCount.get(`${k.kind}:${k.key}`) ?? 0) + 1);
    const maxShared = Math.max(0, ...keyCount.values());
    const caught = c.filter(matched).length;
    const r: CampaignResult = {
      id: i,
      size: c.length,
      files: c.map((s) => s.file),
      subject: c[0].summary.subject,
      held: c.filter((s) => s.held).length,
      caught,
      caughtHolding: c.filter(holding).length,
      drafts: [...new Set(c.flatMap((s) => hitsOf.get(s)!.map((h) => h.id)))],
      maxShared,
      reason: null,
    };
    if (!caught)
      r.reason =
        c.length < o.settings.minMessages
          ? `fewer than minMessages (${o.settings.minMessages}) messages`
          : maxShared < o.settings.minMessages
            ? `no hub key shared by ${o.settings.minMessages} of its messages (at most ${maxShared})`
            : r.held === 0 && !o.settings.informationalDrafts
              ? 'the gateways held none of it: informational only (intelligence.informationalDrafts)'
              : `a key shared by ${maxShared} messages, not drafted (gateways, baseline or draft refused)`;
    campaigns.push(r);
  });
  const figures = (list: CampaignResult[]): CampaignFigures => ({
    count: list.length,
    messages: list.reduce((a, c) => a + c.size, 0),
    caught: list.filter((c) => c.caught > 0).length,
    caughtHolding: list.filter((c) => c.caughtHolding > 0).length,
    messagesCaught: list.reduce((a, c) => a + c.caught, 0),
    messagesCaughtHolding: list.reduce((a, c) => a + c.caughtHolding, 0),
  });

  const draftList: DraftResult[] = drafted.map(({ row, rule }) => {
    const ev = JSON.parse(row.evidence) as { hour: string; messages: number; gateways: unknown[] };
    const hourIndex = Math.floor((Date.parse(ev.hour) - T0) / HOUR);
    const hitting = (s: Sample) => hitsOf.get(s)!.find((h) => h.id === rule.id);
    const hamHits = o.ham.filter((s) => hitting(s));
    // the messages that carry the drafted key (its own evidence, in whichever hour)
    const own = [...o.phish, ...o.ham].filter((s) => o.keysOf(s).some((k) => k.kind === row.kind && k.key === row.key));
    const phishHits = o.phish.filter((s) => hitting(s));
    const origin = o.origins.get(`${row.kind}\u0000${row.key}\u0000${hourIndex}`) ?? { phishing: 0, ham: 0 };
    return {
      ruleId: rule.id,
      kind: row.kind,
      key: row.key,
      level: rule.level,
      confidence: row.confidence,
      condition: rule.condition,
      hour: ev.hour,
      gateways: ev.gateways.length,
      messages: ev.messages,
      origin,
      from: origin.ham > origin.phishing ? 'ham' : 'phishing',
      phishingMatched: phishHits.length,
      campaignsCaught: new Set(phishHits.map((s) => campaignOf.get(s)!).filter((i) => o.clusters[i].length >= 3)).size,
      ownMatched: own.filter((s) => hitting(s)).length,
      hamMatched: hamHits.length,
      hamExamples: hamHits.slice(0, 3).map((s) => ({ file: s.file, evidence: hitting(s)!.evidence ?? null })),
    };
  });
  const hamDrafts = draftList.filter((d) => d.hamMatched > 0);
  const byKindLevel: Record<string, Record<string, number>> = {};
  for (const d of draftList) {
    byKindLevel[d.kind] ??= {};
    byKindLevel[d.kind][`level ${d.level}`] = (byKindLevel[d.kind][`level ${d.level}`] ?? 0) + 1;
  }
  const sizes: Record<string, number> = { '1': 0, '2': 0, '3-4': 0, '5-9': 0, '10+': 0 };
  for (const c of o.clusters)
    sizes[c.length === 1 ? '1' : c.length === 2 ? '2' : c.length < 5 ? '3-4' : c.length < 10 ? '5-9' : '10+']++;

  return {
    settings: o.settings,
    quarantineThreshold: threshold,
    messages: { phishing: o.phish.length, ham: o.ham.length },
    replay: o.replay,
    clusters: {
      total: o.clusters.length,
      singletons: sizes['1'],
      sizes,
      largest: o.clusters
        .map((c) => c.length)
        .sort((a, b) => b - a)
        .slice(0, 10),
    },
    campaigns: { ...figures(campaigns), list: campaigns },
    campaignsAtMinMessages: figures(campaigns.filter((c) => c.size >= o.settings.minMessages)),
    phishing: {
      heldByAdaptive: o.phish.filter((s) => s.held).length,
      matchedByDrafts: o.phish.filter(matched).length,
      matchedByHoldingDrafts: o.phish.filter(holding).length,
      addedByDrafts: o.phish.filter((s) => !s.held && holding(s)).length,
    },
    drafts: { total: draftList.length, byKindLevel, refused: o.refused, list: draftList },
    hamDrafts,
    hamDraftsBy: {
      phishing: hamDrafts.filter((d) => d.from === 'phishing').length,
      phishingHolding: hamDrafts.filter((d) => d.from === 'phishing' && d.level >= threshold).length,
      ham: hamDrafts.filter((d) => d.from === 'ham').length,
      hamHolding: hamDrafts.filter((d) => d.from === 'ham' && d.level >= threshold).length,
    },
    hamMessagesMatched: o.ham.filter(matched).length,
    hamMessagesMatchedHolding: o.ham.filter(holding).length,
  };
}

// ---- the command -----------------------------------------------------------------------------------

export interface RunResult {
  corpus: string;
  parseFailures: LoadedCorpus['failures'];
  all: ReplayReport;
  split: { even: ReplayReport; odd: ReplayReport } | null;
  elapsedMs: { parse: number; replay: number };
}

/** The whole measurement; null when the corpus is absent (the reason goes to `skip`). */
export async function runHubCampaigns(opts: {
  corpus?: string;
  limit?: number;
  settings?: Partial<IntelligenceSettings>;
  split?: boolean;
  skip?: (reason: string) => void;
}): Promise<RunResult | null> {
  const found = findCorpus(opts.corpus);
  if (found.missing) {
    opts.skip?.(found.missing);
    return null;
  }
  const settings: IntelligenceSettings = { ...defaultIntelligence(), ...opts.settings, autoPublishConfidence: null };
  const t0 = Date.now();
  const corpus = await loadCorpus(found.dir, { limit: opts.limit });
  const t1 = Date.now();
  const all = replay(corpus.samples, settings);
  const split =
    opts.split === false
      ? null
      : {
          even: replay(
            corpus.samples.filter((s) => s.parity === 'even'),
            settings,
          ),
          odd: replay(
            corpus.samples.filter((s) => s.parity === 'odd'),
            settings,
          ),
        };
  return {
    corpus: found.dir,
    parseFailures: corpus.failures,
    all,
    split,
    elapsedMs: { parse: t1 - t0, replay: Date.now() - t1 },
  };
}

const pct = (a: number, b: number): string => (b ? `${((a / b) * 100).toFixed(1)}%` : '-');

function headline(title: string, r: ReplayReport): void {
  const c = r.campaigns;
  const m = r.campaignsAtMinMessages;
  console.log(`\n${title}`);
  console.log(
    `  messages: phishing ${r.messages.phishing}, ham ${r.messages.ham} (Date headers spanning ${r.replay.hamSpanDays ?? '?'} days, replayed as one week); replay: ${r.replay.baselineHours} h baseline + ${r.replay.replayHours} h, ${r.replay.summaries} summaries`,
  );
  console.log(
    `  phishing clusters: ${r.clusters.total} (sizes ${Object.entries(r.clusters.sizes)
      .map(([k, v]) => `${k}: ${v}`)
      .join(', ')}; largest ${r.clusters.largest.join(', ')})`,
  );
  console.log(
    '  campaigns                     | count | caught (any draft) | caught (level >= ' +
      r.quarantineThreshold +
      ') | messages caught (any / level >= ' +
      r.quarantineThreshold +
      ')',
  );
  const row = (name: string, f: CampaignFigures): void =>
    console.log(
      `  ${name.padEnd(29)} | ${String(f.count).padStart(5)} | ${`${f.caught} (${pct(f.caught, f.count)})`.padEnd(18)} | ${`${f.caughtHolding} (${pct(f.caughtHolding, f.count)})`.padEnd(19)} | ${f.messagesCaught}/${f.messages} (${pct(f.messagesCaught, f.messages)}) / ${f.messagesCaughtHolding}/${f.messages} (${pct(f.messagesCaughtHolding, f.messages)})`,
    );
  row('>= 3 messages', c);
  row(`>= minMessages (${r.settings.minMessages}) messages`, m);
  const p = r.phishing;
  console.log(
    `  all phishing: held by adaptive rules ${p.heldByAdaptive}/${r.messages.phishing} (${pct(p.heldByAdaptive, r.messages.phishing)}); matched by drafts ${p.matchedByDrafts}, by drafts of level >= ${r.quarantineThreshold} ${p.matchedByHoldingDrafts}; newly held by them ${p.addedByDrafts}`,
  );
  const kinds = Object.entries(r.drafts.byKindLevel)
    .map(
      ([k, v]) =>
        `${k} ${Object.entries(v)
          .map(([l, n]) => `${n} at ${l}`)
          .join(', ')}`,
    )
    .join('; ');
  console.log(
    `  drafts: ${r.drafts.total} (${kinds || 'none'})${r.drafts.refused.length ? `; refused ${r.drafts.refused.length}` : ''}`,
  );
  const dead = r.drafts.list.filter((d) => d.ownMatched === 0);
  if (dead.length)
    console.log(`  drafts matching none of their own burst: ${dead.map((d) => `${d.kind} ${d.key}`).join(', ')}`);
  const fromHam = r.drafts.list.filter((d) => d.from === 'ham').length;
  const b = r.hamDraftsBy;
  const t = r.quarantineThreshold;
  console.log(`  drafts from phishing bursts ${r.drafts.total - fromHam}, from ham bursts ${fromHam}`);
  console.log(
    `  drafts matching ham: ${r.hamDrafts.length} of ${r.drafts.total}: from phishing bursts ${b.phishing} (level >= ${t}: ${b.phishingHolding}), from ham bursts ${b.ham} (level >= ${t}: ${b.hamHolding}); ham messages matched: ${r.hamMessagesMatched}/${r.messages.ham} (by drafts of level >= ${t}: ${r.hamMessagesMatchedHolding})`,
  );
}

function printReport(res: RunResult, list: boolean): void {
  const r = res.all;
  const s = r.settings;
  console.log(
    `Outbreak intelligence replay: ${res.corpus}; minGateways ${s.minGateways}, minMessages ${s.minMessages}, factor ${s.factor}, informational drafts ${s.informationalDrafts ? 'on' : 'off'}; ${GATEWAYS.length} gateways; quarantine threshold ${r.quarantineThreshold} (parse ${res.elapsedMs.parse} ms, replays ${res.elapsedMs.replay} ms)`,
  );
  if (res.parseFailures.length) console.log(`parse failures: ${res.parseFailures.map((f) => f.path).join(', ')}`);
  headline('All files', r);
  if (res.split) {
    headline('Even-numbered files', res.split.even);
    headline('Odd-numbered files', res.split.odd);
  }
  console.log('\nDrafts (all files)');
  console.log(
    'rule             | kind       | lvl | conf | gw | msgs | burst p/h | phish matched | campaigns | ham matched | key',
  );
  for (const d of r.drafts.list)
    console.log(
      `${d.ruleId.padEnd(16)} | ${d.kind.padEnd(10)} | ${String(d.level).padEnd(3)} | ${d.confidence.toFixed(2)} | ${String(d.gateways).padEnd(2)} | ${String(d.messages).padStart(4)} | ${`${d.origin.phishing}/${d.origin.ham}`.padEnd(9)} | ${String(d.phishingMatched).padStart(13)} | ${String(d.campaignsCaught).padStart(9)} | ${String(d.hamMatched).padStart(11)} | ${d.key}`,
    );
  if (r.hamDrafts.length) {
    console.log('\nDrafts that match ham (why: the matching URL, sender or attachment)');
    for (const d of r.hamDrafts) {
      console.log(
        `  ${d.ruleId} ${d.kind} ${d.key} (level ${d.level}, from a ${d.from} burst): ${d.hamMatched} ham messages, e.g.`,
      );
      for (const e of d.hamExamples) console.log(`    ${e.file}: ${e.evidence ?? '?'}`);
    }
  }
  const missed = r.campaigns.list.filter((c) => c.caught === 0);
  if (missed.length) {
    const reasons = new Map<string, number>();
    for (const c of missed) {
      const why = c.reason!.replace(/\(at most \d+\)/, '').trim();
      reasons.set(why, (reasons.get(why) ?? 0) + 1);
    }
    console.log(`\nCampaigns of 3 or more messages no draft catches: ${missed.length}`);
    for (const [why, n] of reasons) console.log(`  ${n}: ${why}`);
  }
  if (list) {
    console.log('\nCampaigns of 3 or more messages');
    for (const c of r.campaigns.list)
      console.log(
        `  #${c.id} ${c.size} msgs, held ${c.held}, caught ${c.caught} (level >= ${r.quarantineThreshold}: ${c.caughtHolding}) by ${c.drafts.join(', ') || '-'}; max shared key ${c.maxShared}; ${JSON.stringify(c.subject)}; ${c.files.slice(0, 3).join(' ')}${c.reason ? `; missed: ${c.reason}` : ''}`,
      );
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      json: { type: 'boolean', default: false },
      limit: { type: 'string' },
      corpus: { type: 'string' },
      'min-gateways': { type: 'string' },
      'min-messages': { type: 'string' },
      factor: { type: 'string' },
      informational: { type: 'boolean', default: false },
      list: { type: 'boolean', default: false },
    },
  });
  const num = (name: string, v: string | undefined, integer: boolean): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n)))
      throw new Error(`--${name} takes a positive ${integer ? 'integer' : 'number'}`);
    return n;
  };
  let limit: number | undefined;
  const settings: Partial<IntelligenceSettings> = {};
  try {
    limit = num('limit', values.limit, true);
    const g = num('min-gateways', values['min-gateways'], true);
    const m = num('min-messages', values['min-messages'], true);
    const f = num('factor', values.factor, false);
    if (g !== undefined) settings.minGateways = g;
    if (m !== undefined) settings.minMessages = m;
    if (f !== undefined) settings.factor = f;
    if (values.informational) settings.informationalDrafts = true;
  } catch (err) {
    console.error(`hub-campaigns: ${(err as Error).message}`);
    process.exitCode = 2;
    return;
  }
  const res = await runHubCampaigns({
    corpus: values.corpus,
    limit,
    settings,
    skip: (reason) => {
      const msg = `hub-campaigns: ${reason}; nothing to measure, skipping`;
      console.log(values.json ? JSON.stringify({ skipped: true, reason: msg }) : msg);
    },
  });
  if (!res) return;
  if (values.json) {
    console.log(JSON.stringify(res, null, 2));
    return;
  }
  printReport(res, values.list);
}

if (import.meta.main) await main();
