import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { tempDir } from './helpers/peers.ts';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import MailComposer from 'nodemailer/lib/mail-composer';
import { ParsePool, SMALL_MESSAGE_BYTES } from '../src/mime/pool.ts';
import { parseMessage } from '../src/mime/parse.ts';
import { defaultParseLimits, ParseTimeoutError } from '../src/mime/types.ts';

function build(opts: Record<string, unknown>): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    new MailComposer({ from: 'a@x.test', to: 'b@y.test', ...opts })
      .compile()
      .build((e, m) => (e ? reject(e) : resolve(m))),
  );
}

test('a worker thread parses large messages, from memory or a spool file range, exactly as the event loop would', async () => {
  const msg = await build({
    subject: 'Big one',
    html: '<p>see <a href="https://files.example.co.uk/x">the files</a></p>',
    attachments: [{ filename: 'blob.bin', content: randomBytes(200 * 1024) }],
  });
  assert.ok(msg.length > SMALL_MESSAGE_BYTES);
  const pool = new ParsePool(1);
  try {
    const expected = await parseMessage(msg, defaultParseLimits);
    const fromBytes = await pool.parse({ bytes: msg }, defaultParseLimits);
    assert.deepEqual(fromBytes, expected);
    // the same message at an offset inside a bigger file, as in a spool segment
    const file = path.join(tempDir('bw-pool-'), 'seg.log');
    const prefix = Buffer.from('envelope and other records\n');
    writeFileSync(file, Buffer.concat([prefix, msg, Buffer.from('NEXT RECORD')]));
    const fromFile = await pool.parse({ file, start: prefix.length, size: msg.length }, defaultParseLimits);
    assert.deepEqual(fromFile, expected);
    assert.equal(fromFile.attachments[0].name, 'blob.bin');
    assert.equal(fromFile.urls[0].domain, 'example.co.uk');
  } finally {
    await pool.close();
  }
});

test('a parse timeout in the worker comes back as ParseTimeoutError', async () => {
  const msg = await build({
    subject: 'x',
    text: 'y'.repeat(100),
    attachments: [{ filename: 'a.bin', content: randomBytes(3 * 1024 * 1024) }],
  });
  const pool = new ParsePool(1);
  try {
    await assert.rejects(
      pool.parse({ bytes: msg }, { ...defaultParseLimits, timeoutMs: 0 }),
      (e: Error) => e instanceof ParseTimeoutError,
    );
  } finally {
    await pool.close();
  }
});

test('the parse worker scores with the bundle generation it was sent, exactly as the engine would on the event loop', async () => {
  const { OutbreakEngine } = await import('../src/outbreak/engine.ts');
  const { parseBundle } = await import('../src/outbreak/rules.ts');
  const rule = (id: string, condition: unknown) => ({
    id,
    level: 4,
    category: 'phish',
    description: `rule ${id}`,
    published: '2025-01-01T00:00:00Z',
    condition,
  });
  const bundleOf = (version: number, rules: unknown[]) => {
    const r = parseBundle({ version, published: '2025-01-01T00:00:00Z', rules });
    assert.ok('bundle' in r);
    return r.bundle;
  };
  const msg = await build({
    subject: 'Your account is suspended — verify your password now',
    html: '<p>Log in at <a href="https://login.evil.example/verify">https://paypal.com/signin</a> to avoid closure</p>',
    attachments: [{ filename: 'invoice.pdf.exe', content: randomBytes(2048) }],
  });
  const engine = new OutbreakEngine(true);
  const pool = new ParsePool(1);
  try {
    const request = (generation: number | null) => ({
      generation,
      adaptive: true,
      sender: 'a@x.test',
      avSignatureVersion: null,
      bypassExtensions: [],
      truncateTo: null,
    });
    const expectedFor = async () =>
      engine.score({
        parsed: await parseMessage(msg, defaultParseLimits),
        sender: 'a@x.test',
        avSignatureVersion: null,
      }).hits;
    // no bundle: adaptive rules only
    let job = pool.parseAndScore({ bytes: msg }, defaultParseLimits, { request: request(null), rules: null });
    assert.deepEqual(await job.parsed, await parseMessage(msg, defaultParseLimits));
    let scored = await job.score;
    assert.ok(scored && scored.hits.length > 0);
    assert.deepEqual(
      [...scored.hits].sort((a, b) => a.id.localeCompare(b.id)),
      [...(await expectedFor())].sort((a, b) => a.id.localeCompare(b.id)),
    );
    // two generations of a bundle with the same version: each request is scored with its own
    for (const rules of [
      [rule('OUTBREAK_SUBJECT', { subject: ['account is suspended'] })],
      [rule('OUTBREAK_EXE', { attachment: { extension: ['exe'] } })],
    ]) {
      engine.install(bundleOf(7, rules));
      const b = engine.bundle!;
      job = pool.parseAndScore({ bytes: msg }, defaultParseLimits, {
        request: request(b.generation),
        rules: { type: 'rules', generation: b.generation, version: b.version, rules: b.source },
      });
      await job.parsed;
      scored = await job.score;
      assert.ok(scored);
      assert.equal(scored.generation, b.generation);
      const ids = (hits: Array<{ id: string }>) => hits.map((h) => h.id).sort();
      assert.deepEqual(ids(scored.hits), ids(await expectedFor()));
      assert.ok(ids(scored.hits).includes(rules[0].id));
    }
  } finally {
    await pool.close();
  }
});

test('a score asked for with a bundle generation the worker was never sent comes back null (the stage then scores itself)', async () => {
  const msg = await build({ subject: 'x', text: 'hello' });
  const pool = new ParsePool(1);
  try {
    const job = pool.parseAndScore({ bytes: msg }, defaultParseLimits, {
      request: {
        generation: null,
        adaptive: true,
        sender: '',
        avSignatureVersion: null,
        bypassExtensions: [],
        truncateTo: null,
      },
      rules: null,
    });
    await job.parsed;
    // a score asked for with a generation the worker was never sent comes back null: the stage scores itself
    const unknown = pool.parseAndScore({ bytes: msg }, defaultParseLimits, {
      request: {
        generation: 999_999,
        adaptive: true,
        sender: '',
        avSignatureVersion: null,
        bypassExtensions: [],
        truncateTo: null,
      },
      rules: null,
    });
    await unknown.parsed;
    assert.equal(await unknown.score, null);
    assert.ok(await job.score);
    const again = await pool.parse({ bytes: msg }, defaultParseLimits);
    assert.equal(again.subject, 'x');
  } finally {
    await pool.close();
  }
});
