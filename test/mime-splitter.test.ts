import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Transform } from 'node:stream';
import { Splitter, type SplitterChunk } from '@zone-eu/mailsplit';
import { FastSplitter } from '../src/mime/splitter.ts';

const CORPUS = path.resolve(import.meta.dirname, '../../shared/corpus');

/** What a splitter emits for these chunks: each object's type, its node's headers, and its bytes. */
async function split(s: Splitter, chunks: Buffer[]): Promise<string[]> {
  const out: string[] = [];
  const ids = new Map<unknown, number>();
  const id = (n: unknown): number => ids.get(n) ?? (ids.set(n, ids.size), ids.size - 1);
  s.on('data', (c: SplitterChunk) => {
    if (c.type === 'node')
      out.push(`node ${id(c)} ${c._headerlen} ${c.contentType} ${c.multipart} ${c.getHeaders().toString('base64')}`);
    else out.push(`${c.type} ${id(c.node)} ${Buffer.from(c.value).toString('base64')}`);
  });
  const stream = s as unknown as Transform;
  const done = new Promise<void>((resolve) => {
    stream.on('end', () => resolve());
    stream.on('error', (e: Error) => {
      out.push(`error ${e.message}`);
      resolve();
    });
  });
  for (const c of chunks) s.write(c);
  s.end();
  s.resume();
  await done;
  return out;
}

function chunked(buf: Buffer, rand: () => number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < buf.length;) {
    const step = 1 + Math.floor(rand() * (rand() < 0.3 ? 16 : 70_000));
    out.push(buf.subarray(at, at + step));
    at += step;
  }
  return out;
}

test('FastSplitter emits exactly what mailsplit does, on the corpus and crafted input, in any chunking', async (t) => {
  let seed = 5;
  const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  const inputs: Buffer[] = [
    Buffer.from(
      'Content-Type: multipart/mixed; boundary=b\r\n\r\npre\r\n--b\r\nContent-Type: text/plain\r\n\r\nline\nbare lf\r--b\r\n--b--\r\nepi\r\n',
    ),
    Buffer.from('Subject: x\n\nno crlf at all\n--x\n.\n'),
    Buffer.from('Content-Type: multipart/alternative; boundary="q"\r\n\r\n--q\r\n\r\n\r\n--q--'),
  ];
  if (existsSync(CORPUS)) {
    const files: string[] = [];
    const walk = (d: string): void => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.isFile() && !p.endsWith('.md') && !p.endsWith('.tsv')) files.push(p);
      }
    };
    walk(CORPUS);
    files.sort();
    // every 7th file keeps the test quick; the choice is fixed
    for (let i = 0; i < files.length; i += 7) inputs.push(readFileSync(files[i]));
  } else t.diagnostic(`corpus folder absent: ${CORPUS}`);
  for (const input of inputs) {
    const chunks = chunked(input, rand);
    const expected = await split(new Splitter(), chunks);
    const actual = await split(new FastSplitter(), chunks);
    assert.deepEqual(actual, expected);
  }
  t.diagnostic(`${inputs.length} messages compared`);
});
