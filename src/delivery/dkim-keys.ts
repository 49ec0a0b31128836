// DKIM keys (`breakwater dkim keygen`): an Ed25519 (RFC 8463) or RSA-2048 key pair, the private key under
// dataDir with mode 0600, and the DNS TXT record that publishes the public key (RFC 6376 §3.6.1).
import { generateKeyPairSync, createPublicKey, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, openSync, writeSync, fsyncSync, closeSync, renameSync, chmodSync } from 'node:fs';
import path from 'node:path';

export type DkimKeyType = 'ed25519' | 'rsa';

/** The p= value: base64 of the public key (RFC 8463 §4.2: the raw 32 bytes for Ed25519; SPKI DER for RSA). */
export function publicKeyValue(key: KeyObject): string {
  const pub = key.type === 'public' ? key : createPublicKey(key);
  const der = pub.export({ type: 'spki', format: 'der' });
  // an Ed25519 SPKI is a fixed 12-byte prefix and the 32-byte key
  return (pub.asymmetricKeyType === 'ed25519' ? der.subarray(der.length - 32) : der).toString('base64');
}

/** The TXT record value: "v=DKIM1; k=ed25519; p=…". */
export function dkimRecordValue(key: KeyObject): string {
  const pub = key.type === 'public' ? key : createPublicKey(key);
  const k = pub.asymmetricKeyType === 'ed25519' ? 'ed25519' : 'rsa';
  return `v=DKIM1; k=${k}; p=${publicKeyValue(pub)}`;
}

/** A zone-file line, the value split into strings of at most 255 bytes (RFC 1035 §3.3.14). */
export function zoneLine(name: string, value: string): string {
  const parts: string[] = [];
  for (let i = 0; i < value.length; i += 255) parts.push(`"${value.slice(i, i + 255)}"`);
  return `${name}. IN TXT ${parts.length > 1 ? `( ${parts.join(' ')} )` : parts[0]}`;
}

export interface GeneratedKey {
  /** absolute path of the private key */
  file: string;
  /** the keyFile value for the config: relative to dataDir */
  keyFile: string;
  domain: string;
  selector: string;
  type: DkimKeyType;
  /** SELECTOR._domainkey.DOMAIN */
  recordName: string;
  recordValue: string;
  zoneLine: string;
}

/** Writes a new key to dataDir/dkim/DOMAIN.SELECTOR.key (0600, fsynced); refuses to replace one unless `force`. */
export function generateDkimKey(
  dataDir: string,
  domain: string,
  selector: string,
  type: DkimKeyType,
  force = false,
): GeneratedKey {
  const d = domain.toLowerCase().replace(/\.$/, '');
  const dir = path.join(dataDir, 'dkim');
  const keyFile = path.join('dkim', `${d}.${selector}.key`);
  const file = path.join(dataDir, keyFile);
  if (existsSync(file) && !force) throw new Error(`${file} exists; use another selector (or --force to replace it)`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const { privateKey } =
    type === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, pem);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
  const recordName = `${selector}._domainkey.${d}`;
  const recordValue = dkimRecordValue(privateKey);
  return {
    file,
    keyFile,
    domain: d,
    selector,
    type,
    recordName,
    recordValue,
    zoneLine: zoneLine(recordName, recordValue),
  };
}

export type DkimRecordStatus = 'ok' | 'missing' | 'mismatch' | 'revoked' | 'multiple' | 'dns-error';

export interface DkimRecordCheck {
  domain: string;
  selector: string;
  recordName: string;
  status: DkimRecordStatus;
  /** what is wrong, in words an operator acts on; '' when ok */
  detail: string;
  /** the value to publish (from the private key) */
  expected: string;
  /** what DNS has now */
  found: string[];
}

/** The tags of a DKIM key record (RFC 6376 §3.6.1): "v=DKIM1; k=rsa; p=…", whitespace inside values ignored. */
export function dkimRecordTags(value: string): Map<string, string> {
  const tags = new Map<string, string>();
  for (const part of value.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    tags.set(part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).replace(/\s+/g, ''));
  }
  return tags;
}

/**
 * Does DNS publish the public half of this signing key at SELECTOR._domainkey.DOMAIN? What receivers will
 * see: the record missing, another key, an empty p= (revoked), several records, or DNS not answering.
 */
export async function checkDkimRecord(
  domain: string,
  selector: string,
  key: KeyObject,
  dns: { resolveTxt(name: string): Promise<string[]> },
): Promise<DkimRecordCheck> {
  const recordName = `${selector}._domainkey.${domain.toLowerCase().replace(/\.$/, '')}`;
  const expected = dkimRecordValue(key);
  const base = { domain, selector, recordName, expected };
  let found: string[];
  try {
    found = await dns.resolveTxt(recordName);
  } catch (err) {
    return { ...base, status: 'dns-error', detail: `no answer: ${(err as Error).message}`, found: [] };
  }
  // other TXT records at the name (rare) are not key records; v=, when present, must be DKIM1
  const records = found.filter((v) => {
    const tags = dkimRecordTags(v);
    return tags.has('p') && (!tags.has('v') || tags.get('v') === 'DKIM1');
  });
  const result = (status: DkimRecordStatus, detail: string): DkimRecordCheck => ({ ...base, status, detail, found });
  if (!records.length)
    return result('missing', found.length ? 'TXT records there, none a DKIM key record' : 'no TXT record');
  if (records.length > 1) return result('multiple', `${records.length} key records: receivers may pick any`);
  const tags = dkimRecordTags(records[0]);
  const want = dkimRecordTags(expected);
  if (!tags.get('p')) return result('revoked', 'p= is empty: the key is revoked (RFC 6376 §3.6.1)');
  if ((tags.get('k') ?? 'rsa') !== want.get('k'))
    return result('mismatch', `k=${tags.get('k') ?? 'rsa (default)'} published, the key is ${want.get('k')}`);
  if (tags.get('p') !== want.get('p')) return result('mismatch', 'p= is another public key');
  return result('ok', '');
}
