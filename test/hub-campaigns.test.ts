// Detection quality of the hub's outbreak intelligence (issue 14, scripts/hub-campaigns.ts) on a small,
// deterministic part of ../shared/corpus: 250 phishing and 250 ham messages (a contiguous run of file
// numbers from the middle of each collection, so campaigns stay whole), replayed over three gateways
// through the hub's own intake and intelligence at its default settings. Bursts of a campaign on three
// gateways must become drafts that catch the campaign and match the messages they were made from; no draft
// may match ham. Skipped, with the reason, when the corpus is absent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  clusterCampaigns,
  findCorpus,
  loadSample,
  minhash,
  runHubCampaigns,
  type RunResult,
  type Sample,
} from '../scripts/hub-campaigns.ts';

const corpus = findCorpus(path.resolve(import.meta.dirname, '../../shared/corpus'));
let run: Promise<RunResult | null> | null = null;
// one replay for every test below (parsing is most of the time)
const replayed = (): Promise<RunResult | null> =>
  (run ??= runHubCampaigns({ corpus: corpus.dir, limit: 250, split: false }));

test('an absent corpus is skipped with a clear message, not an error', async () => {
  const reasons: string[] = [];
  const r = await runHubCampaigns({ corpus: '/nonexistent/corpus', skip: (why) => reasons.push(why) });
  assert.equal(r, null);
  assert.equal(reasons.length, 1);
  assert.match(reasons[0], /corpus not found at \/nonexistent\/corpus \(expected manifest\.tsv\)/);
});

test('campaigns are near-duplicate texts or one payload, never merely the same sender or subject', () => {
  const body =
    'your mailbox storage is almost full please confirm your account within two days or all incoming messages will be rejected by the server administrator team';
  const sample = (n: number, t: string, payloads: string[] = []): Sample =>
    ({ file: `sample-${n}.eml`, number: n, date: n, signature: minhash(t), payloads }) as unknown as Sample;
  assert.ok(minhash(body), 'long enough to compare');
  assert.equal(minhash('too short to say'), null);
  const clusters = clusterCampaigns([
    sample(1, body),
    // the same text with the recipient's name and a reference number added
    sample(2, `dear alice ${body} ref 88123`),
    sample(
      3,
      'quarterly report attached as discussed in the meeting on tuesday let me know if the numbers look right to you',
    ),
    sample(4, 'x', ['a'.repeat(64)]),
    sample(5, 'y', ['a'.repeat(64)]),
  ]);
  assert.deepEqual(
    clusters.map((c) => c.map((s) => s.number)),
    [[1, 2], [3], [4, 5]],
  );
});

test('bursts on three gateways become drafts that catch their campaign; no draft matches ham', async (t) => {
  if (corpus.missing) {
    t.skip(`${corpus.missing}: the replay needs the shared corpus`);
    return;
  }
  const res = (await replayed())!;
  const r = res.all;
  assert.equal(res.parseFailures.length, 0, JSON.stringify(res.parseFailures));
  assert.equal(r.messages.phishing, 250);
  assert.equal(r.messages.ham, 250);
  // the hub's defaults: what an operator gets without configuring anything
  assert.deepEqual(
    { g: r.settings.minGateways, m: r.settings.minMessages, f: r.settings.factor },
    { g: 2, m: 5, f: 10 },
  );

  const onThree = r.drafts.list.filter((d) => d.gateways === 3 && d.campaignsCaught > 0);
  assert.ok(onThree.length > 0, `a campaign seen on 3 gateways is drafted: ${JSON.stringify(r.drafts.list)}`);
  // bursts the gateways held make drafts that hold too once published
  assert.ok(
    onThree.some((d) => d.level >= r.quarantineThreshold),
    'a draft of a held campaign holds at the default threshold',
  );
  // every campaign of minMessages or more that the gateways held some of is caught in this part; one
  // they held none of is only informational, not drafted at the defaults
  const big = r.campaigns.list.filter((c) => c.size >= r.settings.minMessages);
  assert.ok(big.some((c) => c.held > 0));
  for (const c of big.filter((x) => x.held > 0)) assert.ok(c.caught > 0, `campaign #${c.id} caught`);
  for (const c of big.filter((x) => x.held === 0 && x.caught === 0)) assert.match(c.reason ?? '', /informational/);
  // a draft the gateway's engine cannot match against the mail it was made from would be dead weight
  for (const d of r.drafts.list) assert.ok(d.ownMatched > 0, `${d.ruleId} (${d.kind} ${d.key}) matches its own burst`);
  // what a campaign of fewer than minMessages needs is explained, not silently missed
  for (const c of r.campaigns.list.filter((x) => x.caught === 0)) assert.ok(c.reason, `campaign #${c.id} has a reason`);

  assert.deepEqual(
    r.hamDrafts.map((d) => `${d.ruleId} ${d.kind} ${d.key}: ${d.hamExamples.map((e) => e.file).join(', ')}`),
    [],
    'no draft matches ham',
  );
  assert.equal(r.hamMessagesMatched, 0);
});

test('the summaries carry what the gateway decided: held at level 3 or more, delivered below', async (t) => {
  if (corpus.missing) {
    t.skip(`${corpus.missing}: the replay needs the shared corpus`);
    return;
  }
  const r = (await replayed())!.all;
  // the adaptive rules alone hold most of this phishing
  assert.ok(r.phishing.heldByAdaptive > r.messages.phishing / 2, String(r.phishing.heldByAdaptive));
  const files = r.campaigns.list.flatMap((c) => c.files).slice(0, 12);
  const samples = await Promise.all(files.map((f) => loadSample(corpus.dir, f, 'phishing')));
  assert.ok(samples.some((s) => s.held) && samples.some((s) => !s.held), 'both outcomes among them');
  for (const s of samples) {
    assert.equal(s.held, s.level >= r.quarantineThreshold, s.file);
    assert.equal(s.summary.status, s.held ? 'quarantined' : 'delivered', s.file);
    assert.equal(s.summary.verdict, s.held ? 'quarantine' : 'deliver', s.file);
    assert.equal(s.summary.threatLevel, s.level, s.file);
    assert.equal(new Set(s.summary.urls).size, s.summary.urls.length, 'URLs once each, as tracking keeps them');
  }
});
