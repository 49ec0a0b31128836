// The admin bearer token: created at first start in dataDir (mode 0600) and printed once.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export function tokenFile(dataDir: string): string {
  return path.join(dataDir, 'admin.token');
}

export function ensureAdminToken(dataDir: string): { token: string; created: boolean } {
  const file = tokenFile(dataDir);
  if (existsSync(file)) return { token: readFileSync(file, 'utf8').trim(), created: false };
  mkdirSync(dataDir, { recursive: true });
  const token = randomBytes(32).toString('base64url');
  writeFileSync(file, token + '\n', { mode: 0o600, flag: 'wx' });
  return { token, created: true };
}

export function readAdminToken(dataDir: string): string | null {
  const file = tokenFile(dataDir);
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : null;
}
