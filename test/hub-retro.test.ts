// Retro-remediation on the hub (issue 14): publishing a rule proposes remediating the incoming mail already
// delivered within the window that it matches — on the gateways that delivered it, as actions waiting for
// approval — and nothing else (outgoing, held, too old or other mail); a version of a rule is looked at once;
// an approval sends each action to its gateway, a dismissal refuses them; a rule that tests the body under
// "not" is not evaluated on summaries. Summaries arrive through the real device intake.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { RunningHub } from '../src/hub/run.ts';
import { candidateQueries, unevaluableUnderNot } from '../src/hub/retro.ts';
import { waitForAsync } from './helpers/rawsmtp.ts';
import { addHubUsers, hubJson, registerTestDevices, sendSummaries, startTestHub, testSummary } from './helpers/hub.ts';

const HASH = 'e'.repeat(64);
const HOUR = 3_600_000;
let hub: RunningHub;
let devices: Array<{ id: string; secret: string }>;
const tokens: Record<string, string> = {};
const call = (who: string, method: string, route: string, body?: unknown) =>
  hubJson(hub.url, tokens[who], method, route, body);

const attachment = { name: 'invoice.html', trueType: 'text/html', size: 900, sha256: HASH };
const ago = (ms: number) => new Date(Date.now() - ms).toISOString();

async function publish(condition: unknown, level = 4): Promise<string> {
  const d = await call('analyst', 'POST', '/api/v1/rules', {
    level,
    category: 'phish',
    description: 'wave',
    condition,
  });
  assert.equal(d.status, 200, JSON.stringify(d.json));
  const p = await call('operator', 'POST', '/api/v1/rules/publish', { ids: [d.json.id] });
  assert.equal(p.status, 200, JSON.stringify(p.json));
  return d.json.id as string;
}

async function proposalOf(ruleId: string, n = 1): Promise<any[]> {
  let found: any[] = [];
  await waitForAsync(
    async () => {
      found = (await call('analyst', 'GET', '/api/v1/retro')).json.proposals.filter((p: any) => p.ruleId === ruleId);
      return found.length >= n;
    },
    10_000,
    `${n} proposal(s) for ${ruleId}`,
  );
  return found;
}

before(async () => {
  hub = await startTestHub({ retroRemediation: { window: '24h', action: 'forward-and-delete' } });
  Object.assign(
    tokens,
    await addHubUsers(hub, [
      ['analyst', 'analyst'],
      ['operator', 'operator'],
      ['operator2', 'operator'],
    ]),
  );
  devices = await registerTestDevices(hub.url, hub.token, ['gw-a', 'gw-b']);
  const [a, b] = devices;
  await sendSummaries(hub.url, a, 'a1', [
    testSummary(1, { attachments: [attachment], receivedAt: ago(HOUR) }), // delivered: proposed
    testSummary(2, { attachments: [attachment], receivedAt: ago(30 * HOUR) }), // older than the window
    testSummary(3, {
      attachments: [attachment],
      status: 'quarantined',
      recipients: [{ address: 'bob@dst.test', status: 'quarantined', lastReply: null }],
    }), // held: nothing in a mailbox
    testSummary(4, { attachments: [attachment], direction: 'outgoing', listener: 'outgoing' }), // outgoing
    testSummary(5, { subject: 'Your parcel is waiting', sender: 'track@parcel.test' }),
    testSummary(6, { subject: 'lunch?' }),
  ]);
  await sendSummaries(hub.url, b, 'b1', [
    testSummary(1, {
      attachments: [attachment],
      recipients: [
        { address: 'carol@dst.test', status: 'delivered', lastReply: '250 ok' },
        { address: 'dan@dst.test', status: 'bounced', lastReply: '550 no' },
      ],
    }),
  ]);
});

after(async () => {
  await hub?.stop();
});

test('a published rule proposes remediating the delivered incoming mail it matches, on each gateway', async () => {
  const ruleId = await publish({ attachment: { sha256: [HASH] } });
  const [p] = await proposalOf(ruleId);
  assert.equal(p.status, 'proposed');
  assert.equal(p.action, 'forward-and-delete');
  const named = p.messages.map((m: any) => `${m.deviceId}:${m.mid}`).sort();
  assert.deepEqual(named, [`${devices[0].id}:1`, `${devices[1].id}:1`].sort());
  const onB = p.messages.find((m: any) => m.deviceId === devices[1].id);
  assert.deepEqual(onB.recipients, ['carol@dst.test'], 'only the mailboxes it reached');
  // nothing reaches a gateway before a user approves
  const waiting = (await call('analyst', 'GET', '/api/v1/actions?status=awaiting_approval')).json.actions;
  for (const m of p.messages) {
    const a = waiting.find((x: any) => x.id === m.actionId);
    assert.ok(a, `action ${m.actionId} awaits approval`);
    assert.equal(a.action, 'forward-and-delete');
    assert.deepEqual(a.observable, { type: 'cisco_mid', value: String(m.mid) });
    assert.equal(a.requestedBy, `retro:${ruleId}`);
  }

  // an analyst may look but not decide
  assert.equal((await call('analyst', 'POST', `/api/v1/retro/${p.id}/approve`)).status, 403);
  const ok = await call('operator', 'POST', `/api/v1/retro/${p.id}/approve`);
  assert.equal(ok.status, 200, JSON.stringify(ok.json));
  assert.equal(ok.json.proposal.status, 'approved');
  assert.equal(ok.json.proposal.decidedBy, 'operator');
  assert.deepEqual(
    ok.json.actions.map((a: any) => a.status),
    ['pending', 'pending'],
  );
  const again = await call('operator2', 'POST', `/api/v1/retro/${p.id}/approve`);
  assert.equal(again.status, 409);
  assert.equal(again.json.error.code, 'not_pending');

  // publishing again (another rule) does not look at this version of the rule again
  const other = await publish({ subject: ['parcel is waiting'] });
  const [q] = await proposalOf(other);
  assert.equal((await proposalOf(ruleId)).length, 1);
  // a subject-only rule is evaluated over the window (no index key): only the matching message
  assert.deepEqual(
    q.messages.map((m: any) => m.mid),
    [5],
  );
  const d = await call('operator2', 'POST', `/api/v1/retro/${q.id}/dismiss`);
  assert.equal(d.status, 200, JSON.stringify(d.json));
  assert.equal(d.json.status, 'dismissed');
  const refused = (await call('analyst', 'GET', '/api/v1/actions?status=refused')).json.actions;
  assert.ok(
    refused.some((a: any) => a.id === q.messages[0].actionId),
    'its action is refused',
  );

  // a raised level is a new version: looked at again, but what was proposed is not proposed twice
  const e = await call('operator', 'PATCH', `/api/v1/rules/${ruleId}`, { level: 5 });
  assert.equal(e.status, 200, JSON.stringify(e.json));
  const versions = await proposalOf(ruleId, 2);
  assert.equal(versions[0].status, 'none');
  assert.deepEqual(versions[0].messages, []);
});

test('rules below the level, or testing what summaries lack under "not", propose nothing', async () => {
  const low = await publish({ attachment: { sha256: [HASH] } }, 3);
  const blind = await publish({ all: [{ attachment: { sha256: [HASH] } }, { not: { body: ['unsubscribe'] } }] });
  const [p] = await proposalOf(blind);
  assert.equal(p.status, 'not_evaluable');
  assert.match(p.note, /body/);
  const all = (await call('analyst', 'GET', '/api/v1/retro')).json.proposals;
  assert.ok(!all.some((x: any) => x.ruleId === low), 'a level-3 rule proposes nothing (minLevel 4)');
  const missing = await call('operator', 'POST', '/api/v1/retro/nope/approve');
  assert.equal(missing.status, 404);
  assert.equal(missing.json.error.code, 'proposal_not_found');
});

test('candidate lookups are supersets the rule narrows, and a scan where there is no key', () => {
  assert.deepEqual(candidateQueries({ attachment: { sha256: ['AB'.repeat(32)] } }), [
    { type: 'sha256', value: 'ab'.repeat(32) },
  ]);
  assert.deepEqual(candidateQueries({ all: [{ subject: ['x'] }, { url: { host: ['.a.evil.com'] } }] }), [
    { type: 'domain', value: 'evil.com' },
  ]);
  assert.equal(candidateQueries({ any: [{ subject: ['x'] }, { sender: ['@evil.test'] }] }), null);
  assert.equal(candidateQueries({ sender: ['.evil.test'] }), null, 'subdomains of a sender have no one key');
  assert.deepEqual(candidateQueries({ sender: ['bad@evil.test', '@evil.test'] }), [
    { type: 'email', value: 'bad@evil.test' },
    { type: 'domain', value: 'evil.test' },
  ]);
  assert.equal(unevaluableUnderNot({ not: { not: { body: ['x'] } } }), null, 'double negation is positive');
  assert.equal(
    unevaluableUnderNot({ any: [{ subject: ['x'] }, { not: { member: { extension: ['exe'] } } }] }),
    'member',
  );
});
