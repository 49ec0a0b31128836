// The durable spool (DESIGN §3.3). Nothing is acknowledged with 250 before its bytes are on disk.
//
// Small messages (the vast majority) are appended to a shared segment file, a journal: every session
// that finishes DATA while a flush is under way joins the next flush, and one synchronous-data (O_DSYNC)
// write covers them all (group commit). A segment is deleted once every message in it is finished.
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
  close as closeCb,
  constants as fsConstants,
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
  /** the HAT sender group the client was in, and the DNS lists that list it ("dnsbl bl.example 127.0.0.2") */
  senderGroup?: string;
  reputation?: string[];
  /** recipients the directory did not answer for live ("addr: known from a cached answer …, stale: …", "addr: accepted unchecked …") */
  directory?: string[];
  /** set for messages the gateway makes itself (bounces, alerts); they skip the pipeline */
  generated?: 'dsn' | 'alert' | 'copy' | 'remediation' | 'digest' | 'tlsrpt' | 'dmarc';
  /**
   * A file written after the scan from one message copy (env.mid is the copy's MID): `held` keeps the
   * original bytes of a quarantined copy apart from the shared journal; `modified` holds the bytes the
   * outbreak modification produced (subject tag, disclaimer, rewritten links), so retries and restarts
   * deliver exactly what was decided.
   */
  derived?: 'held' | 'modified';
  /** delivery goes to this route target instead of the recipient's route (alternate mail host) */
  routeOverride?: string;
  /**
   * A copy one recipient released from a quarantine (end-user quarantine): scanned again like any
   * release, never held in these quarantines again.
   */
  releasedFrom?: string[];
  /** the held message this copy was released from */
  releasedMid?: number;
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
  /** bytes reserved so far (writes in flight included) */
  size: number;
  openedAt: number;
  /** the segment file's directory entry is durable */
  dirSynced: Promise<void>;
  /** writes not yet finished; the fd is closed when the segment is retired and this is zero */
  inflight: number;
  retired: boolean;
}

/** Batches written at once; more appends wait for one of them to finish. */
const MAX_INFLIGHT_WRITES = 8;

export class Spool {
  readonly dir: string;
  private readonly fsync: boolean;
  private readonly dirSyncer: DirSyncer;
  private segment: Segment | null = null;
  private nextSegmentNo = 1;
  private batch: PendingAppend[] = [];
  private flushScheduled = false;
  private inflight = 0;
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
      this.scheduleFlush();
    });
  }

  /**
   * Every append made during one turn of the event loop goes out in one write. Writes do not wait for
   * each other: each reserves its own range of the segment, and O_DSYNC makes each durable on its own,
   * so a message waits for its own write only — not for the one before it.
   */
  private scheduleFlush(): void {
    if (this.flushScheduled || this.inflight >= MAX_INFLIGHT_WRITES || !this.batch.length) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    const batch = this.batch;
    this.batch = [];
    if (!batch.length) return;
    this.inflight++;
    let seg: Segment | null = null;
    try {
      seg = this.currentSegment();
      const start = seg.size;
      const total = batch.reduce((n, p) => n + p.length, 0);
      seg.size += total; // reserve the range before the write, so the next batch goes after it
      seg.inflight++;
      // The segment is opened with O_DSYNC: the write returns once the data is on disk, so a batch
      // costs one thread-pool round trip (no separate fdatasync).
      await writeAll(
        seg.fd,
        batch.flatMap((p) => p.buffers),
        start,
        total,
      );
      await seg.dirSynced;
      let pos = start;
      for (const p of batch) {
        this.refs.set(seg.file, (this.refs.get(seg.file) ?? 0) + 1);
        p.resolve({ file: seg.file, bodyOffset: pos + p.headerLength, size: p.bodyLength });
        pos += p.length;
      }
    } catch (err) {
      // Nothing in this batch was acknowledged. Its range may hold a partial record, which the
      // recovery scan steps over; new appends go to a fresh segment.
      for (const p of batch) p.reject(err as Error);
      if (seg && this.segment === seg) this.retireSegment();
    } finally {
      this.inflight--;
      if (seg) {
        seg.inflight--;
        if (seg.retired) this.closeRetired(seg);
      }
      this.scheduleFlush();
    }
  }

  private currentSegment(): Segment {
    const s = this.segment;
    if (s && s.size < SEGMENT_MAX_BYTES && Date.now() - s.openedAt < SEGMENT_MAX_AGE_MS) return s;
    this.retireSegment();
    const file = path.join(this.dir, `seg-${String(this.nextSegmentNo++).padStart(8, '0')}.log`);
    const { O_WRONLY, O_CREAT, O_EXCL, O_DSYNC } = fsConstants;
    const fd = openSync(file, O_WRONLY | O_CREAT | O_EXCL | (this.fsync ? O_DSYNC : 0), 0o640);
    const seg: Segment = {
      file,
      fd,
      size: 0,
      openedAt: Date.now(),
      dirSynced: this.fsync ? this.dirSyncer.sync() : Promise.resolve(),
      inflight: 0,
      retired: false,
    };
    this.segment = seg;
    return seg;
  }

  private retireSegment(): void {
    const s = this.segment;
    if (!s) return;
    this.segment = null;
    s.retired = true;
    this.closeRetired(s);
  }

  private closeRetired(s: Segment): void {
    if (s.inflight > 0 || s.fd < 0) return;
    closeCb(s.fd, () => {});
    s.fd = -1;
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

  /**
   * Writes a derived file of its own for one message copy (see SpoolEnvelope.derived), durably, and
   * returns it with one reference held by the caller. Names are unique, so an older derived file of
   * the same copy that is still in use is never overwritten.
   */
  async writeDerived(env: SpoolEnvelope, body: Buffer | AsyncIterable<Buffer>): Promise<SpoolLocation> {
    if (!env.derived) throw new Error('writeDerived needs env.derived');
    const stem = `${env.mid}.${env.derived}.${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
    const tmp = path.join(this.dir, `${stem}.tmp`);
    const fh = await fsp.open(tmp, 'wx', 0o640);
    const header = encodeFileHeader(env);
    await fh.write(header, 0, header.length, 0);
    const w = new SpoolWriter(this, fh, tmp, path.join(this.dir, `${stem}.msg`), header.length);
    try {
      if (Buffer.isBuffer(body)) await w.write(body);
      else for await (const chunk of body) await w.write(chunk);
      return await w.commit();
    } catch (err) {
      await w.abort();
      throw err;
    }
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
      if (!this.inflight && !this.batch.length) this.retireSegment();
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

  /**
   * Reads every intact record of a segment. Records are written concurrently into reserved ranges, so a
   * crash can leave a partial record (never acknowledged) before intact ones: on a bad header or
   * checksum the scan moves on to the next record magic instead of stopping.
   */
  private *scanSegment(file: string, onCorrupt: (file: string, why: string) => void): Generator<SpooledMessage> {
    const fd = openSync(file, 'r');
    try {
      const size = fstatSync(fd).size;
      const head = Buffer.alloc(RECORD_HEADER);
      let pos = 0;
      let skipped = 0;
      while (pos + RECORD_HEADER <= size) {
        readSync(fd, head, 0, RECORD_HEADER, pos);
        let ok = head.subarray(0, 4).equals(RECORD_MAGIC);
        const envLen = head.readUInt32BE(4);
        const bodyLen = head.readUInt32BE(8);
        const end = pos + RECORD_HEADER + envLen + bodyLen;
        let rec: Buffer | null = null;
        if (ok && end <= size) {
          rec = Buffer.alloc(envLen + bodyLen);
          readSync(fd, rec, 0, rec.length, pos + RECORD_HEADER);
          ok = crc32(rec) === head.readUInt32BE(12);
        } else ok = false;
        if (!ok || !rec) {
          const next = findMagic(fd, pos + 1, size);
          skipped += (next < 0 ? size : next) - pos;
          if (next < 0) break;
          pos = next;
          continue;
        }
        const env = JSON.parse(rec.subarray(0, envLen).toString('utf8')) as SpoolEnvelope;
        yield { file, env, bodyOffset: pos + RECORD_HEADER + envLen, size: bodyLen };
        pos = end;
      }
      if (skipped) onCorrupt(file, `${skipped} byte(s) of partial records skipped (writes cut short by a crash)`);
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

/** Offset of the next record magic at or after `from`, or -1. */
function findMagic(fd: number, from: number, size: number): number {
  const chunk = Buffer.alloc(1024 * 1024);
  for (let pos = from; pos < size; pos += chunk.length - RECORD_MAGIC.length) {
    const n = readSync(fd, chunk, 0, Math.min(chunk.length, size - pos), pos);
    const i = chunk.subarray(0, n).indexOf(RECORD_MAGIC);
    if (i >= 0) return pos + i;
    if (n < chunk.length) return -1;
  }
  return -1;
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
