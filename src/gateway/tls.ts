// STARTTLS certificates: the configured one, else a self-signed one made at first start and kept in
// dataDir/tls so that clients pinning it see the same key after a restart.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import type { ListenerConfig } from '../config/schema.ts';

export async function ensureTls(
  dataDir: string,
  listeners: ListenerConfig[],
  warn: (line: string) => void,
): Promise<Map<string, { key: Buffer; cert: Buffer }>> {
  const out = new Map<string, { key: Buffer; cert: Buffer }>();
  let selfSigned: { key: Buffer; cert: Buffer } | null | undefined;
  for (const l of listeners) {
    if (l.tls.cert && l.tls.key) {
      out.set(l.name, { key: readFileSync(l.tls.key), cert: readFileSync(l.tls.cert) });
      continue;
    }
    if (selfSigned === undefined) selfSigned = selfSignedCertificate(dataDir, warn);
    if (selfSigned) out.set(l.name, selfSigned);
  }
  return out;
}

function selfSignedCertificate(dataDir: string, warn: (line: string) => void): { key: Buffer; cert: Buffer } | null {
  const dir = path.join(dataDir, 'tls');
  const keyFile = path.join(dir, 'self-signed.key');
  const certFile = path.join(dir, 'self-signed.crt');
  if (!existsSync(keyFile) || !existsSync(certFile)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    try {
      // Node has no X.509 writer; openssl is on every Debian system.
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:prime256v1',
          '-nodes',
          '-days',
          '3650',
          '-subj',
          '/CN=breakwater',
          '-keyout',
          keyFile,
          '-out',
          certFile,
        ],
        { stdio: 'ignore' },
      );
    } catch (err) {
      warn(
        `STARTTLS disabled: could not create a self-signed certificate (${(err as Error).message}); set listeners[].tls`,
      );
      return null;
    }
  }
  return { key: readFileSync(keyFile), cert: readFileSync(certFile) };
}
