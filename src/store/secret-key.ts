// A random key kept in the data directory (mode 0600), made at first start: the click-time link key,
// the end-user link key. Losing the file only invalidates links signed with it.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

export function ensureSecretKey(file: string, bytes = 32): Buffer {
  if (existsSync(file)) return Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
  const key = randomBytes(bytes);
  writeFileSync(file, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
  return key;
}
