// A parse worker thread: parses message bytes (sent, or read from a spool file range) and returns the
// ParsedMessage; when the request asks for it, it then scores the parsed message with the outbreak
// rules (outbreak/offload.ts) and returns the hits in a second message. Parsing and scoring run on the
// second core, not the event loop.
import { parentPort } from 'node:worker_threads';
import { createReadStream } from 'node:fs';
import { parseMessage } from './parse.ts';
import type { ParseLimits, ParsedMessage } from './types.ts';
import { WorkerScorer, type RulesMessage, type ScoreRequest, type ScoreResult } from '../outbreak/offload.ts';

export type ParseRequest =
  | { id: number; bytes: Uint8Array; limits: ParseLimits; score: ScoreRequest | null }
  | { id: number; file: string; start: number; size: number; limits: ParseLimits; score: ScoreRequest | null };

export type WorkerReply =
  | { id: number; parsed: ParsedMessage }
  | { id: number; error: { name: string; message: string } }
  | { id: number; score: ScoreResult | null }
  | { id: number; scoreError: string };

const scorer = new WorkerScorer();
const reply = (r: WorkerReply): void => parentPort!.postMessage(r);

parentPort!.on('message', (req: ParseRequest | RulesMessage) => {
  if ('type' in req) {
    scorer.load(req);
    return;
  }
  const input =
    'bytes' in req
      ? Buffer.from(req.bytes.buffer, req.bytes.byteOffset, req.bytes.byteLength)
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
