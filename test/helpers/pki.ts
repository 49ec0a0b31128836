// A test certificate authority made with openssl: a CA and a server certificate it signs for the names
// (and addresses) a test needs, optionally a self-signed certificate nobody trusts. Files in a temp
// directory; PEM text returned too. Used by the outbound TLS, TLSRPT and LDAP StartTLS tests.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { tempDir } from './peers.ts';

export const hasOpenssl = (): boolean => spawnSync('openssl', ['version']).status === 0;

export interface TestPki {
  dir: string;
  /** CA certificate file (what a client given `caFile` trusts) */
  caFile: string;
  certFile: string;
  keyFile: string;
  /** the server certificate and key, PEM */
  cert: string;
  key: string;
  /** a self-signed certificate for 127.0.0.1 that no CA vouches for (with `untrusted: true`) */
  selfCert?: string;
  selfKey?: string;
}

/** A CA and a leaf it signs for `dns` names and `ips` (EC P-256: fast to make). */
export function makeTestPki(opts: { dns: string[]; ips?: string[]; untrusted?: boolean; dir?: string }): TestPki {
  const dir = opts.dir ?? tempDir('bw-pki-');
  const f = (name: string) => path.join(dir, name);
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  run(['req', '-x509', ...key, '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=bw-test-ca']);
  run(['req', ...key, '-keyout', f('leaf.key'), '-out', f('leaf.csr'), '-subj', `/CN=${opts.dns[0] ?? 'localhost'}`]);
  const san = [...opts.dns.map((d) => `DNS:${d}`), ...(opts.ips ?? []).map((ip) => `IP:${ip}`)].join(',');
  writeFileSync(f('leaf.ext'), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
  run([
    'x509',
    '-req',
    '-in',
    f('leaf.csr'),
    '-CA',
    f('ca.pem'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-out',
    f('leaf.pem'),
    '-days',
    '2',
    '-extfile',
    f('leaf.ext'),
  ]);
  const pki: TestPki = {
    dir,
    caFile: f('ca.pem'),
    certFile: f('leaf.pem'),
    keyFile: f('leaf.key'),
    cert: readFileSync(f('leaf.pem'), 'utf8'),
    key: readFileSync(f('leaf.key'), 'utf8'),
  };
  if (opts.untrusted) {
    run([
      'req',
      '-x509',
      ...key,
      '-keyout',
      f('self.key'),
      '-out',
      f('self.pem'),
      '-days',
      '2',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ]);
    pki.selfCert = readFileSync(f('self.pem'), 'utf8');
    pki.selfKey = readFileSync(f('self.key'), 'utf8');
  }
  return pki;
}
