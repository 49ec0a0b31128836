// Incremental, synchronous decoders for MIME bodies: Content-Transfer-Encoding (base64,
// quoted-printable) and charsets. Everything works chunk by chunk so that a body is never
// held whole, and relies on native string/Buffer operations rather than per-byte loops.
import { TextDecoder } from 'node:util';
import { iconv } from './deps.ts';

/** Decodes a transfer encoding chunk by chunk. */
export interface ByteDecoder {
  write(chunk: Buffer): Buffer;
  end(): Buffer;
  /** set once the input contained something the encoding does not allow */
  malformed: boolean;
}

const EMPTY = Buffer.alloc(0);

// everything that is not part of the base64 alphabet (standard or URL-safe, like Node's
// decoder) or padding is skipped
const B64_STRIP = /[^A-Za-z0-9+/=_-]+/g;
// characters that are neither base64 nor whitespace make the body malformed
const B64_INVALID = /[^A-Za-z0-9+/=\s]/;
const B64_PADDING = /=+/;
const LF = 0x0a;
const CR = 0x0d;
const EQ = 0x3d;

/**
 * Base64 decoder that keeps the incomplete trailing quantum for the next chunk.
 *
 * Fast path (well-formed input: alphabet plus line breaks, padding only at the end): the
 * line breaks are counted with native string operations and the chunk is decoded by
 * Node's decoder as is; the decoded length proves that nothing else was skipped. Anything
 * else goes through the slow path, which strips non-alphabet characters with one regex
 * and splits at padding. Both produce the same bytes, whatever the chunking.
 */
class Base64Decoder implements ByteDecoder {
  malformed = false;
  private carry = '';

  write(chunk: Buffer): Buffer {
    let s = chunk.toString('latin1');
    if (this.carry) {
      s = this.carry + s;
      this.carry = '';
    }
    if (!s) {
      return EMPTY;
    }
    return this.fast(s) ?? this.slow(s);
  }

  private fast(s: string): Buffer | null {
    let breaks = 0;
    if (s.indexOf('\n') >= 0) {
      breaks += s.length - s.replaceAll('\n', '').length;
    }
    if (s.indexOf('\r') >= 0) {
      breaks += s.length - s.replaceAll('\r', '').length;
    }
    // characters that are not line breaks; all of them base64 if the input is well-formed
    const chars = s.length - breaks;
    const rest = chars % 4;
    let body = s;
    let carry = '';
    if (rest) {
      let cut = s.length;
      let taken = 0;
      while (taken < rest && cut > 0) {
        const c = s.charCodeAt(--cut);
        if (c !== LF && c !== CR) {
          taken++;
          carry = s[cut] + carry;
        }
      }
      if (carry.indexOf('=') >= 0) {
        return null;
      }
      body = s.slice(0, cut);
    }
    let pad = 0;
    for (let i = body.length - 1; i >= 0 && pad <= 2; i--) {
      const c = body.charCodeAt(i);
      if (c === EQ) {
        pad++;
      } else if (c !== LF && c !== CR) {
        break;
      }
    }
    if (pad > 2) {
      return null;
    }
    const out = Buffer.from(body, 'base64');
    if (out.length !== ((chars - rest) / 4) * 3 - pad) {
      return null;
    }
    this.carry = carry;
    return out;
  }

  private slow(s: string): Buffer {
    if (!this.malformed && B64_INVALID.test(s)) {
      this.malformed = true;
    }
    s = s.replace(B64_STRIP, '');
    if (!s) {
      return EMPTY;
    }
    if (s.indexOf('=') < 0) {
      return this.decodeAligned(s);
    }
    // padding ends a group; data after it (concatenated base64 blobs) starts a new one
    const segments = s.split(B64_PADDING);
    const last = segments.pop() ?? '';
    const out: Buffer[] = [];
    for (const seg of segments) {
      if (seg) {
        out.push(Buffer.from(seg, 'base64'));
      }
    }
    const tail = this.decodeAligned(last);
    if (tail.length) {
      out.push(tail);
    }
    return out.length === 1 ? out[0] : Buffer.concat(out);
  }

  private decodeAligned(s: string): Buffer {
    const usable = s.length - (s.length % 4);
    if (usable < s.length) {
      this.carry = s.slice(usable);
    }
    return usable ? Buffer.from(usable === s.length ? s : s.slice(0, usable), 'base64') : EMPTY;
  }

  end(): Buffer {
    const rest = this.carry;
    this.carry = '';
    if (rest.length === 1) {
      // a lone sextet carries no complete byte
      this.malformed = true;
      return EMPTY;
    }
    return rest ? Buffer.from(rest, 'base64') : EMPTY;
  }
}

const HEX_PAIRS: Record<string, string> = Object.create(null) as Record<string, string>;
{
  const digits = '0123456789abcdefABCDEF';
  for (const a of digits) {
    for (const b of digits) {
      HEX_PAIRS[a + b] = String.fromCharCode(parseInt(a + b, 16));
    }
  }
}
// an escape or a soft line break (optionally with transport padding before the break)
const QP_ESCAPE = /=(?:[ \t]*\r?\n|[0-9A-Fa-f]{2})/g;
// an escape that may still be completed by the next chunk
const QP_INCOMPLETE = /^=(?:[0-9A-Fa-f]?|[ \t]*\r?)$/;
const QP_MAX_HOLD = 80;

function qpReplace(m: string): string {
  return m.length === 3 ? (HEX_PAIRS[m.slice(1)] ?? '') : '';
}

class QuotedPrintableDecoder implements ByteDecoder {
  malformed = false;
  private carry = '';

  write(chunk: Buffer): Buffer {
    if (!this.carry && chunk.indexOf(0x3d) < 0) {
      return chunk;
    }
    let s = this.carry + chunk.toString('latin1');
    this.carry = '';
    const eq = s.lastIndexOf('=');
    if (eq >= 0 && s.length - eq <= QP_MAX_HOLD && QP_INCOMPLETE.test(s.slice(eq))) {
      this.carry = s.slice(eq);
      s = s.slice(0, eq);
    }
    return Buffer.from(s.replace(QP_ESCAPE, qpReplace), 'latin1');
  }

  end(): Buffer {
    const rest = this.carry;
    this.carry = '';
    // a dangling "=" or "=X" at the very end of the body is dropped
    return rest && !rest.startsWith('=') ? Buffer.from(rest, 'latin1') : EMPTY;
  }
}

class IdentityDecoder implements ByteDecoder {
  malformed = false;
  write(chunk: Buffer): Buffer {
    return chunk;
  }
  end(): Buffer {
    return EMPTY;
  }
}

export function createTransferDecoder(encoding: string | false | null | undefined): ByteDecoder {
  switch (encoding) {
    case 'base64':
      return new Base64Decoder();
    case 'quoted-printable':
      return new QuotedPrintableDecoder();
    default:
      return new IdentityDecoder();
  }
}

/** Decodes a charset chunk by chunk into a string. */
export interface TextChunkDecoder {
  write(chunk: Buffer): string;
  end(): string;
}

class WhatwgTextDecoder implements TextChunkDecoder {
  private readonly td: TextDecoder;
  constructor(label: string) {
    this.td = new TextDecoder(label);
  }
  write(chunk: Buffer): string {
    return this.td.decode(chunk, { stream: true });
  }
  end(): string {
    return this.td.decode();
  }
}

class IconvTextDecoder implements TextChunkDecoder {
  private readonly dec: ReturnType<typeof iconv.getDecoder>;
  constructor(label: string) {
    this.dec = iconv.getDecoder(label);
  }
  write(chunk: Buffer): string {
    return this.dec.write(chunk);
  }
  end(): string {
    return this.dec.end() ?? '';
  }
}

class Latin1TextDecoder implements TextChunkDecoder {
  write(chunk: Buffer): string {
    return chunk.toString('latin1');
  }
  end(): string {
    return '';
  }
}

type DecoderKind = 'whatwg' | 'iconv' | 'latin1';
const kindCache = new Map<string, DecoderKind>();

function normalizeCharset(charset: string | null | undefined): string {
  if (!charset) {
    return 'utf-8';
  }
  const label = charset
    .trim()
    .replace(/^["']+|["']+$/g, '')
    .toLowerCase();
  return label || 'utf-8';
}

function resolveKind(label: string): DecoderKind {
  let kind = kindCache.get(label);
  if (kind) {
    return kind;
  }
  try {
    new TextDecoder(label);
    kind = 'whatwg';
  } catch {
    let known = false;
    try {
      known = iconv.encodingExists(label);
    } catch {
      known = false;
    }
    kind = known ? 'iconv' : 'latin1';
  }
  if (kindCache.size > 512) {
    kindCache.clear();
  }
  kindCache.set(label, kind);
  return kind;
}

/**
 * A decoder for `charset`: WHATWG TextDecoder when the label is known to it, iconv-lite
 * otherwise, latin1 when neither knows the charset. A missing charset is read as UTF-8.
 */
export function createTextDecoder(charset: string | null | undefined): TextChunkDecoder {
  const label = normalizeCharset(charset);
  const kind = resolveKind(label);
  try {
    if (kind === 'whatwg') {
      return new WhatwgTextDecoder(label);
    }
    if (kind === 'iconv') {
      return new IconvTextDecoder(label);
    }
  } catch {
    // fall through to latin1
  }
  return new Latin1TextDecoder();
}
