// Where each MIME part of a message lies, as byte offsets, numbered exactly as the parse stage
// (src/mime/parse.ts) numbers `parts[].path` and `attachments[].partPath`.
//
// The parse stage streams the message through @zone-eu/mailsplit's Splitter, and its part
// paths and attachment bytes are whatever that splitter makes of the message, quirks
// included: a nested multipart left open keeps reading past its parent's delimiters, a
// delimiter line may carry nothing but an optional "--" after the boundary, a closing
// delimiter in the preamble does not count, a header block cut short by a delimiter is lost
// (or kept without a body when the delimiter closes the multipart), the line break in front
// of a delimiter belongs to the delimiter. The offset walker of ./structure.ts
// follows the RFC and flags where parsers disagree; here the answer has to be the parser's
// own, so this file replays the splitter's line state machine (message-splitter.js, for a
// message written in one piece, as parseMessage does with a Buffer) synchronously, with
// mailsplit's own MimeNode reading every header block (content type defaults, encoding,
// boundary, the rule for descending into message/rfc822). Only the offsets are new.
//
// Attached messages the splitter does not descend into (transfer-encoded, or marked as
// attachments) are parsed by the parse stage afterwards from their decoded bytes, their root
// numbered `<path>.1`; mapParts does the same when asked for the decoded bytes.
import { MimeNode as SplitNode } from '@zone-eu/mailsplit';

/** nodes the splitter creates per message before it gives up (parse.ts: maxParts + 1) */
export const MAX_NODES = 501;
/** largest header block of one part (parse.ts MAX_HEAD_SIZE) */
export const MAX_HEAD_SIZE = 1024 * 1024;
/** nesting depth below which the parse stage reports no parts (defaultParseLimits.maxDepth) */
export const MAX_DEPTH = 20;

const LF = 0x0a;
const CR = 0x0d;
const DASH = 0x2d;

const IDENTITY = new Set(['', '7bit', '8bit', 'binary']);

/** One MIME part as the parse stage sees it. */
export interface PartSpan {
  /** dotted path like "1.2.1", as in ParsedMessage.parts[].path */
  path: string;
  depth: number;
  /** lower-case media type (text/plain when the part declares none, as in the parse stage) */
  contentType: string;
  /** lower-case Content-Transfer-Encoding, '' when absent */
  encoding: string;
  disposition: string | null;
  /** decoded file name (Content-Disposition filename or Content-Type name), or null */
  filename: string | null;
  multipart: boolean;
  /** an attached message/rfc822 the splitter descended into: its content is its only child */
  messageNode: boolean;
  /** neither multipart nor a descended attached message: the parse stage decodes its body */
  leaf: boolean;
  /** offset of the header block (the part's first byte) */
  start: number;
  /** offset after the header block and its blank line */
  bodyStart: number;
  /** the header block ended with a blank line */
  headerTerminated: boolean;
  /**
   * the raw body bytes the parse stage transfer-decodes, as [start, end) ranges (one range,
   * or none, for every message that is not very strange)
   */
  body: Array<[number, number]>;
  /**
   * offset where the part (with everything inside it) ends: before the line break in front
   * of the delimiter that ends it, or the end of the input
   */
  end: number;
  parent: PartSpan | null;
  children: PartSpan[];
}

export interface PartMap {
  /** parts in document order */
  parts: PartSpan[];
  byPath: Map<string, PartSpan>;
  /** the splitter would have stopped early (too many parts, header block too large) */
  truncated: boolean;
}

interface NodeInfo {
  node: SplitNode;
  start: number;
  ended: boolean;
  span: PartSpan | null;
  /** body ranges are still collected (until the next part is reported) */
  open: boolean;
  body: Array<[number, number]>;
}

/** Returns 1 (delimiter), 2 (closing delimiter) or 0, as MessageSplitter.compareBoundary. */
function compareBoundary(buf: Buffer, ls: number, le: number, startpos: number, boundary: Buffer): 0 | 1 | 2 {
  const len = le - ls;
  if (len < boundary.length + 3 + startpos || len > boundary.length + 6 + startpos) {
    return 0;
  }
  for (let i = 0; i < boundary.length; i++) {
    if (buf[ls + i + 2 + startpos] !== boundary[i]) {
      return 0;
    }
  }
  let pos = 0;
  for (let i = boundary.length + 2 + startpos; i < len; i++) {
    const c = buf[ls + i];
    if (pos === 0 && (c === CR || c === LF)) {
      return 1;
    }
    if ((pos === 0 || pos === 1) && c !== DASH) {
      return 0;
    }
    if (pos === 2 && c !== CR && c !== LF) {
      return 0;
    }
    if (pos === 3 && c !== LF) {
      return 0;
    }
    pos++;
  }
  return 2;
}

function asBoundary(value: unknown): Buffer | null {
  return Buffer.isBuffer(value) && value.length ? value : null;
}

/** The line break in front of `at` (LF or CRLF), not reaching below `floor`. */
function beforeLineBreak(buf: Buffer, at: number, floor: number): number {
  let end = at;
  if (end > floor && buf[end - 1] === LF) {
    end--;
    if (end > floor && buf[end - 1] === CR) {
      end--;
    }
  }
  return end;
}

class SplitReplay {
  private readonly buf: Buffer;
  private readonly rootPath: string;
  private readonly rootDepth: number;
  private readonly infos = new Map<SplitNode, NodeInfo>();
  private readonly childCount = new Map<PartSpan, number>();
  readonly parts: PartSpan[] = [];
  private node!: SplitNode;
  private head = true;
  private inEpilogue = false;
  private nodeCounter = 0;
  private current: NodeInfo | null = null;
  /** the part whose body the parse stage is reading */
  private leaf: NodeInfo | null = null;
  /** end of the last line when it was a body line (the splitter's current group is a body group), else -1 */
  private lastBody = -1;
  failed = false;

  constructor(buf: Buffer, rootPath: string, rootDepth: number) {
    this.buf = buf;
    this.rootPath = rootPath;
    this.rootDepth = rootDepth;
    this.newNode(false, 0);
  }

  private newNode(parent: SplitNode | false, start: number): void {
    this.node = new SplitNode(parent, { defaultInlineEmbedded: true });
    this.head = true;
    this.nodeCounter++;
    this.inEpilogue = false;
    this.current = { node: this.node, start, ended: false, span: null, open: false, body: [] };
    this.infos.set(this.node, this.current);
  }

  private info(node: SplitNode): NodeInfo {
    return this.infos.get(node)!;
  }

  private ownerOf(node: SplitNode): SplitNode | false {
    return (node._parentBoundaryOwner as SplitNode | false) || false;
  }

  /** A header block is complete: the splitter hands the node to the parse stage. */
  private emit(info: NodeInfo): void {
    if (this.leaf) {
      this.leaf.open = false;
      this.leaf = null;
    }
    const node = info.node;
    const parentNode = node.parentNode ? this.infos.get(node.parentNode as SplitNode) : undefined;
    const parent = parentNode?.span ?? null;
    let path = this.rootPath;
    let depth = this.rootDepth;
    if (parent) {
      const n = (this.childCount.get(parent) ?? 0) + 1;
      this.childCount.set(parent, n);
      path = `${parent.path}.${n}`;
      depth = parent.depth + 1;
    } else if (this.parts.length) {
      // parse.ts: a second root can not happen with mailsplit
      path = `${this.rootPath}.${this.parts.length + 1}`;
      depth = this.rootDepth + 1;
    }
    const multipart = Boolean(node.multipart);
    const messageNode = node.messageNode === true;
    const span: PartSpan = {
      path,
      depth,
      contentType: node.contentType || 'text/plain',
      encoding: node.encoding || '',
      disposition: node.disposition || null,
      filename: node.filename || null,
      multipart,
      messageNode,
      leaf: !multipart && !messageNode,
      start: info.start,
      bodyStart: info.start + node._headerlen,
      headerTerminated: false,
      body: info.body,
      end: this.buf.length,
      parent,
      children: [],
    };
    info.span = span;
    parent?.children.push(span);
    this.parts.push(span);
    if (span.leaf) {
      info.open = true;
      this.leaf = info;
    }
  }

  /** The nodes from `from` up that are not `to` or above it end at `end`. */
  private exit(from: SplitNode, to: SplitNode, end: number): void {
    const keep = new Set<SplitNode>();
    for (let n: SplitNode | false = to; n; n = n.parentNode as SplitNode | false) {
      keep.add(n);
    }
    for (let n: SplitNode | false = from; n && !keep.has(n); n = n.parentNode as SplitNode | false) {
      const info = this.info(n);
      if (!info.ended) {
        info.ended = true;
        if (info.span) {
          info.span.end = Math.max(info.start, end);
        }
      }
    }
  }

  private checkBoundary(ls: number, le: number): 0 | 1 | 2 | 3 | 4 {
    const buf = this.buf;
    const len = le - ls;
    let startpos = 0;
    if (len >= 1 && (buf[ls] === CR || buf[ls] === LF)) {
      startpos++;
      if (len >= 2 && buf[ls] === CR && buf[ls + 1] === LF) {
        startpos++;
      }
    }
    if (len < 4 || buf[ls + startpos] !== DASH || buf[ls + startpos + 1] !== DASH) {
      return 0;
    }
    const own = asBoundary(this.node._boundary);
    if (!this.inEpilogue && own) {
      const b = compareBoundary(buf, ls, le, startpos, own);
      if (b) {
        return b;
      }
    }
    const parent = asBoundary(this.node._parentBoundary);
    if (parent) {
      const b = compareBoundary(buf, ls, le, startpos, parent);
      if (b) {
        return b === 1 ? 3 : 4;
      }
    }
    return 0;
  }

  /**
   * One line [ls, le) (MessageSplitter.processLine). `trimmed`: the line break in front of
   * the line was already taken off the body before it (the final line of the input).
   */
  line(ls: number, le: number, final: boolean, trimmed: boolean): void {
    if (this.nodeCounter > MAX_NODES) {
      this.failed = true;
      return;
    }
    const buf = this.buf;
    const afterBody = this.lastBody === ls;
    this.lastBody = -1;
    const boundary = this.checkBoundary(ls, le);
    if (boundary) {
      const before = this.node;
      const cur = this.current!;
      if (afterBody && !trimmed && cur.open && before.parentNode) {
        // the line break in front of a delimiter belongs to the delimiter, not to the body;
        // but a body that is nothing but one line break keeps it when the delimiter opens
        // the next part (MessageSplitter pushes the group's first line as it was)
        const last = cur.body[cur.body.length - 1];
        if (last && last[1] === ls) {
          const cut = beforeLineBreak(buf, ls, last[0]);
          if (cut > last[0] || boundary === 2 || boundary === 4) {
            last[1] = cut;
          }
        }
      }
      const end = trimmed ? ls : beforeLineBreak(buf, ls, 0);
      switch (boundary) {
        case 1:
          this.newNode(this.node, le);
          break;
        case 2:
          break;
        case 3: {
          const owner = this.ownerOf(this.node);
          this.newNode(owner, le);
          break;
        }
        case 4: {
          if (this.node._headerlen && !this.node.headers) {
            // a header block that the closing delimiter cuts short is still reported
            this.node.parseHeaders();
            this.emit(cur);
          }
          const owner = this.ownerOf(this.node);
          if (owner) {
            this.node = owner;
            this.current = this.info(owner);
            this.inEpilogue = true;
          }
          this.head = false;
          break;
        }
      }
      this.exit(before, this.node, end);
      return;
    }
    const cur = this.current!;
    if (this.head) {
      this.node.addHeaderChunk(buf.subarray(ls, le));
      if (this.node._headerlen > MAX_HEAD_SIZE) {
        this.failed = true;
        return;
      }
      const blank = (le - ls === 1 && buf[ls] === LF) || (le - ls === 2 && buf[ls] === CR && buf[ls + 1] === LF);
      if (final || blank) {
        const node = this.node;
        node.parseHeaders();
        const encoding = node.encoding || '';
        if (node.contentType === 'message/rfc822' && IDENTITY.has(encoding) && node.disposition !== 'attachment') {
          node.messageNode = true;
          this.emit(cur);
          cur.span!.headerTerminated = blank;
          this.newNode(node, le);
          if (node.parentNode) {
            const parent = node.parentNode as SplitNode;
            this.node._parentBoundary = parent._boundary;
            this.node._parentBoundaryOwner = parent;
          }
        } else {
          if (node.contentType === 'message/rfc822') {
            node.messageNode = false;
          }
          this.head = false;
          this.emit(cur);
          cur.span!.headerTerminated = blank;
        }
      }
      return;
    }
    if (this.node.multipart || le === ls) {
      return;
    }
    this.lastBody = le;
    if (cur.open) {
      const last = cur.body[cur.body.length - 1];
      if (last && last[1] === ls) {
        last[1] = le;
      } else {
        cur.body.push([ls, le]);
      }
    }
  }

  run(): void {
    this.split();
    for (const info of this.infos.values()) {
      if (info.span) {
        info.span.body = info.body.filter(([a, b]) => b > a);
      }
    }
  }

  private split(): void {
    const buf = this.buf;
    let pos = 0;
    while (pos < buf.length && !this.failed) {
      const nl = buf.indexOf(LF, pos);
      if (nl < 0) {
        break;
      }
      this.line(pos, nl + 1, false, false);
      pos = nl + 1;
    }
    if (this.failed) {
      return;
    }
    // the body line break at the end of the input waits for the final line, which may be a
    // delimiter (MessageSplitter: "skip last linebreak for body", then _flush)
    let trimmed = false;
    if (this.lastBody === pos && this.node.parentNode) {
      const cur = this.current!;
      const last = cur.body[cur.body.length - 1];
      const cut = beforeLineBreak(buf, pos, last && last[1] === pos ? last[0] : 0);
      if (last && last[1] === pos) {
        last[1] = cut;
      }
      trimmed = cut < pos;
      pos = cut;
      this.lastBody = pos;
    }
    this.line(pos, buf.length, true, trimmed);
  }
}

/**
 * The parts of a message (or of an attached message's decoded bytes, with `rootPath`
 * "<path of the message/rfc822 part>.1"), numbered as the parse stage numbers them. Linear
 * in the input; never throws on malformed input.
 */
export function mapParts(bytes: Buffer, rootPath = '1', rootDepth = 0): PartMap {
  const replay = new SplitReplay(bytes, rootPath, rootDepth);
  replay.run();
  const byPath = new Map<string, PartSpan>();
  for (const p of replay.parts) {
    if (!byPath.has(p.path)) {
      byPath.set(p.path, p);
    }
  }
  return { parts: replay.parts, byPath, truncated: replay.failed };
}

/** The attached message (not descended into) that holds `path`, the innermost such part of the map. */
export function containerOf(map: PartMap, path: string): PartSpan | null {
  let best: PartSpan | null = null;
  for (const p of map.parts) {
    if (
      p.leaf &&
      p.contentType === 'message/rfc822' &&
      path.startsWith(p.path + '.') &&
      (!best || p.path.length > best.path.length)
    ) {
      best = p;
    }
  }
  return best;
}

/** The raw (still transfer-encoded) body of a leaf part. */
export function rawBody(bytes: Buffer, span: PartSpan): Buffer {
  if (span.body.length === 1) {
    return bytes.subarray(span.body[0][0], span.body[0][1]);
  }
  return Buffer.concat(span.body.map(([a, b]) => bytes.subarray(a, b)));
}
