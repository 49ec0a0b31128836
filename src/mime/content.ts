// Streaming sink for decoded binary content (attachments, archive members): size, sha256,
// the first bytes for magic-byte detection, and - only for archives - the whole content
// up to a bound so that it can be listed afterwards.
import { createHash, type Hash } from 'node:crypto';
import { fileTypeFromBuffer } from 'file-type';

/** bytes kept from the start of every attachment / member for magic-byte detection */
export const HEAD_BYTES = 4096;
/** decoded archives (attachments and nested members) are buffered up to this size for listing */
export const MAX_ARCHIVE_BUFFER = 32 * 1024 * 1024;

export type ArchiveKind = 'zip' | 'gzip';

/** Archive format from the first bytes, or null. Needs at least 4 bytes to say yes. */
export function sniffArchive(head: Buffer): ArchiveKind | null {
  if (head.length < 4) {
    return null;
  }
  if (head[0] === 0x50 && head[1] === 0x4b) {
    const a = head[2];
    const b = head[3];
    if ((a === 3 && b === 4) || (a === 5 && b === 6) || (a === 7 && b === 8)) {
      return 'zip';
    }
    return null;
  }
  if (head[0] === 0x1f && head[1] === 0x8b && head[2] === 0x08) {
    return 'gzip';
  }
  return null;
}

/**
 * Lower-case last extension of a file name without the dot, "" when there is none. Only the
 * last path segment counts, and trailing dots and spaces (which Windows drops) are ignored.
 */
export function extensionOf(name: string): string {
  let base = name;
  const slash = Math.max(base.lastIndexOf('/'), base.lastIndexOf('\\'));
  if (slash >= 0) {
    base = base.slice(slash + 1);
  }
  base = base.replace(/[.\s]+$/, '');
  const dot = base.lastIndexOf('.');
  if (dot < 0 || dot === base.length - 1) {
    return '';
  }
  return base.slice(dot + 1).toLowerCase();
}

export interface SinkResult {
  size: number;
  sha256: string;
  head: Buffer;
  archive: ArchiveKind | null;
  /** whole content when it was kept (an archive, or keep 'all') and fit in the bound */
  content: Buffer | null;
  /** content that should have been kept was larger than the bound */
  overflow: boolean;
}

/** what a sink keeps of the whole content: nothing, archives only, or everything */
export type KeepMode = 'none' | 'archives' | 'all';

export class ContentSink {
  size = 0;
  private readonly hash: Hash = createHash('sha256');
  private head: Buffer | null = null;
  private headLen = 0;
  private archive: ArchiveKind | null | undefined = undefined;
  private kept: Buffer[] | null;
  private overflow = false;
  private readonly mode: KeepMode;
  private readonly keepLimit: number;

  constructor(mode: KeepMode, keepLimit: number = MAX_ARCHIVE_BUFFER) {
    this.mode = mode;
    this.keepLimit = keepLimit;
    this.kept = mode === 'all' ? [] : null;
  }

  write(chunk: Buffer): void {
    if (!chunk.length) {
      return;
    }
    this.size += chunk.length;
    this.hash.update(chunk);
    if (this.headLen < HEAD_BYTES) {
      if (!this.head) {
        this.head = Buffer.allocUnsafe(HEAD_BYTES);
      }
      this.headLen += chunk.copy(this.head, this.headLen, 0, Math.min(chunk.length, HEAD_BYTES - this.headLen));
    }
    if (this.archive === undefined && this.headLen >= 4 && this.head) {
      this.archive = sniffArchive(this.head.subarray(0, this.headLen));
      if (this.archive && this.mode === 'archives') {
        // the (fewer than 4) bytes written before this chunk are all in head
        const before = this.size - chunk.length;
        this.kept = before > 0 ? [Buffer.from(this.head.subarray(0, before))] : [];
      }
    }
    if (this.kept) {
      if (this.size > this.keepLimit) {
        this.kept = null;
        this.overflow = true;
      } else {
        this.kept.push(chunk);
      }
    }
  }

  finish(): SinkResult {
    const head = this.head ? this.head.subarray(0, this.headLen) : Buffer.alloc(0);
    const archive = this.archive ?? (this.headLen >= 4 ? sniffArchive(head) : null);
    return {
      size: this.size,
      sha256: this.hash.digest('hex'),
      head,
      archive,
      content: this.kept ? Buffer.concat(this.kept) : null,
      overflow: this.overflow,
    };
  }
}

/** MIME type from magic bytes, or null. Never throws. */
export async function detectType(head: Buffer): Promise<string | null> {
  if (head.length === 0) {
    return null;
  }
  try {
    const result = await fileTypeFromBuffer(head);
    return result ? result.mime : null;
  } catch {
    return null;
  }
}
