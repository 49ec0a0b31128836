// A real clamd for tests and benchmarks, with a signature database written here (freshclam cannot
// download in CI): EICAR by MD5 (.hdb) and by body pattern (.ndb), plus clamav-testfiles' clam.exe by
// MD5, which makes every file in /usr/share/clamav-testfiles detected (they all wrap clam.exe).
// Detections come back with `.UNOFFICIAL` appended (`Gateway.Test.EICAR-NDB.UNOFFICIAL`).
//
// Signature version: with only .hdb/.ndb files clamd's VERSION is just `ClamAV 1.4.6`, so by default a
// version stamp (`daily.cud`, src/antivirus/clamd.ts buildSignatureStamp) sits next to them, and
// addSignature() raises it: VERSION then reads `ClamAV 1.4.6/<n>/<date>`. `{ stamp: false }` starts
// clamd without it.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import { buildSignatureStamp } from '../../src/antivirus/clamd.ts';
import { binary, freePort, hasBinary, tempDir } from './peers.ts';

/** The 68-byte EICAR test string, built from two halves so this file is not itself "infected". */
export const EICAR = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR' + '-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';

export const CLAMAV_TESTFILES = '/usr/share/clamav-testfiles';
const CLAM_EXE = path.join(CLAMAV_TESTFILES, 'clam.exe');

export const SIG = {
  eicarHdb: 'Gateway.Test.EICAR-HDB',
  eicarNdb: 'Gateway.Test.EICAR-NDB',
  clamExe: 'Gateway.Test.ClamExe-HDB',
} as const;

export function hasClamd(): boolean {
  return hasBinary('clamd');
}

export function hasClamavTestfiles(): boolean {
  return existsSync(CLAM_EXE);
}

export interface StartClamdOptions {
  /** clamd's StreamMaxLength in bytes (default 50 MiB) */
  streamMaxLength?: number;
  /** write the daily.cud version stamp (default true) */
  stamp?: boolean;
  /** more clamd.conf lines, e.g. ['CommandReadTimeout 1'] */
  extraConfig?: string[];
  /** clamd's MaxThreads (default 4) */
  maxThreads?: number;
}

export interface TestClamd {
  /** TCP port on 127.0.0.1 */
  port: number;
  /** unix socket path */
  socket: string;
  dir: string;
  dbDir: string;
  logFile: string;
  /** version in the daily.cud stamp (null without a stamp) */
  readonly stampVersion: number | null;
  readonly pid: number | undefined;
  /** SIGTERM, waits for the exit */
  stop(): Promise<void>;
  /** Appends a line to gateway.hdb (default) or gateway.ndb, raises the stamp, RELOADs, waits until the new database is active. */
  addSignature(dbLine: string, file?: 'hdb' | 'ndb'): Promise<void>;
  /** SIGKILL, for "clamd down" tests (returns at once; clamd is gone a moment later) */
  kill(): void;
  /** Starts clamd again with the same configuration, port and socket; waits for PONG. */
  restart(): Promise<void>;
  /** SIGSTOP / SIGCONT: clamd still accepts connections (the kernel does) but answers nothing */
  pause(): void;
  resume(): void;
  /** clamd's log so far */
  log(): string;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

function md5(b: Buffer): string {
  return createHash('md5').update(b).digest('hex');
}

/** Sends one z-command and returns the reply (without the NUL), or null on error/timeout. */
export function clamdCommand(
  target: { socket: string } | { port: number },
  cmd: string,
  timeoutMs = 2000,
): Promise<string | null> {
  return new Promise((resolve) => {
    const s = 'socket' in target ? connect({ path: target.socket }) : connect(target.port, '127.0.0.1');
    const out: Buffer[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      resolve(null);
    }, timeoutMs);
    s.on('connect', () => s.write(`z${cmd}\0`));
    s.on('data', (d) => {
      out.push(d);
      const all = Buffer.concat(out);
      if (all.includes(0)) {
        clearTimeout(timer);
        s.destroy();
        resolve(all.subarray(0, all.indexOf(0)).toString());
      }
    });
    s.on('error', () => {
      clearTimeout(timer);
      resolve(null);
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve(null);
    });
  });
}

export async function startClamd(opts: StartClamdOptions = {}): Promise<TestClamd> {
  const bin = binary('clamd');
  const dir = tempDir('bw-clamd-');
  const dbDir = path.join(dir, 'db');
  const tmp = path.join(dir, 'tmp');
  mkdirSync(dbDir);
  mkdirSync(tmp);
  const eicar = Buffer.from(EICAR);
  const hdb = [`${md5(eicar)}:${eicar.length}:${SIG.eicarHdb}`];
  if (existsSync(CLAM_EXE)) {
    const exe = readFileSync(CLAM_EXE);
    hdb.push(`${md5(exe)}:${exe.length}:${SIG.clamExe}`);
  }
  writeFileSync(path.join(dbDir, 'gateway.hdb'), hdb.join('\n') + '\n');
  const body = Buffer.from('EICAR-STANDARD-ANTIVIRUS-TEST-FILE').toString('hex');
  writeFileSync(path.join(dbDir, 'gateway.ndb'), `${SIG.eicarNdb}:0:*:${body}\n`);
  let stampVersion: number | null = opts.stamp === false ? null : 1;
  const writeStamp = () => {
    if (stampVersion !== null) writeFileSync(path.join(dbDir, 'daily.cud'), buildSignatureStamp(stampVersion));
  };
  writeStamp();

  const port = await freePort();
  const socket = path.join(dir, 'clamd.sock');
  const logFile = path.join(dir, 'clamd.log');
  const conf = path.join(dir, 'clamd.conf');
  // Running as root needs no `User` line: clamd 1.4.6 then simply stays root (checked in its log).
  writeFileSync(
    conf,
    [
      `TCPSocket ${port}`,
      'TCPAddr 127.0.0.1',
      `LocalSocket ${socket}`,
      `DatabaseDirectory ${dbDir}`,
      `TemporaryDirectory ${tmp}`,
      'Foreground true',
      `LogFile ${logFile}`,
      'LogTime true',
      `PidFile ${path.join(dir, 'clamd.pid')}`,
      `MaxThreads ${opts.maxThreads ?? 4}`,
      `StreamMaxLength ${opts.streamMaxLength ?? 50 * 1024 * 1024}`,
      'ScanArchive true',
      'ScanMail true',
      'AlertEncrypted yes',
      ...(opts.extraConfig ?? []),
      '',
    ].join('\n'),
  );

  let proc: ChildProcess | null = null;
  let stderr = '';

  const log = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');

  async function launch(): Promise<void> {
    stderr = '';
    const p = spawn(bin, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    proc = p;
    running.add(p);
    p.stderr!.on('data', (d) => {
      if (stderr.length < 20_000) stderr += d;
    });
    p.once('exit', () => running.delete(p));
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (p.exitCode !== null || p.signalCode)
        throw new Error(`clamd exited (${p.exitCode ?? p.signalCode}): ${stderr || log()}`);
      if ((await clamdCommand({ port }, 'PING', 500)) === 'PONG') return;
      if (Date.now() > deadline) {
        p.kill('SIGKILL');
        throw new Error(`clamd did not answer PING: ${stderr || log()}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  function stopProc(): Promise<void> {
    const p = proc;
    if (!p || p.exitCode !== null || p.signalCode) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => p.kill('SIGKILL'), 5000);
      p.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      p.kill('SIGCONT');
      p.kill('SIGTERM');
    });
  }

  await launch();

  const countReloads = () => {
    const l = log();
    return {
      done: l.split('Activating the newly loaded database').length - 1,
      failed: l.split('Database reload failed').length - 1,
    };
  };

  return {
    port,
    socket,
    dir,
    dbDir,
    logFile,
    get stampVersion() {
      return stampVersion;
    },
    get pid() {
      return proc?.pid;
    },
    stop: stopProc,
    async addSignature(dbLine: string, file: 'hdb' | 'ndb' = 'hdb') {
      const before = countReloads();
      const size = statSync(logFile).size;
      appendFileSync(path.join(dbDir, `gateway.${file}`), dbLine.replace(/\n+$/, '') + '\n');
      if (stampVersion !== null) {
        stampVersion++;
        writeStamp();
      }
      const r = await clamdCommand({ port }, 'RELOAD');
      if (r !== 'RELOADING') throw new Error(`clamd RELOAD answered ${r}`);
      const deadline = Date.now() + 20_000;
      for (;;) {
        const now = countReloads();
        if (now.failed > before.failed)
          throw new Error(`clamd could not load the new database: ${readFileSync(logFile, 'utf8').slice(size)}`);
        if (now.done > before.done) break;
        if (Date.now() > deadline) throw new Error('clamd did not finish reloading');
        await new Promise((res) => setTimeout(res, 25));
      }
      if (stampVersion !== null) {
        const want = `/${stampVersion}/`;
        while (!(await clamdCommand({ port }, 'VERSION'))?.includes(want)) {
          if (Date.now() > deadline) throw new Error('clamd VERSION did not show the new stamp');
          await new Promise((res) => setTimeout(res, 25));
        }
      }
    },
    kill() {
      proc?.kill('SIGKILL');
    },
    async restart() {
      await stopProc();
      await launch();
    },
    pause() {
      proc?.kill('SIGSTOP');
    },
    resume() {
      proc?.kill('SIGCONT');
    },
    log,
  };
}

// ZipCrypto ("traditional PKWARE encryption"), stored: what `zip -e` writes; fflate cannot encrypt.
const CRC_TABLE = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
export function encryptedZip(name: string, data: Buffer, password: string): Buffer {
  let k0 = 0x12345678;
  let k1 = 0x23456789;
  let k2 = 0x34567890;
  const update = (b: number) => {
    k0 = (CRC_TABLE[(k0 ^ b) & 0xff] ^ (k0 >>> 8)) >>> 0;
    k1 = (Math.imul((k1 + (k0 & 0xff)) >>> 0, 134775813) + 1) >>> 0;
    k2 = (CRC_TABLE[(k2 ^ (k1 >>> 24)) & 0xff] ^ (k2 >>> 8)) >>> 0;
  };
  const keystream = () => {
    const t = (k2 | 2) & 0xffff;
    return (Math.imul(t, t ^ 1) >>> 8) & 0xff;
  };
  for (const b of Buffer.from(password)) update(b);
  const crc = crc32(data) >>> 0;
  const plain = Buffer.concat([randomBytes(11), Buffer.from([crc >>> 24]), data]);
  const enc = Buffer.alloc(plain.length);
  for (let i = 0; i < plain.length; i++) {
    enc[i] = plain[i] ^ keystream();
    update(plain[i]);
  }
  const fname = Buffer.from(name);
  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0);
  local.writeUInt16LE(20, 4);
  local.writeUInt16LE(1, 6); // flag bit 0: encrypted
  local.writeUInt32LE(crc, 14);
  local.writeUInt32LE(enc.length, 18);
  local.writeUInt32LE(data.length, 22);
  local.writeUInt16LE(fname.length, 26);
  const central = Buffer.alloc(46);
  central.writeUInt32LE(0x02014b50, 0);
  central.writeUInt16LE(20, 4);
  central.writeUInt16LE(20, 6);
  central.writeUInt16LE(1, 8);
  central.writeUInt32LE(crc, 16);
  central.writeUInt32LE(enc.length, 20);
  central.writeUInt32LE(data.length, 24);
  central.writeUInt16LE(fname.length, 28);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(1, 8);
  end.writeUInt16LE(1, 10);
  end.writeUInt32LE(central.length + fname.length, 12);
  end.writeUInt32LE(local.length + fname.length + enc.length, 16);
  return Buffer.concat([local, fname, enc, central, fname, end]);
}
