// Transfer encodings and charsets for the parts that get modified: decode a body to text,
// and encode the modified text back, in the part's own charset and transfer encoding where
// that can represent what was inserted.
import { isUtf8 } from 'node:buffer';
import { TextDecoder } from 'node:util';
import { createTransferDecoder } from '../decode.ts';
import { iconv, libmime } from '../deps.ts';

interface IconvCodec {
  encodingExists(name: string): boolean;
  decode(buf: Buffer, encoding: string): string;
  encode(text: string, encoding: string): Buffer;
}

const iconvCodec = iconv as unknown as IconvCodec;
const charsetNames = libmime as unknown as { normalizeCharset(charset: string): string };

/** Transfer encodings a modified part can be written back in. */
export type TransferEncoding = 'base64' | 'quoted-printable' | 'identity';

/**
 * How a body is read and written back. Unknown encodings ("8bit+", "Hexa", "x-uuencode") are
 * read as they are, the way mailsplit and mailparser show them.
 */
export function transferKind(encoding: string): TransferEncoding {
  switch (encoding) {
    case 'base64':
      return 'base64';
    case 'quoted-printable':
      return 'quoted-printable';
    default:
      return 'identity';
  }
}

export function transferDecode(raw: Buffer, kind: TransferEncoding): Buffer {
  if (kind === 'identity') {
    return raw;
  }
  const dec = createTransferDecoder(kind);
  const head = dec.write(raw);
  const tail = dec.end();
  return tail.length ? Buffer.concat([head, tail]) : head;
}

/** Base64 in lines of 76 characters joined by `eol` (no line break after the last line). */
export function encodeBase64(data: Buffer, eol: string): string {
  const b64 = data.toString('base64');
  if (b64.length <= 76) {
    return b64;
  }
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 76) {
    lines.push(b64.slice(i, i + 76));
  }
  return lines.join(eol);
}

// how each byte is written in quoted-printable (RFC 2045 §6.7): printable ASCII except "=",
// space and tab as themselves, everything else as =XX
const QP_ESCAPE: string[] = [];
for (let b = 0; b < 256; b++) {
  QP_ESCAPE.push('=' + b.toString(16).toUpperCase().padStart(2, '0'));
}
const QP_UNSAFE = /[^\t\x20-\x3c\x3e-\x7e]/g;

function qpEscape(c: string): string {
  return QP_ESCAPE[c.charCodeAt(0)];
}

/** One line (no line break) as quoted-printable lines of at most 76 characters, soft breaks included. */
function encodeQpLine(line: string, eol: string): string {
  let enc = line.replace(QP_UNSAFE, qpEscape);
  const last = enc.charCodeAt(enc.length - 1);
  if (last === 0x20 || last === 0x09) {
    // whitespace at the end of a line would be stripped in transport
    enc = enc.slice(0, -1) + (last === 0x20 ? '=20' : '=09');
  }
  if (enc.length <= 76) {
    return enc;
  }
  const out: string[] = [];
  let pos = 0;
  while (enc.length - pos > 76) {
    let cut = pos + 75;
    // never split an =XX escape
    if (enc.charCodeAt(cut - 1) === 0x3d) {
      cut -= 1;
    } else if (enc.charCodeAt(cut - 2) === 0x3d) {
      cut -= 2;
    }
    out.push(enc.slice(pos, cut) + '=');
    pos = cut;
  }
  out.push(enc.slice(pos));
  return out.join(eol);
}

/**
 * Quoted-printable with hard line breaks written as `eol` and soft breaks keeping encoded
 * lines at 76 characters. CRLF and LF in the data are hard breaks; a lone CR is encoded.
 * Whitespace at the end of a line is encoded so that transports cannot strip it.
 */
export function encodeQuotedPrintable(data: Buffer, eol: string): string {
  const lines = data.toString('latin1').split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i];
    if (i < lines.length - 1 && line.charCodeAt(line.length - 1) === 0x0d) {
      line = line.slice(0, -1);
    }
    lines[i] = encodeQpLine(line, eol);
  }
  return lines.join(eol);
}

/** True when every line of `data` fits the 998-octet limit of 7bit/8bit bodies (RFC 5322 §2.1.1). */
export function linesFit(data: Buffer): boolean {
  let start = 0;
  while (start < data.length) {
    const nl = data.indexOf(0x0a, start);
    const end = nl < 0 ? data.length : nl;
    if (end - start > 999) {
      return false;
    }
    start = end + 1;
  }
  return true;
}

export function isAscii(s: string): boolean {
  return !/[^\x00-\x7f]/.test(s);
}

export function bufferIsAscii(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) {
    if (b[i] > 0x7f) {
      return false;
    }
  }
  return true;
}

/** Result of writing modified text back into bytes. */
export interface EncodedText {
  bytes: Buffer;
  /** the charset parameter to set, when the part's own charset could not be kept */
  charset: string | null;
}

/** A part's text and how to write it back. */
export interface TextCodec {
  text: string;
  /**
   * Encodes `modified`; `added` is the text that was inserted. Returns null when the text
   * cannot be written back without guessing (unknown charset and non-ASCII additions).
   */
  encode(modified: string, added: string): EncodedText | null;
}

const ASCII_LABELS = new Set(['us-ascii', 'ascii', 'ansi_x3.4-1968', 'iso646-us', 'us', 'iso-ir-6', 'cp367']);
const UTF8_LABELS = new Set(['utf-8', 'utf8', 'unicode-1-1-utf-8', 'x-unicode20utf8']);

function utf8(modified: string): EncodedText {
  return { bytes: Buffer.from(modified, 'utf8'), charset: 'utf-8' };
}

function iconvLabel(label: string): string | null {
  try {
    if (iconvCodec.encodingExists(label)) {
      return label;
    }
    const normalized = charsetNames.normalizeCharset(label);
    if (normalized && iconvCodec.encodingExists(normalized)) {
      return normalized;
    }
  } catch {
    // unknown
  }
  return null;
}

function whatwgDecoder(label: string): TextDecoder | null {
  try {
    return new TextDecoder(label);
  } catch {
    return null;
  }
}

/**
 * The text of a transfer-decoded body and the way back to bytes:
 * - no charset or US-ASCII: ASCII stays as is; 8-bit content is read as UTF-8 when valid, else
 *   as windows-1252; non-ASCII additions convert the part to UTF-8 and label it;
 * - UTF-8 and charsets iconv-lite can encode: kept when the additions are representable,
 *   else the part is converted to UTF-8;
 * - charsets only the WHATWG decoder knows (ISO-2022-JP, …): decoded, written as UTF-8;
 * - unknown charsets: bytes are kept (read as latin1), so only ASCII can be added.
 */
export function textCodec(charset: string | null, data: Buffer): TextCodec {
  const label = charset ? charset.trim().toLowerCase() : '';
  if (!label || ASCII_LABELS.has(label)) {
    if (bufferIsAscii(data)) {
      return {
        text: data.toString('latin1'),
        encode: (m, added) => (isAscii(added) ? { bytes: Buffer.from(m, 'latin1'), charset: null } : utf8(m)),
      };
    }
    if (isUtf8(data)) {
      return {
        text: data.toString('utf8'),
        encode: (m, added) => (isAscii(added) ? { bytes: Buffer.from(m, 'utf8'), charset: null } : utf8(m)),
      };
    }
    return {
      text: iconvCodec.decode(data, 'windows-1252'),
      encode: (m, added) => (isAscii(added) ? { bytes: iconvCodec.encode(m, 'windows-1252'), charset: null } : utf8(m)),
    };
  }
  if (UTF8_LABELS.has(label)) {
    return {
      text: data.toString('utf8'),
      encode: (m) => ({ bytes: Buffer.from(m, 'utf8'), charset: null }),
    };
  }
  const known = iconvLabel(label);
  if (known) {
    return {
      text: iconvCodec.decode(data, known),
      encode: (m, added) => {
        if (added && !isAscii(added) && iconvCodec.decode(iconvCodec.encode(added, known), known) !== added) {
          return utf8(m);
        }
        return { bytes: iconvCodec.encode(m, known), charset: null };
      },
    };
  }
  const whatwg = whatwgDecoder(label);
  if (whatwg) {
    let text: string;
    try {
      text = whatwg.decode(data);
    } catch {
      text = data.toString('latin1');
    }
    return { text, encode: (m) => utf8(m) };
  }
  return {
    text: data.toString('latin1'),
    encode: (m, added) => (isAscii(added) ? { bytes: Buffer.from(m, 'latin1'), charset: null } : null),
  };
}
