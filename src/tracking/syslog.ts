// The mail log to syslog, as mail administrators ship their gateway logs to a SIEM: every mail log line
// as one RFC 5424 message, over UDP (RFC 5426), TCP or TLS (octet-counting framing, RFC 6587 §3.4.1 and
// RFC 5425), or a local stream socket. Best effort and never in the way of mail: lines wait in a
// bounded queue while the server cannot be reached (reconnecting with backoff); past the bound the
// oldest are dropped and counted.
import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import type { z } from 'zod';
import type { syslogSchema } from '../config/schema.ts';
import type { MailLog } from './maillog.ts';

export type SyslogConfig = z.infer<typeof syslogSchema>;

/** RFC 5424 §6.2.1 facility codes. */
const FACILITIES: Record<SyslogConfig['facility'], number> = {
  mail: 2,
  local0: 16,
  local1: 17,
  local2: 18,
  local3: 19,
  local4: 20,
  local5: 21,
  local6: 22,
  local7: 23,
};
/** RFC 5424 severities for the mail log's levels. */
const SEVERITIES: Record<string, number> = { Warning: 4, Info: 6 };
/** Longest message over UDP: RFC 5426 §3.2 asks receivers for at least 480 octets, most take 2048. */
const MAX_UDP_BYTES = 2048;

export interface SyslogHealth {
  transport: string;
  target: string;
  connected: boolean;
  sent: number;
  /** lines dropped because the queue was full or a datagram could not be sent */
  dropped: number;
  queued: number;
  lastError: string | null;
}

export interface SyslogExporter {
  health(): SyslogHealth;
  /** sends what is queued (waits at most `timeoutMs`), then closes */
  close(timeoutMs?: number): Promise<void>;
}

/** Formats one RFC 5424 message (§6): `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG`. */
export function formatSyslog(
  cfg: Pick<SyslogConfig, 'facility' | 'appName'>,
  hostname: string,
  level: string,
  text: string,
  at = new Date(),
): string {
  const pri = FACILITIES[cfg.facility] * 8 + (SEVERITIES[level] ?? 6);
  // HOSTNAME and the header fields are PRINTUSASCII without spaces (§6.2.4); the message is UTF-8 text
  // whose control characters the mail log has already escaped.
  const host = hostname.replace(/[^!-~]/g, '').slice(0, 255) || '-';
  return `<${pri}>1 ${at.toISOString()} ${host} ${cfg.appName} ${process.pid} ${level === 'Warning' ? 'warning' : 'info'} - ${text}`;
}

/** Mirrors every mail log line to syslog; the first connection is tried at once but never awaited long. */
export async function startSyslog(cfg: SyslogConfig, hostname: string, log: MailLog): Promise<SyslogExporter> {
  const exporter = cfg.transport === 'udp' ? new UdpExporter(cfg) : new StreamExporter(cfg);
  log.tap((_line, level, text) => exporter.send(formatSyslog(cfg, hostname, level, text)));
  await exporter.ready();
  return exporter;
}

abstract class Exporter implements SyslogExporter {
  protected readonly cfg: SyslogConfig;
  protected sent = 0;
  protected dropped = 0;
  protected lastError: string | null = null;

  constructor(cfg: SyslogConfig) {
    this.cfg = cfg;
  }

  abstract send(message: string): void;
  abstract ready(): Promise<void>;
  abstract health(): SyslogHealth;
  abstract close(timeoutMs?: number): Promise<void>;

  protected target(): string {
    if (this.cfg.transport === 'unix') return this.cfg.path;
    const port = this.cfg.port ?? (this.cfg.transport === 'tls' ? 6514 : 514);
    return `${this.cfg.host}:${port}`;
  }
}

class UdpExporter extends Exporter {
  private readonly socket: dgram.Socket;
  private readonly port: number;
  private inFlight = 0;

  constructor(cfg: SyslogConfig) {
    super(cfg);
    this.port = cfg.port ?? 514;
    this.socket = dgram.createSocket(net.isIPv6(cfg.host) ? 'udp6' : 'udp4');
    this.socket.on('error', (err) => (this.lastError = err.message));
    this.socket.unref();
  }

  async ready(): Promise<void> {}

  send(message: string): void {
    const whole = Buffer.from(message);
    const buf = whole.length > MAX_UDP_BYTES ? truncateUtf8(whole, MAX_UDP_BYTES) : whole;
    if (this.inFlight >= this.cfg.maxQueue) {
      this.dropped++;
      return;
    }
    this.inFlight++;
    this.socket.send(buf, this.port, this.cfg.host, (err) => {
      this.inFlight--;
      if (err) {
        this.dropped++;
        this.lastError = err.message;
      } else this.sent++;
    });
  }

  health(): SyslogHealth {
    return {
      transport: 'udp',
      target: this.target(),
      connected: true,
      sent: this.sent,
      dropped: this.dropped,
      queued: this.inFlight,
      lastError: this.lastError,
    };
  }

  async close(timeoutMs = 2000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await new Promise<void>((r) => this.socket.close(() => r()));
  }
}

/** TCP, TLS and unix stream sockets: framed messages, a bounded queue, reconnection with backoff. */
class StreamExporter extends Exporter {
  private socket: net.Socket | null = null;
  private connected = false;
  private readonly queue: Buffer[] = [];
  private backoffMs = 500;
  private retryTimer: NodeJS.Timeout | null = null;
  private closing = false;
  private firstAttempt: Promise<void>;
  private settleFirst: () => void = () => {};

  constructor(cfg: SyslogConfig) {
    super(cfg);
    this.firstAttempt = new Promise((r) => (this.settleFirst = r));
    this.connect();
  }

  /** Waits for the first connection attempt (at most a second): an unreachable server never delays start. */
  async ready(): Promise<void> {
    await Promise.race([this.firstAttempt, new Promise((r) => setTimeout(r, 1000).unref())]);
  }

  private frame(message: string): Buffer {
    const body = Buffer.from(message);
    // unix: one message per line (what local daemons read); tcp/tls: octet counting (RFC 6587 §3.4.1).
    if (this.cfg.transport === 'unix') return Buffer.concat([body, Buffer.from('\n')]);
    return Buffer.concat([Buffer.from(`${body.length} `), body]);
  }

  send(message: string): void {
    const frame = this.frame(message);
    if (this.connected && this.socket && this.queue.length === 0 && !this.socket.writableNeedDrain) {
      this.write(frame);
      return;
    }
    this.queue.push(frame);
    while (this.queue.length > this.cfg.maxQueue) {
      this.queue.shift();
      this.dropped++;
    }
  }

  private write(frame: Buffer): void {
    // A slow server is a full kernel buffer: keep what cannot be written in our bounded queue.
    if (!this.socket!.write(frame)) this.socket!.once('drain', () => this.flush());
    this.sent++;
  }

  private flush(): void {
    while (this.connected && this.socket && this.queue.length && this.socket.writableNeedDrain === false)
      this.write(this.queue.shift()!);
  }

  private connect(): void {
    if (this.closing) return;
    const cfg = this.cfg;
    const onConnect = (): void => {
      this.connected = true;
      this.backoffMs = 500;
      this.lastError = null;
      this.settleFirst();
      this.flush();
    };
    let socket: net.Socket;
    if (cfg.transport === 'unix') socket = net.connect(cfg.path, onConnect);
    else if (cfg.transport === 'tcp') socket = net.connect(cfg.port ?? 514, cfg.host, onConnect);
    else
      socket = tls.connect(
        {
          host: cfg.host,
          port: cfg.port ?? 6514,
          servername: net.isIP(cfg.host) ? undefined : cfg.host,
          ca: cfg.ca ? readFileSync(cfg.ca) : undefined,
          rejectUnauthorized: cfg.rejectUnauthorized,
        },
        onConnect,
      );
    socket.setKeepAlive(true, 30_000);
    socket.unref();
    socket.on('error', (err) => (this.lastError = err.message));
    socket.on('close', () => {
      this.connected = false;
      this.socket = null;
      this.settleFirst();
      if (this.closing) return;
      this.retryTimer = setTimeout(() => this.connect(), this.backoffMs);
      this.retryTimer.unref();
      this.backoffMs = Math.min(this.backoffMs * 2, 30_000);
    });
    // The server never talks back (RFC 6587): anything it sends is read and ignored.
    socket.on('data', () => {});
    this.socket = socket;
  }

  health(): SyslogHealth {
    return {
      transport: this.cfg.transport,
      target: this.target(),
      connected: this.connected,
      sent: this.sent,
      dropped: this.dropped,
      queued: this.queue.length,
      lastError: this.lastError,
    };
  }

  async close(timeoutMs = 2000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.connected && this.queue.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    this.closing = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const s = this.socket;
    if (!s) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(
        () => {
          s.destroy();
          resolve();
        },
        Math.max(deadline - Date.now(), 100),
      );
      s.end(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}

/** Cuts a UTF-8 buffer to at most `max` bytes without splitting a character. */
function truncateUtf8(buf: Buffer, max: number): Buffer {
  let end = max;
  while (end > 0 && (buf[end] & 0xc0) === 0x80) end--;
  return buf.subarray(0, end);
}
