// Tickets and the watchlist on the hub (issue 14): a ticket is POSTed to a ticketing system's webhook (a
// local HTTP server here) with the configured template and headers, retried after failures with a
// doubling delay, marked failed with the reason after a webhook that never answers; a watched observable
// counts every new message that carries it and opens a ticket. A template that cannot give JSON is a
// configuration error with its path.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { checkHubConfigFile, loadHubConfig } from '../src/hub/config.ts';
import { runHub, type RunningHub } from '../src/hub/run.ts';
import { tempDir } from './helpers/peers.ts';
import { hubJson, registerTestDevices, sendSummaries, testSummary } from './helpers/hub.ts';
import { waitForAsync } from './helpers/rawsmtp.ts';

let hub: RunningHub;
let server: http.Server;
let mode: { failFirst: number; hang: boolean } = { failFirst: 0, hang: false };
const received: Array<{ headers: http.IncomingHttpHeaders; body: any }> = [];

const call = (method: string, route: string, body?: unknown) => hubJson(hub.url, hub.token, method, route, body);

const ticketEnded = (id: string) =>
  waitForAsync(
    async () => {
      const t = (await call('GET', '/api/v1/tickets')).json.tickets.find((x: any) => x.id === id);
      return t && t.status !== 'queued' ? t : null;
    },
    15_000,
    `ticket ${id} to end`,
  );

before(async () => {
  server = http.createServer((req, res) => {
    let text = '';
    req.on('data', (d) => (text += d));
    req.on('end', () => {
      received.push({ headers: req.headers, body: JSON.parse(text) });
      if (mode.hang) return; // never answers
      if (mode.failFirst > 0) {
        mode.failFirst--;
        res.writeHead(503).end('busy');
        return;
      }
      res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ key: `SOC-${received.length}` }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const dir = tempDir('bw-hub-tickets-');
  const file = path.join(dir, 'hub.yaml');
  writeFileSync(
    file,
    YAML.stringify({
      dataDir: './data',
      listen: { host: '127.0.0.1', port: 0 },
      tickets: {
        url: `http://127.0.0.1:${port}/rest/issue`,
        headers: { authorization: 'Bearer ticket-secret' },
        template: '{"fields": {"summary": "{{title}}", "description": "{{text}}\\n\\n{{observables}}"}}',
        timeout: '300ms',
        attempts: 3,
        backoff: '100ms',
      },
    }),
  );
  hub = await runHub(loadHubConfig(file));
});

after(async () => {
  await hub?.stop();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

test('a ticket goes to the webhook with the template and headers, retried until the ticketing system takes it', async () => {
  mode = { failFirst: 2, hang: false };
  const before = received.length;
  const t = await call('POST', '/api/v1/tickets', {
    title: 'Payroll "wave"',
    text: 'seen on\ntwo gateways',
    observables: [{ type: 'email', value: 'payroll@evil-pay.test' }],
  });
  assert.equal(t.status, 200, JSON.stringify(t.json));
  const done = await ticketEnded(t.json.id);
  assert.equal(done.status, 'sent');
  assert.equal(done.attempts, 3);
  assert.equal(done.reference, `SOC-${before + 3}`);
  const last = received.at(-1)!;
  assert.equal(last.headers.authorization, 'Bearer ticket-secret');
  assert.deepEqual(last.body, {
    fields: {
      summary: 'Payroll "wave"',
      description: 'seen on\ntwo gateways\n\nemail: payroll@evil-pay.test',
    },
  });
});

test('a webhook that never answers: retried, then marked failed with the reason', async () => {
  mode = { failFirst: 0, hang: true };
  const t = await call('POST', '/api/v1/tickets', { title: 'nobody home' });
  const done = await ticketEnded(t.json.id);
  assert.equal(done.status, 'failed');
  assert.equal(done.attempts, 3);
  assert.equal(done.lastError, 'no answer within 300 ms');
  mode = { failFirst: 0, hang: false };
});

test('a watched observable counts every new message that carries it and opens a ticket', async () => {
  const [device] = await registerTestDevices(hub.url, hub.token, ['gw-a']);
  const w = await call('POST', '/api/v1/watches', {
    observable: { type: 'email', value: 'Mallory@Evil.test' },
    note: 'case 17',
    ticket: true,
  });
  assert.equal(w.status, 200, JSON.stringify(w.json));
  assert.equal(w.json.value, 'mallory@evil.test');
  const before = received.length;
  await sendSummaries(hub.url, device, 'w1', [
    testSummary(1, { sender: 'mallory@evil.test', subject: 'first' }),
    testSummary(2, { sender: 'alice@good.test', subject: 'unrelated' }),
    testSummary(3, {
      sender: 'bob@good.test',
      recipients: [{ address: 'mallory@evil.test', status: 'delivered', lastReply: null }],
    }),
  ]);
  const watch = (await call('GET', '/api/v1/watches')).json.watches[0];
  assert.equal(watch.hits, 2);
  assert.deepEqual(
    (await call('GET', `/api/v1/watches/${watch.id}/hits`)).json.hits.map((h: any) => h.mid).sort(),
    [1, 3],
  );
  const body = await waitForAsync(async () => received.slice(before).at(0)?.body ?? null, 10_000, 'the watch ticket');
  assert.equal(body.fields.summary, 'Watched email mallory@evil.test seen again: 2 new message(s)');
  assert.match(body.fields.description, /Watch note: case 17\ngw-a MID 1: first/);
  // the same messages again (a newer summary of each) are no new sightings
  await sendSummaries(hub.url, device, 'w2', [testSummary(1, { sender: 'mallory@evil.test', version: 2 })]);
  assert.equal((await call('GET', '/api/v1/watches')).json.watches[0].hits, 2);
  assert.equal((await call('DELETE', `/api/v1/watches/${watch.id}`)).json.removed, true);
  assert.equal(
    (await call('POST', '/api/v1/watches', { observable: { type: 'md5', value: 'x' } })).json.error.code,
    'invalid_parameter',
  );
});

test('a ticket template that cannot give JSON is refused with its path', () => {
  const dir = tempDir('bw-hub-tickets-bad-');
  const file = path.join(dir, 'hub.yaml');
  writeFileSync(
    file,
    YAML.stringify({ dataDir: './data', tickets: { url: 'http://127.0.0.1:1/', template: '{"a": {{title}}}' } }),
  );
  const r = checkHubConfigFile(file);
  assert.equal(r.loaded, null);
  assert.deepEqual(
    r.errors.map((e) => e.path),
    ['tickets.template'],
  );
});
