// The hub (DESIGN §11) and a gateway's registration with it (§10): one-time tokens per region, device
// credentials as short-lived JWTs, a deregistered device refused at once, streaming summaries, telemetry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import YAML from 'yaml';
import { SignJWT } from 'jose';
import { checkHubConfigFile, loadHubConfig } from '../src/hub/config.ts';
import { runHub, type RunningHub } from '../src/hub/run.ts';
import { signDeviceToken, HUB_AUDIENCE } from '../src/xdr/device-jwt.ts';
import { hasBinary, startSmtpSink, swaks, tempDir, waitFor } from './helpers/peers.ts';
import { startTestGateway, testConfig } from './helpers/gateway.ts';

async function startHub(extra: Record<string, unknown> = {}): Promise<RunningHub & { dir: string }> {
  const dir = tempDir('bw-hub-');
  const file = path.join(dir, 'hub.yaml');
  writeFileSync(file, YAML.stringify({ dataDir: './data', listen: { host: '127.0.0.1', port: 0 }, ...extra }));
  return { ...(await runHub(loadHubConfig(file))), dir };
}

async function call(hub: RunningHub, method: string, route: string, body?: unknown, auth: string | null = hub.token) {
  const res = await fetch(`${hub.url}${route}`, {
    method,
    headers: {
      ...(auth ? { authorization: `Bearer ${auth}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: (await res.json()) as any };
}

const identity = { uuid: 'u-1', hostname: 'gw1.test', model: 'Breakwater', version: '0.1.0' };

test('hub config: dataDir and listen are enough; every error is reported with its path', () => {
  const dir = tempDir('bw-hubcfg-');
  const ok = path.join(dir, 'ok.yaml');
  writeFileSync(ok, 'dataDir: ./d\nlisten: { host: 127.0.0.1, port: 8440 }\n');
  const good = checkHubConfigFile(ok);
  assert.deepEqual(good.errors, []);
  assert.deepEqual(good.loaded!.config.regions, ['nam', 'eu', 'apjc']);
  const bad = path.join(dir, 'bad.yaml');
  writeFileSync(bad, 'listen: { port: 70000 }\nregions: [mars]\ntokenLifetime: soon\nsurprise: 1\n');
  const paths = checkHubConfigFile(bad).errors.map((e) => e.path);
  for (const p of ['listen.port', 'regions[0]', 'tokenLifetime', ''])
    assert.ok(paths.includes(p), JSON.stringify(paths));
});

test('registration tokens: 32 hex, one use, one hour, one region; bad, used, expired and wrong-region tokens are refused', async () => {
  const hub = await startHub({ regions: ['eu', 'nam'], tokenLifetime: '1s' });
  try {
    assert.equal((await call(hub, 'POST', '/api/v1/tokens', { region: 'eu' }, null)).status, 401);
    assert.equal((await call(hub, 'POST', '/api/v1/tokens', { region: 'apjc' })).body.error.code, 'region_not_served');
    assert.equal((await call(hub, 'POST', '/api/v1/tokens', { region: 'mars' })).status, 400);
    const t = (await call(hub, 'POST', '/api/v1/tokens', { region: 'eu' })).body;
    assert.match(t.token, /^[0-9a-f]{32}$/);
    assert.equal(t.region, 'eu');
    assert.ok(Date.parse(t.expiresAt) > Date.now());
    const register = (token: string, region = 'eu') =>
      call(hub, 'POST', '/api/v1/register', { token, region, identity }, null);
    assert.equal((await register('nothex')).body.error.code, 'invalid_token');
    assert.equal((await register('ab'.repeat(16))).body.error.code, 'invalid_token', 'not issued by this hub');
    assert.equal((await register(t.token, 'nam')).body.error.code, 'wrong_region');
    const ok = await register(t.token);
    assert.equal(ok.status, 200);
    assert.ok(ok.body.deviceId && ok.body.secret);
    assert.equal((await register(t.token)).body.error.code, 'token_used', 'one use');
    const late = (await call(hub, 'POST', '/api/v1/tokens', { region: 'eu' })).body;
    await new Promise((r) => setTimeout(r, 1200));
    assert.equal((await register(late.token)).body.error.code, 'expired_token');
    const devices = (await call(hub, 'GET', '/api/v1/devices')).body.devices;
    assert.equal(devices.length, 1);
    assert.equal(devices[0].hostname, 'gw1.test');
    assert.equal(devices[0].status, 'registered');
    assert.ok(!JSON.stringify(devices).includes(ok.body.secret), 'the secret is never shown again');
  } finally {
    await hub.stop();
  }
});

test('device JWTs: signed with the device secret, for the hub, short-lived; a removed device is refused at once', async () => {
  const hub = await startHub();
  try {
    const t = (await call(hub, 'POST', '/api/v1/tokens', { region: 'nam' })).body;
    const dev = (await call(hub, 'POST', '/api/v1/register', { token: t.token, region: 'nam', identity }, null)).body;
    const batch = { batchId: 'b1', summaries: [] };
    const good = await signDeviceToken(dev.deviceId, dev.secret, HUB_AUDIENCE);
    assert.equal((await call(hub, 'POST', '/api/v1/device/batches', batch, good)).status, 200);
    const wrongKey = await signDeviceToken(dev.deviceId, Buffer.alloc(32, 7).toString('base64url'), HUB_AUDIENCE);
    assert.equal((await call(hub, 'POST', '/api/v1/device/batches', batch, wrongKey)).status, 401);
    const wrongAudience = await signDeviceToken(dev.deviceId, dev.secret, 'someone-else');
    assert.equal((await call(hub, 'POST', '/api/v1/device/batches', batch, wrongAudience)).status, 401);
    const expired = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer(dev.deviceId)
      .setSubject(dev.deviceId)
      .setAudience(HUB_AUDIENCE)
      .setIssuedAt(Math.floor(Date.now() / 1000) - 3600)
      .setExpirationTime(Math.floor(Date.now() / 1000) - 1800)
      .sign(Buffer.from(dev.secret, 'base64url'));
    assert.equal((await call(hub, 'POST', '/api/v1/device/batches', batch, expired)).status, 401);
    const unsigned = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ iss: dev.deviceId, sub: dev.deviceId, aud: HUB_AUDIENCE, exp: Math.floor(Date.now() / 1000) + 60 })).toString('base64url')}.`;
    assert.equal((await call(hub, 'POST', '/api/v1/device/batches', batch, unsigned)).status, 401);
    assert.equal((await call(hub, 'POST', '/api/v1/device/batches', batch, 'garbage')).status, 401);
    // removed on the hub: the very next call is refused, with a code the gateway acts on
    assert.equal((await call(hub, 'DELETE', `/api/v1/devices/${dev.deviceId}`)).status, 200);
    const after = await call(hub, 'POST', '/api/v1/device/batches', batch, good);
    assert.equal(after.status, 401);
    assert.equal(after.body.error.code, 'device_not_registered');
    assert.equal((await call(hub, 'DELETE', `/api/v1/devices/${dev.deviceId}`)).body.error.code, 'device_not_found');
  } finally {
    await hub.stop();
  }
});

const skip = hasBinary('smtp-sink') && hasBinary('swaks') ? false : 'smtp-sink or swaks missing (run .ci/run)';

test(
  'a gateway registers by token and region, streams every message summary, sends telemetry, and deregisters',
  { skip, timeout: 90_000 },
  async () => {
    const relaySecret = 'r'.repeat(40);
    const hub = await startHub({ relay: { jwtSecret: relaySecret } });
    const sink = await startSmtpSink({ dump: true });
    const gw = await startTestGateway(
      testConfig({
        routes: { '*': [`smtp://127.0.0.1:${sink.port}`] },
        cloud: {
          enabled: true,
          region: 'eu',
          regions: { eu: hub.url, nam: 'http://127.0.0.1:9', apjc: hub.url },
          telemetry: true,
          stream: { interval: '100ms' },
        },
      }),
    );
    const gwApi = async (method: string, route: string, body?: unknown) => {
      const res = await fetch(`http://127.0.0.1:${gw.adminPort}/api/v1${route}`, {
        method,
        headers: {
          authorization: `Bearer ${gw.token}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
      return { status: res.status, body: (await res.json()) as any };
    };
    try {
      assert.equal((await gwApi('GET', '/cloud')).body.status, 'disabled', 'enabled but not registered yet');
      // a token for another region, then an unreachable hub: failed with the reason; retry possible
      const nam = (await call(hub, 'POST', '/api/v1/tokens', { region: 'nam' })).body.token;
      const f1 = (await gwApi('POST', '/cloud/register', { token: nam })).body;
      assert.equal(f1.status, 'failed');
      assert.match(f1.reason, /wrong_region/);
      const f2 = (await gwApi('POST', '/cloud/register', { token: nam, region: 'nam' })).body;
      assert.equal(f2.status, 'failed');
      assert.match(f2.reason, /hub unreachable/);
      const token = (await call(hub, 'POST', '/api/v1/tokens', { region: 'eu' })).body.token;
      const reg = (await gwApi('POST', '/cloud/register', { token })).body;
      assert.equal(reg.status, 'registered', JSON.stringify(reg));
      assert.equal(reg.region, 'eu');
      assert.equal(reg.hubUrl, hub.url);
      assert.ok(reg.deviceId);
      // registering again, or in another region, is refused: deregister first
      const again = await gwApi('POST', '/cloud/register', { token, region: 'apjc' });
      assert.equal(again.status, 409);
      assert.equal(again.body.error.code, 'cloud_already_registered');
      assert.match(again.body.error.message, /deregister first/);

      const mids: number[] = [];
      for (let i = 0; i < 5; i++) {
        const r = await swaks([
          '--server',
          `127.0.0.1:${gw.port('incoming')}`,
          '--to',
          'bob@dst.test',
          '--from',
          `alice${i}@src.test`,
          '--header',
          `Subject: stream test ${i}`,
          '--attach',
          '@package.json',
        ]);
        mids.push(Number(/queued as MID (\d+)/.exec(r.out)![1]));
      }
      await waitFor(() => sink.messages().length >= 5, 15_000, 'delivery');
      await waitFor(
        () => hub.store.mids(reg.deviceId).filter((m) => mids.includes(m)).length === 5,
        15_000,
        'summaries at the hub',
      );
      // the latest summary of each: delivered, with its observables searchable
      await waitFor(
        () =>
          mids.every((m) => hub.store.search('cisco_mid', String(m), 5).some((x) => x.summary.status === 'delivered')),
        15_000,
        'final summaries',
      );
      const bySender = await call(hub, 'GET', '/api/v1/messages?type=email&value=ALICE3@src.test');
      assert.equal(bySender.body.count, 1);
      const s = bySender.body.messages[0].summary;
      assert.equal(s.subject, 'stream test 3');
      assert.equal(s.recipients[0].status, 'delivered');
      assert.match(s.attachments[0].name, /package\.json$/);
      const byHash = await call(hub, 'GET', `/api/v1/messages?type=sha256&value=${s.attachments[0].sha256}`);
      assert.equal(byHash.body.count, 5, 'the same attachment in every message');
      assert.equal(
        (await call(hub, 'GET', '/api/v1/messages?type=ip&value=127.0.0.1&limit=1000')).body.count >= 5,
        true,
      );

      // the hub's relay module answers an XDR across its gateways (CTIM sightings)
      const xdrToken = await new SignJWT({})
        .setProtectedHeader({ alg: 'HS256' })
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(new TextEncoder().encode(relaySecret));
      const observe = await fetch(`${hub.url}/observe/observables`, {
        method: 'POST',
        headers: { authorization: `Bearer ${xdrToken}`, 'content-type': 'application/json' },
        body: JSON.stringify([{ type: 'email', value: 'alice3@src.test' }]),
      }).then((x) => x.json() as Promise<any>);
      assert.equal(observe.data.sightings.count, 1, JSON.stringify(observe));
      const sighting = observe.data.sightings.docs[0];
      assert.equal(sighting.type, 'sighting');
      assert.equal(sighting.source, 'Breakwater hub');
      assert.ok(sighting.targets.some((t: any) => t.observables.some((o: any) => o.value === 'bob@dst.test')));
      const byHashSightings = await fetch(`${hub.url}/observe/observables`, {
        method: 'POST',
        headers: { authorization: `Bearer ${xdrToken}`, 'content-type': 'application/json' },
        body: JSON.stringify([{ type: 'sha256', value: s.attachments[0].sha256 }]),
      }).then((x) => x.json() as Promise<any>);
      assert.equal(byHashSightings.data.sightings.count, 5);
      // refer: a person follows the link to the hub's search across every gateway
      const refer = await fetch(`${hub.url}/refer/observables`, {
        method: 'POST',
        headers: { authorization: `Bearer ${xdrToken}`, 'content-type': 'application/json' },
        body: JSON.stringify([{ type: 'email', value: 'alice3@src.test' }]),
      }).then((x) => x.json() as Promise<any>);
      assert.ok(refer.data.length >= 1);
      for (const link of refer.data)
        assert.equal(link.url, `${hub.url}/ui/#/search?type=email&value=alice3%40src.test`);
      const noToken = await fetch(`${hub.url}/observe/observables`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '[]',
      });
      assert.equal(noToken.status, 401);
      assert.equal(((await noToken.json()) as any).errors[0].type, 'fatal');

      // telemetry on demand: shown per device, never message content
      const tel = (await gwApi('POST', '/cloud/telemetry', {})).body;
      assert.ok(tel.report.features.some((f: any) => f.featureId === 'outbreak_filters'));
      const dev = (await call(hub, 'GET', '/api/v1/devices')).body.devices.find((d: any) => d.id === reg.deviceId);
      assert.equal(dev.telemetry.deviceUid, tel.report.deviceUid);
      assert.ok(!JSON.stringify(dev.telemetry).includes('stream test'), 'no message content in telemetry');
      assert.ok(dev.lastContact);
      const st = (await gwApi('GET', '/status')).body.cloud;
      assert.equal(st.stream.running, true);
      assert.ok(st.stream.sentSummaries >= 5);

      // disabled: nothing is sent and status says so; enabled again: registered as before
      const off = (await gwApi('POST', '/cloud/disable', {})).body;
      assert.equal(off.status, 'disabled');
      assert.equal(off.deviceId, reg.deviceId, 'the registration is kept');
      assert.equal((await gwApi('GET', '/status')).body.cloud.stream.running, false);
      assert.equal((await gwApi('POST', '/cloud/enable', {})).body.status, 'registered');

      // deregister: the hub forgets the device; the gateway can register again later
      const out = (await gwApi('POST', '/cloud/deregister', {})).body;
      assert.equal(out.status, 'disabled');
      assert.equal(out.deviceId, null);
      const after = (await call(hub, 'GET', '/api/v1/devices')).body.devices.find((d: any) => d.id === reg.deviceId);
      assert.equal(after.status, 'removed');
    } finally {
      await gw.stop();
      await hub.stop();
      await sink.stop();
    }
  },
);

test(
  'a device removed on the hub: the gateway stops streaming, says why, and can register again',
  { skip, timeout: 60_000 },
  async () => {
    const hub = await startHub();
    const sink = await startSmtpSink();
    // a custom hub URL as the region: the device takes the region of its token
    const gw = await startTestGateway(
      testConfig({
        routes: { '*': [`smtp://127.0.0.1:${sink.port}`] },
        cloud: { enabled: true, region: hub.url, stream: { interval: '100ms' } },
      }),
    );
    try {
      const t1 = (await call(hub, 'POST', '/api/v1/tokens', { region: 'apjc' })).body.token;
      const reg = await gw.gateway.cloud.register(t1);
      assert.equal(reg.status, 'registered', JSON.stringify(reg));
      const device = (await call(hub, 'GET', '/api/v1/devices')).body.devices[0];
      assert.equal(device.region, 'apjc');
      await call(hub, 'DELETE', `/api/v1/devices/${reg.deviceId}`);
      await swaks(['--server', `127.0.0.1:${gw.port('incoming')}`, '--to', 'bob@dst.test', '--from', 'a@src.test']);
      await waitFor(() => gw.gateway.cloud.state().status === 'failed', 15_000, 'the gateway notices');
      assert.match(gw.gateway.cloud.state().reason!, /no longer knows this device/);
      assert.equal(gw.gateway.hubStream.health().running, false);
      const t2 = (await call(hub, 'POST', '/api/v1/tokens', { region: 'apjc' })).body.token;
      const again = await gw.gateway.cloud.register(t2);
      assert.equal(again.status, 'registered');
      assert.notEqual(again.deviceId, reg.deviceId);
    } finally {
      await gw.stop();
      await hub.stop();
      await sink.stop();
    }
  },
);
