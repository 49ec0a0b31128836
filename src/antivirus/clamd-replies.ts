// clamd's replies: INSTREAM verdicts and VERSION (see clamd.ts for the protocol).
//
// Verdicts: names starting with `Heuristics.Encrypted` (clamd's AlertEncrypted / AlertEncryptedArchive /
// AlertEncryptedDoc, e.g. `Heuristics.Encrypted.Zip`) are not infections but "could not look inside":
// they map to unscannable/encrypted. Without `AlertEncrypted yes` in clamd.conf an encrypted archive
// comes back as `stream: OK`. Likewise `Heuristics.Limits.Exceeded*` (AlertExceedsMax) maps to
// unscannable/size_limit. A reply holding any other name is `infected`, with every name listed.
//
// Signature version: `VERSION` answers `ClamAV 1.4.6/27500/Mon Nov 23 10:46:27 2026` when a `daily.*`
// database (cvd, cld or cud) is loaded: the middle field is that database's version. With only custom
// .hdb/.ndb files it answers just `ClamAV 1.4.6`, before and after RELOAD, and STATS carries no
// signature count either (only pools, threads, queue and memory), so nothing in the protocol shows that
// custom signatures changed. What works: ship a version stamp next to the custom signatures, an unsigned
// `daily.cud` built by `buildSignatureStamp(n)`; clamd then answers `ClamAV 1.4.6/<n>/<date>`, and
// bumping n with every signature change (then RELOAD) makes `version().signatureVersion` change once the
// new database is active. The stamp holds one ignore-list entry (`daily.ign2`), so it adds no signature.
// Only for deployments without the official daily database (which would carry the same name).
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';

export type ScanResult =
  | { verdict: 'clean' }
  | { verdict: 'infected'; names: string[] }
  | {
      verdict: 'unscannable';
      reason: 'size_limit' | 'encrypted' | 'error' | 'timeout' | 'unavailable';
      detail: string;
    };

export interface ClamdVersion {
  /** engine version, e.g. `1.4.6` */
  engine: string;
  /** version of the loaded daily database (or signature stamp); null when clamd reports none */
  signatureVersion: number | null;
  /** that database's build time as clamd prints it (ctime format, clamd's local time) */
  signatureDate: string | null;
  /** the reply as received, without the trailing NUL */
  raw: string;
}

const ENCRYPTED_PREFIX = 'Heuristics.Encrypted';
const LIMITS_PREFIX = 'Heuristics.Limits.Exceeded';

/** Maps one clamd INSTREAM reply (without a session id prefix) to a verdict. */
export function parseScanReply(reply: string): ScanResult {
  const text = reply.replace(/\0+$/, '').trim();
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  const names: string[] = [];
  const errors: string[] = [];
  let ok = false;
  for (const line of lines) {
    const body = line.startsWith('stream: ') ? line.slice(8) : line;
    if (body === 'OK') ok = true;
    else if (body.endsWith(' FOUND')) names.push(body.slice(0, -6).trim());
    else errors.push(line);
  }
  if (names.length > 0) {
    const real = names.filter((n) => !n.startsWith(ENCRYPTED_PREFIX) && !n.startsWith(LIMITS_PREFIX));
    if (real.length > 0) return { verdict: 'infected', names };
    if (names.some((n) => n.startsWith(ENCRYPTED_PREFIX)))
      return { verdict: 'unscannable', reason: 'encrypted', detail: names.join(', ') };
    return { verdict: 'unscannable', reason: 'size_limit', detail: names.join(', ') };
  }
  if (errors.length > 0) {
    const detail = clip(errors.join(' | '));
    if (/size limit exceeded/i.test(detail)) return { verdict: 'unscannable', reason: 'size_limit', detail };
    return { verdict: 'unscannable', reason: 'error', detail };
  }
  if (ok) return { verdict: 'clean' };
  return { verdict: 'unscannable', reason: 'error', detail: `unexpected clamd reply: ${clip(JSON.stringify(text))}` };
}

/** Parses `ClamAV 1.4.6/27500/Mon Nov 23 10:46:27 2026` (or just `ClamAV 1.4.6`). */
export function parseVersion(reply: string): ClamdVersion {
  const raw = reply.replace(/\0+$/, '').trim();
  const m = /^ClamAV\s+([^/]+?)(?:\/(\d+)(?:\/(.*))?)?$/.exec(raw);
  if (!m) return { engine: raw, signatureVersion: null, signatureDate: null, raw };
  return {
    engine: m[1],
    signatureVersion: m[2] === undefined ? null : Number(m[2]),
    signatureDate: m[3] === undefined || m[3] === '' ? null : m[3],
    raw,
  };
}

/**
 * An unsigned clamd database (`.cud`) that carries only a version: write it as `daily.cud` in clamd's
 * DatabaseDirectory next to custom signatures, and clamd's VERSION reports `ClamAV x/<version>/<date>`.
 * Raise the version whenever the signatures change, then RELOAD. It holds a single ignore-list entry
 * (`daily.ign2`) and so adds no signature. Verified with clamd 1.4.6.
 */
export function buildSignatureStamp(version: number, time: Date = new Date()): Buffer {
  if (!Number.isSafeInteger(version) || version < 1) throw new RangeError('version must be a positive integer');
  const stime = Math.floor(time.getTime() / 1000);
  const p2 = (n: number) => String(n).padStart(2, '0');
  const mon = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const built = `${p2(time.getUTCDate())} ${mon[time.getUTCMonth()]} ${time.getUTCFullYear()} ${p2(time.getUTCHours())}-${p2(time.getUTCMinutes())} +0000`;
  // ClamAV-VDB:build time:version:signatures:functionality level:MD5:digital signature:builder:stime
  const header = (md5: string) => `ClamAV-VDB:${built}:${version}:1:90:${md5}:X:breakwater:${stime}`;
  const ign = Buffer.from('Breakwater.SignatureStamp\n');
  const info = Buffer.from(
    `${header('X')}\ndaily.ign2:${ign.length}:${createHash('sha256').update(ign).digest('hex')}\n`,
  );
  const tar = Buffer.concat([
    tarEntry('daily.info', info, stime),
    tarEntry('daily.ign2', ign, stime),
    Buffer.alloc(1024),
  ]);
  const tgz = gzipSync(tar);
  const head = Buffer.alloc(512, 0x20);
  head.write(header(createHash('md5').update(tgz).digest('hex')), 'latin1');
  return Buffer.concat([head, tgz]);
}

function tarEntry(name: string, data: Buffer, mtime: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 'latin1');
  h.write('0000644\0', 100, 'latin1');
  h.write('0000000\0', 108, 'latin1');
  h.write('0000000\0', 116, 'latin1');
  h.write(data.length.toString(8).padStart(11, '0') + '\0', 124, 'latin1');
  h.write(mtime.toString(8).padStart(11, '0') + '\0', 136, 'latin1');
  h.write('        ', 148, 'latin1');
  h.write('0', 156, 'latin1');
  h.write('ustar\0' + '00', 257, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  const pad = (512 - (data.length % 512)) % 512;
  return Buffer.concat([h, data, Buffer.alloc(pad)]);
}

function clip(s: string, n = 300): string {
  return s.length > n ? s.slice(0, n) + '…' : s;
}
