// Real SMTP peers for tests and benchmarks, on loopback with dynamic ports: Postfix's smtp-sink and
// smtp-source, swaks, Python's smtplib.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, chmodSync, existsSync, rmSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';

const tempDirs: string[] = [];
process.on('exit', () => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

/** A temp directory removed when the test process exits. */
export function tempDir(prefix: string): string {
  const d = mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(d);
  return d;
}

export function hasBinary(name: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/bin', '/sbin'])) {
    if (dir && existsSync(path.join(dir, name))) return true;
  }
  return false;
}

export function binary(name: string): string {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/bin', '/sbin'])) {
    const p = path.join(dir, name);
    if (dir && existsSync(p)) return p;
  }
  throw new Error(`${name} is not installed (see .ci/run)`);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * A port where nothing will answer, held for the test: every connection is closed at once (the client
 * sees the connection end before any greeting, like a refusal). A port from freePort() used as "nothing
 * listens" can be handed to another test's listen(0) meanwhile, which then answers (or hangs) in its
 * place; this one stays ours until release() (call it just before starting a server on the port).
 */
export async function deadPort(): Promise<{ port: number; release(): Promise<void> }> {
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  let released: Promise<void> | null = null;
  return {
    port,
    release: () => (released ??= new Promise<void>((resolve) => server.close(() => resolve()))),
  };
}

export async function waitForPort(port: number, timeoutMs = 5000, host = '127.0.0.1'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, host);
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`port ${port} did not open`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export interface Sink {
  port: number;
  dir: string | null;
  proc: ChildProcess;
  /** dumped transactions (with -d), parsed */
  messages(): SinkMessage[];
  stop(): Promise<void>;
}

export interface SinkMessage {
  file: string;
  mailFrom: string;
  rcptTo: string[];
  /** message as received, with smtp-sink's own lines removed; line endings are LF (smtp-sink writes LF) */
  body: string;
}

/**
 * Starts Postfix's smtp-sink on a free loopback port. With `dump`, each transaction is written to its
 * own file. `extra` passes more options (e.g. ['-B', '550 5.1.1 no such user', '-r', ...]).
 */
export async function startSmtpSink(
  opts: { dump?: boolean; extra?: string[]; port?: number; host?: string } = {},
): Promise<Sink> {
  const port = opts.port ?? (await freePort());
  let dir: string | null = null;
  const args: string[] = [];
  if (process.getuid?.() === 0) args.push('-u', 'nobody');
  if (opts.dump) {
    dir = tempDir('bw-sink-');
    chmodSync(dir, 0o777);
    args.push('-d', `${dir}/%Y%m%d%H%M%S.`);
  }
  const host = opts.host ?? '127.0.0.1';
  args.push(...(opts.extra ?? []), `${host}:${port}`, '1024');
  const proc = spawn(binary('smtp-sink'), args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  await waitForPort(port, 5000, host).catch((err) => {
    proc.kill('SIGKILL');
    throw new Error(`${err.message}: ${stderr}`);
  });
  return {
    port,
    dir,
    proc,
    messages() {
      if (!dir) return [];
      // a dump smtp-sink has created but not written yet has no envelope: not a message (yet)
      return readdirSync(dir)
        .sort()
        .map((f) => parseSinkDump(path.join(dir!, f)))
        .filter((m) => m.rcptTo.length > 0);
    },
    stop() {
      return new Promise((resolve) => {
        if (proc.exitCode !== null || proc.signalCode) return resolve();
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      });
    },
  };
}

export function parseSinkDump(file: string): SinkMessage {
  const text = readFileSync(file, 'latin1');
  const lines = text.split('\n');
  let i = 0;
  let mailFrom = '';
  const rcptTo: string[] = [];
  for (; i < lines.length; i++) {
    const l = lines[i];
    if (l.startsWith('X-Mail-Args: ')) mailFrom = l.slice(13).replace(/^<|>.*$/g, '');
    else if (l.startsWith('X-Rcpt-Args: ')) rcptTo.push(l.slice(13).replace(/^<|>.*$/g, ''));
    else if (/^X-(Client-Addr|Client-Proto|Helo-Args): /.test(l)) continue;
    else break;
  }
  // smtp-sink's own Received: header (3 lines) follows its X- lines
  if (lines[i]?.startsWith('Received: from ') && lines[i + 1]?.includes('(smtp-sink)')) {
    i += 1;
    while (lines[i]?.startsWith('\t')) i++;
  }
  return { file, mailFrom, rcptTo, body: lines.slice(i).join('\n') };
}

export async function waitFor<T>(
  fn: () => T | undefined | null | false,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Runs smtp-source; resolves with its exit code and output. */
export function smtpSource(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(binary('smtp-source'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout!.on('data', (d) => (out += d));
    p.stderr!.on('data', (d) => (out += d));
    p.on('exit', (code) => resolve({ code: code ?? -1, out }));
  });
}

/** Runs a command without blocking the event loop (the gateway under test often runs in-process). */
export function run(cmd: string, args: string[], input?: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout!.on('data', (d) => (out += d));
    p.stderr!.on('data', (d) => (out += d));
    p.on('error', (err) => resolve({ code: -1, out: String(err) }));
    p.on('exit', (code) => resolve({ code: code ?? -1, out }));
    p.stdin!.end(input ?? '');
  });
}

export function swaks(args: string[]): Promise<{ code: number; out: string }> {
  return run(binary('swaks'), args);
}

/** Sends one message with Python's smtplib; prints {"ok": true, "refused": {...}} or an error. */
export function pythonSend(
  port: number,
  from: string,
  to: string[],
  message: string,
): Promise<{ code: number; out: string }> {
  const script = `
import smtplib, sys, json
data = sys.stdin.buffer.read()
s = smtplib.SMTP('127.0.0.1', ${port}, timeout=30)
s.ehlo('python.test')
try:
    refused = s.sendmail(${JSON.stringify(from)}, ${JSON.stringify(to)}, data)
    print(json.dumps({'ok': True, 'refused': {k: [v[0], v[1].decode()] for k, v in refused.items()}}))
except smtplib.SMTPException as e:
    print(json.dumps({'ok': False, 'error': str(e)}))
s.quit()
`;
  return run('python3', ['-c', script], message);
}

export type HangMode = 'silent' | 'stall-data' | 'proxy';

/** A downstream SMTP server on loopback that hangs (for "downstream hangs" tests); see startHangingPeer. */
export interface HangingPeer {
  port: number;
  /** how new connections are treated */
  readonly mode: HangMode;
  /** connections accepted so far */
  readonly connections: number;
  /** messages received whole (up to the final dot) by stalled sessions and never answered */
  readonly unanswered: number;
  /** sessions open and stalled (silent, or waiting after DATA) */
  readonly stalled: number;
  /**
   * Downstream becomes healthy: from now on every connection is proxied to `upstreamPort` (an
   * smtp-sink), and the stalled sessions are dropped, as a downstream restart would.
   */
  heal(upstreamPort: number): void;
  close(): Promise<void>;
}

/**
 * A loopback TCP server that plays a hung downstream. `silent`: accepts and never sends a greeting.
 * `stall-data`: greets, accepts EHLO, MAIL, RCPT and DATA (354), reads the message, and never answers
 * the final dot. heal() turns it into a plain proxy to a real SMTP server on the same port.
 */
export async function startHangingPeer(mode: Exclude<HangMode, 'proxy'>): Promise<HangingPeer> {
  let current: HangMode = mode;
  let upstream = 0;
  let connections = 0;
  let unanswered = 0;
  const stalled = new Set<Socket>();
  const open = new Set<Socket>();
  const server = createServer((sock) => {
    connections++;
    open.add(sock);
    sock.on('close', () => {
      open.delete(sock);
      stalled.delete(sock);
    });
    sock.on('error', () => {});
    if (current === 'proxy') {
      const up = connect(upstream, '127.0.0.1');
      up.on('error', () => sock.destroy());
      sock.on('error', () => up.destroy());
      sock.on('close', () => up.destroy());
      up.on('close', () => sock.destroy());
      sock.pipe(up);
      up.pipe(sock);
      return;
    }
    stalled.add(sock);
    if (current === 'silent') return;
    // stall-data: a minimal SMTP server that goes quiet at the end of DATA
    let buf = '';
    let inData = false;
    sock.write('220 hang.test ESMTP\r\n');
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      for (;;) {
        if (inData) {
          const end = buf.indexOf('\r\n.\r\n');
          if (end < 0) return;
          buf = buf.slice(end + 5);
          inData = false;
          unanswered++;
          return; // and never answer
        }
        const nl = buf.indexOf('\r\n');
        if (nl < 0) return;
        const line = buf.slice(0, nl).toUpperCase();
        buf = buf.slice(nl + 2);
        if (line.startsWith('EHLO') || line.startsWith('HELO')) sock.write('250 hang.test\r\n');
        else if (line.startsWith('MAIL') || line.startsWith('RCPT') || line.startsWith('RSET') || line === 'NOOP')
          sock.write('250 2.0.0 Ok\r\n');
        else if (line === 'DATA') {
          sock.write('354 End data with <CR><LF>.<CR><LF>\r\n');
          inData = true;
          buf = '\r\n' + buf; // the final dot may come on the very first line
        } else if (line === 'QUIT') sock.end('221 2.0.0 Bye\r\n');
        else sock.write('502 5.5.2 Error: command not recognized\r\n');
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as { port: number }).port,
    get mode() {
      return current;
    },
    get connections() {
      return connections;
    },
    get unanswered() {
      return unanswered;
    },
    get stalled() {
      return stalled.size;
    },
    heal(upstreamPort: number) {
      upstream = upstreamPort;
      current = 'proxy';
      for (const s of stalled) s.destroy();
      stalled.clear();
    },
    close() {
      for (const s of open) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
