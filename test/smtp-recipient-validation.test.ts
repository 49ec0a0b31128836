// Recipient validation against a real OpenLDAP slapd (issue 15): known recipients accepted, unknown ones
// 550 5.1.1 at RCPT TO, filter values escaped (RFC 4515), cached answers served while the directory is
// down and 451 4.4.3 for the rest, and the directory harvest limits (per session, per hour per IP). A
// second slapd with a test CA's certificate, which refuses binds outside TLS: StartTLS and ldaps://, the
// certificate verified (or not), the bind password from bindPasswordFile and never in errors or logs, and
// expired answers served stale while that directory is stopped.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTestGateway, testConfig } from './helpers/gateway.ts';
import { RawSmtp, sendMessage } from './helpers/rawsmtp.ts';
import { hasSlapd, startSlapd, PEOPLE, READER_DN, READER_PW, type TestSlapd } from './helpers/slapd.ts';
import { tempDir, waitFor } from './helpers/peers.ts';
import { escapeFilterValue, LdapAcceptQuery, recipientFilter } from '../src/smtp/ldap-accept.ts';
import { ldapQuerySchema } from '../src/config/directory-schema.ts';
import { validateConfig } from '../src/config/load.ts';
import { Client } from 'ldapts';

const skip = hasSlapd() ? false : 'slapd is not installed (run .ci/run)';

const MAX_PER_SESSION = 3;
const MAX_PER_HOUR = 9;

let slapd: TestSlapd;
/** StartTLS on its ldap:// port, an ldaps:// port, simple binds only over TLS */
let tlsSlapd: TestSlapd;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
/** unknown recipients refused so far from 127.0.0.1 (the hourly harvest window) */
let refused = 0;

function config(url: string): Record<string, unknown> {
  const base = testConfig({ routes: { '*': [`file:${tempDir('bw-rv-out-')}`] } }) as { listeners: any[] };
  base.listeners[0] = {
    ...base.listeners[0],
    acceptDomains: ['example.test', 'other.test'],
    recipientValidation: {
      ldap: 'corp',
      domains: ['example.test'],
      maxRefusalsPerSession: MAX_PER_SESSION,
      maxRefusalsPerHourPerIp: MAX_PER_HOUR,
    },
  };
  // a partner listener whose one sender group allows a single unknown recipient per session
  base.listeners.push({
    ...base.listeners[0],
    name: 'partners',
    hat: [
      {
        name: 'partners',
        match: ['127.0.0.0/8'],
        action: 'accept',
        earlyTalkerDelay: '0ms',
        directoryHarvest: { maxRefusalsPerSession: 1 },
      },
    ],
  });
  return {
    ...base,
    directory: {
      ldap: [
        {
          name: 'corp',
          urls: [url],
          bindDn: READER_DN,
          bindPassword: READER_PW,
          base: PEOPLE,
          filter: '(|(mail={a})(uid={u}))',
          timeout: '2s',
          cache: { positiveTtl: '1h', negativeTtl: '1h' },
        },
      ],
    },
  };
}

const mailLog = () => readFileSync(path.join(gw.dataDir, 'logs', 'mail.log'), 'utf8');

/** One session: EHLO, MAIL FROM, then each RCPT TO; the replies to the RCPTs. */
async function rcpts(to: string[], port = gw.port('incoming')): Promise<string[]> {
  const c = await RawSmtp.open(port);
  try {
    await c.reply();
    await c.cmd('EHLO probe.test');
    assert.match(await c.cmd('MAIL FROM:<probe@src.test>'), /^250/);
    const out: string[] = [];
    for (const r of to) {
      const reply = await c.cmd(`RCPT TO:<${r}>`);
      if (/^550 5\.1\.1/.test(reply)) refused++;
      out.push(reply);
    }
    await c.cmd('QUIT').catch(() => '');
    return out;
  } finally {
    c.close();
  }
}

before(async () => {
  if (skip) return;
  slapd = await startSlapd();
  await slapd.addPeople([
    { uid: 'alice', mail: 'alice@example.test' },
    { uid: 'bob', mail: 'robert@example.test' },
  ]);
  gw = await startTestGateway(config(slapd.url));
  tlsSlapd = await startSlapd({ tls: true });
  await tlsSlapd.addPeople([{ uid: 'alice', mail: 'alice@example.test' }]);
});

after(async () => {
  await gw?.stop();
  await slapd?.close();
  await tlsSlapd?.close();
});

/** A query as the gateway builds it (schema defaults), with the warnings it logs at start. */
function query(over: Record<string, unknown>): { q: LdapAcceptQuery; warnings: string[] } {
  const warnings: string[] = [];
  const cfg = ldapQuerySchema.parse({
    name: 'tls',
    urls: [tlsSlapd.url],
    bindDn: READER_DN,
    base: PEOPLE,
    filter: '(mail={a})',
    timeout: '2s',
    ...over,
  });
  return { q: new LdapAcceptQuery(cfg, { warn: (l) => warnings.push(l) }), warnings };
}

/** A bind password file with this content and mode. */
function secretFile(content: string, mode: number): string {
  const file = path.join(tempDir('bw-ldap-secret-'), 'bind.secret');
  writeFileSync(file, content, { mode });
  return file;
}

test('RFC 4515 escaping of filter values: * ( ) \\ and NUL never reach the filter as syntax', () => {
  assert.equal(escapeFilterValue('*)(uid=*'), '\\2a\\29\\28uid=\\2a');
  assert.equal(escapeFilterValue('a\\b\0c'), 'a\\5cb\\00c');
  assert.equal(
    recipientFilter('(&(mail={a})(uid={u})(dc={d}))', '*)(uid=*@Example.TEST'),
    '(&(mail=\\2a\\29\\28uid=\\2a@Example.TEST)(uid=\\2a\\29\\28uid=\\2a)(dc=example.test))',
  );
  const bad = validateConfig(
    testConfig({ directory: { ldap: [{ name: 'x', urls: ['ldap://h:389'], base: 'dc=x', filter: '(mail={x})' }] } }),
  );
  assert.ok(
    bad.errors.some((e) => e.path === 'directory.ldap[0].filter'),
    JSON.stringify(bad.errors),
  );
  const missing = validateConfig(
    testConfig({
      listeners: [
        {
          name: 'in',
          port: 0,
          direction: 'incoming',
          acceptDomains: ['x.test'],
          hat: [{ name: 'all', match: ['ALL'], action: 'accept' }],
          recipientValidation: { ldap: 'nope' },
        },
      ],
    }),
  );
  assert.ok(
    missing.errors.some((e) => e.path === 'listeners[0].recipientValidation.ldap'),
    JSON.stringify(missing.errors),
  );
});

test('a recipient the directory knows is accepted; an unknown one gets 550 5.1.1 at RCPT TO', { skip }, async () => {
  const sent = await sendMessage(
    gw.port('incoming'),
    's@src.test',
    ['alice@example.test', 'bob@example.test', 'anyone@other.test', 'postmaster'],
    'Subject: known\r\n\r\nhello\r\n',
  );
  assert.equal(sent.stage, 'end', sent.reply);
  assert.ok(sent.mid, sent.reply);
  const [unknown] = await rcpts(['nobody@example.test']);
  assert.match(unknown, /^550 5\.1\.1 /);
  const log = await waitFor(
    () => /RCPT <nobody@example\.test> rejected: unknown recipient \(directory corp\)/.test(mailLog()) && mailLog(),
    5000,
    'log line',
  );
  assert.ok(!log.includes(READER_PW), 'the bind password is never logged');
});

test('filter injection: "*)(uid=*" and "*" local parts match nobody', { skip }, async () => {
  const replies = await rcpts(['*)(uid=*@example.test', '*@example.test']);
  for (const r of replies) assert.match(r, /^550 5\.1\.1 /);
  // without the escaping, the same local part would have matched every entry
  const naive = '(|(mail={a})(uid={u}))'.replace('{a}', '*)(uid=*@example.test').replace('{u}', '*)(uid=*');
  const c = new Client({ url: slapd.url });
  try {
    await c.bind(READER_DN, READER_PW);
    assert.ok((await c.search(PEOPLE, { filter: naive })).searchEntries.length >= 2);
  } finally {
    await c.unbind();
  }
});

test('cached answers are served while the directory is down; uncached recipients get 451 4.4.3', { skip }, async () => {
  await slapd.stop();
  try {
    // alice (known) and nobody (unknown) were asked before: the cache answers
    const sent = await sendMessage(
      gw.port('incoming'),
      's@src.test',
      ['alice@example.test'],
      'Subject: cached\r\n\r\nx\r\n',
    );
    assert.ok(sent.mid, sent.reply);
    // an answer within its TTL is as good as a live one: tracking has nothing to say about it
    const fresh = await waitFor(() => gw.gateway.tracker.show(sent.mid!), 5000, 'tracking record');
    const freshIngress = fresh.events.find((e) => e.type === 'ingress.accepted') as { directory?: string[] };
    assert.equal(freshIngress.directory, undefined);
    const [carol, nobody] = await rcpts(['carol@example.test', 'nobody@example.test']);
    assert.match(carol, /^451 4\.4\.3 /);
    assert.match(nobody, /^550 5\.1\.1 /);
    await waitFor(
      () =>
        /RCPT <carol@example\.test> deferred: directory corp unavailable \(ldap:\/\/127\.0\.0\.1:\d+: connect ECONNREFUSED/.test(
          mailLog(),
        ),
      5000,
      'unavailable log line',
    );
  } finally {
    await slapd.start();
  }
  // nothing was lost: carol was never refused for good; once the directory knows her she is accepted
  await slapd.addPeople([{ uid: 'carol', mail: 'carol@example.test' }]);
  const again = await sendMessage(
    gw.port('incoming'),
    's@src.test',
    ['carol@example.test'],
    'Subject: retry\r\n\r\nx\r\n',
  );
  assert.ok(again.mid, again.reply);
});

test(
  'directory harvest limit per session: past it the client gets 421 4.7.0 and is disconnected',
  { skip },
  async () => {
    const unknown = Array.from({ length: MAX_PER_SESSION }, (_, i) => `guess${i}@example.test`);
    const replies = await rcpts([...unknown, 'alice@example.test']);
    for (const r of replies.slice(0, MAX_PER_SESSION)) assert.match(r, /^550 5\.1\.1 /);
    assert.match(replies[MAX_PER_SESSION], /^421 4\.7\.0 /);
    await waitFor(
      () => mailLog().includes('refused: directory harvest limit (3 unknown recipients in this session), closing'),
      5000,
      'harvest log line',
    );
  },
);

test("a sender group may set its own harvest limit in place of the listener's", { skip }, async () => {
  const c = await RawSmtp.open(gw.port('partners'));
  try {
    await c.reply();
    await c.cmd('EHLO partner.test');
    assert.match(await c.cmd('MAIL FROM:<probe@partner.test>'), /^250/);
    assert.match(await c.cmd('RCPT TO:<alice@example.test>'), /^250/);
    assert.match(await c.cmd('RCPT TO:<nobody@example.test>'), /^550 5\.1\.1 /);
    // the group's limit (1), not the listener's (MAX_PER_SESSION)
    assert.match(await c.cmd('RCPT TO:<alice@example.test>'), /^421 4\.7\.0 /);
  } finally {
    c.close();
  }
});

test('directory harvest limit per hour and IP: then every RCPT TO gets 452 4.7.1', { skip }, async () => {
  assert.ok(refused < MAX_PER_HOUR, `${refused} refusals so far`);
  while (refused < MAX_PER_HOUR) {
    const [r] = await rcpts([`hour${refused}@example.test`]);
    assert.match(r, /^550 5\.1\.1 /);
  }
  // a known recipient too: a client past the limit learns nothing more
  const [known, unknown] = await rcpts(['alice@example.test', 'more@example.test']);
  assert.match(known, /^452 4\.7\.1 /);
  assert.match(unknown, /^452 4\.7\.1 /);
  const metrics = await gw.gateway.metrics.registry.metrics();
  assert.match(metrics, /breakwater_smtp_rcpt_refusals_total\{listener="incoming",reason="unknown_recipient"\} 9/);
  assert.match(metrics, /breakwater_smtp_rcpt_refusals_total\{listener="incoming",reason="harvest_hour"\} 2/);
  assert.match(metrics, /breakwater_smtp_rcpt_refusals_total\{listener="incoming",reason="directory_unavailable"\} 1/);
});

test('bindPassword and bindPasswordFile are exclusive; the error names the file, never the password', () => {
  const both = validateConfig(
    testConfig({
      directory: {
        ldap: [
          {
            name: 'x',
            urls: ['ldap://h:389'],
            base: 'dc=x',
            bindDn: 'cn=r,dc=x',
            bindPassword: 'inline-Secret-77',
            bindPasswordFile: '/etc/breakwater/ldap.secret',
          },
        ],
      },
    }),
  );
  const err = both.errors.find((e) => e.path === 'directory.ldap[0].bindPasswordFile');
  assert.ok(err, JSON.stringify(both.errors));
  assert.match(err.message, /bindPassword and bindPasswordFile \(\/etc\/breakwater\/ldap\.secret\) are both set/);
  assert.ok(!JSON.stringify(both.errors).includes('inline-Secret-77'));
  const noDn = validateConfig(
    testConfig({
      directory: { ldap: [{ name: 'x', urls: ['ldap://h:389'], base: 'dc=x', bindPasswordFile: 'ldap.secret' }] },
    }),
  );
  assert.ok(
    noDn.errors.some((e) => e.path === 'directory.ldap[0].bindDn' && /bindPasswordFile needs a bindDn/.test(e.message)),
    JSON.stringify(noDn.errors),
  );
});

test(
  'StartTLS on ldap:// and ldaps://: the certificate is verified against tls.caFile; no TLS, no bind',
  { skip },
  async () => {
    const ca = { caFile: tlsSlapd.caFile };
    const file = secretFile(`${READER_PW}\n`, 0o600);
    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      ['StartTLS, CA trusted', { bindPasswordFile: file, tls: { startTls: true, ...ca } }, /^known$/],
      ['ldaps, CA trusted', { urls: [tlsSlapd.ldapsUrl], bindPassword: READER_PW, tls: ca }, /^known$/],
      // certificate verification is on by default: the test CA is not a system root
      ['StartTLS, CA unknown', { bindPassword: READER_PW, tls: { startTls: true } }, /self-signed certificate/],
      ['ldaps, CA unknown', { urls: [tlsSlapd.ldapsUrl], bindPassword: READER_PW }, /self-signed certificate/],
      ['StartTLS, verify off', { bindPassword: READER_PW, tls: { startTls: true, verify: false } }, /^known$/],
      // this directory refuses simple binds outside TLS: the bind above went over TLS
      ['no TLS', { bindPassword: READER_PW }, /ConfidentialityRequired|confidentiality/i],
    ];
    for (const [name, over, expected] of cases) {
      const { q, warnings } = query(over);
      try {
        const a = await q.check('alice@example.test');
        const text = a.result === 'unavailable' ? a.error : a.result;
        assert.match(text, expected, name);
        assert.ok(!text.includes(READER_PW), `${name}: no password in the answer`);
        if (name === 'no TLS') assert.match(warnings.join('\n'), /without tls\.startTls: the bind password crosses/);
        else assert.deepEqual(warnings, [], name);
        if (a.result !== 'unavailable') {
          assert.equal((await q.check('nobody@example.test')).result, 'unknown', name);
        }
      } finally {
        await q.close();
      }
    }
  },
);

test(
  'the bind secret: a readable bindPasswordFile is warned about; no error or log line shows it',
  { skip },
  async () => {
    const readable = query({
      bindPasswordFile: secretFile(`${READER_PW}\n`, 0o644),
      tls: { startTls: true, caFile: tlsSlapd.caFile },
    });
    try {
      assert.equal((await readable.q.check('alice@example.test')).result, 'known');
      assert.equal(readable.warnings.length, 1);
      assert.match(
        readable.warnings[0],
        /^directory\.ldap tls: bindPasswordFile \S+bind\.secret is readable by others \(mode 644\); chmod 600 it$/,
      );
    } finally {
      await readable.q.close();
    }
    const wrong = 'wrong-Secret-4711';
    for (const over of [{ bindPassword: wrong }, { bindPasswordFile: secretFile(wrong, 0o600) }]) {
      const { q, warnings } = query({ ...over, tls: { startTls: true, caFile: tlsSlapd.caFile } });
      try {
        const a = await q.check('alice@example.test');
        assert.equal(a.result, 'unavailable');
        assert.match(a.result === 'unavailable' ? a.error : '', /InvalidCredentialsError/);
        assert.ok(!JSON.stringify([a, warnings]).includes(wrong), JSON.stringify(a));
      } finally {
        await q.close();
      }
    }
    assert.throws(
      () => query({ bindPasswordFile: secretFile('\n', 0o600) }),
      /^Error: directory\.ldap tls: bindPasswordFile: \S+bind\.secret: empty/,
    );
    // the first gateway's logs (start, RCPT lines, the outage) never show its bind password
    const logs = path.join(gw.dataDir, 'logs');
    for (const f of readdirSync(logs)) assert.ok(!readFileSync(path.join(logs, f), 'utf8').includes(READER_PW), f);
  },
);

test(
  'directory down: expired answers serve stale for cache.staleTtl (logged, counted), then 451 4.4.3',
  { skip },
  async () => {
    const secret = secretFile(READER_PW, 0o600);
    const doc = config(tlsSlapd.url) as { directory: { ldap: Array<Record<string, unknown>> } };
    Object.assign(doc.directory.ldap[0], {
      bindPassword: undefined,
      bindPasswordFile: secret,
      filter: '(mail={a})',
      tls: { startTls: true, caFile: tlsSlapd.caFile },
      cache: { positiveTtl: '1s', negativeTtl: '1s', staleTtl: '1h' },
    });
    delete doc.directory.ldap[0].bindPassword;
    const gw2 = await startTestGateway(doc);
    const port = gw2.port('incoming');
    const log2 = () => readFileSync(path.join(gw2.dataDir, 'logs', 'mail.log'), 'utf8');
    // the query's own bounds: 200 ms fresh, then 3 s stale
    const short = query({
      bindPassword: READER_PW,
      tls: { startTls: true, caFile: tlsSlapd.caFile },
      cache: { positiveTtl: '200ms', staleTtl: '3s' },
    });
    try {
      assert.deepEqual(
        await rcpts(['alice@example.test', 'nobody@example.test'], port).then((r) => r.map((x) => x.slice(0, 3))),
        ['250', '550'],
      );
      assert.equal((await short.q.check('alice@example.test')).result, 'known');
      await sleep(1200);
      await tlsSlapd.stop();
      const [alice, nobody, carol] = await rcpts(
        ['alice@example.test', 'nobody@example.test', 'carol@example.test'],
        port,
      );
      assert.match(alice, /^250 /);
      assert.match(nobody, /^550 5\.1\.1 /);
      assert.match(carol, /^451 4\.4\.3 /);
      const log = await waitFor(() => /RCPT <carol@example\.test> deferred/.test(log2()) && log2(), 5000, 'log lines');
      assert.match(
        log,
        /RCPT <alice@example\.test> accepted: known recipient \(directory corp, cached, stale: expired \d+ s ago; directory unavailable \(ldap:\/\/127\.0\.0\.1:\d+: connect ECONNREFUSED/,
      );
      assert.match(
        log,
        /RCPT <nobody@example\.test> rejected: unknown recipient \(directory corp, cached, stale: expired \d+ s ago; directory unavailable/,
      );
      assert.ok(!log.includes(READER_PW), 'no bind password in the mail log');
      const metrics = await gw2.gateway.metrics.registry.metrics();
      assert.match(
        metrics,
        /breakwater_directory_stale_answers_total\{listener="incoming",directory="corp",result="known"\} 1/,
      );
      assert.match(
        metrics,
        /breakwater_directory_stale_answers_total\{listener="incoming",directory="corp",result="unknown"\} 1/,
      );
      // a message accepted on a stale answer says so in its tracking record (and on the tracking page)
      const sent = await sendMessage(port, 's@src.test', ['alice@example.test'], 'Subject: stale\r\n\r\nx\r\n');
      assert.ok(sent.mid, sent.reply);
      const rec = await waitFor(() => gw2.gateway.tracker.show(sent.mid!), 5000, 'tracking record');
      const ingress = rec.events.find((e) => e.type === 'ingress.accepted') as { directory?: string[] };
      assert.equal(ingress.directory?.length, 1, JSON.stringify(ingress));
      assert.match(
        ingress.directory![0],
        /^alice@example\.test: known from a cached answer of directory corp, stale: expired \d+ s ago; directory unavailable \(ldap:\/\/127\.0\.0\.1:\d+: connect ECONNREFUSED/,
      );
      assert.ok(!ingress.directory![0].includes(READER_PW));

      const stale = await short.q.check('alice@example.test');
      assert.ok(stale.result === 'known' && stale.stale && stale.stale.expiredMs >= 1000, JSON.stringify(stale));
      assert.match(stale.stale.error, /ECONNREFUSED/);
      await sleep(3000 - stale.stale.expiredMs + 200);
      // past staleTtl: nothing to answer with
      assert.equal((await short.q.check('alice@example.test')).result, 'unavailable');
      // back: a new connection, StartTLS and bind again
      await tlsSlapd.start();
      assert.deepEqual(await short.q.check('alice@example.test'), { result: 'known', cached: false });
    } finally {
      await short.q.close();
      await gw2.stop();
      await tlsSlapd.start();
    }
  },
);
