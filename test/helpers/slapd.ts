// A real OpenLDAP directory for the tests (issue 15): Debian's slapd in the foreground on a loopback port,
// with its own slapd.conf and mdb database in a temp dir (no system service, no cn=config of the machine),
// the core, cosine and inetorgperson schemas, a base "dc=example,dc=test", a read-only service account
// and the people a test adds. Stop it and start it again (same port, same data) to test outages. With
// `tls`, a test CA signs a certificate for 127.0.0.1 and localhost (openssl), and slapd offers StartTLS on
// its ldap:// port and listens on an ldaps:// port too; it then refuses simple binds outside TLS, so a
// bind that works went over TLS.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Client } from 'ldapts';
import { tempDir } from './peers.ts';
import { makeTestPki } from './pki.ts';

export const SLAPD = ['/usr/sbin/slapd'].find((p) => existsSync(p)) ?? null;
const MODULE_PATH = ['/usr/lib/ldap', '/usr/lib/x86_64-linux-gnu/ldap', '/usr/lib/aarch64-linux-gnu/ldap'].find((p) =>
  existsSync(path.join(p, 'back_mdb.so')),
);

export function hasSlapd(): boolean {
  return SLAPD !== null && existsSync('/etc/ldap/schema/inetorgperson.schema');
}

export const BASE = 'dc=example,dc=test';
export const PEOPLE = `ou=people,${BASE}`;
const ROOT_DN = `cn=admin,${BASE}`;
const ROOT_PW = 'root-secret';
/** the read-only account the gateway binds as */
export const READER_DN = `cn=reader,${BASE}`;
export const READER_PW = 'reader-secret';

export interface Person {
  uid: string;
  mail: string;
}

export interface TestSlapd {
  port: number;
  url: string;
  /** with `tls`: the ldaps:// URL and the PEM file of the CA that signed the server's certificate */
  ldapsUrl?: string;
  caFile?: string;
  /** adds people under ou=people (uid, cn, sn, mail) */
  addPeople(people: Person[]): Promise<void>;
  /** stops slapd (SIGTERM); the data stays */
  stop(): Promise<void>;
  /** starts it again on the same port and data */
  start(): Promise<void>;
  /** stops it for good */
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

function slapdConf(dir: string, tls: { ca: string; cert: string; key: string } | null): string {
  return [
    'include /etc/ldap/schema/core.schema',
    'include /etc/ldap/schema/cosine.schema',
    'include /etc/ldap/schema/inetorgperson.schema',
    `pidfile ${path.join(dir, 'slapd.pid')}`,
    `argsfile ${path.join(dir, 'slapd.args')}`,
    // global settings: StartTLS on the ldap:// port and the ldaps:// port use the same certificate
    ...(tls
      ? [
          `TLSCACertificateFile ${tls.ca}`,
          `TLSCertificateFile ${tls.cert}`,
          `TLSCertificateKeyFile ${tls.key}`,
          // a simple bind needs a security strength factor above 0: TLS
          'security simple_bind=1',
        ]
      : []),
    ...(MODULE_PATH ? [`modulepath ${MODULE_PATH}`, 'moduleload back_mdb'] : []),
    'database mdb',
    'maxsize 16777216',
    `suffix "${BASE}"`,
    `rootdn "${ROOT_DN}"`,
    `rootpw ${ROOT_PW}`,
    `directory ${path.join(dir, 'db')}`,
    'index mail eq',
    'index uid eq',
    // passwords are for binding only; the rest is readable by the reader (and the root DN)
    'access to attrs=userPassword by anonymous auth by * none',
    'access to * by * read',
    '',
  ].join('\n');
}

/** A client bound as `dn`; with `ca`, over StartTLS (which the TLS directory requires for binds). */
async function bound(url: string, dn: string, pw: string, ca?: string): Promise<Client> {
  const c = new Client({ url, timeout: 2000, connectTimeout: 2000 });
  try {
    if (ca) await c.startTLS({ ca: [readFileSync(ca, 'utf8')], host: '127.0.0.1' });
    await c.bind(dn, pw);
  } catch (err) {
    await c.unbind().catch(() => {});
    throw err;
  }
  return c;
}

export async function startSlapd(opts: { tls?: boolean } = {}): Promise<TestSlapd> {
  if (!SLAPD) throw new Error('slapd is not installed (run .ci/run)');
  const dir = tempDir('bw-slapd-');
  mkdirSync(path.join(dir, 'db'));
  const pki = opts.tls ? makeTestPki({ dns: ['localhost'], ips: ['127.0.0.1'], dir }) : null;
  const certs = pki ? { ca: pki.caFile, cert: pki.certFile, key: pki.keyFile } : null;
  const conf = path.join(dir, 'slapd.conf');
  writeFileSync(conf, slapdConf(dir, certs));
  const port = await freePort();
  const url = `ldap://127.0.0.1:${port}`;
  const ldapsUrl = certs ? `ldaps://127.0.0.1:${await freePort()}` : undefined;
  let proc: ChildProcess | null = null;

  const launch = async (): Promise<void> => {
    // -d 0: stay in the foreground, log nothing; -h: only our loopback port(s)
    const listen = [url, ...(ldapsUrl ? [ldapsUrl] : [])].map((u) => `${u}/`).join(' ');
    const p = spawn(SLAPD, ['-d', '0', '-h', listen, '-f', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    proc = p;
    let out = '';
    p.stdout!.on('data', (d) => (out += d));
    p.stderr!.on('data', (d) => (out += d));
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (p.exitCode !== null) throw new Error(`slapd exited (${p.exitCode}): ${out}`);
      try {
        const c = await bound(url, ROOT_DN, ROOT_PW, certs?.ca);
        await c.unbind();
        return;
      } catch {
        if (Date.now() > deadline) {
          p.kill('SIGKILL');
          throw new Error(`slapd did not answer within 10 s: ${out}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };
  const stop = async (): Promise<void> => {
    const p = proc;
    proc = null;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGTERM');
      setTimeout(() => p.kill('SIGKILL'), 5000).unref();
    });
  };

  await launch();
  const admin = await bound(url, ROOT_DN, ROOT_PW, certs?.ca);
  try {
    await admin.add(BASE, { objectClass: ['top', 'dcObject', 'organization'], dc: 'example', o: 'Example' });
    await admin.add(PEOPLE, { objectClass: ['top', 'organizationalUnit'], ou: 'people' });
    await admin.add(READER_DN, {
      objectClass: ['top', 'person'],
      cn: 'reader',
      sn: 'reader',
      userPassword: READER_PW,
    });
  } finally {
    await admin.unbind();
  }

  return {
    port,
    url,
    ...(certs ? { ldapsUrl, caFile: certs.ca } : {}),
    async addPeople(people) {
      const c = await bound(url, ROOT_DN, ROOT_PW, certs?.ca);
      try {
        for (const p of people)
          await c.add(`uid=${p.uid},${PEOPLE}`, {
            objectClass: ['top', 'person', 'organizationalPerson', 'inetOrgPerson'],
            uid: p.uid,
            cn: p.uid,
            sn: p.uid,
            mail: p.mail,
          });
      } finally {
        await c.unbind();
      }
    },
    stop,
    async start() {
      if (proc) return;
      await launch();
    },
    close: stop,
  };
}
