// SMTP TLS Reporting (RFC 8460) as a sending MTA: the result type of a session, the `_smtp._tls` record,
// the JSON report and the report mail (units); then a gateway delivering over MX (port 25 on loopback
// addresses of their own) to Postfix's smtp-sink (no STARTTLS) and to an smtp-server with a certificate of
// a test CA, a real DNS server (dnsmasq) with MX, MTA-STS and `_smtp._tls` records, a policy and a report
// endpoint over HTTPS with that CA: the POSTed gzip, the mailto: report delivered to a file route, an
// endpoint that is down (retried, then given up), domains without a usable record, the CLI, and a restart
// that sends nothing twice.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { createRequire } from 'node:module';
import { SMTPServer } from 'smtp-server';
import { startDns, hasDnsmasq, type TestDns } from './helpers/dns.ts';
import { breakwaterCli, startTestGateway, testConfig } from './helpers/gateway.ts';
import { hasBinary, startSmtpSink, tempDir, waitFor, type Sink } from './helpers/peers.ts';
import { sendMessage } from './helpers/rawsmtp.ts';
import { hasOpenssl, makeTestPki, type TestPki } from './helpers/pki.ts';
import {
  buildReport,
  buildReportMessage,
  certificateResult,
  connectFailureResult,
  parseTlsrptRecord,
  sessionResult,
  type SessionRow,
} from '../src/delivery/tlsrpt.ts';
import { mailtoAddress, reportFileName } from '../src/reports/report-mail.ts';
import type { TlsRequirement } from '../src/delivery/tls-policy.ts';
import type { StsPolicy } from '../src/delivery/mta-sts.ts';
import { TlsReports } from '../src/delivery/tls-reports.ts';
import { Store } from '../src/store/db.ts';
import { validateConfig } from '../src/config/load.ts';
import { installationTag } from '../src/store/installation.ts';

interface ParsedMail {
  subject?: string;
  headers: Map<string, unknown>;
  attachments: Array<{ filename?: string; contentType: string; content: Buffer }>;
}
const { simpleParser } = createRequire(import.meta.url)('mailparser') as {
  simpleParser(input: Buffer): Promise<ParsedMail>;
};

const sts: StsPolicy = {
  domain: 'stsd.test',
  id: '1',
  mode: 'enforce',
  mx: ['*.stsd.test'],
  maxAge: 86400,
  expiresAt: Date.now() + 86_400_000,
  lines: ['version: STSv1', 'mode: enforce', 'mx: *.stsd.test', 'max_age: 86400'],
};
const req = (o: Partial<TlsRequirement>): TlsRequirement => ({
  level: 'opportunistic',
  source: 'default',
  sts: null,
  stsNote: null,
  stsFailure: null,
  ...o,
});
const clear = { protocol: null, cipher: null, verified: false, reason: 'peer does not offer STARTTLS', policy: 'x' };
const tls13 = (verified: boolean, reason: string | null = null) => ({
  protocol: 'TLSv1.3',
  cipher: 'TLS_AES_256_GCM_SHA384',
  verified,
  reason,
  policy: 'x',
});

test('a session counts as success or an RFC 8460 result type', () => {
  // in clear: a failure to negotiate TLS, with a policy or without (§4.3.2), even when the mail went
  assert.deepEqual(sessionResult(req({}), clear, 'mx.a.test'), {
    result: 'starttls-not-supported',
    reason: 'peer does not offer STARTTLS',
  });
  assert.equal(sessionResult(req({ sts }), clear, 'mx1.stsd.test')?.result, 'starttls-not-supported');
  // opportunistic TLS does not authenticate the host: an unverified certificate is a TLS session like any
  assert.equal(
    sessionResult(req({}), tls13(false, 'certificate not trusted: DEPTH_ZERO_SELF_SIGNED_CERT'), 'mx.a.test')?.result,
    'success',
  );
  // a policy that asks for verification holds the certificate against the host
  assert.deepEqual(
    sessionResult(req({ sts }), tls13(false, 'certificate not trusted: DEPTH_ZERO_SELF_SIGNED_CERT'), 'mx1.stsd.test'),
    { result: 'certificate-not-trusted', reason: 'DEPTH_ZERO_SELF_SIGNED_CERT' },
  );
  assert.equal(
    sessionResult(req({ level: 'verify' }), tls13(false, 'certificate not trusted: CERT_HAS_EXPIRED'), 'mx.a.test')
      ?.result,
    'certificate-expired',
  );
  assert.equal(sessionResult(req({ sts }), tls13(true), 'mx1.stsd.test')?.result, 'success');
  assert.deepEqual(sessionResult(req({ sts }), tls13(true), 'other.example'), {
    result: 'validation-failure',
    reason: 'MX other.example not in the MTA-STS policy',
  });
  // a policy that could not be had is what the sessions of that delivery report
  assert.deepEqual(
    sessionResult(
      req({ stsFailure: 'sts-webpki-invalid', stsNote: 'MTA-STS: … DEPTH_ZERO_SELF_SIGNED_CERT' }),
      tls13(true),
      'mx.a.test',
    ),
    { result: 'sts-webpki-invalid', reason: 'MTA-STS: … DEPTH_ZERO_SELF_SIGNED_CERT' },
  );
  // TLS off by our own policy: not counted
  assert.equal(sessionResult(req({ level: 'none' }), clear, 'mx.a.test'), null);
  assert.equal(
    certificateResult('certificate does not name mx.a.test: Host: mx.a.test. is not in …').result,
    'certificate-host-mismatch',
  );
  assert.equal(certificateResult('odd').result, 'validation-failure');
  assert.deepEqual(
    connectFailureResult(
      Object.assign(new Error('Error initiating TLS - wrong version'), { code: 'ETLS', command: 'STARTTLS' }),
    ),
    { result: 'validation-failure', reason: 'Error initiating TLS - wrong version' },
  );
  assert.equal(connectFailureResult(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNECTION' })), null);
});

test('_smtp._tls records: v=TLSRPTv1 first, exactly one, mailto: and https: URIs (RFC 8460 §3)', () => {
  assert.deepEqual(parseTlsrptRecord([['v=TLSRPTv1; rua=mailto:tls@a.test, https://r.a.test/v1']]), {
    rua: ['mailto:tls@a.test', 'https://r.a.test/v1'],
  });
  // strings of one record are joined; other TXT records are ignored
  assert.deepEqual(
    parseTlsrptRecord([['v=spf1 -all'], ['v=TLSRPTv1;rua=', 'mailto:tls@a.test'], ['rua=mailto:x@y.test']]),
    { rua: ['mailto:tls@a.test'] },
  );
  const errors = [
    [],
    [['v=TLSRPTv2; rua=mailto:a@b.test']],
    [[' v=TLSRPTv1; rua=mailto:a@b.test']],
    [['v=TLSRPTv1']],
    [['v=TLSRPTv1; rua=ftp://x.test/, http://x.test/, mailto:not an address, https://user:pw@x.test/']],
    [['v=TLSRPTv1; rua=mailto:a@b.test'], ['v=TLSRPTv1; rua=mailto:c@d.test']],
  ];
  for (const e of errors) assert.ok('error' in parseTlsrptRecord(e), JSON.stringify(e));
  // a domain cannot make one report go out many times
  const many = Array.from({ length: 50 }, (_, i) => `mailto:r${i}@a.test`).join(',');
  assert.equal((parseTlsrptRecord([[`v=TLSRPTv1; rua=${many}`]]) as { rua: string[] }).rua.length, 5);
  assert.equal(mailtoAddress('mailto:tls%2Brpt@a.test?subject=x'), 'tls+rpt@a.test');
  assert.equal(mailtoAddress('mailto:a@b.test%0D%0ABcc:c@d.test'), null);
});

test('the report JSON follows RFC 8460 §4; the mail follows §5.3', async () => {
  const row = (o: Partial<SessionRow>): SessionRow => ({
    policyType: 'sts',
    policyString: sts.lines,
    mxHost: sts.mx,
    result: 'success',
    sendingIp: '192.0.2.1',
    receivingMx: 'mx1.stsd.test',
    receivingIp: '198.51.100.7',
    reason: '',
    count: 1,
    ...o,
  });
  const meta = { organization: 'Example Org', contact: 'tls-admin@example.org', submitter: 'gw.example.org' };
  assert.equal(buildReport('stsd.test', '2026-01-15', [], meta), null);
  const report = buildReport(
    'stsd.test',
    '2026-01-15',
    [
      row({ count: 40 }),
      row({ receivingIp: '198.51.100.8', count: 2 }),
      row({ result: 'starttls-not-supported', reason: 'peer does not offer STARTTLS', count: 3 }),
      row({ result: 'certificate-expired', reason: 'CERT_HAS_EXPIRED', count: 5 }),
      row({ policyType: 'no-policy-found', policyString: [], mxHost: [], count: 7 }),
    ],
    meta,
  );
  assert.deepEqual(report, {
    'organization-name': 'Example Org',
    'date-range': { 'start-datetime': '2026-01-15T00:00:00Z', 'end-datetime': '2026-01-15T23:59:59Z' },
    'contact-info': 'tls-admin@example.org',
    'report-id': '2026-01-15.stsd.test@gw.example.org',
    policies: [
      {
        policy: { 'policy-type': 'sts', 'policy-string': sts.lines, 'policy-domain': 'stsd.test', 'mx-host': sts.mx },
        summary: { 'total-successful-session-count': 42, 'total-failure-session-count': 8 },
        'failure-details': [
          {
            'result-type': 'certificate-expired',
            'sending-mta-ip': '192.0.2.1',
            'receiving-mx-hostname': 'mx1.stsd.test',
            'receiving-ip': '198.51.100.7',
            'failed-session-count': 5,
            'failure-reason-code': 'CERT_HAS_EXPIRED',
          },
          {
            'result-type': 'starttls-not-supported',
            'sending-mta-ip': '192.0.2.1',
            'receiving-mx-hostname': 'mx1.stsd.test',
            'receiving-ip': '198.51.100.7',
            'failed-session-count': 3,
            'failure-reason-code': 'peer does not offer STARTTLS',
          },
        ],
      },
      {
        policy: { 'policy-type': 'no-policy-found', 'policy-domain': 'stsd.test' },
        summary: { 'total-successful-session-count': 7, 'total-failure-session-count': 0 },
      },
    ],
  });
  assert.equal(
    reportFileName('gw.example.org', 'stsd.test', '2026-01-15', 'json.gz'),
    'gw.example.org!stsd.test!1768435200!1768521599.json.gz',
  );

  const { gzipSync } = await import('node:zlib');
  const gzip = gzipSync(JSON.stringify(report));
  const mail = await simpleParser(
    buildReportMessage({
      from: 'tlsrpt@example.org',
      to: 'tls@stsd.test',
      domain: 'stsd.test',
      day: '2026-01-15',
      submitter: 'gw.example.org',
      reportId: report!['report-id'],
      gzip,
      now: Date.UTC(2026, 0, 16, 1),
    }),
  );
  assert.equal(
    mail.subject,
    'Report Domain: stsd.test Submitter: gw.example.org Report-ID: <2026-01-15.stsd.test@gw.example.org>',
  );
  assert.equal(mail.headers.get('tls-report-domain'), 'stsd.test');
  assert.equal(mail.headers.get('tls-report-submitter'), 'gw.example.org');
  const ct = mail.headers.get('content-type') as { value: string; params: Record<string, string> };
  assert.equal(ct.value, 'multipart/report');
  assert.equal(ct.params['report-type'], 'tlsrpt');
  const att = mail.attachments.find((a) => a.contentType === 'application/tlsrpt+gzip');
  assert.ok(att);
  assert.equal(att.filename, 'gw.example.org!stsd.test!1768435200!1768521599.json.gz');
  assert.deepEqual(JSON.parse(gunzipSync(att.content).toString()), report);
});

test('recording is bounded: maxDomains per day, reasons cut, bad domains ignored, failures never thrown', async () => {
  const v = validateConfig(testConfig({ outbound: { tls: { tlsrpt: { maxDomains: 3 } } } }));
  assert.ok(v.config, JSON.stringify(v.errors));
  const store = new Store(':memory:');
  const logs: string[] = [];
  const reports = new TlsReports({
    config: v.config,
    dataDir: tempDir('bw-tlsrpt-unit-'),
    store,
    dns: { resolveTxt: async () => [], resolve4: async () => [], resolve6: async () => [] },
    spool: { append: async () => assert.fail('nothing is sent') },
    allocateMid: () => 1,
    accept: () => {},
    log: (l) => logs.push(l),
  });
  const policy = { type: 'no-policy-found' as const, strings: [], mx: [] };
  for (let i = 0; i < 1000; i++)
    reports.record({
      domain: `d${i % 10}.test`,
      policy,
      result: i % 2 ? 'success' : 'starttls-not-supported',
      sendingIp: '127.0.0.1',
      mxHost: `mx.d${i % 10}.test`,
      receivingIp: '127.0.0.2',
      reason: 'x'.repeat(5000),
    });
  reports.record({
    domain: '[127.0.0.1]',
    policy,
    result: 'success',
    sendingIp: null,
    mxHost: 'x',
    receivingIp: null,
    reason: null,
  });
  const today = new Date().toISOString().slice(0, 10);
  const list = await reports.domains(today, 100);
  assert.deepEqual(
    list.map((d) => [d.domain, d.successful, d.failed]),
    [
      ['d0.test', 0, 100],
      ['d1.test', 100, 0],
      ['d2.test', 0, 100],
    ],
  );
  assert.equal(logs.filter((l) => /maxDomains/.test(l)).length, 1, logs.join('\n'));
  const shown = await reports.show('d0.test', today);
  assert.equal(shown.report!.policies[0]['failure-details']![0]['failure-reason-code']!.length, 200);
  assert.equal(shown.delivery, null);
  // a store that fails does not reach the delivery path: logged once
  const run = store.run.bind(store);
  store.run = () => {
    throw new Error('disk I/O error');
  };
  const failing = { domain: 'd0.test', policy, result: 'success' as const, sendingIp: null, mxHost: 'x' };
  for (let i = 0; i < 3; i++)
    assert.doesNotThrow(() => reports.record({ ...failing, receivingIp: null, reason: null }));
  assert.equal(logs.filter((l) => /not recorded: disk I\/O error/.test(l)).length, 1, logs.join('\n'));
  store.run = run;
  await store.close();
});

// ---- end to end -------------------------------------------------------------------------------------

const skip = !hasDnsmasq()
  ? 'dnsmasq is not installed (run .ci/run)'
  : !hasOpenssl()
    ? 'openssl is not installed'
    : !hasBinary('smtp-sink')
      ? 'smtp-sink is not installed'
      : process.getuid?.() !== 0
        ? 'MX delivery to port 25 and the MTA-STS policy host on 443 need root'
        : false;

let pki: TestPki;
let dns: TestDns;

function loopback(): string {
  return `127.${10 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${2 + Math.floor(Math.random() * 250)}`;
}

function message(to: string): string {
  return (
    `From: <a@src.test>\r\nTo: <${to}>\r\nSubject: to ${to}\r\nDate: Thu, 01 Jan 2026 10:00:00 +0000\r\n` +
    `Message-ID: <${Math.random().toString(36).slice(2)}@src.test>\r\n\r\nHello.\r\n`
  );
}

before(async () => {
  if (skip) return;
  pki = makeTestPki({ dns: ['reports.rpt.test', 'mx.tls.test', 'mta-sts.stsd.test'], ips: ['127.0.0.1'] });
});

after(async () => {
  await dns?.stop();
});

test(
  'reports of a past day go out once: https POST, mailto through the queue, retries, no record, restart',
  { skip },
  async () => {
    // MX hosts: smtp-sink (no STARTTLS) for plain.test, stsd.test (MTA-STS testing), none.test, bad.test,
    // down.test; an smtp-server with a certificate of the test CA for tls.test.
    const sinkIp = loopback();
    const tlsIp = loopback();
    const webIp = loopback();
    const sink: Sink = await startSmtpSink({ host: sinkIp, port: 25 });
    const mta = new SMTPServer({
      authOptional: true,
      disabledCommands: ['AUTH'],
      key: pki.key,
      cert: pki.cert,
      logger: false,
      onData(s, _session, cb) {
        s.resume();
        s.on('end', () => cb());
      },
    });
    await new Promise<void>((r) => mta.listen(25, tlsIp, () => r()));
    const posts: Array<{ path: string; type: string; report: any }> = [];
    let fetches = 0;
    const web = https.createServer({ key: pki.key, cert: pki.cert }, (req, res) => {
      if (req.method === 'GET') {
        fetches++;
        res
          .writeHead(200, { 'content-type': 'text/plain' })
          .end('version: STSv1\r\nmode: testing\r\nmx: mx.stsd.test\r\nmax_age: 86400\r\n');
        return;
      }
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        posts.push({
          path: req.url ?? '',
          type: String(req.headers['content-type']),
          report: JSON.parse(gunzipSync(Buffer.concat(chunks)).toString()),
        });
        res.writeHead(201).end();
      });
    });
    await new Promise<void>((r) => web.listen(443, webIp, () => r()));
    dns = await startDns({
      localZones: ['test'],
      mx: [
        ['plain.test', 'mx.plain.test', 10],
        ['stsd.test', 'mx.stsd.test', 10],
        ['tls.test', 'mx.tls.test', 10],
        ['none.test', 'mx.none.test', 10],
        ['bad.test', 'mx.bad.test', 10],
        ['down.test', 'mx.down.test', 10],
      ],
      a: [
        ['mx.plain.test', sinkIp],
        ['mx.stsd.test', sinkIp],
        ['mx.none.test', sinkIp],
        ['mx.bad.test', sinkIp],
        ['mx.down.test', sinkIp],
        ['mx.tls.test', tlsIp],
        ['mta-sts.stsd.test', webIp],
        ['reports.rpt.test', webIp],
      ],
      txt: [
        ['_smtp._tls.plain.test', 'v=TLSRPTv1; rua=https://reports.rpt.test/v1/plain,mailto:tlsrpt@rua.test'],
        ['_smtp._tls.stsd.test', 'v=TLSRPTv1;rua=https://reports.rpt.test/v1/stsd'],
        ['_smtp._tls.tls.test', 'v=TLSRPTv1; rua=https://reports.rpt.test/v1/tls'],
        ['_mta-sts.stsd.test', 'v=STSv1; id=1'],
        // two valid records: no reports (RFC 8460 §3); a record of another kind only
        ['_smtp._tls.bad.test', 'v=TLSRPTv1; rua=mailto:a@rua.test'],
        ['_smtp._tls.bad.test', 'v=TLSRPTv1; rua=mailto:b@rua.test'],
        ['_smtp._tls.none.test', 'v=spf1 -all'],
        // nothing listens there
        ['_smtp._tls.down.test', 'v=TLSRPTv1; rua=https://127.0.0.1:9/down'],
      ],
    });
    const dir = tempDir('bw-tlsrpt-');
    const config = testConfig({
      routes: { 'rua.test': ['file:reports'], '*': ['mx'] },
      dns: { servers: [dns.server] },
      delivery: { retrySchedule: ['1h'], maxQueueLifetime: '2h', connectTimeout: '2s' },
      outbound: {
        tls: {
          caFile: pki.caFile,
          tlsrpt: {
            enabled: true,
            organization: 'Breakwater Test',
            contact: 'tls-admin@gw.test',
            from: 'tlsrpt@gw.test',
            sendAt: '1s',
            retries: ['1s', '1s'],
            timeout: '3s',
          },
        },
      },
    });
    let gw = await startTestGateway(config, dir);
    try {
      const today = new Date().toISOString().slice(0, 10);
      for (const d of ['plain', 'stsd', 'tls', 'none', 'bad', 'down']) {
        const r = await sendMessage(gw.port('outgoing'), 'a@src.test', [`x@${d}.test`], message(`x@${d}.test`));
        assert.ok(r.mid, r.reply);
        await waitFor(
          () => gw.gateway.tracker.show(r.mid!)?.recipients[0].status === 'delivered',
          20_000,
          `${d} delivered`,
        ).catch((err: Error) => {
          throw new Error(`${err.message}: ${JSON.stringify(gw.gateway.tracker.show(r.mid!), null, 1)}`);
        });
      }
      assert.equal(fetches, 1, 'the MTA-STS policy was fetched');

      // today's report as it would be sent: the API and the CLI
      writeFileSync(path.join(gw.dataDir, 'admin.addr'), `127.0.0.1:${gw.adminPort}\n`);
      const cli = await breakwaterCli(dir, ['tlsrpt', 'show', 'stsd.test', '--json']);
      assert.equal(cli.status, 0, cli.stderr);
      const shown = JSON.parse(cli.stdout);
      const tag = installationTag(gw.gateway.store);
      assert.equal(shown['report-id'], `${today}.stsd.test.${tag}@gw.test`);
      assert.deepEqual(shown.policies[0].policy, {
        'policy-type': 'sts',
        'policy-string': ['version: STSv1', 'mode: testing', 'mx: mx.stsd.test', 'max_age: 86400'],
        'policy-domain': 'stsd.test',
        'mx-host': ['mx.stsd.test'],
      });
      const list = await breakwaterCli(dir, ['tlsrpt', 'list']);
      assert.equal(list.status, 0, list.stderr);
      assert.match(list.stdout, /plain\.test\s+0\s+1\s+-/);
      assert.match(list.stdout, /tls\.test\s+1\s+0\s+-/);
      assert.equal(posts.length, 0, 'nothing of today is sent');

      // The day is over: the next round sends its reports.
      await gw.gateway.store.committed();
      const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
      gw.gateway.store.db.prepare('update tlsrpt_sessions set day = ?').run(yesterday);
      await waitFor(() => posts.length >= 3, 20_000, 'three POSTs');
      const byPath = new Map(posts.map((p) => [p.path, p]));
      for (const p of posts) assert.equal(p.type, 'application/tlsrpt+gzip');
      const plain = byPath.get('/v1/plain')!.report;
      const mine = plain.policies[0]['failure-details'][0]['sending-mta-ip'];
      assert.deepEqual(plain, {
        'organization-name': 'Breakwater Test',
        'date-range': { 'start-datetime': `${yesterday}T00:00:00Z`, 'end-datetime': `${yesterday}T23:59:59Z` },
        'contact-info': 'tls-admin@gw.test',
        'report-id': `${yesterday}.plain.test.${tag}@gw.test`,
        policies: [
          {
            policy: { 'policy-type': 'no-policy-found', 'policy-domain': 'plain.test' },
            summary: { 'total-successful-session-count': 0, 'total-failure-session-count': 1 },
            'failure-details': [
              {
                'result-type': 'starttls-not-supported',
                'sending-mta-ip': mine,
                'receiving-mx-hostname': 'mx.plain.test',
                'receiving-ip': sinkIp,
                'failed-session-count': 1,
                'failure-reason-code': 'peer does not offer STARTTLS',
              },
            ],
          },
        ],
      });
      assert.match(mine, /^127\./);
      const stsd = byPath.get('/v1/stsd')!.report;
      assert.equal(stsd.policies[0].policy['policy-type'], 'sts');
      assert.deepEqual(stsd.policies[0].summary, {
        'total-successful-session-count': 0,
        'total-failure-session-count': 1,
      });
      assert.equal(stsd.policies[0]['failure-details'][0]['result-type'], 'starttls-not-supported');
      const tlsReport = byPath.get('/v1/tls')!.report;
      assert.deepEqual(tlsReport.policies, [
        {
          policy: { 'policy-type': 'no-policy-found', 'policy-domain': 'tls.test' },
          summary: { 'total-successful-session-count': 1, 'total-failure-session-count': 0 },
        },
      ]);

      // mailto: a message of ours through the queue, delivered to the file route
      const reportsDir = path.join(gw.dataDir, 'reports');
      await waitFor(
        () => existsSync(reportsDir) && readdirSync(reportsDir).some((f) => f.endsWith('.eml')),
        15_000,
        'report mail',
      );
      const files = readdirSync(reportsDir).filter((f) => f.endsWith('.eml'));
      assert.equal(files.length, 1);
      const mail = await simpleParser(readFileSync(path.join(reportsDir, files[0])));
      assert.equal(
        mail.subject,
        `Report Domain: plain.test Submitter: gw.test Report-ID: <${yesterday}.plain.test.${tag}@gw.test>`,
      );
      assert.equal(mail.headers.get('tls-report-domain'), 'plain.test');
      assert.equal(mail.headers.get('tls-report-submitter'), 'gw.test');
      assert.equal((mail.headers.get('content-type') as any).params['report-type'], 'tlsrpt');
      const att = mail.attachments[0];
      assert.equal(att.contentType, 'application/tlsrpt+gzip');
      const { startMs } = { startMs: Date.parse(`${yesterday}T00:00:00Z`) };
      assert.equal(att.filename, `gw.test!plain.test!${startMs / 1000}!${startMs / 1000 + 86399}.json.gz`);
      assert.deepEqual(JSON.parse(gunzipSync(att.content).toString()), plain);

      // down.test: retried, then given up and logged; the others were not held up by it
      const api = (p: string) =>
        fetch(`http://127.0.0.1:${gw.adminPort}/api/v1${p}`, { headers: { authorization: `Bearer ${gw.token}` } }).then(
          (r) => r.json() as Promise<any>,
        );
      let down = await api(`/tlsrpt/reports/down.test?day=${yesterday}`);
      for (let i = 0; i < 100 && down.uploads[0]?.status !== 'failed'; i++) {
        await new Promise((r) => setTimeout(r, 200));
        down = await api(`/tlsrpt/reports/down.test?day=${yesterday}`);
      }
      assert.equal(down.uploads[0].status, 'failed', JSON.stringify(down));
      assert.equal(down.uploads[0].attempts, 3);
      assert.match(down.uploads[0].lastError, /ECONNREFUSED/);
      assert.equal(down.delivery.status, 'sent');
      const logText = readFileSync(path.join(gw.dataDir, 'logs/mail.log'), 'utf8');
      assert.match(logText, /TLS report \S+ down\.test to https:\/\/127\.0\.0\.1:9\/down given up after 3 attempts/);

      // no usable record: marked, nothing sent
      for (const d of ['none.test', 'bad.test']) {
        const r = await api(`/tlsrpt/reports/${d}?day=${yesterday}`);
        assert.equal(r.delivery.status, 'no-record', d);
        assert.ok(r.report, d);
      }
      assert.match((await api(`/tlsrpt/reports/bad.test?day=${yesterday}`)).delivery.detail, /2 v=TLSRPTv1 records/);

      // A restart sends nothing again.
      const sent = posts.length;
      await gw.stop();
      gw = await startTestGateway(config, dir);
      assert.equal(await gw.gateway.tlsReports.runNow(), 0);
      await new Promise((r) => setTimeout(r, 2500));
      assert.equal(posts.length, sent);
      assert.equal(readdirSync(reportsDir).filter((f) => f.endsWith('.eml')).length, 1);
    } finally {
      await gw.stop();
      await sink.stop();
      await new Promise<void>((r) => mta.close(() => r()));
      await new Promise<void>((r) => web.close(() => r()));
    }
  },
);
