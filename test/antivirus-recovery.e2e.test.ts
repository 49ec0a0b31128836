// clamd back after an outage: the messages that waited for it are scanned at once (docs/antivirus.md),
// not at their one-minute retry nor at the next signature check. A real clamd, stopped and started by
// the test, and real SMTP peers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { hasBinary, startSmtpSink, swaks, waitFor, type Sink } from './helpers/peers.ts';
import { startTestGateway, testConfig } from './helpers/gateway.ts';
import { hasClamd, startClamd } from './helpers/clamd.ts';

const skip =
  hasBinary('smtp-sink') && hasBinary('swaks') && hasClamd()
    ? false
    : 'smtp-sink, swaks or clamd are not installed (run .ci/run)';

let sink: Sink;
let clamd: Awaited<ReturnType<typeof startClamd>>;
let gw: Awaited<ReturnType<typeof startTestGateway>>;

before(async () => {
  if (skip) return;
  sink = await startSmtpSink({ dump: true });
  clamd = await startClamd();
  gw = await startTestGateway(
    testConfig({
      routes: { '*': [`smtp://127.0.0.1:${sink.port}`] },
      // the signature check (the only thing that noticed clamd coming back) is far away
      antivirus: { clamd: { host: '127.0.0.1', port: clamd.port }, timeout: '3s', signatureCheckInterval: '1h' },
      outbreakFilters: { adaptiveRules: false },
    }),
  );
  await waitFor(() => gw.gateway.antivirus.signatureVersion !== null, 10_000, 'clamd');
});

after(async () => {
  await gw?.stop();
  await clamd?.stop();
  await sink?.stop();
});

const delivered = (marker: string) => sink.messages().find((m) => m.body.includes(marker));

test(
  'a message waiting for clamd is scanned and delivered as soon as clamd answers again',
  { skip, timeout: 90_000 },
  async () => {
    clamd.kill();
    const marker = `waits-for-clamd-${Date.now()}`;
    const r = await swaks([
      '-s',
      `127.0.0.1:${gw.port('incoming')}`,
      '-f',
      'a@src.test',
      '-t',
      'bob@dst.test',
      '--header',
      `Subject: ${marker}`,
      '--body',
      marker,
    ]);
    assert.equal(r.code, 0, r.out);
    const mid = Number(/queued as MID (\d+)/.exec(r.out)![1]);
    await waitFor(
      () => gw.gateway.tracker.show(mid)?.events.some((e) => e.type === 'stage.failed' && e.stage === 'antivirus'),
      15_000,
      'stage failure recorded',
    );
    assert.equal(gw.gateway.tracker.show(mid)?.status, 'deferred');
    assert.ok(!delivered(marker), 'not delivered unscanned');
    const back = Date.now();
    await clamd.restart();
    // The scan retry is a minute away and the signature check an hour: only noticing clamd is back
    // gets the message out within the bound.
    await waitFor(() => delivered(marker), 30_000, 'delivery soon after clamd is back');
    assert.ok(Date.now() - back < 45_000);
    const rec = gw.gateway.tracker.show(mid)!;
    assert.ok(rec.events.some((e) => e.type === 'antivirus.scanned' && e.verdict === 'clean'));
    await waitFor(
      () => gw.gateway.alerts.list({ limit: 50, class: 'antivirus' }).some((a) => a.key === 'antivirus.clamd_up'),
      5000,
      'clamd back alert',
    );
  },
);
