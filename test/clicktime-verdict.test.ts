// Click-time verdicts that use what was known at rewrite time (issue 10): the threat fields of link
// tokens (version 2), old tokens without them, and the combined verdict over real HTTP.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import {
  createClickKey,
  signClickToken,
  verifyClickToken,
  MAX_TOKEN_LENGTH,
  TAG_BYTES,
  type ClickTokenPayload,
} from '../src/clicktime/token.ts';
import { ClickTimeService, type ClickRecord, type ClickTimeOptions, type UrlVerdict } from '../src/clicktime/server.ts';
import { combineVerdict } from '../src/clicktime/verdict.ts';
import { Store } from '../src/store/db.ts';

const now = () => Math.floor(Date.now() / 1000);
const LEVELS = { warnLevel: 1, blockLevel: 4 };

function payload(over: Partial<ClickTokenPayload> = {}): ClickTokenPayload {
  return {
    url: 'https://www.example.com/account/login?next=%2Fhome',
    mid: 4242,
    recipient: 'bob@example.net',
    reason: 'outbreak',
    expires: now() + 3600,
    ...over,
  };
}

/** A version 1 token built by hand, as gateways wrote them before the threat fields existed. */
function legacyToken(key: Buffer, p: ClickTokenPayload): string {
  const varint = (n: number) => {
    const out: number[] = [];
    while (n >= 0x80) {
      out.push((n % 0x80) | 0x80);
      n = Math.floor(n / 0x80);
    }
    out.push(n);
    return out;
  };
  const str = (s: string) => {
    const b = Buffer.from(s, 'utf8');
    return [...varint(b.length), ...b];
  };
  const body = Buffer.from([
    0x01,
    ...varint(p.expires),
    ...varint(p.mid),
    ...str(p.reason),
    ...str(p.recipient),
    ...str(p.url),
  ]);
  const tag = createHmac('sha256', key)
    .update(Buffer.from('breakwater-click-v1\0', 'latin1'))
    .update(body)
    .digest()
    .subarray(0, TAG_BYTES);
  return Buffer.concat([body, tag]).toString('base64url');
}

// ---- tokens ----

test('a token without threat fields is written exactly as before (version 1) and decodes without them', () => {
  const key = createClickKey();
  const p = payload();
  const token = signClickToken(key, p);
  assert.equal(token, legacyToken(key, p), 'byte for byte the old format');
  const r = verifyClickToken(key, token);
  assert.deepEqual(r, { ok: true, payload: p });
  assert.ok(r.ok && r.payload.messageThreat === undefined && r.payload.urlThreat === undefined);
});

test('an old token (hand-built version 1) still verifies and carries no threat (level 0)', () => {
  const key = createClickKey();
  const p = payload({ url: 'https://paypa1-login.com/help', mid: 7 });
  const r = verifyClickToken([createClickKey(), key], legacyToken(key, p));
  assert.deepEqual(r, { ok: true, payload: p });
  assert.equal(
    combineVerdict({ verdict: 'clean', ruleIds: [], reason: 'no rule matched' }, r.ok ? r.payload : {}, LEVELS)
      ?.verdict,
    'clean',
  );
});

test('threat fields round-trip: message only, URL only, both, level 0 with ids, prefixes left out', () => {
  const key = createClickKey();
  const cases: Array<Partial<ClickTokenPayload>> = [
    { messageThreat: { level: 4, ruleIds: ['OUTBREAK_0000010'] } },
    { urlThreat: { level: 3, ruleIds: ['ADAPTIVE_IP_HOST'] } },
    {
      messageThreat: { level: 5, ruleIds: ['OUTBREAK_0000001', 'ADAPTIVE_BRAND_LURE', 'CUSTOM-7', 'OUTBREAK_'] },
      urlThreat: { level: 2, ruleIds: [] },
    },
    { messageThreat: { level: 0, ruleIds: ['X'] } },
    { urlThreat: { level: 1, ruleIds: ['a.b:c-d_e', 'Z'.repeat(64), 'OUTBREAK_' + '9'.repeat(55)] } },
  ];
  for (const c of cases) {
    const p = payload(c);
    const token = signClickToken(key, p);
    assert.equal(Buffer.from(token, 'base64url')[0], 0x02, 'version 2');
    assert.deepEqual(verifyClickToken(key, token), { ok: true, payload: p }, JSON.stringify(c));
  }
});

test('tokens stay compact: the threat fields of a typical link cost about 30 characters', () => {
  const key = createClickKey();
  const plain = signClickToken(key, payload());
  const typical = signClickToken(
    key,
    payload({
      messageThreat: { level: 4, ruleIds: ['OUTBREAK_0000010'] },
      urlThreat: { level: 3, ruleIds: ['OUTBREAK_0000011'] },
    }),
  );
  const adaptive = signClickToken(
    key,
    payload({
      messageThreat: { level: 4, ruleIds: ['OUTBREAK_0000010'] },
      urlThreat: { level: 3, ruleIds: ['ADAPTIVE_CREDENTIAL_LURE_LINK'] },
    }),
  );
  assert.ok(plain.length < 150, `plain token of ${plain.length} chars`);
  assert.ok(typical.length - plain.length <= 30, `threat fields cost ${typical.length - plain.length} chars`);
  assert.ok(adaptive.length - plain.length <= 48, `threat fields cost ${adaptive.length - plain.length} chars`);
  assert.ok(adaptive.length < 200, `token of ${adaptive.length} chars`);
  // the most a token can carry: 2 × 4 ids of 64 characters
  const ids = (c: string) => Array.from({ length: 4 }, (_, i) => c.repeat(63) + i);
  const max = signClickToken(
    key,
    payload({ messageThreat: { level: 5, ruleIds: ids('M') }, urlThreat: { level: 5, ruleIds: ids('U') } }),
  );
  assert.ok(max.length - plain.length < 720, `at most ${max.length - plain.length} chars more`);
});

test('tampering with a level (or dropping the threat fields) invalidates the signature', () => {
  const key = createClickKey();
  const p = payload({
    messageThreat: { level: 4, ruleIds: ['OUTBREAK_0000010'] },
    urlThreat: { level: 3, ruleIds: [] },
  });
  const raw = Buffer.from(signClickToken(key, p), 'base64url');
  const body = raw.subarray(0, raw.length - TAG_BYTES);
  // the threat section is at the end of the body: flags, message level, count, one id (head + 7 bytes
  // "0000010" without its prefix), URL level, count
  const section = body.length - 1 - (2 + 1 + 7) - 2;
  assert.equal(body[section], 0x03, 'flags');
  assert.equal(body[section + 1], 4, 'message level');
  assert.equal(body[body.length - 2], 3, 'URL level');
  for (const [at, value] of [
    [section + 1, 0],
    [section + 1, 1],
    [body.length - 2, 0],
    [section, 0x02],
  ]) {
    const altered = Buffer.from(raw);
    altered[at] = value;
    assert.deepEqual(verifyClickToken(key, altered.toString('base64url')), { ok: false, reason: 'bad_signature' });
  }
  // cutting the threat section off and claiming version 1 keeps the tag, which no longer fits
  const v1 = Buffer.concat([body.subarray(0, section), raw.subarray(raw.length - TAG_BYTES)]);
  v1[0] = 0x01;
  assert.deepEqual(verifyClickToken(key, v1.toString('base64url')), { ok: false, reason: 'bad_signature' });
});

test('signing refuses invalid threat fields; a signed but non-canonical threat section is malformed', () => {
  const key = createClickKey();
  const bad: Array<Partial<ClickTokenPayload>> = [
    { messageThreat: { level: 6, ruleIds: [] } },
    { messageThreat: { level: -1, ruleIds: [] } },
    { messageThreat: { level: 2.5, ruleIds: [] } },
    { urlThreat: { level: 3, ruleIds: ['A', 'B', 'C', 'D', 'E'] } },
    { urlThreat: { level: 3, ruleIds: [''] } },
    { urlThreat: { level: 3, ruleIds: ['has space'] } },
    { urlThreat: { level: 3, ruleIds: ['X'.repeat(65)] } },
    { urlThreat: { level: 3, ruleIds: ['ünï'] } },
  ];
  for (const b of bad) assert.throws(() => signClickToken(key, payload(b)), TypeError, JSON.stringify(b));

  // Bodies a correct signer never writes, signed with the right key: refused as malformed all the same.
  const sign = (body: Buffer) => {
    const tag = createHmac('sha256', key)
      .update(Buffer.from('breakwater-click-v1\0', 'latin1'))
      .update(body)
      .digest()
      .subarray(0, TAG_BYTES);
    return Buffer.concat([body, tag]).toString('base64url');
  };
  const v1 = Buffer.from(legacyToken(key, payload()), 'base64url');
  const head = Buffer.from(v1.subarray(0, v1.length - TAG_BYTES));
  head[0] = 0x02;
  const id = (s: string, prefix = 0) => [s.length * 3 + prefix, ...Buffer.from(s, 'latin1')];
  for (const [name, section] of [
    ['no threat section', []],
    ['flags 0', [0]],
    ['flags 4', [4, 1, 0]],
    ['level 6', [1, 6, 0]],
    ['5 ids', [1, 3, 5, ...id('A'), ...id('B'), ...id('C'), ...id('D'), ...id('E')]],
    ['prefix not left out', [1, 3, 1, ...id('OUTBREAK_1')]],
    ['empty id', [1, 3, 1, ...id('')]],
    ['bad character', [1, 3, 1, ...id('A B')]],
    ['truncated', [3, 3, 1, ...id('A')]],
    ['trailing byte', [1, 3, 0, 0]],
  ] as Array<[string, number[]]>) {
    const r = verifyClickToken(key, sign(Buffer.concat([head, Buffer.from(section)])));
    assert.deepEqual(r, { ok: false, reason: 'malformed' }, name);
  }
  // and the same section written correctly verifies
  const good = verifyClickToken(key, sign(Buffer.concat([head, Buffer.from([1, 3, 1, ...id('1', 1)])])));
  assert.ok(good.ok);
  assert.deepEqual(good.payload.messageThreat, { level: 3, ruleIds: ['OUTBREAK_1'] });
});

test('random threat fields round-trip exactly (property test)', () => {
  const key = createClickKey();
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.:';
  const prefixes = ['', 'OUTBREAK_', 'ADAPTIVE_'];
  const randomId = () => {
    const prefix = prefixes[Math.floor(Math.random() * 3)];
    const n = 1 + Math.floor(Math.random() * (64 - prefix.length));
    return prefix + Array.from({ length: n }, () => alphabet[Math.floor(Math.random() * alphabet.length)]).join('');
  };
  const threat = () => ({
    level: Math.floor(Math.random() * 6),
    ruleIds: Array.from({ length: Math.floor(Math.random() * 5) }, randomId),
  });
  for (let i = 0; i < 500; i++) {
    const p = payload({ mid: Math.floor(Math.random() * 2 ** 40) });
    if (Math.random() < 0.7) p.messageThreat = threat();
    if (Math.random() < 0.7) p.urlThreat = threat();
    assert.deepEqual(verifyClickToken(key, signClickToken(key, p)), { ok: true, payload: p });
  }
});

// ---- the combined verdict ----

test('combineVerdict: the strongest signal wins, the allow list overrides, the message level only warns', () => {
  const clean: UrlVerdict = { verdict: 'clean', ruleIds: [], reason: 'no rule matched', source: 'url_rules' };
  const msg = (level: number) => ({ messageThreat: { level, ruleIds: ['OUTBREAK_0000010'] } });
  const url = (level: number) => ({ urlThreat: { level, ruleIds: ['OUTBREAK_0000011'] } });
  const pick = (v: ReturnType<typeof combineVerdict>) => (v ? `${v.verdict} ${v.source}` : 'unknown');
  // nothing known → clean; a clean verdict is named "none"
  assert.equal(pick(combineVerdict(clean, {}, LEVELS)), 'clean none');
  // (a) the message: any level warns, even 5 never blocks by itself
  for (const level of [1, 3, 4, 5]) assert.equal(pick(combineVerdict(clean, msg(level), LEVELS)), 'suspicious message');
  assert.equal(pick(combineVerdict(clean, msg(0), LEVELS)), 'clean none');
  // what matched the URL at rewrite time: by warnLevel and blockLevel
  assert.equal(pick(combineVerdict(clean, url(3), LEVELS)), 'suspicious url_at_rewrite');
  assert.equal(pick(combineVerdict(clean, { ...msg(4), ...url(4) }, LEVELS)), 'malicious url_at_rewrite');
  assert.equal(pick(combineVerdict(clean, url(2), { warnLevel: 3, blockLevel: 4 })), 'clean none');
  // (b) the URL rules now: they win a tie, and a stronger verdict wins whatever its source
  const nowSuspicious: UrlVerdict = { verdict: 'suspicious', ruleIds: ['ADAPTIVE_IP_HOST'], reason: 'level 2' };
  const nowMalicious: UrlVerdict = { verdict: 'malicious', ruleIds: ['OUTBREAK_9'], reason: 'level 5' };
  assert.equal(pick(combineVerdict(nowSuspicious, { ...msg(4), ...url(3) }, LEVELS)), 'suspicious url_rules');
  assert.equal(pick(combineVerdict(nowMalicious, msg(4), LEVELS)), 'malicious url_rules');
  assert.equal(pick(combineVerdict(nowSuspicious, url(5), LEVELS)), 'malicious url_at_rewrite');
  // (c) the lists: block list blocks; the allow list wins over everything the token says
  const blocked: UrlVerdict = { verdict: 'malicious', ruleIds: [], reason: 'block list', source: 'block_list' };
  const allowed: UrlVerdict = { verdict: 'clean', ruleIds: [], reason: 'allow list', source: 'allow_list' };
  assert.equal(pick(combineVerdict(blocked, msg(1), LEVELS)), 'malicious block_list');
  assert.equal(pick(combineVerdict(allowed, { ...msg(5), ...url(5) }, LEVELS)), 'clean allow_list');
  // no fresh verdict (timeout, error): the token decides, or nothing is known
  assert.equal(pick(combineVerdict(null, {}, LEVELS)), 'unknown');
  const late = combineVerdict(null, msg(4), LEVELS, 'verdict timeout (2000 ms)');
  assert.equal(pick(late), 'suspicious message');
  assert.match(late!.reason, /level 4 of 5.*not available: verdict timeout/);
  assert.deepEqual(late!.ruleIds, ['OUTBREAK_0000010']);
});

// ---- over HTTP ----

async function start(
  verdict: ClickTimeOptions['verdict'],
  over: Partial<ClickTimeOptions> = {},
): Promise<{ service: ClickTimeService; clicks: ClickRecord[]; key: Buffer; close(): Promise<void> }> {
  const clicks: ClickRecord[] = [];
  const key = createClickKey();
  const service = new ClickTimeService({
    host: '127.0.0.1',
    port: 0,
    baseUrl: 'http://127.0.0.1:0',
    keys: [key],
    branding: { productName: 'Breakwater' },
    verdict,
    onClick: (c) => clicks.push(c),
    onError: () => {},
    ...over,
  });
  await service.listen();
  return { service, clicks, key, close: () => service.close() };
}

const get = (url: string, init: RequestInit = {}) => fetch(url, { redirect: 'manual', ...init });
const cleanNow = (): UrlVerdict => ({ verdict: 'clean', ruleIds: [], reason: 'no rule matched', source: 'url_rules' });
const threat = { mid: 9, recipient: 'bob@example.net', reason: 'outbreak' };

test('a link from a threat message warns although its URL is clean now; continue still works', async (t) => {
  const h = await start(cleanNow);
  t.after(() => h.close());
  const link = h.service.wrap('https://paypa1-login.com/help', {
    ...threat,
    messageThreat: { level: 4, ruleIds: ['OUTBREAK_0000010'] },
  });
  const res = await get(link);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('location'), null);
  const html = await res.text();
  assert.match(html, /rated as a likely threat/);
  assert.match(html, /<dt>Based on<\/dt><dd>Threat level of the email<\/dd>/);
  const cont = await get(`${link}/continue`, { method: 'POST', body: '' });
  assert.equal(cont.status, 303);
  assert.equal(cont.headers.get('location'), 'https://paypa1-login.com/help');
  assert.deepEqual(
    h.clicks.map((c) => `${c.verdict}/${c.action} ${c.source} ${c.ruleIds.join(',')}`),
    ['suspicious/warned message OUTBREAK_0000010', 'suspicious/continued message OUTBREAK_0000010'],
  );
  // a link without threat fields behaves as before
  const plain = await get(h.service.wrap('https://paypa1-login.com/help', threat));
  assert.equal(plain.status, 302);
  assert.equal(h.clicks.at(-1)?.source, 'none');
});

test('a URL that matched level-4 rules at rewrite time stays blocked, and continue cannot pass it', async (t) => {
  const h = await start(cleanNow);
  t.after(() => h.close());
  const link = h.service.wrap('https://get.malware.test/x.exe', {
    ...threat,
    messageThreat: { level: 4, ruleIds: ['OUTBREAK_0000010'] },
    urlThreat: { level: 4, ruleIds: ['OUTBREAK_0000003'] },
  });
  const res = await get(link);
  assert.equal(res.status, 403);
  assert.ok((await res.text()).includes('OUTBREAK_0000003'));
  const cont = await get(`${link}/continue`, { method: 'POST', body: '' });
  assert.equal(cont.status, 403);
  assert.equal(cont.headers.get('location'), null);
  assert.deepEqual(
    h.clicks.map((c) => `${c.verdict}/${c.action} ${c.source}`),
    ['malicious/blocked url_at_rewrite', 'malicious/blocked url_at_rewrite'],
  );
});

test('the levels the service applies to token URL levels come from its options (clickTime.warn/blockLevel)', async (t) => {
  const h = await start(cleanNow, { warnLevel: 3, blockLevel: 5 });
  t.after(() => h.close());
  const wrap = (level: number) =>
    h.service.wrap('https://a.example/', { ...threat, urlThreat: { level, ruleIds: ['OUTBREAK_1'] } });
  assert.equal((await get(wrap(2))).status, 302);
  assert.equal((await get(wrap(3))).status, 200);
  assert.equal((await get(wrap(4))).status, 200);
  assert.equal((await get(wrap(5))).status, 403);
});

test('an allow-list verdict wins over the message level and the URL level at rewrite time', async (t) => {
  const h = await start(() => ({ verdict: 'clean', ruleIds: [], reason: 'allow list', source: 'allow_list' }));
  t.after(() => h.close());
  const res = await get(
    h.service.wrap('https://intranet.example/policy', {
      ...threat,
      messageThreat: { level: 5, ruleIds: ['OUTBREAK_0000010'] },
      urlThreat: { level: 5, ruleIds: ['OUTBREAK_0000011'] },
    }),
  );
  assert.equal(res.status, 302);
  assert.equal(res.headers.get('location'), 'https://intranet.example/policy');
  assert.equal(h.clicks[0].verdict, 'clean');
  assert.equal(h.clicks[0].source, 'allow_list');
});

test('a block-list verdict blocks, recorded as such', async (t) => {
  const h = await start(() => ({ verdict: 'malicious', ruleIds: [], reason: 'block list', source: 'block_list' }));
  t.after(() => h.close());
  const res = await get(h.service.wrap('https://blocked.example/', threat));
  assert.equal(res.status, 403);
  assert.equal(h.clicks[0].source, 'block_list');
});

test('no fresh verdict (timeout, error) no longer lets a link of a threat message through', async (t) => {
  let mode = 'slow';
  const h = await start(
    (): UrlVerdict | Promise<UrlVerdict> => {
      if (mode === 'throw') throw new Error('rules not loaded');
      return new Promise((resolve) => setTimeout(() => resolve(cleanNow()), 500));
    },
    { verdictTimeoutMs: 30 },
  );
  t.after(() => h.close());
  const link = h.service.wrap('https://paypa1-login.com/account/update', {
    ...threat,
    messageThreat: { level: 4, ruleIds: ['OUTBREAK_0000010'] },
  });
  for (const m of ['slow', 'throw']) {
    mode = m;
    const res = await get(link);
    assert.equal(res.status, 200, m);
    assert.match(await res.text(), /not available: verdict (timeout|error)/);
  }
  assert.deepEqual(
    h.clicks.map((c) => `${c.verdict}/${c.action} ${c.source}`),
    ['suspicious/warned message', 'suspicious/warned message'],
  );
  // without threat fields the click still fails open, as before
  mode = 'throw';
  const plain = await get(h.service.wrap('https://paypa1-login.com/account/update', threat));
  assert.equal(plain.status, 302);
  assert.equal(h.clicks.at(-1)?.verdict, 'unknown');
});

test('wrap keeps the levels but leaves out rule ids when the URL is too long for both', async (t) => {
  const h = await start(cleanNow);
  t.after(() => h.close());
  const ids = Array.from({ length: 4 }, (_, i) => 'R'.repeat(63) + i);
  const messageThreat = { level: 4, ruleIds: ids };
  const urlThreat = { level: 2, ruleIds: ids };
  // a URL that fits alone, but not with 8 ids of 64 characters
  let n = 4000;
  const fits = (len: number) => {
    try {
      signClickToken(createClickKey(), payload({ url: 'https://e.test/' + 'a'.repeat(len), messageThreat, urlThreat }));
      return true;
    } catch {
      return false;
    }
  };
  while (fits(n)) n += 100;
  const url = 'https://e.test/' + 'a'.repeat(n);
  const link = h.service.wrap(url, { ...threat, messageThreat, urlThreat });
  const token = link.slice(link.lastIndexOf('/') + 1);
  assert.ok(token.length <= MAX_TOKEN_LENGTH);
  const r = verifyClickToken(h.key, token);
  assert.ok(r.ok);
  assert.deepEqual(r.payload.messageThreat, { level: 4, ruleIds: [] });
  assert.deepEqual(r.payload.urlThreat, { level: 2, ruleIds: [] });
  assert.equal((await get(link)).status, 200);
  // ids are cleaned up (invalid ones dropped, duplicates merged, at most 4) rather than refused
  const tidy = h.service.wrap('https://e.test/', {
    ...threat,
    messageThreat: { level: 3, ruleIds: ['A', 'A', 'bad id', 'B', 'C', 'D', 'E'] },
  });
  const t2 = verifyClickToken(h.key, tidy.slice(tidy.lastIndexOf('/') + 1));
  assert.ok(t2.ok);
  assert.deepEqual(t2.payload.messageThreat, { level: 3, ruleIds: ['A', 'B', 'C', 'D'] });
  // a URL too long even without ids still throws (the gateway points such links at "cannot be opened")
  assert.throws(() => h.service.wrap('https://e.test/' + 'a'.repeat(7000), { ...threat, messageThreat }), RangeError);
});

// ---- storage ----

test('a database made before clicks.source gains the column; old rows read as ""', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'bw-clicks-'));
  const file = path.join(dir, 'db.sqlite');
  const old = new DatabaseSync(file);
  old.exec(`create table clicks (id integer primary key, at integer not null, mid integer not null,
    recipient text not null, url text not null, domain text, verdict text not null, action text not null,
    reason text not null, rule_ids text not null)`);
  old.exec(`insert into clicks(at, mid, recipient, url, domain, verdict, action, reason, rule_ids)
    values (1, 5, 'bob@example.net', 'https://a.example/', 'a.example', 'clean', 'redirected', 'no rule matched', '')`);
  old.close();
  const store = new Store(file);
  try {
    store.run(
      'insert into clicks(at, mid, recipient, url, domain, verdict, action, reason, rule_ids, source) values (?,?,?,?,?,?,?,?,?,?)',
      2,
      5,
      'bob@example.net',
      'https://b.example/',
      'b.example',
      'suspicious',
      'warned',
      'level 4',
      'OUTBREAK_1',
      'message',
    );
    await store.committed();
    assert.deepEqual(
      store.db
        .prepare('select url, source from clicks order by id')
        .all()
        .map((r) => ({ ...r })),
      [
        { url: 'https://a.example/', source: '' },
        { url: 'https://b.example/', source: 'message' },
      ],
    );
  } finally {
    await store.close();
  }
});
