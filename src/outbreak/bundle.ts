// Signed rule bundles (DESIGN §4.2). A signed bundle is a JSON file
//
//   { "bundle": { "version": 12, "published": "…", "rules": [...] },
//     "signature": "<base64 Ed25519 signature over canonicalJson(bundle)>",
//     "keyId": "<first 16 hex digits of sha256(raw 32-byte public key)>" }
//
// Keys are the raw 32-byte Ed25519 keys in base64 (the private key is the 32-byte seed): one short line each,
// easy to paste into `outbreakFilters.ruleFeed.publicKey`. The signature covers the bundle exactly as the
// publisher wrote it (canonicalised), not the normalised form the engine compiles, so any change is detected.
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { parseBundle, type Bundle } from './rules.ts';

/** Clock skew tolerated on a bundle's `published` time. */
export const MAX_CLOCK_SKEW_MS = 5 * 60 * 1000;

// DER headers that wrap a raw Ed25519 key into SPKI / PKCS#8 (RFC 8410), so node:crypto can import it
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
// a valid bundle nests about 40 levels deep (16 condition levels, each an object and an array)
const MAX_JSON_DEPTH = 100;

export class KeyFormatError extends Error {
  override readonly name = 'KeyFormatError';
}

export class InvalidBundleError extends Error {
  override readonly name = 'InvalidBundleError';
  readonly errors: string[];
  constructor(errors: string[]) {
    super(`invalid rule bundle:\n  ${errors.join('\n  ')}`);
    this.errors = errors;
  }
}

export interface SignedBundle {
  bundle: unknown;
  signature: string;
  keyId: string;
}

export type VerifyCode = 'bad_json' | 'bad_signature' | 'wrong_key' | 'invalid_bundle' | 'expired' | 'stale_version';

export type VerifyResult =
  | {
      ok: true;
      bundle: Bundle;
      keyId: string;
      /** sha256 hex of the canonical bundle: pass back as `activeDigest` to detect a changed bundle of equal version */
      digest: string;
      warnings: string[];
    }
  | { ok: false; code: VerifyCode; message: string };

export interface VerifyOptions {
  /** ms since the epoch; default Date.now() */
  now?: number;
  /** version of the active bundle: a lower version is refused (rollback protection) */
  minVersion?: number;
  /** digest of the active bundle: a bundle of version `minVersion` must then have identical content */
  activeDigest?: string;
}

/**
 * JSON with object keys sorted (by UTF-16 code units, recursively) and no white space. Only JSON values are
 * accepted: the input comes from JSON.parse or from a bundle about to be signed.
 */
export function canonicalJson(value: unknown, depth = 0): string {
  if (depth > MAX_JSON_DEPTH) throw new TypeError(`JSON nests deeper than ${MAX_JSON_DEPTH} levels`);
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError('non-finite number');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v, depth + 1)).join(',')}]`;
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj)
      .filter((k) => obj[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k], depth + 1)}`).join(',')}}`;
  }
  throw new TypeError(`not a JSON value: ${typeof value}`);
}

function rawKey(text: string, what: string): Buffer {
  const t = text.trim();
  const raw = Buffer.from(t, 'base64');
  // Buffer.from skips invalid characters silently, so check the text round-trips
  if (raw.length !== 32 || raw.toString('base64').replace(/=+$/, '') !== t.replace(/=+$/, '')) {
    throw new KeyFormatError(`${what} must be a base64 raw 32-byte Ed25519 key`);
  }
  return raw;
}

function publicKeyObject(publicKey: string): KeyObject {
  return createPublicKey({
    key: Buffer.concat([SPKI_PREFIX, rawKey(publicKey, 'the public key')]),
    format: 'der',
    type: 'spki',
  });
}

function privateKeyObject(privateKey: string): KeyObject {
  return createPrivateKey({
    key: Buffer.concat([PKCS8_PREFIX, rawKey(privateKey, 'the private key')]),
    format: 'der',
    type: 'pkcs8',
  });
}

function rawPublic(key: KeyObject): Buffer {
  return key.export({ format: 'der', type: 'spki' }).subarray(SPKI_PREFIX.length);
}

/** New Ed25519 key pair, both base64 of the raw 32-byte keys. */
export function generateKeyPair(): { publicKey: string; privateKey: string } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const der = privateKey.export({ format: 'der', type: 'pkcs8' });
  return {
    publicKey: rawPublic(publicKey).toString('base64'),
    privateKey: der.subarray(PKCS8_PREFIX.length).toString('base64'),
  };
}

/** The public key that belongs to a private key (both base64 raw). */
export function publicKeyOf(privateKey: string): string {
  return rawPublic(createPublicKey(privateKeyObject(privateKey))).toString('base64');
}

/** First 16 hex digits of sha256 over the raw public key: names the key without revealing anything. */
export function keyIdOf(publicKey: string): string {
  return createHash('sha256').update(rawKey(publicKey, 'the public key')).digest('hex').slice(0, 16);
}

/**
 * Signs a bundle as written. It is validated first (an invalid bundle throws InvalidBundleError listing every
 * error): a publisher must not be able to sign what gateways will refuse.
 */
export function signBundle(bundle: unknown, privateKey: string): SignedBundle {
  const parsed = parseBundle(bundle);
  if ('errors' in parsed) throw new InvalidBundleError(parsed.errors);
  const key = privateKeyObject(privateKey);
  const signature = sign(null, Buffer.from(canonicalJson(bundle), 'utf8'), key);
  return { bundle, signature: signature.toString('base64'), keyId: keyIdOf(publicKeyOf(privateKey)) };
}

const fail = (code: VerifyCode, message: string): VerifyResult => ({ ok: false, code, message });

/**
 * Checks a signed bundle file: well-formed, signed by `publicKey`, a valid bundle, not published in the future
 * (beyond MAX_CLOCK_SKEW_MS) and not older than the active one. The signature is checked before the bundle is
 * validated, so nothing but the canonicaliser looks at content from an unknown signer.
 */
export function verifySignedBundle(text: string, publicKey: string, opts: VerifyOptions = {}): VerifyResult {
  let key: KeyObject;
  let expectedKeyId: string;
  try {
    key = publicKeyObject(publicKey);
    expectedKeyId = keyIdOf(publicKey);
  } catch (err) {
    return fail('wrong_key', `configured public key unusable: ${(err as Error).message}`);
  }
  let signed: unknown;
  try {
    signed = JSON.parse(text);
  } catch (err) {
    return fail('bad_json', `not JSON: ${(err as Error).message}`);
  }
  if (typeof signed !== 'object' || signed === null || Array.isArray(signed)) {
    return fail('bad_json', 'a signed bundle is an object with bundle, signature and keyId');
  }
  const { bundle, signature, keyId } = signed as Record<string, unknown>;
  if (typeof bundle !== 'object' || bundle === null || typeof signature !== 'string' || typeof keyId !== 'string') {
    return fail('bad_json', 'a signed bundle is an object with bundle, signature and keyId');
  }
  if (keyId !== expectedKeyId) {
    return fail('wrong_key', `bundle signed with key ${keyId}, the configured key is ${expectedKeyId}`);
  }
  let canonical: string;
  try {
    canonical = canonicalJson(bundle);
  } catch (err) {
    return fail('bad_json', `bundle is not canonicalisable: ${(err as Error).message}`);
  }
  const sig = Buffer.from(signature, 'base64');
  const data = Buffer.from(canonical, 'utf8');
  if (sig.length !== 64 || !verify(null, data, key, sig)) {
    return fail('bad_signature', 'the signature does not match the bundle: it was altered or signed with another key');
  }
  const parsed = parseBundle(bundle);
  if ('errors' in parsed) {
    return fail('invalid_bundle', `signed bundle is invalid:\n  ${parsed.errors.join('\n  ')}`);
  }
  const b = parsed.bundle;
  const now = opts.now ?? Date.now();
  const published = Date.parse(b.published);
  if (published > now + MAX_CLOCK_SKEW_MS) {
    return fail(
      'expired',
      `bundle version ${b.version} claims to be published at ${b.published}, in the future (clock now ${new Date(now).toISOString()})`,
    );
  }
  const digest = createHash('sha256').update(data).digest('hex');
  if (opts.minVersion !== undefined) {
    if (b.version < opts.minVersion) {
      return fail('stale_version', `bundle version ${b.version} is older than the active version ${opts.minVersion}`);
    }
    if (b.version === opts.minVersion && opts.activeDigest !== undefined && opts.activeDigest !== digest) {
      return fail(
        'stale_version',
        `bundle version ${b.version} differs from the active bundle of the same version: a publisher must raise the version`,
      );
    }
  }
  return { ok: true, bundle: b, keyId, digest, warnings: parsed.warnings };
}
