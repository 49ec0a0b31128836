// The durable spool (DESIGN §3.3). Nothing is acknowledged with 250 before its bytes are on disk.
//
// Small messages (the vast majority) are appended to a shared segment file, a journal: every session
// that finishes DATA while a flush is under way joins the next flush, and one write + one fdatasync
// covers them all (group commit). A segment is deleted once every message in it is finished.
// Large messages stream to a file of their own ("<mid>.msg": written to .tmp, fdatasync'd, renamed,
// directory fsync'd), so a 50 MB message is never held in memory.
//
// Record format in a segment (all integers big-endian):
//   "BWR1" | u32 envelope length | u32 body length | u32 crc32(envelope + body) | envelope JSON | body
// A record whose length or checksum does not verify is a torn write that was never acknowledged.
import {
  promises as fsp,
  openSync,
  closeSync,
  fsyncSync,
  readdirSync,
  unlinkSync,
  readSync,
  fstatSync,
  writev,
  fdatasync,
  close as closeCb,
} from 'node:fs';
import { crc32 } from 'node:zlib';
import path from 'node:path';

export interface SpoolEnvelope {
  mid: number;
  icid: number;
  listener: string;
  direction: 'incoming' | 'outgoing';
  sender: string;
  recipients: string[];
  senderIp: string;
  rdns: string | null;
  helo: string | null;
  tls: string | null;
  receivedAt: number;
  /** set for messages the gateway makes itself (bounces, alerts); they skip the pipeline */
  generated?: 'dsn';
}

/** Where a spooled message's bytes are. */
export interface SpoolLocation {
  file: string;
  bodyOffset: number;
  size: number;
}

export interface SpooledMessage extends SpoolLocation {
  env: SpoolEnvelope;
}

const FILE_MAGIC = 'BW1 ';
const RECORD_MAGIC = Buffer.from('BWR1');
const RECORD_HEADER = 16;
const SEGMENT_MAX_BYTES = 64 * 1024 * 1024;
const SEGMENT_MAX_AGE_MS = 60_000;

function encodeFileHeader(env: SpoolEnvelope): Buffer {
  const body = Buffer.from(JSON.stringify(env), 'utf8');
  return Buffer.concat([Buffer.from(`${FILE_MAGIC}${body.length}\n`), body, Buffer.from('\n')]);
}

/** Serialises directory fsyncs: callers that arrive while one runs share the next one. */
class DirSyncer {
  private readonly dir: string;
  private running: Promise<void> | null = null;
  private next: Promise<void> | null = null;

  constructor(dir: string) {
    this.dir = dir;
  }

  sync(): Promise<void> {
    if (!this.running) {
      this.running = this.run().finally(() => {
        this.running = null;
      });
      return this.running;
    }
    if (!this.next) {
      const after = this.running;
      this.next = after.then(() => {
        this.next = null;
        return this.sync();
      });
    }
    return this.next;
  }

  private async run(): Promise<void> {
    const fh = await fsp.open(this.dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
}

interface PendingAppend {
  buffers: Buffer[];
  length: number;
  resolve: (loc: SpoolLocation) => void;
  reject: (err: Error) => void;
  bodyLength: number;
  headerLength: number;
}

interface Segment {
  file: string;
  fd: number;
  size: number;
  openedAt: number;
  /** the segment file's directory entry is durable */
  dirSynced: Promise<void>;
}

export class Spool {
  readonly dir: string;
  private readonly fsync: boolean;
  private readonly dirSyncer: DirSyncer;
  private segment: Segment | null = null;
  private nextSegmentNo = 1;
  private batch: PendingAppend[] = [];
  private flushing = false;
  /** unfinished messages per spool file; a file goes when its count drops to zero */
  private readonly refs = new Map<string, number>();

  constructor(dir: string, fsync: boolean) {
    this.dir = dir;
    this.fsync = fsync;
    this.dirSyncer = new DirSyncer(dir);
  }

  async init(): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true });
    // A ".tmp" file is a message whose 250 was never sent: the client will retry it.
    for (const f of readdirSync(this.dir)) {
      if (f.endsWith('.tmp')) unlinkSync(path.join(this.dir, f));
      const m = /^seg-(\d+)\.log$/.exec(f);
      if (m) this.nextSegmentNo = Math.max(this.nextSegmentNo, Number(m[1]) + 1);
    }
  }

  // ---- small messages: the segment journal ----------------------------------------------------

  /** Appends a whole message; resolves once it is durable (group commit with concurrent appends). */
  append(env: SpoolEnvelope, body: Buffer): Promise<SpoolLocation> {
    const envelope = Buffer.from(JSON.stringify(env), 'utf8');
    const header = Buffer.alloc(RECORD_HEADER);
    RECORD_MAGIC.copy(header, 0);
    header.writeUInt32BE(envelope.length, 4);
    header.writeUInt32BE(body.length, 8);
    header.writeUInt32BE(crc32(body, crc32(envelope)), 12);
    return new Promise((resolve, reject) => {
      this.batch.push({
        buffers: [header, envelope, body],
        length: RECORD_HEADER + envelope.length + body.length,
        headerLength: RECORD_HEADER + envelope.length,
        bodyLength: body.length,
        resolve,
        reject,
      });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.batch.length) {
        const batch = this.batch;
        this.batch = [];
        try {
          const seg = await this.currentSegment();
          const start = seg.size;
          const buffers = batch.flatMap((p) => p.buffers);
          const total = batch.reduce((n, p) => n + p.length, 0);
          await writeAll(seg.fd, buffers, start, total);
          if (this.fsync) await new Promise<void>((res, rej) => fdatasync(seg.fd, (e) => (e ? rej(e) : res())));
          await seg.dirSynced;
          seg.size += total;
          let pos = start;
          for (const p of batch) {
            this.refs.set(seg.file, (this.refs.get(seg.file) ?? 0) + 1);
            p.resolve({ file: seg.file, bodyOffset: pos + p.headerLength, size: p.bodyLength });
            pos += p.length;
          }
        } catch (err) {
          // Nothing in this batch was acknowledged; start a fresh segment for the next one.
          for (const p of batch) p.reject(err as Error);
          this.retireSegment();
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  private async currentSegment(): Promise<Segment> {
    const s = this.segment;
    if (s && s.size < SEGMENT_MAX_BYTES && Date.now() - s.openedAt < SEGMENT_MAX_AGE_MS) return s;
    this.retireSegment();
    const file = path.join(this.dir, `seg-${String(this.nextSegmentNo++).padStart(8, '0')}.log`);
    const fd = openSync(file, 'wx', 0o640);
    const seg: Segment = {
      file,
      fd,
      size: 0,
      openedAt: Date.now(),
      dirSynced: this.fsync ? this.dirSyncer.sync() : Promise.resolve(),
    };
    this.segment = seg;
    return seg;
  }

  private retireSegment(): void {
    const s = this.segment;
    if (!s) return;
    this.segment = null;
    closeCb(s.fd, () => {});
    if (!this.refs.get(s.file)) void this.unlink(s.file);
  }

  // ---- large messages: a file each ------------------------------------------------------------

  fileFor(mid: number): string {
    return path.join(this.dir, `${mid}.msg`);
  }

  /** Opens a file of its own for a large message; the writer commits (durably) or aborts it. */
  async create(env: SpoolEnvelope): Promise<SpoolWriter> {
    const tmp = path.join(this.dir, `${env.mid}.tmp`);
    const fh = await fsp.open(tmp, 'wx', 0o640);
    const header = encodeFileHeader(env);
    await fh.write(header, 0, header.length, 0);
    return new SpoolWriter(this, fh, tmp, this.fileFor(env.mid), header.length);
  }

  /** @internal */
  async syncFile(fh: fsp.FileHandle): Promise<void> {
    if (this.fsync) await fh.datasync();
  }

  /** @internal */
  async syncDir(): Promise<void> {
    if (this.fsync) await this.dirSyncer.sync();
  }

  /** @internal */
  committed(file: string): void {
    this.refs.set(file, (this.refs.get(file) ?? 0) + 1);
  }

  // ---- lifecycle of spool files ---------------------------------------------------------------

  /** One more unfinished message copy uses this file (policy split copies share the original). */
  retain(file: string): void {
    this.refs.set(file, (this.refs.get(file) ?? 0) + 1);
  }

  /** A message copy using this file is finished; the file goes when none is left. */
  release(file: string): void {
    const n = (this.refs.get(file) ?? 1) - 1;
    if (n > 0) {
      this.refs.set(file, n);
      return;
    }
    this.refs.delete(file);
    if (this.segment?.file === file) {
      // The journal being appended to goes when it is idle and empty; else when it is retired.
      if (!this.flushing && !this.batch.length) this.retireSegment();
      return;
    }
    void this.unlink(file);
  }

  private async unlink(file: string): Promise<void> {
    await fsp.unlink(file).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }

  /** Every message on disk: segment records and single files, oldest segment first. */
  *scan(onCorrupt: (file: string, why: string) => void): Generator<SpooledMessage> {
    const files = readdirSync(this.dir).sort();
    for (const f of files) {
      const file = path.join(this.dir, f);
      if (/^seg-\d+\.log$/.test(f)) yield* this.scanSegment(file, onCorrupt);
    }
    for (const f of files) {
      if (!f.endsWith('.msg')) continue;
      const file = path.join(this.dir, f);
      try {
        yield { file, ...this.readFileHeader(file) };
      } catch (err) {
        onCorrupt(file, (err as Error).message);
      }
    }
  }

  private *scanSegment(file: string, onCorrupt: (file: string, why: string) => void): Generator<SpooledMessage> {
    const fd = openSync(file, 'r');
    try {
      const size = fstatSync(fd).size;
      const head = Buffer.alloc(RECORD_HEADER);
      let pos = 0;
      while (pos + RECORD_HEADER <= size) {
        readSync(fd, head, 0, RECORD_HEADER, pos);
        if (!head.subarray(0, 4).equals(RECORD_MAGIC)) {
          onCorrupt(file, `bad record magic at offset ${pos}`);
          return;
        }
        const envLen = head.readUInt32BE(4);
        const bodyLen = head.readUInt32BE(8);
        const crc = head.readUInt32BE(12);
        if (pos + RECORD_HEADER + envLen + bodyLen > size) return; // torn tail: never acknowledged
        const rec = Buffer.alloc(envLen + bodyLen);
        readSync(fd, rec, 0, rec.length, pos + RECORD_HEADER);
        if (crc32(rec) !== crc) {
          onCorrupt(file, `checksum mismatch at offset ${pos}`);
          return;
        }
        const env = JSON.parse(rec.subarray(0, envLen).toString('utf8')) as SpoolEnvelope;
        yield { file, env, bodyOffset: pos + RECORD_HEADER + envLen, size: bodyLen };
        pos += RECORD_HEADER + envLen + bodyLen;
      }
    } finally {
      closeSync(fd);
    }
  }

  /** Reads a single-file message's envelope. */
  private readFileHeader(file: string): { env: SpoolEnvelope; bodyOffset: number; size: number } {
    const fd = openSync(file, 'r');
    try {
      const head = Buffer.alloc(64 * 1024);
      const n = readSync(fd, head, 0, head.length, 0);
      const nl = head.indexOf(10);
      if (nl < 0 || head.subarray(0, 4).toString() !== FILE_MAGIC) throw new Error(`${file}: not a spool file`);
      const len = Number(head.subarray(4, nl).toString());
      let json: Buffer;
      if (nl + 1 + len <= n) json = head.subarray(nl + 1, nl + 1 + len);
      else {
        json = Buffer.alloc(len);
        readSync(fd, json, 0, len, nl + 1);
      }
      const bodyOffset = nl + 1 + len + 1;
      return {
        env: JSON.parse(json.toString('utf8')) as SpoolEnvelope,
        bodyOffset,
        size: fstatSync(fd).size - bodyOffset,
      };
    } finally {
      closeSync(fd);
    }
  }

  /** Files with no unfinished message left after recovery are removed. */
  removeUnreferenced(): void {
    for (const f of readdirSync(this.dir)) {
      const file = path.join(this.dir, f);
      if ((f.endsWith('.msg') || /^seg-\d+\.log$/.test(f)) && !this.refs.get(file) && this.segment?.file !== file)
        unlinkSync(file);
    }
  }

  /** Unfinished message copies per file (for status). */
  fileCount(): number {
    return this.refs.size;
  }

  close(): void {
    if (this.segment) {
      closeSync(this.segment.fd);
      this.segment = null;
    }
  }
}

function writeAll(fd: number, buffers: Buffer[], position: number, total: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let written = 0;
    let bufs = buffers;
    const step = (): void => {
      writev(fd, bufs, position + written, (err, n) => {
        if (err) return reject(err);
        written += n;
        if (written >= total) return resolve();
        // Partial write: drop what went out and continue with the rest.
        let skip = n;
        const rest: Buffer[] = [];
        for (const b of bufs) {
          if (skip >= b.length) skip -= b.length;
          else {
            rest.push(skip ? b.subarray(skip) : b);
            skip = 0;
          }
        }
        bufs = rest;
        step();
      });
    };
    step();
  });
}

export class SpoolWriter {
  private readonly spool: Spool;
  private readonly fh: fsp.FileHandle;
  private readonly tmp: string;
  private readonly final: string;
  private pos: number;
  private closed = false;
  readonly bodyOffset: number;

  constructor(spool: Spool, fh: fsp.FileHandle, tmp: string, final: string, headerLength: number) {
    this.spool = spool;
    this.fh = fh;
    this.tmp = tmp;
    this.final = final;
    this.pos = headerLength;
    this.bodyOffset = headerLength;
  }

  get bytesWritten(): number {
    return this.pos - this.bodyOffset;
  }

  async write(chunk: Buffer): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      const { bytesWritten } = await this.fh.write(chunk, off, chunk.length - off, this.pos);
      off += bytesWritten;
      this.pos += bytesWritten;
    }
  }

  /** Makes the message durable: data, then name, then directory entry. */
  async commit(): Promise<SpoolLocation> {
    await this.spool.syncFile(this.fh);
    await this.fh.close();
    this.closed = true;
    await fsp.rename(this.tmp, this.final);
    await this.spool.syncDir();
    this.spool.committed(this.final);
    return { file: this.final, bodyOffset: this.bodyOffset, size: this.bytesWritten };
  }

  async abort(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      await this.fh.close().catch(() => {});
    }
    await fsp.rm(this.tmp, { force: true });
  }
}

/** Synchronous fsync of a directory, for rare paths (file routes). */
export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
