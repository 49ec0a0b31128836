// Outbreak intelligence on the hub (issue 14): an attachment hash, a linked domain and a campaign that burst
// across gateways far above their baselines become rule drafts with the evidence; a domain that is steady
// across the week does not; a burst nobody flagged is only informational (level 2); above the configured
// confidence the hub publishes by itself and every gateway gets the rule. Summaries arrive through the
// real device intake; the baseline is a week of counts written through the same intake.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { loadHubConfig } from '../src/hub/config.ts';
import { runHub, type RunningHub } from '../src/hub/run.ts';
import { campaignSubject, intelKeys } from '../src/hub/intelligence.ts';
import { tempDir } from './helpers/peers.ts';
import { waitForAsync } from './helpers/rawsmtp.ts';
import { registerTestDevices, sendSummaries, testSummary } from './helpers/hub.ts';

const HASH = 'c'.repeat(64);
let hub: RunningHub;
let devices: Array<{ id: string; secret: string }>;
let mid = 1;

async function drafts(): Promise<any[]> {
  const r = await fetch(`${hub.url}/api/v1/intelligence/drafts`, { headers: { authorization: `Bearer ${hub.token}` } });
  return ((await r.json()) as any).drafts;
}

before(async () => {
  const dir = tempDir('bw-hub-intel-');
  const file = path.join(dir, 'hub.yaml');
  writeFileSync(
    file,
    YAML.stringify({
      dataDir: './data',
      listen: { host: '127.0.0.1', port: 0 },
      intelligence: {
        minGateways: 2,
        minMessages: 5,
        factor: 10,
        autoPublishConfidence: 0.75,
        informationalDrafts: true,
      },
    }),
  );
  hub = await runHub(loadHubConfig(file));
  devices = await registerTestDevices(hub.url, hub.token, ['gw-a', 'gw-b', 'gw-c']);
});

after(async () => {
  await hub?.stop();
});

test('campaign fingerprints mask numbers; keys are hashes, linked domains and the campaign', () => {
  assert.equal(campaignSubject('RE: Invoice 4411 overdue'), 'invoice # overdue');
  assert.equal(campaignSubject('Fwd: invoice 99 OVERDUE'), 'invoice # overdue');
  assert.equal(campaignSubject('hi'), null);
  const keys = intelKeys(
    testSummary(1, {
      sender: 'billing@evil-pay.test',
      subject: 'Invoice 4411 overdue',
      attachments: [{ name: 'a.zip', trueType: null, size: 1, sha256: HASH }],
      urls: ['https://pay.example-phish.com/x', 'https://www.example-phish.com/y'],
    }),
  ).map((k) => `${k.kind}:${k.key}`);
  assert.deepEqual(keys.sort(), [
    'campaign:evil-pay.test|invoice # overdue',
    'sha256:' + HASH,
    'url_domain:example-phish.com',
  ]);
});

test('bursts across gateways far above baseline become drafts with evidence; steady traffic does not', async () => {
  const now = Date.now();
  const hourAgo = (h: number) => new Date(now - h * 3_600_000).toISOString();
  // a week of steady newsletter links to news-daily.com on every gateway: ~3 an hour
  const steady = [];
  for (let h = 2; h < 168; h += 2)
    for (let k = 0; k < 6; k++)
      steady.push(testSummary(mid++, { receivedAt: hourAgo(h), urls: ['https://news-daily.com/today'] }));
  for (let i = 0; i < steady.length; i += 500)
    await sendSummaries(hub.url, devices[i % 3], `steady-${i}`, steady.slice(i, i + 500));
  // this hour: the newsletter as usual, and a burst of a new attachment held by two gateways, of links to a
  // phishing domain nobody flagged, and of a campaign
  const burst = (d: number, n: number, o: Parameters<typeof testSummary>[1]) =>
    sendSummaries(
      hub.url,
      devices[d],
      `burst-${mid}`,
      Array.from({ length: n }, () => testSummary(mid++, o)),
    );
  await burst(0, 3, { urls: ['https://news-daily.com/today'] });
  await burst(0, 4, {
    sender: 'billing@evil-pay.test',
    subject: 'Invoice 4411 overdue',
    attachments: [{ name: 'invoice.iso', trueType: null, size: 9000, sha256: HASH }],
    status: 'quarantined',
    verdict: 'quarantine',
    threatLevel: 4,
  });
  await burst(1, 4, {
    sender: 'accounts@evil-pay.test',
    subject: 'Invoice 5521 overdue',
    attachments: [{ name: 'invoice.iso', trueType: null, size: 9000, sha256: HASH }],
    threatLevel: 1,
  });
  await burst(1, 3, { urls: ['https://login.example-phish.com/x'] });
  await burst(2, 3, { urls: ['https://cdn.example-phish.com/y'] });

  const list = await waitForAsync(
    async () => {
      const d = await drafts();
      return d.length >= 3 ? d : null;
    },
    10_000,
    'three drafts',
  );
  const byKind = new Map(list.map((d: any) => [d.evidence.kind, d]));
  assert.equal(list.length, 3, JSON.stringify(list.map((d: any) => d.evidence.key)));
  assert.ok(!list.some((d: any) => d.evidence.key === 'news-daily.com'), 'steady traffic drafts nothing');

  const rules = (
    (await (
      await fetch(`${hub.url}/api/v1/rules`, { headers: { authorization: `Bearer ${hub.token}` } })
    ).json()) as any
  ).rules as any[];
  const rule = (id: string) => rules.find((r) => r.id === id);

  // the attachment: 8 messages on 2 gateways, held by one: a threat, confident enough to publish itself
  const hash: any = byKind.get('sha256');
  assert.equal(hash.evidence.messages, 8);
  assert.deepEqual(
    hash.evidence.gateways.map((g: any) => g.messages),
    [4, 4],
  );
  assert.equal(hash.evidence.flagged, 4);
  assert.deepEqual(rule(hash.ruleId).condition, { attachment: { sha256: [HASH] } });
  assert.equal(rule(hash.ruleId).level, 4);
  assert.ok(hash.confidence >= 0.75, String(hash.confidence));
  assert.equal(rule(hash.ruleId).status, 'published', 'published by the hub above the configured confidence');
  assert.ok(hub.rules.latest()!.version >= 1);

  // the campaign: the masked subject and the sender's domain; held mail among it makes it a threat
  const campaign: any = byKind.get('campaign');
  assert.equal(campaign.evidence.key, 'evil-pay.test|invoice # overdue');
  assert.deepEqual(rule(campaign.ruleId).condition, {
    all: [{ sender: ['.evil-pay.test'] }, { subject: ['invoice'] }],
  });

  // links nobody flagged: only an informational level 2 draft, never published on its own
  const links: any = byKind.get('url_domain');
  assert.equal(links.evidence.key, 'example-phish.com');
  assert.equal(rule(links.ruleId).level, 2);
  assert.equal(rule(links.ruleId).status, 'draft');
  assert.match(rule(links.ruleId).description, /links to example-phish\.com on 2 gateways, 6 messages/);

  // the same burst again drafts nothing new
  await burst(2, 5, { urls: ['https://login.example-phish.com/x'] });
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal((await drafts()).length, 3);
});
