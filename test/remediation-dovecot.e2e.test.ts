// Mailbox remediation against a real Dovecot (DESIGN §10): the gateway delivers into Dovecot over LMTP
// (route lmtp://), then the admin API and the CLI delete and forward delivered messages through the
// Dovecot master user; the test reads every mailbox back over IMAP to see that exactly the right
// messages went (and the others stayed), that the forwarded copy arrived at the SOC mailbox through our
// own queue, and that tracking and the mail log show every attempt. Failures: never delivered,
// already deleted, an unknown mailbox, a wrong master password.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startTestGateway, testConfig } from './helpers/gateway.ts';
import { hasDovecot, startDovecot, type TestDovecot } from './helpers/dovecot.ts';
import { waitFor } from './helpers/peers.ts';
import { sendMessage } from './helpers/rawsmtp.ts';
import type { RemediationResult } from '../src/xdr/remediation/service.ts';

const skip = hasDovecot() ? false : 'dovecot is not installed (run .ci/run)';
const bin = path.resolve(import.meta.dirname, '../bin/breakwater.js');

let dovecot: TestDovecot;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
const mids: Record<string, number> = {};

async function send(name: string, to: string[]): Promise<number> {
  const { mid, reply } = await sendMessage(
    gw.port('outgoing'),
    'mallory@evil.test',
    to,
    `From: <mallory@evil.test>\r\nTo: ${to.join(', ')}\r\nSubject: ${name}\r\nMessage-ID: <${name}@evil.test>\r\n\r\nbody of ${name}\r\n`,
  );
  assert.ok(mid, reply);
  return mid;
}

async function remediate(body: Record<string, unknown>): Promise<{ status: number; json: any }> {
  const r = await fetch(`http://127.0.0.1:${gw.adminPort}/api/v1/remediation`, {
    method: 'POST',
    headers: { authorization: `Bearer ${gw.token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: r.status, json: await r.json() };
}

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [bin, ...args, '--config', path.join(gw.dir, 'breakwater.yaml')]);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** The remediation attempts in tracking, once there are `n` (tracking writes in batches). */
async function attempts(mid: number, n: number): Promise<Array<Record<string, unknown>>> {
  const list = () => gw.gateway.tracker.show(mid)!.events.filter((e) => e.type === 'remediation.attempt');
  await waitFor(() => list().length >= n, 5000, `${n} attempts of MID ${mid} in tracking`);
  await new Promise((r) => setTimeout(r, 50)); // and no more
  return list();
}

before(async () => {
  if (skip) return;
  dovecot = await startDovecot(['bob@dst.test', 'carol@dst.test', 'soc@dst.test']);
  const imap = { type: 'imap', host: '127.0.0.1', port: dovecot.imapPort, tls: 'none', masterUser: 'admin' };
  gw = await startTestGateway(
    testConfig({
      routes: {
        '*': [`lmtp://127.0.0.1:${dovecot.lmtpPort}`],
        'gone.test': ['file:delivered'],
        'other.test': ['file:delivered'],
      },
      remediation: {
        profiles: [
          { name: 'dovecot', ...imap, masterPassword: 'masterpw' },
          { name: 'wrong-master', ...imap, masterPassword: 'not-the-password' },
        ],
        mappings: [
          { domain: 'dst.test', profile: 'dovecot' },
          // delivered elsewhere (a file), looked for in Dovecot: the mailbox does not exist there
          { domain: 'gone.test', profile: 'dovecot' },
          { domain: 'other.test', profile: 'wrong-master' },
        ],
      },
    }),
  );
  // the CLI finds the admin API here (breakwater start writes it)
  writeFileSync(path.join(gw.dataDir, 'admin.addr'), `127.0.0.1:${gw.adminPort}\n`);
  mids.m1 = await send('m1', ['bob@dst.test', 'carol@dst.test']);
  mids.m2 = await send('m2', ['bob@dst.test']);
  mids.m3 = await send('m3', ['bob@dst.test']);
  mids.m4 = await send('m4', ['bob@dst.test']);
  mids.bounced = await send('bounced', ['nobody@dst.test']); // Dovecot's LMTP refuses: never delivered
  mids.gone = await send('gone', ['zed@gone.test']);
  mids.other = await send('other', ['dan@other.test']);
  for (const mid of Object.values(mids))
    await waitFor(
      () => ['delivered', 'bounced'].includes(gw.gateway.tracker.show(mid)?.status ?? ''),
      15_000,
      `MID ${mid} settled`,
    );
  assert.equal(gw.gateway.tracker.show(mids.m1)!.status, 'delivered');
  assert.equal(gw.gateway.tracker.show(mids.bounced)!.status, 'bounced');
  // bob keeps m2 in another folder: every folder is searched
  const c = await dovecot.open('bob@dst.test');
  const lock = await c.getMailboxLock('INBOX');
  try {
    const uids = (await c.search({ header: { 'message-id': 'm2@evil.test' } }, { uid: true })) || [];
    assert.equal(uids.length, 1);
    await c.messageMove(uids, 'Archive', { uid: true });
  } finally {
    lock.release();
    await c.logout();
  }
});

after(async () => {
  await gw?.stop();
  await dovecot?.stop();
});

test('messages reach Dovecot through the lmtp:// route', { skip }, async () => {
  assert.deepEqual(await dovecot.messageIds('bob@dst.test'), {
    INBOX: ['<m1@evil.test>', '<m3@evil.test>', '<m4@evil.test>'],
    Archive: ['<m2@evil.test>'],
    Trash: [],
  });
  assert.deepEqual((await dovecot.messageIds('carol@dst.test')).INBOX, ['<m1@evil.test>']);
  const r = gw.gateway.tracker.show(mids.m1)!;
  assert.ok(r.recipients.every((x) => x.status === 'delivered'));
  assert.match(r.events.find((e) => e.type === 'delivery.delivered')!.target as string, /127\.0\.0\.1:\d+/);
});

test(
  'delete by MID removes the message from every mailbox it was delivered to, and nothing else',
  { skip },
  async () => {
    const { status, json } = await remediate({ action: 'delete', mids: [mids.m1], by: 'analyst@soc.test' });
    assert.equal(status, 200, JSON.stringify(json));
    const r = json as RemediationResult;
    assert.deepEqual(
      { total: r.total, deleted: r.deleted, failed: r.failed, failures: r.failures },
      { total: 2, deleted: 2, failed: 0, failures: [] },
    );
    assert.deepEqual(r.remediated.map((x) => `${x.recipient} ${x.profile}`).sort(), [
      'bob@dst.test dovecot',
      'carol@dst.test dovecot',
    ]);
    assert.deepEqual(await dovecot.messageIds('bob@dst.test'), {
      INBOX: ['<m3@evil.test>', '<m4@evil.test>'],
      Archive: ['<m2@evil.test>'],
      Trash: [],
    });
    assert.deepEqual((await dovecot.messageIds('carol@dst.test')).INBOX, []);
    const events = await attempts(mids.m1, 2);
    assert.equal(events.length, 2);
    for (const e of events) {
      assert.equal(e.action, 'delete');
      assert.equal(e.result, 'done');
      assert.equal(e.profile, 'dovecot');
      assert.equal(e.attempt, 1);
      assert.equal(e.by, 'analyst@soc.test');
    }
    const log = readFileSync(path.join(gw.dataDir, 'logs', 'mail.log'), 'utf8');
    assert.match(
      log,
      new RegExp(
        `MID ${mids.m1} remediation delete in the mailbox of <carol@dst\\.test> via dovecot \\(attempt 1\\): done by analyst@soc\\.test`,
      ),
    );
    assert.doesNotMatch(log, /masterpw/);
  },
);

test('an already deleted message is message_not_found, once per mailbox, not retried', { skip }, async () => {
  const { json } = await remediate({ action: 'delete', mids: [mids.m1] });
  const r = json as RemediationResult;
  assert.equal(r.failed, 2);
  assert.deepEqual(r.failures.map((f) => `${f.recipient} ${f.reason}`).sort(), [
    'bob@dst.test message_not_found',
    'carol@dst.test message_not_found',
  ]);
  assert.equal((await attempts(mids.m1, 4)).length, 4, 'one more attempt per mailbox');
});

test(
  'the CLI forwards and deletes by Message-ID: the copy reaches the SOC mailbox through our queue',
  { skip },
  async () => {
    const out = await cli(
      'remediate',
      '--action',
      'forward-and-delete',
      '--message-id',
      '<m2@evil.test>',
      '--forward-to',
      'soc@dst.test',
      '--json',
    );
    assert.equal(out.code, 0, out.stderr + out.stdout);
    const r = JSON.parse(out.stdout) as RemediationResult;
    assert.equal(r.forwardedAndDeleted, 1);
    const forwardMid = r.remediated[0].forwardMid!;
    assert.ok(forwardMid > mids.gone);
    await waitFor(() => gw.gateway.tracker.show(forwardMid)?.status === 'delivered', 10_000, 'forward delivered');
    assert.deepEqual(await dovecot.messageIds('bob@dst.test'), {
      INBOX: ['<m3@evil.test>', '<m4@evil.test>'],
      Archive: [],
      Trash: [],
    });
    // the SOC mailbox has the forward, with the original attached unchanged
    const c = await dovecot.open('soc@dst.test');
    const lock = await c.getMailboxLock('INBOX');
    try {
      const msgs = [];
      for await (const m of c.fetch('1:*', { source: true, envelope: true })) msgs.push(m);
      assert.equal(msgs.length, 1);
      assert.equal(msgs[0].envelope!.subject, `[Remediation] MID ${mids.m2}: m2`);
      const src = msgs[0].source!.toString();
      assert.match(src, /Content-Type: message\/rfc822/);
      assert.match(src, /\r\nMessage-ID: <m2@evil\.test>\r\n/);
      assert.match(src, /body of m2/);
    } finally {
      lock.release();
      await c.logout();
    }
    const [e] = await attempts(mids.m2, 1);
    assert.equal(e.forwardMid, forwardMid);
    assert.equal(e.action, 'forward-and-delete');
    assert.match(String(e.by), /^cli:/);
  },
);

test('forward leaves the message in the mailbox', { skip }, async () => {
  const { json } = await remediate({ action: 'forward', mids: [mids.m3], forwardTo: 'soc@dst.test' });
  assert.equal((json as RemediationResult).forwarded, 1);
  await waitFor(
    () => gw.gateway.tracker.show((json as RemediationResult).remediated[0].forwardMid!)?.status === 'delivered',
    10_000,
    'forward delivered',
  );
  assert.deepEqual((await dovecot.messageIds('bob@dst.test')).INBOX, ['<m3@evil.test>', '<m4@evil.test>']);
  assert.equal((await dovecot.messageIds('soc@dst.test')).INBOX.length, 2);
});

test(
  'failures are counted with their reason, never thrown: not delivered, unknown mailbox, wrong master password',
  { skip },
  async () => {
    const out = await cli(
      'remediate',
      '--action',
      'delete',
      '--mid',
      `${mids.bounced},999999`,
      '--mid',
      String(mids.gone),
      '--mid',
      String(mids.other),
      '--message-id',
      '<never-seen@evil.test>',
      '--json',
    );
    assert.equal(out.code, 1, 'failures: exit 1');
    assert.match(out.stderr, /not_delivered/);
    const r = JSON.parse(out.stdout) as RemediationResult;
    assert.deepEqual(
      r.failures.map((f) => `${f.mid} ${f.recipient} ${f.reason}`),
      [
        `${mids.bounced} nobody@dst.test not_delivered`,
        '999999 null not_delivered',
        'null null not_delivered',
        `${mids.gone} zed@gone.test mailbox_not_found`,
        `${mids.other} dan@other.test auth_failed`,
      ],
    );
    assert.deepEqual([r.total, r.failed, r.deleted], [5, 5, 0]);
    // final for the profile at once: neither is retried
    for (const mid of [mids.gone, mids.other]) assert.equal((await attempts(mid, 1)).length, 1);
    assert.equal((await attempts(mids.other, 1))[0].profile, 'wrong-master');
    assert.equal((await attempts(mids.bounced, 0)).length, 0, 'no attempt on a message that was never delivered');
    assert.ok(!JSON.stringify(gw.gateway.tracker.show(mids.other)).includes('not-the-password'));
    assert.ok(!readFileSync(path.join(gw.dataDir, 'logs', 'mail.log'), 'utf8').includes('not-the-password'));
    assert.deepEqual((await dovecot.messageIds('bob@dst.test')).INBOX, ['<m3@evil.test>', '<m4@evil.test>']);
  },
);

test('the API refuses a request it cannot start', { skip }, async () => {
  for (const [body, code] of [
    [{ action: 'forward', mids: [mids.m4] }, 'forward_address_required'],
    [{ action: 'delete' }, 'message_required'],
    [{ action: 'purge', mids: [1] }, 'invalid_parameter'],
    [{ action: 'delete', mids: [1], colour: 'red' }, 'unknown_parameter'],
  ] as const) {
    const { status, json } = await remediate(body);
    assert.equal(status, 400, JSON.stringify(body));
    assert.equal(json.error.code, code, JSON.stringify(json));
  }
});
