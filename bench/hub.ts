// The hub: streaming throughput from a gateway (summaries/s, next to the hub's intake of the same
// summaries posted directly), and search by observable over many stored messages (p50/p99, next to a
// primary-key lookup in the same database).
import path from 'node:path';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import YAML from 'yaml';
import { Store } from '../src/store/db.ts';
import { EventBus } from '../src/tracking/bus.ts';
import { Tracker } from '../src/tracking/tracker.ts';
import { EventOutbox } from '../src/tracking/outbox.ts';
import { validateConfig } from '../src/config/load.ts';
import { CloudService } from '../src/xdr/cloud.ts';
import { HubStream } from '../src/xdr/stream.ts';
import { summarize, type MessageSummary } from '../src/xdr/summary.ts';
import { signDeviceToken, HUB_AUDIENCE } from '../src/xdr/device-jwt.ts';
import { HubStore } from '../src/hub/store.ts';
import type { ObservableType } from '../src/hub/observables.ts';
import { investigate } from '../src/hub/investigate.ts';
import type { ParsedObservable } from '../src/hub/parse-observables.ts';
import { tempDir } from '../test/helpers/peers.ts';
import { spawnHub } from '../test/helpers/hub.ts';
import { testConfig } from '../test/helpers/gateway.ts';

export interface HubBenchResult {
  stream: { messages: number; events: number; summariesPerSec: number; directPerSec: number };
  search: {
    stored: number;
    loadSeconds: number;
    queries: Array<{ type: string; p50: number; p99: number; rows: number }>;
    pkLookup: { p50: number; p99: number };
  };
  investigation: Record<
    'typical' | 'withHot',
    { p50: number; p99: number; refP50: number; refP99: number; nodes: number }
  >;
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** The events a delivered message with two attachments and three URLs leaves behind. */
function emitMessage(bus: EventBus, mid: number, r: () => number): void {
  const sender = `user${Math.floor(r() * 5000)}@sender${Math.floor(r() * 500)}.test`;
  const ip = `10.${Math.floor(r() * 255)}.${Math.floor(r() * 255)}.${Math.floor(r() * 255)}`;
  bus.emit(mid, {
    type: 'ingress.accepted',
    icid: mid,
    listener: 'incoming',
    sender,
    recipients: ['bob@dst.test', 'carol@dst.test'],
    size: 5000,
    senderIp: ip,
    helo: 'mx.sender.test',
    tls: null,
    direction: 'incoming',
    rdns: null,
    receivedAt: Date.now(),
    spoolFile: '/spool/x',
  });
  bus.emit(mid, { type: 'policy.matched', policy: 'default', splinteredFrom: null });
  bus.emit(mid, {
    type: 'scan.parsed',
    subject: `Invoice ${mid}`,
    messageId: `<${mid}@sender.test>`,
    attachments: 2,
    urls: 3,
    anomalies: [],
    detail: {
      from: sender,
      attachments: [
        {
          name: `invoice-${mid % 97}.pdf`,
          trueType: 'application/pdf',
          size: 1000,
          sha256: (mid % 997).toString(16).padStart(64, 'a'),
        },
        { name: 'logo.png', trueType: 'image/png', size: 200, sha256: 'b'.repeat(64) },
      ],
      urls: [0, 1, 2].map((i) => ({
        url: `https://site${(mid + i) % 3000}.example.com/p/${i}`,
        domain: 'example.com',
      })),
      replace: false,
    },
  });
  bus.emit(mid, { type: 'verdict', verdict: 'deliver', reason: 'no policy action' });
  bus.emit(mid, { type: 'delivery.queued', rids: [0, 1] });
  for (const rid of [0, 1])
    bus.emit(mid, {
      type: 'delivery.delivered',
      dcid: mid,
      rid,
      address: 'x',
      target: '127.0.0.1:25',
      reply: '250 ok',
    });
  bus.emit(mid, { type: 'message.done', status: 'delivered' });
}

export async function runHubBench(opts: { streamMessages: number; stored: number }): Promise<HubBenchResult> {
  // ---- streaming: a gateway's outbox drained into a real hub over HTTP -------------------------------
  const hubDir = tempDir('bw-bench-hub-');
  const hubFile = path.join(hubDir, 'hub.yaml');
  writeFileSync(hubFile, YAML.stringify({ dataDir: './data', listen: { host: '127.0.0.1', port: 0 } }));
  // The hub in a process of its own, as in production: the bench process is the gateway side.
  const hub = await spawnHub(hubFile);
  const gwDir = tempDir('bw-bench-gw-');
  const store = new Store(path.join(gwDir, 'breakwater.db'));
  const bus = new EventBus();
  const tracker = new Tracker(store, bus);
  const r = rng(7);
  for (let mid = 1; mid <= opts.streamMessages; mid++) emitMessage(bus, mid, r);
  await store.committed();
  const events = (store.stmt('select count(*) n from events').get() as { n: number }).n;
  const v = validateConfig(testConfig({ cloud: { enabled: true, region: hub.url, stream: { interval: '10ms' } } }));
  const config = v.config!;
  const cloud = new CloudService({ config, dataDir: gwDir, store, version: 'bench', log: { info() {}, warning() {} } });
  const token = await fetch(`${hub.url}/api/v1/tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${hub.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ region: 'nam' }),
  }).then((x) => x.json() as Promise<{ token: string }>);
  await cloud.register(token.token);
  const outbox = new EventOutbox(store, 'hub');
  const stream = new HubStream({
    config,
    cloud,
    outbox,
    tracker,
    bus,
    raiseAlert: () => {},
    log: { info() {}, warning() {} },
  });
  const t0 = performance.now();
  stream.start();
  while ((await outbox.backlog()) > 0) await new Promise((res) => setTimeout(res, 20));
  const streamSeconds = (performance.now() - t0) / 1000;
  await stream.stop();
  // Reference: the same summaries, built beforehand, posted straight to the hub's intake (another device).
  const summaries: MessageSummary[] = [];
  for (let mid = 1; mid <= opts.streamMessages; mid++) summaries.push(summarize(tracker.show(mid)!, mid));
  const t2 = (await fetch(`${hub.url}/api/v1/tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${hub.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ region: 'nam' }),
  }).then((x) => x.json())) as { token: string };
  const dev = (await fetch(`${hub.url}/api/v1/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token: t2.token, region: 'nam', identity: { uuid: 'ref', hostname: 'ref' } }),
  }).then((x) => x.json())) as { deviceId: string; secret: string };
  const t1 = performance.now();
  for (let i = 0; i < summaries.length; i += 500) {
    const res = await fetch(`${hub.url}/api/v1/device/batches`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${await signDeviceToken(dev.deviceId, dev.secret, HUB_AUDIENCE)}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ batchId: `ref-${i}`, summaries: summaries.slice(i, i + 500) }),
    });
    if (!res.ok) throw new Error(`reference batch refused: ${res.status}`);
  }
  const directSeconds = (performance.now() - t1) / 1000;
  hub.proc.kill('SIGTERM');
  await once(hub.proc, 'exit');
  await store.close();

  // ---- search over many stored messages ---------------------------------------------------------------
  const searchDir = tempDir('bw-bench-hubsearch-');
  const hs = new HubStore(searchDir);
  const l0 = performance.now();
  const template = summaries[0];
  const rr = rng(11);
  for (let start = 1; start <= opts.stored; start += 1000) {
    const batch: MessageSummary[] = [];
    for (let mid = start; mid < Math.min(start + 1000, opts.stored + 1); mid++) {
      const s = Math.floor(rr() * 50_000);
      batch.push({
        ...template,
        mid,
        version: mid,
        sender: `user${s}@sender${s % 2000}.test`,
        senderIp: `10.${s % 256}.${(s >> 8) % 256}.${mid % 256}`,
        subject: `Invoice ${mid % 20_000}`,
        messageId: `${mid}@sender.test`,
        attachments: [
          {
            name: `doc${mid % 5000}.pdf`,
            trueType: 'application/pdf',
            size: 1000,
            sha256: (mid % 100_000).toString(16).padStart(64, '0'),
          },
        ],
        urls: [`https://site${mid % 30_000}.example.com/p`],
      });
    }
    hs.intake(`dev${start % 5}`, `b${start}`, batch);
  }
  const loadSeconds = (performance.now() - l0) / 1000;
  const probes: Array<[ObservableType, () => string, string?]> = [
    ['ip', () => `10.${Math.floor(rr() * 256)}.${Math.floor(rr() * 196)}.${Math.floor(rr() * 256)}`],
    [
      'email',
      () => {
        const s = Math.floor(rr() * 50_000);
        return `user${s}@sender${s % 2000}.test`;
      },
    ],
    ['domain', () => `sender${Math.floor(rr() * 2000)}.test`],
    ['domain', () => 'example.com', 'domain example.com (in every message: the 100 newest)'],
    ['email_subject', () => `invoice ${Math.floor(rr() * 20_000)}`],
    ['email_messageid', () => `${Math.floor(rr() * opts.stored) + 1}@sender.test`],
    ['cisco_mid', () => String(Math.floor(rr() * opts.stored) + 1)],
    [
      'sha256',
      () =>
        Math.floor(rr() * 100_000)
          .toString(16)
          .padStart(64, '0'),
    ],
    ['file_name', () => `doc${Math.floor(rr() * 5000)}.pdf`],
    ['url', () => `https://site${Math.floor(rr() * 30_000)}.example.com/p`],
  ];
  const pct = (xs: number[], p: number) => xs.sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
  const queries = probes.map(([type, value, label]) => {
    const times: number[] = [];
    let rows = 0;
    for (let i = 0; i < 30; i++) {
      const t = performance.now();
      rows = hs.search(type, value(), 100).length;
      times.push(performance.now() - t);
    }
    return {
      type: label ?? type,
      p50: pct(times, 0.5),
      p99: pct(times, 0.99),
      rows,
    };
  });
  const pk = hs.db.prepare('select data from messages where device_id = ? and mid = ?');
  const pkTimes: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t = performance.now();
    pk.get(`dev${i % 5}`, Math.floor(rr() * opts.stored) + 1);
    pkTimes.push(performance.now() - t);
  }
  // An investigation of 10 observables (the first probe of each kind, then one more address), every part
  // of it: counts per gateway, the newest 200 messages of each, judgements, the relationship graph.
  const names = new Map([0, 1, 2, 3, 4].map((i) => [`dev${i}`, `gateway ${i}`]));
  const tenObservables = (hot: boolean): ParsedObservable[] => [
    ...probes.filter((_, i) => i !== 3).map(([type, value]) => ({ type, value: value() })),
    hot ? { type: 'domain' as const, value: 'example.com' } : { type: 'email' as const, value: 'nobody@nowhere.test' },
  ];
  const investigations = (hot: boolean) => {
    const times: number[] = [];
    const refs: number[] = [];
    let nodes = 0;
    for (let i = 0; i < 30; i++) {
      const list = tenObservables(hot);
      let t = performance.now();
      const r = investigate(hs, { observables: list, errors: [] }, { perObservable: 200, maxNodes: 150, names });
      times.push(performance.now() - t);
      nodes = r.graph.nodes.length;
      t = performance.now();
      for (const o of list) hs.search(o.type, o.value, 200);
      refs.push(performance.now() - t);
    }
    return { p50: pct(times, 0.5), p99: pct(times, 0.99), refP50: pct(refs, 0.5), refP99: pct(refs, 0.99), nodes };
  };
  const investigation = { typical: investigations(false), withHot: investigations(true) };
  hs.close();
  return {
    stream: {
      messages: opts.streamMessages,
      events,
      summariesPerSec: opts.streamMessages / streamSeconds,
      directPerSec: opts.streamMessages / directSeconds,
    },
    search: {
      stored: opts.stored,
      loadSeconds,
      queries,
      pkLookup: { p50: pct(pkTimes, 0.5), p99: pct(pkTimes, 0.99) },
    },
    investigation,
  };
}

export function printHubBench(r: HubBenchResult): void {
  const f = (n: number) => n.toFixed(0);
  console.log(
    `Hub streaming: ${r.stream.messages.toLocaleString('en')} delivered messages (${r.stream.events.toLocaleString('en')} events) from a gateway's outbox (the bench process) to a hub process over HTTP`,
  );
  console.log('| path | summaries/s |');
  console.log('|---|---|');
  console.log(`| gateway stream (outbox → summaries → batches → hub) | ${f(r.stream.summariesPerSec)} |`);
  console.log(`| reference: the same summaries, pre-built, posted to the hub | ${f(r.stream.directPerSec)} |`);
  console.log('');
  console.log(
    `Hub search over ${r.search.stored.toLocaleString('en')} stored messages (loaded in ${r.search.loadSeconds.toFixed(0)} s); 30 lookups each, limit 100`,
  );
  console.log('| observable | p50 ms | p99 ms | rows (last) |');
  console.log('|---|---|---|---|');
  for (const q of r.search.queries)
    console.log(
      `| ${q.type} | ${q.p50.toFixed(2)} | ${q.p99.toFixed(2)}${q.p99 >= 1000 ? ' **OVER 1 s**' : ''} | ${q.rows} |`,
    );
  console.log(
    `| reference: primary-key lookup of one message | ${r.search.pkLookup.p50.toFixed(3)} | ${r.search.pkLookup.p99.toFixed(3)} | 1 |`,
  );
  console.log('');
  console.log(
    `Hub investigation of 10 observables over the same ${r.search.stored.toLocaleString('en')} messages from 5 gateways (30 runs; counts per gateway, newest 200 messages each, judgements, graph), next to the 10 bare index lookups`,
  );
  console.log('| investigation | p50 ms | p99 ms | reference: 10 lookups p50 / p99 ms | graph nodes |');
  console.log('|---|---|---|---|---|');
  for (const [label, x] of [
    ['10 observables (one never seen)', r.investigation.typical],
    ['10 observables, one of them in every message (example.com)', r.investigation.withHot],
  ] as const)
    console.log(
      `| ${label} | ${x.p50.toFixed(1)} | ${x.p99.toFixed(1)}${x.p99 >= 1000 ? ' **OVER 1 s**' : ''} | ${x.refP50.toFixed(1)} / ${x.refP99.toFixed(1)} | ${x.nodes} |`,
    );
  console.log('');
}
