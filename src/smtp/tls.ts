// STARTTLS certificates: the configured one, else a self-signed one made at first start and kept in
// dataDir/tls so that clients pinning it see the same key after a restart. The self-signed one names
// the configured hostname (subject CN and subjectAltName DNS), the name in the greeting; it is made
// again when the hostname changes.
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import type { ListenerConfig } from '../config/schema.ts';

export async function ensureTls(
  dataDir: string,
  hostname: string,
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
    if (selfSigned === undefined) selfSigned = selfSignedCertificate(dataDir, hostname, warn);
    if (selfSigned) out.set(l.name, selfSigned);
  }
  return out;
}

/** A name openssl's -subj and -addext take as it is: a DNS name or an IP address, nothing to escape. */
const PLAIN_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9.:-]*[A-Za-z0-9])?$/;

function namesHost(certFile: string, hostname: string, ip: boolean): boolean {
  try {
    const cert = new X509Certificate(readFileSync(certFile));
    return (ip ? cert.checkIP(hostname) : cert.checkHost(hostname, { subject: 'never' })) !== undefined;
  } catch {
    return false;
  }
}

/** The self-signed certificate in dataDir/tls (made at first use): STARTTLS's, and the admin port's. */
export function selfSignedCertificate(
  dataDir: string,
  configured: string,
  warn: (line: string) => void,
): { key: Buffer; cert: Buffer } | null {
  const dir = path.join(dataDir, 'tls');
  const keyFile = path.join(dir, 'self-signed.key');
  const certFile = path.join(dir, 'self-signed.crt');
  let hostname = configured;
  if (!PLAIN_NAME.test(hostname)) {
    warn(`hostname ${JSON.stringify(hostname)} is not a DNS name; the self-signed certificate names "breakwater"`);
    hostname = 'breakwater';
  }
  const ip = /^[\d.]+$|:/.test(hostname);
  if (existsSync(keyFile) && existsSync(certFile) && !namesHost(certFile, hostname, ip)) {
    warn(`the self-signed certificate does not name ${hostname}: making a new one`);
    rmSync(keyFile, { force: true });
    rmSync(certFile, { force: true });
  }
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
          `/CN=${hostname}`,
          '-addext',
          `subjectAltName=${ip ? 'IP' : 'DNS'}:${hostname}`,
          '-keyout',
          keyFile,
          '-out',
          certFile,
        ],
        { stdio: 'ignore' },
      );
    } catch (err) {
      warn(
        `could not create a self-signed certificate (${(err as Error).message}): STARTTLS is off unless listeners[].tls is set`,
      );
      return null;
    }
  }
  return { key: readFileSync(keyFile), cert: readFileSync(certFile) };
}
