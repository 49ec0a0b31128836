// Part replacement (MIME editing, used by anti-virus stripping, DESIGN §5): read one part's decoded bytes to
// scan it on its own, and deliver a message with infected parts replaced by a text notice.
//
// Parts are addressed by the paths of the parse stage (ParsedMessage.parts[].path,
// attachments[].partPath); ./parts.ts finds them exactly where the parse stage's splitter
// does, so the bytes extractPart returns are the bytes the parse stage hashed.
//
// Stripping rewrites only what it replaces (STYLE "Messages and bytes"): the header block and
// body of each target part become a small text/plain part; every other byte — other parts,
// delimiters, preamble, epilogue, the message header — is copied. Decisions:
// - The notice part is `text/plain; charset=utf-8`, `Content-Disposition: attachment` with
//   the file name "<original name>.removed.txt": it takes the removed file's place in the
//   attachment list, where the recipient looks for it, and never changes which part a client
//   shows as the body (an inline text part inside multipart/alternative or /related could).
//   The body is 7bit when the notice is short-lined ASCII, else quoted-printable; a line that
//   starts with "-" is always encoded, so no notice can ever read as a MIME delimiter.
// - A target that is a message's root (the whole message, or the root of an attached
//   message) keeps its header fields except the Content-* ones, which are replaced by the
//   notice's; MIME-Version is kept where present and added where missing.
// - A target inside an attached message that the splitter does not descend into (base64 or
//   quoted-printable encoded, or marked as an attachment) is stripped in the decoded message,
//   which is then encoded again in its own transfer encoding; its header stays as it was.
// - A target inside another target is covered by the outer one; only the outer is reported.
// - The result is read back before it is returned: every stripped part must now be the
//   notice and every other part must be where it was (same path and type; byte-identical
//   unless it contains a stripped part). If not, nothing is stripped: `stripped` is empty and
//   the original bytes are returned. Callers must treat a target missing from `stripped` as
//   still present (quarantine or drop rather than deliver).
import { createTransferDecoder } from '../decode.ts';
import { libmime } from '../deps.ts';
import { encodeBase64 } from './encoding.ts';
import { foldField } from './headers.ts';
import { parseHeaderBlock } from './structure.ts';
import { MAX_DEPTH, containerOf, mapParts, rawBody, type PartMap, type PartSpan } from './parts.ts';

export interface StripTarget {
  /** path of the part as the parse stage reports it (attachments[].partPath) */
  partPath: string;
  /** text shown instead of the part, e.g. "The attachment invoice.zip was removed: it contains Eicar-Test-Signature." */
  notice: string;
}

export interface StripResult {
  bytes: Buffer;
  /** paths of the parts actually replaced, in the order of the targets */
  stripped: string[];
}

const LF = 0x0a;
const CR = 0x0d;
const PATH = /^1(?:\.[1-9][0-9]{0,5})*$/;
/** longest line of a 7bit notice body; longer lines are sent quoted-printable */
const NOTICE_LINE = 76;
/** longest file name kept for the notice part (characters, before ".removed.txt") */
const MAX_NAME = 120;

const libmimeValues = libmime as unknown as {
  buildHeaderValue(value: { value: string; params: Record<string, string> }): string;
};

/** The transfer-decoded body of a leaf part, as the parse stage decodes it. */
function decodeBody(bytes: Buffer, span: PartSpan): Buffer {
  const raw = rawBody(bytes, span);
  const decoder = createTransferDecoder(span.encoding);
  const head = decoder.write(raw);
  const tail = decoder.end();
  if (head === raw) {
    // identity: a copy, so that the caller does not hold on to the whole message
    return tail.length ? Buffer.concat([head, tail]) : Buffer.from(head);
  }
  return tail.length ? Buffer.concat([head, tail]) : head;
}

/** What the part holds: a leaf's decoded body, else the raw content below its header. */
function contentOf(bytes: Buffer, span: PartSpan): Buffer {
  if (span.leaf) {
    return decodeBody(bytes, span);
  }
  return Buffer.from(bytes.subarray(span.bodyStart, Math.max(span.bodyStart, span.end)));
}

function extractFrom(bytes: Buffer, path: string, rootPath: string, rootDepth: number): Buffer | null {
  const map = mapParts(bytes, rootPath, rootDepth);
  const span = map.byPath.get(path);
  if (span) {
    return contentOf(bytes, span);
  }
  const box = containerOf(map, path);
  if (!box || box.depth >= MAX_DEPTH) {
    return null;
  }
  return extractFrom(decodeBody(bytes, box), path, `${box.path}.1`, box.depth + 1);
}

/**
 * The decoded body (base64, quoted-printable, or as is for 7bit / 8bit / binary and unknown
 * encodings) of the part at `partPath`, numbered as the parse stage numbers
 * `parts[].path` / `attachments[].partPath`; for every attachment the parse stage reports,
 * sha256 of the result equals its `sha256`. Parts of attached messages are found in the
 * attached message's decoded bytes, as the parse stage does. For a multipart or an attached
 * message the splitter descends into, the raw content below the part's header. Null when
 * there is no such part. Never throws.
 */
export function extractPart(bytes: Buffer, partPath: string): Buffer | null {
  try {
    if (!Buffer.isBuffer(bytes) || typeof partPath !== 'string' || !PATH.test(partPath)) {
      return null;
    }
    return extractFrom(bytes, partPath, '1', 0);
  } catch {
    return null;
  }
}

// ---- the notice part ----

/** The message's line break: the first one in [from, to), else in the whole message, else CRLF. */
function lineBreak(bytes: Buffer, from: number, to: number): '\r\n' | '\n' {
  let nl = bytes.indexOf(LF, from);
  if (nl < 0 || nl >= to) {
    nl = bytes.indexOf(LF);
  }
  if (nl < 0) {
    return '\r\n';
  }
  return nl > 0 && bytes[nl - 1] === CR ? '\r\n' : '\n';
}

/** The notice's lines: line breaks normalised, control characters other than tab dropped. */
function noticeLines(notice: string): string[] {
  return notice
    .replace(/\r\n?|[\u2028\u2029\u0085]/g, '\n')
    .replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '')
    .split('\n');
}

// how each byte is written in quoted-printable: printable ASCII except "=", space and tab as
// themselves, everything else as =XX
const QP_TOKEN: string[] = [];
for (let b = 0; b < 256; b++) {
  const literal = b === 0x09 || (b >= 0x20 && b <= 0x7e && b !== 0x3d);
  QP_TOKEN.push(literal ? String.fromCharCode(b) : '=' + b.toString(16).toUpperCase().padStart(2, '0'));
}

/**
 * Quoted-printable (RFC 2045 §6.7) in lines of at most 76 characters. LF and CRLF in the data
 * are hard line breaks, written as `eol`. Whitespace at the end of a line is encoded, and so
 * is a "-" at the start of any encoded line, so that no line can be taken for a delimiter.
 */
export function encodeQuotedPrintableSafe(data: Buffer, eol: string): string {
  const text = data.toString('latin1');
  const hard = text.split('\n');
  const out: string[] = [];
  for (let h = 0; h < hard.length; h++) {
    let line = hard[h];
    if (h < hard.length - 1 && line.endsWith('\r')) {
      line = line.slice(0, -1);
    }
    let cur = '';
    for (let i = 0; i < line.length; i++) {
      const code = line.charCodeAt(i);
      const last = i === line.length - 1;
      let tok = last && (code === 0x20 || code === 0x09) ? (code === 0x20 ? '=20' : '=09') : QP_TOKEN[code];
      if (cur.length + tok.length > 75 && !(last && cur.length + tok.length <= 76)) {
        out.push(cur + '=');
        cur = '';
      }
      if (cur === '' && tok === '-') {
        tok = '=2D';
      }
      cur += tok;
    }
    out.push(cur);
  }
  return out.join(eol);
}

interface NoticeBody {
  /** Content-Transfer-Encoding */
  encoding: '7bit' | 'quoted-printable';
  body: string;
  /** the bytes a reader decodes from the body */
  decoded: Buffer;
}

function noticeBody(notice: string, eol: string): NoticeBody {
  const lines = noticeLines(notice);
  const decoded = Buffer.from(lines.join(eol), 'utf8');
  const plain = lines.every(
    (l) => l.length <= NOTICE_LINE && !/[^\t\x20-\x7e]/.test(l) && !l.startsWith('-') && !/[ \t]$/.test(l),
  );
  if (plain) {
    return { encoding: '7bit', body: lines.join(eol), decoded };
  }
  return { encoding: 'quoted-printable', body: encodeQuotedPrintableSafe(decoded, eol), decoded };
}

/** "<original>.removed.txt", from a file name an attacker chose. */
export function noticeFileName(original: string | null): string {
  let name = (original ?? '')
    .replace(/[\x00-\x1f\x7f\u0080-\u009f\u2028\u2029]/g, '')
    .replace(/[\\/]/g, '_')
    .replace(/\s+/g, ' ')
    .trim();
  if (name.length > MAX_NAME) {
    name = name.slice(0, MAX_NAME);
  }
  return `${name || 'attachment'}.removed.txt`;
}

function dispositionField(filename: string, eol: string): string {
  let value: string;
  try {
    value = libmimeValues.buildHeaderValue({ value: 'attachment', params: { filename } });
  } catch {
    value = 'attachment; filename="removed-attachment.txt"';
  }
  return foldField('Content-Disposition', value.replace(/[\r\n]+/g, ' '), eol);
}

interface Edit {
  start: number;
  end: number;
  data: Buffer;
  /** what the parse stage decodes from the new part's body */
  decoded?: Buffer;
}

/** Where the replacement of a part ends: after its header at least. */
function regionEnd(span: PartSpan): number {
  return Math.max(span.end, span.bodyStart, span.start);
}

/**
 * A line break to close the replacement: when what follows it does not start with the line
 * break in front of a delimiter (a header block cut short by the delimiter line), or at the
 * end of a message that ended with a line break.
 */
function closingBreak(bytes: Buffer, span: PartSpan, eol: string): string {
  const end = regionEnd(span);
  if (end >= bytes.length) {
    return end > span.start && bytes[end - 1] === LF ? eol : '';
  }
  return bytes[end] === LF || (bytes[end] === CR && bytes[end + 1] === LF) ? '' : eol;
}

/** At the end of the message the line break after the notice is read as part of its body. */
function decodedAs(bytes: Buffer, span: PartSpan, notice: NoticeBody, closing: string): Buffer {
  return closing && regionEnd(span) >= bytes.length
    ? Buffer.concat([notice.decoded, Buffer.from(closing, 'latin1')])
    : notice.decoded;
}

/** A part inside a multipart (or any part that is not a message's root): header and body replaced. */
function replacePart(bytes: Buffer, span: PartSpan, notice: NoticeBody, eol: string): Edit {
  const closing = closingBreak(bytes, span, eol);
  const header =
    `Content-Type: text/plain; charset=utf-8${eol}` +
    dispositionField(noticeFileName(span.filename), eol) +
    `Content-Transfer-Encoding: ${notice.encoding}${eol}`;
  const text = header + eol + notice.body + closing;
  return {
    start: span.start,
    end: regionEnd(span),
    data: Buffer.from(text, 'latin1'),
    decoded: decodedAs(bytes, span, notice, closing),
  };
}

/** A message's root: its header fields other than Content-* kept, the body becomes the notice. */
function replaceRoot(bytes: Buffer, span: PartSpan, notice: NoticeBody, eol: string): Edit {
  const end = regionEnd(span);
  const hs = bytes.toString('latin1', span.start, Math.min(span.bodyStart, end));
  const block = parseHeaderBlock(hs, 0, hs.length);
  let kept = '';
  let mimeVersion = false;
  for (const f of block.fields) {
    if (f.key.startsWith('content-')) {
      continue;
    }
    if (f.key === 'mime-version') {
      mimeVersion = true;
    }
    kept += hs.slice(f.start, f.end);
  }
  if (kept && !kept.endsWith('\n')) {
    kept += eol;
  }
  const fields =
    (mimeVersion ? '' : `MIME-Version: 1.0${eol}`) +
    `Content-Type: text/plain; charset=utf-8${eol}` +
    `Content-Transfer-Encoding: ${notice.encoding}${eol}`;
  const closing = closingBreak(bytes, span, eol);
  const text = kept + fields + eol + notice.body + closing;
  return {
    start: span.start,
    end,
    data: Buffer.from(text, 'latin1'),
    decoded: decodedAs(bytes, span, notice, closing),
  };
}

function isMessageRoot(span: PartSpan): boolean {
  return span.parent === null || span.parent.messageNode;
}

function within(span: PartSpan, outer: PartSpan): boolean {
  for (let p: PartSpan | null = span; p; p = p.parent) {
    if (p === outer) {
      return true;
    }
  }
  return false;
}

/** An attached message's bytes encoded again in the transfer encoding of its part. */
function encodeAttached(content: Buffer, encoding: string, eol: string): Buffer {
  switch (encoding) {
    case 'base64':
      return Buffer.from(encodeBase64(content, eol), 'latin1');
    case 'quoted-printable':
      return Buffer.from(encodeQuotedPrintableSafe(content, eol), 'latin1');
    default:
      return content;
  }
}

function applyEdits(bytes: Buffer, edits: Edit[]): Buffer {
  const sorted = [...edits].sort((a, b) => a.start - b.start || a.end - b.end);
  const pieces: Buffer[] = [];
  let cursor = 0;
  for (const e of sorted) {
    if (e.start < cursor) {
      // overlapping edits cannot happen by construction; never write a span twice
      continue;
    }
    pieces.push(bytes.subarray(cursor, e.start), e.data);
    cursor = e.end;
  }
  pieces.push(bytes.subarray(cursor));
  return Buffer.concat(pieces);
}

interface Planned {
  span: PartSpan;
  /** decoded notice bytes (direct targets), null for attached messages rewritten inside */
  decoded: Buffer | null;
}

/** The result reads back as intended (see the file comment). */
function verify(
  bytes: Buffer,
  before: PartMap,
  result: Buffer,
  planned: Planned[],
  rootPath: string,
  rootDepth: number,
): boolean {
  const after = mapParts(result, rootPath, rootDepth);
  if (after.truncated && !before.truncated) {
    return false;
  }
  const changed = new Set<PartSpan>();
  for (const p of planned) {
    for (let s: PartSpan | null = p.span; s; s = s.parent) {
      changed.add(s);
    }
    const now = after.byPath.get(p.span.path);
    if (!now || !now.leaf) {
      return false;
    }
    if (p.decoded) {
      if (now.contentType !== 'text/plain' || !decodeBody(result, now).equals(p.decoded)) {
        return false;
      }
    } else if (now.contentType !== 'message/rfc822') {
      return false;
    }
  }
  const direct = planned.filter((p) => p.decoded).map((p) => p.span);
  let expected = 0;
  for (const span of before.parts) {
    if (direct.some((d) => d !== span && within(span, d))) {
      continue;
    }
    expected++;
    if (changed.has(span)) {
      const now = after.byPath.get(span.path);
      if (!now || (!direct.includes(span) && (now.contentType !== span.contentType || now.leaf !== span.leaf))) {
        return false;
      }
      continue;
    }
    const now = after.byPath.get(span.path);
    if (
      !now ||
      now.contentType !== span.contentType ||
      now.leaf !== span.leaf ||
      now.end - now.start !== span.end - span.start ||
      !result.subarray(now.start, now.end).equals(bytes.subarray(span.start, span.end))
    ) {
      return false;
    }
  }
  return after.parts.length === expected;
}

function stripIn(bytes: Buffer, wanted: Map<string, string>, rootPath: string, rootDepth: number): StripResult {
  const map = mapParts(bytes, rootPath, rootDepth);
  const direct: PartSpan[] = [];
  for (const span of map.parts) {
    if (wanted.has(span.path) && map.byPath.get(span.path) === span && !direct.some((d) => within(span, d))) {
      direct.push(span);
    }
  }
  const boxes = new Map<PartSpan, Map<string, string>>();
  for (const [path, notice] of wanted) {
    if (map.byPath.has(path)) {
      continue;
    }
    const box = containerOf(map, path);
    if (!box || box.depth >= MAX_DEPTH || direct.some((d) => within(box, d))) {
      continue;
    }
    let inner = boxes.get(box);
    if (!inner) {
      inner = new Map();
      boxes.set(box, inner);
    }
    inner.set(path, notice);
  }

  const edits: Edit[] = [];
  const planned: Planned[] = [];
  const stripped: string[] = [];
  for (const span of direct) {
    const eol = lineBreak(bytes, span.start, regionEnd(span));
    const notice = noticeBody(wanted.get(span.path) ?? '', eol);
    const edit = isMessageRoot(span) ? replaceRoot(bytes, span, notice, eol) : replacePart(bytes, span, notice, eol);
    edits.push(edit);
    planned.push({ span, decoded: edit.decoded ?? notice.decoded });
    stripped.push(span.path);
  }
  for (const [box, inner] of boxes) {
    if (box.body.length !== 1) {
      // no body, or a body the splitter reads in pieces: nothing that can be rewritten in place
      continue;
    }
    const res = stripIn(decodeBody(bytes, box), inner, `${box.path}.1`, box.depth + 1);
    if (!res.stripped.length) {
      continue;
    }
    const [start, end] = box.body[0];
    const eol = lineBreak(bytes, box.start, end);
    let data = encodeAttached(res.bytes, box.encoding, eol);
    if (data !== res.bytes && bytes[end - 1] === LF) {
      data = Buffer.concat([data, Buffer.from(eol, 'latin1')]);
    }
    edits.push({ start, end, data });
    planned.push({ span: box, decoded: null });
    stripped.push(...res.stripped);
  }
  if (!edits.length) {
    return { bytes, stripped: [] };
  }
  const result = applyEdits(bytes, edits);
  if (!verify(bytes, map, result, planned, rootPath, rootDepth)) {
    return { bytes, stripped: [] };
  }
  return { bytes: result, stripped };
}

/**
 * Replaces each target part (header and body) with a `text/plain; charset=utf-8` part
 * carrying its notice; every other byte of the message stays as it was. A target that is the
 * whole message (path "1") or the root of an attached message keeps its header fields other
 * than Content-*. Targets that cannot be found (or could not be replaced safely) are left
 * out of `stripped`; a message with nothing stripped is returned as it came. Never throws.
 */
export function stripParts(bytes: Buffer, targets: readonly StripTarget[]): StripResult {
  const unchanged: StripResult = { bytes, stripped: [] };
  try {
    if (!Buffer.isBuffer(bytes) || !Array.isArray(targets)) {
      return unchanged;
    }
    const wanted = new Map<string, string>();
    for (const t of targets) {
      const path: unknown = t?.partPath;
      if (typeof path === 'string' && PATH.test(path) && !wanted.has(path)) {
        wanted.set(path, typeof t.notice === 'string' ? t.notice : String(t.notice ?? ''));
      }
    }
    if (!wanted.size) {
      return unchanged;
    }
    const res = stripIn(bytes, wanted, '1', 0);
    if (!res.stripped.length) {
      return unchanged;
    }
    const order = [...wanted.keys()];
    res.stripped.sort((a, b) => order.indexOf(a) - order.indexOf(b));
    return res;
  } catch {
    return unchanged;
  }
}
