// The admin API's stable error codes for requests with one problem or several: which code a request gets
// is decided in the order the checks always ran (the quarantine in the path, the route's own field, a
// body that is not an object, unknown fields, then the fields in order), now that zod schemas validate.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestGateway, testConfig } from './helpers/gateway.ts';

let gw: Awaited<ReturnType<typeof startTestGateway>>;

before(async () => {
  gw = await startTestGateway(
    testConfig({ routes: { '*': ['file:delivered'] }, quarantine: { policy: [{ name: 'review' }] } }),
  );
});

after(async () => {
  await gw?.stop();
});

async function call(method: string, url: string, body?: unknown): Promise<{ status: number; code?: string }> {
  const r = await fetch(`http://127.0.0.1:${gw.adminPort}/api/v1${url}`, {
    method,
    headers: {
      authorization: `Bearer ${gw.token}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = (await r.json()) as { error?: { code: string } };
  return { status: r.status, code: answer.error?.code };
}

const many = Array.from({ length: 10_001 }, (_, i) => i + 1);

// [method, url, body, status, code (for errors)]
const cases: Array<[string, string, unknown, number, string?]> = [
  // tracking search: unknown parameters first, then each parameter
  ['GET', '/tracking/messages?mid=abc&colour=red', undefined, 400, 'unknown_parameter'],
  ['GET', '/tracking/messages?sender=a&sender=b', undefined, 400, 'invalid_parameter'],
  ['GET', '/tracking/messages?sender=', undefined, 400, 'invalid_parameter'],
  ['GET', '/tracking/messages?mid=1e3', undefined, 400, 'invalid_parameter'],
  ['GET', '/tracking/messages?level=6', undefined, 400, 'invalid_parameter'],
  ['GET', '/tracking/messages?since=yesterday', undefined, 400, 'invalid_parameter'],
  ['GET', '/tracking/messages?since=2025-06-01&until=1893456000000&limit=1000', undefined, 200],
  ['GET', '/tracking/messages/abc', undefined, 400, 'invalid_parameter'],
  ['GET', '/tracking/messages/12345', undefined, 404, 'message_not_found'],
  ['POST', '/queue/abc/retry', undefined, 400, 'invalid_parameter'],
  ['POST', '/queue/12345/retry', { anything: [1] }, 404, 'message_not_queued'],
  ['DELETE', '/queue/-1', undefined, 400, 'invalid_parameter'],
  // quarantine listings: the quarantine first, then unknown parameters, then each
  ['GET', '/quarantines/nope/messages?limit=0&colour=red', undefined, 404, 'quarantine_not_found'],
  ['GET', '/quarantines/nope/messages/abc', undefined, 404, 'quarantine_not_found'],
  ['GET', '/quarantines/outbreak/messages/abc', undefined, 400, 'invalid_parameter'],
  ['GET', '/quarantines/outbreak/messages/12345', undefined, 404, 'message_not_quarantined'],
  ['GET', '/quarantines/outbreak/messages?level=9&colour=red', undefined, 400, 'unknown_parameter'],
  ['GET', '/quarantines/outbreak/messages?mids=1,%202', undefined, 200],
  ['GET', '/quarantines/outbreak/messages?mids=1&mids=%203', undefined, 200],
  ['GET', '/quarantines/outbreak/messages?mids=1,%202&mids=3', undefined, 400, 'invalid_parameter'],
  ['GET', '/quarantines/outbreak/messages?all=1&by=x&quarantine=virus', undefined, 200],
  ['GET', '/quarantines/nope/rules', undefined, 404, 'quarantine_not_found'],
  // bulk bodies
  ['POST', '/quarantines/nope/release', [1], 404, 'quarantine_not_found'],
  ['POST', '/quarantines/outbreak/release', undefined, 400, 'invalid_body'],
  ['POST', '/quarantines/outbreak/release', 'mids', 400, 'invalid_body'],
  ['POST', '/quarantines/outbreak/release', { colour: 1, level: 9 }, 400, 'unknown_parameter'],
  ['POST', '/quarantines/outbreak/release', { level: 9, mids: many }, 400, 'invalid_parameter'],
  ['POST', '/quarantines/outbreak/release', { mids: [...many.slice(1), 'x'] }, 400, 'too_many_mids'],
  ['POST', '/quarantines/outbreak/release', { mids: [] }, 400, 'invalid_parameter'],
  ['POST', '/quarantines/outbreak/release', { mids: [1.5] }, 400, 'invalid_parameter'],
  ['POST', '/quarantines/outbreak/release', { mids: 5 }, 200],
  ['POST', '/quarantines/outbreak/release', { mids: [' 7 ', 8], level: '3', limit: '10' }, 200],
  ['POST', '/quarantines/outbreak/release', { since: -5, until: '2030-01-01' }, 200],
  ['POST', '/quarantines/outbreak/release', { since: true }, 400, 'invalid_parameter'],
  ['POST', '/quarantines/outbreak/release', { limit: 5 }, 400, 'filter_required'],
  ['POST', '/quarantines/outbreak/release', { all: 'yes' }, 400, 'filter_required'],
  ['POST', '/quarantines/outbreak/release', { by: 5 }, 400, 'filter_required'],
  ['POST', '/quarantines/outbreak/release', { all: true, by: 5 }, 400, 'invalid_parameter'],
  ['POST', '/quarantines/outbreak/release', { all: true, by: 'x'.repeat(201) }, 400, 'invalid_parameter'],
  ['POST', '/quarantines/outbreak/delete', { rule: 'NO_SUCH_RULE', quarantine: 'virus', by: 'me' }, 200],
  // delay: extend first, even before the body's shape
  ['POST', '/quarantines/outbreak/delay', undefined, 400, 'invalid_parameter'],
  ['POST', '/quarantines/outbreak/delay', [1], 400, 'invalid_parameter'],
  ['POST', '/quarantines/outbreak/delay', { colour: 1, extend: '1 h' }, 400, 'invalid_parameter'],
  ['POST', '/quarantines/outbreak/delay', { colour: 1, extend: '1h' }, 400, 'unknown_parameter'],
  ['POST', '/quarantines/outbreak/delay', { extend: '1h' }, 400, 'filter_required'],
  ['POST', '/quarantines/outbreak/delay', { all: true, extend: '0s' }, 400, 'invalid_parameter'],
  ['POST', '/quarantines/outbreak/delay', { all: true, extend: '3650d' }, 200],
  // move: the target first
  ['POST', '/quarantines/outbreak/move', undefined, 400, 'invalid_target'],
  ['POST', '/quarantines/outbreak/move', { to: 'nope', colour: 1 }, 400, 'invalid_target'],
  ['POST', '/quarantines/outbreak/move', { to: 'outbreak', all: true }, 400, 'invalid_target'],
  ['POST', '/quarantines/outbreak/move', { to: 'review', colour: 1 }, 400, 'unknown_parameter'],
  ['POST', '/quarantines/outbreak/move', { to: 'review' }, 400, 'filter_required'],
  ['POST', '/quarantines/outbreak/move', { to: 'review', mids: [1] }, 200],
  // copy: the addresses first
  ['POST', '/quarantines/outbreak/copy', [1], 400, 'invalid_parameter'],
  ['POST', '/quarantines/outbreak/copy', { to: 'not an address', colour: 1 }, 400, 'invalid_parameter'],
  ['POST', '/quarantines/outbreak/copy', { to: [] }, 400, 'invalid_parameter'],
  ['POST', '/quarantines/outbreak/copy', { to: Array(21).fill('a@b.test') }, 400, 'invalid_parameter'],
  ['POST', '/quarantines/outbreak/copy', { to: ['soc@dst.test', 5], mids: [1] }, 400, 'invalid_parameter'],
  ['POST', '/quarantines/outbreak/copy', { to: ' soc@dst.test ', colour: 1 }, 400, 'unknown_parameter'],
  ['POST', '/quarantines/outbreak/copy', { to: ['soc@dst.test'], mids: [1] }, 200],
  // outbreak rules
  ['POST', '/outbreak/flush', undefined, 400, 'confirmation_required'],
  ['POST', '/outbreak/flush', [true], 400, 'confirmation_required'],
  ['POST', '/outbreak/flush', { confirm: 'yes' }, 400, 'confirmation_required'],
  ['POST', '/outbreak/flush', { confirm: true, note: 'extra fields are ignored' }, 200],
  ['POST', '/outbreak/update', undefined, 200],
  ['POST', '/outbreak/update', ['ignored'], 200],
  // reports and alerts: unknown parameters are ignored, large counts capped
  ['GET', '/reports/outbreak?top=5000&colour=red', undefined, 200],
  ['GET', '/reports/web-interaction?since=garbage', undefined, 400, 'invalid_parameter'],
  ['GET', '/reports/web-interaction?since=2025-06-01&until=1893456000000&top=0', undefined, 200],
  ['GET', '/alerts?limit=5000&colour=red', undefined, 200],
  ['GET', '/alerts?limit=0&class=system', undefined, 200],
  ['GET', '/alerts?class=nope', undefined, 400, 'invalid_parameter'],
  ['GET', '/alerts?class=system&class=outbreak', undefined, 400, 'invalid_parameter'],
  ['GET', '/alerts?limit=-1', undefined, 400, 'invalid_parameter'],
];

test('each request gets the status and stable code it always got', async () => {
  const wrong: string[] = [];
  for (const [method, url, body, status, code] of cases) {
    const r = await call(method, url, body);
    if (r.status !== status || r.code !== code)
      wrong.push(
        `${method} ${url.slice(0, 80)} ${JSON.stringify(body)?.slice(0, 80)}: ${r.status} ${r.code}, not ${status} ${code}`,
      );
  }
  assert.deepEqual(wrong, []);
});
