// A raw SMTP client for protocol tests: writes exact bytes, reads complete replies.
import { connect, type Socket } from 'node:net';

export class RawSmtp {
  private socket!: Socket;
  private buffer = '';
  private waiters: Array<() => void> = [];
  closed = false;

  static async open(port: number): Promise<RawSmtp> {
    const c = new RawSmtp();
    await new Promise<void>((resolve, reject) => {
      c.socket = connect(port, '127.0.0.1', () => resolve());
      c.socket.once('error', reject);
    });
    c.socket.on('data', (d) => {
      c.buffer += d.toString('latin1');
      for (const w of c.waiters.splice(0)) w();
    });
    c.socket.on('close', () => {
      c.closed = true;
      for (const w of c.waiters.splice(0)) w();
    });
    c.socket.on('error', () => {});
    return c;
  }

  /** Reads one complete (possibly multi-line) reply. */
  async reply(timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = /^((?:\d{3}-[^\n]*\n)*\d{3}(?: [^\n]*)?\n)/.exec(this.buffer);
      if (m) {
        this.buffer = this.buffer.slice(m[1].length);
        return m[1].replace(/\r\n/g, '\n').trimEnd();
      }
      if (this.closed) return `(closed) ${this.buffer}`;
      if (Date.now() > deadline) throw new Error(`no reply; buffer: ${JSON.stringify(this.buffer)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  async cmd(line: string): Promise<string> {
    this.write(line + '\r\n');
    return this.reply();
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * One SMTP transaction with a unique `subject` (the body says `unique <subject>`) padded to about
 * `bodyBytes`; returns the first refusal (its stage) or the final reply after DATA.
 */
export async function sendFiller(
  port: number,
  subject: string,
  bodyBytes: number,
): Promise<{ stage: string; reply: string }> {
  const line = 'x'.repeat(76) + '\r\n';
  const body = line.repeat(Math.ceil(bodyBytes / line.length));
  const { stage, reply } = await sendMessage(
    port,
    'filler@src.test',
    ['bob@dst.test'],
    `Subject: ${subject}\r\nFrom: <filler@src.test>\r\n\r\nunique ${subject}\r\n${body}`,
  );
  return { stage, reply };
}

/**
 * One SMTP transaction: `message` (CRLF line endings, dot-stuffed by the caller if need be) is sent
 * exactly as given. Returns the first refusal (its stage) or the final reply after DATA, and the MID
 * of a `250 … queued as MID n`.
 */
export async function sendMessage(
  port: number,
  from: string,
  to: string[],
  message: string | Buffer,
  helo = 'fill.test',
): Promise<{ stage: string; reply: string; mid: number | null }> {
  const c = await RawSmtp.open(port);
  try {
    await c.reply();
    await c.cmd(`EHLO ${helo}`);
    const mail = await c.cmd(`MAIL FROM:<${from}>`);
    if (!mail.startsWith('250')) return { stage: 'mail', reply: mail, mid: null };
    for (const rcpt of to) {
      const r = await c.cmd(`RCPT TO:<${rcpt}>`);
      if (!r.startsWith('250')) return { stage: 'rcpt', reply: r, mid: null };
    }
    const data = await c.cmd('DATA');
    if (!data.startsWith('354')) return { stage: 'data', reply: data, mid: null };
    c.write(message);
    c.write('.\r\n');
    const end = await c.reply(20_000);
    await c.cmd('QUIT').catch(() => '');
    const mid = /^250 .*queued as MID (\d+)/.exec(end)?.[1];
    return { stage: 'end', reply: end, mid: mid ? Number(mid) : null };
  } finally {
    c.close();
  }
}

export async function waitForAsync<T>(fn: () => Promise<T | null>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
