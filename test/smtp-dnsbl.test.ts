// DNS blocklists and allowlists as HAT conditions (issue 15), against a real DNS server (dnsmasq): a
// listed client gets its group's action, a return code outside the configured ones does not match, an
// allowlist listing wins over a blocklist one, answers are cached, and a list that does not answer is
// "not listed" (fail open, logged). The tests' client is 127.0.0.1: the query is 1.0.0.127.<zone>.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import dgram from 'node:dgram';
import path from 'node:path';
import { startTestGateway, testConfig } from './helpers/gateway.ts';
import { RawSmtp, sendMessage } from './helpers/rawsmtp.ts';
import { hasDnsmasq, startDns, type TestDns } from './helpers/dns.ts';
import { tempDir, waitFor } from './helpers/peers.ts';
import { dnsListQueryName, listedCodes } from '../src/smtp/dnsbl.ts';

const skip = hasDnsmasq() ? false : 'dnsmasq is not installed (run .ci/run)';

const RECORDS = {
  a: [
    ['1.0.0.127.bl.test', '127.0.0.2'],
    ['1.0.0.127.codes.test', '127.0.0.9'],
    ['1.0.0.127.wl.test', '127.0.0.5'],
  ] as Array<[string, string]>,
  localZones: ['test'],
};

function listener(name: string, hat: unknown[]): Record<string, unknown> {
  return { name, host: '127.0.0.1', port: 0, direction: 'incoming', acceptDomains: ['dst.test'], hat };
}

const rest = (action: string) => ({ name: 'rest', match: ['ALL'], action, earlyTalkerDelay: '0ms' });

function config(dnsServer: string, timeout = '2s'): Record<string, unknown> {
  return testConfig({
    routes: { '*': [`file:${tempDir('bw-dnsbl-out-')}`] },
    dns: { servers: [dnsServer], timeout, tries: 1 },
    listeners: [
      listener('bl', [
        { name: 'blocked', match: [{ dnsbl: 'bl.test', returnCodes: ['127.0.0.2'] }], action: 'reject' },
        rest('accept'),
      ]),
      listener('codes', [
        {
          name: 'blocked',
          match: [{ dnsbl: 'codes.test', returnCodes: ['127.0.0.2', '127.0.0.4'] }],
          action: 'reject',
        },
        rest('accept'),
      ]),
      listener('wl', [
        { name: 'blocked', match: [{ dnsbl: 'bl.test' }], action: 'reject' },
        { name: 'trusted', match: [{ dnswl: 'wl.test' }], action: 'accept', earlyTalkerDelay: '0ms' },
        rest('tempfail'),
      ]),
    ],
  });
}

let dns: TestDns;
let gw: Awaited<ReturnType<typeof startTestGateway>>;

const mailLog = (g = gw) => readFileSync(path.join(g.dataDir, 'logs', 'mail.log'), 'utf8');

async function greeting(port: number): Promise<string> {
  const c = await RawSmtp.open(port);
  try {
    return await c.reply(10_000);
  } finally {
    c.close();
  }
}

before(async () => {
  if (skip) return;
  dns = await startDns(RECORDS);
  gw = await startTestGateway(config(dns.server));
});

after(async () => {
  await gw?.stop();
  await dns?.stop();
});

test('RFC 5782 query names: reversed IPv4 octets, IPv6 nibbles; 127.255.255.x is not a listing', () => {
  assert.equal(dnsListQueryName('127.0.0.1', 'bl.test'), '1.0.0.127.bl.test');
  assert.equal(dnsListQueryName('::ffff:192.0.2.99', 'bl.test'), '99.2.0.192.bl.test');
  assert.equal(
    dnsListQueryName('2001:db8:1:2::3', 'bl.test'),
    '3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.test',
  );
  assert.equal(dnsListQueryName('::1', 'x.test'), `1.${'0.'.repeat(31)}x.test`);
  assert.equal(dnsListQueryName('not-an-ip', 'x.test'), null);
  assert.deepEqual(listedCodes(['127.0.0.2', '127.255.255.254', '10.0.0.1'], undefined), ['127.0.0.2']);
  assert.deepEqual(listedCodes(['127.0.0.2', '127.0.0.4'], ['127.0.0.4']), ['127.0.0.4']);
});

test("a client listed on a blocklist gets its group's action (554 at the greeting)", { skip }, async () => {
  assert.match(await greeting(gw.port('bl')), /^554 /);
  await waitFor(
    () =>
      /interface bl address 127\.0\.0\.1 .*sender group blocked action reject \(dnsbl bl\.test 127\.0\.0\.2\) listed: dnsbl bl\.test 127\.0\.0\.2/.test(
        mailLog(),
      ),
    5000,
    'connection log line',
  );
  const metrics = await gw.gateway.metrics.registry.metrics();
  assert.match(metrics, /breakwater_smtp_connections_total\{listener="bl",sender_group="blocked",action="reject"\} 1/);
  assert.match(metrics, /breakwater_dns_list_listings_total\{list="dnsbl bl.test"\} 1/);
});

test('a return code outside returnCodes does not match; the listing is in tracking', { skip }, async () => {
  const sent = await sendMessage(gw.port('codes'), 's@src.test', ['bob@dst.test'], 'Subject: codes\r\n\r\nx\r\n');
  assert.ok(sent.mid, sent.reply);
  const rec = await waitFor(() => gw.gateway.tracker.show(sent.mid!), 5000, 'tracking record');
  const accepted = rec.events.find((e: { type: string }) => e.type === 'ingress.accepted') as any;
  assert.equal(accepted.senderGroup, 'rest');
  assert.deepEqual(accepted.reputation, ['dnsbl codes.test 127.0.0.9']);
});

test('an allowlist listing wins over a blocklist listing, wherever the groups stand', { skip }, async () => {
  const sent = await sendMessage(gw.port('wl'), 's@src.test', ['bob@dst.test'], 'Subject: wl\r\n\r\nx\r\n');
  assert.ok(sent.mid, sent.reply);
  const rec = await waitFor(() => gw.gateway.tracker.show(sent.mid!), 5000, 'tracking record');
  const accepted = rec.events.find((e: { type: string }) => e.type === 'ingress.accepted') as any;
  assert.equal(accepted.senderGroup, 'trusted');
  assert.deepEqual(accepted.reputation, ['dnsbl bl.test 127.0.0.2', 'dnswl wl.test 127.0.0.5']);
});

test('answers are cached: the listing holds while the DNS server has forgotten it', { skip }, async () => {
  await dns.reload({ a: [], localZones: ['test'] });
  try {
    assert.match(await greeting(gw.port('bl')), /^554 /);
  } finally {
    await dns.reload(RECORDS);
  }
});

test('a DNS list that does not answer in time does not match (fail open, logged)', { skip }, async () => {
  // a DNS "server" that never answers
  const hole = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => hole.bind(0, '127.0.0.1', () => resolve()));
  const silent = await startTestGateway(config(`127.0.0.1:${hole.address().port}`, '300ms'));
  try {
    const started = Date.now();
    const sent = await sendMessage(silent.port('bl'), 's@src.test', ['bob@dst.test'], 'Subject: t\r\n\r\nx\r\n');
    assert.ok(sent.mid, sent.reply);
    assert.ok(Date.now() - started < 5000, 'the session is held only for the DNS timeout');
    await waitFor(
      () => /ICID \d+ DNS list dnsbl bl\.test: no answer within 300 ms \(not listed: fail open\)/.test(mailLog(silent)),
      5000,
      'timeout log line',
    );
    assert.match(mailLog(silent), /interface bl address 127\.0\.0\.1 .*sender group rest action accept/);
  } finally {
    await silent.stop();
    hole.close();
  }
});
