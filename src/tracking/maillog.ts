// The mail log (DESIGN §8): one line per event, appended to dataDir/logs/mail.log and rotated by size.
// A line that cannot be written (disk full, I/O error) is counted and reported, never fatal: the log is
// a record for people, and mail must keep flowing without it.
import { openSync, mkdirSync, renameSync, statSync, existsSync, unlinkSync, write, writeSync, close } from 'node:fs';
import path from 'node:path';
import { escapeControls } from './escape.ts';

export interface MailLogHealth {
  /** lines that could not be written since start */
  droppedLines: number;
  /** the last write error, if any */
  lastError: string | null;
}

export class MailLog {
  private fd: number;
  private size: number;
  private buffer = '';
  private flushScheduled = false;
  /** a write is in flight; lines gathered meanwhile go out with the next one */
  private writing = false;
  private closeWaiters: Array<() => void> = [];
  private readonly file: string;
  private readonly maxSize: number;
  private readonly keep: number;
  readonly health: MailLogHealth = { droppedLines: 0, lastError: null };
  /** lines dropped since the last successful write (reported in the log once it works again) */
  private droppedSinceWrite = 0;
  /** told of every failed write (the storage guard) */
  onWriteError: ((err: NodeJS.ErrnoException) => void) | null = null;
  /** extra destinations for every line (syslog) */
  private readonly taps: Array<(line: string, level: string, text: string) => void> = [];

  constructor(dir: string, maxSize: number, keep: number) {
    mkdirSync(dir, { recursive: true });
    this.file = path.join(dir, 'mail.log');
    this.maxSize = maxSize;
    this.keep = keep;
    this.size = existsSync(this.file) ? statSync(this.file).size : 0;
    // Opened synchronously so the file exists at once: rotation renames it, pending writes follow the inode.
    this.fd = openSync(this.file, 'a');
  }

  info(text: string): void {
    this.line('Info', text);
  }

  warning(text: string): void {
    this.line('Warning', text);
  }

  /**
   * The last line of a process about to exit on an unexpected error: written at once, synchronously,
   * with whatever lines were still gathered (an asynchronous write would never run).
   */
  fatal(text: string): void {
    const line = `${new Date().toISOString()} Critical: ${escapeControls(text)}\n`;
    for (const t of this.taps) t(line, 'Critical', escapeControls(text));
    const data = this.buffer + line;
    this.buffer = '';
    if (this.fd < 0) return;
    try {
      writeSync(this.fd, data);
    } catch {
      // the disk may be why the process stops; stderr has the error too
    }
  }

  /** Also sends every line to `fn` (for example a syslog exporter). */
  tap(fn: (line: string, level: string, text: string) => void): void {
    this.taps.push(fn);
  }

  private line(level: string, text: string): void {
    // Peer text never forges a log line or reaches an operator's terminal as control sequences.
    const safe = escapeControls(text);
    const line = `${new Date().toISOString()} ${level}: ${safe}\n`;
    // BW_DEBUG=1 echoes the mail log to stderr (debugging tests that run the gateway in-process)
    if (process.env.BW_DEBUG) process.stderr.write(line);
    for (const t of this.taps) t(line, level, safe);
    this.size += Buffer.byteLength(line);
    // Lines are gathered and written once per event-loop turn: one write call per batch, not per line.
    this.buffer += line;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    if (this.size >= this.maxSize) this.rotate();
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.writing || !this.buffer || this.fd < 0) {
      this.settleClose();
      return;
    }
    let text = this.buffer;
    this.buffer = '';
    const lines = countLines(text);
    if (this.droppedSinceWrite > 0)
      text = `${new Date().toISOString()} Warning: mail log: ${this.droppedSinceWrite} line(s) could not be written (${this.health.lastError})\n${text}`;
    const data = Buffer.from(text);
    this.writing = true;
    const fd = this.fd;
    const done = (err: NodeJS.ErrnoException | null, written: number): void => {
      if (!err && written < data.length) {
        // Short write: send the rest.
        write(fd, data, written, data.length - written, null, (e2, w2) => done(e2, written + w2));
        return;
      }
      this.writing = false;
      if (err) {
        this.health.droppedLines += lines;
        this.droppedSinceWrite += lines;
        this.health.lastError = `${err.code ?? ''} ${err.message}`.trim();
        this.onWriteError?.(err);
      } else this.droppedSinceWrite = 0;
      if (this.buffer) this.flush();
      else this.settleClose();
    };
    write(fd, data, 0, data.length, null, (err, n) => done(err, n));
  }

  private rotate(): void {
    // What is gathered so far still belongs to the file being rotated.
    this.flush();
    try {
      for (let i = this.keep - 1; i >= 1; i--) {
        const from = `${this.file}.${i}`;
        if (existsSync(from)) renameSync(from, `${this.file}.${i + 1}`);
      }
      if (existsSync(`${this.file}.${this.keep + 1}`)) unlinkSync(`${this.file}.${this.keep + 1}`);
      renameSync(this.file, `${this.file}.1`);
      const old = this.fd;
      this.fd = openSync(this.file, 'a');
      // A write in flight still holds the old fd's inode (now mail.log.1); close it after.
      this.closeLater(old);
      this.size = 0;
    } catch (err) {
      // Rotation failed (disk full, permissions): keep writing where we are; try again later.
      this.health.lastError = `rotation failed: ${(err as Error).message}`;
      this.size = Math.floor(this.maxSize * 0.9);
      this.onWriteError?.(err as NodeJS.ErrnoException);
    }
  }

  private closeLater(fd: number): void {
    const attempt = (): void => {
      if (this.writing) setTimeout(attempt, 5).unref();
      else close(fd, () => {});
    };
    attempt();
  }

  private settleClose(): void {
    if (this.writing || this.buffer) return;
    for (const w of this.closeWaiters.splice(0)) w();
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.closeWaiters.push(() => {
        if (this.fd >= 0) close(this.fd, () => resolve());
        else resolve();
        this.fd = -1;
      });
      this.flush();
    });
  }
}

function countLines(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
  return n;
}
