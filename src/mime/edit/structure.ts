// Raw MIME structure for message modification: header fields and part bodies as offsets into
// the original bytes, so that a rewrite can replace exactly the spans it changes and copy every
// other byte through untouched (STYLE "Messages and bytes").
//
// The message is read as a latin1 string: one character per byte, so string indexes are byte
// offsets and slicing never splits or alters a byte. Boundary handling follows the parser the
// gateway and mailparser share (@zone-eu/mailsplit): a delimiter line is "--" boundary, an
// optional "--", then the line break, at the start of a line; the line break in front of it
// belongs to the delimiter (RFC 2046 §5.1.1); a closing delimiter before the first part is
// preamble. Where parsers are known to disagree (trailing whitespace after a delimiter, which
// postal-mime accepts and mailsplit does not; a nested multipart left open, which mailsplit
// keeps reading past its parent's delimiters; a child reusing an ancestor's boundary) the
// walk reports the structure as ambiguous, and the caller then leaves the body alone.
import { libmime } from '../deps.ts';

/** nesting depth (multiparts and attached messages) below which parts are not walked */
export const MAX_DEPTH = 20;
/** parts walked per message */
export const MAX_PARTS = 500;

const LF = 0x0a;
const CR = 0x0d;

/** One header field of a header block, as offsets into the message. */
export interface HeaderField {
  /** offset of the field's first byte */
  start: number;
  /** offset after the field's last line break (or the end of the block) */
  end: number;
  /** lower-case field name without surrounding whitespace; '' for a line that is not a field */
  key: string;
  /** raw text after the colon up to `end`, folding and line breaks included (latin1) */
  raw: string;
}

export interface HeaderBlock {
  fields: HeaderField[];
  /** offset after the last field: where the blank line (or the body) starts */
  end: number;
  /** offset of the body: after the blank line, or the region end when there is none */
  bodyStart: number;
  /** a blank line ends the block */
  terminated: boolean;
}

export type StructureNote =
  | 'missing_boundary'
  | 'no_delimiter'
  | 'missing_close_delimiter'
  | 'ambiguous_structure'
  | 'depth_limit'
  | 'part_limit';

export interface MimeNode {
  header: HeaderBlock;
  /** offset of the header block (the part's first byte) */
  start: number;
  bodyStart: number;
  /** end of the body; the line break in front of a delimiter is not part of it */
  bodyEnd: number;
  /** lower-case media type; text/plain when missing (message/rfc822 inside multipart/digest) */
  type: string;
  params: Record<string, string>;
  /** lower-case disposition type, or null */
  disposition: string | null;
  filename: boolean;
  /** lower-case transfer encoding, '' when absent */
  encoding: string;
  children: MimeNode[];
  depth: number;
  /** inside an attached message (message/rfc822): walked for structure only, never changed */
  attached: boolean;
}

export interface MimeTree {
  root: MimeNode;
  notes: Set<StructureNote>;
  /** walked parts */
  parts: number;
}

/** Unfolds a raw header value the way libmime reads it: line breaks and following WSP become one space. */
export function unfold(raw: string): string {
  return raw.replace(/(?:\r?\n|\r)[ \t]*/g, ' ').trim();
}

/** Parses the header block starting at `start`, not reading past `limit`. Linear. */
export function parseHeaderBlock(s: string, start: number, limit: number): HeaderBlock {
  const fields: HeaderField[] = [];
  let pos = start;
  let current: HeaderField | null = null;
  while (pos < limit) {
    const nl = s.indexOf('\n', pos);
    const lineEnd = nl < 0 || nl >= limit ? limit : nl + 1;
    const first = s.charCodeAt(pos);
    if (
      (first === LF && lineEnd === pos + 1) ||
      (first === CR && lineEnd === pos + 2 && s.charCodeAt(pos + 1) === LF)
    ) {
      return { fields: withValues(s, fields), end: pos, bodyStart: lineEnd, terminated: true };
    }
    if ((first === 0x20 || first === 0x09) && current) {
      current.end = lineEnd;
    } else {
      const colon = s.indexOf(':', pos);
      const key = colon >= 0 && colon < lineEnd ? s.slice(pos, colon).trim().toLowerCase() : '';
      current = { start: pos, end: lineEnd, key, raw: '' };
      fields.push(current);
    }
    pos = lineEnd;
  }
  return { fields: withValues(s, fields), end: limit, bodyStart: limit, terminated: false };
}

function withValues(s: string, fields: HeaderField[]): HeaderField[] {
  for (const f of fields) {
    const colon = f.key ? s.indexOf(':', f.start) : -1;
    f.raw = colon >= 0 && colon < f.end ? s.slice(colon + 1, f.end) : '';
  }
  return fields;
}

export function firstField(block: HeaderBlock, key: string): HeaderField | undefined {
  return block.fields.find((f) => f.key === key);
}

interface ParsedValue {
  value: string;
  params: Record<string, string>;
}

const libmimeParse = libmime as unknown as { parseHeaderValue(value: string): ParsedValue };

/** Parses a structured value (type and parameters, RFC 2231 continuations) with libmime. */
export function parseStructured(raw: string): ParsedValue {
  const value = unfold(raw);
  if (!value) {
    return { value: '', params: {} };
  }
  try {
    const parsed = libmimeParse.parseHeaderValue(value.length > 16384 ? value.slice(0, 16384) : value);
    return { value: String(parsed.value ?? ''), params: parsed.params ?? {} };
  } catch {
    return { value: value.split(';')[0] ?? '', params: {} };
  }
}

function stripComments(value: string): string {
  return value.replace(/\([^()]*\)/g, '');
}

interface WalkState {
  s: string;
  notes: Set<StructureNote>;
  parts: number;
}

function makeNode(
  st: WalkState,
  start: number,
  end: number,
  depth: number,
  defaultType: string,
  attached: boolean,
): MimeNode {
  const header = parseHeaderBlock(st.s, start, end);
  const ctField = firstField(header, 'content-type');
  const cdField = firstField(header, 'content-disposition');
  const cteField = firstField(header, 'content-transfer-encoding');
  const cd = cdField ? parseStructured(cdField.raw) : { value: '', params: {} };
  let type = defaultType;
  let params: Record<string, string> = {};
  if (ctField) {
    const ct = parseStructured(ctField.raw);
    type = ct.value.trim().toLowerCase() || defaultType;
    params = ct.params;
  } else if (cd.value.trim().toLowerCase() === 'attachment') {
    type = 'application/octet-stream';
  }
  const disposition = cd.value.trim().toLowerCase() || null;
  return {
    header,
    start,
    bodyStart: header.bodyStart,
    bodyEnd: end,
    type,
    params,
    disposition,
    filename: Boolean(cd.params.filename || params.name),
    encoding: cteField ? stripComments(unfold(cteField.raw)).trim().toLowerCase() : '',
    children: [],
    depth,
    attached,
  };
}

interface Delimiter {
  /** offset of the "--" */
  at: number;
  /** offset after the delimiter line's line break */
  next: number;
  close: boolean;
}

/**
 * Finds the delimiter lines of `boundary` in [from, to). Returns null (and flags the
 * structure) when a line would be a delimiter for one parser and not for another.
 */
function findDelimiters(st: WalkState, boundary: string, from: number, to: number): Delimiter[] {
  const s = st.s;
  const marker = '--' + boundary;
  const out: Delimiter[] = [];
  let pos = from;
  let opened = false;
  while (pos < to) {
    const at = s.indexOf(marker, pos);
    if (at < 0 || at + marker.length > to) {
      break;
    }
    pos = at + 1;
    if (at !== from && s.charCodeAt(at - 1) !== LF) {
      continue;
    }
    const j = at + marker.length;
    const nl = s.indexOf('\n', j);
    const lineEnd = nl < 0 || nl >= to ? to : nl + 1;
    const rest = s.slice(j, lineEnd);
    let kind: 'open' | 'close' | 'loose' | null = null;
    if (rest === '' ? to < s.length : rest.charCodeAt(0) === CR || rest.charCodeAt(0) === LF) {
      kind = 'open';
    } else if (rest === '--' || rest === '--\n' || rest === '--\r\n') {
      kind = 'close';
    } else if (/^(?:--)?[ \t]+\r?\n?$/.test(rest)) {
      // RFC 2046 allows transport padding; mailsplit does not accept it, postal-mime does
      kind = 'loose';
    }
    if (kind === 'loose') {
      st.notes.add('ambiguous_structure');
      continue;
    }
    if (!kind) {
      continue;
    }
    if (kind === 'close' && !opened) {
      // a closing delimiter in the preamble does not count (as in mailsplit)
      continue;
    }
    out.push({ at, next: lineEnd, close: kind === 'close' });
    pos = lineEnd;
    if (kind === 'close') {
      break;
    }
    opened = true;
  }
  return out;
}

function contentEnd(s: string, at: number, floor: number): number {
  let end = at;
  if (end > floor && s.charCodeAt(end - 1) === LF) {
    end--;
    if (end > floor && s.charCodeAt(end - 1) === CR) {
      end--;
    }
  }
  return Math.max(floor, end);
}

function walkChildren(st: WalkState, node: MimeNode, ancestors: string[]): void {
  const isMultipart = node.type.startsWith('multipart/');
  const isMessage = node.type === 'message/rfc822' || node.type === 'message/global';
  if (!isMultipart && !isMessage) {
    return;
  }
  if (node.depth >= MAX_DEPTH) {
    st.notes.add('depth_limit');
    return;
  }
  if (isMessage) {
    // mailsplit reads into attached messages that are not transfer-encoded; walk them for
    // their structure (an unclosed multipart inside changes where the outer parts end)
    if (node.encoding && !['7bit', '8bit', 'binary'].includes(node.encoding)) {
      return;
    }
    if (st.parts >= MAX_PARTS) {
      st.notes.add('part_limit');
      return;
    }
    st.parts++;
    const child = makeNode(st, node.bodyStart, node.bodyEnd, node.depth + 1, 'text/plain', true);
    node.children.push(child);
    walkChildren(st, child, ancestors);
    return;
  }
  const boundary = node.params.boundary;
  if (!boundary) {
    st.notes.add('missing_boundary');
    return;
  }
  // mailsplit compares UTF-8 bytes; anything outside ASCII (or a boundary an ancestor already
  // uses) is read differently by different parsers
  if (/[^\x20-\x7e]/.test(boundary) || ancestors.includes(boundary)) {
    st.notes.add('ambiguous_structure');
    return;
  }
  const s = st.s;
  const delimiters = findDelimiters(st, boundary, node.bodyStart, node.bodyEnd);
  if (!delimiters.length) {
    st.notes.add('no_delimiter');
    return;
  }
  const closed = delimiters[delimiters.length - 1].close;
  if (!closed) {
    st.notes.add('missing_close_delimiter');
    if (ancestors.length) {
      // mailsplit keeps reading the open part past the parent's delimiters, postal-mime stops
      st.notes.add('ambiguous_structure');
    }
  }
  const childType = node.type === 'multipart/digest' ? 'message/rfc822' : 'text/plain';
  const inner = [...ancestors, boundary];
  for (let i = 0; i < delimiters.length; i++) {
    const d = delimiters[i];
    if (d.close) {
      break;
    }
    if (st.parts >= MAX_PARTS) {
      st.notes.add('part_limit');
      return;
    }
    st.parts++;
    const start = d.next;
    const next = delimiters[i + 1];
    const end = next ? contentEnd(s, next.at, start) : node.bodyEnd;
    const child = makeNode(st, start, end, node.depth + 1, childType, node.attached);
    node.children.push(child);
    walkChildren(st, child, inner);
  }
}

/** Walks the MIME structure of a whole message (a latin1 view of its bytes). Never throws on input. */
export function walkMessage(s: string): MimeTree {
  const st: WalkState = { s, notes: new Set(), parts: 1 };
  const root = makeNode(st, 0, s.length, 0, 'text/plain', false);
  if (root.header.terminated) {
    walkChildren(st, root, []);
  }
  return { root, notes: st.notes, parts: st.parts };
}

/** Line break used by a span of the message: the first one found, else `fallback`. */
export function lineBreakOf(s: string, from: number, to: number, fallback: '\r\n' | '\n'): '\r\n' | '\n' {
  const nl = s.indexOf('\n', from);
  if (nl < 0 || nl >= to) {
    return fallback;
  }
  return nl > 0 && s.charCodeAt(nl - 1) === CR ? '\r\n' : '\n';
}

/** A text part's charset parameter (unquoted, trimmed) or null. */
export function charsetOf(node: MimeNode): string | null {
  const c = node.params.charset;
  if (typeof c !== 'string') {
    return null;
  }
  const label = c.trim().replace(/^["']+|["']+$/g, '');
  return label || null;
}
