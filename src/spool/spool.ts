// The durable spool. A message is one file: a small envelope header, then the message bytes exactly as
// they will be delivered (our Received: line first). It is written to "<mid>.tmp", fdatasync'd,
// renamed to "<mid>.msg", and the directory is fsync'd before the SMTP 250 reply. Directory fsyncs
// are shared by every session waiting at the same moment (group commit).
import { promises as fsp, openSync, closeSync, fsyncSync, readdirSync, unlinkSync, readSync, fstatSync } from 'node:fs';
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

const MAGIC = 'BW1 ';

export function encodeEnvelopeHeader(env: SpoolEnvelope): Buffer {
  const json = JSON.stringify(env);
  const body = Buffer.from(json, 'utf8');
  return Buffer.concat([Buffer.from(`${MAGIC}${body.length}\n`), body, Buffer.from('\n')]);
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

export class Spool {
  readonly dir: string;
  private readonly fsync: boolean;
  private readonly dirSyncer: DirSyncer;

  constructor(dir: string, fsync: boolean) {
    this.dir = dir;
    this.fsync = fsync;
    this.dirSyncer = new DirSyncer(dir);
  }

  async init(): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true });
    // A ".tmp" file is a message whose 250 was never sent: the client will retry it.
    for (const f of readdirSync(this.dir)) if (f.endsWith('.tmp')) unlinkSync(path.join(this.dir, f));
  }

  fileFor(mid: number): string {
    return path.join(this.dir, `${mid}.msg`);
  }

  /** Opens a new spool file for writing; returns a writer that commits or aborts it. */
  async create(env: SpoolEnvelope): Promise<SpoolWriter> {
    const tmp = path.join(this.dir, `${env.mid}.tmp`);
    const fh = await fsp.open(tmp, 'wx', 0o640);
    const header = encodeEnvelopeHeader(env);
    await fh.write(header, 0, header.length, 0);
    return new SpoolWriter(this, fh, tmp, this.fileFor(env.mid), header.length);
  }

  /** Writes a whole message the gateway generates itself (DSN), durably. */
  async writeWhole(env: SpoolEnvelope, message: Buffer): Promise<string> {
    const w = await this.create(env);
    await w.write(message);
    return w.commit();
  }

  /** @internal */
  async syncFileAndDir(fh: fsp.FileHandle): Promise<void> {
    if (this.fsync) await fh.datasync();
  }

  /** @internal */
  async syncDir(): Promise<void> {
    if (this.fsync) await this.dirSyncer.sync();
  }

  /** MIDs of committed spool files, ascending. */
  list(): number[] {
    return readdirSync(this.dir)
      .filter((f) => f.endsWith('.msg'))
      .map((f) => Number(f.slice(0, -4)))
      .filter((n) => Number.isSafeInteger(n))
      .sort((a, b) => a - b);
  }

  /** Reads the envelope and the offset where message bytes start. */
  readEnvelope(file: string): { env: SpoolEnvelope; bodyOffset: number; size: number } {
    const fd = openSync(file, 'r');
    try {
      const head = Buffer.alloc(64 * 1024);
      const n = readSync(fd, head, 0, head.length, 0);
      const nl = head.indexOf(10);
      if (nl < 0 || head.subarray(0, 4).toString() !== MAGIC) throw new Error(`${file}: not a spool file`);
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

  async remove(file: string): Promise<void> {
    await fsp.rm(file, { force: true });
  }

  /** Highest MID on disk (for allocating MIDs after a crash). */
  maxMid(): number {
    let max = 0;
    for (const f of readdirSync(this.dir)) {
      const n = parseInt(f, 10);
      if (Number.isSafeInteger(n) && n > max) max = n;
    }
    return max;
  }
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

  /** Makes the message durable: data, then name, then directory entry. Returns the final path. */
  async commit(): Promise<string> {
    await this.spool.syncFileAndDir(this.fh);
    await this.fh.close();
    this.closed = true;
    await fsp.rename(this.tmp, this.final);
    await this.spool.syncDir();
    return this.final;
  }

  async abort(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      await this.fh.close().catch(() => {});
    }
    await fsp.rm(this.tmp, { force: true });
  }
}

/** Synchronous fsync of a directory, for rare paths (startup, file routes). */
export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
