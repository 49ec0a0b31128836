// Response actions through the hub (DESIGN §11.3): an XDR asks the hub's relay to delete a message; the
// hub sends the action to every gateway that holds it (their long poll takes it), each remediates
// through its own mailbox profiles, and the hub answers with every gateway's result. Real Dovecot, two
// real gateways registered with one hub, real SMTP traffic.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import YAML from 'yaml';
import { SignJWT } from 'jose';
import { loadHubConfig } from '../src/hub/config.ts';
import { runHub, type RunningHub } from '../src/hub/run.ts';
import { DeviceActions } from '../src/hub/actions.ts';
import { HubStore } from '../src/hub/store.ts';
import { startTestGateway, testConfig } from './helpers/gateway.ts';
import { hasDovecot, startDovecot, type TestDovecot } from './helpers/dovecot.ts';
import { tempDir, waitFor } from './helpers/peers.ts';
import { sendMessage } from './helpers/rawsmtp.ts';

const skip = hasDovecot() ? false : 'dovecot is not installed (run .ci/run)';
const RELAY_SECRET = 's'.repeat(40);

let hub: RunningHub;
let dovecot: TestDovecot;
let gwA: Awaited<ReturnType<typeof startTestGateway>>;
let gwB: Awaited<ReturnType<typeof startTestGateway>>;

async function hubCall(method: string, route: string, body?: unknown): Promise<any> {
  const res = await fetch(`${hub.url}${route}`, {
    method,
    headers: {
      authorization: `Bearer ${hub.token}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  return res.json();
}

async function xdr(route: string, body: unknown): Promise<{ status: number; json: any }> {
  const jwt = await new SignJWT({ sub: 'soc-analyst' })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(new TextEncoder().encode(RELAY_SECRET));
  const res = await fetch(`${hub.url}${route}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

async function register(gw: typeof gwA): Promise<string> {
  const { token } = await hubCall('POST', '/api/v1/tokens', { region: 'eu' });
  const reg = await gw.gateway.cloud.register(token);
  assert.equal(reg.status, 'registered', JSON.stringify(reg));
  return reg.deviceId!;
}

function send(gw: typeof gwA, id: string, to: string[]) {
  return sendMessage(
    gw.port('outgoing'),
    'mallory@evil.test',
    to,
    `From: <mallory@evil.test>\r\nTo: ${to.join(', ')}\r\nSubject: ${id}\r\nMessage-ID: <${id}@evil.test>\r\n\r\nbody of ${id}\r\n`,
  );
}

before(async () => {
  if (skip) return;
  const dir = tempDir('bw-hub-actions-');
  const file = path.join(dir, 'hub.yaml');
  writeFileSync(
    file,
    YAML.stringify({
      dataDir: './data',
      listen: { host: '127.0.0.1', port: 0 },
      relay: { jwtSecret: RELAY_SECRET },
      actions: { timeout: '20s' },
    }),
  );
  hub = await runHub(loadHubConfig(file));
  dovecot = await startDovecot(['bob@dst.test', 'carol@dst.test']);
  const cloud = { enabled: true, region: 'eu', regions: { eu: hub.url }, stream: { interval: '100ms' } };
  // A delivers into Dovecot and can remediate there; B delivers to a file and has no mailbox profile.
  gwA = await startTestGateway(
    testConfig({
      routes: { '*': [`lmtp://127.0.0.1:${dovecot.lmtpPort}`] },
      remediation: {
        profiles: [
          {
            name: 'dovecot',
            type: 'imap',
            host: '127.0.0.1',
            port: dovecot.imapPort,
            tls: 'none',
            masterUser: 'admin',
            masterPassword: 'masterpw',
          },
        ],
        mappings: [{ domain: 'dst.test', profile: 'dovecot' }],
      },
      cloud,
    }),
  );
  gwB = await startTestGateway(testConfig({ routes: { '*': ['file:delivered'] }, cloud }));
});

after(async () => {
  await gwA?.stop();
  await gwB?.stop();
  await hub?.stop();
  await dovecot?.stop();
});

test(
  "an XDR's delete on the hub reaches every gateway holding the message; each gateway's result comes back",
  { skip, timeout: 90_000 },
  async () => {
    const devA = await register(gwA);
    const devB = await register(gwB);
    const a1 = await send(gwA, 'camp1', ['bob@dst.test', 'carol@dst.test']);
    const a2 = await send(gwA, 'keep1', ['bob@dst.test']);
    const b1 = await send(gwB, 'camp1', ['dan@other.test']); // the same campaign, through B
    for (const [gw, mid] of [
      [gwA, a1.mid],
      [gwA, a2.mid],
      [gwB, b1.mid],
    ] as const)
      await waitFor(() => gw.gateway.tracker.show(mid!)?.status === 'delivered', 15_000, `MID ${mid} delivered`);
    // the hub holds the campaign from both gateways
    await waitFor(
      async () =>
        (await hubCall('GET', '/api/v1/messages?type=email_messageid&value=%3Ccamp1%40evil.test%3E')).count === 2,
      15_000,
      'both summaries at the hub',
    );
    assert.deepEqual((await dovecot.messageIds('bob@dst.test')).INBOX, ['<camp1@evil.test>', '<keep1@evil.test>']);

    // the hub offers the remediation actions for the Message-ID
    const offered = await xdr('/respond/observables', [{ type: 'email_messageid', value: '<camp1@evil.test>' }]);
    assert.ok(
      offered.json.data.some((a: any) => a.id === 'delete'),
      JSON.stringify(offered.json),
    );

    const started = Date.now();
    const r = await xdr('/respond/trigger', {
      'action-id': 'delete',
      observable_type: 'email_messageid',
      observable_value: '<camp1@evil.test>',
    });
    // A deleted it from both mailboxes; B has no mailbox profile for other.test: failure, saying which and why
    assert.equal(r.status, 200);
    assert.equal(r.json.data.status, 'failure', JSON.stringify(r.json));
    const detail: string = r.json.errors[0].message;
    assert.match(detail, new RegExp(`${devA}\\)?: delete: 2 of 2 mailbox\\(es\\) done`), detail);
    assert.match(detail, new RegExp(`${devB}\\)?: .*(profile|mailbox)`, 'i'), detail);
    assert.ok(Date.now() - started < 20_000, 'the long poll took the actions at once, not after a timeout');

    assert.deepEqual((await dovecot.messageIds('bob@dst.test')).INBOX, ['<keep1@evil.test>'], 'only camp1 went');
    assert.deepEqual((await dovecot.messageIds('carol@dst.test')).INBOX, []);
    // the gateway tracked each attempt, naming the hub's caller
    const attempts = gwA.gateway.tracker.show(a1.mid!)!.events.filter((e) => e.type === 'remediation.attempt');
    assert.equal(attempts.length, 2);

    // the hub's action list: who asked, where it went, how it ended
    const { actions } = await hubCall('GET', '/api/v1/actions');
    const byDevice = new Map(actions.map((a: any) => [a.deviceId, a]));
    assert.equal((byDevice.get(devA) as any).status, 'done');
    assert.equal((byDevice.get(devB) as any).status, 'failed');
    assert.ok(actions.every((a: any) => a.requestedBy === 'xdr:soc-analyst' && a.action === 'delete'));
    // the gateway's tracking names who asked, through the hub
    assert.equal(attempts[0].by, 'hub:xdr:soc-analyst');
    const st = (await (
      await fetch(`http://127.0.0.1:${gwA.adminPort}/api/v1/status`, {
        headers: { authorization: `Bearer ${gwA.token}` },
      })
    ).json()) as any;
    assert.equal(st.cloud.actions.running, true);
    assert.equal(st.cloud.actions.carriedOut, 1);

    // a MID names a message on one gateway: when two gateways have that MID, the hub refuses to guess
    // (fresh gateways both number from 1: camp1 is MID 1 on A and on B)
    assert.equal(a1.mid, b1.mid);
    const amb = await xdr('/respond/trigger', {
      'action-id': 'delete',
      observable_type: 'cisco_mid',
      observable_value: String(a1.mid),
    });
    assert.equal(amb.json.data.status, 'failure');
    assert.match(amb.json.errors[0].message, /exists on 2 gateways/);
    // a message no gateway has seen
    const none = await xdr('/respond/trigger', {
      'action-id': 'delete',
      observable_type: 'email_messageid',
      observable_value: '<never@evil.test>',
    });
    assert.equal(none.json.data.status, 'failure');
    assert.match(none.json.errors[0].message, /no gateway registered with this hub has seen/);
  },
);

test('device actions: a long poll wakes when an action is queued; results only from the device it is for', async () => {
  const store = new HubStore(tempDir('bw-hub-act-'));
  const actions = new DeviceActions(store.db);
  try {
    const started = Date.now();
    const poll = actions.take('dev-1', 20_000);
    await new Promise((r) => setTimeout(r, 50));
    const a = actions.queue('dev-1', 'delete', { type: 'email_messageid', value: '<x@y>' }, 'analyst');
    const taken = await poll;
    assert.ok(Date.now() - started < 5_000, 'woken by the queue, not the timeout');
    assert.deepEqual(
      taken.map((t) => [t.id, t.status]),
      [[a.id, 'taken']],
    );
    assert.deepEqual(await actions.take('dev-1', 0), [], 'taken once');
    assert.equal(actions.complete('dev-2', a.id, true, 'done'), null, 'not dev-2’s action');
    const pending = actions.settle([a.id], 100);
    assert.equal((await pending)[0].status, 'taken', 'settle gives up at its timeout');
    const settled = actions.settle([a.id], 10_000);
    assert.equal(actions.complete('dev-1', a.id, true, 'deleted')!.status, 'done');
    assert.equal((await settled)[0].detail, 'deleted');
    assert.equal(actions.complete('dev-1', a.id, false, 'again')!.status, 'done', 'the first result stays');
    // a gateway that hangs up ends its poll without taking anything
    const hangUp = new AbortController();
    const p = actions.take('dev-1', 20_000, hangUp.signal);
    hangUp.abort();
    assert.deepEqual(await p, []);
  } finally {
    actions.close();
    store.close();
  }
});
