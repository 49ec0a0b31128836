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
