// Streaming without loss (DESIGN §11.2): one hub and two gateways, real SMTP traffic; the hub is killed
// (-9) and restarted mid-stream, and so is one gateway. Afterwards the hub holds exactly the messages
// the gateways recorded — every message that got a 250 — each once, in its final state.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import YAML from 'yaml';
import { freePort, hasBinary, startSmtpSink, tempDir, waitFor } from './helpers/peers.ts';
import { adminJson, ChildGateway, endProcess, testConfig } from './helpers/gateway.ts';
import { spawnHub } from './helpers/hub.ts';
import { sendMessage, waitForAsync } from './helpers/rawsmtp.ts';
import { HubStore } from '../src/hub/store.ts';

const skip = hasBinary('smtp-sink') ? false : 'Postfix smtp-sink is not installed (run .ci/run)';

/** `breakwater hub start` as a child process on a fixed port (so gateways find it after a restart). */
class ChildHub {
  readonly dir = tempDir('bw-hub-e2e-');
  readonly file = path.join(this.dir, 'hub.yaml');
  readonly dataDir = path.join(this.dir, 'data');
  proc!: ChildProcess;
  url = '';

  constructor(port: number) {
    writeFileSync(this.file, YAML.stringify({ dataDir: './data', listen: { host: '127.0.0.1', port } }));
  }

  async start(): Promise<void> {
    const h = await spawnHub(this.file);
    this.proc = h.proc;
    this.url = h.url;
  }

  api(method: string, route: string, body?: unknown): Promise<any> {
    return adminJson(`${this.url}${route}`, this.dataDir, method, body);
  }

  /** What the hub holds for a device, read from its database (WAL: readable while it runs). */
  mids(deviceId: string): number[] {
    const db = new DatabaseSync(path.join(this.dataDir, 'hub.db'), { readOnly: true });
    try {
      return (
        db.prepare('select mid from messages where device_id = ? order by mid').all(deviceId) as Array<{ mid: number }>
      ).map((r) => r.mid);
    } finally {
      db.close();
    }
  }

  finalStatuses(deviceId: string): Map<number, string> {
    const db = new DatabaseSync(path.join(this.dataDir, 'hub.db'), { readOnly: true });
    try {
      const rows = db.prepare('select mid, data from messages where device_id = ?').all(deviceId) as Array<{
        mid: number;
        data: string;
      }>;
      return new Map(rows.map((r) => [r.mid, (JSON.parse(r.data) as { status: string }).status]));
    } finally {
      db.close();
    }
  }
}

/** MIDs a gateway recorded (tracking), read from its database. */
function trackedMids(gw: ChildGateway): Map<number, string> {
  const db = new DatabaseSync(path.join(gw.dataDir, 'breakwater.db'), { readOnly: true });
  try {
    const rows = db.prepare('select mid, status from messages').all() as Array<{ mid: number; status: string }>;
    return new Map(rows.map((r) => [r.mid, r.status]));
  } finally {
    db.close();
  }
}

test('a batch sent twice is stored once; an older summary never replaces a newer one', () => {
  const store = new HubStore(tempDir('bw-hubstore-'));
  const s = (mid: number, version: number, status: string) => ({
    mid,
    icid: 1,
    parentMid: null,
    receivedAt: new Date().toISOString(),
    direction: 'incoming',
    listener: 'in',
    policy: 'default',
    sender: 'a@src.test',
    recipients: [{ address: 'b@dst.test', status, lastReply: null }],
    headerFrom: null,
    subject: `m${mid}`,
    messageId: null,
    senderIp: '192.0.2.1',
    rdns: null,
    helo: null,
    size: 10,
    attachments: [],
    urls: ['https://evil.example.com/x'],
    status,
    verdict: 'deliver',
    threatLevel: 0,
    rules: [],
    version,
  });
  assert.deepEqual(store.intake('d1', '1-10', [s(1, 5, 'queued'), s(2, 6, 'queued')]), { duplicate: false, stored: 2 });
  assert.deepEqual(store.intake('d1', '1-10', [s(1, 5, 'queued'), s(2, 6, 'queued')]), { duplicate: true, stored: 0 });
  assert.deepEqual(store.intake('d1', '11-20', [s(1, 15, 'delivered'), s(2, 4, 'bounced')]), {
    duplicate: false,
    stored: 1,
  });
  assert.equal(store.search('cisco_mid', '1', 5)[0].summary.status, 'delivered');
  assert.equal(store.search('cisco_mid', '2', 5)[0].summary.status, 'queued', 'version 4 < 6: ignored');
  assert.equal(store.search('domain', 'example.com', 5).length, 2, 'registrable domain of a URL');
  assert.equal(store.search('domain', 'evil.example.com', 5).length, 2, 'host of a URL');
  assert.equal(store.messageCount('d1'), 2);
  store.close();
});

test(
  'one hub, two gateways: the hub and a gateway killed mid-stream; the hub holds exactly what the gateways accepted',
  { skip, timeout: 180_000 },
  async (t) => {
    const sink = await startSmtpSink();
    const hub = new ChildHub(await freePort());
    await hub.start();
    const cloud = {
      enabled: true,
      region: 'eu',
      regions: { eu: hub.url, nam: hub.url, apjc: hub.url },
      stream: { interval: '50ms', batchSize: 20, timeout: '5s' },
    };
    const doc = () => {
      const d = testConfig({ routes: { '*': [`smtp://127.0.0.1:${sink.port}`] }, cloud });
      (d.listeners as unknown[]).splice(1, 1);
      return d;
    };
    const gws = [await ChildGateway.start(doc()), await ChildGateway.start(doc())];
    try {
      const devices: string[] = [];
      for (const gw of gws) {
        const { token } = await hub.api('POST', '/api/v1/tokens', { region: 'eu' });
        const s = await gw.api('POST', '/cloud/register', { token });
        assert.equal(s.status, 'registered', JSON.stringify(s));
        devices.push(s.deviceId);
      }
      const accepted = [new Set<number>(), new Set<number>()];
      let stop = false;
      const sender = async (g: number, w: number): Promise<void> => {
        for (let i = 0; !stop && i < 400; i++) {
          if (!gws[g].alive()) {
            await new Promise((r) => setTimeout(r, 50));
            continue;
          }
          const body = `Subject: hub e2e ${g}-${w}-${i}\r\nFrom: s${w}@src.test\r\n\r\nhttps://link${i % 7}.example.net/p\r\n`;
          const r = await sendMessage(gws[g].port('incoming'), `s${w}@src.test`, ['bob@dst.test'], body).catch(
            () => null,
          );
          if (r?.mid) accepted[g].add(r.mid);
        }
      };
      const load = Promise.all([0, 1].flatMap((g) => [0, 1, 2].map((w) => sender(g, w))));
      // the hub goes down hard while summaries flow, and comes back
      await waitFor(() => accepted[0].size + accepted[1].size >= 60, 60_000, '60 accepted');
      await endProcess(hub.proc, 'SIGKILL');
      await waitFor(() => accepted[0].size + accepted[1].size >= 120, 60_000, '120 accepted');
      await hub.start();
      // a gateway goes down hard mid-stream, and comes back
      await waitFor(() => accepted[0].size + accepted[1].size >= 180, 60_000, '180 accepted');
      await gws[0].kill();
      await new Promise((r) => setTimeout(r, 300));
      await gws[0].restart();
      await waitFor(() => accepted[0].size + accepted[1].size >= 240, 60_000, '240 accepted');
      stop = true;
      await load;
      t.diagnostic(`accepted: ${accepted[0].size} + ${accepted[1].size}`);

      for (const [g, gw] of gws.entries()) {
        await waitForAsync(
          async () => {
            const tracked = trackedMids(gw);
            const done = [...tracked.values()].every((s) => s === 'delivered');
            const held = hub.finalStatuses(devices[g]);
            return done && tracked.size === held.size && [...tracked.keys()].every((m) => held.get(m) === 'delivered')
              ? true
              : null;
          },
          60_000,
          `gateway ${g}: the hub has every message, delivered`,
        ).catch(() => {});
        const tracked = trackedMids(gw);
        const atHub = hub.mids(devices[g]);
        for (const mid of accepted[g]) assert.ok(tracked.has(mid), `gateway ${g}: MID ${mid} got a 250 and is tracked`);
        assert.deepEqual(
          atHub,
          [...tracked.keys()].sort((a, b) => a - b),
          `gateway ${g}: exactly the recorded messages`,
        );
        const statuses = hub.finalStatuses(devices[g]);
        assert.deepEqual(
          [...statuses].filter(([, s]) => s !== 'delivered'),
          [],
          `gateway ${g}: every summary at the hub is final`,
        );
      }
      const list = (await hub.api('GET', '/api/v1/devices')).devices as Array<{ id: string; messages: number }>;
      for (const [g, id] of devices.entries())
        assert.equal(list.find((d) => d.id === id)!.messages, hub.mids(id).length, `device ${g} message count`);
    } finally {
      for (const gw of gws) if (gw.alive()) await gw.stop();
      if (hub.proc.exitCode === null && hub.proc.signalCode === null) await endProcess(hub.proc, 'SIGTERM');
      await sink.stop();
    }
  },
);
