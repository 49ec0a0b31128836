// nodemailer's DataStream (dot-stuffing and line-end repair on the way to a downstream server) looks at
// every byte in JavaScript: 16 % of the gateway's CPU with 2 MB messages. Mail we spool only has CRLF
// line ends (bare CR/LF is refused at ingress), so the common case needs nothing but "\n." searches,
// which Buffer.indexOf does natively. Chunks that contain a bare CR or LF take the original path, so
// the output is byte-for-byte what nodemailer would send (checked against it in test/data-stream.test.ts).
import DataStream from 'nodemailer/lib/smtp-connection/data-stream.js';

type TransformFn = (this: any, chunk: any, encoding: BufferEncoding, done: (err?: Error | null) => void) => void;

const DOT = Buffer.from('.');
const original: TransformFn = (DataStream as any).prototype._transform;

/** True when every LF in the chunk follows a CR and every CR (but a final one) precedes an LF. */
function onlyCrlf(chunk: Buffer, prev: number | false): boolean {
  if (prev === 0x0d && chunk[0] !== 0x0a) return false;
  for (let lf = chunk.indexOf(0x0a); lf >= 0; lf = chunk.indexOf(0x0a, lf + 1)) {
    const before = lf === 0 ? prev : chunk[lf - 1];
    if (before !== 0x0d) return false;
  }
  for (let cr = chunk.indexOf(0x0d); cr >= 0 && cr < chunk.length - 1; cr = chunk.indexOf(0x0d, cr + 1)) {
    if (chunk[cr + 1] !== 0x0a) return false;
  }
  return true;
}

export const fastTransform: TransformFn = function (this: any, chunk, encoding, done) {
  if (typeof chunk === 'string' || !chunk || !chunk.length) return original.call(this, chunk, encoding, done);
  const buf = chunk as Buffer;
  const prev: number | false = this.lastByte;
  if (!onlyCrlf(buf, prev)) return original.call(this, chunk, encoding, done);
  this.inByteCount += buf.length;
  const parts: Buffer[] = [];
  let last = 0;
  let out = 0;
  if (buf[0] === 0x2e && (prev === 0x0a || prev === false)) {
    parts.push(DOT);
    out += 1;
  }
  for (let i = buf.indexOf('\n.'); i >= 0; i = buf.indexOf('\n.', i + 2)) {
    parts.push(buf.subarray(last, i + 1), DOT);
    out += i + 1 - last + 1;
    last = i + 1;
  }
  if (parts.length) {
    parts.push(buf.subarray(last));
    out += buf.length - last;
    this.outByteCount += out;
    this.push(Buffer.concat(parts, out));
  } else {
    this.outByteCount += buf.length;
    this.push(buf);
  }
  this.lastByte = buf[buf.length - 1];
  done();
};

let installed = false;

export function installFastDataStream(): void {
  if (installed) return;
  installed = true;
  (DataStream as any).prototype._transform = fastTransform;
}

export { DataStream, original as originalTransform };
