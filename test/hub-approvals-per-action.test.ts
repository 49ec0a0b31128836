// Approval per action on the hub (issue 14, hub config `approvals.watch` and `approvals.ticket`): a watch
// counts no hit until a second user approves it; a ticket — one a user opens, or one a watch opens —
// reaches the ticketing system only after a second user's approval, never its requester's (nor the watch
// owner's); a refused ticket is never sent. The ticketing system is a local HTTP server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { RunningHub } from '../src/hub/run.ts';
import { waitForAsync } from './helpers/rawsmtp.ts';
import { addHubUsers, hubJson, registerTestDevices, sendSummaries, startTestHub, testSummary } from './helpers/hub.ts';

let hub: RunningHub;
let server: http.Server;
const received: any[] = [];
const tokens: Record<string, string> = {};
let device: { id: string; secret: string };
let mid = 1;
const call = (who: string, method: string, route: string, body?: unknown) =>
  hubJson(hub.url, tokens[who], method, route, body);

before(async () => {
  server = http.createServer((req, res) => {
    let text = '';
    req.on('data', (d) => (text += d));
    req.on('end', () => {
      received.push(JSON.parse(text));
      res.writeHead(201, { 'content-type': 'application/json' }).end('{"key":"SOC-1"}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  hub = await startTestHub({
    approvals: { watch: true, ticket: true },
    tickets: { url: `http://127.0.0.1:${port}/issue`, backoff: '100ms' },
  });
  Object.assign(
    tokens,
    await addHubUsers(hub, [
      ['alice', 'operator'],
      ['bob', 'operator'],
      ['ann', 'analyst'],
    ]),
  );
  [device] = await registerTestDevices(hub.url, hub.token, ['gw']);
});

after(async () => {
  await hub?.stop();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const sendFrom = (sender: string) =>
  sendSummaries(hub.url, device, `b${mid}`, [testSummary(mid++, { sender, subject: `from ${sender}` })]);

test('a watch waits for a second user before it counts hits; its tickets wait again', async () => {
  const w = await call('alice', 'POST', '/api/v1/watches', {
    observable: { type: 'email', value: 'spy@watched.test' },
    ticket: true,
  });
  assert.equal(w.status, 200, JSON.stringify(w.json));
  assert.equal(w.json.status, 'awaiting_approval');
  await sendFrom('spy@watched.test');
  assert.equal((await call('ann', 'GET', '/api/v1/watches')).json.watches[0].hits, 0, 'no hit before approval');

  const own = await call('alice', 'POST', `/api/v1/watches/${w.json.id}/approve`);
  assert.equal(own.status, 403);
  assert.equal(own.json.error.code, 'approval_by_requester');
  assert.equal((await call('ann', 'POST', `/api/v1/watches/${w.json.id}/approve`)).json.error.code, 'forbidden');
  const ok = await call('bob', 'POST', `/api/v1/watches/${w.json.id}/approve`);
  assert.equal(ok.status, 200, JSON.stringify(ok.json));
  assert.equal(ok.json.status, 'active');
  assert.equal(ok.json.decidedBy, 'bob');
  assert.equal((await call('bob', 'POST', `/api/v1/watches/${w.json.id}/approve`)).json.error.code, 'not_pending');

  await sendFrom('spy@watched.test');
  const listed = (await call('ann', 'GET', '/api/v1/watches')).json.watches[0];
  assert.equal(listed.hits, 1);
  // the hit opened a ticket, which waits: nothing reached the ticketing system
  const tickets = (await call('ann', 'GET', '/api/v1/tickets')).json.tickets;
  assert.equal(tickets.length, 1);
  assert.equal(tickets[0].status, 'awaiting_approval');
  assert.equal(tickets[0].createdBy, 'watch:alice');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(received.length, 0);
  // the watch's owner may not approve what her watch opened; another operator may
  assert.equal(
    (await call('alice', 'POST', `/api/v1/tickets/${tickets[0].id}/approve`)).json.error.code,
    'approval_by_requester',
  );
  const sent = await call('bob', 'POST', `/api/v1/tickets/${tickets[0].id}/approve`);
  assert.equal(sent.status, 200, JSON.stringify(sent.json));
  await waitForAsync(
    async () =>
      (await call('ann', 'GET', '/api/v1/tickets')).json.tickets.find((t: any) => t.id === tickets[0].id).status ===
      'sent',
    10_000,
    'the approved ticket sent',
  );
  assert.equal(received.length, 1);
  assert.match(received[0].title, /spy@watched\.test/);
});

test('a ticket a user opens waits; refused, it is never sent; a refused watch never counts', async () => {
  const before = received.length;
  const t = await call('ann', 'POST', '/api/v1/tickets', { title: 'look at this', text: 'details' });
  assert.equal(t.status, 200, JSON.stringify(t.json));
  assert.equal(t.json.status, 'awaiting_approval');
  const refused = await call('alice', 'POST', `/api/v1/tickets/${t.json.id}/refuse`);
  assert.equal(refused.json.status, 'refused');
  assert.equal(refused.json.lastError, 'refused by alice');
  assert.equal((await call('bob', 'POST', `/api/v1/tickets/${t.json.id}/approve`)).json.error.code, 'not_pending');
  assert.equal((await call('bob', 'POST', '/api/v1/tickets/nope/approve')).json.error.code, 'ticket_not_found');

  const w = await call('ann', 'POST', '/api/v1/watches', { observable: { type: 'domain', value: 'never.test' } });
  assert.equal((await call('bob', 'POST', `/api/v1/watches/${w.json.id}/refuse`)).json.status, 'refused');
  await sendFrom('x@never.test');
  const listed = (await call('ann', 'GET', '/api/v1/watches')).json.watches.find((x: any) => x.id === w.json.id);
  assert.equal(listed.hits, 0);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(received.length, before, 'nothing sent');
});
