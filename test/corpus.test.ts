import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream, existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseMessage } from '../src/mime/parse.ts';
import type { ParseAnomaly } from '../src/mime/types.ts';

const CORPUS = path.resolve(import.meta.dirname, '../../shared/corpus');
/** per-message wall-clock bound, enforced by the parser's own timeout as well */
const PER_MESSAGE_MS = 5000;

function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, entry.name);
      if (entry.isDirectory()) {
        walk(p);
      } else if (entry.isFile()) {
        out.push(p);
      }
    }
  };
  walk(dir);
  return out.sort();
}

test('every corpus file parses from a stream, without throwing, within the time bound', async (t) => {
  if (!existsSync(CORPUS)) {
    t.skip(`corpus folder absent: ${CORPUS}`);
    return;
  }
  const files = listFiles(CORPUS);
  assert.ok(files.length > 0, 'corpus is empty');

  // warm up (lazy linkify compilation, file-type detectors, JIT) so "slowest" means something
  await parseMessage(
    Buffer.from(
      'Subject: warm-up\r\nContent-Type: multipart/mixed; boundary=w\r\n\r\n--w\r\nContent-Type: text/plain\r\n\r\n' +
        'https://warm.example.com/\r\n--w\r\nContent-Type: application/zip; name=w.zip\r\n\r\nPK\x05\x06' +
        '\0'.repeat(18) +
        '\r\n--w--\r\n',
      'latin1',
    ),
  );

  const started = performance.now();
  let slowest = { file: '', ms: 0, size: 0 };
  let bytes = 0;
  let attachments = 0;
  let urls = 0;
  let members = 0;
  const anomalies = new Map<ParseAnomaly, number>();
  const failures: string[] = [];

  for (const file of files) {
    const t0 = performance.now();
    try {
      const r = await parseMessage(createReadStream(file), { timeoutMs: PER_MESSAGE_MS });
      const ms = performance.now() - t0;
      if (ms > slowest.ms) {
        slowest = { file, ms, size: r.size };
      }
      if (ms > PER_MESSAGE_MS) {
        failures.push(`${path.relative(CORPUS, file)}: ${ms.toFixed(0)} ms`);
      }
      bytes += r.size;
      attachments += r.attachments.length;
      members += r.attachments.reduce((n, a) => n + a.members.length, 0);
      urls += r.urls.length;
      for (const a of r.anomalies) {
        anomalies.set(a, (anomalies.get(a) ?? 0) + 1);
      }
      assert.equal(r.size, statSync(file).size, `${file}: size`);
    } catch (err) {
      failures.push(`${path.relative(CORPUS, file)}: ${(err as Error)?.stack ?? String(err)}`);
    }
  }

  const total = performance.now() - started;
  t.diagnostic(
    `corpus: ${files.length} files, ${(bytes / 1024 / 1024).toFixed(1)} MiB in ${(total / 1000).toFixed(2)} s ` +
      `(avg ${(total / files.length).toFixed(2)} ms); slowest ${path.relative(CORPUS, slowest.file)} ` +
      `${slowest.ms.toFixed(1)} ms (${(slowest.size / 1024).toFixed(0)} KiB); ` +
      `${attachments} attachments, ${members} archive members, ${urls} urls; anomalies ` +
      [...anomalies].map(([k, v]) => `${k}=${v}`).join(' '),
  );
  assert.deepEqual(failures, []);
});
