import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HostAccessTable } from '../src/smtp/hat.ts';
import { splitByPolicy } from '../src/policy/policies.ts';
import { routeFor } from '../src/delivery/routes.ts';
import { addressMatches } from '../src/smtp/address.ts';
import { validateConfig } from '../src/config/load.ts';
import { startTestGateway, testConfig } from './helpers/gateway.ts';
import { hasBinary, startSmtpSink, swaks, waitFor } from './helpers/peers.ts';

function listener(hat: unknown[]) {
  const v = validateConfig(
    testConfig({ listeners: [{ name: 'in', port: 0, direction: 'incoming', acceptDomains: ['x.test'], hat }] }),
  );
  assert.ok(v.config, JSON.stringify(v.errors));
  return v.config.listeners[0];
}

test('HAT: first matching group wins; IPv4-mapped IPv6 addresses match IPv4 CIDRs', async () => {
  const hat = new HostAccessTable(
    listener([
      { name: 'blocked', match: ['10.1.2.3'], action: 'reject' },
      { name: 'internal', match: ['10.0.0.0/8', 'fd00::/8'], action: 'accept' },
      { name: 'rest', match: ['ALL'], action: 'tempfail' },
    ]),
  );
  assert.equal(hat.classifySync('10.1.2.3')!.name, 'blocked');
  assert.equal(hat.classifySync('10.9.9.9')!.name, 'internal');
  assert.equal(hat.classifySync('::ffff:10.9.9.9')!.name, 'internal');
  assert.equal(hat.classifySync('fd00::1')!.name, 'internal');
  assert.equal(hat.classifySync('192.0.2.1')!.action, 'tempfail');
});

test('HAT: a slow reverse DNS answer never holds the session longer than the bound', async () => {
  const never = () => new Promise<string[]>(() => {});
  const hat = new HostAccessTable(
    listener([
      { name: 'partners', match: ['.partner.example'], action: 'accept' },
      { name: 'rest', match: ['ALL'], action: 'reject' },
    ]),
    never,
    200,
  );
  assert.equal(hat.classifySync('198.51.100.7'), null, 'needs DNS');
  const t0 = Date.now();
  const { match } = await hat.classify('198.51.100.7');
  assert.ok(Date.now() - t0 < 1000);
  assert.equal(match.name, 'rest');
  const named = new HostAccessTable(
    listener([
      { name: 'partners', match: ['.partner.example'], action: 'accept' },
      { name: 'rest', match: ['ALL'], action: 'reject' },
    ]),
    async () => ['mx1.partner.example'],
  );
  const r = await named.classify('198.51.100.8');
  assert.equal(r.match.name, 'partners');
  assert.equal(r.rdns, 'mx1.partner.example');
});

test('HAT: a PTR with control characters is ignored', async () => {
  const hat = new HostAccessTable(listener([{ name: 'p', match: ['.evil.example'], action: 'accept' }]), async () => [
    'x.evil.example\r\nInjected: yes',
  ]);
  const r = await hat.classify('203.0.113.9');
  assert.equal(r.rdns, null);
  assert.equal(r.match.name, '(default)');
});

test('access table entries: address, domain, subdomain wildcard, @domain', () => {
  assert.ok(addressMatches('Bob@X.test', ['x.test']));
  assert.ok(!addressMatches('bob@sub.x.test', ['x.test']));
  assert.ok(addressMatches('bob@sub.x.test', ['.x.test']));
  assert.ok(!addressMatches('bob@evilx.test', ['.x.test']));
  assert.ok(addressMatches('ceo@x.test', ['ceo@x.test']));
  assert.ok(!addressMatches('cfo@x.test', ['ceo@x.test']));
  assert.ok(addressMatches('a@x.test', ['@x.test']));
});

test('policy split groups recipients by the first matching policy, in policy order', () => {
  const v = validateConfig(
    testConfig({
      policies: {
        incoming: [
          { name: 'executives', match: ['ceo@dst.test', 'cfo@dst.test'] },
          { name: 'engineering', match: ['.eng.dst.test'] },
          { name: 'default' },
        ],
        outgoing: [{ name: 'sales', match: ['sales.example.test'] }, { name: 'default' }],
      },
    }),
  );
  const cfg = v.config!;
  assert.deepEqual(
    splitByPolicy(cfg, 'incoming', 's@x.test', ['bob@dst.test', 'ceo@dst.test', 'al@ci.eng.dst.test', 'cfo@dst.test']),
    [
      { policy: 'executives', rids: [1, 3] },
      { policy: 'engineering', rids: [2] },
      { policy: 'default', rids: [0] },
    ],
  );
  assert.deepEqual(splitByPolicy(cfg, 'outgoing', 'rep@sales.example.test', ['a@b.test', 'c@d.test']), [
    { policy: 'sales', rids: [0, 1] },
  ]);
});

test('routes: exact domain, parent domain, then "*"', () => {
  const cfg = validateConfig(
    testConfig({ routes: { 'a.test': ['smtp://10.0.0.1:25', 'smtp://10.0.0.2:2525'], '*': ['mx'] } }),
  ).config!;
  assert.deepEqual(routeFor(cfg, 'x@a.test').targets, [
    { kind: 'smtp', host: '10.0.0.1', port: 25 },
    { kind: 'smtp', host: '10.0.0.2', port: 2525 },
  ]);
  assert.equal(routeFor(cfg, 'x@sub.a.test').targets[0].kind, 'smtp');
  assert.equal(routeFor(cfg, 'x@other.test').key, 'mx|other.test');
});

const skip =
  hasBinary('smtp-sink') && hasBinary('swaks') ? false : 'smtp-sink and swaks are not installed (run .ci/run)';

test('a message for recipients in two policies becomes two copies with their own MIDs', { skip }, async () => {
  const sink = await startSmtpSink({ dump: true });
  const gw = await startTestGateway(
    testConfig({
      routes: { '*': [`smtp://127.0.0.1:${sink.port}`] },
      policies: { incoming: [{ name: 'executives', match: ['ceo@dst.test'] }, { name: 'default' }] },
    }),
  );
  try {
    const r = await swaks([
      '-s',
      `127.0.0.1:${gw.port('incoming')}`,
      '-f',
      's@src.test',
      '-t',
      'bob@dst.test,ceo@dst.test',
      '--header',
      'Subject: split me',
    ]);
    const mid = Number(/queued as MID (\d+)/.exec(r.out)?.[1]);
    await waitFor(
      () => sink.messages().filter((m) => m.body.includes('Subject: split me')).length === 2,
      10_000,
      'two deliveries',
    );
    const parent = await waitFor(
      () => {
        const t = gw.gateway.tracker.show(mid);
        return t?.status === 'splintered' ? t : null;
      },
      5000,
      'parent record',
    );
    const split = parent.events.find((e) => e.type === 'policy.split') as any;
    assert.equal(split.children.length, 2);
    const children = split.children.map((c: number) => gw.gateway.tracker.show(c)!);
    assert.deepEqual(
      children.map((c: any) => [c.policy, c.parentMid, c.recipients.map((x: any) => x.address)]),
      [
        ['executives', mid, ['ceo@dst.test']],
        ['default', mid, ['bob@dst.test']],
      ],
    );
    await waitFor(
      () => split.children.every((c: number) => gw.gateway.tracker.show(c)!.status === 'delivered'),
      5000,
      'children delivered',
    );
    assert.deepEqual(
      sink
        .messages()
        .filter((m) => m.body.includes('Subject: split me'))
        .map((m) => m.rcptTo[0])
        .sort(),
      ['bob@dst.test', 'ceo@dst.test'],
    );
  } finally {
    await gw.stop();
    await sink.stop();
  }
});
