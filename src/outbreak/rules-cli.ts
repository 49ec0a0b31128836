// What `breakwater rules keygen|sign|verify` do, as plain functions: the command-line wiring only parses arguments,
// prints the results and turns RulesCliError into an exit code.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  InvalidBundleError,
  KeyFormatError,
  generateKeyPair,
  keyIdOf,
  signBundle,
  verifySignedBundle,
  type VerifyCode,
  type VerifyOptions,
} from './bundle.ts';
import { threatCategories, type ThreatCategory } from './types.ts';

export const PUBLIC_KEY_FILE = 'outbreak-rules.pub';
export const PRIVATE_KEY_FILE = 'outbreak-rules.key';

/** A command failed; `errors` lists every problem found (e.g. each invalid field of a bundle). */
export class RulesCliError extends Error {
  override readonly name = 'RulesCliError';
  readonly errors: string[];
  constructor(message: string, errors: string[] = []) {
    super(errors.length ? `${message}\n  ${errors.join('\n  ')}` : message);
    this.errors = errors;
  }
}

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new RulesCliError(`cannot read ${what} ${file}: ${(err as Error).message}`);
  }
}

/** Writes through a temporary file and a rename, so a reader never sees half a bundle. */
function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, text, { mode: 0o644 });
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new RulesCliError(`cannot write ${file}: ${(err as Error).message}`);
  }
}

/**
 * Creates a signing key pair in `outDir`: the public key (for `outbreakFilters.ruleFeed.publicKey`) and the private
 * key, readable by the owner only. An existing private key is never overwritten: losing it would strand every
 * gateway configured with its public key.
 */
export function rulesKeygen(outDir: string): {
  publicKeyFile: string;
  privateKeyFile: string;
  publicKey: string;
  keyId: string;
} {
  const publicKeyFile = path.join(outDir, PUBLIC_KEY_FILE);
  const privateKeyFile = path.join(outDir, PRIVATE_KEY_FILE);
  if (existsSync(privateKeyFile)) throw new RulesCliError(`${privateKeyFile} already exists; not overwritten`);
  const { publicKey, privateKey } = generateKeyPair();
  try {
    mkdirSync(outDir, { recursive: true });
    writeFileSync(privateKeyFile, privateKey + '\n', { mode: 0o600, flag: 'wx' });
    writeFileSync(publicKeyFile, publicKey + '\n', { mode: 0o644 });
  } catch (err) {
    throw new RulesCliError(`cannot write the key pair to ${outDir}: ${(err as Error).message}`);
  }
  return { publicKeyFile, privateKeyFile, publicKey, keyId: keyIdOf(publicKey) };
}

/** Validates the bundle in `bundleFile` (every error is reported) and writes it signed to `outFile`. */
export function rulesSign(
  bundleFile: string,
  privateKeyFile: string,
  outFile: string,
): { outFile: string; version: number; rules: number; keyId: string } {
  let bundle: unknown;
  try {
    bundle = JSON.parse(readText(bundleFile, 'bundle'));
  } catch (err) {
    if (err instanceof RulesCliError) throw err;
    throw new RulesCliError(`${bundleFile} is not JSON: ${(err as Error).message}`);
  }
  const privateKey = readText(privateKeyFile, 'private key').trim();
  let signed;
  try {
    signed = signBundle(bundle, privateKey);
  } catch (err) {
    if (err instanceof InvalidBundleError) throw new RulesCliError(`${bundleFile} is not a valid bundle:`, err.errors);
    if (err instanceof KeyFormatError) throw new RulesCliError(`${privateKeyFile}: ${err.message}`);
    throw err;
  }
  writeAtomic(outFile, JSON.stringify(signed, null, 2) + '\n');
  const b = bundle as { version: number; rules: unknown[] };
  return { outFile, version: b.version, rules: b.rules.length, keyId: signed.keyId };
}

export type RulesVerifyReport =
  | {
      ok: true;
      version: number;
      published: string;
      publisher: string | null;
      keyId: string;
      rules: number;
      /** rules per level, index = level 0–5 */
      levels: number[];
      categories: Record<ThreatCategory, number>;
      /** rules whose `expires` has passed (they never match) */
      expiredRules: number;
      warnings: string[];
      summary: string;
    }
  | { ok: false; code: VerifyCode; message: string; summary: string };

/**
 * Verifies a signed bundle file against a public key (base64, or the path of a file holding it) and summarises it.
 * A bundle that fails verification is a result, not an exception; unreadable files throw RulesCliError.
 */
export function rulesVerify(signedFile: string, publicKey: string, opts: VerifyOptions = {}): RulesVerifyReport {
  let key = publicKey.trim();
  if (!/^[A-Za-z0-9+/]{43}=?$/.test(key) && existsSync(key) && statSync(key).isFile()) {
    key = readText(key, 'public key').trim();
  }
  const r = verifySignedBundle(readText(signedFile, 'signed bundle'), key, opts);
  if (!r.ok) return { ...r, summary: `REJECTED (${r.code}): ${r.message}` };
  const b = r.bundle;
  const now = opts.now ?? Date.now();
  const levels = [0, 0, 0, 0, 0, 0];
  const categories = Object.fromEntries(threatCategories.map((c) => [c, 0])) as Record<ThreatCategory, number>;
  let expiredRules = 0;
  for (const rule of b.rules) {
    levels[rule.level]++;
    categories[rule.category]++;
    if (rule.expires && Date.parse(rule.expires) <= now) expiredRules++;
  }
  const summary = [
    `valid: version ${b.version}, published ${b.published}${b.publisher ? ` by ${b.publisher}` : ''}, signed with key ${r.keyId}`,
    `${b.rules.length} rules${expiredRules ? ` (${expiredRules} expired)` : ''}; by level: ${levels.map((n, l) => `${l}: ${n}`).join(', ')}`,
    `by category: ${threatCategories.map((c) => `${c} ${categories[c]}`).join(', ')}`,
    ...r.warnings.map((w) => `warning: ${w}`),
  ].join('\n');
  return {
    ok: true,
    version: b.version,
    published: b.published,
    publisher: b.publisher ?? null,
    keyId: r.keyId,
    rules: b.rules.length,
    levels,
    categories,
    expiredRules,
    warnings: r.warnings,
    summary,
  };
}
