// The click-time service (DESIGN §4.6): rewritten links `<baseUrl>/c/<token>` land here, get a fresh
// verdict and are redirected, warned about or blocked; every click is handed to onClick (web
// interaction tracking, §8).
//
//   GET  /c/<token>           clean → 302, suspicious → 200 warning page, malicious → 403 block page,
//                             verdict late or failing → what the token knows (message and URL level at
//                             rewrite time), else 302 (fail open, verdict "unknown"),
//                             altered / damaged / expired token or non-http(s) URL → 400, never a redirect
//   HEAD /c/<token>           the same status and headers, no click recorded (link scanners)
//   POST /c/<token>/continue  "Continue" on the warning page: token and verdict checked again → 303
//                             (POST, so prefetchers and scanners do not count as a click)
//   GET  /back                "Go back" on the warning and block pages
//   GET  /health              200 ok
//
// The verdict of a click is the strongest of the fresh verdict (allow/block lists and the current URL
// rules, from the verdict function) and what the token carries from rewrite time (the message's threat
// level and the rules that matched the URL then); an allow list entry wins over everything: verdict.ts.
//
// Plain node:http: the clean redirect is the hot path (one HMAC, one URL parse, one synchronous verdict
// when the verdict function answers synchronously).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { verifyClickToken, CLICK_KEY_BYTES, type ClickThreat, type ClickTokenPayload } from './token.ts';
import { LinkSigner, webUrl, type LinkSignerOptions, type WrapOptions } from './link-signer.ts';
import { combineVerdict, type ClickSource, type CombinedVerdict, type VerdictLevels } from './verdict.ts';
import {
  renderBackPage,
  renderBlockPage,
  renderErrorPage,
  renderInvalidLinkPage,
  renderWarningPage,
  type Branding,
  type InvalidLinkKind,
  type Page,
} from './pages.ts';

export type ClickVerdict = 'clean' | 'suspicious' | 'malicious' | 'unknown';

export type { ClickSource, ClickThreat, WrapOptions };

export type ClickAction = 'redirected' | 'warned' | 'continued' | 'blocked' | 'invalid';

export interface ClickRecord {
  /** milliseconds since the epoch */
  at: number;
  /** 0 when the token could not be trusted */
  mid: number;
  recipient: string;
  /** the destination (normalised); "" when the token could not be trusted */
  url: string;
  verdict: ClickVerdict;
  action: ClickAction;
  /** the verdict's reason; for action "invalid": malformed | bad_signature | expired | unsupported_scheme */
  reason: string;
  ruleIds: string[];
  /** what decided the verdict: lists, URL rules now or at rewrite time, the message's level, or none */
  source: ClickSource;
  clientIp: string;
  userAgent: string;
}

export interface UrlVerdict {
  verdict: 'clean' | 'suspicious' | 'malicious';
  ruleIds: string[];
  reason: string;
  /** what decided it (default "url_rules"); an "allow_list" verdict wins over what the token says */
  source?: 'allow_list' | 'block_list' | 'url_rules';
}

export interface ClickTimeOptions {
  host: string;
  port: number;
  /** public base of the links, e.g. https://click.example.com; links are `${baseUrl}/c/${token}` */
  baseUrl: string;
  /** HMAC keys of 32 bytes, current first; older ones still verify links already delivered */
  keys: Buffer[];
  branding: Branding;
  /** past this the click is let through (302) and recorded with verdict "unknown"; default 2000 */
  verdictTimeoutMs?: number;
  /** fresh verdict for a destination; may answer synchronously. A throw counts as no verdict (fail open). */
  verdict: (url: string) => Promise<UrlVerdict> | UrlVerdict;
  /** a URL threat level carried in a token at or above this warns; default 1 (clickTime.warnLevel) */
  warnLevel?: number;
  /** a URL threat level carried in a token at or above this blocks; default 4 (clickTime.blockLevel) */
  blockLevel?: number;
  /** every click; called after the response is written, exceptions go to onError */
  onClick: (c: ClickRecord) => void;
  /** default 30 days */
  linkLifetimeSeconds?: number;
  /** failures that do not change the response (verdict errors, onClick throwing); default: stderr */
  onError?: (err: unknown, context: string) => void;
}

const DEFAULT_VERDICT_TIMEOUT_MS = 2000;
const DEFAULT_LINK_LIFETIME_S = 30 * 86_400;
/** the continue form posts nothing; anything bigger than this is refused */
const MAX_POST_BODY = 1024;
const MAX_USER_AGENT = 512;
const TIMEOUT = Symbol('timeout');

type Outcome = { kind: 'verdict'; v: UrlVerdict } | { kind: 'unknown'; reason: string };

type TrustedPayload = Pick<ClickTokenPayload, 'mid' | 'recipient' | 'messageThreat' | 'urlThreat'>;

function isThenable(x: unknown): x is PromiseLike<unknown> {
  return typeof x === 'object' && x !== null && typeof (x as { then?: unknown }).then === 'function';
}

function validVerdict(v: unknown): v is UrlVerdict {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as UrlVerdict;
  return (
    (o.verdict === 'clean' || o.verdict === 'suspicious' || o.verdict === 'malicious') &&
    Array.isArray(o.ruleIds) &&
    typeof o.reason === 'string' &&
    (o.source === undefined || o.source === 'allow_list' || o.source === 'block_list' || o.source === 'url_rules')
  );
}

function errorText(err: unknown): string {
  const s = err instanceof Error ? err.message : String(err);
  return s.length > 200 ? s.slice(0, 200) + '…' : s;
}

export class ClickTimeService {
  private readonly opts: ClickTimeOptions;
  private readonly keys: readonly Buffer[];
  private readonly verdictTimeoutMs: number;
  private readonly lifetime: number;
  private readonly levels: VerdictLevels;
  private base: URL;
  /** path prefix of baseUrl without the trailing slash ("" or e.g. "/click") */
  private readonly basePath: string;
  private readonly server: http.Server;
  private signer: LinkSigner;
  private readonly onError: (err: unknown, context: string) => void;

  constructor(opts: ClickTimeOptions) {
    if (!Array.isArray(opts.keys) || opts.keys.length === 0) throw new TypeError('clickTime: at least one key');
    for (const k of opts.keys)
      if (!Buffer.isBuffer(k) || k.length !== CLICK_KEY_BYTES)
        throw new TypeError(`clickTime: every key must be ${CLICK_KEY_BYTES} bytes`);
    const base = webUrl(opts.baseUrl);
    if (!base || base.search || base.hash || base.username || base.password)
      throw new TypeError(`clickTime: baseUrl must be a plain http(s) URL, got ${JSON.stringify(opts.baseUrl)}`);
    this.opts = opts;
    this.keys = [...opts.keys];
    this.verdictTimeoutMs = opts.verdictTimeoutMs ?? DEFAULT_VERDICT_TIMEOUT_MS;
    this.lifetime = opts.linkLifetimeSeconds ?? DEFAULT_LINK_LIFETIME_S;
    this.levels = { warnLevel: opts.warnLevel ?? 1, blockLevel: opts.blockLevel ?? 4 };
    this.base = base;
    this.basePath = base.pathname.replace(/\/+$/, '');
    this.signer = new LinkSigner(this.signerOptionsFor(base));
    this.onError =
      opts.onError ?? ((err, context) => process.stderr.write(`click-time: ${context}: ${errorText(err)}\n`));
    this.server = http.createServer(
      {
        // a token is at most 8 KiB; the request line and a browser's headers fit in 16 KiB
        maxHeaderSize: 16 * 1024,
        headersTimeout: 10_000,
        requestTimeout: 15_000,
        keepAliveTimeout: 5_000,
      },
      (req, res) => this.handle(req, res),
    );
    this.server.setTimeout(30_000, (socket) => socket.destroy());
    this.server.on('clientError', (_err, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      else socket.destroy();
    });
  }

  private signerOptionsFor(base: URL): LinkSignerOptions {
    return {
      key: this.keys[0],
      baseUrl: base.origin + base.pathname.replace(/\/+$/, ''),
      lifetimeSeconds: this.lifetime,
    };
  }

  /** The base of the links (no trailing slash). */
  get baseUrl(): string {
    return this.base.origin + this.basePath;
  }

  /**
   * Starts listening; resolves with the bound port. With `port: 0` and a baseUrl on port 0
   * (`http://127.0.0.1:0`), the baseUrl takes the port the system chose.
   */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen(this.opts.port, this.opts.host, () => {
        this.server.off('error', onError);
        const port = (this.server.address() as AddressInfo).port;
        if (this.base.port === '0') {
          const b = new URL(this.base.href);
          b.port = String(port);
          this.base = b;
          this.signer = new LinkSigner(this.signerOptionsFor(b));
        }
        resolve(port);
      });
    });
  }

  /** Stops accepting; requests in flight get until the verdict timeout (+1 s) to finish. */
  close(): Promise<void> {
    if (!this.server.listening) return Promise.resolve();
    return new Promise((resolve) => {
      const force = setTimeout(() => this.server.closeAllConnections(), this.verdictTimeoutMs + 1000);
      force.unref();
      this.server.close(() => {
        clearTimeout(force);
        resolve();
      });
      this.server.closeIdleConnections();
    });
  }

  /** The rewritten link for `url` (see LinkSigner.wrap). */
  wrap(url: string, o: WrapOptions): string {
    return this.signer.wrap(url, o);
  }

  /** True for links under `<baseUrl>/c/` (same scheme, host and port; host case-insensitive). */
  isOwnLink(url: string): boolean {
    return this.signer.isOwnLink(url);
  }

  /** What a parse worker needs to sign links exactly as wrap() does (flow/modification-job.ts). */
  signerOptions(): LinkSignerOptions {
    return this.signerOptionsFor(this.base);
  }

  // ---- request handling ----

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    let path = req.url ?? '/';
    if (path.charCodeAt(0) !== 47 /* / */) {
      // absolute-form request target (RFC 9112 §3.2.2)
      try {
        path = new URL(path).pathname;
      } catch {
        this.sendPage(
          req,
          res,
          renderErrorPage(this.opts.branding, 400, 'Bad request', 'The request was not understood.'),
        );
        return;
      }
    }
    const q = path.indexOf('?');
    if (q >= 0) path = path.slice(0, q);
    if (this.basePath && path.startsWith(this.basePath + '/')) path = path.slice(this.basePath.length);
    const method = req.method ?? 'GET';

    if (path.startsWith('/c/')) {
      let rest = path.slice(3);
      // some clients append a slash to a link
      if (rest.length > 1 && rest.indexOf('/') === rest.length - 1) rest = rest.slice(0, -1);
      const slash = rest.indexOf('/');
      if (slash < 0) {
        if (method === 'GET' || method === 'HEAD') {
          this.noBody(req, res);
          this.guard(req, res, () => this.click(req, res, rest, method === 'HEAD'));
        } else this.methodNotAllowed(req, res, 'GET, HEAD');
        return;
      }
      if (rest.slice(slash) === '/continue') {
        if (method === 'POST') this.continueClick(req, res, rest.slice(0, slash));
        else this.methodNotAllowed(req, res, 'POST');
        return;
      }
      this.notFound(req, res);
      return;
    }
    if (method !== 'GET' && method !== 'HEAD') {
      if (path === '/health' || path === '/back') this.methodNotAllowed(req, res, 'GET, HEAD');
      else this.notFound(req, res);
      return;
    }
    this.noBody(req, res);
    if (path === '/health') {
      res.writeHead(200, [
        'Content-Type',
        'text/plain; charset=utf-8',
        'Cache-Control',
        'no-store',
        'Content-Length',
        '3',
      ]);
      res.end(method === 'HEAD' ? undefined : 'ok\n');
    } else if (path === '/back') this.sendPage(req, res, renderBackPage(this.opts.branding));
    else this.notFound(req, res);
  }

  /**
   * Runs a handler that answers synchronously or returns a promise (only when the verdict is async): a
   * bug while answering becomes a 500 page (and onError), never an unhandled rejection.
   */
  private guard(req: http.IncomingMessage, res: http.ServerResponse, work: () => void | Promise<void>): void {
    const fail = (err: unknown) => {
      this.onError(err, 'request failed');
      if (!res.headersSent && !res.destroyed) {
        res.shouldKeepAlive = false;
        this.sendPage(
          req,
          res,
          renderErrorPage(
            this.opts.branding,
            500,
            'Something went wrong',
            'The link could not be checked. Please try again later.',
          ),
        );
      } else if (!res.writableEnded) res.destroy();
    };
    try {
      const p = work();
      if (p) p.catch(fail);
    } catch (err) {
      fail(err);
    }
  }

  /** A GET or HEAD with a body: answer without reading it and close the connection. */
  private noBody(req: http.IncomingMessage, res: http.ServerResponse): void {
    const len = req.headers['content-length'];
    if ((len !== undefined && len !== '0') || req.headers['transfer-encoding'] !== undefined)
      res.shouldKeepAlive = false;
  }

  private click(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    token: string,
    head: boolean,
  ): void | Promise<void> {
    const checked = this.checkToken(token);
    if (!checked.ok) {
      this.sendPage(req, res, renderInvalidLinkPage(this.opts.branding, checked.kind));
      if (!head) this.record(req, checked.record);
      return;
    }
    const { payload, url } = checked;
    const r = this.verdictFor(url.href);
    if (isThenable(r)) return r.then((outcome) => this.answerClick(req, res, token, head, payload, url, outcome));
    this.answerClick(req, res, token, head, payload, url, r);
  }

  private answerClick(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    token: string,
    head: boolean,
    payload: TrustedPayload,
    url: URL,
    outcome: Outcome,
  ): void {
    if (res.destroyed) return;
    const base = { mid: payload.mid, recipient: payload.recipient, url: url.href };
    const v = this.decide(payload, outcome);
    if (!v) {
      const reason = outcome.kind === 'unknown' ? outcome.reason : '';
      this.redirect(res, 302, url.href);
      if (!head)
        this.record(req, { ...base, verdict: 'unknown', action: 'redirected', reason, ruleIds: [], source: 'none' });
      return;
    }
    const common = { ...base, verdict: v.verdict, reason: v.reason, ruleIds: [...v.ruleIds], source: v.source };
    if (v.verdict === 'clean') {
      this.redirect(res, 302, url.href);
      if (!head) this.record(req, { ...common, action: 'redirected' });
    } else if (v.verdict === 'suspicious') {
      this.sendPage(
        req,
        res,
        renderWarningPage(this.opts.branding, {
          url: url.href,
          reason: v.reason,
          ruleIds: v.ruleIds,
          mid: payload.mid,
          continueAction: `${this.basePath}/c/${token}/continue`,
          backHref: this.backHref(),
          source: v.source,
        }),
      );
      if (!head) this.record(req, { ...common, action: 'warned' });
    } else {
      this.sendPage(
        req,
        res,
        renderBlockPage(this.opts.branding, {
          url: url.href,
          reason: v.reason,
          ruleIds: v.ruleIds,
          mid: payload.mid,
          backHref: this.backHref(),
          source: v.source,
        }),
      );
      if (!head) this.record(req, { ...common, action: 'blocked' });
    }
  }

  /** "Continue" on the warning page: the token and the verdict are checked again. */
  private continueClick(req: http.IncomingMessage, res: http.ServerResponse, token: string): void {
    // Fetch Metadata: a form on another site posting here (to turn a warning into a redirect through
    // our domain, or to forge a "continued" record) is refused; browsers without the header pass
    const site = req.headers['sec-fetch-site'];
    if (site === 'cross-site' || site === 'same-site') {
      res.shouldKeepAlive = false;
      this.sendPage(
        req,
        res,
        renderErrorPage(
          this.opts.branding,
          403,
          'This request was refused',
          'Another site tried to open this protected link for you. Open the link from your email instead.',
        ),
      );
      return;
    }
    this.readSmallBody(req, res, () => this.guard(req, res, () => this.afterContinueBody(req, res, token)));
  }

  private afterContinueBody(req: http.IncomingMessage, res: http.ServerResponse, token: string): void | Promise<void> {
    const checked = this.checkToken(token);
    if (!checked.ok) {
      this.sendPage(req, res, renderInvalidLinkPage(this.opts.branding, checked.kind));
      this.record(req, checked.record);
      return;
    }
    const { payload, url } = checked;
    const r = this.verdictFor(url.href);
    if (isThenable(r)) return r.then((outcome) => this.answerContinue(req, res, payload, url, outcome));
    this.answerContinue(req, res, payload, url, r);
  }

  private answerContinue(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    payload: TrustedPayload,
    url: URL,
    outcome: Outcome,
  ): void {
    if (res.destroyed) return;
    const base = { mid: payload.mid, recipient: payload.recipient, url: url.href };
    const v = this.decide(payload, outcome);
    if (v && v.verdict === 'malicious') {
      // the URL turned malicious since the warning was shown (or the form was posted directly)
      this.sendPage(
        req,
        res,
        renderBlockPage(this.opts.branding, {
          url: url.href,
          reason: v.reason,
          ruleIds: v.ruleIds,
          mid: payload.mid,
          backHref: this.backHref(),
          source: v.source,
        }),
      );
      this.record(req, {
        ...base,
        verdict: 'malicious',
        action: 'blocked',
        reason: v.reason,
        ruleIds: [...v.ruleIds],
        source: v.source,
      });
      return;
    }
    this.redirect(res, 303, url.href);
    if (!v)
      this.record(req, {
        ...base,
        verdict: 'unknown',
        action: 'continued',
        reason: outcome.kind === 'unknown' ? outcome.reason : '',
        ruleIds: [],
        source: 'none',
      });
    else
      this.record(req, {
        ...base,
        verdict: v.verdict,
        action: 'continued',
        reason: v.reason,
        ruleIds: [...v.ruleIds],
        source: v.source,
      });
  }

  /** The click's verdict: the fresh one combined with what the token carries; null when nothing is known. */
  private decide(payload: TrustedPayload, outcome: Outcome): CombinedVerdict | null {
    return combineVerdict(
      outcome.kind === 'verdict' ? outcome.v : null,
      payload,
      this.levels,
      outcome.kind === 'unknown' ? outcome.reason : '',
    );
  }

  /** Reads and discards a body of at most MAX_POST_BODY bytes, then calls next; bigger → 413. */
  private readSmallBody(req: http.IncomingMessage, res: http.ServerResponse, next: () => void): void {
    const declared = Number(req.headers['content-length'] ?? 0);
    const tooLarge = () => {
      res.shouldKeepAlive = false;
      this.sendPage(
        req,
        res,
        renderErrorPage(this.opts.branding, 413, 'Request too large', 'The request carried more data than expected.'),
      );
      req.pause();
    };
    if (!Number.isFinite(declared) || declared > MAX_POST_BODY) {
      tooLarge();
      return;
    }
    let seen = 0;
    let done = false;
    req.on('data', (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > MAX_POST_BODY && !done) {
        done = true;
        tooLarge();
      }
    });
    req.on('end', () => {
      if (!done) {
        done = true;
        next();
      }
    });
    req.on('error', () => {
      done = true;
    });
  }

  private checkToken(
    token: string,
  ):
    | { ok: true; payload: TrustedPayload; url: URL }
    | { ok: false; kind: InvalidLinkKind; record: Omit<ClickRecord, 'at' | 'clientIp' | 'userAgent'> } {
    const v = verifyClickToken(this.keys, token);
    if (!v.ok) {
      // only an authentic (expired) token may name its message and URL
      const p = v.reason === 'expired' ? v.payload : null;
      return {
        ok: false,
        kind: v.reason,
        record: {
          mid: p?.mid ?? 0,
          recipient: p?.recipient ?? '',
          url: p?.url ?? '',
          verdict: 'unknown',
          action: 'invalid',
          reason: v.reason,
          ruleIds: [],
          source: 'none',
        },
      };
    }
    const url = webUrl(v.payload.url);
    if (!url) {
      // signed, but not a web address (javascript:, data:, file: …): never redirected to
      return {
        ok: false,
        kind: 'unsupported',
        record: {
          mid: v.payload.mid,
          recipient: v.payload.recipient,
          url: v.payload.url.slice(0, 2048),
          verdict: 'unknown',
          action: 'invalid',
          reason: 'unsupported_scheme',
          ruleIds: [],
          source: 'none',
        },
      };
    }
    return { ok: true, payload: v.payload, url };
  }

  /** The verdict, bounded by the timeout; a throw, a bad answer or the timeout give "unknown". */
  private verdictFor(url: string): Outcome | Promise<Outcome> {
    let r: ReturnType<ClickTimeOptions['verdict']>;
    try {
      r = this.opts.verdict(url);
    } catch (err) {
      this.onError(err, 'verdict failed');
      return { kind: 'unknown', reason: `verdict error: ${errorText(err)}` };
    }
    if (!isThenable(r)) return this.checkVerdict(r);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<typeof TIMEOUT>((resolve) => {
      timer = setTimeout(resolve, this.verdictTimeoutMs, TIMEOUT);
    });
    return Promise.race([Promise.resolve(r), timeout]).then(
      (v): Outcome => {
        clearTimeout(timer);
        if (v === TIMEOUT) {
          // a late answer or failure must not become an unhandled rejection
          Promise.resolve(r).catch(() => {});
          return { kind: 'unknown', reason: `verdict timeout (${this.verdictTimeoutMs} ms)` };
        }
        return this.checkVerdict(v);
      },
      (err: unknown): Outcome => {
        clearTimeout(timer);
        this.onError(err, 'verdict failed');
        return { kind: 'unknown', reason: `verdict error: ${errorText(err)}` };
      },
    );
  }

  private checkVerdict(v: unknown): Outcome {
    if (validVerdict(v)) return { kind: 'verdict', v };
    this.onError(new TypeError(`invalid verdict ${JSON.stringify(v)?.slice(0, 200)}`), 'verdict failed');
    return { kind: 'unknown', reason: 'verdict error: invalid answer' };
  }

  /** "Go back": a root-relative path, valid whether or not a proxy strips the baseUrl path. */
  private backHref(): string {
    return `${this.basePath}/back`;
  }

  private redirect(res: http.ServerResponse, status: 302 | 303, location: string): void {
    res.writeHead(status, [
      'Location',
      location,
      'Cache-Control',
      'no-store',
      'Referrer-Policy',
      'no-referrer',
      'Content-Length',
      '0',
    ]);
    res.end();
  }

  private sendPage(req: http.IncomingMessage, res: http.ServerResponse, page: Page): void {
    if (res.headersSent || res.destroyed) return;
    const body = Buffer.from(page.body, 'utf8');
    res.writeHead(page.status, { ...page.headers, 'Content-Length': String(body.length) });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  private notFound(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.noBody(req, res);
    this.sendPage(
      req,
      res,
      renderErrorPage(
        this.opts.branding,
        404,
        'Page not found',
        'There is nothing at this address. To open a link from an email, click it in the email.',
      ),
    );
  }

  private methodNotAllowed(req: http.IncomingMessage, res: http.ServerResponse, allow: string): void {
    this.noBody(req, res);
    res.setHeader('Allow', allow);
    this.sendPage(
      req,
      res,
      renderErrorPage(this.opts.branding, 405, 'Not allowed', 'This address cannot be used this way.'),
    );
  }

  private record(req: http.IncomingMessage, r: Omit<ClickRecord, 'at' | 'clientIp' | 'userAgent'>): void {
    const ua = req.headers['user-agent'] ?? '';
    const rec: ClickRecord = {
      at: Date.now(),
      mid: r.mid,
      recipient: r.recipient,
      url: r.url,
      verdict: r.verdict,
      action: r.action,
      reason: r.reason,
      ruleIds: r.ruleIds,
      source: r.source,
      clientIp: req.socket.remoteAddress ?? '',
      userAgent: ua.length > MAX_USER_AGENT ? ua.slice(0, MAX_USER_AGENT) : ua,
    };
    try {
      this.opts.onClick(rec);
    } catch (err) {
      this.onError(err, 'onClick failed');
    }
  }
}
