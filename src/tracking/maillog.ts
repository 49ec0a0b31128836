// The mail log (DESIGN §8): one line per event, appended to dataDir/logs/mail.log and rotated by size.
import {
  createWriteStream,
  openSync,
  mkdirSync,
  renameSync,
  statSync,
  existsSync,
  unlinkSync,
  type WriteStream,
} from 'node:fs';
import path from 'node:path';

export class MailLog {
  private stream: WriteStream;
  private size: number;
  private buffer = '';
  private flushScheduled = false;
  private readonly file: string;
  private readonly maxSize: number;
  private readonly keep: number;

  constructor(dir: string, maxSize: number, keep: number) {
    mkdirSync(dir, { recursive: true });
    this.file = path.join(dir, 'mail.log');
    this.maxSize = maxSize;
    this.keep = keep;
    this.size = existsSync(this.file) ? statSync(this.file).size : 0;
    this.stream = this.open();
  }

  // Opened synchronously so the file exists at once: rotation renames it, pending writes follow the inode.
  private open(): WriteStream {
    return createWriteStream('', { fd: openSync(this.file, 'a'), flags: 'a' });
  }

  info(text: string): void {
    this.line('Info', text);
  }

  warning(text: string): void {
    this.line('Warning', text);
  }

  private line(level: string, text: string): void {
    // Never let a CR/LF from a peer forge a log line.
    const line = `${new Date().toISOString()} ${level}: ${text.replace(/[\r\n]+/g, ' ')}\n`;
    // BW_DEBUG=1 echoes the mail log to stderr (debugging tests that run the gateway in-process)
    if (process.env.BW_DEBUG) process.stderr.write(line);
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
    if (!this.buffer) return;
    this.stream.write(this.buffer);
    this.buffer = '';
  }

  private rotate(): void {
    this.flush();
    this.stream.end();
    for (let i = this.keep - 1; i >= 1; i--) {
      const from = `${this.file}.${i}`;
      if (existsSync(from)) renameSync(from, `${this.file}.${i + 1}`);
    }
    if (existsSync(`${this.file}.${this.keep + 1}`)) unlinkSync(`${this.file}.${this.keep + 1}`);
    renameSync(this.file, `${this.file}.1`);
    this.stream = this.open();
    this.size = 0;
  }

  close(): Promise<void> {
    this.flush();
    return new Promise((resolve) => this.stream.end(resolve));
  }
}
