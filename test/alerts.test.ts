import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import path from 'node:path';
import { tempDir } from './helpers/peers.ts';
import { Store } from '../src/store/db.ts';
import { Alerts, type Alert, type AlertInput, type AlertOptions } from '../src/alerts/alerts.ts';

const require = createRequire(import.meta.url);
const { simpleParser } = require('mailparser') as {
  simpleParser(input: Buffer): Promise<{
    subject?: string;
    text?: string;
    messageId?: string;
    date?: Date;
    headers: Map<string, unknown>;
    headerLines: Array<{ key: string; line: string }>;
    from?: { value: Array<{ address?: string; name?: string }> };
    to?: { value: Array<{ address?: string }> };
  }>;
};

const T0 = Date.parse('2026-11-01T08:00:00Z');
const MINUTE = 60_000;

interface Mail {
  sender: string;
  recipients: string[];
  message: Buffer;
}

interface Hook {
  url: string;
  requests: Array<{ headers: IncomingHttpHeaders; body: string; at: number }>;
  /** what to answer to the next requests, in order: a status code or 'hang' (default 200) */
  plan: Array<number | 'hang'>;
  close(): Promise<void>;
}

async function webhookReceiver(): Promise<Hook> {
  const hanging: ServerResponse[] = [];
  const hook = { requests: [], plan: [] } as unknown as Hook;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      hook.requests.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() });
      const next = hook.plan.shift() ?? 200;
      if (next === 'hang') hanging.push(res);
      else res.writeHead(next, { 'content-type': 'text/plain' }).end(`status ${next}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  hook.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  hook.close = async () => {
    for (const r of hanging) r.destroy();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  };
  return hook;
}

function setup(over: Partial<AlertOptions> = {}, dir = tempDir('bw-alerts-')) {
  const store = new Store(path.join(dir, 'db.sqlite'));
  const clock = { t: T0 };
  const mails: Mail[] = [];
  const errors: string[] = [];
  const alerts = new Alerts({
    recipients: ['admin@example.test', 'soc@example.test'],
    from: 'breakwater@mx1.example.test',
    hostname: 'mx1.example.test',
    webhooks: [],
    minSeverity: 'info',
    suppressFor: 15 * MINUTE,
    sendMail: async (sender, recipients, message) => {
      mails.push({ sender, recipients, message });
    },
    store,
    now: () => clock.t,
    onError: (m) => errors.push(m),
    ...over,
  });
  const done = async () => {
    await alerts.close();
    await store.close();
  };
  return { dir, store, clock, mails, errors, alerts, done };
}

function input(over: Partial<AlertInput> = {}): AlertInput {
  return {
    class: 'outbreak',
    severity: 'warning',
    key: 'outbreak.rule_raised:OUTBREAK_1',
    title: 'Outbreak rule OUTBREAK_1 raised to level 4',
    text: 'Rule OUTBREAK_1 (malicious .zip attachments) crossed the quarantine threshold.',
    data: { ruleId: 'OUTBREAK_1', level: 4 },
    ...over,
  };
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('an alert is recorded, e-mailed once to all recipients and posted to the webhook with the documented payload', async () => {
  const hook = await webhookReceiver();
  const { alerts, store, mails, done } = setup({ webhooks: [{ url: hook.url }] });
  try {
    const a = await alerts.raise(input());
    assert.equal(a.suppressed, false);
    assert.equal(a.deliveries.email, 'sent');
    assert.equal(mails.length, 1);
    assert.equal(mails[0].sender, 'breakwater@mx1.example.test');
    assert.deepEqual(mails[0].recipients, ['admin@example.test', 'soc@example.test']);

    await until(() => a.deliveries.webhooks.length === 1, 'the webhook delivery');
    assert.deepEqual(a.deliveries.webhooks, [{ url: hook.url, status: 'sent', httpStatus: 200 }]);
    assert.equal(hook.requests.length, 1);
    const req = hook.requests[0];
    assert.equal(req.headers['content-type'], 'application/json');
    assert.equal(req.headers['user-agent'], 'Breakwater-Alerts/1');
    assert.equal(req.headers['x-breakwater-signature'], undefined, 'no signature without a secret');
    assert.deepEqual(JSON.parse(req.body), {
      id: a.id,
      at: '2026-11-01T08:00:00.000Z',
      class: 'outbreak',
      severity: 'warning',
      key: 'outbreak.rule_raised:OUTBREAK_1',
      title: 'Outbreak rule OUTBREAK_1 raised to level 4',
      text: 'Rule OUTBREAK_1 (malicious .zip attachments) crossed the quarantine threshold.',
      data: { ruleId: 'OUTBREAK_1', level: 4 },
      host: 'mx1.example.test',
    });
    // the delivery result reaches the database too
    await alerts.close();
    const fresh = new Alerts({ ...baseOptions(), store });
    assert.deepEqual(fresh.list()[0].deliveries, {
      email: 'sent',
      webhooks: [{ url: hook.url, status: 'sent', httpStatus: 200 }],
    });
  } finally {
    await done();
    await hook.close();
  }
});

function baseOptions(): Omit<AlertOptions, 'store'> {
  return {
    recipients: [],
    from: 'breakwater@mx1.example.test',
    hostname: 'mx1.example.test',
    webhooks: [],
    minSeverity: 'info',
    suppressFor: 15 * MINUTE,
    sendMail: async () => {},
    onError: () => {},
  };
}

test('the webhook signature is an HMAC-SHA256 of the raw body, and the secret is never recorded or logged', async () => {
  const secret = 's3cr3t-webhook-key';
  const hook = await webhookReceiver();
  hook.plan.push(500, 500, 500);
  const { alerts, store, mails, errors, done } = setup({
    webhooks: [{ url: hook.url, secret }],
    webhookRetryDelays: [10, 10],
  });
  try {
    const a = await alerts.raise(input());
    await until(() => a.deliveries.webhooks.length === 1, 'the webhook delivery');
    assert.equal(hook.requests.length, 3);
    for (const req of hook.requests) {
      const got = String(req.headers['x-breakwater-signature']);
      const want = 'sha256=' + createHmac('sha256', secret).update(req.body).digest('hex');
      assert.ok(timingSafeEqual(Buffer.from(got), Buffer.from(want)), 'signature verifies');
    }
    const tampered = hook.requests[0].body.replace('OUTBREAK_1', 'OUTBREAK_2');
    assert.notEqual(
      'sha256=' + createHmac('sha256', secret).update(tampered).digest('hex'),
      hook.requests[0].headers['x-breakwater-signature'],
    );
    assert.equal(a.deliveries.webhooks[0].status, 'failed');
    assert.equal(errors.length, 1, 'the failure is reported');
    await store.committed();
    const everything = [
      JSON.stringify(store.db.prepare('select * from alerts').all()),
      JSON.stringify(alerts.list()),
      errors.join('\n'),
      mails.map((m) => m.message.toString()).join('\n'),
      hook.requests.map((r) => r.body).join('\n'),
    ].join('\n');
    assert.ok(!everything.includes(secret), 'the secret appears nowhere');
  } finally {
    await done();
    await hook.close();
  }
});

test('a webhook answering 500 is retried after a backoff and recorded as sent once it succeeds', async () => {
  const hook = await webhookReceiver();
  hook.plan.push(500);
  const { alerts, done } = setup({ webhooks: [{ url: hook.url }] });
  try {
    const a = await alerts.raise(input());
    await until(() => a.deliveries.webhooks.length === 1, 'the webhook delivery');
    assert.deepEqual(a.deliveries.webhooks, [{ url: hook.url, status: 'sent', httpStatus: 200 }]);
    assert.equal(hook.requests.length, 2);
    assert.equal(hook.requests[0].body, hook.requests[1].body, 'the same body is sent again');
    assert.ok(hook.requests[1].at - hook.requests[0].at >= 450, 'the default first backoff is about 0.5 s');
  } finally {
    await done();
    await hook.close();
  }
});

test('a webhook answering 4xx is not retried', async () => {
  const hook = await webhookReceiver();
  hook.plan.push(404);
  const { alerts, done } = setup({ webhooks: [{ url: hook.url }], webhookRetryDelays: [10, 10] });
  try {
    const a = await alerts.raise(input());
    await until(() => a.deliveries.webhooks.length === 1, 'the webhook delivery');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(hook.requests.length, 1);
    assert.deepEqual(a.deliveries.webhooks, [{ url: hook.url, status: 'failed', httpStatus: 404, error: 'HTTP 404' }]);
  } finally {
    await done();
    await hook.close();
  }
});

test('a webhook that does not answer times out, is tried three times, and never holds up raise()', async () => {
  const hook = await webhookReceiver();
  hook.plan.push('hang', 'hang', 'hang');
  const { alerts, done } = setup({
    webhooks: [{ url: hook.url }],
    webhookTimeout: 150,
    webhookRetryDelays: [20, 20],
  });
  try {
    const started = Date.now();
    const a = await alerts.raise(input());
    assert.ok(Date.now() - started < 400, 'raise() resolves before the webhook answers');
    assert.equal(a.deliveries.email, 'sent');
    assert.equal(a.deliveries.webhooks.length, 0, 'no webhook result yet');
    await until(() => a.deliveries.webhooks.length === 1, 'the webhook delivery');
    assert.equal(hook.requests.length, 3);
    assert.equal(a.deliveries.webhooks[0].status, 'failed');
    assert.match(a.deliveries.webhooks[0].error ?? '', /timed out after 150 ms/);
  } finally {
    await done();
    await hook.close();
  }
});

test('an unreachable webhook is recorded as failed and raise() still resolves', async () => {
  const hook = await webhookReceiver();
  const url = hook.url;
  await hook.close();
  const { alerts, done } = setup({ webhooks: [{ url }], webhookRetryDelays: [10, 10] });
  try {
    const a = await alerts.raise(input());
    await until(() => a.deliveries.webhooks.length === 1, 'the webhook delivery');
    assert.equal(a.deliveries.webhooks[0].status, 'failed');
    assert.match(a.deliveries.webhooks[0].error ?? '', /ECONNREFUSED|fetch failed/);
  } finally {
    await done();
  }
});

test('close() waits for webhook deliveries for at most closeTimeout, then records them as aborted', async () => {
  const hook = await webhookReceiver();
  hook.plan.push('hang');
  const dir = tempDir('bw-alerts-');
  const { alerts, store, done } = setup({ webhooks: [{ url: hook.url }], closeTimeout: 100 }, dir);
  try {
    const a = await alerts.raise(input());
    await until(() => hook.requests.length === 1, 'the webhook request');
    const started = Date.now();
    await alerts.close();
    assert.ok(Date.now() - started < 2000, 'close() is bounded');
    assert.deepEqual(a.deliveries.webhooks, [{ url: hook.url, status: 'failed', error: 'aborted at shutdown' }]);
    const row = store.db.prepare('select deliveries from alerts where id = ?').get(a.id) as { deliveries: string };
    assert.deepEqual(JSON.parse(row.deliveries).webhooks, a.deliveries.webhooks, 'the outcome is committed');
    await assert.rejects(alerts.raise(input()), /after close/);
  } finally {
    await done();
    await hook.close();
  }
});

test('webhook URLs are recorded without credentials in their query string', async () => {
  const hook = await webhookReceiver();
  const { alerts, done } = setup({ webhooks: [{ url: `${hook.url}?token=abc123` }] });
  try {
    const a = await alerts.raise(input());
    await until(() => a.deliveries.webhooks.length === 1, 'the webhook delivery');
    assert.equal(a.deliveries.webhooks[0].status, 'sent');
    assert.equal(a.deliveries.webhooks[0].url, `${hook.url}?…`);
    assert.ok(!JSON.stringify(alerts.list()).includes('abc123'));
  } finally {
    await done();
    await hook.close();
  }
});

test('repeats of a key within suppressFor are recorded as suppressed and not sent; the next one after it says how many were suppressed', async () => {
  const hook = await webhookReceiver();
  const { alerts, clock, mails, done } = setup({ webhooks: [{ url: hook.url }] });
  try {
    const first = await alerts.raise(input());
    const repeats: Alert[] = [];
    for (const dt of [1, 5, 14]) {
      clock.t = T0 + dt * MINUTE;
      repeats.push(await alerts.raise(input()));
    }
    for (const r of repeats) {
      assert.equal(r.suppressed, true);
      assert.deepEqual(r.deliveries, { email: 'skipped', webhooks: [] });
    }
    // another key is not affected
    const other = await alerts.raise(input({ key: 'outbreak.rule_raised:OUTBREAK_2' }));
    assert.equal(other.suppressed, false);

    clock.t = T0 + 16 * MINUTE;
    const later = await alerts.raise(input());
    assert.equal(later.suppressed, false);
    assert.equal(later.deliveries.email, 'sent');
    assert.match(later.text, /3 similar alerts were suppressed since 2026-11-01T08:00:00\.000Z\./);
    assert.ok(later.text.startsWith(input().text));

    await until(() => hook.requests.length === 3, 'three webhook posts');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(hook.requests.length, 3, 'first, other key, and the one after the interval');
    assert.equal(mails.length, 3);
    assert.deepEqual(
      hook.requests.map((r) => JSON.parse(r.body).id).sort((x, y) => x - y),
      [first.id, other.id, later.id],
    );
    const mail = await simpleParser(mails[2].message);
    assert.match(mail.text ?? '', /3 similar alerts were suppressed/);

    // the window restarts at the alert that was sent
    clock.t = T0 + 20 * MINUTE;
    const again = await alerts.raise(input());
    assert.equal(again.suppressed, true);
    assert.equal(alerts.list({ limit: 1000 }).filter((a) => a.suppressed).length, 4);
  } finally {
    await done();
    await hook.close();
  }
});

test('a more severe alert is not suppressed by a less severe one of the same key', async () => {
  const { alerts, clock, mails, done } = setup();
  try {
    await alerts.raise(input({ severity: 'warning' }));
    clock.t += MINUTE;
    assert.equal((await alerts.raise(input({ severity: 'warning' }))).suppressed, true);
    clock.t += MINUTE;
    const critical = await alerts.raise(input({ severity: 'critical' }));
    assert.equal(critical.suppressed, false);
    assert.match(critical.text, /1 similar alert was suppressed since/);
    clock.t += MINUTE;
    assert.equal((await alerts.raise(input({ severity: 'warning' }))).suppressed, true);
    assert.equal(mails.length, 2);
  } finally {
    await done();
  }
});

test('suppression carries over to a new Alerts instance on the same store', async () => {
  const dir = tempDir('bw-alerts-');
  const a1 = setup({}, dir);
  await a1.alerts.raise(input());
  a1.clock.t = T0 + MINUTE;
  await a1.alerts.raise(input());
  await a1.done();

  const a2 = setup({}, dir);
  try {
    a2.clock.t = T0 + 2 * MINUTE;
    const repeat = await a2.alerts.raise(input());
    assert.equal(repeat.suppressed, true);
    assert.ok(repeat.id > 2, 'ids continue after the recorded ones');
    a2.clock.t = T0 + 20 * MINUTE;
    const later = await a2.alerts.raise(input());
    assert.equal(later.suppressed, false);
    assert.match(later.text, /2 similar alerts were suppressed since 2026-11-01T08:00:00\.000Z/);
    assert.equal(a2.mails.length, 1);
  } finally {
    await a2.done();
  }
});

test('alerts below minSeverity are recorded but not sent, and webhooks get only their classes and severities', async () => {
  const all = await webhookReceiver();
  const criticalOnly = await webhookReceiver();
  const quarantineOnly = await webhookReceiver();
  const { alerts, mails, done } = setup({
    minSeverity: 'warning',
    webhooks: [
      { url: all.url },
      { url: criticalOnly.url, minSeverity: 'critical' },
      { url: quarantineOnly.url, classes: ['quarantine'] },
    ],
  });
  try {
    const info = await alerts.raise(input({ severity: 'info', key: 'k.info' }));
    assert.equal(info.suppressed, false);
    assert.deepEqual(info.deliveries, { email: 'skipped', webhooks: [] });
    assert.equal(mails.length, 0);
    assert.equal(alerts.list()[0].id, info.id, 'still recorded');

    const warning = await alerts.raise(input({ severity: 'warning', key: 'k.warning' }));
    const critical = await alerts.raise(input({ severity: 'critical', key: 'k.critical' }));
    const quarantine = await alerts.raise(
      input({ class: 'quarantine', severity: 'warning', key: 'quarantine.capacity:50', title: 'Quarantine 50 % full' }),
    );
    assert.equal(mails.length, 3);
    await until(() => all.requests.length === 3, 'the catch-all webhook');
    await until(() => criticalOnly.requests.length === 1 && quarantineOnly.requests.length === 1, 'filtered webhooks');
    await alerts.close();
    assert.deepEqual(
      all.requests.map((r) => JSON.parse(r.body).id).sort((x, y) => x - y),
      [warning.id, critical.id, quarantine.id],
    );
    assert.equal(JSON.parse(criticalOnly.requests[0].body).id, critical.id);
    assert.equal(JSON.parse(quarantineOnly.requests[0].body).id, quarantine.id);
    assert.equal(critical.deliveries.webhooks.length, 2);
  } finally {
    await done();
    await Promise.all([all.close(), criticalOnly.close(), quarantineOnly.close()]);
  }
});

test('a below-minSeverity alert does not open a suppression window for its key', async () => {
  const { alerts, clock, mails, done } = setup({ minSeverity: 'warning' });
  try {
    await alerts.raise(input({ severity: 'info' }));
    clock.t += MINUTE;
    const warning = await alerts.raise(input({ severity: 'warning' }));
    assert.equal(warning.suppressed, false);
    assert.equal(mails.length, 1);
  } finally {
    await done();
  }
});

test('the e-mail is a well-formed RFC 5322 message with the alert subject, headers and a details section', async () => {
  const { alerts, mails, done } = setup();
  try {
    const a = await alerts.raise(
      input({
        severity: 'critical',
        data: { ruleId: 'OUTBREAK_1', level: 4, messages: 17, senders: ['a@x.test', 'b@y.test'] },
      }),
    );
    assert.equal(mails.length, 1);
    const raw = mails[0].message.toString('utf8');
    assert.ok(!/(^|[^\r])\n/.test(raw), 'every line ends in CRLF');
    assert.ok(
      raw.split('\r\n').every((l) => l.length <= 78),
      'no line longer than 78',
    );
    const mail = await simpleParser(mails[0].message);
    assert.equal(mail.subject, '[Breakwater critical] outbreak: Outbreak rule OUTBREAK_1 raised to level 4');
    assert.equal(mail.date?.getTime(), T0);
    assert.deepEqual(
      mail.from?.value.map((v) => v.address),
      ['breakwater@mx1.example.test'],
    );
    assert.deepEqual(
      mail.to?.value.map((v) => v.address),
      ['admin@example.test', 'soc@example.test'],
    );
    assert.match(mail.messageId ?? '', new RegExp(`^<alert-${a.id}\\.[0-9a-f]+@mx1\\.example\\.test>$`));
    assert.equal(mail.headers.get('auto-submitted'), 'auto-generated');
    assert.equal(mail.headers.get('mime-version'), '1.0');
    assert.deepEqual(mail.headers.get('content-type'), { value: 'text/plain', params: { charset: 'utf-8' } });
    const text = mail.text ?? '';
    assert.ok(text.startsWith(input().text), 'the body starts with the text');
    assert.match(
      text,
      /\n {2}ruleId: OUTBREAK_1\n {2}level: 4\n {2}messages: 17\n {2}senders: \["a@x\.test","b@y\.test"\]\n/,
    );
    assert.match(text, /\nHost: mx1\.example\.test\n/);
    assert.match(text, /\nTime: 2026-11-01T08:00:00\.000Z\n/);
  } finally {
    await done();
  }
});

test('a hostile title cannot inject headers into the e-mail', async () => {
  const { alerts, mails, done } = setup();
  try {
    const a = await alerts.raise(
      input({ title: 'Rule hit\r\nBcc: x@y\r\n\r\nfake body', key: 'k\r\nX-Evil: 1', data: { 'a\r\nCc: z@q': 'v' } }),
    );
    assert.equal(a.title, 'Rule hit Bcc: x@y fake body');
    const raw = mails[0].message.toString('utf8');
    const head = raw.slice(0, raw.indexOf('\r\n\r\n'));
    assert.ok(!/^(bcc|cc|x-evil):/im.test(head), 'no injected header lines');
    const mail = await simpleParser(mails[0].message);
    assert.equal(mail.headers.has('bcc'), false);
    assert.equal(mail.headers.has('cc'), false);
    assert.equal(mail.subject, '[Breakwater warning] outbreak: Rule hit Bcc: x@y fake body');
    assert.deepEqual(
      mail.to?.value.map((v) => v.address),
      ['admin@example.test', 'soc@example.test'],
    );
  } finally {
    await done();
  }
});

test('non-ASCII titles and texts are encoded and read back unchanged', async () => {
  const { alerts, mails, done } = setup();
  try {
    const title = 'Quarantäne zu 95 % voll — 隔離 ⚠ '.repeat(4).trim();
    const text = `Überlauf droht.\nZeile zwei = wichtig\n${'x'.repeat(200)} ende \nlast line`;
    await alerts.raise(input({ title, text, data: { größe: '950 MB' } }));
    const raw = mails[0].message.toString('utf8');
    assert.ok(/^[\x00-\x7f]*$/.test(raw), 'the message is 7-bit');
    assert.match(raw, /Content-Transfer-Encoding: quoted-printable/);
    assert.ok(raw.split('\r\n').every((l) => l.length <= 78));
    const mail = await simpleParser(mails[0].message);
    assert.equal(mail.subject, `[Breakwater warning] outbreak: ${title}`);
    assert.ok((mail.text ?? '').startsWith(text), 'the text survives quoted-printable');
    assert.match(mail.text ?? '', /\n {2}größe: 950 MB\n/);
  } finally {
    await done();
  }
});

test('a failing spool is recorded as a failed e-mail and raise() still resolves', async () => {
  const { alerts, errors, done } = setup({
    sendMail: async () => {
      throw new Error('spool full');
    },
  });
  try {
    const a = await alerts.raise(input());
    assert.equal(a.deliveries.email, 'failed');
    assert.match(errors.join('\n'), /spool full/);
    assert.equal(alerts.list()[0].deliveries.email, 'failed');
  } finally {
    await done();
  }
});

test('no recipients means the e-mail is skipped', async () => {
  const { alerts, mails, done } = setup({ recipients: [] });
  try {
    assert.equal((await alerts.raise(input())).deliveries.email, 'skipped');
    assert.equal(mails.length, 0);
  } finally {
    await done();
  }
});

test('list filters by class and since, honours the limit, and returns newest first before and after commit', async () => {
  const dir = tempDir('bw-alerts-');
  const { alerts, clock, store, done } = setup({}, dir);
  try {
    const raised: Alert[] = [];
    const classes = ['outbreak', 'quarantine', 'system', 'antivirus', 'outbreak', 'quarantine'] as const;
    for (const [i, c] of classes.entries()) {
      clock.t = T0 + i * MINUTE;
      raised.push(await alerts.raise(input({ class: c, key: `k${i}` })));
    }
    // the same time twice: the later id comes first
    raised.push(await alerts.raise(input({ key: 'k-same-time' })));

    const check = (a: Alerts) => {
      const ids = (xs: Alert[]) => xs.map((x) => x.id);
      const byNewest = [...raised].reverse();
      assert.deepEqual(ids(a.list()), ids(byNewest));
      assert.deepEqual(ids(a.list({ limit: 2 })), ids(byNewest.slice(0, 2)));
      assert.deepEqual(ids(a.list({ class: 'quarantine' })), [raised[5].id, raised[1].id]);
      assert.deepEqual(ids(a.list({ since: T0 + 4 * MINUTE })), ids(byNewest.slice(0, 3)));
      assert.deepEqual(ids(a.list({ class: 'outbreak', since: T0 + 1 })), [raised[6].id, raised[4].id]);
      assert.deepEqual(a.list({ class: 'antivirus' })[0], { ...raised[3] });
    };
    check(alerts); // straight after raise(), before the writer commits
    await store.committed();
    const fromDb = new Alerts({ ...baseOptions(), store });
    check(fromDb); // only the database
    await fromDb.close();
  } finally {
    await done();
  }
});

test('data values are made JSON-safe and recorded the same way in memory and in the database', async () => {
  const { alerts, store, done } = setup();
  try {
    const a = await alerts.raise(
      input({ data: { big: 10n, when: new Date(T0), nested: { x: [1, 2] }, gone: undefined } }),
    );
    assert.deepEqual(a.data, { big: '10', when: '2026-11-01T08:00:00.000Z', nested: { x: [1, 2] } });
    await store.committed();
    assert.deepEqual(new Alerts({ ...baseOptions(), store }).list()[0], alerts.list()[0]);
  } finally {
    await done();
  }
});

test('an unknown class or severity is refused', async () => {
  const { alerts, done } = setup();
  try {
    await assert.rejects(alerts.raise(input({ class: 'bogus' as never })), TypeError);
    await assert.rejects(alerts.raise(input({ severity: 'fatal' as never })), TypeError);
    assert.equal(alerts.list().length, 0);
  } finally {
    await done();
  }
});
