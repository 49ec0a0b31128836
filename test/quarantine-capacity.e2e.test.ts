// Quarantine capacity end to end (DESIGN §5, §6) with real SMTP peers: alerts as usage rises past 5, 50,
// 75 and 95 % arrive as e-mail at a sink, once each; past quarantine.maxSize the oldest messages take
// their quarantine's default action first (released with the subject tag and X-Breakwater-Quarantine)
// until the total fits; scheduled exits and bulk delete bring usage down.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { hasBinary, startSmtpSink, swaks, waitFor, type Sink } from './helpers/peers.ts';
import { startTestGateway, testConfig } from './helpers/gateway.ts';
import { writeRuleFeed } from './helpers/rules.ts';

const skip = hasBinary('smtp-sink') && hasBinary('swaks') ? false : 'smtp-sink or swaks missing (run .ci/run)';

const MAX_SIZE = 24 * 1024;
let sink: Sink;
let gw: Awaited<ReturnType<typeof startTestGateway>>;

async function send(subject: string): Promise<number> {
  const r = await swaks([
    '-s',
    `127.0.0.1:${gw.port('incoming')}`,
    '-f',
    'a@src.test',
    '-t',
    'bob@dst.test',
    '--header',
    `Subject: ${subject}`,
    // about 1.6 KB held: 15 of them fill the 24 KiB budget
    '--body',
    `unique ${subject} see http://login.hold.test/\n${'padding line for a realistic size\n'.repeat(30)}`,
  ]);
  assert.equal(r.code, 0, r.out);
  return Number(/queued as MID (\d+)/.exec(r.out)![1]);
}

const status = (mid: number) => gw.gateway.tracker.show(mid)?.status;
const capacityMails = () =>
  sink
    .messages()
    .filter((m) => m.rcptTo.includes('secops@dst.test') && /Subject: \[Breakwater \w+\] quarantine:/.test(m.body));

before(async () => {
  if (skip) return;
  sink = await startSmtpSink({ dump: true });
  const feed = writeRuleFeed([
    {
      id: 'OUTBREAK_HOLD',
      level: 4,
      category: 'phish',
      description: 'held for the capacity test',
      condition: { url: { host: ['.hold.test'] } },
    },
  ]);
  gw = await startTestGateway(
    testConfig({
      routes: { '*': [`smtp://127.0.0.1:${sink.port}`] },
      outbreakFilters: { adaptiveRules: false, ruleFeed: { dir: feed.dir, publicKey: feed.publicKey } },
      alerts: { recipients: ['secops@dst.test'], suppressFor: '1h' },
      quarantine: { maxSize: MAX_SIZE, outbreak: { releaseSubjectTag: '[RELEASED] ' } },
    }),
  );
  await waitFor(() => gw.gateway.outbreak.bundle, 10_000, 'rules');
});

after(async () => {
  await gw?.stop();
  await sink?.stop();
});

test(
  'capacity alerts at 5, 50, 75 and 95 % arrive once each; overflow releases the oldest first, tagged',
  { skip },
  async () => {
    const mids: number[] = [];
    // Fill to just under the budget: every threshold is crossed once.
    for (let i = 0; ; i++) {
      const mid = await send(`cap-${i}`);
      mids.push(mid);
      await waitFor(() => status(mid) === 'quarantined', 10_000, `cap-${i} held`);
      const { usage } = await gw.gateway.capacity.summary();
      if (usage.bytes + usage.bytes / usage.messages > MAX_SIZE) break;
      assert.ok(i < 40, 'the budget should be full after about 15 messages');
    }
    const before = await gw.gateway.capacity.summary();
    assert.ok(before.usage.percent >= 95 && before.usage.percent <= 100, `usage ${before.usage.percent} %`);
    const mails = await waitFor(() => (capacityMails().length >= 4 ? capacityMails() : null), 10_000, 'four alerts');
    const thresholds = mails.map((m) => /past the (\d+) % threshold/.exec(m.body.replace(/=\n/g, ''))?.[1]).sort();
    assert.deepEqual(thresholds, ['5', '50', '75', '95'].sort());
    assert.ok(
      mails.some((m) => /\[Breakwater critical\] quarantine:/.test(m.body)),
      '95 % is critical',
    );
    assert.ok(
      mails.some((m) => /\[Breakwater warning\] quarantine:/.test(m.body)),
      '75 % is a warning',
    );

    // Three more: each pushes the total past maxSize, so the oldest leave, first in first out.
    const extra = [await send('cap-over-1'), await send('cap-over-2'), await send('cap-over-3')];
    await waitFor(() => extra.every((m) => status(m) === 'quarantined'), 10_000, 'extra held');
    const released = await waitFor(
      () => {
        const got = sink.messages().filter((m) => /unique cap-\d+ /.test(m.body));
        return got.length >= 3 ? got : null;
      },
      10_000,
      'oldest released',
    );
    const releasedIds = released.map((m) => /unique (cap-\d+) /.exec(m.body)![1]).sort();
    assert.deepEqual(releasedIds, ['cap-0', 'cap-1', 'cap-2']);
    for (const m of released) {
      // the release tag in front of what Outbreak Filters add on the way out
      assert.match(m.body, /^Subject: \[RELEASED\] \[Possible Phish Fraud\] cap-\d+$/m);
      assert.match(m.body, /^X-Breakwater-Quarantine: released from Outbreak when the quarantines were full$/m);
    }
    for (const mid of mids.slice(0, 3)) {
      await waitFor(() => status(mid) === 'delivered', 10_000, `MID ${mid} delivered`);
      const rec = gw.gateway.tracker.show(mid)!;
      assert.ok(rec.events.some((e) => e.type === 'quarantine.overflow' && e.action === 'release'));
      assert.ok(rec.events.some((e) => e.type === 'quarantine.released'));
    }
    const after = await gw.gateway.capacity.summary();
    assert.ok(after.usage.bytes <= MAX_SIZE, `${after.usage.bytes} > ${MAX_SIZE}`);
    const held = await gw.gateway.quarantines.list({ quarantine: 'outbreak' });
    assert.deepEqual(
      held.map((e) => e.mid),
      [...mids.slice(3), ...extra],
      'the newest stay held, in order',
    );
    // Still above 95 %: no new alert while usage stays there.
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(capacityMails().length, 4);
    const list = gw.gateway.alerts.list({ limit: 100, class: 'quarantine' });
    assert.equal(list.length, 4);

    // Delete everything: usage falls to zero; rising past 5 % again is recorded, but the same alert is
    // within its suppression interval and not mailed again.
    const deleted = await gw.gateway.quarantines.deleteMatching({ quarantine: 'outbreak' }, 'test');
    assert.equal(deleted.length, held.length);
    const empty = await gw.gateway.capacity.summary();
    assert.equal(empty.usage.bytes, 0);
    assert.equal(empty.usage.messages, 0);
    const again = await send('cap-again');
    await waitFor(() => status(again) === 'quarantined', 10_000, 'held again');
    await waitFor(() => gw.gateway.alerts.list({ limit: 100, class: 'quarantine' }).length === 5, 5000, 'fifth alert');
    const fifth = gw.gateway.alerts.list({ limit: 1, class: 'quarantine' })[0];
    assert.equal(fifth.key, 'quarantine.capacity:5');
    assert.equal(fifth.suppressed, true);
    assert.equal(capacityMails().length, 4);
  },
);
