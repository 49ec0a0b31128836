// Outbreak Filters message modification (src/outbreak/modify.ts): messages/s and latency for a
// 60 KB HTML message with ~20 links (subject tag, header fields, disclaimer, URL rewriting),
// next to a naive reference measured in the same run: a Buffer copy plus one regex replace of
// every href over the whole message. Not a test.
//   node bench/modify.ts        BENCH_QUICK=1 for a short run
import { createHmac, createSecretKey } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { modifyMessage, type ModifyOptions } from '../src/outbreak/modify.ts';

export interface ModifyBenchFigures {
  messagesPerSec: number;
  p50Ms: number;
  p99Ms: number;
}

export interface ModifyBenchResult {
  messageBytes: number;
  links: number;
  iterations: number;
  modify: ModifyBenchFigures;
  /** Buffer.from(bytes) plus a single regex replace over the whole message */
  reference: ModifyBenchFigures;
  /** the same message with its HTML part quoted-printable (decoded and re-encoded) */
  modifyQuotedPrintable: ModifyBenchFigures;
  rewrittenUrls: number;
}

const CLICK = 'https://click.breakwater.test/c/';
const KEY = createSecretKey(Buffer.from('bench-key-bench-key-bench-key-32'));

/** A click-time token like the real one: the URL and a keyed MAC, base64url. */
function wrap(url: string): string {
  const mac = createHmac('sha256', KEY).update(url).digest().subarray(0, 16);
  return CLICK + Buffer.concat([mac, Buffer.from(url)]).toString('base64url');
}

/** A multipart/alternative newsletter-like message: ~60 KB of HTML and a text part, each with `links` links. */
export function benchMessage(
  links = 20,
  htmlBytes = 60 * 1024,
  htmlEncoding: '8bit' | 'quoted-printable' = '8bit',
): Buffer {
  const paragraph =
    'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et ' +
    'dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip. ';
  const blocks: string[] = [];
  let size = 0;
  let i = 0;
  while (size < htmlBytes) {
    const link =
      i < links
        ? ` <a href="https://shop${i % 7}.example.net/offer/${i}?utm_source=mail&amp;utm_campaign=${i}" style="color:#0645ad">Offer ${i}</a>`
        : '';
    const block = `<tr><td style="padding:8px;font-family:Arial,sans-serif"><p>${paragraph}${link}</p></td></tr>\n`;
    blocks.push(block);
    size += block.length;
    i++;
  }
  while (i < links) {
    blocks.push(`<p><a href="https://shop.example.net/more/${i}">More ${i}</a></p>\n`);
    i++;
  }
  const html = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Offers</title></head><body style="margin:0"><table width="100%">\n${blocks.join('')}</table></body></html>\n`;
  const htmlBody =
    htmlEncoding === '8bit'
      ? html.replace(/\n/g, '\r\n')
      : html
          .replace(/=/g, '=3D')
          .split('\n')
          .map((line) => line.match(/.{1,73}(?:=3D)?/g)?.join('=\r\n') ?? '')
          .join('\r\n');
  const text = Array.from({ length: links }, (_, n) => `Offer ${n}: https://shop${n % 7}.example.net/offer/${n}`).join(
    '\r\n',
  );
  return Buffer.from(
    [
      'Received: from mx.example.net (mx.example.net [192.0.2.25]) by gw.example.org with ESMTPS; Tue, 02 Jun 2026 10:00:00 +0000',
      'From: "Shop" <news@example.net>',
      'To: rcpt@example.org',
      'Subject: This week only: offers for you',
      'Date: Tue, 02 Jun 2026 10:00:00 +0000',
      'Message-ID: <bench-1@example.net>',
      'MIME-Version: 1.0',
      'Content-Type: multipart/alternative; boundary="=_bench_boundary"',
      '',
      '--=_bench_boundary',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 7bit',
      '',
      text,
      '--=_bench_boundary',
      'Content-Type: text/html; charset=utf-8',
      `Content-Transfer-Encoding: ${htmlEncoding}`,
      '',
      htmlBody,
      '--=_bench_boundary--',
      '',
    ].join('\r\n'),
  );
}

export const benchOptions: ModifyOptions = {
  subject: { mode: 'prepend', text: '[SUSPICIOUS MESSAGE]' },
  addHeaders: [
    { name: 'X-Breakwater-Outbreak-Status', value: 'yes, level 3, phish - url' },
    { name: 'X-Breakwater-Outbreak-Description', value: 'Link to a recently seen phishing domain' },
  ],
  disclaimer: {
    text: 'CAUTION: this message may be a phishing attempt. Do not enter credentials on linked pages.',
    html: '<div style="border:1px solid #c00;padding:6px">CAUTION: this message may be a phishing attempt.</div>',
  },
  rewrite: {
    mode: 'all',
    bypassDomains: ['example.org'],
    wrap,
    isOwnLink: (url) => url.startsWith(CLICK),
  },
};

const NAIVE_HREF = /href="(https?:[^"]*)"/g;

/** The reference: copy the bytes and rewrite every href with one regex over the whole message. */
function naive(bytes: Buffer): Buffer {
  const copy = Buffer.from(bytes);
  return Buffer.from(
    copy.toString('latin1').replace(NAIVE_HREF, (_m, url: string) => `href="${wrap(url)}"`),
    'latin1',
  );
}

function measure(iterations: number, fn: () => unknown): ModifyBenchFigures {
  const times = new Float64Array(iterations);
  const start = performance.now();
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    fn();
    times[i] = performance.now() - t0;
  }
  const total = performance.now() - start;
  times.sort();
  const at = (q: number): number => times[Math.min(iterations - 1, Math.floor(q * iterations))];
  return { messagesPerSec: iterations / (total / 1000), p50Ms: at(0.5), p99Ms: at(0.99) };
}

export function runModifyBench(iterations = process.env.BENCH_QUICK === '1' ? 300 : 3000): ModifyBenchResult {
  const bytes = benchMessage();
  const check = modifyMessage(bytes, benchOptions);
  if (!check.changed || check.disclaimerParts !== 2 || check.rewrittenUrls.length < 20) {
    throw new Error(`bench message not modified as expected: ${JSON.stringify({ ...check, bytes: undefined })}`);
  }
  const warmup = Math.max(50, iterations >> 3);
  measure(warmup, () => modifyMessage(bytes, benchOptions));
  measure(warmup, () => naive(bytes));
  // alternate the two so that neither gets a warmer machine
  const half = iterations >> 1;
  const m1 = measure(half, () => modifyMessage(bytes, benchOptions));
  const r1 = measure(half, () => naive(bytes));
  const m2 = measure(half, () => modifyMessage(bytes, benchOptions));
  const r2 = measure(half, () => naive(bytes));
  const qp = benchMessage(20, 60 * 1024, 'quoted-printable');
  measure(warmup, () => modifyMessage(qp, benchOptions));
  const q = measure(half * 2, () => modifyMessage(qp, benchOptions));
  const mean = (a: ModifyBenchFigures, b: ModifyBenchFigures): ModifyBenchFigures => ({
    messagesPerSec: (a.messagesPerSec + b.messagesPerSec) / 2,
    p50Ms: (a.p50Ms + b.p50Ms) / 2,
    p99Ms: Math.max(a.p99Ms, b.p99Ms),
  });
  return {
    messageBytes: bytes.length,
    links: check.rewrittenUrls.length,
    iterations: half * 2,
    modify: mean(m1, m2),
    reference: mean(r1, r2),
    modifyQuotedPrintable: q,
    rewrittenUrls: check.rewrittenUrls.length,
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const r = runModifyBench();
  const f = (n: number, d = 0): string => n.toFixed(d);
  console.log(
    `Outbreak modification: ${f(r.messageBytes / 1024)} KB multipart/alternative (8bit HTML + text, 20 links each: ${r.links} distinct URLs wrapped with HMAC tokens), ${r.iterations} runs each`,
  );
  console.log('| | messages/s | p50 ms | p99 ms |');
  console.log('|---|---|---|---|');
  console.log(
    `| modifyMessage (subject, headers, disclaimer, rewrite) | ${f(r.modify.messagesPerSec)} | ${f(r.modify.p50Ms, 3)} | ${f(r.modify.p99Ms, 3)} |`,
  );
  console.log(
    `| modifyMessage, HTML part quoted-printable | ${f(r.modifyQuotedPrintable.messagesPerSec)} | ${f(r.modifyQuotedPrintable.p50Ms, 3)} | ${f(r.modifyQuotedPrintable.p99Ms, 3)} |`,
  );
  console.log(
    `| reference: Buffer copy + one regex href replace | ${f(r.reference.messagesPerSec)} | ${f(r.reference.p50Ms, 3)} | ${f(r.reference.p99Ms, 3)} |`,
  );
}
