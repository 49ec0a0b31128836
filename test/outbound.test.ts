// Outgoing mail (issue 15): DKIM signing (RSA and Ed25519) verified by mailauth against the record
// `dkim keygen` prints, served by a real DNS server (dnsmasq); ARC sealing of modified mail; the outbound
// TLS policy against Node TLS SMTP servers with certificates of a test CA (openssl): require, verify,
// MTA-STS enforce and testing (policy over HTTPS from a test server the test DNS points at), and the TLS
// column of tracking.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { SMTPServer } from 'smtp-server';
import { dkimVerify, arc as arcVerify, authenticate } from 'mailauth';
import { startDns, hasDnsmasq, type TestDns, type DnsRecords } from './helpers/dns.ts';
import { startTestGateway, testConfig, writeTestConfig } from './helpers/gateway.ts';
import { tempDir, waitFor } from './helpers/peers.ts';
import { hasOpenssl, makeTestPki, type TestPki } from './helpers/pki.ts';
import { sendMessage } from './helpers/rawsmtp.ts';
import { generateDkimKey } from '../src/delivery/dkim-keys.ts';

const isRoot = process.getuid?.() === 0;
const skip = !hasDnsmasq()
  ? 'dnsmasq is not installed (run .ci/run)'
  : !hasOpenssl()
    ? 'openssl is not installed'
    : false;
// MX delivery is to port 25 and MTA-STS policies are fetched from port 443 (RFC 8461): binding them on a
// loopback address of its own needs root.
const skipPrivileged = skip || (isRoot ? false : 'binding ports 25 and 443 needs root');

type Gw = Awaited<ReturnType<typeof startTestGateway>>;

let pki: Required<TestPki>;
let dns: TestDns;
let records: DnsRecords = { txt: [], a: [], mx: [], localZones: ['test'] };

interface Received {
  from: string;
  to: string[];
  body: Buffer;
  secure: boolean;
}

/** A receiving MTA: Node's smtp-server, STARTTLS with the given certificate, or none (hideSTARTTLS). */
async function startMta(opts: {
  host?: string;
  port?: number;
  tls: 'ca' | 'self' | 'none';
}): Promise<{ port: number; host: string; got: Received[]; stop(): Promise<void> }> {
  const got: Received[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['AUTH'],
    hideSTARTTLS: opts.tls === 'none',
    ...(opts.tls === 'ca'
      ? { key: pki.key, cert: pki.cert }
      : opts.tls === 'self'
        ? { key: pki.selfKey, cert: pki.selfCert }
        : {}),
    logger: false,
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        got.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          body: Buffer.concat(chunks),
          secure: session.secure,
        });
        cb();
      });
    },
  });
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const port = (server.server.address() as { port: number }).port;
  return { port, host, got, stop: () => new Promise<void>((r) => server.close(() => r())) };
}

/** A loopback address of its own for a test MX or policy host (all of 127/8 is on lo). */
function loopback(): string {
  return `127.${10 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${2 + Math.floor(Math.random() * 250)}`;
}

function mailauthResolver(d: TestDns) {
  const r = d.resolver();
  return async (name: string, type: string): Promise<any> => r.resolve(name, type as 'TXT');
}

function message(from: string, to: string, subject: string): string {
  return (
    `From: Alice <${from}>\r\nTo: <${to}>\r\nSubject: ${subject}\r\nDate: Thu, 01 Jan 2026 10:00:00 +0000\r\n` +
    `Message-ID: <${Math.random().toString(36).slice(2)}@test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n` +
    `Hello,\r\n\r\nthis is ${subject}. See https://example.org/page for more.\r\n`
  );
}

async function deliveredFile(gw: Gw, mid: number): Promise<Buffer> {
  const file = path.join(gw.dataDir, 'delivered', `${mid}.eml`);
  await waitFor(() => existsSync(file), 15_000, `file delivery of MID ${mid}`).catch((err: Error) => {
    throw new Error(`${err.message}: ${JSON.stringify(gw.gateway.tracker.show(mid), null, 1)}`);
  });
  return readFileSync(file);
}

async function recipientWhen(gw: Gw, mid: number, status: string) {
  let rec = gw.gateway.tracker.show(mid);
  await waitFor(
    () => {
      rec = gw.gateway.tracker.show(mid);
      return rec?.recipients.every((r) => r.status === status) ?? false;
    },
    20_000,
    `MID ${mid} ${status}`,
  ).catch((err: Error) => {
    throw new Error(`${err.message}: ${JSON.stringify(rec, null, 1)}`);
  });
  return rec!;
}

before(async () => {
  if (skip) return;
  pki = makeTestPki({
    dns: ['mx1.sts.test', 'mx1.stst.test', 'mta-sts.sts.test', 'mta-sts.stst.test', 'localhost'],
    ips: ['127.0.0.1'],
    untrusted: true,
  }) as Required<TestPki>;
  dns = await startDns(records);
});

after(async () => {
  await dns?.stop();
});

test(
  'dkim keygen writes a 0600 key and prints the TXT record; both key types sign what mailauth verifies',
  { skip },
  async () => {
    const dir = tempDir('bw-dkim-');
    const dataDir = path.join(dir, 'data');
    const ed = generateDkimKey(dataDir, 'sign.test', 'ed1', 'ed25519');
    assert.equal(statSync(ed.file).mode & 0o777, 0o600);
    assert.match(ed.recordValue, /^v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=$/);
    // the CLI, as an operator runs it (local: no gateway needed)
    writeTestConfig(testConfig(), dir);
    const bin = path.resolve(import.meta.dirname, '../bin/breakwater.js');
    const cli = spawnSync(
      process.execPath,
      [
        bin,
        'dkim',
        'keygen',
        'rsa.test',
        '--selector',
        'rsa1',
        '--type',
        'rsa',
        '--json',
        '--config',
        path.join(dir, 'breakwater.yaml'),
      ],
      { encoding: 'utf8' },
    );
    assert.equal(cli.status, 0, cli.stderr);
    const rsa = JSON.parse(cli.stdout);
    assert.equal(rsa.recordName, 'rsa1._domainkey.rsa.test');
    assert.match(rsa.zoneLine, /^rsa1\._domainkey\.rsa\.test\. IN TXT \( "v=DKIM1; k=rsa; p=/);
    assert.equal(statSync(rsa.file).mode & 0o777, 0o600);
    const again = spawnSync(
      process.execPath,
      [bin, 'dkim', 'keygen', 'rsa.test', '--selector', 'rsa1', '--config', path.join(dir, 'breakwater.yaml')],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(again.status, 2, 'an existing key is never overwritten without --force');
    assert.match(again.stderr, /exists/);

    records = {
      ...records,
      txt: [...records.txt!, [ed.recordName, ed.recordValue], [rsa.recordName, rsa.recordValue]],
    };
    await dns.reload(records);
    const gw = await startTestGateway(
      testConfig({
        routes: { '*': ['file:delivered'] },
        dns: { servers: [dns.server] },
        outbound: {
          dkim: {
            domains: {
              'sign.test': { selector: 'ed1', keyFile: ed.keyFile },
              'rsa.test': { selector: 'rsa1', keyFile: rsa.keyFile },
            },
          },
        },
      }),
      dir,
    );
    try {
      const verify = async (from: string, want: { d: string; algo: string }): Promise<number> => {
        const sent = await sendMessage(
          gw.port('outgoing'),
          from,
          ['bob@dst.test'],
          message(from, 'bob@dst.test', `signed by ${want.d}`),
        );
        assert.ok(sent.mid, sent.reply);
        const bytes = await deliveredFile(gw, sent.mid);
        assert.match(bytes.toString('latin1'), /^DKIM-Signature: /);
        const v = await dkimVerify(bytes, { resolver: mailauthResolver(dns) });
        const r = v.results.find((x) => x.signingDomain === want.d);
        assert.ok(r, JSON.stringify(v.results));
        assert.equal(r.status.result, 'pass', JSON.stringify(r));
        assert.equal(r.algo, want.algo);
        return sent.mid;
      };
      const mid = await verify('alice@sign.test', { d: 'sign.test', algo: 'ed25519-sha256' });
      // a subdomain's From is signed with its parent's key (relaxed alignment)
      await verify('news@mail.rsa.test', { d: 'rsa.test', algo: 'rsa-sha256' });
      const start = gw.gateway.tracker.show(mid)!.events.find((e) => e.type === 'delivery.start');
      assert.deepEqual(start?.signed, ['dkim d=sign.test s=ed1 ed25519-sha256']);

      // no key for the From domain: delivered unsigned; incoming mail is not signed (directions: outgoing)
      const other = await sendMessage(
        gw.port('outgoing'),
        'x@nokey.test',
        ['bob@dst.test'],
        message('x@nokey.test', 'bob@dst.test', 'unsigned'),
      );
      assert.doesNotMatch((await deliveredFile(gw, other.mid!)).toString('latin1'), /DKIM-Signature/);
      const inbound = await sendMessage(
        gw.port('incoming'),
        'alice@sign.test',
        ['bob@dst.test'],
        message('alice@sign.test', 'bob@dst.test', 'in'),
      );
      assert.doesNotMatch((await deliveredFile(gw, inbound.mid!)).toString('latin1'), /DKIM-Signature/);
    } finally {
      await gw.stop();
    }
  },
);

test(
  'mail an outgoing policy modified is ARC-sealed over the DKIM-signed bytes, and the seal validates',
  { skip },
  async () => {
    const dir = tempDir('bw-arc-');
    const key = generateDkimKey(path.join(dir, 'data'), 'seal.test', 'arc1', 'ed25519');
    records = { ...records, txt: [...records.txt!, [key.recordName, key.recordValue]] };
    await dns.reload(records);
    const gw = await startTestGateway(
      testConfig({
        routes: { '*': ['file:delivered'] },
        dns: { servers: [dns.server] },
        policies: {
          outgoing: [{ name: 'default', outbreakFilters: { modification: { headers: 'all' } } }],
        },
        outbound: {
          dkim: { domains: { 'seal.test': { selector: 'arc1', keyFile: key.keyFile } } },
          arc: { enabled: true, domain: 'seal.test' },
        },
      }),
      dir,
    );
    try {
      const sent = await sendMessage(
        gw.port('outgoing'),
        'carol@seal.test',
        ['bob@dst.test'],
        message('carol@seal.test', 'bob@dst.test', 'modified'),
      );
      assert.ok(sent.mid, sent.reply);
      const bytes = await deliveredFile(gw, sent.mid);
      const text = bytes.toString('latin1');
      assert.match(text, /X-Breakwater-Outbreak-Status/, 'the policy modified the message');
      assert.match(text, /^ARC-Seal: i=1; /);
      assert.match(text, /ARC-Authentication-Results: i=1; gw\.test; arc=none/);
      const res = await authenticate(bytes, {
        ip: '127.0.0.1',
        sender: 'carol@seal.test',
        mta: 'receiver.test',
        resolver: mailauthResolver(dns),
        disableBimi: true,
      } as any);
      assert.equal(res.arc && res.arc.status.result, 'pass', JSON.stringify(res.arc));
      assert.equal(res.dkim.results.find((r: any) => r.signingDomain === 'seal.test')?.status.result, 'pass');
      const start = gw.gateway.tracker.show(sent.mid)!.events.find((e) => e.type === 'delivery.start');
      assert.deepEqual(start?.signed, ['dkim d=seal.test s=arc1 ed25519-sha256', 'arc i=1 d=seal.test s=arc1 cv=none']);
      void arcVerify;
    } finally {
      await gw.stop();
    }
  },
);

test(
  'TLS policy: opportunistic by default, require defers without STARTTLS, verify defers on an untrusted certificate',
  { skip },
  async () => {
    const trusted = await startMta({ tls: 'ca' });
    const plain = await startMta({ tls: 'none' });
    const untrusted = await startMta({ tls: 'self' });
    const dir = tempDir('bw-tls-');
    const gw = await startTestGateway(
      testConfig({
        routes: {
          'opp.test': [`smtp://127.0.0.1:${plain.port}`],
          'req.test': [`smtp://127.0.0.1:${plain.port}`],
          'ver.test': [`smtp://127.0.0.1:${untrusted.port}`],
          'ok.test': [`smtp://127.0.0.1:${trusted.port}`],
        },
        delivery: { retrySchedule: ['1h'], maxQueueLifetime: '2h', connectTimeout: '2s' },
        outbound: {
          tls: {
            domains: { 'req.test': 'require', 'ver.test': 'verify', 'ok.test': 'verify' },
            caFile: pki.caFile,
          },
        },
      }),
      dir,
    );
    try {
      const send = async (to: string) => {
        const r = await sendMessage(gw.port('outgoing'), 'a@src.test', [to], message('a@src.test', to, `to ${to}`));
        assert.ok(r.mid, r.reply);
        return r.mid;
      };
      // opportunistic: the peer offers no STARTTLS, the mail goes in clear, and tracking says so
      const opp = await recipientWhen(gw, await send('x@opp.test'), 'delivered');
      assert.equal(opp.recipients[0].tls, 'none: peer does not offer STARTTLS (opportunistic)');
      // require: refused before MAIL FROM, deferred with the reason
      const req = await recipientWhen(gw, await send('x@req.test'), 'deferred');
      assert.match(
        req.recipients[0].lastReply ?? '',
        /^4\.7\.10 TLS required but not available: 127\.0\.0\.1: peer does not offer STARTTLS \(TLS policy require, domain req\.test\)/,
      );
      assert.equal(plain.got.filter((m) => m.to.includes('x@req.test')).length, 0, 'nothing sent in clear');
      // verify: a self-signed certificate is not trusted
      const ver = await recipientWhen(gw, await send('x@ver.test'), 'deferred');
      assert.match(
        ver.recipients[0].lastReply ?? '',
        /^4\.7\.5 verified TLS required: 127\.0\.0\.1: certificate not trusted: DEPTH_ZERO_SELF_SIGNED_CERT/,
      );
      assert.match(ver.recipients[0].tls ?? '', /^TLSv1\.[23] \S+ not verified: certificate not trusted/);
      assert.equal(untrusted.got.length, 0);
      // verify: the test CA (outbound.tls.caFile) signed it and it names 127.0.0.1
      const ok = await recipientWhen(gw, await send('x@ok.test'), 'delivered');
      assert.match(ok.recipients[0].tls ?? '', /^TLSv1\.3 TLS_\S+ verified \(verify\)$/);
      assert.equal(trusted.got[0].secure, true);
      const ev = ok.events.find((e) => e.type === 'delivery.delivered') as any;
      assert.equal(ev.tls.verified, true);
      assert.equal(ev.tls.protocol, 'TLSv1.3');
    } finally {
      await gw.stop();
      await Promise.all([trusted.stop(), plain.stop(), untrusted.stop()]);
    }
  },
);

test(
  'MTA-STS: enforce defers when no MX matches the policy; testing delivers with a note',
  { skip: skipPrivileged },
  async () => {
    // sts.test: enforce, policy lists only mx9.sts.test; stst.test: testing, same mismatch.
    const mxIp = loopback();
    const policyIp = loopback();
    const mx = await startMta({ host: mxIp, port: 25, tls: 'ca' });
    const policies: Record<string, string> = {
      'mta-sts.sts.test': 'version: STSv1\r\nmode: enforce\r\nmx: mx9.sts.test\r\nmax_age: 86400\r\n',
      'mta-sts.stst.test': 'version: STSv1\r\nmode: testing\r\nmx: mx9.stst.test\r\nmax_age: 86400\r\n',
    };
    let fetches = 0;
    const web = https.createServer({ key: pki.key, cert: pki.cert }, (req, res) => {
      fetches++;
      const body = policies[String(req.headers.host)];
      if (req.url !== '/.well-known/mta-sts.txt' || !body) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end(body);
    });
    await new Promise<void>((r) => web.listen(443, policyIp, () => r()));
    records = {
      ...records,
      txt: [...records.txt!, ['_mta-sts.sts.test', 'v=STSv1; id=20260101'], ['_mta-sts.stst.test', 'v=STSv1; id=1']],
      a: [
        ...records.a!,
        ['mx1.sts.test', mxIp],
        ['mx1.stst.test', mxIp],
        ['mta-sts.sts.test', policyIp],
        ['mta-sts.stst.test', policyIp],
      ],
      mx: [...records.mx!, ['sts.test', 'mx1.sts.test', 10], ['stst.test', 'mx1.stst.test', 10]],
    };
    await dns.reload(records);
    const gw = await startTestGateway(
      testConfig({
        routes: { '*': ['mx'] },
        dns: { servers: [dns.server] },
        delivery: { retrySchedule: ['1h'], maxQueueLifetime: '2h', connectTimeout: '2s' },
        outbound: { tls: { caFile: pki.caFile } },
      }),
      tempDir('bw-sts-'),
    );
    try {
      const send = async (to: string) => {
        const r = await sendMessage(gw.port('outgoing'), 'a@src.test', [to], message('a@src.test', to, `to ${to}`));
        assert.ok(r.mid, r.reply);
        return r.mid;
      };
      const enforced = await recipientWhen(gw, await send('y@sts.test'), 'deferred');
      assert.match(
        enforced.recipients[0].lastReply ?? '',
        /^4\.7\.5 MX mx1\.sts\.test not in the MTA-STS policy of sts\.test \(TLS policy mta-sts enforce\)/,
      );
      assert.equal(mx.got.length, 0, 'nothing went to an MX the policy does not list');
      const testing = await recipientWhen(gw, await send('y@stst.test'), 'delivered');
      assert.match(
        testing.recipients[0].tls ?? '',
        /^TLSv1\.3 \S+ verified \(opportunistic \(mta-sts testing\)\); MTA-STS testing: MX mx1\.stst\.test not in the policy of stst\.test \(delivered anyway\)$/,
      );
      assert.equal(mx.got.length, 1);
      assert.equal(mx.got[0].secure, true);
      // the policy is cached for max_age: a second message fetches nothing
      const before = fetches;
      await recipientWhen(gw, await send('z@stst.test'), 'delivered');
      assert.equal(fetches, before);
    } finally {
      await gw.stop();
      await mx.stop();
      await new Promise<void>((r) => web.close(() => r()));
    }
  },
);

test(
  'signing is deterministic: every attempt and every restart prepends the same header fields',
  { skip },
  async () => {
    const { OutboundSigner } = await import('../src/delivery/signing.ts');
    const { validateConfig } = await import('../src/config/load.ts');
    const dataDir = path.join(tempDir('bw-det-'), 'data');
    const ed = generateDkimKey(dataDir, 'det.test', 's1', 'ed25519');
    const rsa = generateDkimKey(dataDir, 'rsadet.test', 's1', 'rsa');
    const v = validateConfig(
      testConfig({
        outbound: {
          dkim: {
            domains: {
              'det.test': { selector: 's1', keyFile: ed.keyFile },
              'rsadet.test': { selector: 's1', keyFile: rsa.keyFile },
            },
          },
          arc: { enabled: true, domain: 'rsadet.test' },
        },
      }),
    );
    assert.ok(v.config, JSON.stringify(v.errors));
    const bytes = Buffer.from(message('a@det.test', 'b@dst.test', 'twice'));
    const job = { bytes, file: '', bodyOffset: 0, size: bytes.length, receivedAt: Date.UTC(2026, 0, 1) };
    const origin = { listener: 'outgoing', direction: 'outgoing' as const, modified: true };
    const a = await new OutboundSigner(v.config, dataDir).sign(job, 'a@det.test', origin);
    await new Promise((r) => setTimeout(r, 1100)); // another second: t= must not follow the clock
    const b = await new OutboundSigner(v.config, dataDir).sign(job, 'a@det.test', origin);
    assert.ok(a.prefix.length > 0);
    assert.deepEqual(b.prefix, a.prefix);
    assert.match(a.prefix.toString(), /t=1767225600/);
    assert.deepEqual(a.notes, ['dkim d=det.test s=s1 ed25519-sha256', 'arc i=1 d=rsadet.test s=s1 cv=none']);
  },
);
