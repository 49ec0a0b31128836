// The quarantine index on its own: membership in several quarantines, one capacity count per message,
// move, first-in-first-out order, paging, and counts rebuilt from the database after a restart; plus
// the configuration checks for policy quarantines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Store } from '../src/store/db.ts';
import { QuarantineIndex, quarantineSettings, type QuarantineEntry } from '../src/quarantine/quarantine.ts';
import { validateConfig } from '../src/config/load.ts';
import { tempDir } from './helpers/peers.ts';

function entry(mid: number, quarantine: string, enteredAt: number, size = 1000, ruleIds = ['R1']): QuarantineEntry {
  return {
    mid,
    quarantine,
    enteredAt,
    exitAt: enteredAt + 86_400_000,
    size,
    file: `/spool/held-${mid}`,
    bodyOffset: 0,
    level: 4,
    category: 'virus',
    viral: true,
    ruleIds,
    reason: 'test',
    sender: 'A@src.test',
    recipients: ['b@dst.test'],
    subject: `m${mid}`,
    policy: 'default',
    copy: {
      mid,
      parentMid: null,
      env: {} as QuarantineEntry['copy']['env'],
      policy: 'default',
      recipients: [{ rid: 0, address: 'b@dst.test' }],
    },
  };
}

test('a message in two quarantines counts once; removal reports where it still is; move keeps its age', async () => {
  const dir = tempDir('bw-qidx-');
  const store = new Store(path.join(dir, 'db.sqlite'));
  const q = new QuarantineIndex(store);
  q.add(entry(1, 'outbreak', 100, 1000, ['R1']));
  q.add(entry(1, 'unscannable', 100, 1000, ['unscannable:_encrypted']));
  q.add(entry(2, 'virus', 50, 500, ['Eicar']));
  q.add(entry(3, 'outbreak', 200, 2000, ['R1', 'R2']));
  assert.deepEqual(q.usage(), { messages: 3, bytes: 3500 });
  assert.deepEqual(Object.fromEntries(q.perQuarantine()), {
    outbreak: { messages: 2, bytes: 3000 },
    unscannable: { messages: 1, bytes: 1000 },
    virus: { messages: 1, bytes: 500 },
  });
  // adding the same membership twice changes nothing
  q.add(entry(3, 'outbreak', 200, 2000, ['R1', 'R2']));
  assert.deepEqual(q.usage(), { messages: 3, bytes: 3500 });

  assert.deepEqual(q.remove(1, 'outbreak'), ['unscannable']);
  assert.deepEqual(q.usage(), { messages: 3, bytes: 3500 }, 'still held in unscannable');
  q.markReleased(1, ['outbreak']);
  assert.ok(q.move(3, 'outbreak', 'review', 999_999, 'moved'));
  assert.deepEqual(q.memberships(3), ['review']);
  assert.equal(q.move(3, 'outbreak', 'review', 1, 'again'), false, 'no longer in outbreak');
  await store.committed();

  const moved = q.get(3, 'review')!;
  assert.equal(moved.enteredAt, 200);
  assert.equal(moved.exitAt, 999_999);
  assert.deepEqual(
    q.rules('review').map((r) => r.ruleId),
    ['R1', 'R2'],
  );
  assert.deepEqual(q.get(1, 'unscannable')!.copy.releasedFrom, ['outbreak']);
  // oldest first across quarantines, with a cursor
  assert.deepEqual(
    q.oldest(10).map((e) => [e.mid, e.quarantine]),
    [
      [2, 'virus'],
      [1, 'unscannable'],
      [3, 'review'],
    ],
  );
  assert.deepEqual(
    q.oldest(10, { enteredAt: 100, mid: 1 }).map((e) => e.mid),
    [3],
  );
  assert.deepEqual(q.files().sort(), ['/spool/held-1', '/spool/held-2', '/spool/held-3']);
  // filters driven by the recipient and sender indexes, also after a move
  assert.deepEqual(
    q.list({ recipient: 'B@dst.test' }).map((e) => e.mid),
    [2, 1, 3],
  );
  assert.deepEqual(
    q.list({ quarantine: 'review', recipient: 'b@dst.test' }).map((e) => e.mid),
    [3],
  );
  assert.deepEqual(q.list({ recipient: 'nobody@dst.test' }), []);
  assert.deepEqual(
    q.list({ sender: 'a@SRC.test', quarantine: 'virus' }).map((e) => e.mid),
    [2],
  );
  assert.deepEqual(
    q.list({ rule: 'R2', recipient: 'b@dst.test' }).map((e) => e.mid),
    [3],
  );

  // the counts come back from the database after a restart
  const again = new QuarantineIndex(store);
  assert.deepEqual(again.usage(), { messages: 3, bytes: 3500 });
  assert.deepEqual(again.memberships(1), ['unscannable']);
  assert.equal(again.has(3, 'review'), true);
  assert.deepEqual(again.remove(1, 'unscannable'), []);
  assert.deepEqual(again.usage(), { messages: 2, bytes: 2500 });
  await store.close();
});

test('each() pages through any number of entries in entry order', async () => {
  const dir = tempDir('bw-qidx-');
  const store = new Store(path.join(dir, 'db.sqlite'));
  const q = new QuarantineIndex(store);
  for (let i = 1; i <= 2500; i++) q.add(entry(i, i % 2 ? 'outbreak' : 'virus', 1000 + Math.floor(i / 3)));
  await store.committed();
  const mids = [...q.each({ quarantine: 'outbreak' }, 300)].map((e) => e.mid);
  assert.equal(mids.length, 1250);
  assert.deepEqual(
    mids,
    [...mids].sort((a, b) => a - b),
  );
  assert.equal(q.list({ quarantine: 'outbreak', limit: 100_000 }).length, 1250);
  await store.close();
});

test('policy quarantines: names must be unique and anti-virus targets must exist', () => {
  const base = {
    listeners: [
      {
        name: 'in',
        port: 0,
        direction: 'incoming',
        acceptDomains: ['x.test'],
        hat: [{ name: 'all', match: ['ALL'], action: 'accept' }],
      },
    ],
  };
  const ok = validateConfig({
    ...base,
    quarantine: { maxSize: '1GiB', policy: [{ name: 'review', retention: '7d', defaultAction: 'delete' }] },
    policies: { incoming: [{ name: 'default', antivirus: { unscannable: { quarantine: 'review' } } }] },
  });
  assert.ok(ok.config, JSON.stringify(ok.errors));
  const settings = quarantineSettings(ok.config);
  assert.deepEqual(
    settings.map((s) => [s.name, s.kind, s.defaultAction, s.retentionMs]),
    [
      ['outbreak', 'system', 'release', null],
      ['virus', 'system', 'delete', 30 * 86_400_000],
      ['review', 'policy', 'delete', 7 * 86_400_000],
    ],
  );
  const bad = validateConfig({
    ...base,
    quarantine: { policy: [{ name: 'virus' }, { name: 'x' }, { name: 'x' }] },
    policies: { incoming: [{ name: 'default', antivirus: { infected: { quarantine: 'nowhere' } } }] },
  });
  assert.equal(bad.config, null);
  const all = bad.errors.map((e) => `${e.path}: ${e.message}`).join('\n');
  assert.match(all, /virus is a system quarantine/);
  assert.match(all, /duplicate quarantine x/);
  assert.match(all, /policies\.incoming\[0\]\.antivirus\.infected\.quarantine: no quarantine nowhere/);
  const badName = validateConfig({ ...base, quarantine: { policy: [{ name: 'Bad Name' }] } });
  assert.match(badName.errors.map((e) => e.path).join(), /quarantine\.policy\[0\]\.name/);
});
