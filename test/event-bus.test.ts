// The event bus: in-order delivery to every subscriber, isolation of a broken subscriber, and the
// tracking subscriber's events table as a durable, ordered outbox.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { tempDir } from './helpers/peers.ts';
import { Store } from '../src/store/db.ts';
import { MailLog } from '../src/tracking/maillog.ts';
import { Tracker } from '../src/tracking/tracker.ts';
import { subscribeMailLog } from '../src/tracking/maillog-lines.ts';
import { EventOutbox } from '../src/tracking/outbox.ts';
import { EventBus, type BusEvent } from '../src/tracking/bus.ts';

test('subscribers see every event in emission order, with increasing sequence numbers', () => {
  const bus = new EventBus();
  const a: BusEvent[] = [];
  const b: string[] = [];
  bus.subscribe('a', (e) => a.push(e));
  const off = bus.subscribe('b', (e) => b.push(`${e.mid}:${e.event.type}`));
  bus.emit(1, { type: 'verdict', verdict: 'deliver', reason: 'x' });
  bus.emit(2, { type: 'message.done', status: 'delivered' }, 7);
  off();
  bus.emit(1, { type: 'message.done', status: 'delivered' });
  assert.deepEqual(
    a.map((e) => [e.seq, e.mid, e.event.type, e.icid]),
    [
      [1, 1, 'verdict', undefined],
      [2, 2, 'message.done', 7],
      [3, 1, 'message.done', undefined],
    ],
  );
  assert.deepEqual(b, ['1:verdict', '2:message.done']);
});

test('a subscriber that throws is counted and reported; the others and the emitter carry on', () => {
  const bus = new EventBus();
  const reported: string[] = [];
  bus.onSubscriberError = (name, err) => reported.push(`${name}: ${err.message}`);
  const seen: number[] = [];
  bus.subscribe('broken', () => {
    throw new Error('boom');
  });
  bus.subscribe('ok', (e) => seen.push(e.seq));
  for (let i = 0; i < 3; i++) bus.emit(i, { type: 'message.done', status: 'delivered' });
  assert.deepEqual(seen, [1, 2, 3]);
  assert.deepEqual(reported, ['broken: boom'], 'reported once, not per event');
  const h = bus.health().find((x) => x.name === 'broken')!;
  assert.equal(h.errors, 3);
  assert.equal(h.lastError, 'boom');
});

test('the tracking subscriber records each event; the events table is an ordered outbox', async () => {
  const dir = tempDir('bw-bus-');
  const store = new Store(path.join(dir, 'db.sqlite'));
  const log = new MailLog(path.join(dir, 'logs'), 1 << 20, 2);
  const bus = new EventBus();
  new Tracker(store, bus);
  subscribeMailLog(bus, log);
  const later: string[] = [];
  bus.subscribe('after-tracking', (e) => later.push(e.event.type));
  bus.emit(5, { type: 'verdict', verdict: 'deliver', reason: 'no policy action' });
  bus.emit(5, { type: 'message.done', status: 'delivered' });
  bus.emit(6, { type: 'verdict', verdict: 'drop', reason: 'policy' });
  await store.committed();
  const rows = store.stmt('select id, mid, type from events order by id').all() as Array<{
    id: number;
    mid: number;
    type: string;
  }>;
  assert.deepEqual(
    rows.map((r) => [r.mid, r.type]),
    [
      [5, 'verdict'],
      [5, 'message.done'],
      [6, 'verdict'],
    ],
  );
  // a consumer resumes after the last id it acknowledged
  const after = store.stmt('select mid, type from events where id > ? order by id').all(rows[0].id) as Array<{
    mid: number;
    type: string;
  }>;
  assert.deepEqual(
    after.map((r) => r.type),
    ['message.done', 'verdict'],
  );
  assert.deepEqual(later, ['verdict', 'message.done', 'verdict']);
  await log.close();
  store.close();
});

test('the outbox hands a consumer every event after the one it acknowledged, across a restart', async () => {
  const dir = tempDir('bw-outbox-');
  const file = path.join(dir, 'db.sqlite');
  let store = new Store(file);
  let bus = new EventBus();
  new Tracker(store, bus);
  for (let mid = 1; mid <= 5; mid++) bus.emit(mid, { type: 'verdict', verdict: 'deliver', reason: `r${mid}` });
  const hub = new EventOutbox(store, 'hub');
  const other = new EventOutbox(store, 'siem');
  const first = await hub.next(2);
  assert.deepEqual(
    first.map((e) => [e.mid, e.type, e.data.reason]),
    [
      [1, 'verdict', 'r1'],
      [2, 'verdict', 'r2'],
    ],
  );
  // not acknowledged: the same events again (at least once)
  assert.deepEqual(
    (await hub.next(2)).map((e) => e.id),
    first.map((e) => e.id),
  );
  await hub.acknowledge(first[1].id);
  await hub.acknowledge(first[0].id); // never moves backwards
  assert.deepEqual(
    (await hub.next(10)).map((e) => e.mid),
    [3, 4, 5],
  );
  assert.equal(await other.backlog(), 5, 'each consumer has its own position');
  await store.close();
  // a restart: the position is durable, and new events follow the old ones
  store = new Store(file);
  bus = new EventBus();
  new Tracker(store, bus);
  bus.emit(6, { type: 'message.done', status: 'delivered' });
  const again = new EventOutbox(store, 'hub');
  assert.deepEqual(
    (await again.next(10)).map((e) => [e.mid, e.type]),
    [
      [3, 'verdict'],
      [4, 'verdict'],
      [5, 'verdict'],
      [6, 'message.done'],
    ],
  );
  assert.equal(await again.backlog(), 4);
  assert.throws(() => new EventOutbox(store, '../x'), /consumer name/);
  await store.close();
});
