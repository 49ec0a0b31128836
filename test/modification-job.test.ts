// A deliver verdict's modification runs on a parse worker (flow/modification-job.ts via ParsePool.modify):
// the worker signs rewritten links with the click-time key and judges each URL with its own copy of the
// rule bundle, and its bytes are exactly what the event loop would produce.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { ParsePool } from '../src/mime/pool.ts';
import { OutbreakEngine } from '../src/outbreak/engine.ts';
import { BundleMessages } from '../src/outbreak/offload.ts';
import { parseBundle } from '../src/outbreak/rules/schema.ts';
import { runModification, type ModificationJob } from '../src/flow/modification-job.ts';
import { verifyClickToken } from '../src/clicktime/token.ts';
import { tempDir } from './helpers/peers.ts';

const KEY = randomBytes(32);
const FLAGGED = 'https://paypa1-login.com/signin?session=8812';
const PLAIN = 'https://example.org/news';

const message = Buffer.from(
  [
    'From: a@src.test',
    'To: b@dst.test',
    'Subject: account notice',
    'MIME-Version: 1.0',
    'Content-Type: text/html; charset=utf-8',
    '',
    `<p>Sign in <a href="${FLAGGED}">here</a> or read <a href="${PLAIN}">the news</a>.</p>`,
    '',
  ].join('\r\n'),
);

function engineWithUrlRule(): OutbreakEngine {
  const parsed = parseBundle({
    version: 7,
    published: '2026-12-01T00:00:00Z',
    rules: [
      {
        id: 'OUTBREAK_0000011',
        level: 3,
        category: 'phish',
        description: 'Fake sign-in page',
        published: '2026-12-01T00:00:00Z',
        condition: { url: { url: ['https://paypa1-login.com/signin*'] } },
      },
    ],
  });
  assert.ok('bundle' in parsed, JSON.stringify(parsed));
  const engine = new OutbreakEngine(false);
  engine.install(parsed.bundle);
  return engine;
}

function job(baseUrl: string): ModificationJob {
  return {
    strip: [],
    subject: { mode: 'prepend', text: '[Possible Phishing]' },
    addHeaders: [{ name: 'X-Breakwater-Outbreak-Status', value: 'level 3' }],
    disclaimer: null,
    rewrite: {
      mode: 'all',
      bypassDomains: [],
      signer: { key: KEY, baseUrl, lifetimeSeconds: 3600 },
      mid: 42,
      recipient: 'b@dst.test',
      messageThreat: { level: 3, ruleIds: ['OUTBREAK_0000011'] },
    },
    protectSigned: false,
    tags: ['[release]'],
  };
}

function tokens(bytes: Buffer, baseUrl: string): ReturnType<typeof verifyClickToken>[] {
  const re = new RegExp(`${baseUrl.replace(/[.:/]/g, '\\$&')}/c/([A-Za-z0-9_-]+)`, 'g');
  return [...bytes.toString('latin1').matchAll(re)].map((m) => verifyClickToken(KEY, m[1]));
}

test('a worker rewrites links with signed tokens carrying each URL’s threat under its copy of the rules', async () => {
  const engine = engineWithUrlRule();
  const rules = new BundleMessages(engine).current();
  assert.ok(rules);
  const pool = new ParsePool(1);
  try {
    const baseUrl = 'https://click.example.com';
    const out = await pool.modify(
      { bytes: message },
      job(baseUrl),
      { generation: rules.generation, adaptive: false },
      rules,
    );
    assert.ok(out, 'the worker modified the message');
    assert.ok(Buffer.isBuffer(out.bytes));
    assert.equal(out.changed, true);
    assert.equal(out.rewrittenUrls, 2);
    assert.equal(out.subjectChanged, true);
    const text = out.bytes.toString('latin1');
    assert.match(text, /^Subject: \[release\] \[Possible Phishing\] account notice\r$/m);
    assert.ok(!text.includes(FLAGGED) && !text.includes(PLAIN), 'no original link left');
    const payloads = tokens(out.bytes, baseUrl).map((t) => (t.ok ? t.payload : assert.fail('token does not verify')));
    assert.deepEqual(
      payloads.map((p) => [p.url, p.mid, p.recipient, p.urlThreat]),
      [
        [FLAGGED, 42, 'b@dst.test', { level: 3, ruleIds: ['OUTBREAK_0000011'] }],
        [PLAIN, 42, 'b@dst.test', undefined],
      ],
    );
    assert.deepEqual(payloads[0].messageThreat, { level: 3, ruleIds: ['OUTBREAK_0000011'] });

    // the same job on the event loop gives the same message (token expiry aside: same second, same bytes)
    const here = runModification(message, job(baseUrl), (url) => engine.urlThreat(url));
    const strip = (b: Buffer) => b.toString('latin1').replace(/\/c\/[A-Za-z0-9_-]+/g, '/c/T');
    assert.equal(strip(here.bytes), strip(out.bytes));
    assert.deepEqual(
      tokens(here.bytes, baseUrl).map((t) => t.ok && t.payload.urlThreat),
      payloads.map((p) => p.urlThreat),
    );
  } finally {
    await pool.close();
  }
});

test('a worker reads the copy from its spool file range', async () => {
  const file = path.join(tempDir('bw-modjob-'), 'msg');
  const prefix = Buffer.from('ENVELOPE JSON\n');
  writeFileSync(file, Buffer.concat([prefix, message, Buffer.from('TRAILER')]));
  const pool = new ParsePool(1);
  try {
    const out = await pool.modify(
      { file, start: prefix.length, size: message.length },
      { ...job('http://127.0.0.1:8080'), rewrite: null },
      { generation: null, adaptive: false },
      null,
    );
    assert.ok(out);
    assert.equal(out.rewrittenUrls, 0);
    const text = out.bytes.toString('latin1');
    assert.ok(text.includes(FLAGGED) && !text.includes('TRAILER') && !text.includes('ENVELOPE'));
    assert.match(text, /^X-Breakwater-Outbreak-Status: level 3\r$/m);
  } finally {
    await pool.close();
  }
});

test('a worker without the bundle a rewrite needs says so, and the caller modifies instead', async () => {
  const pool = new ParsePool(1);
  try {
    const out = await pool.modify(
      { bytes: message },
      job('https://click.example.com'),
      { generation: 99, adaptive: false },
      null, // never sent
    );
    assert.equal(out, null);
  } finally {
    await pool.close();
  }
  const closed = new ParsePool(1);
  await closed.close();
  assert.equal(
    await closed.modify({ bytes: message }, job('https://x.test'), { generation: null, adaptive: false }, null),
    null,
  );
});
