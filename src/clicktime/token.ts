// Signed click-time link tokens (DESIGN §4.6): `<clickTime.baseUrl>/c/<token>`.
//
// token = base64url(body ‖ tag), canonical encoding only (no padding, no stray low bits), at most
// MAX_TOKEN_LENGTH characters.
//   body = version (1 byte: 0x01 without threat information, 0x02 with it)
//          expires   unsigned LEB128 (unix seconds)
//          mid       unsigned LEB128
//          reason    LEB128 byte length ‖ UTF-8
//          recipient LEB128 byte length ‖ UTF-8
//          url       LEB128 byte length ‖ UTF-8
//          version 2 only:
//          flags     1 byte: bit 0 message threat follows, bit 1 URL threat follows (1–3, nothing else)
//          threat    (message, then URL, each when flagged)
//                    level 1 byte (0–5) ‖ count 1 byte (0–MAX_RULE_IDS) ‖ count × rule id, each
//                    LEB128 (3 × length + prefix) ‖ ASCII, prefix 1 = "OUTBREAK_", 2 = "ADAPTIVE_" left
//                    out (0 = none; an id written with prefix 0 never starts with either)
//   tag  = HMAC-SHA256(key, "breakwater-click-v1\0" ‖ body) truncated to 16 bytes (128 bits)
//
// Version 1 is what tokens looked like before the threat fields existed: they still verify, and carry
// no threat information (level 0). A payload without threat information is still written as version 1,
// byte for byte as before. The threat fields of a typical link (one outbreak rule id for the message and
// one for the URL) cost about 30 characters; the most they can cost (2 × 4 ids of 64 characters) is
// about 710.
//
// The tag is checked (in constant time, against every key of the rotation list) before a single byte
// of the body is interpreted, so nothing from an altered token is ever used. The payload is signed,
// not encrypted: whoever holds a link can decode the URL, MID, recipient and threat fields it carries.
import { createHmac, createSecretKey, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';

/** What was known about a threat when the link was rewritten. */
export interface ClickThreat {
  /** threat level 0–5 */
  level: number;
  /** the strongest matching rules, at most MAX_RULE_IDS, each 1–64 characters of A–Z a–z 0–9 _ - . : */
  ruleIds: string[];
}

export interface ClickTokenPayload {
  /** the destination, an absolute URL */
  url: string;
  /** the message the link was rewritten in */
  mid: number;
  /** the recipient the link was rewritten for; "" when the message went to several */
  recipient: string;
  /** why the link was rewritten, e.g. "outbreak" or "policy" */
  reason: string;
  /** unix seconds after which the link is refused */
  expires: number;
  /** the message's threat level and strongest rules at rewrite time; absent (level 0) in old tokens */
  messageThreat?: ClickThreat;
  /** what matched the URL itself at rewrite time; absent (level 0) in old tokens */
  urlThreat?: ClickThreat;
}

export type ClickTokenError = 'malformed' | 'bad_signature' | 'expired';

export type VerifyClickTokenResult =
  | { ok: true; payload: ClickTokenPayload }
  /** an authentic token past its expiry: the payload is trustworthy, only too old */
  | { ok: false; reason: 'expired'; payload: ClickTokenPayload }
  | { ok: false; reason: 'malformed' | 'bad_signature' };

export const CLICK_KEY_BYTES = 32;
/** tokens longer than this (characters) are refused on both sides */
export const MAX_TOKEN_LENGTH = 8192;
export const TAG_BYTES = 16;
const VERSION = 0x01;
const VERSION_THREAT = 0x02;
/** rule ids carried per threat (message, URL) */
export const MAX_RULE_IDS = 4;
export const MAX_THREAT_LEVEL = 5;
const MAX_RULE_ID_BYTES = 64;
/** what a rule id carried in a token may look like */
export const RULE_ID = /^[A-Za-z0-9_.:-]{1,64}$/;
const ID_PREFIXES = ['', 'OUTBREAK_', 'ADAPTIVE_'] as const;
const MAX_REASON_BYTES = 64;
const MAX_RECIPIENT_BYTES = 512;
const CONTEXT = Buffer.from('breakwater-click-v1\0', 'latin1');
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** A fresh random 32-byte HMAC key. */
export function createClickKey(): Buffer {
  return randomBytes(CLICK_KEY_BYTES);
}

function checkKey(key: Buffer): void {
  if (!Buffer.isBuffer(key) || key.length !== CLICK_KEY_BYTES)
    throw new TypeError(`a click-time key must be a Buffer of ${CLICK_KEY_BYTES} bytes`);
}

// createHmac with a raw Buffer key imports the key on every call (~15 µs); a KeyObject made once makes
// the MAC ~5x cheaper. Cached per Buffer, with a copy of the bytes so that a reused Buffer never maps to
// a stale key.
const keyObjects = new WeakMap<Buffer, { bytes: Buffer; ko: KeyObject }>();

function keyObject(key: Buffer): KeyObject {
  const cached = keyObjects.get(key);
  if (cached && cached.bytes.equals(key)) return cached.ko;
  const entry = { bytes: Buffer.from(key), ko: createSecretKey(key) };
  keyObjects.set(key, entry);
  return entry.ko;
}

function tag(key: Buffer, body: Buffer): Buffer {
  return createHmac('sha256', keyObject(key)).update(CONTEXT).update(body).digest().subarray(0, TAG_BYTES);
}

function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    len++;
  }
  return len;
}

function writeVarint(buf: Buffer, pos: number, n: number): number {
  while (n >= 0x80) {
    buf[pos++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  buf[pos++] = n;
  return pos;
}

/** The encoded threat section (flags and the threats present), or null when there is none. */
function encodeThreats(message: ClickThreat | undefined, url: ClickThreat | undefined): Buffer | null {
  if (message === undefined && url === undefined) return null;
  const parts: number[] = [(message !== undefined ? 1 : 0) | (url !== undefined ? 2 : 0)];
  for (const [name, t] of [
    ['messageThreat', message],
    ['urlThreat', url],
  ] as const) {
    if (t === undefined) continue;
    if (typeof t !== 'object' || t === null) throw new TypeError(`${name} must be an object`);
    if (!Number.isInteger(t.level) || t.level < 0 || t.level > MAX_THREAT_LEVEL)
      throw new TypeError(`${name}.level must be an integer 0–${MAX_THREAT_LEVEL}`);
    if (!Array.isArray(t.ruleIds) || t.ruleIds.length > MAX_RULE_IDS)
      throw new TypeError(`${name}.ruleIds must be an array of at most ${MAX_RULE_IDS} ids`);
    parts.push(t.level, t.ruleIds.length);
    for (const id of t.ruleIds) {
      if (typeof id !== 'string' || !RULE_ID.test(id))
        throw new TypeError(`${name}.ruleIds: ${JSON.stringify(id)} is not a rule id`);
      let prefix = 0;
      for (let p = 1; p < ID_PREFIXES.length; p++)
        if (id.length > ID_PREFIXES[p].length && id.startsWith(ID_PREFIXES[p])) prefix = p;
      const rest = id.slice(ID_PREFIXES[prefix].length);
      const head = Buffer.alloc(varintLength(rest.length * 3 + prefix));
      writeVarint(head, 0, rest.length * 3 + prefix);
      parts.push(...head, ...Buffer.from(rest, 'latin1'));
    }
  }
  return Buffer.from(parts);
}

/**
 * Signs a payload. Throws a TypeError for an invalid payload and a RangeError when the token would be
 * longer than MAX_TOKEN_LENGTH (a URL of more than about 6,000 bytes).
 */
export function signClickToken(key: Buffer, payload: ClickTokenPayload): string {
  checkKey(key);
  const { url, mid, recipient, reason, expires } = payload;
  if (!Number.isSafeInteger(mid) || mid < 0) throw new TypeError('mid must be a non-negative safe integer');
  if (!Number.isSafeInteger(expires) || expires < 0)
    throw new TypeError('expires must be non-negative unix seconds (an integer)');
  if (typeof url !== 'string' || url.length === 0) throw new TypeError('url must be a non-empty string');
  const u = Buffer.from(url, 'utf8');
  const rcpt = Buffer.from(recipient ?? '', 'utf8');
  const why = Buffer.from(reason ?? '', 'utf8');
  if (why.length > MAX_REASON_BYTES) throw new TypeError(`reason must be at most ${MAX_REASON_BYTES} bytes`);
  if (rcpt.length > MAX_RECIPIENT_BYTES) throw new TypeError(`recipient must be at most ${MAX_RECIPIENT_BYTES} bytes`);
  const threats = encodeThreats(payload.messageThreat, payload.urlThreat);
  const bodyLength =
    1 +
    varintLength(expires) +
    varintLength(mid) +
    varintLength(why.length) +
    why.length +
    varintLength(rcpt.length) +
    rcpt.length +
    varintLength(u.length) +
    u.length +
    (threats?.length ?? 0);
  if (Math.ceil(((bodyLength + TAG_BYTES) * 4) / 3) > MAX_TOKEN_LENGTH)
    throw new RangeError(`the URL is too long to wrap (a token may have at most ${MAX_TOKEN_LENGTH} characters)`);
  const buf = Buffer.allocUnsafe(bodyLength + TAG_BYTES);
  let pos = 0;
  buf[pos++] = threats ? VERSION_THREAT : VERSION;
  pos = writeVarint(buf, pos, expires);
  pos = writeVarint(buf, pos, mid);
  for (const field of [why, rcpt, u]) {
    pos = writeVarint(buf, pos, field.length);
    pos += field.copy(buf, pos);
  }
  if (threats) pos += threats.copy(buf, pos);
  tag(key, buf.subarray(0, bodyLength)).copy(buf, bodyLength);
  return buf.toString('base64url');
}

class Reader {
  pos = 1;
  readonly buf: Buffer;
  constructor(buf: Buffer) {
    this.buf = buf;
  }
  /** unsigned LEB128 up to 2^53 - 1, minimal encoding only; -1 when invalid */
  varint(): number {
    let n = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      if (this.pos >= this.buf.length) return -1;
      const b = this.buf[this.pos++];
      n += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) {
        if (i > 0 && b === 0) return -1;
        return Number.isSafeInteger(n) ? n : -1;
      }
      mul *= 0x80;
    }
    return -1;
  }
  string(max: number): string | null {
    const len = this.varint();
    if (len < 0 || len > max || this.pos + len > this.buf.length) return null;
    const s = this.buf.toString('utf8', this.pos, this.pos + len);
    this.pos += len;
    return s;
  }
}

function decodeThreat(r: Reader): ClickThreat | null {
  if (r.pos + 2 > r.buf.length) return null;
  const level = r.buf[r.pos++];
  const count = r.buf[r.pos++];
  if (level > MAX_THREAT_LEVEL || count > MAX_RULE_IDS) return null;
  const ruleIds: string[] = [];
  for (let i = 0; i < count; i++) {
    const head = r.varint();
    if (head < 0) return null;
    const prefix = ID_PREFIXES[head % 3];
    const len = Math.floor(head / 3);
    if (r.pos + len > r.buf.length || prefix.length + len > MAX_RULE_ID_BYTES || (prefix && len === 0)) return null;
    const id = prefix + r.buf.toString('latin1', r.pos, r.pos + len);
    r.pos += len;
    // one encoding per id: a known prefix is always left out
    if (!RULE_ID.test(id) || (!prefix && ID_PREFIXES.some((p) => p && id.length > p.length && id.startsWith(p))))
      return null;
    ruleIds.push(id);
  }
  return { level, ruleIds };
}

function decodeBody(body: Buffer): ClickTokenPayload | null {
  const version = body[0];
  if (version !== VERSION && version !== VERSION_THREAT) return null;
  const r = new Reader(body);
  const expires = r.varint();
  const mid = r.varint();
  if (expires < 0 || mid < 0) return null;
  const reason = r.string(MAX_REASON_BYTES);
  const recipient = r.string(MAX_RECIPIENT_BYTES);
  const url = r.string(MAX_TOKEN_LENGTH);
  if (reason === null || recipient === null || url === null || url === '') return null;
  const payload: ClickTokenPayload = { url, mid, recipient, reason, expires };
  if (version === VERSION_THREAT) {
    if (r.pos >= body.length) return null;
    const flags = body[r.pos++];
    if (flags < 1 || flags > 3) return null;
    if (flags & 1) {
      const t = decodeThreat(r);
      if (!t) return null;
      payload.messageThreat = t;
    }
    if (flags & 2) {
      const t = decodeThreat(r);
      if (!t) return null;
      payload.urlThreat = t;
    }
  }
  if (r.pos !== body.length) return null;
  return payload;
}

/**
 * Verifies a token against the rotation list (current key first; a single key is accepted too) and
 * decodes it. `nowSeconds` defaults to the current time.
 */
export function verifyClickToken(
  keys: Buffer | readonly Buffer[],
  token: string,
  nowSeconds: number = Date.now() / 1000,
): VerifyClickTokenResult {
  const list = Buffer.isBuffer(keys) ? [keys] : keys;
  if (list.length === 0) throw new TypeError('at least one click-time key is needed');
  for (const k of list) checkKey(k);
  // 1 version + 1 expires + 1 mid + 1 + 1 + 1 lengths + 1 URL byte + tag
  const minRaw = 7 + TAG_BYTES;
  if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH || token.length < Math.ceil((minRaw * 4) / 3))
    return { ok: false, reason: 'malformed' };
  if (!BASE64URL.test(token)) return { ok: false, reason: 'malformed' };
  const raw = Buffer.from(token, 'base64url');
  // Node's decoder ignores unused low bits of the last character: demand the canonical form so that
  // exactly one string names each token
  if (raw.length < minRaw || raw.toString('base64url') !== token) return { ok: false, reason: 'malformed' };
  const body = raw.subarray(0, raw.length - TAG_BYTES);
  const got = raw.subarray(raw.length - TAG_BYTES);
  let authentic = false;
  for (const k of list) {
    // no early exit: the time taken does not tell which key matched
    if (timingSafeEqual(tag(k, body), got)) authentic = true;
  }
  if (!authentic) return { ok: false, reason: 'bad_signature' };
  const payload = decodeBody(body);
  if (!payload) return { ok: false, reason: 'malformed' };
  if (payload.expires <= nowSeconds) return { ok: false, reason: 'expired', payload };
  return { ok: true, payload };
}
