// Archive listing for attachments: zip (via yauzl, from an in-memory buffer) and single
// member gzip. Member data is inflated by us, bounded: members whose declared ratio is
// above maxCompressionRatio are not expanded at all, and inflation stops mid-stream as
// soon as the per-message expansion budget is used up. Nested archives are listed down
// to maxArchiveDepth.
import { createGunzip, createInflateRaw, gunzipSync, inflateRawSync } from 'node:zlib';
import yauzl from 'yauzl';
import type { Entry, ZipFile } from 'yauzl';
import { ContentSink, HEAD_BYTES, detectType, extensionOf, type ArchiveKind, type SinkResult } from './content.ts';
import { ParseTimeoutError } from './types.ts';
import type { ArchiveMember, ParseAnomaly, ParseLimits } from './types.ts';

/**
 * Members whose declared size is at most this are never treated as bombs: they cannot
 * expand to anything harmful, and small, very repetitive files (blank forms, padding)
 * legitimately compress far better than maxCompressionRatio.
 */
export const BOMB_MIN_SIZE = 1024 * 1024;
/** members up to this declared size are inflated synchronously in one call */
const SYNC_INFLATE_MAX = 1024 * 1024;

/** State shared by all archives of one message. */
export interface ArchiveContext {
  readonly limits: ParseLimits;
  /** Date.now() value after which work stops with ParseTimeoutError */
  readonly deadline: number;
  membersListed: number;
  entriesSeen: number;
  expandedBytes: number;
  flag(anomaly: ParseAnomaly): void;
}

export interface ArchiveListing {
  /** the archive could be opened and listed (possibly partially) */
  listed: boolean;
  encrypted: boolean;
}

function checkDeadline(ctx: ArchiveContext): void {
  if (Date.now() > ctx.deadline) {
    throw new ParseTimeoutError(`parse exceeded ${ctx.limits.timeoutMs} ms while reading archives`);
  }
}

function isBomb(size: number, compressedSize: number, ctx: ArchiveContext): boolean {
  if (size <= BOMB_MIN_SIZE) {
    return false;
  }
  return compressedSize <= 0 || size / compressedSize > ctx.limits.maxCompressionRatio;
}

/**
 * Lists `content` (an archive of `kind`) into `out`, its members at `depth`, recursing
 * into nested archives. Never throws except ParseTimeoutError.
 */
export async function listArchive(
  content: Buffer,
  kind: ArchiveKind,
  name: string,
  depth: number,
  ctx: ArchiveContext,
  out: ArchiveMember[],
): Promise<ArchiveListing> {
  try {
    return kind === 'zip' ? await listZip(content, depth, ctx, out) : await listGzip(content, name, depth, ctx, out);
  } catch (err) {
    if (err instanceof ParseTimeoutError) {
      throw err;
    }
    ctx.flag('archive_corrupt');
    return { listed: false, encrypted: false };
  }
}

/** A zip entry as read from the central directory (yauzl) or from a local header walk. */
interface ZipItem {
  name: string;
  flags: number;
  method: number;
  compressedSize: number;
  /** declared uncompressed size, -1 when unknown */
  size: number;
  /** the compressed data, or null when it can not be located */
  data(): Promise<Buffer | null>;
}

function decodeZipName(flags: number, raw: Buffer, extraFields: Array<{ id: number; data: Buffer }>): string {
  try {
    return yauzl.getFileNameLowLevel(flags, raw, extraFields, false);
  } catch {
    return raw.toString('latin1');
  }
}

function entryLimitReached(ctx: ArchiveContext): boolean {
  return ctx.membersListed >= ctx.limits.maxArchiveMembers || ctx.entriesSeen >= ctx.limits.maxArchiveMembers * 4 + 64;
}

async function listZip(buf: Buffer, depth: number, ctx: ArchiveContext, out: ArchiveMember[]): Promise<ArchiveListing> {
  const result: ArchiveListing = { listed: false, encrypted: false };
  let zip: ZipFile | null = null;
  try {
    zip = await yauzl.fromBufferPromise(buf, {
      lazyEntries: true,
      // names are decoded below without yauzl's validation, which rejects "../x" and
      // absolute paths - exactly the names worth reporting
      decodeStrings: false,
      validateEntrySizes: false,
      autoClose: false,
    });
  } catch {
    zip = null;
  }
  let handled = 0;
  let failed = zip === null;
  if (zip) {
    const opened = zip;
    try {
      const entries = opened.eachEntry();
      for (;;) {
        checkDeadline(ctx);
        if (entryLimitReached(ctx)) {
          if (opened.entriesRead < opened.entryCount) {
            ctx.flag('archive_member_limit');
          }
          break;
        }
        let next: IteratorResult<Entry>;
        try {
          next = await entries.next();
        } catch (err) {
          if (/encrypt/i.test(String((err as Error)?.message))) {
            result.encrypted = true;
          }
          failed = true;
          break;
        }
        if (next.done) {
          break;
        }
        const entry = next.value;
        result.listed = true;
        handled++;
        const item: ZipItem = {
          name: decodeZipName(entry.generalPurposeBitFlag, entry.fileNameRaw, entry.extraFields),
          flags: entry.generalPurposeBitFlag,
          method: entry.compressionMethod,
          compressedSize: entry.compressedSize,
          size: entry.uncompressedSize,
          data: async () => {
            try {
              const start = (await opened.readLocalFileHeaderPromise(entry, { minimal: true })).fileDataStart;
              const raw = buf.subarray(start, start + entry.compressedSize);
              return raw.length === entry.compressedSize ? raw : null;
            } catch {
              return null;
            }
          },
        };
        if (await handleZipItem(item, depth, ctx, out)) {
          result.encrypted = true;
        }
      }
    } finally {
      try {
        opened.close();
      } catch {
        // already closed
      }
    }
  }
  if (failed) {
    ctx.flag('archive_corrupt');
  }
  if (failed && handled === 0) {
    // The central directory is broken or missing (truncated, shifted offsets, junk in
    // front): list what the local file headers say, the way lenient unzippers do.
    for (const item of walkLocalHeaders(buf)) {
      checkDeadline(ctx);
      if (entryLimitReached(ctx)) {
        ctx.flag('archive_member_limit');
        break;
      }
      result.listed = true;
      if (await handleZipItem(item, depth, ctx, out)) {
        result.encrypted = true;
      }
    }
  }
  return result;
}

const LOCAL_SIG = Buffer.from([0x50, 0x4b, 0x03, 0x04]);
const DESCRIPTOR_SIG = Buffer.from([0x50, 0x4b, 0x07, 0x08]);
const CENTRAL_SIG = Buffer.from([0x50, 0x4b, 0x01, 0x02]);

/** Walks the local file headers of a zip from the first one on. */
function* walkLocalHeaders(buf: Buffer): Generator<ZipItem> {
  let pos = buf.indexOf(LOCAL_SIG);
  while (pos >= 0 && pos + 30 <= buf.length && buf.readUInt32LE(pos) === 0x04034b50) {
    const flags = buf.readUInt16LE(pos + 6);
    const method = buf.readUInt16LE(pos + 8);
    let compressedSize = buf.readUInt32LE(pos + 18);
    let size = buf.readUInt32LE(pos + 22);
    const nameLen = buf.readUInt16LE(pos + 26);
    const extraLen = buf.readUInt16LE(pos + 28);
    const nameRaw = buf.subarray(pos + 30, pos + 30 + nameLen);
    const dataStart = pos + 30 + nameLen + extraLen;
    if (dataStart > buf.length) {
      return;
    }
    let extraFields: Array<{ id: number; data: Buffer }> = [];
    try {
      extraFields = yauzl.parseExtraFields(buf.subarray(pos + 30 + nameLen, dataStart));
    } catch {
      extraFields = [];
    }
    if (compressedSize === 0xffffffff || size === 0xffffffff) {
      const zip64 = extraFields.find((f) => f.id === 0x0001);
      if (zip64 && zip64.data.length >= 16) {
        size = Number(zip64.data.readBigUInt64LE(0));
        compressedSize = Number(zip64.data.readBigUInt64LE(8));
      }
    }
    let next: number;
    if (flags & 0x08 && compressedSize === 0) {
      // sizes follow the data in a descriptor: the data ends where the next record starts
      const desc = buf.indexOf(DESCRIPTOR_SIG, dataStart);
      if (desc >= 0 && desc + 16 <= buf.length) {
        compressedSize = desc - dataStart;
        size = buf.readUInt32LE(desc + 12);
        next = desc + 16;
      } else {
        let end = buf.indexOf(LOCAL_SIG, dataStart);
        if (end < 0) {
          end = buf.indexOf(CENTRAL_SIG, dataStart);
        }
        if (end < 0) {
          end = buf.length;
        }
        compressedSize = end - dataStart;
        size = -1;
        next = end;
      }
    } else {
      next = dataStart + compressedSize;
      if (flags & 0x08 && next + 4 <= buf.length && buf.readUInt32LE(next) === 0x08074b50) {
        next += 16;
      }
    }
    const raw = buf.subarray(dataStart, Math.min(buf.length, dataStart + compressedSize));
    yield {
      name: decodeZipName(flags, nameRaw, extraFields),
      flags,
      method,
      compressedSize,
      size,
      data: () => Promise.resolve(raw.length === compressedSize ? raw : null),
    };
    if (next <= pos || next + 4 > buf.length || buf.readUInt32LE(next) !== 0x04034b50) {
      return;
    }
    pos = next;
  }
}

/** Lists one zip entry; returns true when it or a nested archive member is encrypted. */
async function handleZipItem(
  item: ZipItem,
  depth: number,
  ctx: ArchiveContext,
  out: ArchiveMember[],
): Promise<boolean> {
  ctx.entriesSeen++;
  if (item.name.endsWith('/') || item.name.endsWith('\\')) {
    // directory entries are not listed
    return false;
  }
  ctx.membersListed++;
  const member: ArchiveMember = {
    name: item.name,
    extension: extensionOf(item.name),
    size: Math.max(0, item.size),
    compressedSize: item.compressedSize,
    trueType: null,
    sha256: null,
    encrypted: (item.flags & 1) !== 0,
    depth,
  };
  out.push(member);
  if (member.encrypted) {
    return true;
  }
  if (item.method !== 0 && item.method !== 8) {
    // unsupported compression method: listed, not read
    return false;
  }
  if (item.size >= 0 && isBomb(item.size, item.compressedSize, ctx)) {
    ctx.flag('archive_bomb');
    return false;
  }
  const raw = await item.data();
  if (!raw) {
    ctx.flag('archive_corrupt');
    return false;
  }
  return expandMember(raw, item.method === 0 ? 'stored' : 'raw', item.size, member, ctx, out);
}

async function listGzip(
  buf: Buffer,
  hint: string,
  depth: number,
  ctx: ArchiveContext,
  out: ArchiveMember[],
): Promise<ArchiveListing> {
  if (buf.length < 18 || buf[0] !== 0x1f || buf[1] !== 0x8b) {
    ctx.flag('archive_corrupt');
    return { listed: false, encrypted: false };
  }
  if (ctx.membersListed >= ctx.limits.maxArchiveMembers) {
    ctx.flag('archive_member_limit');
    return { listed: true, encrypted: false };
  }
  const flags = buf[3];
  let pos = 10;
  if (flags & 0x04) {
    pos += 2 + buf.readUInt16LE(pos);
  }
  let name = '';
  if (flags & 0x08 && pos < buf.length) {
    const end = buf.indexOf(0, pos);
    if (end > pos && end - pos <= 1024) {
      name = buf.toString('latin1', pos, end);
    }
  }
  if (!name) {
    const base = hint.replace(/^.*[\\/]/, '');
    name = /\.tgz$/i.test(base) ? base.slice(0, -4) + '.tar' : base.replace(/[.\-_](gz|gzip)$/i, '');
  }
  ctx.membersListed++;
  ctx.entriesSeen++;
  const member: ArchiveMember = {
    name,
    extension: extensionOf(name),
    // ISIZE: uncompressed size modulo 2^32, as declared by the sender
    size: buf.readUInt32LE(buf.length - 4),
    compressedSize: buf.length,
    trueType: null,
    sha256: null,
    encrypted: false,
    depth,
  };
  out.push(member);
  if (isBomb(member.size, member.compressedSize, ctx)) {
    ctx.flag('archive_bomb');
    return { listed: true, encrypted: false };
  }
  const encrypted = await expandMember(buf, 'gzip', member.size, member, ctx, out);
  return { listed: true, encrypted };
}

type Method = 'stored' | 'raw' | 'gzip';

interface Expansion {
  truncated: boolean;
  error: boolean;
}

/**
 * Expands one member into a sink (bounded by the remaining budget), then sets trueType,
 * sha256 (only when read completely) and lists nested archives.
 */
async function expandMember(
  raw: Buffer,
  method: Method,
  declared: number,
  member: ArchiveMember,
  ctx: ArchiveContext,
  out: ArchiveMember[],
): Promise<boolean> {
  const { limits } = ctx;
  const remaining = limits.maxArchiveExpandedBytes - ctx.expandedBytes;
  if (remaining <= 0) {
    ctx.flag('archive_expansion_limit');
    return false;
  }
  const headOnly = declared > remaining;
  if (headOnly) {
    // it can not be read completely: only look at its first bytes for the type
    ctx.flag('archive_expansion_limit');
  }
  // never inflate past the declared size (plus one byte, to notice a lie)
  const cap = headOnly
    ? Math.min(HEAD_BYTES, remaining)
    : declared >= 0
      ? Math.min(remaining, declared + 1)
      : remaining;
  const nestedAllowed = member.depth < limits.maxArchiveDepth;
  const sink = new ContentSink(nestedAllowed && !headOnly ? 'archives' : 'none');
  const expansion = await expand(raw, method, declared, cap, sink, ctx);
  const res: SinkResult = sink.finish();
  if (expansion.error) {
    ctx.flag('archive_corrupt');
  } else if (expansion.truncated && !headOnly) {
    // more data than declared, or the budget ran out
    ctx.flag(declared >= 0 && res.size > declared ? 'archive_corrupt' : 'archive_expansion_limit');
  }
  member.trueType = await detectType(res.head);
  const complete = !expansion.truncated && !expansion.error && !headOnly;
  if (!complete) {
    return false;
  }
  member.sha256 = res.sha256;
  if (declared < 0) {
    member.size = res.size;
  } else if (res.size !== declared) {
    ctx.flag('archive_corrupt');
  }
  if (!res.archive) {
    return false;
  }
  if (!nestedAllowed) {
    ctx.flag('archive_depth_limit');
    return false;
  }
  if (!res.content) {
    if (res.overflow) {
      ctx.flag('archive_expansion_limit');
    }
    return false;
  }
  const nested = await listArchive(res.content, res.archive, member.name, member.depth + 1, ctx, out);
  return nested.encrypted;
}

async function expand(
  raw: Buffer,
  method: Method,
  declared: number,
  cap: number,
  sink: ContentSink,
  ctx: ArchiveContext,
): Promise<Expansion> {
  checkDeadline(ctx);
  if (method === 'stored') {
    const take = Math.min(raw.length, cap);
    sink.write(raw.subarray(0, take));
    ctx.expandedBytes += take;
    return { truncated: take < raw.length, error: false };
  }
  if (declared >= 0 && declared <= SYNC_INFLATE_MAX && declared <= cap) {
    try {
      const opts = { maxOutputLength: Math.max(1, declared) };
      const data = method === 'raw' ? inflateRawSync(raw, opts) : gunzipSync(raw, opts);
      sink.write(data);
      ctx.expandedBytes += data.length;
      return { truncated: false, error: false };
    } catch {
      // larger than declared, or a broken stream: read it as a stream (bounded by the
      // budget) to keep whatever inflates before the damage
    }
  }
  return expandStream(raw, method, cap, sink, ctx);
}

function expandStream(
  raw: Buffer,
  method: 'raw' | 'gzip',
  cap: number,
  sink: ContentSink,
  ctx: ArchiveContext,
): Promise<Expansion> {
  return new Promise<Expansion>((resolve, reject) => {
    const z = method === 'raw' ? createInflateRaw() : createGunzip();
    let taken = 0;
    let settled = false;
    const settle = (value: Expansion | Error): void => {
      if (settled) {
        return;
      }
      settled = true;
      z.removeAllListeners('data');
      z.on('error', () => {});
      z.destroy();
      if (value instanceof Error) {
        reject(value);
      } else {
        resolve(value);
      }
    };
    z.on('data', (chunk: Buffer) => {
      if (settled) {
        return;
      }
      if (Date.now() > ctx.deadline) {
        settle(new ParseTimeoutError(`parse exceeded ${ctx.limits.timeoutMs} ms while inflating an archive member`));
        return;
      }
      const room = cap - taken;
      if (chunk.length > room) {
        if (room > 0) {
          sink.write(chunk.subarray(0, room));
          taken += room;
          ctx.expandedBytes += room;
        }
        settle({ truncated: true, error: false });
        return;
      }
      sink.write(chunk);
      taken += chunk.length;
      ctx.expandedBytes += chunk.length;
    });
    z.once('end', () => settle({ truncated: false, error: false }));
    z.once('error', () => settle({ truncated: false, error: true }));
    z.end(raw);
  });
}
