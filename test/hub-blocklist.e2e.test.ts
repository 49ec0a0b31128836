// The hub's block list on every gateway (issue 14): an operator blocks a sender or a domain, a second
// user approves (never the requester; an analyst may not), the gateway fetches the list and refuses the
// sender at MAIL FROM (real SMTP) and drops mail whose header From is blocked, for the entry's direction
// only; removal and expiry lift it; an XDR's block action becomes a pending entry; everything is audited.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import type { RunningHub } from '../src/hub/run.ts';
import { addHubUsers, hubJson, startTestHub } from './helpers/hub.ts';
import { HubBlockListSync } from '../src/xdr/hub-blocklist.ts';
import { startTestGateway, testConfig } from './helpers/gateway.ts';
import { hasBinary, pythonSend, startSmtpSink, waitFor, type Sink } from './helpers/peers.ts';

const skip = hasBinary('smtp-sink') ? false : 'smtp-sink is not installed (run .ci/run)';
const RELAY_SECRET = 'blocklist-relay-secret-0123456789abcdef';
let hub: RunningHub;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
let sink: Sink;
const tokens: Record<string, string> = {};

const call = (who: string, method: string, route: string, body?: unknown) =>
  hubJson(hub.url, tokens[who], method, route, body);

function message(from: string, subject: string): string {
  return `From: <${from}>\r\nTo: <bob@dst.test>\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/\W+/g, '-')}@x.test>\r\n\r\nhello\r\n`;
}

async function send(listener: 'incoming' | 'outgoing', envelopeFrom: string, headerFrom: string, subject: string) {
  const to = listener === 'incoming' ? 'bob@dst.test' : 'partner@elsewhere.test';
  return pythonSend(gw.port(listener), envelopeFrom, [to], message(headerFrom, subject));
}

async function statusOf(subject: string): Promise<{ status: string; reason: string }> {
  const rec = await waitFor(
    () =>
      gw.gateway.tracker
        .search({ subject, limit: 5 })
        .find((m) => !['received', 'scanning', 'queued'].includes(m.status)),
    20_000,
    `tracking of ${subject}`,
  );
  const verdict = gw.gateway.tracker.show(rec.mid)!.events.find((e) => e.type === 'verdict') as any;
  return { status: rec.status, reason: verdict?.reason ?? '' };
}

before(async () => {
  if (skip) return;
  hub = await startTestHub({ approvals: { block: true }, relay: { jwtSecret: RELAY_SECRET } });
  Object.assign(
    tokens,
    await addHubUsers(hub, [
      ['op1', 'operator'],
      ['op2', 'operator'],
      ['analyst', 'analyst'],
    ]),
  );
  sink = await startSmtpSink();
  gw = await startTestGateway(
    testConfig({
      routes: { '*': [`smtp://127.0.0.1:${sink.port}`] },
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
});

after(async () => {
  await gw?.stop();
  await hub?.stop();
  await sink?.stop();
});

test(
  'a blocked sender needs a second approval, then every gateway refuses it at MAIL FROM and drops its header From',
  { skip },
  async () => {
    const req = await call('op1', 'POST', '/api/v1/blocklist', {
      kind: 'sender',
      value: 'Mallory@Evil.test',
      reason: 'payroll phishing, case 17',
      expires: '7d',
    });
    assert.equal(req.status, 200, JSON.stringify(req.json));
    assert.equal(req.json.status, 'pending');
    assert.equal(req.json.value, 'mallory@evil.test');
    const id = req.json.id as string;
    // not active yet: the gateway still accepts
    await gw.gateway.hubBlockList.fetch();
    assert.equal(gw.gateway.hubBlockList.health().entries, 0);
    // the requester may not approve their own request; an analyst may not approve at all
    const own = await call('op1', 'POST', `/api/v1/blocklist/${id}/approve`);
    assert.equal(own.status, 403);
    assert.equal(own.json.error.code, 'approval_by_requester');
    const analyst = await call('analyst', 'POST', `/api/v1/blocklist/${id}/approve`);
    assert.equal(analyst.json.error.code, 'forbidden');
    const ok = await call('op2', 'POST', `/api/v1/blocklist/${id}/approve`);
    assert.equal(ok.json.status, 'active');
    assert.equal(ok.json.decidedBy, 'op2');
    assert.equal((await call('op2', 'POST', `/api/v1/blocklist/${id}/approve`)).json.error.code, 'not_pending');

    await gw.gateway.hubBlockList.fetch();
    assert.equal(gw.gateway.hubBlockList.health().entries, 1);
    // the envelope sender is refused at MAIL FROM, with the reason in the mail log
    const refused = await send('incoming', 'mallory@evil.test', 'mallory@evil.test', 'blocked envelope');
    assert.match(refused.out, /550.*5\.7\.1 Sender blocked/, refused.out);
    // a blocked header From behind another envelope sender: accepted, then dropped by policy, tracked
    const hidden = await send('incoming', 'bounce@mailer.test', 'MALLORY@evil.test', 'blocked header from');
    assert.match(hidden.out, /"ok": true/);
    const t = await statusOf('blocked header from');
    assert.equal(t.status, 'dropped', 'a drop verdict: dropped by policy, never delivered');
    assert.match(t.reason, new RegExp(`hub's block list \\(entry ${id}: payroll phishing`));
    // others pass
    await send('incoming', 'alice@good.test', 'alice@good.test', 'not blocked');
    assert.equal((await statusOf('not blocked')).status, 'delivered');
    // the list survives a restart of the gateway's view (kept in its database)
    await gw.gateway.store.committed();
    const again = new HubBlockListSync({
      cloud: gw.gateway.cloud,
      store: gw.gateway.store,
      log: { info() {}, warning() {} },
    });
    assert.equal(again.blocked('mallory@evil.test', 'incoming')?.id, id);
    assert.equal(again.blocked('mallory@evil.test', 'outgoing'), null, 'an incoming block leaves outgoing mail alone');

    // unblock: the next fetch lifts it
    const removed = await call('op1', 'DELETE', `/api/v1/blocklist/${id}`);
    assert.equal(removed.json.status, 'removed');
    await gw.gateway.hubBlockList.fetch();
    assert.match((await send('incoming', 'mallory@evil.test', 'mallory@evil.test', 'after unblock')).out, /"ok": true/);

    const history = (await call('analyst', 'GET', '/api/v1/blocklist')).json.entries;
    assert.equal(history.find((e: any) => e.id === id).status, 'removed');
  },
);

test(
  'a compromised internal domain is blocked for outgoing mail only; expiry lifts a block without a fetch',
  { skip },
  async () => {
    const req = await call('op2', 'POST', '/api/v1/blocklist', {
      kind: 'domain',
      value: '@compromised.test',
      direction: 'outgoing',
      reason: 'account takeover',
    });
    await call('op1', 'POST', `/api/v1/blocklist/${req.json.id}/approve`);
    await gw.gateway.hubBlockList.fetch();
    const out = await send('outgoing', 'ceo@sales.compromised.test', 'ceo@sales.compromised.test', 'outgoing blocked');
    assert.match(out.out, /550.*Sender blocked/, 'subdomains too');
    const inbound = await send('incoming', 'ceo@compromised.test', 'ceo@compromised.test', 'incoming allowed');
    assert.match(inbound.out, /"ok": true/, 'the block is for outgoing mail');

    const soon = new Date(Date.now() + 1500).toISOString();
    const short = await call('op1', 'POST', '/api/v1/blocklist', {
      kind: 'sender',
      value: 'temp@spam.test',
      reason: 'for a moment',
      expires: soon,
    });
    await call('op2', 'POST', `/api/v1/blocklist/${short.json.id}/approve`);
    await gw.gateway.hubBlockList.fetch();
    assert.ok(gw.gateway.hubBlockList.blocked('temp@spam.test', 'incoming'));
    await new Promise((r) => setTimeout(r, 1700));
    assert.equal(gw.gateway.hubBlockList.blocked('temp@spam.test', 'incoming'), null);
    assert.equal((await call('op1', 'GET', `/api/v1/blocklist?status=expired`)).json.entries[0].id, short.json.id);
    // bad input: clear codes
    const bad = await call('op1', 'POST', '/api/v1/blocklist', { kind: 'domain', value: 'not a domain', reason: 'x' });
    assert.equal(bad.json.error.code, 'invalid_parameter');
    assert.equal((await call('op1', 'POST', '/api/v1/blocklist/nope/approve')).json.error.code, 'block_not_found');
    const past = await call('op1', 'POST', '/api/v1/blocklist', {
      kind: 'sender',
      value: 'a@b.test',
      reason: 'x',
      expires: '2000-01-01T00:00:00Z',
    });
    assert.equal(past.json.error.code, 'invalid_parameter');
  },
);

test(
  "an XDR's block-domain becomes a pending entry on the hub; approvals and refusals are audited",
  { skip },
  async () => {
    const jwt = await new SignJWT({ sub: 'soc' })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(RELAY_SECRET));
    const r = await fetch(`${hub.url}/respond/trigger`, {
      method: 'POST',
      headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        'action-id': 'block-domain',
        observable_type: 'domain',
        observable_value: 'lookalike.test',
      }),
    });
    const answer = (await r.json()) as any;
    assert.equal(answer.data.status, 'success', JSON.stringify(answer));
    const pending = (await call('op1', 'GET', '/api/v1/blocklist?status=pending')).json.entries;
    const entry = pending.find((e: any) => e.value === 'lookalike.test');
    assert.ok(entry, JSON.stringify(pending));
    assert.match(entry.requestedBy, /^xdr:/);
    const refused = await call('op1', 'POST', `/api/v1/blocklist/${entry.id}/refuse`);
    assert.equal(refused.json.status, 'refused');
    const audit = (await (
      await fetch(`${hub.url}/api/v1/audit?limit=200`, { headers: { authorization: `Bearer ${hub.token}` } })
    ).json()) as any;
    const actions = audit.entries.map((e: any) => `${e.user} ${e.action} ${e.status}`);
    for (const a of [
      'op1 requestBlockEntry 200',
      'op1 approveBlockEntry 403',
      'analyst approveBlockEntry 403',
      'op2 approveBlockEntry 200',
      'op1 removeBlockEntry 200',
      'op1 refuseBlockEntry 200',
    ])
      assert.ok(actions.includes(a), `${a} in the audit log`);
  },
);
