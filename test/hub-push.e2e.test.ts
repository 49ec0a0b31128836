// The push side of the device channel (issue 14): a registered gateway holds a server-sent-event stream
// to the hub; a block list entry and a rule publication reach it at once (its polls only reconcile while
// the stream is up), an investigation asks it live and finds mail it has not streamed yet, a gateway that
// does not share data answers empty, a gateway with push off still gets rules by its long poll, and a
// device holds at most two streams (a third replaces the oldest).
// Real gateways (in process) registered with a real hub over HTTP, real SMTP.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { RunningHub } from '../src/hub/run.ts';
import { addHubUsers, hubJson, startTestHub } from './helpers/hub.ts';
import { startTestGateway, testConfig } from './helpers/gateway.ts';
import { waitFor } from './helpers/peers.ts';
import { sendMessage } from './helpers/rawsmtp.ts';
import { MAX_STREAMS_PER_DEVICE } from '../src/hub/device-channel.ts';

let hub: RunningHub;
const gws: Record<string, Awaited<ReturnType<typeof startTestGateway>>> = {};
const tokens: Record<string, string> = {};
const call = (method: string, route: string, body?: unknown) => hubJson(hub.url, tokens.op, method, route, body);

async function register(name: string, cloud: Record<string, unknown>): Promise<string> {
  const gw = await startTestGateway(
    testConfig({
      routes: { '*': ['file:delivered'] },
      outbreakFilters: { adaptiveRules: false },
      cloud: { enabled: true, region: 'eu', regions: { eu: hub.url }, ...cloud },
    }),
  );
  gws[name] = gw;
  const { json } = await hubJson(hub.url, hub.token, 'POST', '/api/v1/tokens', { region: 'eu' });
  const reg = await gw.gateway.cloud.register(json.token);
  assert.equal(reg.status, 'registered', JSON.stringify(reg));
  return reg.deviceId!;
}

before(async () => {
  hub = await startTestHub({ investigate: { liveTimeout: '5s' } });
  Object.assign(tokens, await addHubUsers(hub, [['op', 'operator']]));
  // "quiet" streams nothing for an hour: only a live query can tell the hub what it holds
  await register('quiet', { stream: { interval: '1h' } });
  await register('private', { xdr: false });
  await register('polling', { push: false });
  for (const name of ['quiet', 'private'])
    await waitFor(() => gws[name].gateway.hubEvents.health().connected || undefined, 10_000, `${name} connected`);
});

after(async () => {
  for (const gw of Object.values(gws)) await gw.stop();
  await hub?.stop();
});

test('a block list entry and a rule reach a connected gateway at once; push off still polls', async () => {
  assert.equal(gws.polling.gateway.hubEvents.health().connected, false, 'cloud.push off: no stream');
  const started = Date.now();
  const entry = await call('POST', '/api/v1/blocklist', { kind: 'domain', value: 'pushed.test', reason: 'push' });
  assert.equal(entry.json.status, 'active', JSON.stringify(entry.json));
  // the block list's own fetch runs every 30 s: seconds mean it was pushed
  await waitFor(
    () => gws.quiet.gateway.hubBlockList.blocked('x@pushed.test', 'incoming') || undefined,
    10_000,
    'the entry pushed to the gateway',
  );
  assert.ok(Date.now() - started < 10_000);

  const draft = await call('POST', '/api/v1/rules', {
    level: 4,
    category: 'phish',
    description: 'pushed rule',
    condition: { subject: ['pushed rule test'] },
  });
  const pub = await call('POST', '/api/v1/rules/publish', { ids: [draft.json.id] });
  assert.equal(pub.status, 200, JSON.stringify(pub.json));
  for (const name of ['quiet', 'private', 'polling'])
    await waitFor(
      () => (gws[name].gateway.outbreak.bundle?.version ?? 0) >= pub.json.bundle.version || undefined,
      15_000,
      `${name} has the rule`,
    );
  const health = gws.quiet.gateway.hubEvents.health();
  assert.ok(health.events >= 3, `hello, blocklist and rules events arrived: ${JSON.stringify(health)}`);
});

test('an investigation asks connected gateways live and finds mail not streamed yet', async () => {
  const sent = await sendMessage(
    gws.quiet.port('incoming'),
    'sender@live.test',
    ['bob@dst.test'],
    'From: <sender@live.test>\r\nTo: bob@dst.test\r\nSubject: live query\r\nMessage-ID: <live-1@live.test>\r\n\r\nhello\r\n',
  );
  await waitFor(() => gws.quiet.gateway.tracker.show(sent.mid!)?.status === 'delivered' || undefined, 15_000, 'sent');
  // nothing streamed: the stored summaries alone do not know it
  const stored = await call('POST', '/api/v1/investigate', { text: 'sender@live.test', live: false });
  assert.equal(stored.json.observables[0].sightings.count, 0);
  assert.deepEqual(stored.json.live.asked, []);

  const live = await call('POST', '/api/v1/investigate', { text: 'sender@live.test' });
  assert.equal(live.status, 200, JSON.stringify(live.json));
  const quietId = gws.quiet.gateway.cloud.state().deviceId!;
  const privateId = gws.private.gateway.cloud.state().deviceId!;
  assert.deepEqual([...live.json.live.asked].sort(), [quietId, privateId].sort(), 'connected gateways are asked');
  assert.deepEqual(live.json.live.missing, []);
  const answers = Object.fromEntries(live.json.live.answered.map((a: any) => [a.deviceId, a.messages]));
  assert.equal(answers[quietId], 1);
  assert.equal(answers[privateId], 0, 'cloud.xdr off: an empty answer');
  assert.equal(live.json.observables[0].sightings.count, 1);
  assert.equal(live.json.messages[0].summary.messageId, '<live-1@live.test>');
  assert.equal(live.json.messages[0].deviceId, quietId);
  // kept: the stored summaries know it now
  const after = await call('POST', '/api/v1/investigate', { text: 'sender@live.test', live: false });
  assert.equal(after.json.observables[0].sightings.count, 1);
});

test('a gateway answering after its query ended gets query_not_found', async () => {
  const r = await gws.quiet.gateway.cloud.call('POST', '/api/v1/device/queries/not-a-query', { summaries: [] });
  assert.equal(r.status, 404);
  assert.equal(((await r.json()) as any).error.code, 'query_not_found');
});

test('a device holds at most MAX_STREAMS_PER_DEVICE streams: a new one replaces the oldest', async () => {
  // the polling gateway (cloud.push off) holds no stream of its own: these three are all it has
  const cloud = gws.polling.gateway.cloud;
  const deviceId = cloud.state().deviceId!;
  const open = async () => {
    const abort = new AbortController();
    const res = await cloud.call('GET', '/api/v1/device/events', undefined, 60_000, abort.signal);
    assert.equal(res.status, 200);
    const s = { text: '', ended: false, abort: () => abort.abort() };
    const decoder = new TextDecoder();
    void (async () => {
      try {
        for await (const chunk of res.body!) s.text += decoder.decode(chunk as Uint8Array, { stream: true });
      } catch {
        // aborted by the test
      }
      s.ended = true;
    })();
    await waitFor(() => s.text.includes('event: hello') || undefined, 5000, 'hello');
    return s;
  };
  assert.equal(MAX_STREAMS_PER_DEVICE, 2);
  const first = await open();
  const second = await open();
  assert.ok(!first.ended && !second.ended);
  const third = await open();
  await waitFor(() => first.ended || undefined, 5000, 'the oldest stream ended');
  assert.match(first.text, /: replaced by a newer stream of this device\n\n$/);
  // the other two stay and get what is pushed to the device
  const entry = await call('POST', '/api/v1/blocklist', { kind: 'domain', value: 'streams.test', reason: 'cap' });
  assert.equal(entry.json.status, 'active', JSON.stringify(entry.json));
  for (const s of [second, third])
    await waitFor(() => s.text.includes('event: blocklist') || undefined, 5000, 'an event on a remaining stream');
  assert.ok(!second.ended && !third.ended);
  assert.ok(!first.text.includes('event: blocklist'));
  second.abort();
  third.abort();
  // once both are closed the hub no longer counts the device as connected: live queries skip it
  for (const deadline = Date.now() + 10_000; ; await new Promise((r) => setTimeout(r, 100))) {
    const live = await call('POST', '/api/v1/investigate', { text: 'nobody@streams.test' });
    if (!live.json.live.asked.includes(deviceId)) break;
    assert.ok(Date.now() < deadline, 'the hub forgot the closed streams');
  }
});

test('removing a device ends the streams it holds (last: the polling gateway is gone afterwards)', async () => {
  const cloud = gws.polling.gateway.cloud;
  const deviceId = cloud.state().deviceId!;
  const abort = new AbortController();
  const res = await cloud.call('GET', '/api/v1/device/events', undefined, 60_000, abort.signal);
  assert.equal(res.status, 200);
  let text = '';
  let ended = false;
  void (async () => {
    try {
      for await (const chunk of res.body!) text += Buffer.from(chunk as Uint8Array).toString();
    } catch {
      // aborted
    }
    ended = true;
  })();
  await waitFor(() => text.includes('event: hello') || undefined, 5000, 'hello');
  const removed = await hubJson(hub.url, hub.token, 'DELETE', `/api/v1/devices/${deviceId}`);
  assert.equal(removed.json.status, 'removed');
  await waitFor(() => ended || undefined, 5000, 'the stream of the removed device ended');
  assert.match(text, /: device removed\n\n$/);
  abort.abort();
});
