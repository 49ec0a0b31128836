// Detection figures of the adaptive rules alone (DESIGN §13): parses every message of the shared
// test corpus (../shared/corpus, labels from manifest.tsv) with the production parser, runs only the
// adaptive rules (no published outbreak rules) and prints, at quarantine thresholds 1–5, the catch
// rate on `phishing`, the rate on `spam` and the false positives on `ham`, then the hits of every
// rule per label, the same figures for even- and odd-numbered files (a generalisation check) and
// how long the rules took.
//
//   node scripts/detection.ts [--json] [--limit N] [--corpus DIR] [--list-fp]
//
// --limit N keeps at most N messages, spread evenly over the manifest (every k-th line), so every
// collection stays represented. --list-fp prints the ham messages at level 3 or more.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseMessage } from '../src/mime/parse.ts';
import { adaptiveLevel, adaptiveRules, evaluateAdaptive } from '../src/outbreak/adaptive.ts';
import type { RuleHit } from '../src/outbreak/types.ts';
import { readManifest, type ManifestEntry } from './corpus-manifest.ts';

const REPO = path.resolve(import.meta.dirname, '..');
const THRESHOLDS = [1, 2, 3, 4, 5] as const;

interface Outcome {
  entry: ManifestEntry;
  level: number;
  hits: RuleHit[];
  /** parity of the number in the file name (sample-1234.eml, 00123.abc.txt) */
  parity: 'even' | 'odd';
  evalMs: number;
}

interface RateRow {
  threshold: number;
  phishing: { caught: number; total: number; rate: number };
  spam: { caught: number; total: number; rate: number };
  ham: { falsePositives: number; total: number; rate: number };
}

function parityOf(file: string, index: number): 'even' | 'odd' {
  const m = /\d+/.exec(path.basename(file));
  const n = m ? Number(m[0]) : index;
  return n % 2 === 0 ? 'even' : 'odd';
}

/**
 * The envelope sender as the receiving MTA recorded it in Return-Path: "" for the null sender
 * (`Return-Path: <>`), null when the message carries no Return-Path (no envelope known, which is not the
 * null sender).
 */
function envelopeSender(headers: Array<{ key: string; value: string }>): string | null {
  const rp = headers.find((h) => h.key === 'return-path')?.value;
  if (rp === undefined) {
    return null;
  }
  const m = /<([^<>]*)>/.exec(rp);
  return (m ? m[1] : rp).trim().toLowerCase();
}

function rates(outcomes: readonly Outcome[]): RateRow[] {
  const count = (label: string, t: number): [number, number] => {
    let total = 0;
    let caught = 0;
    for (const o of outcomes) {
      if (o.entry.label === label) {
        total++;
        if (o.level >= t) {
          caught++;
        }
      }
    }
    return [caught, total];
  };
  const pct = (a: number, b: number): number => (b ? Math.round((a / b) * 10000) / 100 : 0);
  return THRESHOLDS.map((t) => {
    const [pc, pt] = count('phishing', t);
    const [sc, st] = count('spam', t);
    const [hc, ht] = count('ham', t);
    return {
      threshold: t,
      phishing: { caught: pc, total: pt, rate: pct(pc, pt) },
      spam: { caught: sc, total: st, rate: pct(sc, st) },
      ham: { falsePositives: hc, total: ht, rate: pct(hc, ht) },
    };
  });
}

function percentile(sorted: readonly number[], p: number): number {
  if (!sorted.length) {
    return 0;
  }
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

function fmtRate(a: number, b: number): string {
  return b ? `${((a / b) * 100).toFixed(1)}%` : '-';
}

function printTable(title: string, rows: readonly RateRow[]): void {
  console.log(`\n${title}`);
  console.log('threshold | phishing caught        | spam                   | ham false positives');
  console.log('--------- | ---------------------- | ---------------------- | -------------------');
  for (const r of rows) {
    const p = `${r.phishing.caught}/${r.phishing.total} (${fmtRate(r.phishing.caught, r.phishing.total)})`;
    const s = `${r.spam.caught}/${r.spam.total} (${fmtRate(r.spam.caught, r.spam.total)})`;
    const h = `${r.ham.falsePositives}/${r.ham.total} (${r.ham.total ? ((r.ham.falsePositives / r.ham.total) * 100).toFixed(2) : '-'}%)`;
    console.log(`${String(r.threshold).padEnd(9)} | ${p.padEnd(22)} | ${s.padEnd(22)} | ${h}`);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      json: { type: 'boolean', default: false },
      limit: { type: 'string' },
      corpus: { type: 'string' },
      'list-fp': { type: 'boolean', default: false },
    },
  });
  const corpusDir = path.resolve(REPO, values.corpus ?? '../shared/corpus');
  if (!existsSync(path.join(corpusDir, 'manifest.tsv'))) {
    const msg = `detection: corpus not found at ${corpusDir} (expected manifest.tsv); nothing to measure, skipping`;
    if (values.json) {
      console.log(JSON.stringify({ skipped: true, reason: msg }));
    } else {
      console.log(msg);
    }
    return;
  }
  let entries = readManifest(corpusDir);
  const limit = values.limit !== undefined ? Number(values.limit) : 0;
  if (values.limit !== undefined && (!Number.isInteger(limit) || limit <= 0)) {
    console.error('detection: --limit takes a positive integer');
    process.exitCode = 2;
    return;
  }
  if (limit && limit < entries.length) {
    const step = entries.length / limit;
    entries = Array.from({ length: limit }, (_, i) => entries[Math.floor(i * step)]);
  }

  const outcomes: Outcome[] = [];
  const failures: Array<{ path: string; error: string }> = [];
  const started = Date.now();
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i];
    let parsed;
    try {
      parsed = await parseMessage(readFileSync(path.join(corpusDir, entry.path)));
    } catch (err) {
      failures.push({ path: entry.path, error: String((err as Error)?.message ?? err) });
      continue;
    }
    const facts = { parsed, sender: envelopeSender(parsed.headers), avSignatureVersion: null };
    const t0 = performance.now();
    const hits = evaluateAdaptive(facts);
    const evalMs = performance.now() - t0;
    outcomes.push({ entry, level: adaptiveLevel(hits), hits, parity: parityOf(entry.path, i), evalMs });
  }
  const elapsed = Date.now() - started;

  const labels = [...new Set(outcomes.map((o) => o.entry.label))].sort();
  const perRule: Record<string, Record<string, number>> = {};
  for (const rule of adaptiveRules) {
    perRule[rule.id] = Object.fromEntries(labels.map((l) => [l, 0]));
  }
  for (const o of outcomes) {
    for (const h of o.hits) {
      perRule[h.id] ??= Object.fromEntries(labels.map((l) => [l, 0]));
      perRule[h.id][o.entry.label]++;
    }
  }
  const times = outcomes.map((o) => o.evalMs).sort((a, b) => a - b);
  const timing = {
    medianMs: Number(percentile(times, 0.5).toFixed(3)),
    p99Ms: Number(percentile(times, 0.99).toFixed(3)),
    maxMs: Number((times[times.length - 1] ?? 0).toFixed(3)),
  };
  const overall = rates(outcomes);
  const even = rates(outcomes.filter((o) => o.parity === 'even'));
  const odd = rates(outcomes.filter((o) => o.parity === 'odd'));
  const hamFp = outcomes
    .filter((o) => o.entry.label === 'ham' && o.level >= 3)
    .map((o) => ({ path: o.entry.path, level: o.level, rules: o.hits.map((h) => h.id) }));
  const labelCounts = Object.fromEntries(labels.map((l) => [l, outcomes.filter((o) => o.entry.label === l).length]));

  if (values.json) {
    console.log(
      JSON.stringify(
        {
          corpus: corpusDir,
          messages: outcomes.length,
          labels: labelCounts,
          parseFailures: failures,
          thresholds: overall,
          split: { even, odd },
          rules: adaptiveRules.map((r) => ({ id: r.id, level: r.level, category: r.category, hits: perRule[r.id] })),
          hamFalsePositivesAtThreshold3: values['list-fp'] ? hamFp : hamFp.length,
          timing,
          elapsedMs: elapsed,
        },
        null,
        2,
      ),
    );
    return;
  }

  console.log(`Adaptive rules only, ${outcomes.length} messages from ${corpusDir} (${elapsed} ms)`);
  console.log(`labels: ${labels.map((l) => `${l} ${labelCounts[l]}`).join(', ')}`);
  if (failures.length) {
    console.log(`parse failures: ${failures.length} (${failures.map((f) => f.path).join(', ')})`);
  }
  printTable('All messages', overall);
  printTable('Even-numbered files', even);
  printTable('Odd-numbered files', odd);

  console.log('\nHits per rule (messages)');
  const width = Math.max(...adaptiveRules.map((r) => r.id.length));
  console.log(`${'rule'.padEnd(width)} | lvl | ${labels.join(' | ')}`);
  for (const r of adaptiveRules) {
    console.log(
      `${r.id.padEnd(width)} | ${String(r.level).padEnd(3)} | ${labels.map((l) => String(perRule[r.id][l]).padStart(l.length)).join(' | ')}`,
    );
  }
  console.log(
    `\nevaluateAdaptive per message: median ${timing.medianMs} ms, p99 ${timing.p99Ms} ms, max ${timing.maxMs} ms (parse not included)`,
  );
  if (values['list-fp']) {
    console.log('\nHam at level 3 or more:');
    for (const f of hamFp) {
      console.log(`  ${f.path} level ${f.level}: ${f.rules.join(', ')}`);
    }
  }
}

await main();
