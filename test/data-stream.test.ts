import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DataStream, fastTransform, originalTransform } from '../src/delivery/data-stream.ts';

function run(transform: any, chunks: Buffer[]): Buffer {
  const s: any = new (DataStream as any)();
  s._transform = transform;
  const out: Buffer[] = [];
  s.on('data', (d: Buffer) => out.push(d));
  for (const c of chunks) s.write(c);
  s.end();
  return Buffer.concat(out);
}

test('the fast dot-stuffing path sends exactly what nodemailer would, for any input', () => {
  const alphabet = [0x0d, 0x0a, 0x2e, 0x41, 0x20];
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  for (let n = 0; n < 3000; n++) {
    // mostly well-formed CRLF text with dots, sometimes bare CR/LF
    const bytes: number[] = [];
    const len = Math.floor(rand() * 60);
    for (let i = 0; i < len; i++) {
      const r = rand();
      if (r < 0.25) bytes.push(0x0d, 0x0a);
      else if (r < 0.3) bytes.push(alphabet[Math.floor(rand() * alphabet.length)]);
      else if (r < 0.5) bytes.push(0x2e);
      else bytes.push(0x61);
    }
    const data = Buffer.from(bytes);
    const chunks: Buffer[] = [];
    for (let i = 0; i < data.length;) {
      const step = 1 + Math.floor(rand() * 9);
      chunks.push(data.subarray(i, i + step));
      i += step;
    }
    assert.deepEqual(
      run(fastTransform, chunks),
      run(originalTransform, chunks),
      JSON.stringify(data.toString('latin1')),
    );
  }
});

test('dots at line starts are doubled, also across chunk boundaries', () => {
  const out = run(fastTransform, [Buffer.from('.a\r\n'), Buffer.from('.b\r'), Buffer.from('\n..c\r\n')]);
  assert.equal(out.toString(), '..a\r\n..b\r\n...c\r\n.\r\n');
});
