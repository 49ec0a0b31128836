// Casebooks on the hub (issue 14): an investigation saved with notes, opened again (investigated anew, so
// later sightings show), changed, exported as a STIX 2.1 bundle and deleted. The bundle is checked against
// the STIX 2.1 rules for the objects it holds: identifiers, required properties, timestamps, patterns,
// deterministic cyber-observable ids (recomputed with Python's own uuid5), and every reference resolving.
// (The Python stix2 library the issue names cannot be installed here: PyPI is not reachable and Debian
// does not package it.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { loadHubConfig } from '../src/hub/config.ts';
import { runHub, type RunningHub } from '../src/hub/run.ts';
import { run, tempDir } from './helpers/peers.ts';
import { hubJson, registerTestDevices, sendSummaries, testSummary } from './helpers/hub.ts';

const HASH = 'd'.repeat(64);
let hub: RunningHub;
let devices: Array<{ id: string; secret: string }>;

const call = (method: string, route: string, body?: unknown) => hubJson(hub.url, hub.token, method, route, body);

const campaign = (mid: number) =>
  testSummary(mid, {
    sender: "o'brien@evil-pay.test",
    subject: 'Your salary slip',
    senderIp: '203.0.113.9',
    attachments: [{ name: 'slip.html', trueType: 'text/html', size: 900, sha256: HASH }],
    status: mid % 2 ? 'quarantined' : 'delivered',
    threatLevel: mid % 2 ? 4 : 0,
  });

before(async () => {
  const dir = tempDir('bw-hub-casebooks-');
  const file = path.join(dir, 'hub.yaml');
  writeFileSync(file, YAML.stringify({ dataDir: './data', listen: { host: '127.0.0.1', port: 0 } }));
  hub = await runHub(loadHubConfig(file));
  devices = await registerTestDevices(hub.url, hub.token, ['gw-a', 'gw-b']);
  await sendSummaries(hub.url, devices[0], 'a1', [campaign(1), campaign(2)]);
  await sendSummaries(hub.url, devices[1], 'b1', [campaign(3)]);
});

after(async () => {
  await hub?.stop();
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[45][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
const SDO_REQUIRED: Record<string, string[]> = {
  identity: ['name'],
  indicator: ['pattern', 'pattern_type', 'valid_from'],
  'observed-data': ['first_observed', 'last_observed', 'number_observed', 'object_refs'],
  sighting: ['sighting_of_ref'],
  relationship: ['relationship_type', 'source_ref', 'target_ref'],
  note: ['content', 'object_refs'],
};
const SCO_TYPES = new Set(['email-addr', 'ipv4-addr', 'ipv6-addr', 'domain-name', 'url', 'file', 'email-message']);

/** Every STIX 2.1 rule the bundle's objects are subject to that can be checked without a library. */
function stixErrors(bundle: any): string[] {
  const errors: string[] = [];
  if (bundle.type !== 'bundle' || !/^bundle--/.test(bundle.id)) errors.push('not a bundle');
  const ids = new Set<string>();
  for (const o of bundle.objects) {
    const where = `${o.type} ${o.id}`;
    const [type, uuid] = String(o.id).split('--');
    if (type !== o.type || !UUID.test(uuid ?? '')) errors.push(`${where}: id is not type--uuid`);
    if (ids.has(o.id)) errors.push(`${where}: duplicate id`);
    ids.add(o.id);
    if (SCO_TYPES.has(o.type)) {
      if (uuid[14] !== '5') errors.push(`${where}: a cyber-observable id is a UUIDv5`);
      continue;
    }
    if (o.spec_version !== '2.1') errors.push(`${where}: spec_version`);
    for (const k of ['created', 'modified']) if (!TIMESTAMP.test(o[k] ?? '')) errors.push(`${where}: ${k}`);
    const required = SDO_REQUIRED[o.type];
    if (!required) errors.push(`${where}: unexpected type`);
    for (const k of required ?? []) if (o[k] === undefined) errors.push(`${where}: ${k} is required`);
    if (o.type === 'indicator') {
      if (o.pattern_type !== 'stix') errors.push(`${where}: pattern_type`);
      if (!/^\[[a-z0-9-]+:[a-z_]+(?:\.'[A-Z0-9-]+')? = '(?:[^'\\]|\\.)*'\]$/.test(o.pattern))
        errors.push(`${where}: pattern ${o.pattern}`);
      if (!TIMESTAMP.test(o.valid_from)) errors.push(`${where}: valid_from`);
    }
    if (o.type === 'observed-data' && !(o.number_observed >= 1 && o.number_observed <= 999_999_999))
      errors.push(`${where}: number_observed`);
    if (o.type === 'sighting' && o.count !== undefined && !(o.count >= 0 && o.count <= 999_999_999))
      errors.push(`${where}: count`);
  }
  for (const o of bundle.objects)
    for (const [k, v] of Object.entries<any>(o)) {
      if (!/_refs?$/.test(k)) continue;
      for (const ref of Array.isArray(v) ? v : [v]) if (!ids.has(ref)) errors.push(`${o.id}: ${k} ${ref} unresolved`);
    }
  return errors;
}

test('a casebook saves an investigation, opens it again with new sightings, and exports a valid STIX 2.1 bundle', async () => {
  const made = await call('POST', '/api/v1/casebooks', {
    title: 'Payroll campaign',
    notes: 'Reported by finance on Monday.',
    text: `o'brien@evil-pay.test\n${HASH}\nip: 203.0.113.9`,
  });
  assert.equal(made.status, 200, JSON.stringify(made.json));
  assert.equal(made.json.observables.length, 3);
  const id = made.json.id as string;
  // a later sighting shows when the casebook is opened again
  await sendSummaries(hub.url, devices[1], 'b2', [campaign(4)]);
  const opened = await call('GET', `/api/v1/casebooks/${id}`);
  const sender = opened.json.investigation.observables.find((o: any) => o.type === 'email');
  assert.equal(sender.sightings.count, 4);
  assert.equal(sender.judgement, 'malicious');
  const patched = await call('PATCH', `/api/v1/casebooks/${id}`, { notes: 'Blocked on every gateway.' });
  assert.equal(patched.json.notes, 'Blocked on every gateway.');
  assert.equal((await call('GET', '/api/v1/casebooks')).json.casebooks[0].id, id);

  const exported = await call('GET', `/api/v1/casebooks/${id}/stix`);
  assert.match(exported.headers.get('content-disposition') ?? '', /attachment; filename="casebook-.*\.stix\.json"/);
  const bundle = exported.json;
  assert.deepEqual(stixErrors(bundle), []);
  const byType = (t: string) => bundle.objects.filter((o: any) => o.type === t);
  const indicators = byType('indicator');
  assert.deepEqual(indicators.map((i: any) => i.pattern).sort(), [
    `[email-addr:value = 'o\\'brien@evil-pay.test']`,
    `[file:hashes.'SHA-256' = '${HASH}']`,
    `[ipv4-addr:value = '203.0.113.9']`,
  ]);
  assert.ok(indicators.every((i: any) => i.indicator_types[0] === 'malicious-activity'));
  // sightings: one per indicator and gateway, where_sighted_refs naming the gateway's identity
  const gateways = new Map(byType('identity').map((i: any) => [i.id, i.name]));
  const sightings = byType('sighting');
  assert.equal(sightings.length, 6);
  const senderIndicator = indicators.find((i: any) => i.pattern.startsWith('[email-addr'));
  assert.deepEqual(
    sightings
      .filter((s: any) => s.sighting_of_ref === senderIndicator.id)
      .map((s: any) => `${gateways.get(s.where_sighted_refs[0])}:${s.count}`)
      .sort(),
    ['gw-a:2', 'gw-b:2'],
  );
  // the graph's links between the casebook's observables become relationships
  assert.ok(byType('relationship').some((r: any) => r.description.startsWith('sent from')));
  assert.equal(byType('note')[0].content, 'Blocked on every gateway.');
  // the cyber-observable ids are STIX's deterministic ones: Python's uuid5 agrees
  const email = byType('email-addr')[0];
  const py = await run(
    'python3',
    ['-c', `import uuid,sys; print(uuid.uuid5(uuid.UUID('00abedb4-aa42-466c-9c01-fed23315a9b7'), sys.stdin.read()))`],
    JSON.stringify({ value: email.value }),
  );
  assert.equal(email.id, `email-addr--${py.out.trim()}`);

  // bad input: clear codes; delete
  const bad = await call('POST', '/api/v1/casebooks', { title: 'x', text: 'md5: 0123' });
  assert.equal(bad.json.error.code, 'invalid_parameter');
  assert.equal((await call('GET', '/api/v1/casebooks/nope')).json.error.code, 'casebook_not_found');
  assert.equal((await call('DELETE', `/api/v1/casebooks/${id}`)).json.deleted, true);
  assert.equal((await call('GET', `/api/v1/casebooks/${id}`)).status, 404);
});
