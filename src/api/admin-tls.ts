// HTTPS on the admin port (`admin.tls`): the configured certificate, or the gateway's self-signed one
// (dataDir/tls, the same as STARTTLS's). The CLI on the same machine pins this certificate when it calls
// the API (src/cli/common.ts), so a self-signed certificate needs no trust store.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/schema.ts';
import { selfSignedCertificate } from '../smtp/tls.ts';

export interface AdminTls {
  key: Buffer;
  cert: Buffer;
  /** where the certificate is, for the CLI to pin */
  certFile: string;
}

/** The admin port's certificate and key; null when admin.tls is off. Throws when they cannot be had. */
export function adminTls(config: Config, dataDir: string, warn: (line: string) => void): AdminTls | null {
  const t = config.admin.tls;
  if (!t.enabled) return null;
  if (t.cert && t.key) return { cert: readFileSync(t.cert), key: readFileSync(t.key), certFile: path.resolve(t.cert) };
  const own = selfSignedCertificate(dataDir, config.hostname, warn);
  if (!own) throw new Error('admin.tls: no certificate (set admin.tls.cert and key, or install openssl)');
  return { ...own, certFile: path.join(dataDir, 'tls', 'self-signed.crt') };
}

/** The certificate the CLI pins for an admin API on HTTPS; null when admin.tls is off. */
export function adminCertFile(config: Config, dataDir: string): string | null {
  const t = config.admin.tls;
  if (!t.enabled) return null;
  return t.cert ? path.resolve(t.cert) : path.join(dataDir, 'tls', 'self-signed.crt');
}
