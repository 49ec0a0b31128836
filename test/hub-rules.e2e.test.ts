// Outbreak rules published by the hub (issue 14): an analyst drafts a rule, an operator publishes it (an
// analyst may not), and every registered gateway has it in seconds over its device channel, verified with
// the key it pinned at registration; a message matching it is held; retiring the rule releases that
// message early (§4.5) into the sink; a tampered bundle is refused and the previous rules stay; a gateway
// that was not polling during a publication gets the latest version when it polls again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { RunningHub } from '../src/hub/run.ts';
import { addHubUsers, hubJson, startTestHub } from './helpers/hub.ts';
import { startTestGateway, testConfig } from './helpers/gateway.ts';
import { hasBinary, startSmtpSink, waitFor, type Sink } from './helpers/peers.ts';
import { sendMessage } from './helpers/rawsmtp.ts';

const skip = hasBinary('smtp-sink') ? false : 'smtp-sink is not installed (run .ci/run)';
let hub: RunningHub;
let sink: Sink;
const gws: Array<Awaited<ReturnType<typeof startTestGateway>>> = [];
const tokens: Record<string, string> = {};

const call = (who: string, method: string, route: string, body?: unknown) =>
  hubJson(hub.url, tokens[who], method, route, body);

const version = (i: number) => gws[i].gateway.outbreak.bundle?.version ?? 0;
const everyGatewayAt = (v: number) =>
  waitFor(() => (gws.every((_, i) => version(i) >= v) ? true : undefined), 15_000, `every gateway at version ${v}`);

before(async () => {
  if (skip) return;
  hub = await startTestHub();
  Object.assign(
    tokens,
    await addHubUsers(hub, [
      ['analyst', 'analyst'],
      ['operator', 'operator'],
    ]),
  );
  sink = await startSmtpSink({ dump: true });
  for (let i = 0; i < 3; i++) {
    const gw = await startTestGateway(
      testConfig({
        routes: { '*': [`smtp://127.0.0.1:${sink.port}`] },
        outbreakFilters: { adaptiveRules: false, reevaluateInterval: '1s' },
        cloud: { enabled: true, region: 'eu', regions: { eu: hub.url } },
      }),
    );
    const { token } = (await (
      await fetch(`${hub.url}/api/v1/tokens`, {
        method: 'POST',
        headers: { authorization: `Bearer ${hub.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ region: 'eu' }),
      })
    ).json()) as { token: string };
    assert.equal((await gw.gateway.cloud.register(token)).status, 'registered');
    assert.equal(gw.gateway.cloud.rulesPublicKey(), hub.rules.publicKey, 'the key is pinned at registration');
    gws.push(gw);
  }
});

after(async () => {
  for (const gw of gws) await gw.stop();
  await hub?.stop();
  await sink?.stop();
});

test(
  'a drafted rule, published by an operator, reaches every gateway; retiring it releases held mail early',
  { skip, timeout: 90_000 },
  async () => {
    // a malformed rule is refused with every error; an analyst drafts a good one
    const bad = await call('analyst', 'POST', '/api/v1/rules', {
      level: 4,
      category: 'phish',
      description: 'x',
      condition: { body: [] },
    });
    assert.equal(bad.json.error.code, 'invalid_rule', JSON.stringify(bad.json));
    const draft = await call('analyst', 'POST', '/api/v1/rules', {
      level: 4,
      category: 'phish',
      description: 'CEO wire fraud wave',
      condition: { body: ['wire the payment today'] },
    });
    assert.equal(draft.status, 200, JSON.stringify(draft.json));
    assert.equal(draft.json.status, 'draft');
    const id = draft.json.id as string;
    assert.match(id, /^OUTBREAK_\d{7}$/);
    // analysts do not publish
    assert.equal((await call('analyst', 'POST', '/api/v1/rules/publish', { ids: [id] })).json.error.code, 'forbidden');
    const pub = await call('operator', 'POST', '/api/v1/rules/publish', { ids: [id] });
    assert.equal(pub.status, 200, JSON.stringify(pub.json));
    assert.equal(pub.json.bundle.version, 1);
    await everyGatewayAt(1);
    for (let i = 0; i < 3; i++) assert.ok(gws[i].gateway.rules.activeRules().some((r) => r.id === id));

    // mail matching it is held on the gateway it reaches
    const sent = await sendMessage(
      gws[0].port('incoming'),
      'ceo@lookalike.test',
      ['bob@dst.test'],
      'From: <ceo@lookalike.test>\r\nTo: bob@dst.test\r\nSubject: urgent\r\n\r\nPlease wire the payment today, I am in a meeting.\r\n',
    );
    await waitFor(() => gws[0].gateway.tracker.show(sent.mid!)?.status === 'quarantined', 15_000, 'held');
    assert.deepEqual(
      gws[0].gateway.tracker.show(sent.mid!)!.threatRules.map((r) => r.id),
      [id],
    );

    // retiring publishes a bundle without it: the held message is released early and delivered
    const retired = await call('operator', 'POST', `/api/v1/rules/${id}/retire`);
    assert.equal(retired.json.rule.status, 'retired');
    assert.equal(retired.json.bundle.version, 2);
    await everyGatewayAt(2);
    await waitFor(
      () => sink.messages().some((m) => m.body.includes('wire the payment today')),
      20_000,
      'released early into the sink',
    );
    const listed = await call('analyst', 'GET', '/api/v1/rules');
    assert.deepEqual(
      listed.json.bundles.map((b: any) => [b.version, b.rules]),
      [
        [2, 0],
        [1, 1],
      ],
    );
    assert.equal(listed.json.publicKey, hub.rules.publicKey);
  },
);

test(
  'a tampered bundle is refused by the gateway and its rules stay; a gateway not polling during a publication catches up',
  { skip, timeout: 60_000 },
  async () => {
    const draft = await call('analyst', 'POST', '/api/v1/rules', {
      level: 3,
      category: 'malware',
      description: 'ISO droppers',
      condition: { attachment: { extension: ['iso'] } },
    });
    // gateway 2 stops polling: it misses the push
    await gws[2].gateway.hubRules.stop();
    const before2 = version(2);
    const pub = await call('operator', 'POST', '/api/v1/rules/publish', { ids: [draft.json.id] });
    const v = pub.json.bundle.version as number;
    await waitFor(() => (version(0) >= v && version(1) >= v ? true : undefined), 15_000, 'gateways 0 and 1 updated');
    assert.equal(version(2), before2, 'gateway 2 missed it');
    gws[2].gateway.hubRules.start();
    await waitFor(() => (version(2) >= v ? true : undefined), 15_000, 'gateway 2 caught up');

    // someone alters the stored bundle on the hub: the signature no longer holds
    hub.store.db
      .prepare('update hub_bundles set text = replace(text, ?, ?) where version = ?')
      .run('"iso"', '"txt"', v);
    const r = await gws[0].gateway.rules.update();
    assert.equal(r.status, 'failed');
    assert.equal((r as any).error.code, 'bad_signature');
    assert.equal(version(0), v, 'the verified rules stay active');
    assert.ok(gws[0].gateway.rules.activeRules().some((x) => x.id === draft.json.id));
    const alerts = gws[0].gateway.alerts.list({ limit: 50 }).map((a: any) => a.key);
    assert.ok(
      alerts.some((k: string) => k.startsWith('outbreak.feed_failed:bad_signature')),
      alerts.join(', '),
    );
  },
);
