// The parse stage: one streaming pass over the message with @zone-eu/mailsplit's Splitter.
// Leaf bodies are transfer-decoded chunk by chunk; attachments are hashed while streaming
// and only their first bytes are kept (plus the whole decoded content for archives, up to
// a bound); text/plain and text/html are charset-decoded up to maxTextChars. Afterwards
// attachments get a magic-byte type and archives are listed, and URLs are extracted from
// the kept text. Malformed input never throws; only exceeding timeoutMs does.
import { Splitter } from '@zone-eu/mailsplit';
import type { MimeNode, SplitterChunk } from '@zone-eu/mailsplit';
import type { Transform } from 'node:stream';
import { listArchive, type ArchiveContext } from './archive.ts';
import { ContentSink, detectType, extensionOf, type SinkResult } from './content.ts';
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
}

interface TextBuffer {
  chunks: string[];
  length: number;
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

class MessageParser {
  readonly limits: ParseLimits;
  readonly deadline: number;
  size = 0;
  private pos = 0;
  private readonly headers: Array<{ key: string; value: string }> = [];
  private from: string | null = null;
  private subject: string | null = null;
  private messageId: string | null = null;
  private readonly parts: MimePart[] = [];
  private readonly attachments: AttachmentInfo[] = [];
  private readonly anomalies = new Set<ParseAnomaly>();
  private readonly text: TextBuffer = { chunks: [], length: 0 };
  private readonly html: TextBuffer = { chunks: [], length: 0 };
  private readonly states = new Map<MimeNode, NodeState>();
  private leaf: LeafState | null = null;
  private broken = false;
  private orphanBytes = 0;
  private readonly pending: Array<Promise<void>> = [];
  private archiveChain: Promise<void> = Promise.resolve();
  private readonly archiveCtx: ArchiveContext;

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
      } else if (this.orphanBytes < MAX_ORPHAN_BYTES) {
        const state = this.states.get(chunk.node);
        if (state?.orphan && state.children === 0) {
          const take = chunk.value.subarray(0, MAX_ORPHAN_BYTES - this.orphanBytes);
          state.orphan.push(take);
          this.orphanBytes += take.length;
        }
      }
    } catch {
      // a bug or an input we did not foresee: keep what we have, analyse no further
      this.flag('malformed_mime');
      this.broken = true;
    }
  }

  /** The splitter failed (header block too large, too many nodes): stop splitting. */
  splitError(err: unknown): void {
    const message = String((err as Error)?.message ?? err);
    this.flag(/child nodes/i.test(message) ? 'part_limit' : 'malformed_mime');
    try {
      this.finishLeaf();
    } catch {
      this.flag('malformed_mime');
    }
    this.broken = true;
  }

  private onNode(node: MimeNode): void {
    this.finishLeaf();
    const headerOffset = this.pos;
    this.pos += node._headerlen || 0;
    const bodyOffset = this.pos;

    const parent = node.parentNode ? this.states.get(node.parentNode) : undefined;
    let path = '1';
    let depth = 0;
    if (parent) {
      parent.children++;
      path = `${parent.path}.${parent.children}`;
      depth = parent.depth + 1;
    } else if (node.parentNode || this.states.size > 0) {
      // a second root can not happen with mailsplit; do not let it clobber the first
      this.flag('malformed_mime');
      path = `1.${this.states.size + 1}`;
      depth = 1;
    }
    const state: NodeState = { path, depth, children: 0, skipped: false, multipart: false, orphan: null };
    if (parent?.orphan) {
      // the multipart has content after all
      this.orphanBytes -= parent.orphan.reduce((n, b) => n + b.length, 0);
      parent.orphan = null;
    }
    this.states.set(node, state);

    if (parent?.skipped) {
      state.skipped = true;
      return;
    }
    if (depth > this.limits.maxDepth) {
      this.flag('depth_limit');
      state.skipped = true;
      return;
    }
    if (this.parts.length >= this.limits.maxParts) {
      this.flag('part_limit');
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
    this.parts.push(part);

    if (!parent && !node.parentNode) {
      this.captureHeaders(node);
    }

    if (node.multipart) {
      state.multipart = true;
      state.orphan = [];
      if (!node._boundary) {
        this.flag('malformed_mime');
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
    };
    if (mode === 'attachment') {
      const name = filename ?? '';
      leaf.sink = new ContentSink(true);
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
      this.attachments.push(leaf.attachment);
    } else if (mode === 'text' || mode === 'html') {
      const buf = mode === 'html' ? this.html : this.text;
      if (buf.length >= this.limits.maxTextChars) {
        this.flag('text_truncated');
        leaf.textDone = true;
      } else {
        leaf.text = createTextDecoder(node.charset || null);
        if (buf.chunks.length) {
          buf.chunks.push('\n');
          buf.length++;
        }
      }
    }
    this.leaf = leaf;
  }

  private captureHeaders(node: MimeNode): void {
    const lines = node.headers ? node.headers.getList() : [];
    for (const { key, line } of lines) {
      if (!key) {
        if (line.trim()) {
          this.flag('malformed_mime');
        }
        continue;
      }
      let value = headerValue(line);
      if (key === 'subject' || key === 'from') {
        value = decodeWords(value);
        if (key === 'subject' && this.subject === null) {
          this.subject = value;
        } else if (key === 'from' && this.from === null) {
          this.from = value;
        }
      } else if (key === 'message-id' && this.messageId === null) {
        this.messageId = value;
      }
      this.headers.push({ key, value });
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
      this.appendText(leaf, leaf.text.write(decoded));
    }
  }

  private appendText(leaf: LeafState, s: string): void {
    if (!s) {
      return;
    }
    const buf = leaf.mode === 'html' ? this.html : this.text;
    const room = this.limits.maxTextChars - buf.length;
    if (s.length > room) {
      if (room > 0) {
        buf.chunks.push(s.slice(0, room));
        buf.length += room;
      }
      this.flag('text_truncated');
      leaf.textDone = true;
      return;
    }
    buf.chunks.push(s);
    buf.length += s.length;
  }

  private appendOrphan(raw: Buffer): void {
    const s = createTextDecoder('utf-8').write(raw).trim();
    if (!s) {
      return;
    }
    const buf = this.text;
    if (buf.chunks.length && buf.length < this.limits.maxTextChars) {
      buf.chunks.push('\n');
      buf.length++;
    }
    const room = this.limits.maxTextChars - buf.length;
    if (s.length > room) {
      this.flag('text_truncated');
    }
    if (room > 0) {
      const piece = s.length > room ? s.slice(0, room) : s;
      buf.chunks.push(piece);
      buf.length += piece.length;
    }
  }

  finishLeaf(): void {
    const leaf = this.leaf;
    if (!leaf) {
      return;
    }
    this.leaf = null;
    this.feed(leaf, leaf.decoder.end());
    if (leaf.decoder.malformed) {
      this.flag('malformed_mime');
    }
    leaf.part.decodedSize = leaf.size;
    if (leaf.text && !leaf.textDone) {
      this.appendText(leaf, leaf.text.end());
    }
    if (leaf.sink && leaf.attachment) {
      const res = leaf.sink.finish();
      leaf.attachment.size = res.size;
      leaf.attachment.sha256 = res.sha256;
      const task = this.completeAttachment(leaf.attachment, res);
      // the failure (only ever a timeout) is reported through Promise.all in finish()
      task.catch(() => {});
      this.pending.push(task);
    }
  }

  private async completeAttachment(att: AttachmentInfo, res: SinkResult): Promise<void> {
    att.trueType = await detectType(res.head);
    if (!res.archive) {
      return;
    }
    if (res.overflow) {
      // too large to buffer for listing
      this.flag('archive_expansion_limit');
      return;
    }
    const content = res.content;
    const kind = res.archive;
    if (!content) {
      return;
    }
    const run = async (): Promise<void> => {
      const members: ArchiveMember[] = [];
      const listing = await listArchive(content, kind, att.name, 1, this.archiveCtx, members);
      att.isArchive = listing.listed;
      att.members = members;
      att.encrypted = listing.encrypted || members.some((m) => m.encrypted);
    };
    // archives share the per-message budgets, so they are listed one after the other
    const next = this.archiveChain.then(run, run);
    this.archiveChain = next.catch(() => {});
    await next;
  }

  async finish(): Promise<ParsedMessage> {
    try {
      this.finishLeaf();
    } catch {
      this.flag('malformed_mime');
    }
    for (const state of this.states.values()) {
      if (state.multipart && !state.skipped && state.children === 0) {
        this.flag('malformed_mime');
        if (state.orphan?.length) {
          // a multipart without (matching) boundaries: its body is still worth reading
          this.appendOrphan(Buffer.concat(state.orphan));
        }
      }
    }
    if (this.states.size === 0) {
      this.flag('malformed_mime');
    }
    await Promise.all(this.pending);
    if (Date.now() > this.deadline) {
      throw this.timeoutError();
    }
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
  const effective: ParseLimits = { ...defaultParseLimits, ...limits };
  const parser = new MessageParser(effective, Date.now());

  return new Promise<ParsedMessage>((resolve, reject) => {
    let settled = false;
    let splitDone = false;
    let inputDone = Buffer.isBuffer(input);
    const stream = Buffer.isBuffer(input) ? null : input;

    const splitter = new Splitter({
      // the splitter fails once this many nodes were seen; we stop analysing at maxParts
      maxChildNodes: Math.max(1, effective.maxParts) + 1,
      maxHeadSize: MAX_HEAD_SIZE,
      // descend into message/rfc822 parts unless they are marked as attachments
      defaultInlineEmbedded: true,
    });

    // the splitter's typings only declare its 'data' event
    const duplex = splitter as unknown as Transform;

    const detach = (): void => {
      clearTimeout(timer);
      splitter.removeAllListeners('data');
      splitter.removeAllListeners('drain');
      splitter.removeAllListeners('end');
      splitter.removeAllListeners('error');
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
      parser.finish().then(
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

    const timer = setTimeout(() => fail(parser.timeoutError()), effective.timeoutMs);

    splitter.on('data', (chunk: SplitterChunk) => {
      if (settled) {
        return;
      }
      if (Date.now() > parser.deadline) {
        fail(parser.timeoutError());
        return;
      }
      parser.handle(chunk);
    });
    duplex.on('error', (err: unknown) => {
      if (settled || splitDone) {
        return;
      }
      parser.splitError(err);
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
      parser.size += buf.length;
      if (Date.now() > parser.deadline) {
        fail(parser.timeoutError());
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
        parser.flag('malformed_mime');
        onEnd();
      }
    }
    function onError(err: unknown): void {
      fail(err instanceof Error ? err : new Error(String(err)));
    }

    if (Buffer.isBuffer(input)) {
      parser.size = input.length;
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
