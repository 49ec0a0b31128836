// A parse worker thread: parses message bytes (sent, or read from a spool file range) and returns the
// ParsedMessage; when the request asks for it, it then scores the parsed message with the outbreak
// rules (outbreak/offload.ts) and returns the hits in a second message. It also runs a deliver
// verdict's modification (flow/modification-job.ts: stripping, disclaimer, signed rewritten links,
// each URL judged by this worker's copy of the rules). Parsing, scoring and modifying run on the
// second core, not the event loop.
import { parentPort } from 'node:worker_threads';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { parseMessage } from './parse.ts';
import type { ParseLimits, ParsedMessage } from './types.ts';
import {
  WorkerScorer,
  type RulesMessage,
  type ScoreRequest,
  type ScoreResult,
  type UrlRulesRequest,
} from '../outbreak/offload.ts';
import { runModification, type ModificationJob, type ModificationOutcome } from '../flow/modification-job.ts';

/** Where a request's message bytes are: sent along, or a byte range of a spool file. */
export type MessageSource = { bytes: Uint8Array } | { file: string; start: number; size: number };

export type ParseRequest = { id: number; limits: ParseLimits; score: ScoreRequest | null } & MessageSource;

export type ModifyRequest = { id: number; modify: ModificationJob; urlRules: UrlRulesRequest } & MessageSource;

export type WorkerReply =
  | { id: number; parsed: ParsedMessage }
  | { id: number; error: { name: string; message: string } }
  | { id: number; score: ScoreResult | null }
  | { id: number; scoreError: string }
  /** null: the request's rule bundle is not here (the event loop modifies instead) */
  | { id: number; modified: ModificationOutcome | null };

const scorer = new WorkerScorer();
const reply = (r: WorkerReply, transfer?: ArrayBuffer[]): void => parentPort!.postMessage(r, transfer);

function asBuffer(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

async function readSource(src: MessageSource): Promise<Buffer> {
  if ('bytes' in src) return asBuffer(src.bytes);
  if (src.size === 0) return Buffer.alloc(0);
  const fh = await open(src.file, 'r');
  try {
    const buf = Buffer.allocUnsafe(src.size);
    let off = 0;
    while (off < src.size) {
      const { bytesRead } = await fh.read(buf, off, src.size - off, src.start + off);
      if (bytesRead === 0) throw new Error(`${src.file}: ${src.size - off} bytes short`);
      off += bytesRead;
    }
    return buf;
  } finally {
    await fh.close();
  }
}

async function modify(req: ModifyRequest): Promise<void> {
  const lookup = scorer.urlThreatLookup(req.urlRules);
  if (!lookup && req.modify.rewrite) {
    reply({ id: req.id, modified: null });
    return;
  }
  const outcome = runModification(await readSource(req), req.modify, lookup ?? (() => undefined));
  // the bytes move to the event loop without a copy when they own their memory
  const b = outcome.bytes;
  const own = b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer;
  reply({ id: req.id, modified: outcome }, own ? [b.buffer as ArrayBuffer] : undefined);
}

parentPort!.on('message', (req: ParseRequest | ModifyRequest | RulesMessage) => {
  if ('type' in req) {
    scorer.load(req);
    return;
  }
  if ('modify' in req) {
    modify(req).catch((err: Error) => reply({ id: req.id, error: { name: err.name, message: err.message } }));
    return;
  }
  const input =
    'bytes' in req
      ? asBuffer(req.bytes)
      : createReadStream(req.file, { start: req.start, end: req.start + req.size - 1, highWaterMark: 256 * 1024 });
  parseMessage(input, req.limits).then(
    (parsed) => {
      reply({ id: req.id, parsed });
      if (!req.score) return;
      try {
        reply({ id: req.id, score: scorer.score(parsed, req.score) });
      } catch (err) {
        reply({ id: req.id, scoreError: (err as Error).message });
      }
    },
    (err: Error) => reply({ id: req.id, error: { name: err.name, message: err.message } }),
  );
});
