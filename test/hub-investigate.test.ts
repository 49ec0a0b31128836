// Investigation on the hub (issue 14): observables found in pasted text (each malformed item refused on
// its own, the rest investigated), sightings across gateways with counts per gateway, first and last
// seen, roles and a judgement from the gateways' verdicts, the messages and the relationship graph.
// Summaries arrive through the real device intake of registered devices; the CLI answers the same.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { loadHubConfig } from '../src/hub/config.ts';
import { runHub, type RunningHub } from '../src/hub/run.ts';
import { parseObservables, checkObservable } from '../src/hub/parse-observables.ts';
import type { MessageSummary } from '../src/xdr/summary.ts';
import { run, tempDir } from './helpers/peers.ts';
import { registerTestDevices, sendSummaries, testSummary } from './helpers/hub.ts';

const SHA = 'a'.repeat(63) + 'b';

test('observables are found in pasted text by shape and by `type: value` lines; bad items are refused one by one', () => {
  const text = [
    'Alert 4711: phishing campaign',
    'From: "Payroll" <payroll@evil-pay.test>',
    'To: bob@dst.test, "Carol" <carol@dst.test>',
    'Subject: Your salary slip',
    'Message-ID: <abc.123@evil-pay.test>',
    `seen from 203.0.113.9 and 2001:db8::7, attachment ${SHA}`,
    'click https://login.evil-pay.test/verify?u=1). Also check MID 42',
    'md5: d41d8cd98f00b204e9800998ecf8427e',
    'ip: 999.1.1.1',
    'invoice.pdf came from mail.example.com',
  ].join('\n');
  const { observables, errors } = parseObservables(text);
  const got = observables.map((o) => `${o.type}:${o.value}`);
  for (const want of [
    'email:payroll@evil-pay.test',
    'email:bob@dst.test',
    'email:carol@dst.test',
    'email_subject:your salary slip',
    'email_messageid:abc.123@evil-pay.test',
    'ip:203.0.113.9',
    'ip:2001:db8::7',
    `sha256:${SHA}`,
    'url:https://login.evil-pay.test/verify?u=1',
    'cisco_mid:42',
    'domain:mail.example.com',
  ])
    assert.ok(got.includes(want), `${want} in ${got.join(', ')}`);
  assert.ok(!got.some((g) => g.includes('invoice.pdf')), 'a file name is not a domain');
  assert.deepEqual(
    errors.map((e) => e.input),
    ['md5: d41d8cd98f00b204e9800998ecf8427e', 'ip: 999.1.1.1'],
  );
  assert.match(errors[0].error, /sha256/);
  // duplicates count once; explicit types are checked
  assert.equal(parseObservables('a@b.test\nemail: A@B.test').observables.length, 1);
  assert.deepEqual(checkObservable('colour', 'red'), {
    error:
      'unknown observable type "colour" (one of ip, domain, email, email_subject, email_messageid, cisco_mid, sha256, file_name, url)',
  });
  assert.ok('error' in checkObservable('email', 'not an address'));
  assert.ok('error' in checkObservable('url', 'ftp://x.test/'));
});

let hub: RunningHub;
const devices: Array<{ id: string; secret: string }> = [];

async function hubCall(method: string, route: string, body?: unknown, auth = `Bearer ${hub.token}`) {
  const r = await fetch(hub.url + route, {
    method,
    headers: { authorization: auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, json: (await r.json()) as any };
}

/** A message of the payroll campaign (or, with `o`, another). */
function summary(mid: number, o: Partial<MessageSummary>): MessageSummary {
  return testSummary(mid, {
    receivedAt: new Date(Date.UTC(2026, 11, 7, 10, mid)).toISOString(),
    sender: 'payroll@evil-pay.test',
    headerFrom: '"Payroll" <payroll@evil-pay.test>',
    subject: 'Your salary slip',
    messageId: `<m${mid}@evil-pay.test>`,
    senderIp: '203.0.113.9',
    helo: 'evil-pay.test',
    attachments: [{ name: 'slip.html', trueType: 'text/html', size: 900, sha256: SHA }],
    urls: ['https://login.evil-pay.test/verify'],
    ...o,
  });
}

before(async () => {
  const dir = tempDir('bw-hub-investigate-');
  const file = path.join(dir, 'hub.yaml');
  writeFileSync(file, YAML.stringify({ dataDir: './data', listen: { host: '127.0.0.1', port: 0 } }));
  hub = await runHub(loadHubConfig(file));
  devices.push(...(await registerTestDevices(hub.url, hub.token, ['gw-a', 'gw-b', 'gw-c'])));
  const send = (i: number, list: MessageSummary[]) => sendSummaries(hub.url, devices[i], `b-${i}`, list);
  // the campaign reaches A twice (one held at level 4) and B once; C sees only unrelated mail
  await send(0, [
    summary(1, {}),
    summary(2, {
      recipients: [
        { address: 'carol@dst.test', status: 'quarantined', lastReply: null },
        { address: 'dan@dst.test', status: 'quarantined', lastReply: null },
      ],
      status: 'quarantined',
      verdict: 'quarantine',
      threatLevel: 4,
      rules: ['OUTBREAK_0000007'],
    }),
  ]);
  await send(1, [summary(5, { recipients: [{ address: 'erin@other.test', status: 'delivered', lastReply: null }] })]);
  await send(2, [
    summary(9, {
      sender: 'news@shop.test',
      headerFrom: null,
      senderIp: '198.51.100.1',
      subject: 'Weekly offers',
      attachments: [],
      urls: [],
      recipients: [{ address: 'payroll@evil-pay.test', status: 'delivered', lastReply: null }],
    }),
  ]);
});

after(async () => {
  await hub?.stop();
});

test('an investigation answers sightings per gateway, judgements, roles, messages and the relationship graph', async () => {
  const r = await hubCall('POST', '/api/v1/investigate', {
    text: `payroll@evil-pay.test\n${SHA}\nmd5: d41d8cd98f00b204e9800998ecf8427e\nnobody@nowhere.test`,
  });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const byKey = new Map(r.json.observables.map((o: any) => [`${o.type}:${o.value}`, o]));
  const sender: any = byKey.get('email:payroll@evil-pay.test');
  assert.equal(sender.sightings.count, 4, 'three campaign messages and one to the address');
  assert.deepEqual(
    sender.sightings.gateways.map((g: any) => [g.name, g.count]),
    [
      ['gw-a', 2],
      ['gw-b', 1],
      ['gw-c', 1],
    ],
  );
  assert.deepEqual(sender.roles, { sender: 3, recipient: 1, content: 0 });
  assert.equal(sender.judgement, 'malicious');
  assert.equal(sender.maxThreatLevel, 4);
  assert.deepEqual(sender.rules, ['OUTBREAK_0000007']);
  assert.equal(sender.sightings.firstSeen, new Date(Date.UTC(2026, 11, 7, 10, 1)).toISOString());
  const hash: any = byKey.get(`sha256:${SHA}`);
  assert.equal(hash.sightings.count, 3);
  assert.equal(hash.roles.content, 3);
  const nobody: any = byKey.get('email:nobody@nowhere.test');
  assert.equal(nobody.judgement, 'not seen');
  assert.equal(nobody.sightings.count, 0);
  assert.deepEqual(
    r.json.errors.map((e: any) => e.input),
    ['md5: d41d8cd98f00b204e9800998ecf8427e'],
  );
  // every message once, newest first, with what it matched
  assert.deepEqual(
    r.json.messages.map((m: any) => [m.gateway, m.summary.mid]),
    [
      ['gw-c', 9],
      ['gw-b', 5],
      ['gw-a', 2],
      ['gw-a', 1],
    ],
  );
  assert.deepEqual(r.json.messages[2].matched.sort(), [`email:payroll@evil-pay.test`, `sha256:${SHA}`]);
  // the graph: who sent to whom, from where, with what
  const edges = new Set(r.json.graph.edges.map((e: any) => `${e.source} ${e.kind} ${e.target}`));
  for (const e of [
    'email:payroll@evil-pay.test sent to email:carol@dst.test',
    'email:payroll@evil-pay.test sent to email:erin@other.test',
    'email:payroll@evil-pay.test sent from ip:203.0.113.9',
    `email:payroll@evil-pay.test attached sha256:${SHA}`,
    'email:payroll@evil-pay.test linked domain:evil-pay.test',
    'email:news@shop.test sent to email:payroll@evil-pay.test',
  ])
    assert.ok(edges.has(e), `${e} in ${[...edges].join('; ')}`);
  const payroll = r.json.graph.nodes.find((n: any) => n.id === 'email:payroll@evil-pay.test');
  assert.equal(payroll.investigated, true);
  assert.equal(payroll.maxThreatLevel, 4);
  // nothing to investigate, or a malformed body: clear errors
  assert.equal((await hubCall('POST', '/api/v1/investigate', { text: '  ' })).json.error.code, 'invalid_parameter');
  const list = await hubCall('POST', '/api/v1/investigate', {
    observables: [
      { type: 'ip', value: '203.0.113.9' },
      { type: 'ip', value: 'not-an-ip' },
    ],
  });
  assert.equal(list.json.observables[0].sightings.count, 3);
  assert.equal(list.json.errors[0].input, 'ip: not-an-ip');
});

test('`breakwater hub investigate` answers the same from the command line', async () => {
  const cfg = path.join(path.dirname(hub.store.db.location()!), '..', 'hub.yaml');
  const cli = await run(process.execPath, [
    path.resolve(import.meta.dirname, '../bin/breakwater.js'),
    'hub',
    'investigate',
    'email:payroll@evil-pay.test',
    'MID 5',
    '--config',
    cfg,
    '--json',
  ]);
  assert.equal(cli.code, 0, cli.out);
  const r = JSON.parse(cli.out);
  assert.deepEqual(
    r.observables.map((o: any) => [o.type, o.value, o.sightings.count]),
    [
      ['email', 'payroll@evil-pay.test', 4],
      ['cisco_mid', '5', 1],
    ],
  );
  const human = await run(process.execPath, [
    path.resolve(import.meta.dirname, '../bin/breakwater.js'),
    'hub',
    'investigate',
    'ip:203.0.113.9',
    '--config',
    cfg,
  ]);
  assert.match(human.out, /ip\s+203\.0\.113\.9\s+malicious\s+3\s+gw-a \(2\), gw-b \(1\)/);
});

test('reports across gateways: per gateway and in total, over time, by level, top rules and threat senders', async () => {
  const r = await hubCall('GET', '/api/v1/reports?since=2026-12-07T00:00:00Z&until=2026-12-08T00:00:00Z&top=5');
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.json.bucketSeconds, 3600);
  assert.equal(r.json.buckets.length, 24);
  assert.deepEqual(r.json.total, { messages: 4, statuses: { delivered: 3, quarantined: 1 }, threats: 1 });
  assert.deepEqual(
    r.json.gateways.map((g: any) => [g.name, g.messages, g.threats]),
    [
      ['gw-a', 2, 1],
      ['gw-b', 1, 0],
      ['gw-c', 1, 0],
    ],
  );
  assert.deepEqual(r.json.buckets[10].statuses, { delivered: 3, quarantined: 1 });
  assert.deepEqual(r.json.topRules, [{ rule: 'OUTBREAK_0000007', messages: 1, gateways: 1 }]);
  assert.deepEqual(r.json.topThreatSenders, [{ sender: 'payroll@evil-pay.test', messages: 1, gateways: 1 }]);
  assert.deepEqual(
    r.json.threatLevels.map((l: any) => [l.level, l.messages]),
    [
      [0, 3],
      [4, 1],
    ],
  );
  assert.equal((await hubCall('GET', '/api/v1/reports?since=tomorrow')).json.error.code, 'invalid_parameter');
});
