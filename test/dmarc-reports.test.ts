// DMARC aggregate reports (RFC 7489 §7.2) as a receiver: the XML of Appendix C read back with a real XML
// parser, hostile values from the message escaped, our actions as dispositions and override reasons,
// rua= destinations (mailto: only, `!size`, at most two, external ones authorized per §7.1); then a
// gateway whose senderAuth stage asks a real DNS server (dnsmasq) receiving mail over SMTP that passes
// and fails DMARC (dropped, held by a policy quarantine, overridden for a trusted ARC sealer, a p=none
// domain), the day's round mailing the reports through our own queue to file routes, read back with
// mailparser and gunzipped; an unauthorized external destination and one whose size limit is too small
// get nothing, the CLI shows the XML, and a restart sends nothing twice.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { XMLParser } from 'fast-xml-parser';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { dkimSign, sealMessage } from 'mailauth';
import { hasDnsmasq, startDns, type TestDns } from './helpers/dns.ts';
import { breakwaterCli, startTestGateway, testConfig } from './helpers/gateway.ts';
import { sendMessage } from './helpers/rawsmtp.ts';
import { tempDir, waitFor } from './helpers/peers.ts';
import {
  aggregateXml,
  authorizationName,
  authorizes,
  buildAggregate,
  buildAggregateMessage,
  ruaDestinations,
  type DmarcRow,
} from '../src/senderauth/dmarc-aggregate.ts';
import { dmarcEvaluated } from '../src/policy/sender-auth.ts';
import type { SenderAuthResult } from '../src/senderauth/verify.ts';
import type { PolicySenderAuthConfig } from '../src/config/sender-auth-schema.ts';
import { installationTag } from '../src/store/installation.ts';

const require = createRequire(import.meta.url);
const { simpleParser } = require('mailparser') as {
  simpleParser(input: Buffer): Promise<{
    subject?: string;
    from?: { text: string };
    headers: Map<string, any>;
    attachments: Array<{ filename?: string; contentType: string; content: Buffer }>;
  }>;
};

/** The report XML as objects; elements that may repeat are always arrays. */
function parseXml(xml: string): any {
  return new XMLParser({
    parseTagValue: false,
    isArray: (_name, at) =>
      ['feedback.record', 'feedback.record.auth_results.dkim', 'feedback.record.row.policy_evaluated.reason'].includes(
        String(at),
      ),
  }).parse(xml);
}

const pass: DmarcRow = {
  sourceIp: '192.0.2.10',
  headerFrom: 'good.test',
  envelopeFrom: 'good.test',
  dkim: [{ domain: 'good.test', selector: 'ed', result: 'pass' }],
  spf: { domain: 'good.test', scope: 'mfrom', result: 'pass' },
  dkimAligned: true,
  spfAligned: true,
  disposition: 'none',
  reasons: [],
};
const published = {
  domain: 'good.test',
  orgDomain: 'good.test',
  p: 'reject',
  sp: 'reject',
  pct: 100,
  adkim: 'r' as const,
  aspf: 's' as const,
  rua: ['mailto:dmarc@good.test'],
};
const meta = { orgName: 'Example & Co', email: 'dmarc@gw.example', submitter: 'gw.example' };

test('the report XML follows RFC 7489 Appendix C and escapes what the sender chose', () => {
  const hostile: DmarcRow = {
    ...pass,
    sourceIp: '198.51.100.7',
    headerFrom: 'evil.test</header_from><injected/>',
    envelopeFrom: '',
    dkim: [
      { domain: 'x.test', selector: 'a<b>&"', result: 'fail' },
      { domain: "o'neil.test", selector: '', result: 'none' },
    ],
    spf: { domain: 'helo.test', scope: 'helo', result: 'softfail' },
    dkimAligned: false,
    spfAligned: false,
    disposition: 'reject',
    reasons: [{ type: 'local_policy', comment: 'a]]><comment>\u0000\u0007 <x>' }],
  };
  assert.equal(buildAggregate('good.test', '2026-01-15', published, [], meta), null);
  const report = buildAggregate(
    'good.test',
    '2026-01-15',
    published,
    [
      { row: pass, count: 3 },
      { row: hostile, count: 7 },
    ],
    meta,
  )!;
  const xml = aggregateXml(report);
  assert.ok(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<feedback>'));
  assert.ok(!xml.includes('<injected/>') && !xml.includes('<b>') && !xml.includes('\u0000'), xml);
  assert.match(xml, /<selector>a&lt;b&gt;&amp;&quot;<\/selector>/);
  const doc = parseXml(xml).feedback;
  assert.equal(doc.version, '1.0');
  assert.deepEqual(doc.report_metadata, {
    org_name: 'Example & Co',
    email: 'dmarc@gw.example',
    report_id: '2026-01-15.good.test@gw.example',
    date_range: { begin: String(Date.UTC(2026, 0, 15) / 1000), end: String(Date.UTC(2026, 0, 15, 23, 59, 59) / 1000) },
  });
  assert.deepEqual(doc.policy_published, {
    domain: 'good.test',
    adkim: 'r',
    aspf: 's',
    p: 'reject',
    sp: 'reject',
    pct: '100',
  });
  // the largest count first; every element where the schema puts it
  assert.equal(doc.record.length, 2);
  const [h, p] = doc.record;
  assert.deepEqual(h.row, {
    source_ip: '198.51.100.7',
    count: '7',
    policy_evaluated: {
      disposition: 'reject',
      dkim: 'fail',
      spf: 'fail',
      reason: [{ type: 'local_policy', comment: 'a]]><comment> <x>' }],
    },
  });
  assert.deepEqual(h.identifiers, { header_from: 'evil.test</header_from><injected/>', envelope_from: '' });
  assert.deepEqual(h.auth_results, {
    dkim: [
      { domain: 'x.test', selector: 'a<b>&"', result: 'fail' },
      { domain: "o'neil.test", result: 'none' },
    ],
    spf: { domain: 'helo.test', scope: 'helo', result: 'softfail' },
  });
  assert.deepEqual(p.row.policy_evaluated, { disposition: 'none', dkim: 'pass', spf: 'pass' });
  assert.deepEqual(p.auth_results.spf, { domain: 'good.test', scope: 'mfrom', result: 'pass' });
  // the order of Appendix C's sequences
  const order = (parent: string, names: string[]) => {
    const at = names.map((n) => xml.indexOf(`<${n}>`, xml.indexOf(`<${parent}>`)));
    assert.deepEqual(
      [...at].sort((a, b) => a - b),
      at,
      `${parent}: ${names.join(', ')}`,
    );
  };
  order('feedback', ['version', 'report_metadata', 'policy_published', 'record']);
  order('report_metadata', ['org_name', 'email', 'report_id', 'date_range']);
  order('record', ['row', 'identifiers', 'auth_results']);
  order('policy_evaluated', ['disposition', 'dkim', 'spf', 'reason']);
  order('auth_results', ['dkim', 'spf']);
});

test('our actions as RFC 7489 dispositions, with the reason when it is not what the domain asked for', () => {
  const settings = { honorPct: true } as PolicySenderAuthConfig;
  const result = (o: Partial<SenderAuthResult['dmarc']>, more: Partial<SenderAuthResult> = {}) =>
    ({
      dmarc: {
        result: 'fail',
        domain: 'a.test',
        policy: 'reject',
        p: 'reject',
        sp: null,
        pct: 100,
        comment: null,
        ...o,
      },
      pctSample: 50,
      ...more,
    }) as SenderAuthResult;
  const fail = result({});
  assert.deepEqual(dmarcEvaluated(fail, settings, 'drop'), { disposition: 'reject', reasons: [] });
  assert.deepEqual(dmarcEvaluated(fail, settings, 'bounce'), { disposition: 'reject', reasons: [] });
  const softer = dmarcEvaluated(fail, settings, 'quarantine');
  assert.equal(softer.disposition, 'quarantine');
  assert.deepEqual(
    softer.reasons.map((r) => r.type),
    ['local_policy'],
  );
  assert.deepEqual(dmarcEvaluated(fail, settings, 'tag').disposition, 'quarantine');
  assert.deepEqual(
    dmarcEvaluated(fail, settings, 'none').reasons.map((r) => r.type),
    ['local_policy'],
  );
  const quarantine = result({ policy: 'quarantine' });
  assert.deepEqual(dmarcEvaluated(quarantine, settings, 'tag'), { disposition: 'quarantine', reasons: [] });
  assert.deepEqual(dmarcEvaluated(quarantine, settings, 'quarantine'), { disposition: 'quarantine', reasons: [] });
  // pct=30 and a draw of 50: the next lower policy applies (sampled out); at 20 the policy itself
  const sampled = dmarcEvaluated(result({ pct: 30 }), settings, 'quarantine');
  assert.deepEqual(sampled, { disposition: 'quarantine', reasons: [{ type: 'sampled_out', comment: 'pct=30' }] });
  assert.deepEqual(dmarcEvaluated(result({ pct: 30 }, { pctSample: 20 }), settings, 'drop').reasons, []);
  assert.deepEqual(
    dmarcEvaluated(result({ pct: 30 }), { honorPct: false } as PolicySenderAuthConfig, 'drop').reasons,
    [],
  );
  const forwarded = dmarcEvaluated(result({}, { dmarcOverride: 'trusted ARC sealer lists.test' }), settings, 'none');
  assert.deepEqual(forwarded, {
    disposition: 'none',
    reasons: [{ type: 'trusted_forwarder', comment: 'trusted ARC sealer lists.test' }],
  });
  // a pass, or a failure of a p=none domain: nothing asked, nothing overridden
  assert.deepEqual(dmarcEvaluated(result({ result: 'pass' }), settings, 'none'), { disposition: 'none', reasons: [] });
  assert.deepEqual(dmarcEvaluated(result({ policy: 'none' }), settings, 'none'), { disposition: 'none', reasons: [] });
});

test('rua destinations: mailto: only, !size limits, at most two; external ones need the domain’s word', () => {
  assert.deepEqual(
    ruaDestinations([
      'https://reports.test/dmarc',
      'mailto:a@b.test!10m',
      'mailto:A@b.test',
      'mailto:not an address',
      'mailto:c@d.test!512',
      'mailto:e@f.test',
    ]),
    [
      { uri: 'mailto:a@b.test!10m', address: 'a@b.test', maxBytes: 10 * 2 ** 20 },
      { uri: 'mailto:c@d.test!512', address: 'c@d.test', maxBytes: 512 },
    ],
  );
  assert.deepEqual(ruaDestinations(['mailto:r@x.test!2k'])[0].maxBytes, 2048);
  assert.equal(authorizationName('mail.good.test', 'good.test', 'dmarc@good.test'), null);
  assert.equal(authorizationName('good.test', 'good.test', 'dmarc@reports.good.test'), null);
  assert.equal(authorizationName('good.test', 'good.test', 'x@ext.test'), 'good.test._report._dmarc.ext.test');
  assert.equal(authorizationName('good.test', 'good.test', 'x@notgood.test'), 'good.test._report._dmarc.notgood.test');
  assert.ok(authorizes(['v=DMARC1']));
  assert.ok(authorizes(['v=spf1 -all', 'v=DMARC1; rua=mailto:x@ext.test']));
  assert.ok(!authorizes([]));
  assert.ok(!authorizes(['v=DMARC2', 'v=DMARC10']));
});

test('the report mail: RFC 7489 §7.2.1.1 subject, the gzip as application/gzip with the § file name', async () => {
  const report = buildAggregate('good.test', '2026-01-15', published, [{ row: pass, count: 1 }], meta)!;
  const gzip = gzipSync(aggregateXml(report));
  const mail = await simpleParser(
    buildAggregateMessage({
      from: 'dmarc@gw.example',
      to: 'dmarc@good.test',
      domain: 'good.test',
      day: '2026-01-15',
      submitter: 'gw.example',
      reportId: report.report_metadata.report_id,
      gzip,
      now: Date.UTC(2026, 0, 16, 1),
    }),
  );
  assert.equal(
    mail.subject,
    'Report Domain: good.test Submitter: gw.example Report-ID: <2026-01-15.good.test@gw.example>',
  );
  assert.equal(mail.headers.get('content-type').value, 'multipart/mixed');
  const att = mail.attachments.find((a) => a.contentType === 'application/gzip');
  assert.ok(att);
  assert.equal(
    att.filename,
    `gw.example!good.test!${Date.UTC(2026, 0, 15) / 1000}!${Date.UTC(2026, 0, 15, 23, 59, 59) / 1000}.xml.gz`,
  );
  assert.equal(gunzipSync(att.content).toString(), aggregateXml(report));
});

// ---- end to end -------------------------------------------------------------------------------------

const skip = hasDnsmasq() ? false : 'dnsmasq not installed (.ci/run)';
const ed = generateKeyPairSync('ed25519');
const edPem = ed.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const edPublic = ed.publicKey.export({ type: 'spki', format: 'der' }).subarray(-32).toString('base64');
let dns: TestDns;

before(async () => {
  if (skip) return;
  dns = await startDns({
    localZones: ['test'],
    txt: [
      ['good.test', 'v=spf1 ip4:127.0.0.1 -all'],
      ['ed._domainkey.good.test', `v=DKIM1; k=ed25519; p=${edPublic}`],
      // one address within the domain, one outside that authorizes reports about good.test (§7.1)
      ['_dmarc.good.test', 'v=DMARC1; p=reject; adkim=s; rua=mailto:dmarc@rua.good.test,mailto:agg@ext.test!10m'],
      ['good.test._report._dmarc.ext.test', 'v=DMARC1'],
      ['reject.test', 'v=spf1 -all'],
      // an outside address that does not authorize, and one whose size limit no report fits
      ['_dmarc.reject.test', 'v=DMARC1; p=reject; rua=mailto:agg@noauth.test, mailto:tiny@reject.test!1k'],
      ['soft.test', 'v=spf1 ~all'],
      ['_dmarc.soft.test', 'v=DMARC1; p=none'],
      ['arc._domainkey.lists.test', `v=DKIM1; k=ed25519; p=${edPublic}`],
    ],
  });
});

after(async () => {
  await dns?.stop();
});

async function send(port: number, helo: string, from: string, to: string, data: Buffer): Promise<number> {
  const r = await sendMessage(port, from, [to], data, helo);
  assert.ok(r.mid, r.reply);
  return r.mid;
}

function message(from: string, subject = 'figures'): Buffer {
  return Buffer.from(
    [
      `From: <${from}>`,
      'To: bob@dst.test',
      `Subject: ${subject}`,
      'Date: Tue, 02 Jun 2026 10:00:00 +0000',
      `Message-ID: <${Math.random().toString(36).slice(2)}@src.test>`,
      '',
      'The figures are in.',
      '',
    ].join('\r\n'),
  );
}

async function signed(from: string, subject?: string): Promise<Buffer> {
  const body = message(from, subject);
  const s = await dkimSign(body, {
    signatureData: [{ signingDomain: 'good.test', selector: 'ed', privateKey: edPem }],
  } as Parameters<typeof dkimSign>[1]);
  return Buffer.concat([Buffer.from(s.signatures), body]);
}

test(
  'reports of a past day go to each domain’s authorized rua addresses once, with counts, dispositions and overrides',
  { skip, timeout: 120_000 },
  async () => {
    const dir = tempDir('bw-dmarc-');
    const config = testConfig({
      routes: {
        'rua.good.test': ['file:reports'],
        'ext.test': ['file:reports'],
        'noauth.test': ['file:reports'],
        'reject.test': ['file:reports'],
        '*': ['file:delivered'],
      },
      senderAuth: {
        enabled: true,
        dns: { servers: [dns.server], timeout: '1s', tries: 1 },
        trustedArcSealers: ['lists.test'],
        dmarcReports: {
          enabled: true,
          orgName: 'Breakwater Test',
          email: 'dmarc-reports@gw.test',
          sendAt: '1h',
        },
      },
      quarantine: { policy: [{ name: 'spoof', description: 'DMARC failures' }] },
      policies: {
        incoming: [
          {
            name: 'held',
            match: ['held@dst.test'],
            senderAuth: { mode: 'custom', dmarcReject: { action: 'quarantine', quarantine: 'spoof' } },
          },
          { name: 'default' },
        ],
      },
    });
    let gw = await startTestGateway(config, dir);
    try {
      const port = gw.port('incoming');
      const mids: number[] = [];
      // passing twice (one row, count 2)
      for (let i = 0; i < 2; i++)
        mids.push(
          await send(port, 'mail.good.test', 'alice@good.test', 'bob@dst.test', await signed('alice@good.test')),
        );
      // failing p=reject: dropped by default, held where the policy quarantines (local policy)
      mids.push(await send(port, 'mx.evil.test', 'ceo@reject.test', 'bob@dst.test', message('ceo@reject.test')));
      mids.push(await send(port, 'mx.evil.test', 'ceo@reject.test', 'held@dst.test', message('ceo@reject.test')));
      // through a mailing list the gateway trusts: DKIM broken by its subject tag, its seal says dmarc=pass
      const listed = Buffer.from(
        (await signed('alice@good.test', 'list post')).toString().replace('Subject: list post', 'Subject: [list] post'),
      );
      const seal = await sealMessage(listed, {
        signingDomain: 'lists.test',
        selector: 'arc',
        privateKey: edPem,
        authResults: 'lists.test; dkim=pass header.d=good.test; dmarc=pass header.from=good.test',
        cv: 'none',
      });
      mids.push(await send(port, 'mx.lists.test', 'bounces@lists.test', 'bob@dst.test', Buffer.concat([seal, listed])));
      // a p=none domain without rua: counted, no report
      mids.push(await send(port, 'client.soft.test', 'news@soft.test', 'bob@dst.test', message('news@soft.test')));
      for (const mid of mids)
        await waitFor(
          () => gw.gateway.tracker.show(mid)?.events.some((e) => e.type === 'verdict') || null,
          20_000,
          `verdict of MID ${mid}`,
        );
      // the stored event stays small: the report facts travel on the bus only
      const ev = gw.gateway.tracker.show(mids[0])!.events.find((e) => e.type === 'auth.checked') as Record<
        string,
        unknown
      >;
      assert.equal(ev.detail, undefined);

      const today = new Date().toISOString().slice(0, 10);
      const api = (p: string) =>
        fetch(`http://127.0.0.1:${gw.adminPort}/api/v1${p}`, { headers: { authorization: `Bearer ${gw.token}` } }).then(
          (r) => r.json() as Promise<any>,
        );
      const list = await api('/dmarc/reports');
      assert.deepEqual(
        list.domains.map((d: any) => [d.domain, d.messages, d.failed, d.delivery]),
        [
          ['good.test', 3, 1, null],
          ['reject.test', 2, 2, null],
          ['soft.test', 1, 1, null],
        ],
      );
      assert.equal(list.day, today);
      // nothing of today goes out
      assert.equal(await gw.gateway.dmarcReports.runNow(), 0);

      // The day is over: the round sends its reports.
      await gw.gateway.store.committed();
      const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
      gw.gateway.store.db.prepare('update dmarc_rows set day = ?').run(yesterday);
      gw.gateway.store.db.prepare('update dmarc_policies set day = ?').run(yesterday);
      assert.equal(await gw.gateway.dmarcReports.runNow(), 1);
      const reportsDir = path.join(gw.dataDir, 'reports');
      const files = () => (existsSync(reportsDir) ? readdirSync(reportsDir).filter((f) => f.endsWith('.eml')) : []);
      await waitFor(() => files().length >= 2 || null, 20_000, 'two report mails');
      const mails = await Promise.all(files().map(async (f) => simpleParser(readFileSync(path.join(reportsDir, f)))));
      const to = mails.map((m) => String(m.headers.get('to')?.text ?? '')).sort();
      assert.deepEqual(to, ['agg@ext.test', 'dmarc@rua.good.test']);
      const begin = Date.parse(`${yesterday}T00:00:00Z`) / 1000;
      let xml = '';
      // the report-id names this installation too: two gateways sharing a hostname send different IDs
      const tag = installationTag(gw.gateway.store);
      assert.match(tag, /^[0-9a-f]{12}$/);
      for (const mail of mails) {
        assert.equal(
          mail.subject,
          `Report Domain: good.test Submitter: gw.test Report-ID: <${yesterday}.good.test.${tag}@gw.test>`,
        );
        assert.match(mail.from!.text, /dmarc-reports@gw\.test/);
        const att = mail.attachments.find((a) => a.contentType === 'application/gzip');
        assert.ok(att, 'the gzip attachment');
        assert.equal(att.filename, `gw.test!good.test!${begin}!${begin + 86399}.xml.gz`);
        xml = gunzipSync(att.content).toString();
      }
      const doc = parseXml(xml).feedback;
      assert.equal(doc.report_metadata.org_name, 'Breakwater Test');
      assert.equal(doc.report_metadata.email, 'dmarc-reports@gw.test');
      assert.deepEqual(doc.report_metadata.date_range, { begin: String(begin), end: String(begin + 86399) });
      assert.deepEqual(doc.policy_published, {
        domain: 'good.test',
        adkim: 's',
        aspf: 'r',
        p: 'reject',
        sp: 'reject',
        pct: '100',
      });
      assert.equal(doc.record.length, 2);
      const [passed, forwarded] = doc.record;
      assert.deepEqual(passed.row, {
        source_ip: '127.0.0.1',
        count: '2',
        policy_evaluated: { disposition: 'none', dkim: 'pass', spf: 'pass' },
      });
      assert.deepEqual(passed.identifiers, { header_from: 'good.test', envelope_from: 'good.test' });
      assert.deepEqual(passed.auth_results, {
        dkim: [{ domain: 'good.test', selector: 'ed', result: 'pass' }],
        spf: { domain: 'good.test', scope: 'mfrom', result: 'pass' },
      });
      assert.equal(forwarded.row.count, '1');
      assert.equal(forwarded.row.policy_evaluated.disposition, 'none');
      assert.equal(forwarded.row.policy_evaluated.dkim, 'fail');
      assert.equal(forwarded.row.policy_evaluated.spf, 'fail');
      assert.equal(forwarded.row.policy_evaluated.reason[0].type, 'trusted_forwarder');
      assert.match(forwarded.row.policy_evaluated.reason[0].comment, /trusted ARC sealer lists\.test/);
      assert.deepEqual(forwarded.identifiers, { header_from: 'good.test', envelope_from: 'lists.test' });
      assert.deepEqual(forwarded.auth_results.dkim, [{ domain: 'good.test', selector: 'ed', result: 'fail' }]);
      assert.equal(forwarded.auth_results.spf.domain, 'lists.test');

      // reject.test: nobody got its report (not authorized, too large), and the API says why
      const rejected = await api(`/dmarc/reports/reject.test?day=${yesterday}`);
      assert.equal(rejected.delivery.status, 'refused');
      assert.match(
        rejected.delivery.detail,
        /agg@noauth\.test: not authorized \(no v=DMARC1 record at reject\.test\._report\._dmarc\.noauth\.test\)/,
      );
      assert.match(rejected.delivery.detail, /tiny@reject\.test: the report \(\d+ bytes\) exceeds its limit of 1024/);
      assert.deepEqual(
        rejected.report.record
          .map((r: any) => [
            r.row.count,
            r.row.policy_evaluated.disposition,
            r.row.policy_evaluated.reason.map((x: any) => x.type),
          ])
          .sort(),
        [
          [1, 'quarantine', ['local_policy']],
          [1, 'reject', []],
        ],
      );
      assert.deepEqual(rejected.report.record[0].auth_results.spf, {
        domain: 'reject.test',
        scope: 'mfrom',
        result: 'fail',
      });
      assert.equal((await api(`/dmarc/reports/soft.test?day=${yesterday}`)).delivery.status, 'no-rua');
      assert.equal((await api(`/dmarc/reports/good.test?day=${yesterday}`)).delivery.status, 'sent');

      // the CLI prints the XML as sent
      writeFileSync(path.join(gw.dataDir, 'admin.addr'), `127.0.0.1:${gw.adminPort}\n`);
      const cli = await breakwaterCli(dir, ['dmarc', 'report', 'show', 'good.test', '--day', yesterday, '--xml']);
      assert.equal(cli.status, 0, cli.stderr);
      assert.equal(cli.stdout, xml);
      const listed2 = await breakwaterCli(dir, ['dmarc', 'report', 'list', '--day', yesterday]);
      assert.equal(listed2.status, 0, listed2.stderr);
      assert.match(listed2.stdout, /good\.test\s+3\s+1\s+sent/);
      assert.match(listed2.stdout, /reject\.test\s+2\s+2\s+refused/);

      // A restart sends nothing again.
      await gw.stop();
      gw = await startTestGateway(config, dir);
      assert.equal(await gw.gateway.dmarcReports.runNow(), 0);
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(files().length, 2);
    } finally {
      await gw.stop();
    }
  },
);
