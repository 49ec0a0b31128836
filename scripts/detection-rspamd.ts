// Detection figures with the rspamd stage on (issue 15): every message of the shared corpus
// (../shared/corpus, labels from manifest.tsv) scored by the adaptive rules (as scripts/detection.ts
// does) and by rspamd's /checkv2, then, at quarantine threshold 3, the catch rate on `phishing` and
// `spam` and the false positives on `ham` for the adaptive rules alone, rspamd alone ("add header" or
// more, and "reject" only) and both together (a message counts as caught when either flags it).
//
//   node scripts/detection-rspamd.ts [--rspamd URL] [--json] [--limit N] [--corpus DIR]
//
// Without --rspamd the test rspamd is started (test/helpers/rspamd.ts: Debian's stock rules with every
// network and redis module off, so no RBLs, no URL lists, no Bayes, no fuzzy hashes): the figures are
// then those of rspamd's local rules only, a floor for a production rspamd. That rspamd scans with its
// `corpus_replay` settings (DATE_IN_PAST off: archived mail is old by now). Client IP, HELO and reverse
// DNS come from the first Received header naming a public address.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseMessage } from '../src/mime/parse.ts';
import { adaptiveLevel, evaluateAdaptive } from '../src/outbreak/adaptive.ts';
import { RspamdClient, type RspamdAnswer } from '../src/antispam/rspamd.ts';
import { startRspamd } from '../test/helpers/rspamd.ts';
import { readManifest } from './corpus-manifest.ts';

const REPO = path.resolve(import.meta.dirname, '..');
const THRESHOLD = 3;
const CONCURRENCY = 8;

interface Outcome {
  label: string;
  level: number;
  rspamd: RspamdAnswer | null;
}

function headerValue(headers: Array<{ key: string; value: string }>, key: string): string {
  return headers.find((h) => h.key === key)?.value ?? '';
}

/**
 * The client of the first Received header that names a public IP (what our ingress would have seen):
 * its IP, HELO and reverse-DNS name ("from HELO (RDNS [IP])").
 */
function client(headers: Array<{ key: string; value: string }>): {
  ip: string;
  helo: string | null;
  rdns: string | null;
} {
  for (const h of headers.filter((x) => x.key === 'received')) {
    const m = /\[(\d{1,3}(?:\.\d{1,3}){3})\]/.exec(h.value);
    if (!m || /^(127|10|192\.168)\./.test(m[1])) continue;
    const helo = /^\s*from\s+(\S+)/i.exec(h.value)?.[1] ?? null;
    const rdns = /\(([a-z0-9.-]+\.[a-z]{2,})\s+\[/i.exec(h.value)?.[1] ?? null;
    return { ip: m[1], helo, rdns };
  }
  return { ip: '192.0.2.1', helo: null, rdns: null };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rspamd: { type: 'string' },
      json: { type: 'boolean', default: false },
      limit: { type: 'string' },
      corpus: { type: 'string' },
    },
  });
  const corpusDir = path.resolve(REPO, values.corpus ?? '../shared/corpus');
  if (!existsSync(path.join(corpusDir, 'manifest.tsv'))) {
    console.log(`detection-rspamd: corpus not found at ${corpusDir}; nothing to measure, skipping`);
    return;
  }
  let entries = readManifest(corpusDir).filter((e) => ['phishing', 'spam', 'ham'].includes(e.label));
  const limit = Number(values.limit ?? 0);
  if (limit > 0 && limit < entries.length) {
    const step = entries.length / limit;
    entries = Array.from({ length: limit }, (_, i) => entries[Math.floor(i * step)]);
  }
  const own = values.rspamd ? null : await startRspamd({ workers: 2 });
  const url = values.rspamd ?? own!.url;
  // our own rspamd knows the corpus_replay settings (DATE_IN_PAST off: archived mail is old by now)
  const rspamd = new RspamdClient({
    url,
    timeoutMs: 30_000,
    maxConnections: CONCURRENCY,
    ...(own ? { settingsId: 'corpus_replay' } : {}),
  });
  const outcomes: Outcome[] = [];
  let failures = 0;
  const started = Date.now();
  try {
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < entries.length) {
          const e = entries[next++];
          const bytes = readFileSync(path.join(corpusDir, e.path));
          let level = 0;
          let from = '';
          let peer: ReturnType<typeof client> = { ip: '192.0.2.1', helo: null, rdns: null };
          try {
            const parsed = await parseMessage(bytes);
            const rp = headerValue(parsed.headers, 'return-path');
            from = (/<([^<>]*)>/.exec(rp)?.[1] ?? rp).trim().toLowerCase();
            peer = client(parsed.headers);
            // no Return-Path: no envelope known, not the null sender
            level = adaptiveLevel(evaluateAdaptive({ parsed, sender: rp ? from : null, avSignatureVersion: null }));
          } catch {
            // an unparsable message still goes to rspamd; the adaptive rules give it level 0
          }
          let answer: RspamdAnswer | null = null;
          try {
            answer = await rspamd.check(bytes, bytes.length, {
              from,
              rcpts: ['user@corpus.test'],
              ip: peer.ip,
              helo: peer.helo,
              hostname: peer.rdns,
              queueId: String(next),
              mtaName: 'gw.corpus.test',
            });
          } catch {
            failures++;
          }
          outcomes.push({ label: e.label, level, rspamd: answer });
        }
      }),
    );
  } finally {
    rspamd.close();
    await own?.stop();
  }
  const elapsed = Date.now() - started;

  type Judge = (o: Outcome) => boolean;
  const adaptive: Judge = (o) => o.level >= THRESHOLD;
  const rspamdSpam: Judge = (o) => !!o.rspamd && o.rspamd.class !== 'ham';
  const rspamdReject: Judge = (o) => o.rspamd?.class === 'reject';
  const columns: Array<[string, Judge]> = [
    [`adaptive rules alone (level ≥ ${THRESHOLD})`, adaptive],
    ['rspamd alone (add header or more)', rspamdSpam],
    ['rspamd alone (reject)', rspamdReject],
    ['adaptive + rspamd (either)', (o) => adaptive(o) || rspamdSpam(o)],
    ['adaptive + rspamd reject (either)', (o) => adaptive(o) || rspamdReject(o)],
  ];
  const rate = (label: string, judge: Judge) => {
    const of = outcomes.filter((o) => o.label === label);
    const n = of.filter(judge).length;
    return { caught: n, total: of.length, rate: of.length ? Math.round((n / of.length) * 10000) / 100 : 0 };
  };
  const rows = columns.map(([name, judge]) => ({
    name,
    phishing: rate('phishing', judge),
    spam: rate('spam', judge),
    ham: rate('ham', judge),
  }));
  const actions: Record<string, Record<string, number>> = {};
  for (const o of outcomes) {
    const a = o.rspamd?.action ?? 'failed';
    actions[o.label] ??= {};
    actions[o.label][a] = (actions[o.label][a] ?? 0) + 1;
  }
  // what made rspamd flag ham: the symbols with a positive score, by how many false positives carry them
  const hamSymbols: Record<string, number> = {};
  for (const o of outcomes.filter((x) => x.label === 'ham' && rspamdSpam(x)))
    for (const sym of o.rspamd!.symbols.filter((x) => x.score > 0))
      hamSymbols[sym.name] = (hamSymbols[sym.name] ?? 0) + 1;
  const hamTop = Object.entries(hamSymbols)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 10);
  if (values.json) {
    console.log(
      JSON.stringify(
        {
          corpus: corpusDir,
          rspamd: url,
          messages: outcomes.length,
          failures,
          rows,
          actions,
          hamFalsePositiveSymbols: hamTop,
          elapsedMs: elapsed,
        },
        null,
        2,
      ),
    );
    return;
  }
  console.log(
    `Adaptive rules and rspamd (${own ? 'the test rspamd: local rules only, no network modules' : url}), ${outcomes.length} messages from ${corpusDir} (${elapsed} ms, ${failures} rspamd failures)`,
  );
  console.log('\n| | phishing caught | spam caught | ham false positives |');
  console.log('|---|---|---|---|');
  const cell = (x: { caught: number; total: number; rate: number }) =>
    `${x.caught}/${x.total} (${x.rate.toFixed(2)} %)`;
  for (const r of rows) console.log(`| ${r.name} | ${cell(r.phishing)} | ${cell(r.spam)} | ${cell(r.ham)} |`);
  console.log('\nrspamd actions per label:');
  for (const [label, a] of Object.entries(actions)) console.log(`  ${label}: ${JSON.stringify(a)}`);
  console.log(`symbols on ham rspamd flagged: ${hamTop.map(([n, c]) => `${n} ${c}`).join(', ') || '-'}`);
}

await main();
