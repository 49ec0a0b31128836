// The rspamd client, its policy layer and its config, without rspamd: what is sent (envelope and client
// metadata as rspamd's request headers, one Rcpt per recipient), how answers map to actions, and bad
// peers (HTTP errors, answers that are not rspamd's, oversized answers, silence) as typed failures.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { parseAnswer, RspamdClient, RspamdError, spamClass, type RspamdAnswer } from '../src/antispam/rspamd.ts';
import { decideAntispam, effectiveAntispamSettings } from '../src/policy/antispam.ts';
import { validateConfig } from '../src/config/load.ts';
import { testConfig } from './helpers/gateway.ts';

async function fakeRspamd(
  handler: (req: http.IncomingMessage, body: Buffer, res: http.ServerResponse) => void,
): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handler(req, Buffer.concat(chunks), res));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const meta = {
  from: 'a@src.test',
  rcpts: ['b@dst.test', 'c@dst.test'],
  ip: '192.0.2.7',
  helo: 'mail.src.test',
  hostname: 'mail.src.test',
  queueId: '42',
  tls: 'TLS_AES_256_GCM_SHA384',
  mtaName: 'gw.test',
};

const SPAM_ANSWER = {
  is_skipped: false,
  score: 9.5,
  required_score: 15,
  action: 'add header',
  symbols: {
    FROM_NO_DN: { name: 'FROM_NO_DN', score: 0 },
    BAD_WORDS: { name: 'BAD_WORDS', score: 6.5, options: ['viagra'] },
    MISSING_MID: { name: 'MISSING_MID', score: 3 },
  },
  messages: {},
};

test('sends the message with envelope and client metadata as rspamd headers', async () => {
  let seen: { headers: string[]; body: string; url: string } | null = null;
  const peer = await fakeRspamd((req, body, res) => {
    seen = { headers: req.rawHeaders, body: body.toString(), url: req.url! };
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(SPAM_ANSWER));
  });
  const c = new RspamdClient({ url: peer.url, timeoutMs: 2000, maxConnections: 2, settingsId: 'inbound' });
  try {
    const msg = Buffer.from('Subject: hi\r\n\r\nbody\r\n');
    const a = await c.check(Readable.from([msg]), msg.length, { ...meta, rcpts: [...meta.rcpts, 'ü@dst.test'] });
    assert.equal(seen!.url, '/checkv2');
    assert.equal(seen!.body, msg.toString());
    const h = seen!.headers;
    const all = (name: string) => h.filter((_, i) => i % 2 === 1 && h[i - 1].toLowerCase() === name.toLowerCase());
    assert.deepEqual(all('Rcpt'), ['b@dst.test', 'c@dst.test', Buffer.from('ü@dst.test').toString('latin1')]);
    assert.deepEqual(all('From'), ['a@src.test']);
    assert.deepEqual(all('IP'), ['192.0.2.7']);
    assert.deepEqual(all('Helo'), ['mail.src.test']);
    assert.deepEqual(all('Hostname'), ['mail.src.test']);
    assert.deepEqual(all('Queue-Id'), ['42']);
    assert.deepEqual(all('MTA-Name'), ['gw.test']);
    assert.deepEqual(all('TLS-Cipher'), ['TLS_AES_256_GCM_SHA384']);
    assert.deepEqual(all('Settings-ID'), ['inbound']);
    assert.equal(a.action, 'add header');
    assert.equal(a.class, 'spam');
    assert.equal(a.score, 9.5);
    assert.deepEqual(
      a.symbols.map((s) => s.name),
      ['BAD_WORDS', 'MISSING_MID', 'FROM_NO_DN'],
    );
    assert.deepEqual(a.symbols[0].options, ['viagra']);
  } finally {
    c.close();
    await peer.close();
  }
});

test("rspamd's actions map to ham, spam and reject", () => {
  assert.equal(spamClass('no action'), 'ham');
  assert.equal(spamClass('greylist'), 'ham');
  assert.equal(spamClass('soft reject'), 'ham');
  assert.equal(spamClass('add header'), 'spam');
  assert.equal(spamClass('rewrite subject'), 'spam');
  assert.equal(spamClass('reject'), 'reject');
  assert.equal(spamClass('discard'), 'reject');
  assert.equal(spamClass('something custom'), 'ham');
  const skipped = parseAnswer(Buffer.from(JSON.stringify({ is_skipped: true, action: 'reject' })));
  assert.equal(skipped.class, 'ham');
  assert.equal(skipped.skipped, true);
});

test('bad peers are typed failures: HTTP errors, not JSON, no action, oversized, silence, refused', async () => {
  const answers: Array<(res: http.ServerResponse) => void> = [
    (res) => {
      res.statusCode = 500;
      res.end('internal error');
    },
    (res) => res.end('<html>not rspamd</html>'),
    (res) => res.end(JSON.stringify({ score: 3 })),
    (res) => res.end(JSON.stringify([1, 2])),
    (res) => res.end(Buffer.alloc(5 * 1024 * 1024, 0x20)),
    () => {
      // never answers
    },
  ];
  const expected = ['http', 'protocol', 'protocol', 'protocol', 'protocol', 'timeout'];
  let i = 0;
  const peer = await fakeRspamd((_req, _body, res) => answers[i](res));
  const c = new RspamdClient({ url: peer.url, timeoutMs: 500, maxConnections: 2 });
  try {
    for (; i < answers.length; i++) {
      const err = await c.check(Buffer.from('x'), 1, meta).then(
        () => null,
        (e: unknown) => e,
      );
      assert.ok(err instanceof RspamdError, `case ${i}: ${String(err)}`);
      assert.equal(err.reason, expected[i], `case ${i}: ${err.message}`);
    }
  } finally {
    c.close();
    await peer.close();
  }
  const gone = new RspamdClient({ url: peer.url, timeoutMs: 500, maxConnections: 1 });
  const err = await gone.check(Buffer.from('x'), 1, meta).catch((e: unknown) => e);
  assert.ok(err instanceof RspamdError && err.reason === 'unavailable', String(err));
  assert.equal(await gone.ping(), false);
  gone.close();
});

test('symbols and texts from rspamd are bounded and printable', () => {
  const symbols: Record<string, unknown> = {};
  for (let i = 0; i < 200; i++) symbols[`S${i}\r\nX`] = { score: i, options: Array(20).fill('o\x00'.repeat(100)) };
  const a = parseAnswer(
    Buffer.from(JSON.stringify({ action: 'reject\r\nInjected: 1', score: 99, required_score: 15, symbols })),
  );
  assert.equal(a.symbols.length, 50);
  assert.equal(a.symbols[0].name, 'S199  X');
  assert.ok(a.symbols.every((s) => s.options.length <= 5 && s.options.every((o) => o.length <= 100)));
  assert.doesNotMatch(a.action, /[\r\n]/);
});

function answer(action: string, score: number): RspamdAnswer {
  return parseAnswer(
    Buffer.from(JSON.stringify({ action, score, required_score: 15, symbols: { BAD: { score: score } } })),
  );
}

test('the policy layer: tag by default, quarantine/drop/bounce per policy, released spam is tagged', () => {
  const v = validateConfig({
    ...testConfig({
      antispam: { rspamd: { url: 'http://127.0.0.1:11333' } },
      quarantine: { policy: [{ name: 'spam' }] },
      policies: {
        incoming: [
          {
            name: 'strict',
            match: ['x@dst.test'],
            antispam: { mode: 'custom', spam: { action: 'quarantine' }, reject: { action: 'bounce' } },
          },
          { name: 'off', match: ['y@dst.test'], antispam: { mode: 'disabled' } },
          { name: 'default' },
        ],
      },
    }),
  });
  assert.ok(v.config, JSON.stringify(v.errors));
  const cfg = v.config;
  const def = effectiveAntispamSettings(cfg, 'incoming', 'default')!;
  const strict = effectiveAntispamSettings(cfg, 'incoming', 'strict')!;
  assert.equal(effectiveAntispamSettings(cfg, 'incoming', 'off'), null);
  const none = { released: new Set<string>() };
  assert.deepEqual(decideAntispam(answer('no action', 1), def, none), { kind: 'none' });
  const tagged = decideAntispam(answer('add header', 8), def, none);
  assert.equal(tagged.kind, 'deliver');
  assert.equal(tagged.kind === 'deliver' && tagged.subjectTag, '[SUSPECTED SPAM] ');
  assert.match(tagged.kind === 'deliver' ? tagged.headers[0].value : '', /^Yes, action=add_header, score=8\.00/);
  const rej = decideAntispam(answer('reject', 20), def, none);
  assert.equal(rej.kind === 'deliver' && rej.subjectTag, '[SPAM] ');
  const held = decideAntispam(answer('add header', 8), strict, none);
  assert.deepEqual(held.kind === 'quarantine' && [held.quarantine, held.ids], ['spam', ['BAD']]);
  const bounced = decideAntispam(answer('reject', 20), strict, none);
  assert.equal(bounced.kind === 'bounce' && bounced.reply, '554 5.7.1 Message rejected as spam');
  const released = decideAntispam(answer('add header', 8), strict, { released: new Set(['spam']) });
  assert.equal(released.kind, 'deliver');
  // without a URL the stage is off everywhere
  const off = validateConfig(testConfig());
  assert.equal(effectiveAntispamSettings(off.config!, 'incoming', 'default'), null);
});

test('config: a quarantine action needs an existing quarantine; failure modes are skip or tempfail', () => {
  const mode = validateConfig(
    testConfig({ antispam: { rspamd: { url: 'http://127.0.0.1:11333', failureMode: 'quarantine' } } }),
  );
  assert.equal(mode.config, null);
  assert.equal(mode.errors[0].path, 'antispam.rspamd.failureMode');
  const bad = validateConfig(
    testConfig({
      antispam: { rspamd: { url: 'http://127.0.0.1:11333' } },
      policies: { incoming: [{ name: 'default', antispam: { mode: 'custom', spam: { action: 'quarantine' } } }] },
    }),
  );
  assert.equal(bad.config, null);
  const paths = bad.errors.map((e) => JSON.stringify(e));
  assert.ok(
    paths.some((p) => p.includes('antispam') && p.includes('no quarantine spam')),
    paths.join('\n'),
  );
  const badUrl = validateConfig(testConfig({ antispam: { rspamd: { url: 'ftp://x' } } }));
  assert.equal(badUrl.config, null);
});
