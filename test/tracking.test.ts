import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { tempDir } from './helpers/peers.ts';
import path from 'node:path';
import { Store } from '../src/store/db.ts';
import { MailLog } from '../src/tracking/maillog.ts';
import { Tracker } from '../src/tracking/tracker.ts';
import { EventBus } from '../src/tracking/bus.ts';
import { subscribeMailLog } from '../src/tracking/maillog-lines.ts';
import { parsedEvent } from '../src/pipeline/scan-events.ts';
import type { ParsedMessage } from '../src/mime/types.ts';

function setup() {
  const dir = tempDir('bw-track-');
  const store = new Store(path.join(dir, 'db.sqlite'));
  const log = new MailLog(path.join(dir, 'logs'), 1024 * 1024, 3);
  const bus = new EventBus();
  const tracker = new Tracker(store, bus);
  subscribeMailLog(bus, log);
  return { dir, store, log, tracker, bus };
}

function parsed(over: Partial<ParsedMessage>): ParsedMessage {
  return {
    size: 100,
    headers: [],
    from: null,
    subject: null,
    messageId: null,
    parts: [],
    attachments: [],
    urls: [],
    text: '',
    html: '',
    anomalies: [],
    ...over,
  };
}

/** A message as the flow announces it: accepted, matched to the default policy, queued for delivery. */
function add(t: Tracker, mid: number, sender: string, rcpts: string[], ip: string, at: number) {
  t.bus.emit(mid, {
    type: 'ingress.accepted',
    icid: mid,
    listener: 'in',
    sender,
    recipients: rcpts,
    size: 1000,
    senderIp: ip,
    helo: 'h',
    tls: null,
    direction: 'incoming',
    rdns: null,
    receivedAt: at,
    spoolFile: `/spool/${mid}.msg`,
  });
  t.bus.emit(mid, { type: 'policy.matched', policy: 'default', splinteredFrom: null });
  t.bus.emit(mid, { type: 'delivery.queued', rids: rcpts.map((_, rid) => rid) });
}

test('tracking search answers every filter and sorts newest first', async () => {
  const { store, tracker, log } = setup();
  const t0 = Date.parse('2026-11-01T00:00:00Z');
  add(tracker, 1, 'alice@a.test', ['bob@b.test'], '10.0.0.1', t0);
  add(tracker, 2, 'mallory@evil.test', ['bob@b.test', 'carol@b.test'], '10.0.0.2', t0 + 1000);
  add(tracker, 3, 'alice@a.test', ['dave@b.test'], '10.0.0.1', t0 + 2000);
  tracker.bus.emit(1, parsedEvent(parsed({ subject: 'Quarterly report', messageId: '<m1@a.test>' }), false));
  tracker.bus.emit(
    2,
    parsedEvent(
      parsed({
        subject: 'Your invoice is overdue',
        messageId: '<m2@evil.test>',
        attachments: [
          {
            partPath: '2',
            name: 'invoice.pdf.exe',
            extension: 'exe',
            declaredType: 'application/pdf',
            trueType: 'application/x-msdownload',
            size: 5,
            sha256: 'ab'.repeat(32),
            isArchive: false,
            members: [],
            encrypted: false,
          },
        ],
        urls: [
          {
            url: 'https://login.evil.example.co.uk/x',
            host: 'login.evil.example.co.uk',
            domain: 'example.co.uk',
            source: 'html',
            anchorText: 'Pay',
          },
        ],
      }),
      false,
    ),
  );
  tracker.bus.emit(2, {
    type: 'delivery.bounced',
    dcid: null,
    rid: 1,
    address: 'carol@b.test',
    target: 'policy',
    reply: '550 5.1.1 no',
  });
  tracker.bus.emit(3, { type: 'message.done', status: 'delivered' });
  await store.committed();

  const mids = (q: Parameters<Tracker['search']>[0]) => tracker.search(q).map((r) => r.mid);
  assert.deepEqual(mids({}), [3, 2, 1]);
  assert.deepEqual(mids({ sender: 'ALICE@a.test' }), [3, 1]);
  assert.deepEqual(mids({ recipient: 'carol@b.test' }), [2]);
  assert.deepEqual(mids({ subject: 'invoice' }), [2]);
  assert.deepEqual(mids({ subject: 'REPORT' }), [1], 'subject search is case-insensitive');
  assert.deepEqual(mids({ subject: 'Qu' }), [1], 'short subject terms fall back to a scan');
  assert.deepEqual(mids({ subject: '100%' }), []);
  assert.deepEqual(mids({ messageId: 'm1@a.test' }), [1], 'Message-ID with or without brackets');
  assert.deepEqual(mids({ messageId: '<m2@evil.test>' }), [2]);
  assert.deepEqual(mids({ mid: 3 }), [3]);
  assert.deepEqual(mids({ ip: '10.0.0.1' }), [3, 1]);
  assert.deepEqual(mids({ sha256: 'AB'.repeat(32) }), [2]);
  assert.deepEqual(mids({ attachment: 'INVOICE.PDF.EXE' }), [2]);
  assert.deepEqual(mids({ urlDomain: 'example.co.uk' }), [2]);
  assert.deepEqual(mids({ status: 'bounced' }), [2], 'status matches recipients too');
  assert.deepEqual(mids({ status: 'delivered' }), [3]);
  assert.deepEqual(mids({ since: t0 + 500, until: t0 + 1500 }), [2]);
  assert.deepEqual(mids({ limit: 1 }), [3]);
  assert.deepEqual(mids({ before: 3, limit: 1 }), [2], 'paging');
  assert.deepEqual(mids({ sender: 'alice@a.test', ip: '10.0.0.2' }), [], 'filters combine');

  const rec = tracker.show(2)!;
  assert.equal(rec.subject, 'Your invoice is overdue');
  assert.deepEqual(
    rec.recipients.map((r) => r.status),
    ['queued', 'bounced'],
  );
  assert.equal(rec.attachments[0].trueType, 'application/x-msdownload');
  assert.deepEqual(rec.urls, ['https://login.evil.example.co.uk/x']);
  assert.equal(tracker.show(99), null);
  await store.close();
  await log.close();
});

test('events are kept in order and written to the mail log without line breaks from peers', async () => {
  const { store, tracker, log, dir } = setup();
  tracker.bus.emit(7, {
    type: 'ingress.accepted',
    icid: 5,
    listener: 'in',
    sender: 'a@a.test',
    recipients: ['b@b.test'],
    size: 10,
    senderIp: '10.0.0.9',
    helo: 'x',
    tls: null,
  });
  tracker.bus.emit(7, { type: 'delivery.start', dcid: 3, target: '127.0.0.1:25', rids: [0] });
  tracker.bus.emit(7, {
    type: 'delivery.delivered',
    dcid: 3,
    rid: 0,
    address: 'b@b.test',
    target: '127.0.0.1:25',
    reply: '250 ok\r\nInfo: forged',
  });
  await store.committed();
  const rec = tracker.show(7)!;
  assert.deepEqual(
    rec.events.map((e) => e.type),
    ['ingress.accepted', 'delivery.start', 'delivery.delivered'],
  );
  assert.equal(rec.events[1].dcid, 3);
  await log.close();
  const text = readFileSync(path.join(dir, 'logs', 'mail.log'), 'utf8');
  assert.match(text, /Info: MID 7 ICID 5 From: <a@a\.test>/);
  assert.match(text, /Info: MID 7 ICID 5 RID 0 To: <b@b\.test>/);
  assert.match(text, /Info: Delivery start DCID 3 MID 7 to RID \[0\]/);
  assert.match(text, /Info: Message done DCID 3 MID 7 to RID \[0\]/);
  assert.equal(text.split('\n').filter((l) => l.startsWith('Info: forged')).length, 0);
  await store.close();
});

test('the mail log rotates by size and keeps the configured number of files', async () => {
  const dir = tempDir('bw-log-');
  const log = new MailLog(dir, 2000, 2);
  for (let i = 0; i < 200; i++) log.info(`line ${i} ${'x'.repeat(50)}`);
  await log.close();
  const { readdirSync } = await import('node:fs');
  assert.deepEqual(readdirSync(dir).sort(), ['mail.log', 'mail.log.1', 'mail.log.2']);
});

test('recording the parse of a message twice (rescan after restart) replaces its facts', async () => {
  const { store, tracker, log } = setup();
  add(tracker, 5, 'a@a.test', ['b@b.test'], '10.0.0.5', Date.now());
  const p = parsed({
    subject: 'twice over',
    attachments: [
      {
        partPath: '2',
        name: 'a.zip',
        extension: 'zip',
        declaredType: 'application/zip',
        trueType: 'application/zip',
        size: 1,
        sha256: 'cd'.repeat(32),
        isArchive: true,
        members: [],
        encrypted: false,
      },
    ],
  });
  tracker.bus.emit(5, parsedEvent(p, false));
  tracker.bus.emit(5, parsedEvent(p, true));
  await store.committed();
  assert.deepEqual(
    tracker.search({ subject: 'twice' }).map((r) => r.mid),
    [5],
  );
  assert.equal(tracker.show(5)!.attachments.length, 1);
  await store.close();
  await log.close();
});

test('status search gives the same answer whether the status is rare or common among recipients', async () => {
  // the tracker plans a rare status (a list of MIDs from the recipient-status index) and a common one (a
  // lookup per message in received order) apart: both must find messages by their own status or by any
  // recipient's, newest first, combined with the other filters
  const { store, tracker, log } = setup();
  const t0 = Date.parse('2026-11-02T00:00:00Z');
  const n = 5200;
  for (let mid = 1; mid <= n; mid++)
    add(tracker, mid, mid % 2 ? 'odd@a.test' : 'even@a.test', ['x@b.test', 'y@b.test'], '10.0.0.9', t0 + mid);
  await store.committed();
  // every message delivered to x; every 1000th bounced at y; message 77 done as delivered, y deferred
  for (let mid = 1; mid <= n; mid++) {
    tracker.bus.emit(mid, {
      type: 'delivery.delivered',
      dcid: 1,
      rid: 0,
      address: 'x@b.test',
      target: 't',
      reply: '250',
    });
    if (mid % 1000 === 0)
      tracker.bus.emit(mid, {
        type: 'delivery.bounced',
        dcid: 1,
        rid: 1,
        address: 'y@b.test',
        target: 't',
        reply: '550',
      });
  }
  tracker.bus.emit(77, {
    type: 'delivery.deferred',
    dcid: 1,
    rid: 1,
    address: 'y@b.test',
    target: 't',
    reply: '451',
    nextAttemptAt: t0 + 10_000,
  });
  await store.committed();
  const mids = (q: Parameters<Tracker['search']>[0]) => tracker.search(q).map((r) => r.mid);
  assert.deepEqual(mids({ status: 'bounced' }), [5000, 4000, 3000, 2000, 1000], 'rare: by recipient');
  assert.deepEqual(mids({ status: 'deferred' }), [77]);
  assert.deepEqual(mids({ status: 'delivered', limit: 3 }), [5200, 5199, 5198], 'common: newest first');
  assert.deepEqual(mids({ status: 'delivered', sender: 'odd@a.test', limit: 2 }), [5199, 5197]);
  assert.deepEqual(mids({ status: 'bounced', sender: 'even@a.test', before: 4000 }), [3000, 2000, 1000]);
  assert.deepEqual(mids({ status: 'quarantined' }), []);
  await store.close();
  await log.close();
});
