// A small client for rspamd's HTTP protocol (https://rspamd.com/doc/developers/protocol.html): one
// `POST /checkv2` per message with the envelope and the client's metadata as request headers, the JSON
// answer reduced to what the policy layer and tracking need. Keep-alive connections, a bounded number
// of them, a deadline per request and a bounded answer: rspamd is a peer, never trusted to behave.
import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';

/** rspamd's actions (its metric's thresholds); a site may define more (e.g. "discard", "quarantine"). */
export type RspamdAction = 'no action' | 'greylist' | 'add header' | 'rewrite subject' | 'soft reject' | 'reject';

/** What the policy layer acts on: rspamd's action reduced to three classes (docs/antispam.md). */
export type SpamClass = 'ham' | 'spam' | 'reject';

export interface RspamdSymbol {
  name: string;
  score: number;
  options: string[];
}

export interface RspamdAnswer {
  /** rspamd's action as it says it (bounded, printable) */
  action: string;
  class: SpamClass;
  score: number;
  requiredScore: number;
  /** strongest first (by absolute score), at most MAX_SYMBOLS */
  symbols: RspamdSymbol[];
  /** rspamd skipped the message (its settings said so): no opinion */
  skipped: boolean;
  /** the SMTP message rspamd suggests for a reject, if any (bounded, printable) */
  smtpMessage: string | null;
  /** why the message was not sent to rspamd at all (e.g. over maxScanSize) */
  note?: string;
  /**
   * spam verdict fields (antispam/headers.ts) the message arrived with, removed on delivery; null: its
   * header block was too large to tell (removed too). Set by the rspamd stage.
   */
  incomingSpamFields?: number | null;
}

/** Envelope and client metadata, sent as rspamd's request headers. */
export interface RspamdMeta {
  /** envelope sender ("" for the null sender) */
  from: string;
  /** envelope recipients: one Rcpt header each */
  rcpts: readonly string[];
  ip: string;
  helo: string | null;
  /** the client's verified reverse-DNS name (rspamd does not look it up itself when given) */
  hostname: string | null;
  queueId: string;
  /** the SMTP AUTH user, when the client authenticated */
  user?: string | null;
  /** TLS cipher of the inbound session, when it used TLS */
  tls?: string | null;
  /** our hostname, as MTA-Name */
  mtaName: string;
}

export type RspamdFailure = 'unavailable' | 'timeout' | 'http' | 'protocol';

export class RspamdError extends Error {
  readonly reason: RspamdFailure;
  constructor(reason: RspamdFailure, message: string) {
    super(message);
    this.reason = reason;
  }
}

export interface RspamdClientOptions {
  /** base URL of the normal worker, e.g. http://127.0.0.1:11333 */
  url: string;
  timeoutMs: number;
  maxConnections: number;
  password?: string;
  settingsId?: string;
}

const MAX_ANSWER = 4 * 1024 * 1024;
const MAX_SYMBOLS = 50;
const MAX_OPTIONS = 5;
const MAX_TEXT = 200;

/** rspamd's actions mapped onto what a policy acts on; unknown custom actions count as ham (recorded). */
export function spamClass(action: string): SpamClass {
  switch (action) {
    case 'reject':
    case 'discard':
      return 'reject';
    case 'add header':
    case 'rewrite subject':
    case 'quarantine':
      return 'spam';
    // "greylist" and "soft reject" ask for a 4xx at SMTP time; the gateway answered 250 before the scan.
    default:
      return 'ham';
  }
}

export class RspamdClient {
  private readonly opts: RspamdClientOptions;
  private readonly base: URL;
  private readonly agent: http.Agent;

  constructor(opts: RspamdClientOptions) {
    this.opts = opts;
    this.base = new URL(opts.url);
    const Agent = this.base.protocol === 'https:' ? https.Agent : http.Agent;
    this.agent = new Agent({ keepAlive: true, maxSockets: opts.maxConnections, maxFreeSockets: opts.maxConnections });
  }

  get url(): string {
    return this.base.origin;
  }

  /** Scans one message; throws RspamdError when rspamd is down, slow or answers nonsense. */
  async check(body: Buffer | Readable, size: number, meta: RspamdMeta): Promise<RspamdAnswer> {
    const headers: Array<[string, string]> = [
      ['Content-Length', String(size)],
      ['Content-Type', 'message/rfc822'],
      ['From', meta.from],
      ...meta.rcpts.map((r): [string, string] => ['Rcpt', r]),
      ['IP', meta.ip],
      ['Queue-Id', meta.queueId],
      ['MTA-Name', meta.mtaName],
    ];
    if (meta.helo) headers.push(['Helo', meta.helo]);
    if (meta.hostname) headers.push(['Hostname', meta.hostname]);
    if (meta.user) headers.push(['User', meta.user]);
    if (meta.tls) headers.push(['TLS-Cipher', meta.tls]);
    if (this.opts.password) headers.push(['Password', this.opts.password]);
    if (this.opts.settingsId) headers.push(['Settings-ID', this.opts.settingsId]);
    const raw = await this.post('/checkv2', headers, body);
    return parseAnswer(raw);
  }

  /** GET /ping: true when rspamd answers "pong". */
  async ping(): Promise<boolean> {
    try {
      const r = await this.request('GET', '/ping', [], null);
      return r.toString().trim() === 'pong';
    } catch {
      return false;
    }
  }

  close(): void {
    this.agent.destroy();
  }

  private post(path: string, headers: Array<[string, string]>, body: Buffer | Readable): Promise<Buffer> {
    return this.request('POST', path, headers, body);
  }

  private request(
    method: string,
    path: string,
    headers: Array<[string, string]>,
    body: Buffer | Readable | null,
  ): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      let done = false;
      const finish = (err: RspamdError | null, value?: Buffer): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (err) {
          req.destroy();
          if (body && !Buffer.isBuffer(body)) body.destroy();
          reject(err);
        } else resolve(value!);
      };
      const mod = this.base.protocol === 'https:' ? https : http;
      const url = new URL(path, this.base);
      const req = mod.request(url, {
        method,
        agent: this.agent,
        // a flat list keeps repeated headers (one Rcpt per recipient) as rspamd expects them; Node adds
        // no Host header to such a list
        headers: [['Host', this.base.host], ...headers].flatMap(([k, v]) => [k, headerValue(v)]),
      });
      const timer = setTimeout(
        () => finish(new RspamdError('timeout', `rspamd did not answer within ${this.opts.timeoutMs} ms`)),
        this.opts.timeoutMs,
      );
      req.on('error', (err: NodeJS.ErrnoException) =>
        finish(new RspamdError('unavailable', `rspamd at ${this.base.origin}: ${err.code ?? err.message}`)),
      );
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        let length = 0;
        res.on('data', (c: Buffer) => {
          length += c.length;
          if (length > MAX_ANSWER) finish(new RspamdError('protocol', `rspamd answer larger than ${MAX_ANSWER} bytes`));
          else chunks.push(c);
        });
        res.on('error', (err) => finish(new RspamdError('unavailable', `rspamd answer: ${err.message}`)));
        res.on('end', () => {
          const text = Buffer.concat(chunks);
          if (res.statusCode !== 200)
            finish(
              new RspamdError(
                'http',
                `rspamd answered HTTP ${res.statusCode}: ${printable(text.toString('utf8', 0, 200))}`,
              ),
            );
          else finish(null, text);
        });
      });
      if (body === null) req.end();
      else if (Buffer.isBuffer(body)) req.end(body);
      else {
        body.on('error', (err) => finish(new RspamdError('unavailable', `reading the message: ${err.message}`)));
        body.pipe(req);
      }
    });
  }
}

/** A header value on the wire: UTF-8 bytes (Node writes header strings as latin1), no line breaks. */
function headerValue(v: string): string {
  return Buffer.from(v.replace(/[\r\n\0]/g, ' '), 'utf8').toString('latin1');
}

function printable(s: string, max = MAX_TEXT): string {
  return s.replace(/[\x00-\x1f\x7f]/g, ' ').slice(0, max);
}

function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** rspamd's /checkv2 JSON answer, validated and bounded (exported for tests). */
export function parseAnswer(raw: Buffer): RspamdAnswer {
  let j: unknown;
  try {
    j = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new RspamdError('protocol', `rspamd answer is not JSON: ${printable(raw.toString('utf8', 0, 100))}`);
  }
  if (!j || typeof j !== 'object' || Array.isArray(j))
    throw new RspamdError('protocol', 'rspamd answer is not an object');
  const o = j as Record<string, unknown>;
  const skipped = o.is_skipped === true;
  const score = num(o.score);
  if (typeof o.action !== 'string' || (score === null && !skipped))
    throw new RspamdError('protocol', 'rspamd answer has no action or score');
  const action = printable(o.action, 40);
  const symbols: RspamdSymbol[] = [];
  if (o.symbols && typeof o.symbols === 'object' && !Array.isArray(o.symbols))
    for (const [key, s] of Object.entries(o.symbols as Record<string, unknown>)) {
      const sym = (s && typeof s === 'object' ? s : {}) as Record<string, unknown>;
      const options = Array.isArray(sym.options)
        ? sym.options
            .filter((x): x is string => typeof x === 'string')
            .slice(0, MAX_OPTIONS)
            .map((x) => printable(x, 100))
        : [];
      symbols.push({ name: printable(key, 100), score: num(sym.score) ?? 0, options });
    }
  symbols.sort((a, b) => Math.abs(b.score) - Math.abs(a.score) || a.name.localeCompare(b.name));
  const messages = o.messages && typeof o.messages === 'object' ? (o.messages as Record<string, unknown>) : {};
  return {
    action,
    class: skipped ? 'ham' : spamClass(action),
    score: score ?? 0,
    requiredScore: num(o.required_score) ?? 0,
    symbols: symbols.slice(0, MAX_SYMBOLS),
    skipped,
    smtpMessage: typeof messages.smtp_message === 'string' ? printable(messages.smtp_message) : null,
  };
}
