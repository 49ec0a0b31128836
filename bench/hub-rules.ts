// Outbreak rules from the hub (issue 14): from an operator's publication (the API call leaving the client)
// to the new bundle verified and active on every one of 3 registered gateways, over 20 publications; and
// from a burst (its last batch of summaries acknowledged by the hub) to the rule drafted by outbreak
// intelligence, over 20 bursts on 3 gateways; next to a bare round trip to the hub in the same run. The hub is its own process; the gateways share
// this one (as three machines would not: the figure is an upper bound for the push itself).
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { startTestGateway, testConfig } from '../test/helpers/gateway.ts';
import { registerTestDevices, sendSummaries, spawnHub, testSummary } from '../test/helpers/hub.ts';
import { tempDir } from '../test/helpers/peers.ts';

export interface HubRulesBenchResult {
  gateways: number;
  trials: number;
  publishToActive: { p50: number; p99: number; max: number };
  burstToDraft: { p50: number; p99: number; max: number };
  roundTrip: { p50: number; p99: number };
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

export async function runHubRulesBench(trials = 20): Promise<HubRulesBenchResult> {
  // as in production: answers are not checked against their schemas (the test helpers turn that on)
  process.env.BREAKWATER_API_CHECK_RESPONSES = '0';
  const dir = tempDir('bw-bench-hubrules-');
  const file = path.join(dir, 'hub.yaml');
  writeFileSync(file, YAML.stringify({ dataDir: './data', listen: { host: '127.0.0.1', port: 0 } }));
  const hub = await spawnHub(file);
  const call = async (method: string, route: string, body?: unknown) => {
    const r = await fetch(hub.url + route, {
      method,
      headers: {
        authorization: `Bearer ${hub.token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!r.ok) throw new Error(`${method} ${route}: HTTP ${r.status} ${await r.text()}`);
    return (await r.json()) as any;
  };
  const gws: Array<Awaited<ReturnType<typeof startTestGateway>>> = [];
  try {
    for (let i = 0; i < 3; i++) {
      const gw = await startTestGateway(
        testConfig({
          routes: { '*': ['file:delivered'] },
          outbreakFilters: { adaptiveRules: false },
          cloud: { enabled: true, region: 'eu', regions: { eu: hub.url } },
        }),
      );
      const { token } = await call('POST', '/api/v1/tokens', { region: 'eu' });
      const reg = await gw.gateway.cloud.register(token);
      if (reg.status !== 'registered') throw new Error(`registration failed: ${reg.reason}`);
      gws.push(gw);
    }
    const draft = await call('POST', '/api/v1/rules', {
      level: 4,
      category: 'phish',
      description: 'bench rule',
      condition: { subject: ['bench campaign'] },
    });
    const activeEverywhere = (v: number) => gws.every((g) => (g.gateway.outbreak.bundle?.version ?? 0) >= v);
    const times: number[] = [];
    for (let t = 0; t < trials + 1; t++) {
      // let every gateway's poll settle back into waiting, as between two real publications
      await new Promise((r) => setTimeout(r, 300));
      const started = performance.now();
      const answer =
        t === 0
          ? await call('POST', '/api/v1/rules/publish', { ids: [draft.id] })
          : await call('PATCH', `/api/v1/rules/${draft.id}`, { level: t % 2 ? 3 : 4 });
      const v = answer.bundle.version as number;
      while (!activeEverywhere(v)) {
        if (performance.now() - started > 60_000) throw new Error(`version ${v} not active everywhere after 60 s`);
        await new Promise((r) => setTimeout(r, 2));
      }
      if (t > 0) times.push(performance.now() - started); // the first one warms up
    }
    // Bursts: 6 held messages with one new attachment each time, 2 from each of 3 gateways (the devices
    // registered here stand for them), then the draft appears in the intelligence list.
    const senders = await registerTestDevices(hub.url, hub.token, ['burst-a', 'burst-b', 'burst-c']);
    const burstTimes: number[] = [];
    let mid = 1;
    for (let t = 0; t < trials; t++) {
      const sha = (t + 1).toString(16).padStart(64, 'b');
      const started = performance.now();
      for (const [i, d] of senders.entries())
        await sendSummaries(
          hub.url,
          d,
          `burst-${t}-${i}`,
          [0, 1].map(() =>
            testSummary(mid++, {
              attachments: [{ name: 'x.html', trueType: 'text/html', size: 100, sha256: sha }],
              status: 'quarantined',
              verdict: 'quarantine',
              threatLevel: 4,
            }),
          ),
        );
      for (;;) {
        const { drafts } = await call('GET', '/api/v1/intelligence/drafts');
        if ((drafts as Array<{ evidence: { key: string } }>).some((d) => d.evidence.key === sha)) break;
        if (performance.now() - started > 30_000) throw new Error(`burst ${t} not drafted after 30 s`);
        await new Promise((r) => setTimeout(r, 5));
      }
      burstTimes.push(performance.now() - started);
    }
    const rt: number[] = [];
    for (let i = 0; i < 50; i++) {
      const s = performance.now();
      await (await fetch(`${hub.url}/health`)).json();
      rt.push(performance.now() - s);
    }
    return {
      gateways: gws.length,
      trials,
      publishToActive: { p50: pct(times, 0.5), p99: pct(times, 0.99), max: Math.max(...times) },
      burstToDraft: { p50: pct(burstTimes, 0.5), p99: pct(burstTimes, 0.99), max: Math.max(...burstTimes) },
      roundTrip: { p50: pct(rt, 0.5), p99: pct(rt, 0.99) },
    };
  } finally {
    for (const g of gws) await g.stop();
    hub.proc.kill('SIGTERM');
  }
}

export function printHubRulesBench(r: HubRulesBenchResult): void {
  console.log(
    `Hub rule publication → verified and active on every one of ${r.gateways} gateways, ${r.trials} publications (pushed over the device channel; Cisco's gateways poll every 5 minutes); burst → draft, ${r.trials} bursts on 3 gateways`,
  );
  console.log('| what | p50 ms | p99 ms |');
  console.log('|---|---|---|');
  console.log(
    `| publish (API) → active on all ${r.gateways} gateways | ${r.publishToActive.p50.toFixed(1)} | ${r.publishToActive.p99.toFixed(1)} |`,
  );
  console.log(
    `| burst (last batch acknowledged) → rule drafted | ${r.burstToDraft.p50.toFixed(1)} | ${r.burstToDraft.p99.toFixed(1)} |`,
  );
  console.log(
    `| reference: GET /health round trip to the hub | ${r.roundTrip.p50.toFixed(2)} | ${r.roundTrip.p99.toFixed(2)} |`,
  );
  console.log('');
}
