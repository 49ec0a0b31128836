// CTIM builders from message summaries: one sighting per message (targets = recipients, relations in
// CTIM's vocabulary), dispositions from threat levels, transient ids, and every entity fits the JSON
// Schemas in src/xdr/ctim/schemas (which themselves catch a wrong entity). Also the observable → tracking
// query mapping, whose every query is answered from an index (explain query plan).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MessageSummary } from '../src/xdr/summary.ts';
import {
  buildJudgement,
  buildSighting,
  buildVerdict,
  dispositionOf,
  resolutionOf,
  severityOf,
  transientId,
  type CtimContext,
} from '../src/xdr/ctim/build.ts';
import { CTIM_SCHEMA_VERSION, DISPOSITIONS } from '../src/xdr/ctim/entities.ts';
import {
  SEARCHABLE_TYPES,
  fromAddressOf,
  observableQueries,
  type Observable,
  type SearchableType,
} from '../src/xdr/observables.ts';
import { Store } from '../src/store/db.ts';
import { EventBus } from '../src/tracking/bus.ts';
import { Tracker } from '../src/tracking/tracker.ts';
import { ctimErrors } from './helpers/ctim.ts';

const SHA = 'a'.repeat(64);

function summary(over: Partial<MessageSummary> = {}): MessageSummary {
  return {
    mid: 12,
    icid: 7,
    parentMid: null,
    receivedAt: '2025-06-01T12:00:00.000Z',
    direction: 'incoming',
    listener: 'incoming',
    policy: 'default',
    sender: 'alice@src.test',
    recipients: [
      { address: 'bob@dst.test', status: 'delivered', lastReply: '250 ok' },
      { address: 'carol@dst.test', status: 'delivered', lastReply: '250 ok' },
    ],
    headerFrom: '"Alice A." <Alice.Header@src.test>',
    subject: 'March invoice',
    messageId: '<m1@src.test>',
    senderIp: '192.0.2.10',
    rdns: 'mx.src.test',
    helo: 'mx.src.test',
    size: 2048,
    attachments: [{ name: 'invoice.zip', trueType: 'application/zip', size: 22, sha256: SHA }],
    urls: ['https://phish.test/login'],
    status: 'delivered',
    verdict: 'deliver',
    threatLevel: 0,
    rules: [],
    version: 0,
    ...over,
  };
}

let ids = 0;
const ctx: CtimContext = {
  source: 'Breakwater',
  messageUri: (s) => `https://gw.test:8025/api/v1/tracking/messages/${s.mid}`,
  newId: (type) => `transient:${type}-${++ids}`,
  now: new Date('2025-06-02T00:00:00.000Z'),
};

test('a sighting per message: observables, recipients as targets, relations in the CTIM vocabulary', () => {
  const matched: Observable = { type: 'sha256', value: SHA };
  const s = buildSighting(summary(), [matched], ctx);
  assert.deepEqual(ctimErrors('sighting', s), []);
  assert.equal(s.type, 'sighting');
  assert.equal(s.schema_version, CTIM_SCHEMA_VERSION);
  assert.match(s.id, /^transient:sighting-/);
  assert.equal(s.count, 1);
  assert.equal(s.internal, true);
  assert.equal(s.source, 'Breakwater');
  assert.equal(s.source_uri, 'https://gw.test:8025/api/v1/tracking/messages/12');
  assert.equal(s.resolution, 'allowed');
  assert.equal(s.severity, 'Info');
  assert.deepEqual(s.observed_time, { start_time: '2025-06-01T12:00:00.000Z', end_time: '2025-06-01T12:00:00.000Z' });
  // the observable it was found by first, then the message's own
  assert.deepEqual(s.observables, [
    matched,
    { type: 'cisco_mid', value: '12' },
    { type: 'email_messageid', value: '<m1@src.test>' },
    { type: 'email', value: 'alice@src.test' },
    { type: 'email', value: 'alice.header@src.test' },
    { type: 'ip', value: '192.0.2.10' },
    { type: 'email_subject', value: 'March invoice' },
  ]);
  assert.deepEqual(s.targets, [
    {
      type: 'email',
      observables: [{ type: 'email', value: 'bob@dst.test' }],
      observed_time: { start_time: '2025-06-01T12:00:00.000Z' },
    },
    {
      type: 'email',
      observables: [{ type: 'email', value: 'carol@dst.test' }],
      observed_time: { start_time: '2025-06-01T12:00:00.000Z' },
    },
  ]);
  const rel = s.relations.map(
    (r) => `${r.source.type}:${r.source.value} ${r.relation} ${r.related.type}:${r.related.value}`,
  );
  assert.deepEqual(rel, [
    'cisco_mid:12 Sent_By email:alice@src.test',
    'cisco_mid:12 Sent_By email:alice.header@src.test',
    'email:alice@src.test Sent_To email:bob@dst.test',
    'email:alice@src.test Sent_To email:carol@dst.test',
    'cisco_mid:12 Received_From ip:192.0.2.10',
    `cisco_mid:12 Contains sha256:${SHA}`,
    'cisco_mid:12 Contains file_name:invoice.zip',
    'cisco_mid:12 Contains url:https://phish.test/login',
  ]);
  for (const r of s.relations) {
    assert.equal(r.origin, 'Breakwater');
    assert.deepEqual(ctimErrors('relation', r), []);
  }
  for (const t of s.targets) assert.deepEqual(ctimErrors('target', t), []);
});

test('a bounce (null sender) from IPv6: the message is sent to the recipients, the IP is ipv6', () => {
  const s = buildSighting(
    summary({
      sender: '',
      headerFrom: null,
      senderIp: '2001:db8::1',
      messageId: null,
      subject: null,
      attachments: [],
      urls: [],
    }),
    [],
    ctx,
  );
  assert.deepEqual(ctimErrors('sighting', s), []);
  assert.deepEqual(
    s.relations.map((r) => `${r.source.value} ${r.relation} ${r.related.type}:${r.related.value}`),
    ['12 Sent_To email:bob@dst.test', '12 Sent_To email:carol@dst.test', '12 Received_From ipv6:2001:db8::1'],
  );
  assert.match(s.short_description, /from <> to 2 recipients/);
});

test('threat level → disposition, severity; status → resolution', () => {
  assert.deepEqual(
    [null, 0, 1, 2, 3, 4, 5].map((l) => dispositionOf(l)),
    [5, 5, 5, 3, 3, 2, 2],
  );
  assert.deepEqual(
    [null, 0, 1, 2, 3, 4, 5].map((l) => severityOf(l)),
    ['Unknown', 'Info', 'Low', 'Low', 'Medium', 'High', 'Critical'],
  );
  assert.deepEqual(
    ['quarantined', 'dropped', 'bounced', 'deleted', 'delivered', 'released', 'queued', 'deferred'].map(resolutionOf),
    ['contained', 'blocked', 'blocked', 'blocked', 'allowed', 'allowed', 'detected', 'detected'],
  );
  const held = buildSighting(summary({ status: 'quarantined', threatLevel: 4, rules: ['OUTBREAK_1'] }), [], ctx);
  assert.equal(held.resolution, 'contained');
  assert.equal(held.severity, 'High');
  assert.match(held.description, /OUTBREAK_1/);
});

test('judgements assert Malicious or Suspicious; verdicts say Unknown too; both fit their schemas', () => {
  const o: Observable = { type: 'sha256', value: SHA };
  const m = summary({ threatLevel: 4, rules: ['OUTBREAK_1'] });
  const j = buildJudgement({ observable: o, level: 4, message: m }, ctx)!;
  assert.deepEqual(ctimErrors('judgement', j), []);
  assert.equal(j.disposition, 2);
  assert.equal(j.disposition_name, 'Malicious');
  assert.equal(j.severity, 'High');
  assert.equal(j.confidence, 'High');
  assert.equal(j.priority, 90);
  assert.match(j.id, /^transient:judgement-/);
  assert.match(j.reason, /threat level 4 in MID 12 \(OUTBREAK_1\)/);
  assert.equal(j.valid_time.start_time, '2025-06-02T00:00:00.000Z');
  assert.equal(j.valid_time.end_time, '2025-06-03T00:00:00.000Z');
  const v = buildVerdict({ observable: o, level: 4, message: m }, ctx, j.id);
  assert.deepEqual(ctimErrors('verdict', v), []);
  assert.equal(v.judgement_id, j.id);

  const suspicious = buildJudgement({ observable: o, level: 3, message: m }, ctx)!;
  assert.equal(suspicious.disposition_name, 'Suspicious');
  assert.equal(buildJudgement({ observable: o, level: 0, message: m }, ctx), null, 'Unknown asserts nothing');
  const unknown = buildVerdict({ observable: o, level: null, message: m }, ctx);
  assert.deepEqual([unknown.disposition, unknown.disposition_name], [5, 'Unknown']);
  assert.deepEqual(ctimErrors('verdict', unknown), []);
  for (const [n, name] of Object.entries(DISPOSITIONS))
    assert.deepEqual(ctimErrors('verdict', { ...unknown, disposition: Number(n), disposition_name: name }), []);
});

test('the schemas catch wrong entities', () => {
  const v = buildVerdict({ observable: { type: 'ip', value: '192.0.2.1' }, level: 4, message: summary() }, ctx);
  assert.ok(ctimErrors('verdict', { ...v, disposition_name: 'Clean' }).length, 'number and name mismatch');
  assert.ok(ctimErrors('verdict', { ...v, disposition: 7 }).length);
  assert.ok(ctimErrors('verdict', { ...v, observable: { type: 'colour', value: 'red' } }).length, 'unknown type');
  const s = buildSighting(summary(), [], ctx);
  assert.ok(ctimErrors('sighting', { ...s, confidence: 'Very' }).length);
  assert.ok(ctimErrors('sighting', { ...s, extra: 1 }).length, 'no fields CTIM does not have');
  assert.ok(ctimErrors('sighting', { ...s, observed_time: { start_time: 'yesterday' } }).length);
  const r = s.relations[0];
  assert.ok(ctimErrors('relation', { ...r, relation: 'Sent-To' }).length, 'relations come from the vocabulary');
  const { count: _count, ...noCount } = s;
  assert.ok(ctimErrors('sighting', noCount).length, 'count is required');
  assert.ok(ctimErrors('responses#/$defs/trigger', { data: { status: 'failure' } }).length, 'a failure says why');
  assert.ok(transientId('sighting').match(/^transient:sighting-[0-9a-f-]{36}$/));
});

test('fromAddressOf takes the address of a header From', () => {
  assert.equal(fromAddressOf('"A, B" <A.B@X.test>'), 'a.b@x.test');
  assert.equal(fromAddressOf(' plain@x.test '), 'plain@x.test');
  assert.equal(fromAddressOf('broken <x@y'), null);
  assert.equal(fromAddressOf(null), null);
});

test('every observable type maps to tracking queries that an index answers (explain query plan)', () => {
  const store = new Store(':memory:');
  const tracker = new Tracker(store, new EventBus());
  const samples: Record<SearchableType, string> = {
    ip: '192.0.2.10',
    ipv6: '2001:db8::1',
    domain: 'src.test',
    email: 'alice@src.test',
    email_subject: 'March invoice',
    email_messageid: '<m1@src.test>',
    cisco_mid: '12',
    sha256: SHA,
    file_name: 'invoice.zip',
    url: 'https://phish.test/login',
  };
  const plans: string[] = [];
  for (const type of SEARCHABLE_TYPES) {
    const qs = observableQueries({ type, value: samples[type] });
    assert.ok(qs.length, type);
    for (const q of qs)
      for (const level of [undefined, 4]) {
        const { sql, args } = tracker.searchSql({ ...q.query, ...(level ? { level } : {}), limit: 100 });
        const plan = (store.db.prepare(`explain query plan ${sql}`).all(...args) as Array<{ detail: string }>)
          .map((r) => r.detail)
          .join(' | ');
        plans.push(`${type} ${JSON.stringify(q.query)}: ${plan}`);
        // a full scan of a table is "SCAN <table>" without an index; the subject trigram index is a virtual table
        for (const step of plan.split(' | '))
          assert.ok(
            !/^SCAN /.test(step) || /VIRTUAL TABLE INDEX/.test(step),
            `${type} ${JSON.stringify(q.query)} scans: ${plan}`,
          );
      }
  }
  assert.ok(
    plans.some((p) => p.includes('messages_sender_domain')),
    plans.join('\n'),
  );
  assert.ok(
    plans.some((p) => p.includes('messages_from_address')),
    plans.join('\n'),
  );
  assert.ok(
    plans.some((p) => p.includes('urls_url')),
    plans.join('\n'),
  );
  store.close?.();
});

test('observables that cannot match anything give no query; recipients are targets, not sources', () => {
  assert.deepEqual(observableQueries({ type: 'cisco_mid', value: 'abc' }), []);
  assert.deepEqual(observableQueries({ type: 'sha256', value: 'nothex' }), []);
  assert.deepEqual(observableQueries({ type: 'email_subject', value: 'hi' }), [], 'too short for the trigram index');
  assert.deepEqual(observableQueries({ type: 'md5', value: 'x' }), [], 'a CTIM type tracking does not search');
  const email = observableQueries({ type: 'email', value: '<Alice@Src.test>' });
  assert.deepEqual(
    email.map((q) => [q.query, q.role]),
    [
      [{ sender: 'alice@src.test' }, 'source'],
      [{ fromAddress: 'alice@src.test' }, 'source'],
      [{ recipient: 'alice@src.test' }, 'target'],
    ],
  );
  assert.deepEqual(
    observableQueries({ type: 'domain', value: 'Src.Test.' }).map((q) => q.query),
    [{ senderDomain: 'src.test' }, { urlDomain: 'src.test' }],
  );
});
