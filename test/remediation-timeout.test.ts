// An IMAP server that accepts and never greets: each remediation attempt ends at remediation.timeout
// (the configured bound: 30 s, the smallest allowed; no test-only shortcut), is retried with backoff up to
// `attempts` times, and the message is counted failed with reason timeout; tracking has every attempt.
// About 95 s, mostly waiting: it runs beside the other test files.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestGateway, testConfig } from './helpers/gateway.ts';
import { startHangingPeer, waitFor, type HangingPeer } from './helpers/peers.ts';
import { sendMessage } from './helpers/rawsmtp.ts';

let gw: Awaited<ReturnType<typeof startTestGateway>> | undefined;
let hang: HangingPeer | undefined;

after(async () => {
  await gw?.stop();
  await hang?.close();
});

test('a hanging IMAP server is a timeout after every attempt', { timeout: 180_000 }, async () => {
  hang = await startHangingPeer('silent');
  gw = await startTestGateway(
    testConfig({
      routes: { '*': ['file:delivered'] },
      remediation: {
        profiles: [
          {
            name: 'hung',
            type: 'imap',
            host: '127.0.0.1',
            port: hang.port,
            tls: 'none',
            masterUser: 'admin',
            masterPassword: 'x',
          },
        ],
        mappings: [{ domain: '*', profile: 'hung' }],
        timeout: '30s',
        attempts: 3,
      },
    }),
  );
  const { mid } = await sendMessage(
    gw.port('incoming'),
    'a@src.test',
    ['bob@dst.test'],
    'Subject: hang\r\nMessage-ID: <hang@src.test>\r\n\r\nx\r\n',
  );
  await waitFor(() => gw!.gateway.tracker.show(mid!)?.status === 'delivered', 10_000, 'delivered');
  const started = Date.now();
  const r = await gw.gateway.remediation.run({ action: 'delete', mids: [mid!], by: null });
  const took = Date.now() - started;
  assert.deepEqual(
    r.failures.map((f) => `${f.recipient} ${f.reason}`),
    ['bob@dst.test timeout'],
  );
  assert.equal(hang.connections, 3, 'one connection per attempt');
  // three 30 s attempts and the backoff between them (1 s, 2 s)
  assert.ok(took >= 3 * 30_000 + 3_000 - 500 && took < 3 * 30_000 + 15_000, `took ${took} ms`);
  const list = () => gw!.gateway.tracker.show(mid!)!.events.filter((e) => e.type === 'remediation.attempt');
  await waitFor(() => list().length >= 3, 5000, 'attempts in tracking');
  const events = list();
  assert.deepEqual(
    events.map((e) => `${e.attempt} ${e.result} ${e.reason}`),
    ['1 failed timeout', '2 failed timeout', '3 failed timeout'],
  );
});
