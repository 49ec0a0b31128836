// Outbreak rule evaluation: 2,000 generated rules against ~200 parsed messages, with the index and, as the reference
// in the same run, a linear check of every rule (phrases searched one by one). Standalone:
//   ./node_modules/.bin/node bench/outbreak-rules.ts        (BENCH_QUICK=1 for a short run)
import { createHash } from 'node:crypto';
import { zipSync } from 'fflate';
import MailComposer from 'nodemailer/lib/mail-composer';
import { parseMessage } from '../src/mime/parse.ts';
import { compileRules, parseBundle, type CompiledRules, type Condition } from '../src/outbreak/rules.ts';
import type { MessageFacts } from '../src/outbreak/types.ts';

/** Deterministic pseudo-random numbers, so every run measures the same rules and messages. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const WORDS =
  'invoice payment overdue meeting report quarterly update password reset account verify shipment delivery order receipt holiday party budget review contract urgent action required security alert newsletter offer discount wire transfer gift card bank statement tax refund parcel customs fee suspended mailbox quota exceeded'.split(
    ' ',
  );
const SCAM_WORDS =
  'kindly beneficiary inheritance barrister unclaimed lottery winnings dormant consignment diplomatic courier remittance clearance certificate activation deactivation reactivate unusual sign-in attempt confirm identity immediately within 24 hours prize claim bitcoin wallet recovery'.split(
    ' ',
  );
const TLDS = ['com', 'net', 'org', 'info', 'co.uk', 'de', 'ru', 'top', 'xyz', 'io'];
const BAD_EXT = ['exe', 'scr', 'js', 'vbs', 'iso', 'img', 'lnk', 'hta', 'docm', 'xlsm', 'jar', 'bat', 'cmd', 'ps1'];
const GOOD_EXT = ['pdf', 'docx', 'xlsx', 'png', 'jpg', 'txt', 'csv', 'pptx'];
const SENDER_DOMAINS = ['partner.com', 'supplier.net', 'newsletter.io', 'bank.co.uk', 'shop.de', 'example.org'];

interface World {
  rand: () => number;
  pick<T>(xs: readonly T[]): T;
  /** domains rules name; messages link to some of them */
  badDomains: string[];
  badHashes: string[];
  phrases: string[];
}

function world(seed: number): World {
  const rand = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const label = (): string =>
    Array.from({ length: 6 + Math.floor(rand() * 8) }, () => String.fromCharCode(97 + Math.floor(rand() * 26))).join(
      '',
    );
  const badDomains = Array.from({ length: 6000 }, () => `${label()}.${pick(TLDS)}`);
  const badHashes = Array.from({ length: 8000 }, (_, i) =>
    createHash('sha256').update(`bad-${seed}-${i}`).digest('hex'),
  );
  // campaign phrases use words ordinary mail here never does, as real campaign phrases rarely occur by chance
  const phrases = Array.from({ length: 800 }, () =>
    Array.from({ length: 2 + Math.floor(rand() * 3) }, () => pick(SCAM_WORDS)).join(' '),
  );
  return { rand, pick, badDomains, badHashes, phrases };
}

function some<T>(w: World, xs: readonly T[], min: number, max: number): T[] {
  return Array.from({ length: min + Math.floor(w.rand() * (max - min + 1)) }, () => w.pick(xs));
}

/** `count` rules shaped like a real feed (for the SMTP bench's outbreak rows). */
export function benchRules(count: number, seed = 42): Array<Record<string, unknown>> {
  return generateRules(world(seed), count);
}

/** A rule mix shaped like a real feed: mostly file and URL campaigns, some phrases, some compound rules. */
function generateRules(w: World, count: number): Array<Record<string, unknown>> {
  const rules: Array<Record<string, unknown>> = [];
  for (let i = 0; i < count; i++) {
    const r = w.rand();
    let condition: Condition;
    let category = 'malware';
    if (r < 0.25) {
      const ext = w.pick(BAD_EXT);
      condition = {
        attachment: { extension: [ext], name: [`${w.pick(WORDS)}*.${ext}`, `*${w.pick(WORDS)}_???.${ext}`] },
      };
      category = 'virus';
    } else if (r < 0.4) {
      const leaf = { sha256: some(w, w.badHashes, 5, 50) };
      condition = w.rand() < 0.5 ? { attachment: leaf } : { member: leaf };
      category = 'virus';
    } else if (r < 0.62) {
      condition =
        w.rand() < 0.5
          ? { url: { domain: some(w, w.badDomains, 1, 20) } }
          : { url: { host: some(w, w.badDomains, 1, 5).map((d) => (w.rand() < 0.5 ? '.' + d : 'login.' + d)) } };
      category = 'phish';
    } else if (r < 0.77) {
      condition = w.rand() < 0.4 ? { subject: some(w, w.phrases, 1, 4) } : { body: some(w, w.phrases, 1, 4) };
      category = 'scam';
    } else if (r < 0.85) {
      condition = {
        all: [
          { attachment: { extension: ['zip', 'rar', '7z'] } },
          { member: { extension: some(w, BAD_EXT, 1, 3) } },
          { subject: some(w, w.phrases, 1, 3) },
        ],
      };
      category = 'virus';
    } else if (r < 0.92) {
      condition = {
        any: [{ url: { domain: some(w, w.badDomains, 1, 5) } }, { body: some(w, w.phrases, 1, 2) }],
      };
      category = 'phish';
    } else if (r < 0.96) {
      condition = {
        all: [
          { url: { path: [`/${w.pick(WORDS)}/*`, `*/${w.pick(WORDS)}.php`] } },
          { not: { sender: [`.${w.pick(SENDER_DOMAINS)}`] } },
        ],
      };
      category = 'phish';
    } else {
      condition = {
        all: [
          { avSignatureOlderThan: 27000 + Math.floor(w.rand() * 200) },
          { attachment: { extension: some(w, BAD_EXT, 1, 4) } },
        ],
      };
    }
    rules.push({
      id: `OUTBREAK_${String(i).padStart(7, '0')}`,
      level: 1 + Math.floor(w.rand() * 5),
      category,
      description: `generated rule ${i}`,
      published: '2025-01-01T00:00:00Z',
      condition,
    });
  }
  return rules;
}

function composeMessage(opts: Record<string, unknown>): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    new MailComposer({ to: 'user@corp.example', ...opts })
      .compile()
      .build((err, msg) => (err ? reject(err) : resolve(msg))),
  );
}

/** Ordinary mail with, now and then, something a rule names (a domain, a phrase, a bad file). */
async function generateMessages(w: World, count: number): Promise<MessageFacts[]> {
  const out: MessageFacts[] = [];
  for (let i = 0; i < count; i++) {
    const text = (n: number): string => Array.from({ length: n }, () => w.pick(WORDS)).join(' ');
    const links = Array.from({ length: Math.floor(w.rand() * 12) }, () => {
      const domain =
        w.rand() < 0.08 ? w.pick(w.badDomains) : `${w.pick(['www', 'cdn', 'mail'])}.${w.pick(SENDER_DOMAINS)}`;
      return `https://${domain}/${w.pick(WORDS)}/${w.pick(WORDS)}${w.rand() < 0.3 ? '.php' : ''}?id=${i}`;
    });
    const phraseIn = w.rand() < 0.1 ? ` ${w.pick(w.phrases)} ` : ' ';
    const paragraphs = Array.from({ length: 5 + Math.floor(w.rand() * 40) }, () => text(40));
    const attachments: Array<{ filename: string; content: Buffer }> = [];
    const nAtt = w.rand() < 0.4 ? 1 + Math.floor(w.rand() * 2) : 0;
    for (let a = 0; a < nAtt; a++) {
      const kind = w.rand();
      if (kind < 0.5) {
        attachments.push({ filename: `${w.pick(WORDS)}.${w.pick(GOOD_EXT)}`, content: Buffer.from(text(300)) });
      } else if (kind < 0.8) {
        const inner = `${w.pick(WORDS)}_${100 + a}.${w.rand() < 0.5 ? w.pick(BAD_EXT) : w.pick(GOOD_EXT)}`;
        const zip = zipSync({ [inner]: Buffer.from(text(200)), 'readme.txt': Buffer.from(text(20)) });
        attachments.push({ filename: `${w.pick(WORDS)}.zip`, content: Buffer.from(zip) });
      } else {
        attachments.push({ filename: `${w.pick(WORDS)}${i}_abc.${w.pick(BAD_EXT)}`, content: Buffer.from(text(100)) });
      }
    }
    const raw = await composeMessage({
      from: `Someone <someone@${w.pick(SENDER_DOMAINS)}>`,
      subject: w.rand() < 0.1 ? `Re: ${w.pick(w.phrases)}` : `${text(3)} ${i}`,
      text: paragraphs.join('\n\n') + phraseIn + links.join('\n'),
      html: `<html><body>${paragraphs.map((p) => `<p>${p}</p>`).join('')}${links.map((l) => `<a href="${l}">${text(2)}</a>`).join(' ')}</body></html>`,
      attachments,
    });
    out.push({
      parsed: await parseMessage(raw),
      sender: `bounce@${w.pick(SENDER_DOMAINS)}`,
      avSignatureVersion: w.rand() < 0.5 ? 27000 + Math.floor(w.rand() * 300) : null,
    });
  }
  return out;
}

export interface EngineFigures {
  compileMs: number;
  evaluationsPerSec: number;
  p50Us: number;
  p99Us: number;
}

export interface RulesBenchResult {
  rules: number;
  unindexedRules: number;
  messages: number;
  /** mean message size in bytes */
  meanMessageBytes: number;
  hitsPerMessage: number;
  indexed: EngineFigures;
  linear: EngineFigures;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function measure(engine: CompiledRules, messages: MessageFacts[], minMs: number, compileMs: number): EngineFigures {
  const samples: number[] = [];
  const started = performance.now();
  let evaluations = 0;
  // one untimed pass so the JIT has seen every path
  for (const m of messages) engine.evaluate(m);
  do {
    for (const m of messages) {
      const t = performance.now();
      engine.evaluate(m);
      samples.push((performance.now() - t) * 1000);
      evaluations++;
    }
  } while (performance.now() - started < minMs);
  const elapsed = samples.reduce((a, b) => a + b, 0) / 1e6;
  samples.sort((a, b) => a - b);
  return {
    compileMs,
    evaluationsPerSec: evaluations / elapsed,
    p50Us: percentile(samples, 50),
    p99Us: percentile(samples, 99),
  };
}

export async function runRulesBench(
  opts: { rules?: number; messages?: number; minMs?: number } = {},
): Promise<RulesBenchResult> {
  const ruleCount = opts.rules ?? 2000;
  const messageCount = opts.messages ?? 200;
  const minMs = opts.minMs ?? 2000;
  const w = world(1234);
  const raw = generateRules(w, ruleCount);
  const parsed = parseBundle({ version: 1, published: '2025-01-01T00:00:00Z', rules: raw });
  if ('errors' in parsed) throw new Error(`generated bundle invalid:\n${parsed.errors.slice(0, 10).join('\n')}`);
  const messages = await generateMessages(w, messageCount);

  let t = performance.now();
  const indexed = compileRules(parsed.bundle.rules);
  const indexedCompileMs = performance.now() - t;
  t = performance.now();
  const linear = compileRules(parsed.bundle.rules, { index: false });
  const linearCompileMs = performance.now() - t;

  let hits = 0;
  for (const m of messages) {
    const a = indexed.evaluate(m);
    const b = linear.evaluate(m);
    if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error('indexed and linear evaluation disagree');
    hits += a.length;
  }
  return {
    rules: indexed.size,
    unindexedRules: indexed.unindexed,
    messages: messages.length,
    meanMessageBytes: messages.reduce((s, m) => s + m.parsed.size, 0) / messages.length,
    hitsPerMessage: hits / messages.length,
    indexed: measure(indexed, messages, minMs, indexedCompileMs),
    linear: measure(linear, messages, minMs, linearCompileMs),
  };
}

if (import.meta.main) {
  const quick = process.env.BENCH_QUICK === '1';
  const r = await runRulesBench({ minMs: quick ? 300 : 2000 });
  const f = (n: number, d = 0): string =>
    n.toLocaleString('en', { maximumFractionDigits: d, minimumFractionDigits: d });
  console.log(
    `Outbreak rules: ${r.rules} rules (${r.unindexedRules} unindexed) × ${r.messages} parsed messages (mean ${f(r.meanMessageBytes / 1024, 1)} KB), ${f(r.hitsPerMessage, 2)} hits per message`,
  );
  console.log('| engine | compile ms | evaluations/s | p50 µs | p99 µs |');
  console.log('|---|---|---|---|---|');
  for (const [name, e] of [
    ['indexed', r.indexed],
    ['linear (reference)', r.linear],
  ] as const) {
    console.log(`| ${name} | ${f(e.compileMs, 1)} | ${f(e.evaluationsPerSec)} | ${f(e.p50Us, 1)} | ${f(e.p99Us, 1)} |`);
  }
}
