import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SMTPStream, fastFeedDataStream, originalFeedDataStream } from '../src/smtp/fast-data.ts';

/** Feeds DATA to an SMTPStream in the given chunks; returns the message and the commands after it. */
async function run(feed: unknown, chunks: Buffer[]): Promise<{ data: string; commands: string[]; bytes: number }> {
  const s: any = new (SMTPStream as any)();
  s._feedDataStream = feed;
  const commands: string[] = [];
  s.oncommand = (line: Buffer, next: () => void) => {
    commands.push(line.toString('latin1'));
    next();
  };
  const stream = s.startDataMode();
  const out: Buffer[] = [];
  stream.on('data', (d: Buffer) => out.push(d));
  const ended = new Promise<void>((r) => stream.on('end', () => r()));
  // the writes after the terminator wait for continue(), as in a session
  for (const c of chunks) s.write(c);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([ended, new Promise((r) => (timer = setTimeout(r, 20)))]);
  clearTimeout(timer);
  s.continue();
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  return { data: Buffer.concat(out).toString('latin1'), commands, bytes: s.dataBytes };
}

test('the native end-of-data search reads DATA exactly as smtp-server does, for any input and chunking', async () => {
  let seed = 11;
  const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  const pieces = ['\r\n', '.', '..', '\r\n.\r\n', '\n', '\r', 'a', 'text ', '\r\n..\r\n', '\r\n.x'];
  for (let n = 0; n < 1000; n++) {
    let body = '';
    const len = Math.floor(rand() * 30);
    for (let i = 0; i < len; i++) body += pieces[Math.floor(rand() * pieces.length)];
    // most cases end properly, with a command pipelined after the terminator
    const input = Buffer.from(body + (rand() < 0.8 ? '\r\n.\r\nQUIT\r\n' : ''), 'latin1');
    const chunks: Buffer[] = [];
    for (let at = 0; at < input.length;) {
      const step = 1 + Math.floor(rand() * (rand() < 0.5 ? 4 : 40));
      chunks.push(input.subarray(at, at + step));
      at += step;
    }
    const expected = await run(originalFeedDataStream, chunks);
    const actual = await run(fastFeedDataStream, chunks);
    assert.deepEqual(actual, expected, JSON.stringify(input.toString('latin1')));
  }
});
