// Real mail through the whole gateway: a deterministic sample of ../shared/corpus (every fixture of the
// small collections, every 20th message of the large ones) goes over SMTP into a file: route; each
// delivered file must be our Received: line plus exactly the bytes that were sent, and tracking must
// hold its record. Loopback only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { startTestGateway, testConfig } from './helpers/gateway.ts';

const CORPUS = path.resolve(import.meta.dirname, '../../shared/corpus');

function sample(): string[] {
  const rows = readFileSync(path.join(CORPUS, 'manifest.tsv'), 'utf8').trim().split('\n').slice(1);
  const out: string[] = [];
  rows.forEach((row, i) => {
    const [file, corpus] = row.split('\t');
    const small = corpus === 'flanker-messages' || corpus === 'spamscope-mails' || corpus === 'rspamd-messages';
    if (small || i % 20 === 0) out.push(path.join(CORPUS, file));
  });
  return out;
}

/** What a sending MTA puts on the wire: CRLF line ends (nodemailer's DataStream repairs bare CR/LF). */
function onTheWire(raw: Buffer): Buffer {
  const text = raw.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n');
  return Buffer.from(text.endsWith('\r\n') ? text : text + '\r\n', 'latin1');
}

function send(conn: SMTPConnection, from: string, to: string, message: Buffer): Promise<string> {
  return new Promise((resolve, reject) =>
    conn.send({ from, to: [to] } as any, message, (err: any, info: any) =>
      err ? reject(err) : resolve(String(info.response)),
    ),
  );
}

test('a sample of the real corpus passes through the gateway byte for byte', { timeout: 240_000 }, async (t) => {
  if (!existsSync(path.join(CORPUS, 'manifest.tsv'))) {
    t.skip(`corpus folder absent: ${CORPUS}`);
    return;
  }
  const files = sample();
  // Transport only: Outbreak Filters and the unscannable action (MIME torture fixtures) would (rightly)
  // hold or modify part of this real mail. One corpus message (spamscope-mails mail_malformed_3) holds
  // NUL bytes, refused by default (smtp.allowNul).
  const gw = await startTestGateway(
    testConfig({
      routes: { '*': ['file:delivered'] },
      outbreakFilters: { enabled: false },
      policies: { incoming: [{ name: 'default', unscannable: { mode: 'disabled' } }] },
      smtp: { allowNul: true },
    }),
  );
  const port = gw.port('incoming');
  try {
    const workers = 4;
    const results: Array<{ file: string; mid: number; sent: Buffer }> = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: workers }, async () => {
        const conn = new SMTPConnection({
          host: '127.0.0.1',
          port,
          ignoreTLS: true,
          allowInternalNetworkInterfaces: true,
          logger: false,
        } as any);
        await new Promise<void>((resolve, reject) => {
          conn.once('error', reject);
          conn.connect(() => resolve());
        });
        for (let i = next++; i < files.length; i = next++) {
          const sent = onTheWire(readFileSync(files[i]));
          const reply = await send(conn, 'corpus@src.test', 'bob@dst.test', sent);
          const mid = Number(/queued as MID (\d+)/.exec(reply)?.[1]);
          assert.ok(mid > 0, `${files[i]}: ${reply}`);
          results.push({ file: files[i], mid, sent });
        }
        conn.quit();
      }),
    );
    assert.equal(results.length, files.length);
    const dir = path.join(gw.dataDir, 'delivered');
    const deadline = Date.now() + 60_000;
    // (a delivery in progress is a .tmp file until it is renamed: count finished ones only)
    const finished = () => (existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.eml')).length : 0);
    while (Date.now() < deadline && finished() < results.length) await new Promise((r) => setTimeout(r, 100));
    let mismatched = 0;
    for (const r of results) {
      const got = readFileSync(path.join(dir, `${r.mid}.eml`));
      // our Received: header is the first field (folded lines start with a tab)
      let end = got.indexOf('\r\n') + 2;
      while (got[end] === 0x09) end = got.indexOf('\r\n', end) + 2;
      assert.match(got.subarray(0, end).toString('latin1'), /^Received: from .* \(Breakwater\) with ESMTP id \d+/s);
      if (!got.subarray(end).equals(r.sent)) mismatched++;
    }
    assert.equal(mismatched, 0, `${mismatched} message(s) changed on the way`);
    await gw.gateway.store.committed();
    const statuses = new Map<string, number>();
    for (const r of results) {
      const rec = gw.gateway.tracker.show(r.mid);
      assert.ok(rec, `tracking record for MID ${r.mid}`);
      statuses.set(rec.status, (statuses.get(rec.status) ?? 0) + 1);
    }
    assert.deepEqual([...statuses.keys()], ['delivered']);
    t.diagnostic(`${results.length} corpus messages delivered byte for byte`);
  } finally {
    await gw.stop();
  }
});
