// The message copies in flight: one per (message, mail policy) from the policy split until every
import { open } from 'node:fs/promises';
// recipient is settled. The table owns the memory budget for message bytes kept between ingress and
// delivery; past it, every step reads the spool file instead.
import { createReadStream, existsSync, openSync, readSync, closeSync } from 'node:fs';
import type { SpoolEnvelope } from '../spool/spool.ts';
import type { QuarantineName } from '../quarantine/quarantine.ts';

/** One message copy moving through the pipeline and the delivery queue. */
export interface Copy {
  mid: number;
  parentMid: number | null;
  file: string;
  bodyOffset: number;
  /** message bytes kept from ingress for small messages; null means read the spool file */
  bytes: Buffer | null;
  size: number;
  env: SpoolEnvelope;
  policy: string;
  recipients: Array<{ rid: number; address: string }>;
  /** rids not yet delivered, bounced or deleted */
  pending: Set<number>;
  outcomes: Map<number, Outcome>;
  /** resumed from the spool at start: an earlier run may have recorded part of its scan */
  recovered: boolean;
  /** on its way out of these quarantines: rescanned, never held in them again */
  releasedFrom: QuarantineName[];
  /** subject tag for a message released by its quarantine's default action (scheduled exit, overflow) */
  releaseTag: string | null;
  /** X-Breakwater-Quarantine: how it left the quarantine */
  releaseNote: string | null;
  /** alternate mail host chosen by Outbreak Filters' modification */
  routeOverride: string | null;
  /** a policy changed its bytes (CopyModifier, or a modified file found by recovery): ARC sealing applies */
  modified?: boolean;
  /** our Authentication-Results value from its last scan, put on top at send time (delivery/signing.ts) */
  authResults?: string | null;
}

/** How a recipient of a copy was settled. */
/** deleted: by an administrator or a quarantine; dropped: by the policy's drop verdict */
export type Outcome = 'delivered' | 'bounced' | 'deleted' | 'dropped';

/** Where a copy's bytes are: in memory, or a byte range of a spool file. */
export type CopyBytes = Pick<Copy, 'bytes' | 'file' | 'bodyOffset' | 'size'>;

/** Message bytes kept in memory between ingress and delivery, across all messages; beyond it, read the spool. */
export const MAX_HELD_BYTES = 16 * 1024 * 1024;

export class CopyTable {
  private readonly copies = new Map<number, Copy>();
  /** bytes of messages kept in memory (Copy.bytes), bounded by maxBytes */
  private bytesInMemory = 0;
  private readonly maxBytes: number;

  constructor(maxBytes = MAX_HELD_BYTES) {
    this.maxBytes = maxBytes;
  }

  get size(): number {
    return this.copies.size;
  }

  get heldBytes(): number {
    return this.bytesInMemory;
  }

  get(mid: number): Copy | undefined {
    return this.copies.get(mid);
  }

  has(mid: number): boolean {
    return this.copies.has(mid);
  }

  values(): IterableIterator<Copy> {
    return this.copies.values();
  }

  /** Whether `bytes` fit the memory budget now (else the caller keeps only the spool file). */
  fits(bytes: Buffer | null): bytes is Buffer {
    return !!bytes && this.bytesInMemory + bytes.length <= this.maxBytes;
  }

  /** Whether a message of `size` bytes would fit the memory budget now. */
  fitsSize(size: number): boolean {
    return this.bytesInMemory + size <= this.maxBytes;
  }

  add(copy: Copy): void {
    this.copies.set(copy.mid, copy);
    if (copy.bytes) this.bytesInMemory += copy.bytes.length;
  }

  delete(copy: Copy): void {
    this.copies.delete(copy.mid);
    this.dropBytes(copy);
  }

  /** Keeps `bytes` in memory for the copy when they fit the budget. */
  keepBytes(copy: Copy, bytes: Buffer): void {
    this.dropBytes(copy);
    if (this.fits(bytes)) {
      copy.bytes = bytes;
      this.bytesInMemory += bytes.length;
    }
  }

  /** Lets go of a copy's in-memory bytes (it waits for a retry, or is done): the spool file stays. */
  dropBytes(copy: Copy | undefined): void {
    if (!copy?.bytes) return;
    this.bytesInMemory -= copy.bytes.length;
    copy.bytes = null;
  }
}

/** The message bytes of a copy, from memory or its spool file. */
export async function readCopyBytes(copy: CopyBytes): Promise<Buffer> {
  if (copy.bytes) return copy.bytes;
  const chunks: Buffer[] = [];
  for await (const c of createReadStream(copy.file, {
    start: copy.bodyOffset,
    end: copy.bodyOffset + copy.size - 1,
  }))
    chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** The first `max` bytes of a copy's message (all of it when smaller), from memory or its spool file. */
export async function readCopyStart(copy: CopyBytes, max: number): Promise<Buffer> {
  if (copy.bytes) return copy.bytes.subarray(0, Math.min(max, copy.bytes.length));
  const fh = await open(copy.file, 'r');
  try {
    const buf = Buffer.alloc(Math.min(max, copy.size));
    const { bytesRead } = await fh.read(buf, 0, buf.length, copy.bodyOffset);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** The header block of a message (for DSNs), bounded to 64 KiB. */
export function readHeaderBlock(copy: CopyBytes): string {
  let head: Buffer;
  if (copy.bytes) head = copy.bytes.subarray(0, 64 * 1024);
  else {
    if (!existsSync(copy.file)) return '';
    const fd = openSync(copy.file, 'r');
    try {
      head = Buffer.alloc(Math.min(64 * 1024, copy.size));
      head = head.subarray(0, readSync(fd, head, 0, head.length, copy.bodyOffset));
    } finally {
      closeSync(fd);
    }
  }
  const text = head.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  return end >= 0 ? text.slice(0, end + 2) : text;
}

/** MIDs: per node, increasing, never reused across restarts. */
export class MidAllocator {
  private nextMid = 1;

  next(): number {
    return this.nextMid++;
  }

  /** The next MID will be at least `mid`. */
  atLeast(mid: number): void {
    this.nextMid = Math.max(this.nextMid, mid);
  }

  peek(): number {
    return this.nextMid;
  }
}
