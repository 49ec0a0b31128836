// Accept→delivered latency at a fixed rate, measured the same way for the gateway and for Postfix: a
// paced SMTP client stamps each message with a sequence number and notes when its `250` after DATA
// arrives; a timing sink in the same process notes when the message arrives downstream. Both clocks are
// this process's performance.now(), so the difference is accept→delivered, whatever relays in between.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';

export interface TimingSink {
  port: number;
  /** sequence number → performance.now() when the message's final dot arrived */
  arrivals: Map<number, number>;
  stop(): Promise<void>;
}

const SEQ = Buffer.from('X-Bench-Seq: ');
const END = Buffer.from('\r\n.\r\n');

/** A minimal SMTP sink (PIPELINING, no CHUNKING) that records when each stamped message arrives. */
export async function startTimingSink(): Promise<TimingSink> {
  const arrivals = new Map<number, number>();
  const sockets = new Set<Socket>();
  const server: Server = createServer((sock) => {
    sockets.add(sock);
    sock.setNoDelay(true);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    let buf: Buffer = Buffer.alloc(0);
    let inData = false;
    let seq = -1;
    sock.write('220 timing-sink ESMTP\r\n');
    sock.on('data', (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      for (;;) {
        if (inData) {
          if (seq < 0) {
            const s = buf.indexOf(SEQ);
            if (s >= 0 && s < 4096) {
              const eol = buf.indexOf(13, s);
              if (eol > 0) seq = Number(buf.subarray(s + SEQ.length, eol).toString('latin1'));
            }
          }
          const e = buf.indexOf(END);
          if (e < 0) {
            // keep only what a split terminator or header could need
            if (seq >= 0 && buf.length > 8) buf = buf.subarray(buf.length - 8);
            return;
          }
          if (seq >= 0) arrivals.set(seq, performance.now());
          buf = buf.subarray(e + END.length);
          inData = false;
          seq = -1;
          sock.write('250 2.0.0 Ok\r\n');
          continue;
        }
        const nl = buf.indexOf(10);
        if (nl < 0) return;
        const line = buf.subarray(0, nl).toString('latin1').trim().toUpperCase();
        buf = buf.subarray(nl + 1);
        if (line.startsWith('EHLO')) sock.write('250-timing-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n');
        else if (line.startsWith('DATA')) {
          inData = true;
          // the terminator search starts at the CRLF before the first line
          buf = Buffer.concat([Buffer.from('\r\n'), buf]);
          sock.write('354 go ahead\r\n');
        } else if (line.startsWith('QUIT')) {
          sock.end('221 bye\r\n');
          return;
        } else sock.write('250 2.0.0 Ok\r\n');
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as { port: number }).port,
    arrivals,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** The message file (LF line ends) as SMTP DATA: CRLF, dot-stuffed, without the final dot. */
export function dataOf(file: string): Buffer {
  const text = readFileSync(file, 'latin1').replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..');
  return Buffer.from(text.endsWith('\r\n') ? text : text + '\r\n', 'latin1');
}

class Client {
  private readonly sock: Socket;
  private buf = '';
  private waiter: ((reply: string) => void) | null = null;
  private lines: string[] = [];

  constructor(port: number) {
    this.sock = connect(port, '127.0.0.1');
    this.sock.setNoDelay(true);
    this.sock.on('data', (d: Buffer) => {
      this.buf += d.toString('latin1');
      let nl;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl).replace(/\r$/, '');
        this.buf = this.buf.slice(nl + 1);
        this.lines.push(line);
        if (/^\d{3} /.test(line) || /^\d{3}$/.test(line)) {
          const reply = this.lines.join('\n');
          this.lines = [];
          const w = this.waiter;
          this.waiter = null;
          w?.(reply);
        }
      }
    });
    this.sock.on('error', () => {});
  }

  reply(): Promise<string> {
    return new Promise((r) => (this.waiter = r));
  }

  async cmd(line: string | Buffer, expect: string): Promise<void> {
    const r = this.reply();
    this.sock.write(line);
    const reply = await r;
    if (!reply.startsWith(expect)) throw new Error(`paced client: expected ${expect}, got ${reply}`);
  }

  async open(): Promise<void> {
    const r = await this.reply();
    if (!r.startsWith('220')) throw new Error(`paced client: greeting ${r}`);
    await this.cmd('EHLO paced.bench.test\r\n', '250');
  }

  async send(seq: number, data: Buffer): Promise<void> {
    await this.cmd('MAIL FROM:<a@src.test>\r\n', '250');
    await this.cmd('RCPT TO:<b@dst.test>\r\n', '250');
    await this.cmd('DATA\r\n', '354');
    this.sock.write(`X-Bench-Seq: ${seq}\r\n`);
    this.sock.write(data);
    await this.cmd('.\r\n', '250');
  }

  close(): void {
    this.sock.end('QUIT\r\n');
  }
}

export interface PacedResult {
  /** messages per second offered (the schedule) and achieved (acceptances over the run) */
  offeredPerSec: number;
  acceptedPerSec: number;
  sent: number;
  delivered: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

/**
 * Sends `count` messages at `rate`/s (open loop: message i is due at i/rate s; it waits only for a free
 * connection among `connections`), then waits until the sink has all of them (or `waitMs` passed).
 */
export async function pacedRun(
  port: number,
  sink: TimingSink,
  data: Buffer,
  rate: number,
  count: number,
  connections = 50,
  waitMs = 60_000,
): Promise<PacedResult> {
  const clients = Array.from({ length: connections }, () => new Client(port));
  await Promise.all(clients.map((c) => c.open()));
  const accepted = new Map<number, number>();
  const idle = [...clients];
  const waiting: Array<(c: Client) => void> = [];
  const take = (): Promise<Client> =>
    idle.length ? Promise.resolve(idle.pop()!) : new Promise((r) => waiting.push(r));
  const give = (c: Client): void => {
    const w = waiting.shift();
    if (w) w(c);
    else idle.push(c);
  };
  const base = 1_000_000; // sequence numbers of this run (the sink may be shared)
  const t0 = performance.now();
  const inflight: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    const due = t0 + (i * 1000) / rate;
    const now = performance.now();
    if (due > now) await new Promise((r) => setTimeout(r, due - now));
    const c = await take();
    const seq = base + i;
    inflight.push(
      c.send(seq, data).then(() => {
        accepted.set(seq, performance.now());
        give(c);
      }),
    );
  }
  await Promise.all(inflight);
  const tAccepted = performance.now();
  for (const c of clients) c.close();
  const deadline = Date.now() + waitMs;
  while (Date.now() < deadline && [...accepted.keys()].some((s) => !sink.arrivals.has(s)))
    await new Promise((r) => setTimeout(r, 50));
  const lat: number[] = [];
  for (const [seq, at] of accepted) {
    const arrived = sink.arrivals.get(seq);
    if (arrived !== undefined) lat.push(arrived - at);
  }
  lat.sort((a, b) => a - b);
  return {
    offeredPerSec: rate,
    acceptedPerSec: count / ((tAccepted - t0) / 1000),
    sent: count,
    delivered: lat.length,
    p50Ms: percentile(lat, 0.5),
    p99Ms: percentile(lat, 0.99),
    maxMs: lat.length ? lat[lat.length - 1] : NaN,
  };
}
