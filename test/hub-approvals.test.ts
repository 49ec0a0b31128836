// Approval-gated remediation on the hub (issue 14): with `approvals.remediate`, deleting a delivered message
// from mailboxes — asked by a hub user or by an XDR through /respond/trigger — waits for a second user;
// no gateway sees the action until then (its long poll answers nothing), the requester cannot approve it,
// an analyst may not, a refusal ends it, and every step is audited.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import type { RunningHub } from '../src/hub/run.ts';
import { HUB_AUDIENCE, signDeviceToken } from '../src/xdr/device-jwt.ts';
import { addHubUsers, hubJson, registerTestDevices, sendSummaries, startTestHub, testSummary } from './helpers/hub.ts';

const RELAY_SECRET = 'approvals-relay-secret-0123456789abcdef';
let hub: RunningHub;
let device: { id: string; secret: string };
const tokens: Record<string, string> = {};

const call = (who: string, method: string, route: string, body?: unknown) =>
  hubJson(hub.url, tokens[who], method, route, body);

/** What the gateway's poll gets now. */
async function poll(): Promise<any[]> {
  const jwt = await signDeviceToken(device.id, device.secret, HUB_AUDIENCE);
  const r = await fetch(`${hub.url}/api/v1/device/actions?wait=0`, { headers: { authorization: `Bearer ${jwt}` } });
  return ((await r.json()) as any).actions;
}

before(async () => {
  hub = await startTestHub({ approvals: { remediate: true }, relay: { jwtSecret: RELAY_SECRET } });
  Object.assign(
    tokens,
    await addHubUsers(hub, [
      ['op1', 'operator'],
      ['op2', 'operator'],
      ['analyst', 'analyst'],
    ]),
  );
  [device] = await registerTestDevices(hub.url, hub.token, ['gw-a']);
  await sendSummaries(hub.url, device, 'b1', [
    testSummary(7, { messageId: '<phish-1@evil.test>' }),
    testSummary(8, { messageId: '<phish-2@evil.test>' }),
  ]);
});

after(async () => {
  await hub?.stop();
});

test('a hub user’s remediation waits for a second user; the gateway sees it only once approved', async () => {
  const asked = await call('op1', 'POST', '/api/v1/actions', {
    action: 'delete',
    observable: { type: 'email_messageid', value: '<phish-1@evil.test>' },
  });
  assert.equal(asked.status, 200, JSON.stringify(asked.json));
  assert.match(asked.json.detail, /waits for a hub user's approval: gw-a/);
  const [action] = (await call('op1', 'GET', '/api/v1/actions?status=awaiting_approval')).json.actions;
  assert.equal(action.requestedBy, 'op1');
  assert.deepEqual(await poll(), [], 'the gateway does not see it yet');
  assert.equal(
    (await call('op1', 'POST', `/api/v1/actions/${action.id}/approve`)).json.error.code,
    'approval_by_requester',
  );
  assert.equal((await call('analyst', 'POST', `/api/v1/actions/${action.id}/approve`)).json.error.code, 'forbidden');
  const approved = await call('op2', 'POST', `/api/v1/actions/${action.id}/approve`);
  assert.equal(approved.json.status, 'pending');
  assert.equal(approved.json.detail, 'approved by op2');
  const taken = await poll();
  assert.deepEqual(
    taken.map((a) => [a.id, a.action, a.observable.value]),
    [[action.id, 'delete', '<phish-1@evil.test>']],
  );
  assert.equal((await call('op2', 'POST', `/api/v1/actions/${action.id}/approve`)).json.error.code, 'not_pending');
});

test('an XDR’s delete waits the same way; a refusal ends it; every step is audited', async () => {
  const jwt = await new SignJWT({ sub: 'soc' })
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime('5m')
    .sign(new TextEncoder().encode(RELAY_SECRET));
  const r = await fetch(`${hub.url}/respond/trigger`, {
    method: 'POST',
    headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      'action-id': 'delete',
      observable_type: 'email_messageid',
      observable_value: '<phish-2@evil.test>',
    }),
  });
  assert.equal(((await r.json()) as any).data.status, 'success');
  const [action] = (await call('op1', 'GET', '/api/v1/actions?status=awaiting_approval')).json.actions;
  assert.match(action.requestedBy, /soc/);
  const refused = await call('op1', 'POST', `/api/v1/actions/${action.id}/refuse`);
  assert.equal(refused.json.status, 'refused');
  assert.deepEqual(await poll(), [], 'a refused action never reaches the gateway');
  const audit = (await (
    await fetch(`${hub.url}/api/v1/audit?limit=100`, { headers: { authorization: `Bearer ${hub.token}` } })
  ).json()) as any;
  const steps = audit.entries.map((e: any) => `${e.user} ${e.action} ${e.status}`);
  for (const s of [
    'op1 requestRemediation 200',
    'op1 approveAction 403',
    'analyst approveAction 403',
    'op2 approveAction 200',
    'op1 refuseAction 200',
  ])
    assert.ok(steps.includes(s), `${s} in the audit log`);
});
