// clamd client over its INSTREAM protocol (DESIGN §5), written on node:net.
//
// Protocol, as used here (verified against clamd 1.4.6):
// - Commands are z-prefixed and NUL-terminated (`zINSTREAM\0`); replies are NUL-terminated.
// - INSTREAM data goes in chunks, each preceded by its length as a 4-byte big-endian integer; a
//   zero-length chunk ends the stream. Replies: `stream: OK`, `stream: <Name> FOUND` (one line per name
//   when clamd reports several), `INSTREAM size limit exceeded. ERROR` (clamd's StreamMaxLength), and
//   other lines ending in `ERROR`.
// - Connection reuse: `zIDSESSION\0` opens a session; every later command's reply is prefixed with its
//   request id (`1: stream: OK`), ids counting from 1; `zEND\0` closes it. clamd ends a session after an
//   ERROR reply, and after ReadTimeout (120 s by default; not IdleTimeout, which is about its threads)
//   without a command, writing `COMMAND READ TIMED OUT\n` first. Idle sessions are closed here before
//   that (`idleMs`, 10 s by default). A pooled session that breaks anyway is not trusted again: the
//   scan is retried once over a fresh one-connection-per-scan INSTREAM.
//
// Size limit: clamd stops reading once a stream passes StreamMaxLength, replies, and closes the
// connection. A client still writing at that moment gets a TCP reset, and Linux then throws the reply
// away, so data is written in pieces of at most 64 KiB and the event loop gets a turn between pieces
// (the reply is read as soon as it arrives, and writing stops). That still loses the reply now and then
// over TCP (about a third of the time on loopback; never over the unix socket), so when clamd drops a
// stream without a reply and still answers PING, a bare chunk header declaring the same length is sent:
// clamd checks a chunk's declared length against StreamMaxLength before reading its data, and answers
// `INSTREAM size limit exceeded` at once if it is too long. Set `maxStreamBytes` no higher than clamd's
// StreamMaxLength: larger input with a known size is never sent.
//
// Reply parsing, verdicts and the signature version stamp: clamd-replies.ts.
import net from 'node:net';
import { parseScanReply, parseVersion, type ClamdVersion, type ScanResult } from './clamd-replies.ts';

export { buildSignatureStamp, parseScanReply, parseVersion } from './clamd-replies.ts';
export type { ClamdVersion, ScanResult } from './clamd-replies.ts';
export type ClamdTarget = { socket: string } | { host: string; port: number };

export interface ClamdOptions {
  target: ClamdTarget;
  /** whole scan: waiting for a connection, connecting, sending and clamd's reply */
  timeoutMs: number;
  /** clamd's StreamMaxLength; larger input is not sent and comes back unscannable/size_limit */
  maxStreamBytes: number;
  /** concurrent connections */
  maxConnections: number;
  /** idle sessions are closed after this long (default 10,000 ms; keep it below clamd's ReadTimeout, 120 s by default) */
  idleMs?: number;
  /** longest reply accepted from clamd (default 64 KiB); a longer one is unscannable/error */
  maxReplyBytes?: number;
}

export interface ClamdClientStats {
  /** TCP / unix-socket connections opened since the client was created */
  connectionsOpened: number;
  /** of those, IDSESSION sessions */
  sessionsOpened: number;
  /** scans (and commands) that ran on a reused session */
  sessionReuses: number;
  /** scans retried over a one-connection-per-scan INSTREAM because a session broke */
  sessionFallbacks: number;
  /** connections open now (busy and idle) */
  open: number;
  /** idle sessions in the pool now */
  idle: number;
}

/** version() could not get an answer from clamd. */
export class ClamdUnavailableError extends Error {
  override name = 'ClamdUnavailableError';
}

const PIECE = 64 * 1024;
const DEFAULT_IDLE_MS = 10_000;
const DEFAULT_MAX_REPLY = 64 * 1024;
/** sessions are not opened for this long after one looked broken while clamd itself answered */
const SESSION_COOLDOWN_MS = 60_000;
/** how long diagnose() waits for each answer */
const PROBE_MS = 500;

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e?.code ? `${e.code}${e.message ? `: ${e.message}` : ''}` : String(e?.message ?? err);
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** One connection to clamd: collects NUL-terminated replies, bounded in size. */
class Conn {
  readonly sock: net.Socket;
  readonly session: boolean;
  nextId = 1;
  reused = false;
  closed = false;
  overflow = false;
  error: string | null = null;
  idleTimer: NodeJS.Timeout | null = null;
  private readonly maxReply: number;
  private pending: Buffer[] = [];
  private pendingLen = 0;
  private replies: string[] = [];
  private wakers: Array<() => void> = [];

  constructor(sock: net.Socket, session: boolean, maxReply: number) {
    this.sock = sock;
    this.session = session;
    this.maxReply = maxReply;
    sock.on('data', (d: Buffer) => this.onData(d));
    sock.on('error', (e) => {
      this.error ??= describe(e);
    });
    sock.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  get hasReply(): boolean {
    return this.replies.length > 0;
  }

  /** bytes arrived that no request asked for (e.g. clamd's `COMMAND READ TIMED OUT` before it closes) */
  get dirty(): boolean {
    return this.pendingLen > 0 || this.replies.length > 0;
  }

  private onData(d: Buffer): void {
    let start = 0;
    for (;;) {
      const nul = d.indexOf(0, start);
      const part = nul === -1 ? d.subarray(start) : d.subarray(start, nul);
      this.pendingLen += part.length;
      if (this.pendingLen > this.maxReply) {
        this.overflow = true;
        this.destroy();
        return;
      }
      if (part.length) this.pending.push(part);
      if (nul === -1) break;
      this.replies.push(Buffer.concat(this.pending).toString('utf8'));
      this.pending = [];
      this.pendingLen = 0;
      start = nul + 1;
    }
    this.wake();
  }

  private wake(): void {
    const w = this.wakers;
    this.wakers = [];
    for (const f of w) f();
  }

  /** Resolves when something happened: a reply, the connection closing, or writable again. */
  waitEvent(): Promise<void> {
    return new Promise((resolve) => {
      this.wakers.push(resolve);
    });
  }

  async nextReply(): Promise<string | null> {
    for (;;) {
      const r = this.replies.shift();
      if (r !== undefined) return r;
      if (this.closed) return null;
      await this.waitEvent();
    }
  }

  /** Writes; resolves when the data is handed to the kernel or the connection is gone. */
  async write(...bufs: Buffer[]): Promise<void> {
    if (this.closed) return;
    let ok = true;
    if (bufs.length > 1) this.sock.cork();
    for (const b of bufs) ok = this.sock.write(b);
    if (bufs.length > 1) this.sock.uncork();
    if (ok || this.closed) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.sock.off('drain', done);
        resolve();
      };
      this.sock.on('drain', done);
      this.wakers.push(done);
    });
  }

  destroy(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    this.sock.destroy();
    this.closed = true;
    this.wake();
  }
}

type ConnectResult = { conn: Conn } | { error: string; timedOut: boolean };

type Outcome =
  | { kind: 'reply'; text: string }
  | { kind: 'broken'; sent: number; detail: string }
  | { kind: 'timeout' }
  | { kind: 'overflow' }
  | { kind: 'client_limit'; sent: number };

/** Input as 64 KiB pieces; remembers what it read (while `record`) so a broken session can be replayed. */
class Source {
  private readonly buf: Buffer | null;
  private readonly it: AsyncIterator<Buffer> | null;
  private readonly recorded: Buffer[] = [];
  private recording = false;
  private exhausted = false;

  constructor(input: Buffer | AsyncIterable<Buffer>) {
    if (Buffer.isBuffer(input)) {
      this.buf = input;
      this.it = null;
    } else {
      this.buf = null;
      this.it = input[Symbol.asyncIterator]();
    }
  }

  /** Can a new reader start from the beginning? */
  get replayable(): boolean {
    return this.buf !== null || this.recording;
  }

  /** Starts a pass over the input; only the first pass may set `record`. */
  async *pieces(record: boolean, abort: Promise<void>): AsyncGenerator<Buffer, void, undefined> {
    if (this.buf) {
      for (let i = 0; i < this.buf.length; i += PIECE) yield this.buf.subarray(i, i + PIECE);
      return;
    }
    if (record) this.recording = true;
    for (const c of this.recorded) yield* split(c);
    const it = this.it!;
    while (!this.exhausted) {
      const r = await Promise.race([it.next(), abort.then(() => null)]);
      if (r === null) return;
      if (r.done) {
        this.exhausted = true;
        return;
      }
      const chunk = r.value;
      if (!Buffer.isBuffer(chunk)) throw new TypeError('scan(): the async iterable must yield Buffers');
      if (this.recording) this.recorded.push(chunk);
      yield* split(chunk);
    }
  }

  /** Ends the caller's iterator if it was not read to the end (not awaited: a stuck producer must not hold the scan). */
  finish(): void {
    this.recorded.length = 0;
    if (this.it && !this.exhausted) {
      this.exhausted = true;
      const it = this.it;
      void Promise.resolve()
        .then(() => it.return?.())
        .catch(() => {});
    }
  }
}

function* split(c: Buffer): Generator<Buffer> {
  for (let i = 0; i < c.length; i += PIECE) yield c.subarray(i, i + PIECE);
}

export class ClamdClient {
  private readonly o: Required<ClamdOptions>;
  private readonly idle: Conn[] = [];
  private readonly all = new Set<Conn>();
  private busy = 0;
  private waiters: Array<(ok: boolean) => void> = [];
  private inFlight = new Set<Promise<unknown>>();
  private sessionsOffUntil = 0;
  private closed = false;
  private readonly counters = { connectionsOpened: 0, sessionsOpened: 0, sessionReuses: 0, sessionFallbacks: 0 };

  constructor(o: ClamdOptions) {
    const t = o?.target as Partial<{ socket: string; host: string; port: number }> | undefined;
    if (!t || (typeof t.socket !== 'string' && (typeof t.host !== 'string' || !Number.isInteger(t.port))))
      throw new TypeError('ClamdClient: target must be { socket } or { host, port }');
    for (const k of ['timeoutMs', 'maxStreamBytes', 'maxConnections'] as const)
      if (!Number.isFinite(o[k]) || o[k] <= 0) throw new RangeError(`ClamdClient: ${k} must be a positive number`);
    if (!Number.isInteger(o.maxConnections)) throw new RangeError('ClamdClient: maxConnections must be an integer');
    this.o = { idleMs: DEFAULT_IDLE_MS, maxReplyBytes: DEFAULT_MAX_REPLY, ...o };
  }

  /**
   * Scans a message (or any bytes). Never throws for clamd's failures: those come back as
   * `unscannable` (`unavailable` when clamd cannot be reached or drops the connection, `timeout` when
   * the whole scan takes longer than timeoutMs). Throws for misuse (bad arguments, scan after close)
   * and rethrows an error raised by the caller's iterable. `size`, when given for streamed input, lets
   * oversized input be refused before anything is sent.
   */
  scan(input: Buffer | AsyncIterable<Buffer>, size?: number): Promise<ScanResult> {
    if (this.closed) return Promise.reject(new Error('ClamdClient: scan() after close()'));
    const isIter = input != null && typeof (input as AsyncIterable<Buffer>)[Symbol.asyncIterator] === 'function';
    if (!Buffer.isBuffer(input) && !isIter)
      return Promise.reject(new TypeError('scan(): input must be a Buffer or AsyncIterable<Buffer>'));
    if (size !== undefined && (!Number.isSafeInteger(size) || size < 0))
      return Promise.reject(new RangeError('scan(): size must be a non-negative integer'));
    return this.track(this.doScan(input, size));
  }

  /** True when clamd answers PONG within timeoutMs. */
  async ping(): Promise<boolean> {
    const r = await this.command('zPING\0');
    return r === 'PONG';
  }

  /** clamd's VERSION, parsed. Rejects with ClamdUnavailableError when clamd does not answer. */
  async version(): Promise<ClamdVersion> {
    const r = await this.command('zVERSION\0');
    if (r === null || !r.startsWith('ClamAV'))
      throw new ClamdUnavailableError(`clamd VERSION failed: ${r ?? 'no answer'}`);
    return parseVersion(r);
  }

  /** Asks clamd to reload its databases (it answers RELOADING at once and loads in the background). */
  async reload(): Promise<boolean> {
    return (await this.command('zRELOAD\0')) === 'RELOADING';
  }

  stats(): ClamdClientStats {
    return { ...this.counters, open: this.all.size, idle: this.idle.length };
  }

  /** Waits for scans in flight, then ends idle sessions. Scans still waiting for a connection get `unavailable`. */
  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w(false);
    await Promise.allSettled([...this.inFlight]);
    for (const c of this.idle.splice(0)) {
      if (c.idleTimer) clearTimeout(c.idleTimer);
      c.sock.end('zEND\0');
      c.sock.unref();
    }
  }

  // ---- internals ----

  private track<T>(p: Promise<T>): Promise<T> {
    this.inFlight.add(p);
    const drop = () => this.inFlight.delete(p);
    p.then(drop, drop);
    return p;
  }

  private async doScan(input: Buffer | AsyncIterable<Buffer>, size?: number): Promise<ScanResult> {
    const max = this.o.maxStreamBytes;
    const known = Buffer.isBuffer(input) ? input.length : size;
    if (known !== undefined && known > max) {
      return { verdict: 'unscannable', reason: 'size_limit', detail: `${known} bytes exceed maxStreamBytes (${max})` };
    }
    const deadline = Date.now() + this.o.timeoutMs;
    const src = new Source(input);
    let current: Conn | null = null;
    let timedOut = false;
    let fireAbort!: () => void;
    const abort = new Promise<void>((resolve) => (fireAbort = resolve));
    const timer = setTimeout(() => {
      timedOut = true;
      current?.destroy();
      fireAbort();
    }, this.o.timeoutMs);
    const timeout = (detail = `clamd did not answer within ${this.o.timeoutMs} ms`): ScanResult => ({
      verdict: 'unscannable',
      reason: 'timeout',
      detail,
    });
    try {
      if (!(await this.acquire(deadline, abort)))
        return this.closed
          ? { verdict: 'unscannable', reason: 'unavailable', detail: 'client closed' }
          : timeout(`no free clamd connection within ${this.o.timeoutMs} ms`);
      try {
        const got = this.takeIdle() ?? (await this.open(Date.now() >= this.sessionsOffUntil, deadline));
        if ('error' in got) return timedOut ? timeout() : this.unavailable(got.error);
        current = got.conn;
        let out = await this.instream(current, src, current.session, abort);
        if (out.kind === 'broken' && current.reused && src.replayable && !timedOut) {
          // a pooled session went stale (clamd's ReadTimeout, a restart): once more, on its own connection
          this.counters.sessionFallbacks++;
          this.discard(current);
          current = null;
          const again = await this.open(false, deadline);
          if ('error' in again) return timedOut ? timeout() : this.unavailable(again.error);
          current = again.conn;
          out = await this.instream(current, src, false, abort);
        }
        if (out.kind === 'broken' && !timedOut) {
          // clamd dropped the connection without a reply: it is down, or it stopped reading
          const why = await this.diagnose(known ?? out.sent, deadline);
          if (why === 'dead') return this.unavailable(out.detail);
          if (why === 'size_limit')
            return {
              verdict: 'unscannable',
              reason: 'size_limit',
              detail: `INSTREAM size limit exceeded: clamd refuses ${known ?? out.sent} bytes (its StreamMaxLength is below maxStreamBytes, ${max})`,
            };
          if (current.session && src.replayable && !timedOut) {
            // clamd answers, yet a fresh session broke: sessions may not get through (a proxy?)
            this.counters.sessionFallbacks++;
            this.discard(current);
            current = null;
            const again = await this.open(false, deadline);
            if ('error' in again) return timedOut ? timeout() : this.unavailable(again.error);
            current = again.conn;
            out = await this.instream(current, src, false, abort);
            if (out.kind === 'reply') this.sessionsOffUntil = Date.now() + SESSION_COOLDOWN_MS;
          }
        }
        if (timedOut || out.kind === 'timeout') return timeout();
        switch (out.kind) {
          case 'client_limit':
            return {
              verdict: 'unscannable',
              reason: 'size_limit',
              detail: `input exceeds maxStreamBytes (${max}); sending stopped after ${out.sent} bytes`,
            };
          case 'overflow':
            return {
              verdict: 'unscannable',
              reason: 'error',
              detail: `clamd reply longer than ${this.o.maxReplyBytes} bytes`,
            };
          case 'broken':
            return {
              verdict: 'unscannable',
              reason: 'error',
              detail: `clamd closed the connection after ${out.sent} bytes without a reply (${out.detail})`,
            };
          case 'reply': {
            const result = parseScanReply(out.text);
            if (current.session && !current.closed && (result.verdict === 'clean' || result.verdict === 'infected')) {
              this.release(current);
              current = null;
            }
            return result;
          }
        }
        return timeout();
      } finally {
        if (current) this.discard(current);
        this.releaseSlot();
      }
    } finally {
      clearTimeout(timer);
      fireAbort();
      src.finish();
    }
  }

  /**
   * After clamd dropped a connection without a reply: is it down, or did the stream pass its
   * StreamMaxLength? (clamd checks each chunk's declared length before reading it, so a chunk header
   * alone, without data, answers that; the reply of the real attempt may have been lost to a TCP reset.)
   */
  private async diagnose(bytes: number, deadline: number): Promise<'dead' | 'alive' | 'size_limit'> {
    const ms = () => Math.min(PROBE_MS, deadline - Date.now());
    if ((await this.rawCommand('zPING\0', ms())) !== 'PONG') return 'dead';
    if (bytes > 0) {
      const h = Buffer.alloc(4);
      h.writeUInt32BE(Math.min(bytes, 0xffffffff));
      const r = await this.rawCommand(Buffer.concat([Buffer.from('zINSTREAM\0'), h]), ms());
      if (r !== null && /size limit exceeded/i.test(r)) return 'size_limit';
    }
    return 'alive';
  }

  private unavailable(detail: string): ScanResult {
    return { verdict: 'unscannable', reason: 'unavailable', detail: `clamd unreachable: ${detail}` };
  }

  /** One INSTREAM on `conn`. */
  private async instream(conn: Conn, src: Source, record: boolean, abort: Promise<void>): Promise<Outcome> {
    const id = conn.session ? conn.nextId++ : 0;
    const max = this.o.maxStreamBytes;
    let sent = 0;
    let aborted = false;
    void abort.then(() => (aborted = true));
    await conn.write(Buffer.from('zINSTREAM\0'));
    const pieces = src.pieces(record, abort);
    for (;;) {
      if (conn.closed || conn.hasReply || aborted) break;
      const n = await pieces.next();
      if (n.done || aborted) break;
      const piece = n.value;
      if (sent + piece.length > max) {
        conn.destroy();
        return { kind: 'client_limit', sent };
      }
      const h = Buffer.allocUnsafe(4);
      h.writeUInt32BE(piece.length);
      await conn.write(h, piece);
      sent += piece.length;
      // let clamd's early reply (size limit, error) be read before writing on
      await tick();
    }
    if (aborted) return { kind: 'timeout' };
    if (!conn.closed && !conn.hasReply) await conn.write(Buffer.alloc(4));
    const reply = await conn.nextReply();
    if (aborted) return { kind: 'timeout' };
    if (conn.overflow) return { kind: 'overflow' };
    if (reply === null) return { kind: 'broken', sent, detail: conn.error ?? 'connection closed' };
    if (!conn.session) return { kind: 'reply', text: reply };
    const m = /^(\d+): ([\s\S]*)$/.exec(reply);
    if (!m) {
      // e.g. an error clamd sends before ending the session
      conn.destroy();
      return { kind: 'reply', text: reply };
    }
    if (Number(m[1]) !== id) {
      conn.destroy();
      return { kind: 'reply', text: `ERROR: reply for request ${m[1]} while waiting for ${id}` };
    }
    return { kind: 'reply', text: m[2] };
  }

  /** PING / VERSION / RELOAD: one command on its own connection (within the connection limit). */
  private command(cmd: string): Promise<string | null> {
    if (this.closed) return Promise.reject(new Error('ClamdClient: used after close()'));
    return this.track(this.doCommand(cmd));
  }

  private async doCommand(cmd: string): Promise<string | null> {
    const deadline = Date.now() + this.o.timeoutMs;
    const never = new Promise<void>(() => {});
    if (!(await this.acquire(deadline, never))) return null;
    try {
      return await this.rawCommand(cmd, deadline - Date.now());
    } finally {
      this.releaseSlot();
    }
  }

  private async rawCommand(cmd: string | Buffer, ms: number): Promise<string | null> {
    if (ms <= 0) return null;
    const deadline = Date.now() + ms;
    const got = await this.open(false, deadline);
    if ('error' in got) return null;
    const c = got.conn;
    const timer = setTimeout(() => c.destroy(), Math.max(1, deadline - Date.now()));
    try {
      await c.write(Buffer.isBuffer(cmd) ? cmd : Buffer.from(cmd));
      const r = await c.nextReply();
      return r === null ? null : r.trim();
    } finally {
      clearTimeout(timer);
      this.discard(c);
    }
  }

  private open(session: boolean, deadline: number): Promise<ConnectResult> {
    return new Promise((resolve) => {
      const t = this.o.target;
      const sock = 'socket' in t ? net.connect({ path: t.socket }) : net.connect({ host: t.host, port: t.port });
      this.counters.connectionsOpened++;
      const conn = new Conn(sock, session, this.o.maxReplyBytes);
      this.all.add(conn);
      sock.once('close', () => this.forget(conn));
      let settled = false;
      const timer = setTimeout(
        () => {
          if (settled) return;
          settled = true;
          this.discard(conn);
          resolve({ error: 'connect timed out', timedOut: true });
        },
        Math.max(1, deadline - Date.now()),
      );
      sock.once('connect', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        sock.setNoDelay(true);
        if (session) {
          this.counters.sessionsOpened++;
          sock.write('zIDSESSION\0');
        }
        resolve({ conn });
      });
      sock.once('error', (e) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.discard(conn);
        resolve({ error: describe(e), timedOut: false });
      });
    });
  }

  private takeIdle(): { conn: Conn } | null {
    for (;;) {
      const c = this.idle.pop();
      if (!c) return null;
      if (c.idleTimer) clearTimeout(c.idleTimer);
      c.idleTimer = null;
      if (c.closed || c.sock.destroyed || c.dirty) {
        this.discard(c);
        continue;
      }
      c.sock.ref();
      c.reused = true;
      this.counters.sessionReuses++;
      return { conn: c };
    }
  }

  private release(c: Conn): void {
    if (this.closed) {
      c.sock.end('zEND\0');
      return;
    }
    c.sock.unref();
    c.idleTimer = setTimeout(() => {
      const i = this.idle.indexOf(c);
      if (i !== -1) this.idle.splice(i, 1);
      c.sock.end('zEND\0');
    }, this.o.idleMs);
    c.idleTimer.unref();
    // most recently used last: taken first, so surplus sessions age out
    this.idle.push(c);
  }

  private discard(c: Conn): void {
    c.destroy();
    this.forget(c);
  }

  private forget(c: Conn): void {
    this.all.delete(c);
    const i = this.idle.indexOf(c);
    if (i !== -1) this.idle.splice(i, 1);
  }

  /**
   * A slot: at most maxConnections scans/commands at once. A slot takes an idle session before it opens
   * a connection, and opens one only when none is idle, so open connections never exceed the slots.
   */
  private acquire(deadline: number, abort: Promise<void>): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    if (this.busy < this.o.maxConnections) {
      this.busy++;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      let done = false;
      const waiter = (ok: boolean) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(ok);
      };
      const timer = setTimeout(
        () => {
          const i = this.waiters.indexOf(waiter);
          if (i !== -1) this.waiters.splice(i, 1);
          waiter(false);
        },
        Math.max(1, deadline - Date.now()),
      );
      void abort.then(() => {
        const i = this.waiters.indexOf(waiter);
        if (i !== -1) this.waiters.splice(i, 1);
        waiter(false);
      });
      this.waiters.push(waiter);
    });
  }

  private releaseSlot(): void {
    const next = this.waiters.shift();
    if (next) next(true);
    else this.busy--;
  }
}
