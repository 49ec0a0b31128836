// Rewriting one URL into a signed click-time link `<baseUrl>/c/<token>`. Pure and synchronous, so that
// the click-time service and the parse workers (which rewrite the links of a modified message off the
// event loop, flow/modification-job.ts) sign links the same way with the same key.
import {
  signClickToken,
  MAX_TOKEN_LENGTH,
  MAX_RULE_IDS,
  MAX_THREAT_LEVEL,
  RULE_ID,
  type ClickThreat,
  type ClickTokenPayload,
} from './token.ts';

export interface WrapOptions {
  mid: number;
  /** "" when the message went to several recipients */
  recipient: string;
  /** why the link is rewritten, e.g. "outbreak" */
  reason: string;
  /** the message's threat level and strongest rules (carried in the token; default: none, level 0) */
  messageThreat?: ClickThreat;
  /** what matched this URL itself at rewrite time (carried in the token; default: none, level 0) */
  urlThreat?: ClickThreat;
}

/** What signing needs; structured-cloneable, so it can travel to a worker thread. */
export interface LinkSignerOptions {
  /** the current HMAC key (32 bytes) */
  key: Uint8Array;
  /** the links' base, e.g. https://click.example.com (no trailing slash) */
  baseUrl: string;
  lifetimeSeconds: number;
}

/** The destination as a browser will resolve it, or null when it is not an absolute http(s) URL. */
export function webUrl(url: string): URL | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return null;
  }
  return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '' ? u : null;
}

/** A threat as a token can carry it: level clamped to 0–5, valid ids only, de-duplicated, at most 4. */
function tokenThreat(t: ClickThreat | undefined): ClickThreat | undefined {
  if (!t) return undefined;
  const level = Number.isFinite(t.level) ? Math.min(MAX_THREAT_LEVEL, Math.max(0, Math.floor(t.level))) : 0;
  const ids = [...new Set((t.ruleIds ?? []).filter((id) => typeof id === 'string' && RULE_ID.test(id)))];
  if (level === 0 && ids.length === 0) return undefined;
  return { level, ruleIds: ids.slice(0, MAX_RULE_IDS) };
}

export class LinkSigner {
  private readonly key: Buffer;
  private readonly lifetime: number;
  private readonly base: URL;
  /** path prefix of baseUrl without the trailing slash ("" or e.g. "/click") */
  private readonly basePath: string;

  constructor(opts: LinkSignerOptions) {
    const base = webUrl(opts.baseUrl);
    if (!base)
      throw new TypeError(`clickTime: baseUrl must be a plain http(s) URL, got ${JSON.stringify(opts.baseUrl)}`);
    this.key = Buffer.from(opts.key.buffer, opts.key.byteOffset, opts.key.byteLength);
    this.lifetime = opts.lifetimeSeconds;
    this.base = base;
    this.basePath = base.pathname.replace(/\/+$/, '');
  }

  /** The base of the links (no trailing slash). */
  get baseUrl(): string {
    return this.base.origin + this.basePath;
  }

  /**
   * The rewritten link for `url`. A link that is already one of ours is returned unchanged (never
   * wrapped twice). Throws a TypeError for a URL that is not absolute http(s) and a RangeError for a URL
   * too long to fit a token (about 6,000 bytes): the caller leaves such links alone or defangs them.
   * The threat levels always go into the token; when the URL is so long that the rule ids do not fit
   * too, the ids are left out (the levels alone decide the verdict; the pages then name no rule).
   */
  wrap(url: string, o: WrapOptions): string {
    if (this.isOwnLink(url)) return url;
    const u = webUrl(url);
    if (!u) throw new TypeError('clickTime: only absolute http(s) URLs are wrapped');
    const payload: ClickTokenPayload = {
      url: u.href,
      mid: o.mid,
      recipient: o.recipient,
      reason: o.reason,
      expires: Math.floor(Date.now() / 1000) + this.lifetime,
    };
    const messageThreat = tokenThreat(o.messageThreat);
    const urlThreat = tokenThreat(o.urlThreat);
    if (messageThreat) payload.messageThreat = messageThreat;
    if (urlThreat) payload.urlThreat = urlThreat;
    let token: string;
    try {
      token = signClickToken(this.key, payload);
    } catch (err) {
      if (!(err instanceof RangeError) || (!messageThreat?.ruleIds.length && !urlThreat?.ruleIds.length)) throw err;
      if (messageThreat) payload.messageThreat = { level: messageThreat.level, ruleIds: [] };
      if (urlThreat) payload.urlThreat = { level: urlThreat.level, ruleIds: [] };
      token = signClickToken(this.key, payload);
    }
    return `${this.baseUrl}/c/${token}`;
  }

  /** True for links under `<baseUrl>/c/` (same scheme, host and port; host case-insensitive). */
  isOwnLink(url: string): boolean {
    if (typeof url !== 'string' || url.length > MAX_TOKEN_LENGTH + 2048) return false;
    let u: URL;
    try {
      u = new URL(url.trim());
    } catch {
      return false;
    }
    return u.origin === this.base.origin && u.pathname.startsWith(this.basePath + '/c/');
  }
}
