// No accepted message is ever lost: kill -9 under load, downstream outages, expiry bounces.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { hasBinary, startSmtpSink, smtpSource, waitFor, freePort, swaks, deadPort } from './helpers/peers.ts';
import { spawnGateway, startTestGateway, testConfig, writeTestConfig } from './helpers/gateway.ts';

const skip =
  hasBinary('smtp-sink') && hasBinary('smtp-source') && hasBinary('swaks')
    ? false
    : 'Postfix smtp-sink/smtp-source and swaks are not installed (run .ci/run)';

test(
  'kill -9 under load: every message that got a 250 arrives after restart',
  { skip, timeout: 120_000 },
  async (t) => {
    const sink = await startSmtpSink({ dump: true });
    const adminPort = await freePort();
    const inPort = await freePort();
    const doc = testConfig({
      routes: { '*': [`smtp://127.0.0.1:${sink.port}`] },
      admin: { host: '127.0.0.1', port: adminPort },
    });
    (doc.listeners as any[])[0].port = inPort;
    (doc.listeners as any[]).splice(1, 1);
    const { file } = writeTestConfig(doc);
    // Whatever fails below, the senders stop and the gateway process goes: a loop or a child left running
    // would keep this test file's process alive long after its timeout (a hang in CI, not a failure).
    let stop = false;
    let gw: Awaited<ReturnType<typeof spawnGateway>> | null = null;
    let senders: Array<Promise<void>> = [];
    try {
      gw = await spawnGateway(file);
      // Swaks sessions run one after another with unique subjects; we record which got a 250.
      const accepted = new Set<string>();
      senders = Array.from({ length: 4 }, async (_, w) => {
        for (let i = 0; !stop; i++) {
          const id = `crash-${w}-${i}`;
          const r = await new Promise<{ code: number; out: string }>((resolve) => {
            import('node:child_process').then(({ execFile }) =>
              execFile(
                'swaks',
                [
                  '-s',
                  `127.0.0.1:${inPort}`,
                  '-f',
                  'load@src.test',
                  '-t',
                  'bob@dst.test',
                  '--header',
                  `Subject: ${id}`,
                  '--body',
                  `unique ${id}`,
                  '--timeout',
                  '5',
                ],
                (err, stdout, stderr) => resolve({ code: err ? 1 : 0, out: stdout + stderr }),
              ),
            );
          });
          if (/<~ {2}250 .*queued as MID/.test(r.out) || /queued as MID \d+/.test(r.out)) accepted.add(id);
          if (stop) break;
        }
      });
      // Also a bulk load with smtp-source so the kill lands mid-transaction for some sessions.
      const bulk = smtpSource([
        '-s',
        '20',
        '-m',
        '2000',
        '-d',
        '-l',
        '4000',
        '-f',
        'bulk@src.test',
        '-t',
        'bob@dst.test',
        `127.0.0.1:${inPort}`,
      ]);
      // kill once some messages got their 250 (not after a fixed time: a loaded machine accepts slower)
      await waitFor(() => accepted.size >= 5, 60_000, 'five messages accepted before the kill');
      await new Promise((r) => setTimeout(r, 300));
      gw.proc.kill('SIGKILL');
      await once(gw.proc, 'exit');
      stop = true;
      await Promise.all(senders);
      await bulk;
      assert.ok(accepted.size >= 5, `messages were accepted before the kill (${accepted.size})`);
      t.diagnostic(`${accepted.size} uniquely identified messages got a 250 before kill -9`);
      gw = await spawnGateway(file);
      {
        const missing = await waitFor(
          () => {
            const bodies = sink.messages().map((m) => m.body);
            const left = [...accepted].filter((id) => !bodies.some((b) => b.includes(`unique ${id}\n`)));
            return left.length === 0 ? [] : null;
          },
          60_000,
          'every accepted message to arrive',
        ).catch(() => {
          const bodies = sink.messages().map((m) => m.body);
          return [...accepted].filter((id) => !bodies.some((b) => b.includes(`unique ${id}\n`)));
        });
        assert.deepEqual(missing, [], `accepted but never delivered: ${missing.join(', ')}`);
      }
    } finally {
      stop = true;
      if (gw && gw.proc.exitCode === null && gw.proc.signalCode === null) {
        gw.proc.kill('SIGTERM');
        await once(gw.proc, 'exit');
      }
      await Promise.allSettled(senders);
      await sink.stop();
    }
  },
);

test(
  'downstream down: messages wait with deferred events, then deliver when it returns',
  { skip, timeout: 60_000 },
  async () => {
    const port = await freePort();
    const gw = await startTestGateway(
      testConfig({
        routes: { '*': [`smtp://127.0.0.1:${port}`] },
        delivery: { retrySchedule: ['1s'], maxQueueLifetime: '1h', connectTimeout: '1s' },
      }),
    );
    try {
      const r = await swaks([
        '-s',
        `127.0.0.1:${gw.port('incoming')}`,
        '-f',
        'a@src.test',
        '-t',
        'bob@dst.test',
        '--header',
        'Subject: waits',
      ]);
      assert.equal(r.code, 0, r.out);
      const mid = Number(/queued as MID (\d+)/.exec(r.out)?.[1]);
      await waitFor(
        () => gw.gateway.tracker.show(mid)?.events.some((e) => e.type === 'delivery.deferred'),
        10_000,
        'deferred event',
      );
      const queued = gw.gateway.flow.queueList();
      assert.equal(queued.find((q) => q.mid === mid)?.state, 'deferred');
      assert.equal(gw.gateway.tracker.show(mid)!.recipients[0].status, 'deferred');
      const sink = await startSmtpSink({ dump: true, port });
      try {
        await waitFor(
          () => sink.messages().some((m) => m.body.includes('Subject: waits')),
          15_000,
          'delivery after the outage',
        );
        await waitFor(() => gw.gateway.tracker.show(mid)?.status === 'delivered', 5000, 'status delivered');
      } finally {
        await sink.stop();
      }
    } finally {
      await gw.stop();
    }
  },
);

test(
  'expired messages bounce with an RFC 3464 DSN to the sender; null senders get none',
  { skip, timeout: 60_000 },
  async () => {
    const dead = await deadPort();
    const sink = await startSmtpSink({ dump: true });
    const gw = await startTestGateway(
      testConfig({
        routes: { 'dst.test': [`smtp://127.0.0.1:${dead.port}`], '*': [`smtp://127.0.0.1:${sink.port}`] },
        delivery: { retrySchedule: ['1s'], maxQueueLifetime: '2s', connectTimeout: '1s' },
      }),
    );
    try {
      const r = await swaks([
        '-s',
        `127.0.0.1:${gw.port('incoming')}`,
        '-f',
        'sender@src.test',
        '-t',
        'bob@dst.test',
        '--header',
        'Subject: will expire',
      ]);
      const mid = Number(/queued as MID (\d+)/.exec(r.out)?.[1]);
      const n = await swaks([
        '-s',
        `127.0.0.1:${gw.port('incoming')}`,
        '-f',
        '<>',
        '-t',
        'bob@dst.test',
        '--header',
        'Subject: null sender expires',
      ]);
      const nullMid = Number(/queued as MID (\d+)/.exec(n.out)?.[1]);
      const dsn = await waitFor(() => sink.messages().find((m) => m.rcptTo.includes('sender@src.test')), 20_000, 'DSN');
      assert.equal(dsn.mailFrom, '', 'DSNs are sent from the null sender');
      assert.match(dsn.body, /Content-Type: multipart\/report; report-type=delivery-status/);
      assert.match(dsn.body, /Final-Recipient: rfc822; bob@dst\.test/);
      assert.match(dsn.body, /Action: failed/);
      assert.match(dsn.body, /Status: 5\.4\.7/);
      assert.match(dsn.body, /Subject: will expire/, 'original headers included');
      const rec = await waitFor(
        () => (gw.gateway.tracker.show(mid)?.status === 'bounced' ? gw.gateway.tracker.show(mid) : null),
        5000,
        'bounced',
      );
      assert.ok(rec.events.some((e) => e.type === 'delivery.dsn'));
      const nrec = await waitFor(
        () => (gw.gateway.tracker.show(nullMid)?.status === 'bounced' ? gw.gateway.tracker.show(nullMid) : null),
        10_000,
        'null bounced',
      );
      assert.ok(nrec.events.some((e) => e.type === 'delivery.dsn_suppressed'));
      assert.equal(sink.messages().filter((m) => m.rcptTo.length === 0 || m.rcptTo.includes('')).length, 0);
    } finally {
      await gw.stop();
      await sink.stop();
      await dead.release();
    }
  },
);

test(
  'a 5xx from downstream bounces that recipient at once while the other is delivered',
  { skip, timeout: 30_000 },
  async () => {
    // smtp-sink cannot refuse one recipient selectively; a small smtp-server peer does it here.
    const { SMTPServer } = await import('smtp-server');
    const got: string[] = [];
    const down = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      logger: false,
      onRcptTo(addr, _s, cb) {
        if (addr.address.startsWith('nobody')) {
          const e: any = new Error('5.1.1 no such user');
          e.responseCode = 550;
          return cb(e);
        }
        cb();
      },
      onData(stream, s, cb) {
        stream.resume();
        stream.on('end', () => {
          got.push(...s.envelope.rcptTo.map((r) => r.address));
          cb();
        });
      },
    });
    await new Promise<void>((resolve) => down.listen(0, '127.0.0.1', () => resolve()));
    const port = (down.server.address() as { port: number }).port;
    const sink2 = await startSmtpSink({ dump: true });
    const gw = await startTestGateway(
      testConfig({ routes: { 'dst.test': [`smtp://127.0.0.1:${port}`], '*': [`smtp://127.0.0.1:${sink2.port}`] } }),
    );
    try {
      const r = await swaks([
        '-s',
        `127.0.0.1:${gw.port('incoming')}`,
        '-f',
        's@src.test',
        '-t',
        'bob@dst.test,nobody@dst.test',
      ]);
      const mid = Number(/queued as MID (\d+)/.exec(r.out)?.[1]);
      const rec = await waitFor(
        () => {
          const t = gw.gateway.tracker.show(mid);
          return t && t.recipients.every((x) => x.status !== 'queued' && x.status !== 'deferred') ? t : null;
        },
        10_000,
        'final statuses',
      );
      assert.deepEqual(
        rec.recipients.map((x) => [x.address, x.status]),
        [
          ['bob@dst.test', 'delivered'],
          ['nobody@dst.test', 'bounced'],
        ],
      );
      assert.match(rec.recipients[1].lastReply ?? '', /no such user/);
      assert.deepEqual(got, ['bob@dst.test']);
      const dsn = await waitFor(
        () => sink2.messages().find((m) => m.rcptTo.includes('s@src.test')),
        10_000,
        'DSN for the refused recipient',
      );
      assert.match(dsn.body, /Final-Recipient: rfc822; nobody@dst\.test/);
      assert.match(dsn.body, /Status: 5\.1\.1/);
    } finally {
      await gw.stop();
      await sink2.stop();
      await new Promise<void>((resolve) => down.close(() => resolve()));
    }
  },
);

test(
  'a restart keeps deferred mail on its retry schedule, visible in the queue, and retry delivers it',
  { skip, timeout: 60_000 },
  async () => {
    const port = await freePort();
    const doc = testConfig({
      routes: { '*': [`smtp://127.0.0.1:${port}`] },
      delivery: { retrySchedule: ['1h'], maxQueueLifetime: '5d', connectTimeout: '1s' },
    });
    let gw = await startTestGateway(doc);
    const dir = gw.dir;
    const r = await swaks([
      '-s',
      `127.0.0.1:${gw.port('incoming')}`,
      '-f',
      'a@src.test',
      '-t',
      'bob@dst.test',
      '--header',
      'Subject: survives restart',
    ]);
    const mid = Number(/queued as MID (\d+)/.exec(r.out)?.[1]);
    await waitFor(
      () => gw.gateway.flow.queueList().find((q) => q.mid === mid && q.state === 'deferred'),
      10_000,
      'deferred',
    );
    await gw.stop();
    gw = await startTestGateway(doc, dir);
    const sink = await startSmtpSink({ dump: true, port });
    try {
      const entry = gw.gateway.flow.queueList().find((q) => q.mid === mid);
      assert.equal(entry?.state, 'deferred');
      assert.ok(Date.parse(entry!.nextAttemptAt!) > Date.now() + 50 * 60_000, 'still due in about an hour');
      assert.equal(gw.gateway.flow.queueRetry(mid)?.recipients, 1);
      await waitFor(
        () => sink.messages().some((m) => m.body.includes('Subject: survives restart')),
        10_000,
        'delivery after retry',
      );
      await waitFor(() => gw.gateway.tracker.show(mid)?.status === 'delivered', 5000, 'delivered');
      assert.equal(gw.gateway.tracker.show(mid)!.recipients[0].attempts >= 2, true);
    } finally {
      await gw.stop();
      await sink.stop();
    }
  },
);
