// A parse worker thread: parses message bytes (sent, or read from a spool file range) and returns the
// ParsedMessage. Used for larger messages so parsing runs on the second core, not the event loop.
import { parentPort } from 'node:worker_threads';
import { createReadStream } from 'node:fs';
import { parseMessage } from './parse.ts';
import type { ParseLimits } from './types.ts';

export type ParseRequest =
  | { id: number; bytes: Uint8Array; limits: ParseLimits }
  | { id: number; file: string; start: number; size: number; limits: ParseLimits };

parentPort!.on('message', (req: ParseRequest) => {
  const input =
    'bytes' in req
      ? Buffer.from(req.bytes.buffer, req.bytes.byteOffset, req.bytes.byteLength)
      : createReadStream(req.file, { start: req.start, end: req.start + req.size - 1, highWaterMark: 256 * 1024 });
  parseMessage(input, req.limits).then(
    (parsed) => parentPort!.postMessage({ id: req.id, parsed }),
    (err: Error) => parentPort!.postMessage({ id: req.id, error: { name: err.name, message: err.message } }),
  );
});
