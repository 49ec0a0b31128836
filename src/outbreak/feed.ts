// Fetching the signed rule bundle (DESIGN §4.2) from an HTTP(S) URL or a local directory. Only transport lives
// here: the text returned is verified by bundle.ts before anything uses it.
//
// A directory may hold several bundles (say, one file per published version). The newest is the one with the
// highest `bundle.version` inside; files of equal version, and files whose version cannot be read, are ordered by
// modification time. The version read here is not yet verified: a stray unsigned file with a high version makes
// the update fail (and the active rules stay) rather than silently picking an older bundle, which is the safer way
// round for a directory only the administrator writes to.
import { open, readdir, stat } from 'node:fs/promises';
import path from 'node:path';

export type FeedErrorCode = 'unreachable' | 'http_status' | 'too_large' | 'not_found' | 'timeout';

export class FeedError extends Error {
  override readonly name = 'FeedError';
  readonly code: FeedErrorCode;
  /** HTTP status for 'http_status' */
  readonly status?: number;
  constructor(code: FeedErrorCode, message: string, opts: { status?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    if (opts.status !== undefined) this.status = opts.status;
  }
}

export interface FeedSource {
  url?: string;
  dir?: string;
}

export interface FetchOptions {
  /** whole transfer, headers and body (URLs only: a local directory is read without a deadline) */
  timeoutMs: number;
  maxBytes: number;
}

/** Directory files looked at, newest by mtime first: old bundles piling up must not make every update slower. */
export const MAX_DIR_CANDIDATES = 64;

/** The signed bundle text from the feed; throws FeedError. */
export async function fetchBundle(source: FeedSource, opts: FetchOptions): Promise<string> {
  if (source.url && source.dir) throw new TypeError('a rule feed is either a url or a dir, not both');
  if (source.url) return fetchUrl(source.url, opts);
  if (source.dir) return readNewest(source.dir, opts.maxBytes);
  throw new FeedError('not_found', 'no rule feed configured');
}

async function fetchUrl(url: string, opts: FetchOptions): Promise<string> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new FeedError('unreachable', `not a URL: ${url}`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new FeedError('unreachable', `unsupported protocol ${parsed.protocol} (http or https only)`);
  }
  const signal = AbortSignal.timeout(opts.timeoutMs);
  const timedOut = (): FeedError =>
    new FeedError('timeout', `no complete answer from ${url} within ${opts.timeoutMs} ms`);
  let res: Response;
  try {
    res = await fetch(parsed, { signal, redirect: 'follow', headers: { accept: 'application/json' } });
  } catch (err) {
    if (signal.aborted) throw timedOut();
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new FeedError(
      'unreachable',
      `cannot fetch ${url}: ${cause?.code ?? cause?.message ?? (err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => {});
    throw new FeedError('http_status', `${url} answered HTTP ${res.status}`, { status: res.status });
  }
  const declared = Number(res.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > opts.maxBytes) {
    await res.body?.cancel().catch(() => {});
    throw new FeedError('too_large', `${url} announces ${declared} bytes, more than the ${opts.maxBytes} allowed`);
  }
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > opts.maxBytes) {
        await reader.cancel().catch(() => {});
        throw new FeedError('too_large', `${url} sent more than the ${opts.maxBytes} bytes allowed`);
      }
      chunks.push(value);
    }
  } catch (err) {
    if (err instanceof FeedError) throw err;
    if (signal.aborted) throw timedOut();
    throw new FeedError('unreachable', `reading ${url} failed: ${(err as Error).message}`, { cause: err });
  }
  return Buffer.concat(chunks, total).toString('utf8');
}

interface Candidate {
  file: string;
  mtimeMs: number;
  size: number;
}

async function readNewest(dir: string, maxBytes: number): Promise<string> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR')
      throw new FeedError('not_found', `rule feed directory ${dir} does not exist`);
    throw new FeedError('unreachable', `cannot read rule feed directory ${dir}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const candidates: Candidate[] = [];
  for (const name of names) {
    if (!name.toLowerCase().endsWith('.json')) continue;
    const file = path.join(dir, name);
    try {
      const st = await stat(file);
      if (st.isFile()) candidates.push({ file, mtimeMs: st.mtimeMs, size: st.size });
    } catch {
      // removed between readdir and stat: not a candidate
    }
  }
  if (candidates.length === 0) throw new FeedError('not_found', `no *.json bundle in ${dir}`);
  candidates.sort((a, b) => b.mtimeMs - a.mtimeMs);

  let best: { text: string; version: number } | null = null;
  let oversized: Candidate | null = null;
  for (const c of candidates.slice(0, MAX_DIR_CANDIDATES)) {
    if (c.size > maxBytes) {
      oversized ??= c;
      continue;
    }
    let text: string;
    try {
      text = await readCapped(c.file, maxBytes);
    } catch (err) {
      // grew past the cap since stat, or vanished / unreadable: skip it, the next newest may do
      if (err instanceof FeedError) oversized ??= c;
      continue;
    }
    const version = versionOf(text);
    // candidates come newest first, so on equal versions the first one seen wins
    if (!best || version > best.version) best = { text, version };
  }
  if (best) return best.text;
  if (oversized) throw new FeedError('too_large', `${oversized.file} is larger than the ${maxBytes} bytes allowed`);
  throw new FeedError('not_found', `no readable *.json bundle in ${dir}`);
}

/** `bundle.version` of a signed bundle text, or -1 when it cannot be read (ranks below every real version). */
function versionOf(text: string): number {
  try {
    const v = (JSON.parse(text) as { bundle?: { version?: unknown } } | null)?.bundle?.version;
    return typeof v === 'number' && Number.isSafeInteger(v) ? v : -1;
  } catch {
    return -1;
  }
}

/** Reads a file, refusing more than maxBytes even if it grew after stat. */
async function readCapped(file: string, maxBytes: number): Promise<string> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(Math.min(maxBytes + 1, 1 << 20));
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > maxBytes) throw new FeedError('too_large', `${file} is larger than the ${maxBytes} bytes allowed`);
      chunks.push(Buffer.from(buf.subarray(0, bytesRead)));
    }
    return Buffer.concat(chunks, total).toString('utf8');
  } finally {
    await fh.close();
  }
}
