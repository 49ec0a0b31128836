// Recipient validation against a real OpenLDAP slapd (issue 15): known recipients accepted, unknown ones
// 550 5.1.1 at RCPT TO, filter values escaped (RFC 4515), cached answers served while the directory is
// down and 451 4.4.3 for the rest, and the directory harvest limits (per session, per hour per IP).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { startTestGateway, testConfig } from './helpers/gateway.ts';
import { RawSmtp, sendMessage } from './helpers/rawsmtp.ts';
import { hasSlapd, startSlapd, PEOPLE, READER_DN, READER_PW, type TestSlapd } from './helpers/slapd.ts';
import { tempDir, waitFor } from './helpers/peers.ts';
import { escapeFilterValue, recipientFilter } from '../src/smtp/ldap-accept.ts';
import { validateConfig } from '../src/config/load.ts';
import { Client } from 'ldapts';

const skip = hasSlapd() ? false : 'slapd is not installed (run .ci/run)';

const MAX_PER_SESSION = 3;
const MAX_PER_HOUR = 9;

let slapd: TestSlapd;
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
async function rcpts(to: string[]): Promise<string[]> {
  const c = await RawSmtp.open(gw.port('incoming'));
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
});

after(async () => {
  await gw?.stop();
  await slapd?.close();
});

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
