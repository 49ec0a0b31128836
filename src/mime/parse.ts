// The parse stage: one streaming pass over the message with @zone-eu/mailsplit's Splitter (splitter.ts:
// with a native line-end search).
// Leaf bodies are transfer-decoded chunk by chunk; attachments are hashed while streaming
// and only their first bytes are kept (plus the whole decoded content for archives and
// attached messages, up to a bound); text/plain and text/html are charset-decoded up to
// maxTextChars. Afterwards attached messages that the splitter could not descend into
// (base64 encoded, or marked as attachments) are parsed from their decoded bytes,
// attachments get a magic-byte type, archives are listed, and URLs are extracted from the
// kept text. Malformed input never throws; only exceeding timeoutMs does.
import { FastSplitter } from './splitter.ts';
import type { MimeNode, SplitterChunk } from '@zone-eu/mailsplit';
import type { Transform } from 'node:stream';
import { listArchive, type ArchiveContext } from './archive.ts';
import { ContentSink, MAX_ARCHIVE_BUFFER, detectType, extensionOf, type SinkResult } from './content.ts';
import { createTextDecoder, createTransferDecoder, type ByteDecoder, type TextChunkDecoder } from './decode.ts';
import { libmime } from './deps.ts';
import { UrlCollector, extractHtmlUrls, extractTextUrls } from './urls.ts';
import { ParseTimeoutError, defaultParseLimits } from './types.ts';
import type { ArchiveMember, AttachmentInfo, MimePart, ParseAnomaly, ParseLimits, ParsedMessage } from './types.ts';

export { ParseTimeoutError, defaultParseLimits } from './types.ts';
export type { ParseLimits, ParsedMessage } from './types.ts';

/** header values longer than this are not RFC 2047 decoded past this point */
const MAX_DECODED_HEADER = 64 * 1024;
/** largest header block of a single MIME node before the splitter gives up */
const MAX_HEAD_SIZE = 1024 * 1024;
/** raw body bytes of boundary-less multiparts kept per message to be read as text */
const MAX_ORPHAN_BYTES = 256 * 1024;
/** decoded bytes of attached messages buffered per message to parse them afterwards */
const MAX_EMBEDDED_BYTES = MAX_ARCHIVE_BUFFER;

interface TextBuffer {
  chunks: string[];
  length: number;
}

/** An attached message kept for parsing after the outer message. */
interface Embedded {
  content: Buffer;
  /** path and depth of the attached message part */
  path: string;
  depth: number;
  /** offset of its first byte in the outer message, null when it was transfer-encoded */
  offset: number | null;
  fallbackOffset: number;
}

/** Everything the walkers of one message (outer and attached messages) add to. */
class ParseState {
  readonly limits: ParseLimits;
  readonly deadline: number;
  size = 0;
  readonly headers: Array<{ key: string; value: string }> = [];
  from: string | null = null;
  subject: string | null = null;
  messageId: string | null = null;
  readonly parts: MimePart[] = [];
  readonly attachments: AttachmentInfo[] = [];
  readonly anomalies = new Set<ParseAnomaly>();
  readonly text: TextBuffer = { chunks: [], length: 0 };
  readonly html: TextBuffer = { chunks: [], length: 0 };
  readonly pending: Array<Promise<void>> = [];
  archiveChain: Promise<void> = Promise.resolve();
  readonly archiveCtx: ArchiveContext;
  readonly embedded: Embedded[] = [];
  embeddedBytes = 0;
  orphanBytes = 0;

  constructor(limits: ParseLimits, startedAt: number) {
    this.limits = limits;
    this.deadline = startedAt + limits.timeoutMs;
    this.archiveCtx = {
      limits,
      deadline: this.deadline,
      membersListed: 0,
      entriesSeen: 0,
      expandedBytes: 0,
      flag: (a) => this.anomalies.add(a),
    };
  }

  flag(anomaly: ParseAnomaly): void {
    this.anomalies.add(anomaly);
  }

  timeoutError(): ParseTimeoutError {
    return new ParseTimeoutError(`parse exceeded ${this.limits.timeoutMs} ms`);
  }

  checkDeadline(): void {
    if (Date.now() > this.deadline) {
      throw this.timeoutError();
    }
  }

  /** Appends decoded text; returns false once the buffer is full. */
  appendText(kind: 'text' | 'html', s: string): boolean {
    if (!s) {
      return true;
    }
    const buf = kind === 'html' ? this.html : this.text;
    const room = this.limits.maxTextChars - buf.length;
    if (s.length > room) {
      if (room > 0) {
        buf.chunks.push(s.slice(0, room));
        buf.length += room;
      }
      this.flag('text_truncated');
      return false;
    }
    buf.chunks.push(s);
    buf.length += s.length;
    return true;
  }

  /** Starts a new text part: returns false when there is no room left for it. */
  startText(kind: 'text' | 'html'): boolean {
    const buf = kind === 'html' ? this.html : this.text;
    if (buf.length >= this.limits.maxTextChars) {
      this.flag('text_truncated');
      return false;
    }
    if (buf.chunks.length) {
      buf.chunks.push('\n');
      buf.length++;
    }
    return true;
  }

  track(task: Promise<void>): void {
    // the failure (only ever a timeout) is reported through the await in parseMessage
    task.catch(() => {});
    this.pending.push(task);
  }

  async result(): Promise<ParsedMessage> {
    while (this.pending.length) {
      await Promise.all(this.pending.splice(0));
    }
    this.checkDeadline();
    const text = this.text.chunks.join('');
    const html = this.html.chunks.join('');
    const collector = new UrlCollector(this.limits.maxUrls);
    extractTextUrls(text, collector);
    extractHtmlUrls(html, collector);
    if (collector.limited || collector.workExhausted) {
      this.flag('url_limit');
    }
    return {
      size: this.size,
      headers: this.headers,
      from: this.from,
      subject: this.subject,
      messageId: this.messageId,
      parts: this.parts,
      attachments: this.attachments,
      urls: collector.urls,
      text,
      html,
      anomalies: [...this.anomalies],
    };
  }
}

interface NodeState {
  path: string;
  depth: number;
  children: number;
  /** neither this node nor anything below it is analysed (depth / part limit) */
  skipped: boolean;
  /** multipart container whose children are counted to spot missing boundaries */
  multipart: boolean;
  /** raw body of a multipart while it has no children (kept as text if none ever appear) */
  orphan: Buffer[] | null;
}

type LeafMode = 'text' | 'html' | 'attachment' | 'size';

interface LeafState {
  node: MimeNode;
  part: MimePart;
  mode: LeafMode;
  decoder: ByteDecoder;
  size: number;
  text: TextChunkDecoder | null;
  textDone: boolean;
  sink: ContentSink | null;
  attachment: AttachmentInfo | null;
  /** an attached message/rfc822 whose decoded bytes are kept to be parsed afterwards */
  embedded: boolean;
}

function decodeWords(value: string): string {
  if (value.indexOf('=?') < 0) {
    return value;
  }
  try {
    return libmime.decodeWords(value.length > MAX_DECODED_HEADER ? value.slice(0, MAX_DECODED_HEADER) : value);
  } catch {
    return value;
  }
}

const EIGHT_BIT = /[\x80-\xff]/;
const FOLD = /\r?\n/g;

/** Raw (binary string) header value: unfolded, trimmed, UTF-8 when it is valid UTF-8. */
function headerValue(line: string): string {
  const colon = line.indexOf(':');
  let value = (colon >= 0 ? line.slice(colon + 1) : '').replace(FOLD, '').trim();
  if (EIGHT_BIT.test(value)) {
    const utf8 = Buffer.from(value, 'latin1').toString('utf8');
    if (!utf8.includes('\ufffd')) {
      value = utf8;
    }
  }
  return value;
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) {
    return chunk;
  }
  if (typeof chunk === 'string') {
    return Buffer.from(chunk, 'utf8');
  }
  if (chunk instanceof Uint8Array) {
    return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  }
  return Buffer.from(String(chunk));
}

interface WalkerBase {
  /** path and depth of this walker's root part */
  path: string;
  depth: number;
  /** the outer message (its headers are the top-level headers) */
  top: boolean;
  /** offset of this walker's first byte in the outer message; null when not exact */
  offset: number | null;
  /** offset used for every part when `offset` is null */
  fallbackOffset: number;
}

/** Turns the splitter's objects of one (outer or attached) message into parts. */
class NodeWalker {
  private readonly s: ParseState;
  private readonly base: WalkerBase;
  private pos = 0;
  private readonly states = new Map<MimeNode, NodeState>();
  private leaf: LeafState | null = null;
  private broken = false;

  constructor(state: ParseState, base: WalkerBase) {
    this.s = state;
    this.base = base;
  }

  /** Handles one splitter object. Never throws. */
  handle(chunk: SplitterChunk): void {
    if (chunk.type !== 'node') {
      this.pos += chunk.value.length;
    }
    if (this.broken) {
      return;
    }
    try {
      if (chunk.type === 'node') {
        this.onNode(chunk);
      } else if (chunk.type === 'body') {
        const leaf = this.leaf;
        if (leaf && chunk.node === leaf.node) {
          this.feed(leaf, leaf.decoder.write(chunk.value));
        }
      } else if (this.s.orphanBytes < MAX_ORPHAN_BYTES) {
        const state = this.states.get(chunk.node);
        if (state?.orphan && state.children === 0) {
          const take = chunk.value.subarray(0, MAX_ORPHAN_BYTES - this.s.orphanBytes);
          state.orphan.push(take);
          this.s.orphanBytes += take.length;
        }
      }
    } catch {
      // a bug or an input we did not foresee: keep what we have, analyse no further
      this.s.flag('malformed_mime');
      this.broken = true;
    }
  }

  /** The splitter failed (header block too large, too many nodes): stop splitting. */
  splitError(err: unknown): void {
    const message = String((err as Error)?.message ?? err);
    this.s.flag(/child nodes/i.test(message) ? 'part_limit' : 'malformed_mime');
    this.finishLeaf();
    this.broken = true;
  }

  private offset(pos: number): number {
    return this.base.offset === null ? this.base.fallbackOffset : this.base.offset + pos;
  }

  private onNode(node: MimeNode): void {
    this.finishLeaf();
    const headerOffset = this.offset(this.pos);
    this.pos += node._headerlen || 0;
    const bodyOffset = this.offset(this.pos);

    const parent = node.parentNode ? this.states.get(node.parentNode) : undefined;
    let path = this.base.path;
    let depth = this.base.depth;
    if (parent) {
      parent.children++;
      path = `${parent.path}.${parent.children}`;
      depth = parent.depth + 1;
      if (parent.orphan) {
        // the multipart has children after all
        this.s.orphanBytes -= parent.orphan.reduce((n, b) => n + b.length, 0);
        parent.orphan = null;
      }
    } else if (node.parentNode || this.states.size > 0) {
      // a second root can not happen with mailsplit; do not let it clobber the first
      this.s.flag('malformed_mime');
      path = `${this.base.path}.${this.states.size + 1}`;
      depth = this.base.depth + 1;
    }
    const state: NodeState = { path, depth, children: 0, skipped: false, multipart: false, orphan: null };
    this.states.set(node, state);

    const { limits } = this.s;
    if (parent?.skipped) {
      state.skipped = true;
      return;
    }
    if (depth > limits.maxDepth) {
      this.s.flag('depth_limit');
      state.skipped = true;
      return;
    }
    if (this.s.parts.length >= limits.maxParts) {
      this.s.flag('part_limit');
      state.skipped = true;
      return;
    }

    const contentType = node.contentType || 'text/plain';
    const filename = node.filename || null;
    const disposition = node.disposition || null;
    const part: MimePart = {
      path,
      contentType,
      disposition,
      filename,
      charset: node.charset || null,
      transferEncoding: node.encoding || null,
      headerOffset,
      bodyOffset,
      decodedSize: 0,
      depth,
    };
    this.s.parts.push(part);

    if (this.base.top && !parent && !node.parentNode) {
      this.captureHeaders(node);
    }

    if (node.multipart) {
      state.multipart = true;
      state.orphan = [];
      if (!node._boundary) {
        this.s.flag('malformed_mime');
      }
      return;
    }
    if (node.messageNode) {
      // embedded message/rfc822 that the splitter descends into
      return;
    }

    const isHtml = contentType === 'text/html';
    // a bare "text" (no subtype) is read as text/plain
    const isText = isHtml || contentType === 'text/plain' || contentType === 'text';
    const isAttachment =
      filename !== null || disposition === 'attachment' || (contentType !== 'text' && !contentType.startsWith('text/'));
    const mode: LeafMode = isAttachment ? 'attachment' : isHtml ? 'html' : isText ? 'text' : 'size';
    const leaf: LeafState = {
      node,
      part,
      mode,
      decoder: createTransferDecoder(node.encoding),
      size: 0,
      text: null,
      textDone: false,
      sink: null,
      attachment: null,
      embedded: false,
    };
    if (mode === 'attachment') {
      const name = filename ?? '';
      // an attached message the splitter did not descend into is parsed afterwards
      leaf.embedded = contentType === 'message/rfc822' && depth < limits.maxDepth;
      leaf.sink = new ContentSink(leaf.embedded ? 'all' : 'archives');
      leaf.attachment = {
        partPath: path,
        name,
        extension: extensionOf(name),
        declaredType: contentType,
        trueType: null,
        size: 0,
        sha256: '',
        isArchive: false,
        members: [],
        encrypted: false,
      };
      this.s.attachments.push(leaf.attachment);
    } else if (mode === 'text' || mode === 'html') {
      if (this.s.startText(mode)) {
        leaf.text = createTextDecoder(node.charset || null);
      } else {
        leaf.textDone = true;
      }
    }
    this.leaf = leaf;
  }

  private captureHeaders(node: MimeNode): void {
    const lines = node.headers ? node.headers.getList() : [];
    const s = this.s;
    for (const { key, line } of lines) {
      if (!key) {
        if (line.trim()) {
          s.flag('malformed_mime');
        }
        continue;
      }
      let value = headerValue(line);
      if (key === 'subject' || key === 'from') {
        value = decodeWords(value);
        if (key === 'subject' && s.subject === null) {
          s.subject = value;
        } else if (key === 'from' && s.from === null) {
          s.from = value;
        }
      } else if (key === 'message-id' && s.messageId === null) {
        s.messageId = value;
      }
      s.headers.push({ key, value });
    }
  }

  private feed(leaf: LeafState, decoded: Buffer): void {
    if (!decoded.length) {
      return;
    }
    leaf.size += decoded.length;
    if (leaf.sink) {
      leaf.sink.write(decoded);
    } else if (leaf.text && !leaf.textDone) {
      if (!this.s.appendText(leaf.mode === 'html' ? 'html' : 'text', leaf.text.write(decoded))) {
        leaf.textDone = true;
      }
    }
  }

  finishLeaf(): void {
    const leaf = this.leaf;
    if (!leaf) {
      return;
    }
    this.leaf = null;
    try {
      this.feed(leaf, leaf.decoder.end());
      if (leaf.decoder.malformed) {
        this.s.flag('malformed_mime');
      }
      if (leaf.text && !leaf.textDone) {
        this.s.appendText(leaf.mode === 'html' ? 'html' : 'text', leaf.text.end());
      }
    } catch {
      this.s.flag('malformed_mime');
    }
    leaf.part.decodedSize = leaf.size;
    if (leaf.sink && leaf.attachment) {
      const res = leaf.sink.finish();
      leaf.attachment.size = res.size;
      leaf.attachment.sha256 = res.sha256;
      if (leaf.embedded) {
        this.keepEmbedded(leaf, res);
      }
      this.s.track(completeAttachment(this.s, leaf.attachment, res));
    }
  }

  private keepEmbedded(leaf: LeafState, res: SinkResult): void {
    if (!res.content || this.s.embeddedBytes + res.content.length > MAX_EMBEDDED_BYTES) {
      // too large to look into: what it carries is not analysed
      this.s.flag('part_limit');
      return;
    }
    this.s.embeddedBytes += res.content.length;
    const identity = !leaf.part.transferEncoding || /^(7bit|8bit|binary)$/.test(leaf.part.transferEncoding);
    this.s.embedded.push({
      content: res.content,
      path: leaf.part.path,
      depth: leaf.part.depth,
      offset: identity && this.base.offset !== null ? leaf.part.bodyOffset : null,
      fallbackOffset: leaf.part.bodyOffset,
    });
  }

  /** End of this walker's input. */
  finish(): void {
    this.finishLeaf();
    for (const state of this.states.values()) {
      if (state.multipart && !state.skipped && state.children === 0) {
        this.s.flag('malformed_mime');
        if (state.orphan?.length) {
          // a multipart without (matching) boundaries: its body is still worth reading
          const text = createTextDecoder('utf-8').write(Buffer.concat(state.orphan)).trim();
          if (text && this.s.startText('text')) {
            this.s.appendText('text', text);
          }
        }
      }
    }
    if (this.states.size === 0) {
      this.s.flag('malformed_mime');
    }
  }
}

async function completeAttachment(s: ParseState, att: AttachmentInfo, res: SinkResult): Promise<void> {
  att.trueType = await detectType(res.head);
  if (!res.archive) {
    return;
  }
  if (res.overflow) {
    // too large to buffer for listing
    s.flag('archive_expansion_limit');
    return;
  }
  const content = res.content;
  const kind = res.archive;
  if (!content) {
    return;
  }
  const run = async (): Promise<void> => {
    const members: ArchiveMember[] = [];
    const listing = await listArchive(content, kind, att.name, 1, s.archiveCtx, members);
    att.isArchive = listing.listed;
    att.members = members;
    att.encrypted = listing.encrypted || members.some((m) => m.encrypted);
  };
  // archives share the per-message budgets, so they are listed one after the other
  const next = s.archiveChain.then(run, run);
  s.archiveChain = next.catch(() => {});
  await next;
}

function newSplitter(s: ParseState): FastSplitter {
  return new FastSplitter({
    // the splitter fails once this many nodes were seen; we stop analysing at maxParts
    maxChildNodes: Math.max(1, s.limits.maxParts - s.parts.length) + 1,
    maxHeadSize: MAX_HEAD_SIZE,
    // descend into message/rfc822 parts unless they are marked as attachments
    defaultInlineEmbedded: true,
  });
}

/** Parses an attached message from its decoded bytes. */
function walkEmbedded(s: ParseState, e: Embedded): Promise<void> {
  const walker = new NodeWalker(s, {
    path: `${e.path}.1`,
    depth: e.depth + 1,
    top: false,
    offset: e.offset,
    fallbackOffset: e.fallbackOffset,
  });
  return new Promise<void>((resolve, reject) => {
    const splitter = newSplitter(s);
    const duplex = splitter as unknown as Transform;
    let done = false;
    const end = (err?: Error): void => {
      if (done) {
        return;
      }
      done = true;
      splitter.removeAllListeners('data');
      duplex.removeAllListeners('end');
      duplex.on('error', () => {});
      if (err) {
        splitter.destroy();
        reject(err);
        return;
      }
      walker.finish();
      resolve();
    };
    splitter.on('data', (chunk: SplitterChunk) => {
      if (done) {
        return;
      }
      if (Date.now() > s.deadline) {
        end(s.timeoutError());
        return;
      }
      walker.handle(chunk);
    });
    duplex.on('error', (err: unknown) => {
      walker.splitError(err);
      end();
    });
    duplex.on('end', () => end());
    splitter.end(e.content);
  });
}

/** After the outer message: attached messages (breadth first, bounded by maxDepth). */
async function finishParse(s: ParseState): Promise<ParsedMessage> {
  while (s.embedded.length) {
    s.checkDeadline();
    const next = s.embedded.shift()!;
    await walkEmbedded(s, next);
  }
  return s.result();
}

function mergeLimits(limits: Partial<ParseLimits> | undefined): ParseLimits {
  const merged: ParseLimits = { ...defaultParseLimits };
  if (limits) {
    for (const key of Object.keys(defaultParseLimits) as Array<keyof ParseLimits>) {
      const value = limits[key];
      if (typeof value === 'number' && !Number.isNaN(value)) {
        merged[key] = value;
      }
    }
  }
  return merged;
}

/**
 * Parses a message once, streaming. Throws only ParseTimeoutError (when `timeoutMs` is
 * exceeded, checked between chunks and by a timer so a stalled stream can not wedge the
 * parse) and the input stream's own error; malformed content is reported as anomalies.
 * On timeout the input stream is destroyed.
 */
export function parseMessage(
  input: NodeJS.ReadableStream | Buffer,
  limits?: Partial<ParseLimits>,
): Promise<ParsedMessage> {
  const effective = mergeLimits(limits);
  const s = new ParseState(effective, Date.now());
  const walker = new NodeWalker(s, { path: '1', depth: 0, top: true, offset: 0, fallbackOffset: 0 });

  return new Promise<ParsedMessage>((resolve, reject) => {
    let settled = false;
    let splitDone = false;
    let inputDone = Buffer.isBuffer(input);
    const stream = Buffer.isBuffer(input) ? null : input;

    const splitter = newSplitter(s);
    // the splitter's typings only declare its 'data' event
    const duplex = splitter as unknown as Transform;

    const detach = (): void => {
      clearTimeout(timer);
      splitter.removeAllListeners('data');
      duplex.removeAllListeners('drain');
      duplex.removeAllListeners('end');
      duplex.removeAllListeners('error');
      // a late error of the destroyed splitter must not go unhandled
      duplex.on('error', () => {});
      splitter.destroy();
      if (stream) {
        stream.removeListener('data', onData);
        stream.removeListener('end', onEnd);
        stream.removeListener('close', onClose);
        stream.removeListener('error', onError);
      }
    };

    const fail = (err: Error): void => {
      if (settled) {
        return;
      }
      settled = true;
      detach();
      if (stream) {
        stream.on('error', () => {});
        const destroy = (stream as { destroy?: (err?: Error) => void }).destroy;
        if (err instanceof ParseTimeoutError && typeof destroy === 'function') {
          destroy.call(stream);
        }
      }
      reject(err);
    };

    const maybeComplete = (): void => {
      if (settled || !splitDone || !inputDone) {
        return;
      }
      walker.finish();
      finishParse(s).then(
        (result) => {
          if (settled) {
            return;
          }
          settled = true;
          detach();
          resolve(result);
        },
        (err: unknown) => fail(err instanceof Error ? err : new Error(String(err))),
      );
    };

    const timer = setTimeout(() => fail(s.timeoutError()), effective.timeoutMs);

    splitter.on('data', (chunk: SplitterChunk) => {
      if (settled) {
        return;
      }
      if (Date.now() > s.deadline) {
        fail(s.timeoutError());
        return;
      }
      walker.handle(chunk);
    });
    duplex.on('error', (err: unknown) => {
      if (settled || splitDone) {
        return;
      }
      walker.splitError(err);
      splitDone = true;
      // keep reading the input (for its size) without splitting it
      stream?.resume();
      maybeComplete();
    });
    duplex.on('end', () => {
      splitDone = true;
      maybeComplete();
    });
    duplex.on('drain', () => {
      if (!settled && !splitDone) {
        stream?.resume();
      }
    });

    function onData(chunk: unknown): void {
      if (settled) {
        return;
      }
      const buf = toBuffer(chunk);
      s.size += buf.length;
      if (Date.now() > s.deadline) {
        fail(s.timeoutError());
        return;
      }
      if (splitDone) {
        return;
      }
      if (!splitter.write(buf)) {
        stream?.pause();
      }
    }
    function onEnd(): void {
      if (inputDone) {
        return;
      }
      inputDone = true;
      if (splitDone) {
        maybeComplete();
      } else {
        splitter.end();
      }
    }
    function onClose(): void {
      if (!inputDone) {
        // closed without an end: parse what arrived
        s.flag('malformed_mime');
        onEnd();
      }
    }
    function onError(err: unknown): void {
      fail(err instanceof Error ? err : new Error(String(err)));
    }

    if (Buffer.isBuffer(input)) {
      s.size = input.length;
      splitter.end(input);
    } else {
      input.on('data', onData);
      input.once('end', onEnd);
      input.once('close', onClose);
      input.once('error', onError);
      input.resume();
    }
  });
}
