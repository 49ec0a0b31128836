// smtp-server looks for the end of DATA ("\r\n.\r\n") and for escape dots with a JavaScript loop over
// every byte of the message, on the event loop. This replaces that loop with Buffer.indexOf("\n."),
// which finds the same positions natively; everything else (the start-of-data checks, the escape dot
// removal, the terminator handling, back-pressure) is the original code, unchanged, in the same order.
// Checked against the original on random input and random chunking in test/smtp-fast-data.test.ts.
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';

const END_SEQUENCE = Buffer.from('\r\n.\r\n');
const DOT_LINE = Buffer.from('.\r\n');
const LF_DOT = Buffer.from('\n.');

type FeedFn = (this: any, chunk: Buffer, done: () => void) => void;

const original: FeedFn = (SMTPStream as any).prototype._feedDataStream;

export const fastFeedDataStream: FeedFn = function (this: any, chunk, done) {
  // only called in data mode, which always has a stream
  const dataStream = this._dataStream;
  if (this._lastBytes && this._lastBytes.length) {
    chunk = Buffer.concat([this._lastBytes, chunk], this._lastBytes.length + chunk.length);
    this._lastBytes = false;
  }
  let len = chunk.length;
  // a first line of "." ends DATA; "." transmitted as ".." at the start is content (see the original)
  if (this._atDataStart && len >= 3 && Buffer.compare(chunk.subarray(0, 3), DOT_LINE) === 0) {
    this._endDataMode(false, chunk.subarray(3), done);
    return;
  }
  if (this._atDataStart && len >= 2 && chunk[0] === 0x2e && chunk[1] === 0x2e) {
    chunk = chunk.subarray(1);
    len--;
    this._atDataStart = false;
  }
  // the original visits i = 2 … len - 3 and stops at chunk[i - 1] = LF, chunk[i] = "."
  for (let lf = chunk.indexOf(LF_DOT, 1); lf >= 0 && lf + 1 < len - 2; lf = chunk.indexOf(LF_DOT, lf + 1)) {
    const i = lf + 1;
    if (Buffer.compare(chunk.subarray(i - 2, i + 3), END_SEQUENCE) === 0) {
      const buf = chunk.subarray(0, i);
      this._countDataBytes(buf.length);
      this._endDataMode(buf, chunk.subarray(i + 3), done);
      return;
    }
    if (chunk[i + 1] === 0x2e) {
      const buf = chunk.subarray(0, i);
      this._lastBytes = false;
      this._countDataBytes(buf.length);
      if (dataStream.writable) dataStream.write(buf);
      const rest = chunk.subarray(i + 1);
      setImmediate(() => this._feedDataStream(rest, done));
      return;
    }
  }
  this._lastBytes = chunk.length < 4 ? chunk : chunk.subarray(chunk.length - 4);
  if (this._lastBytes.length < chunk.length) {
    const buf = chunk.subarray(0, chunk.length - this._lastBytes.length);
    this._countDataBytes(buf.length);
    if (dataStream.writable) {
      const handled = dataStream.write(buf);
      if (!handled && !dataStream.destroyed) {
        const onDrain = (): void => {
          dataStream.removeListener('drain', onDrain);
          dataStream.removeListener('close', onDrain);
          done();
        };
        dataStream.once('drain', onDrain);
        dataStream.once('close', onDrain);
      } else return done();
    } else return done();
  } else return done();
};

let installed = false;

export function installFastDataSearch(): void {
  if (installed) return;
  installed = true;
  (SMTPStream as any).prototype._feedDataStream = fastFeedDataStream;
}

export { SMTPStream, original as originalFeedDataStream };
