// Click-time protection (DESIGN §4.6, §8): signed link tokens, and the service over real HTTP.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  createClickKey,
  signClickToken,
  verifyClickToken,
  MAX_TOKEN_LENGTH,
  type ClickTokenPayload,
} from '../src/clicktime/token.ts';
import { ClickTimeService, type ClickRecord, type ClickTimeOptions, type UrlVerdict } from '../src/clicktime/server.ts';
import { escapeHtml, renderWarningPage } from '../src/clicktime/pages.ts';

const now = () => Math.floor(Date.now() / 1000);

function payload(over: Partial<ClickTokenPayload> = {}): ClickTokenPayload {
  return {
    url: 'https://example.com/path?q=1',
    mid: 42,
    recipient: 'bob@example.net',
    reason: 'outbreak',
    expires: now() + 3600,
    ...over,
  };
}

/** Changes one character of a token (to another base64url character). */
function tamper(token: string, index: number): string {
  const c = token[index];
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const repl = alphabet[(alphabet.indexOf(c) + 1) % alphabet.length];
  return token.slice(0, index) + repl + token.slice(index + 1);
}

// ---- tokens ----

test('a signed token verifies and carries URL, MID, recipient, reason and expiry', () => {
  const key = createClickKey();
  assert.equal(key.length, 32);
  const p = payload({ url: 'https://example.com/ünïcode?x=ä&y=<b>', recipient: 'ä@example.net' });
  const token = signClickToken(key, p);
  assert.match(token, /^[A-Za-z0-9_-]+$/);
  const r = verifyClickToken([key], token);
  assert.deepEqual(r, { ok: true, payload: p });
  // a single key is accepted too
  assert.equal(verifyClickToken(key, token).ok, true);
});

test('tokens are compact: a typical link costs well under 200 characters of token', () => {
  const token = signClickToken(
    createClickKey(),
    payload({ url: 'https://www.example.com/account/login?next=%2Fhome' }),
  );
  assert.ok(token.length < 150, `token of ${token.length} chars`);
});

test('changing any single character of a token makes it fail verification', () => {
  const key = createClickKey();
  const token = signClickToken(key, payload());
  for (let i = 0; i < token.length; i++) {
    const r = verifyClickToken([key], tamper(token, i));
    assert.equal(r.ok, false, `position ${i} accepted`);
    if (!r.ok) assert.ok(r.reason === 'bad_signature' || r.reason === 'malformed', r.reason);
  }
});

test('a token signed with an unknown key is a bad signature; garbage is malformed', () => {
  const token = signClickToken(createClickKey(), payload());
  assert.deepEqual(verifyClickToken([createClickKey()], token), { ok: false, reason: 'bad_signature' });
  for (const bad of ['', 'abc', 'not a token!', '====', token + '=', 'A'.repeat(MAX_TOKEN_LENGTH + 1)])
    assert.deepEqual(verifyClickToken([createClickKey()], bad), { ok: false, reason: 'malformed' }, bad.slice(0, 20));
  // One character shorter is either not canonical base64url (malformed) or a shorter token whose tag
  // does not match (bad signature), depending on the length: refused either way.
  const shorter = verifyClickToken([createClickKey()], token.slice(0, -1));
  assert.equal(shorter.ok, false);
  assert.ok(!shorter.ok && ['malformed', 'bad_signature'].includes(shorter.reason));
});

test('an expired token is refused as expired, and only after its signature checks out', () => {
  const key = createClickKey();
  const p = payload({ expires: now() - 1 });
  const token = signClickToken(key, p);
  const r = verifyClickToken([key], token);
  assert.equal(r.ok, false);
  assert.equal(!r.ok && r.reason, 'expired');
  assert.deepEqual(!r.ok && r.reason === 'expired' && r.payload, p);
  // the same token under another key: bad signature, not expired (nothing unauthenticated is read)
  assert.deepEqual(verifyClickToken([createClickKey()], token), { ok: false, reason: 'bad_signature' });
  // verification time can be given
  assert.equal(verifyClickToken([key], token, p.expires - 10).ok, true);
});

test('key rotation: links signed with an older key still verify while it is in the list', () => {
  const old = createClickKey();
  const current = createClickKey();
  const oldToken = signClickToken(old, payload({ mid: 1 }));
  const newToken = signClickToken(current, payload({ mid: 2 }));
  const r1 = verifyClickToken([current, old], oldToken);
  const r2 = verifyClickToken([current, old], newToken);
  assert.equal(r1.ok && r1.payload.mid, 1);
  assert.equal(r2.ok && r2.payload.mid, 2);
  // once the old key is retired its links stop working
  assert.deepEqual(verifyClickToken([current], oldToken), { ok: false, reason: 'bad_signature' });
});

test('signing refuses bad keys, bad payloads and URLs too long for an 8 KiB token', () => {
  const key = createClickKey();
  assert.throws(() => signClickToken(Buffer.alloc(16), payload()), TypeError);
  assert.throws(() => signClickToken(key, payload({ mid: -1 })), TypeError);
  assert.throws(() => signClickToken(key, payload({ mid: 1.5 })), TypeError);
  assert.throws(() => signClickToken(key, payload({ expires: Number.NaN })), TypeError);
  assert.throws(() => signClickToken(key, payload({ url: '' })), TypeError);
  assert.throws(() => signClickToken(key, payload({ url: 'https://e.com/' + 'a'.repeat(7000) })), RangeError);
  const long = signClickToken(key, payload({ url: 'https://e.com/' + 'a'.repeat(5000) }));
  assert.ok(long.length <= MAX_TOKEN_LENGTH);
  assert.equal(verifyClickToken([key], long).ok, true);
  // MIDs up to 2^53 - 1 round-trip
  const big = signClickToken(key, payload({ mid: Number.MAX_SAFE_INTEGER }));
  const r = verifyClickToken([key], big);
  assert.equal(r.ok && r.payload.mid, Number.MAX_SAFE_INTEGER);
});

test('random payloads round-trip exactly (property test)', () => {
  const key = createClickKey();
  // code points, not UTF-16 units (a lone surrogate is not valid UTF-8)
  const chars = Array.from('aZ09-._~:/?#[]@!$&\'()*+,;=% <>"\\éü中😀\u0000');
  const str = (n: number) => Array.from({ length: n }, () => chars[Math.floor(Math.random() * chars.length)]).join('');
  for (let i = 0; i < 500; i++) {
    const p: ClickTokenPayload = {
      url: 'https://e.test/' + str(Math.floor(Math.random() * 300)),
      mid: Math.floor(Math.random() * 2 ** (Math.random() * 53)),
      recipient: str(Math.floor(Math.random() * 40)),
      reason: str(Math.floor(Math.random() * 12)),
      expires: now() + 1 + Math.floor(Math.random() * 10 ** 8),
    };
    const r = verifyClickToken([key], signClickToken(key, p));
    assert.deepEqual(r, { ok: true, payload: p });
  }
});

test('random bytes never crash the verifier', () => {
  const key = createClickKey();
  for (let i = 0; i < 2000; i++) {
    const raw = Buffer.from(Array.from({ length: 1 + (i % 120) }, () => Math.floor(Math.random() * 256)));
    const r = verifyClickToken([key], raw.toString('base64url'));
    assert.equal(r.ok, false);
  }
});

// ---- the service over HTTP ----

interface Harness {
  service: ClickTimeService;
  base: string;
  clicks: ClickRecord[];
  errors: string[];
  key: Buffer;
  close(): Promise<void>;
}

async function start(verdict: ClickTimeOptions['verdict'], over: Partial<ClickTimeOptions> = {}): Promise<Harness> {
  const clicks: ClickRecord[] = [];
  const errors: string[] = [];
  const key = over.keys?.[0] ?? createClickKey();
  const service = new ClickTimeService({
    host: '127.0.0.1',
    port: 0,
    baseUrl: 'http://127.0.0.1:0',
    keys: [key],
    branding: { productName: 'Breakwater', contactText: 'IT Service Desk', contactUrl: 'mailto:it@example.com' },
    verdictTimeoutMs: 2000,
    verdict,
    onClick: (c) => clicks.push(c),
    onError: (err, context) => errors.push(`${context}: ${err instanceof Error ? err.message : String(err)}`),
    ...over,
  });
  await service.listen();
  return { service, base: service.baseUrl, clicks, errors, key, close: () => service.close() };
}

const clean = (): UrlVerdict => ({ verdict: 'clean', ruleIds: [], reason: 'no rule matched' });
const suspicious = (): UrlVerdict => ({
  verdict: 'suspicious',
  ruleIds: ['ADAPTIVE_IP_HOST'],
  reason: 'The link points to a bare IP address',
});
const malicious = (): UrlVerdict => ({
  verdict: 'malicious',
  ruleIds: ['OUTBREAK_0001234'],
  reason: 'Known phishing site',
});

const get = (url: string, init: RequestInit = {}) => fetch(url, { redirect: 'manual', ...init });

test('a clean link redirects with 302 to the original URL and the click is recorded', async (t) => {
  const h = await start(clean);
  t.after(() => h.close());
  const link = h.service.wrap('https://example.com/a?b=1#frag', {
    mid: 7,
    recipient: 'bob@example.net',
    reason: 'outbreak',
  });
  assert.ok(link.startsWith(`${h.base}/c/`));
  const res = await get(link, { headers: { 'user-agent': 'TestAgent/1.0' } });
  assert.equal(res.status, 302);
  assert.equal(res.headers.get('location'), 'https://example.com/a?b=1#frag');
  assert.equal(res.headers.get('cache-control'), 'no-store');
  assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
  assert.equal(h.clicks.length, 1);
  const c = h.clicks[0];
  assert.equal(c.mid, 7);
  assert.equal(c.recipient, 'bob@example.net');
  assert.equal(c.url, 'https://example.com/a?b=1#frag');
  assert.equal(c.verdict, 'clean');
  assert.equal(c.action, 'redirected');
  assert.equal(c.clientIp, '127.0.0.1');
  assert.equal(c.userAgent, 'TestAgent/1.0');
  assert.ok(Math.abs(c.at - Date.now()) < 5000);
});

test('the verdict function gets the destination URL, normalised as a browser would resolve it', async (t) => {
  const seen: string[] = [];
  const h = await start((url) => {
    seen.push(url);
    return clean();
  });
  t.after(() => h.close());
  const res = await get(h.service.wrap('HTTPS://Example.COM:443/x y', { mid: 1, recipient: '', reason: 'outbreak' }));
  assert.equal(res.status, 302);
  assert.deepEqual(seen, ['https://example.com/x%20y']);
  assert.equal(res.headers.get('location'), 'https://example.com/x%20y');
});

test('a token with one character changed gets the 400 invalid-link page and no Location', async (t) => {
  const h = await start(clean);
  t.after(() => h.close());
  const link = h.service.wrap('https://target.example/', { mid: 9, recipient: 'bob@example.net', reason: 'outbreak' });
  const token = link.slice(link.lastIndexOf('/') + 1);
  for (const i of [0, Math.floor(token.length / 2), token.length - 1]) {
    const res = await get(`${h.base}/c/${tamper(token, i)}`);
    assert.equal(res.status, 400);
    assert.equal(res.headers.get('location'), null);
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
    const html = await res.text();
    assert.match(html, /<h1>This link is not valid<\/h1>/);
    assert.doesNotMatch(html, /target\.example/);
  }
  assert.equal(h.clicks.length, 3);
  for (const c of h.clicks) {
    assert.equal(c.action, 'invalid');
    assert.equal(c.verdict, 'unknown');
    // nothing from an unauthenticated token is recorded
    assert.equal(c.mid, 0);
    assert.equal(c.url, '');
    assert.equal(c.recipient, '');
  }
});

test('an expired link gets the 400 page with its own wording, never a redirect', async (t) => {
  const h = await start(clean);
  t.after(() => h.close());
  const token = signClickToken(h.key, payload({ expires: now() - 60, mid: 11 }));
  const res = await get(`${h.base}/c/${token}`);
  assert.equal(res.status, 400);
  assert.equal(res.headers.get('location'), null);
  const html = await res.text();
  assert.match(html, /<h1>This link has expired<\/h1>/);
  assert.equal(h.clicks.length, 1);
  assert.equal(h.clicks[0].action, 'invalid');
  assert.equal(h.clicks[0].reason, 'expired');
  // the token is authentic, so the click can be tied to its message
  assert.equal(h.clicks[0].mid, 11);
});

test('links signed with a rotated-out key still work while the key is listed', async (t) => {
  const old = createClickKey();
  const current = createClickKey();
  const h = await start(clean, { keys: [current, old] });
  t.after(() => h.close());
  const oldToken = signClickToken(old, payload({ url: 'https://old.example/' }));
  const res = await get(`${h.base}/c/${oldToken}`);
  assert.equal(res.status, 302);
  assert.equal(res.headers.get('location'), 'https://old.example/');
  // new links are signed with the current key
  const link = h.service.wrap('https://new.example/', { mid: 1, recipient: '', reason: 'outbreak' });
  const r = verifyClickToken([current], link.slice(link.lastIndexOf('/') + 1));
  assert.equal(r.ok, true);
});

test('a suspicious link shows a warning page naming the real destination, with a POST continue form', async (t) => {
  const h = await start(suspicious);
  t.after(() => h.close());
  const link = h.service.wrap('http://203.0.113.9/login?session=1', {
    mid: 5,
    recipient: 'bob@example.net',
    reason: 'outbreak',
  });
  const res = await get(link);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('location'), null);
  assert.equal(res.headers.get('x-frame-options'), 'DENY');
  assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
  assert.equal(res.headers.get('cache-control'), 'no-store');
  const csp = res.headers.get('content-security-policy') ?? '';
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /style-src 'unsafe-inline'/);
  assert.match(csp, /form-action 'self' http:\/\/203\.0\.113\.9/);
  const html = await res.text();
  assert.match(html, /<html lang="en">/);
  assert.match(html, /<h1>This link may not be safe<\/h1>/);
  assert.ok(html.includes('203.0.113.9'));
  assert.ok(html.includes('http://203.0.113.9/login?session=1'));
  assert.ok(html.includes('The link points to a bare IP address'));
  assert.ok(html.includes('ADAPTIVE_IP_HOST'));
  const token = link.slice(link.lastIndexOf('/') + 1);
  assert.ok(html.includes(`<form method="post" action="/c/${token}/continue">`));
  assert.match(html, /<button type="submit"[^>]*>Continue to 203\.0\.113\.9<\/button>/);
  assert.ok(html.includes('href="/back"'));
  assert.ok(html.includes('href="mailto:it@example.com"'));
  // no script, no external resource
  assert.doesNotMatch(html, /<script|<link |src="http/i);
  assert.equal(h.clicks.length, 1);
  assert.equal(h.clicks[0].action, 'warned');
  assert.equal(h.clicks[0].verdict, 'suspicious');
  assert.deepEqual(h.clicks[0].ruleIds, ['ADAPTIVE_IP_HOST']);
});

test('continue on the warning page re-checks the link and answers 303 to the destination', async (t) => {
  const h = await start(suspicious);
  t.after(() => h.close());
  const link = h.service.wrap('https://suspect.example/x', {
    mid: 5,
    recipient: 'bob@example.net',
    reason: 'outbreak',
  });
  const res = await get(`${link}/continue`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'same-origin' },
    body: '',
  });
  assert.equal(res.status, 303);
  assert.equal(res.headers.get('location'), 'https://suspect.example/x');
  assert.equal(h.clicks.length, 1);
  assert.equal(h.clicks[0].action, 'continued');
  assert.equal(h.clicks[0].verdict, 'suspicious');
  assert.equal(h.clicks[0].mid, 5);
});

test('continue is refused for an altered token, a cross-site form, a GET and a large body', async (t) => {
  const h = await start(suspicious);
  t.after(() => h.close());
  const link = h.service.wrap('https://suspect.example/x', { mid: 5, recipient: '', reason: 'outbreak' });
  const token = link.slice(link.lastIndexOf('/') + 1);
  const altered = await get(`${h.base}/c/${tamper(token, 3)}/continue`, { method: 'POST', body: '' });
  assert.equal(altered.status, 400);
  assert.equal(altered.headers.get('location'), null);
  const crossSite = await get(`${link}/continue`, {
    method: 'POST',
    body: '',
    headers: { 'sec-fetch-site': 'cross-site' },
  });
  assert.equal(crossSite.status, 403);
  assert.equal(crossSite.headers.get('location'), null);
  const viaGet = await get(`${link}/continue`);
  assert.equal(viaGet.status, 405);
  assert.equal(viaGet.headers.get('allow'), 'POST');
  const big = await get(`${link}/continue`, { method: 'POST', body: 'x'.repeat(10_000) });
  assert.equal(big.status, 413);
  assert.equal(big.headers.get('location'), null);
  assert.deepEqual(
    h.clicks.map((c) => c.action),
    ['invalid'],
  );
});

test('continue on a link that has turned malicious gets the block page, not a redirect', async (t) => {
  let answer = suspicious;
  const h = await start(() => answer());
  t.after(() => h.close());
  const link = h.service.wrap('https://turned.example/', { mid: 3, recipient: '', reason: 'outbreak' });
  assert.equal((await get(link)).status, 200);
  answer = malicious;
  const res = await get(`${link}/continue`, { method: 'POST', body: '' });
  assert.equal(res.status, 403);
  assert.equal(res.headers.get('location'), null);
  assert.deepEqual(
    h.clicks.map((c) => `${c.verdict}/${c.action}`),
    ['suspicious/warned', 'malicious/blocked'],
  );
});

test('a malicious link gets the 403 block page with no way to the destination', async (t) => {
  const h = await start(malicious);
  t.after(() => h.close());
  const link = h.service.wrap('https://phish.example/login', {
    mid: 8,
    recipient: 'eve@example.net',
    reason: 'outbreak',
  });
  const res = await get(link);
  assert.equal(res.status, 403);
  assert.equal(res.headers.get('location'), null);
  const html = await res.text();
  assert.match(html, /<h1>This link has been blocked<\/h1>/);
  assert.ok(html.includes('phish.example'));
  assert.ok(html.includes('Known phishing site'));
  assert.doesNotMatch(html, /<form/);
  assert.doesNotMatch(html, /href="https?:\/\/phish/);
  assert.doesNotMatch(html, /continue/i);
  assert.equal(h.clicks.length, 1);
  assert.equal(h.clicks[0].action, 'blocked');
  assert.equal(h.clicks[0].verdict, 'malicious');
  assert.equal(h.clicks[0].recipient, 'eve@example.net');
  assert.deepEqual(h.clicks[0].ruleIds, ['OUTBREAK_0001234']);
});

test('a verdict slower than the timeout fails open: 302 and the click recorded as unknown', async (t) => {
  const h = await start(() => new Promise<UrlVerdict>((resolve) => setTimeout(() => resolve(malicious()), 1000)), {
    verdictTimeoutMs: 50,
  });
  t.after(() => h.close());
  const link = h.service.wrap('https://slow.example/', { mid: 4, recipient: '', reason: 'outbreak' });
  const t0 = performance.now();
  const res = await get(link);
  const ms = performance.now() - t0;
  assert.equal(res.status, 302);
  assert.equal(res.headers.get('location'), 'https://slow.example/');
  assert.ok(ms < 900, `answered after ${ms.toFixed(0)} ms`);
  assert.equal(h.clicks.length, 1);
  assert.equal(h.clicks[0].verdict, 'unknown');
  assert.equal(h.clicks[0].action, 'redirected');
  assert.match(h.clicks[0].reason, /timeout/);
});

test('an async verdict within the timeout is used', async (t) => {
  const h = await start(async () => {
    await new Promise((r) => setTimeout(r, 10));
    return malicious();
  });
  t.after(() => h.close());
  const res = await get(h.service.wrap('https://phish.example/', { mid: 1, recipient: '', reason: 'outbreak' }));
  assert.equal(res.status, 403);
  assert.equal(h.clicks[0].verdict, 'malicious');
});

test('a verdict that throws or rejects fails open like a timeout and is reported', async (t) => {
  let mode = 'throw';
  const h = await start((): UrlVerdict | Promise<UrlVerdict> => {
    if (mode === 'throw') throw new Error('rules not loaded');
    if (mode === 'reject') return Promise.reject(new Error('hub unreachable'));
    return { verdict: 'dangerous' } as unknown as UrlVerdict;
  });
  t.after(() => h.close());
  const link = h.service.wrap('https://x.example/', { mid: 2, recipient: '', reason: 'outbreak' });
  for (const m of ['throw', 'reject', 'garbage']) {
    mode = m;
    const res = await get(link);
    assert.equal(res.status, 302, m);
    assert.equal(res.headers.get('location'), 'https://x.example/');
  }
  assert.deepEqual(
    h.clicks.map((c) => `${c.verdict}/${c.action}`),
    ['unknown/redirected', 'unknown/redirected', 'unknown/redirected'],
  );
  assert.match(h.clicks[0].reason, /rules not loaded/);
  assert.match(h.clicks[1].reason, /hub unreachable/);
  assert.equal(h.errors.length, 3);
});

test('HEAD answers with the same status but records no click', async (t) => {
  let answer = clean;
  const h = await start(() => answer());
  t.after(() => h.close());
  const link = h.service.wrap('https://example.com/', { mid: 1, recipient: '', reason: 'outbreak' });
  const token = link.slice(link.lastIndexOf('/') + 1);
  const r1 = await get(link, { method: 'HEAD' });
  assert.equal(r1.status, 302);
  assert.equal(r1.headers.get('location'), 'https://example.com/');
  answer = suspicious;
  assert.equal((await get(link, { method: 'HEAD' })).status, 200);
  answer = malicious;
  assert.equal((await get(link, { method: 'HEAD' })).status, 403);
  assert.equal((await get(`${h.base}/c/${tamper(token, 5)}`, { method: 'HEAD' })).status, 400);
  assert.equal(h.clicks.length, 0);
});

test('a signed token whose URL is not http(s) gets the invalid page, never a redirect', async (t) => {
  const h = await start(clean);
  t.after(() => h.close());
  assert.throws(() => h.service.wrap('javascript:alert(1)', { mid: 1, recipient: '', reason: 'outbreak' }), TypeError);
  for (const url of [
    'javascript:alert(document.cookie)',
    'data:text/html,<script>alert(1)</script>',
    'file:///etc/passwd',
    'mailto:a@b.c',
    'not a url',
  ]) {
    const token = signClickToken(h.key, payload({ url }));
    const res = await get(`${h.base}/c/${token}`);
    assert.equal(res.status, 400, url);
    assert.equal(res.headers.get('location'), null, url);
    const html = await res.text();
    assert.match(html, /<h1>This link cannot be opened<\/h1>/);
    assert.doesNotMatch(html, /<script>alert/);
  }
  assert.ok(h.clicks.every((c) => c.action === 'invalid' && c.reason === 'unsupported_scheme'));
});

test('hostile text in the URL and the verdict is escaped on the warning page', async (t) => {
  const h = await start(() => ({
    verdict: 'suspicious',
    ruleIds: ['R"><img src=x onerror=alert(1)>'],
    reason: '<script>alert("reason")</script> & more',
  }));
  t.after(() => h.close());
  // a signed URL the WHATWG parser keeps ' and & in, plus a userinfo trick and a punycode host
  const hostile = "https://paypal.com'\"<x>@xn--pypal-4ve.com/a'b&c=<d>?q=\"'><svg/onload=alert(1)>#'\"><b>";
  const token = signClickToken(h.key, payload({ url: hostile }));
  const res = await get(`${h.base}/c/${token}`);
  assert.equal(res.status, 200);
  const html = await res.text();
  assert.doesNotMatch(html, /<script>alert|<img src=x|<svg\/onload|<x>|<b>|<d>/);
  assert.ok(html.includes('&lt;script&gt;alert(&quot;reason&quot;)&lt;/script&gt; &amp; more'));
  assert.ok(html.includes('R&quot;&gt;&lt;img src=x onerror=alert(1)&gt;'));
  // the real host is named, and the tricks are pointed out
  assert.ok(html.includes('xn--pypal-4ve.com'));
  assert.match(html, /look like a different site/);
  assert.match(html, /international characters/);
  // every attribute value is quoted and free of raw quotes from the URL
  for (const m of html.matchAll(/<(?:form|a|button)\b[^>]*>/g)) assert.doesNotMatch(m[0], /onload|onerror|<svg/);
});

test('escapeHtml escapes the five HTML metacharacters', () => {
  assert.equal(
    escapeHtml(`<a href="x" title='y'>&</a>`),
    '&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;',
  );
});

test('branding: logo origin goes into img-src, unsafe contact and logo URLs are dropped', () => {
  const withLogo = renderWarningPage(
    {
      productName: 'Contoso <Mail> Security',
      logoUrl: 'https://cdn.contoso.example/logo.png',
      contactUrl: 'javascript:alert(1)',
      contactText: 'IT',
    },
    { url: 'https://a.example/', reason: 'r', ruleIds: [], mid: 1, continueAction: 't/continue', backHref: '../back' },
  );
  assert.match(withLogo.headers['Content-Security-Policy'], /img-src https:\/\/cdn\.contoso\.example;/);
  assert.ok(withLogo.body.includes('src="https://cdn.contoso.example/logo.png"'));
  assert.ok(withLogo.body.includes('Contoso &lt;Mail&gt; Security'));
  assert.doesNotMatch(withLogo.body, /javascript:/);
  const noLogo = renderWarningPage(
    { productName: 'X', logoUrl: 'javascript:alert(1)' },
    { url: 'https://a.example/', reason: 'r', ruleIds: [], mid: 1, continueAction: 't/continue', backHref: '../back' },
  );
  assert.match(noLogo.headers['Content-Security-Policy'], /img-src 'self' data:;/);
  assert.doesNotMatch(noLogo.body, /javascript:/);
});

test('wrap never wraps a Breakwater link twice and isOwnLink recognises only links under baseUrl/c/', async (t) => {
  const h = await start(clean);
  t.after(() => h.close());
  const link = h.service.wrap('https://example.com/', { mid: 1, recipient: '', reason: 'outbreak' });
  assert.equal(h.service.wrap(link, { mid: 2, recipient: '', reason: 'outbreak' }), link);
  assert.equal(h.service.isOwnLink(link), true);
  assert.equal(h.service.isOwnLink(link.replace('127.0.0.1', '127.0.0.1'.toUpperCase())), true);
  assert.equal(h.service.isOwnLink(`${h.base}/health`), false);
  assert.equal(h.service.isOwnLink('https://example.com/c/abc'), false);
  assert.equal(h.service.isOwnLink(link.replace('http://', 'https://')), false);
  assert.equal(h.service.isOwnLink('not a url'), false);
});

test('a baseUrl with a path prefix: links carry it and the service answers under it', async (t) => {
  // port 0 in both: the baseUrl takes the port the system chose
  const h = await start(clean, { port: 0, baseUrl: 'http://127.0.0.1:0/click/' });
  t.after(() => h.close());
  const port = Number(new URL(h.service.baseUrl).port);
  assert.ok(port > 0);
  assert.equal(h.service.baseUrl, `http://127.0.0.1:${port}/click`);
  const link = h.service.wrap('https://example.com/p', { mid: 1, recipient: '', reason: 'outbreak' });
  assert.ok(link.startsWith(`http://127.0.0.1:${port}/click/c/`));
  assert.equal(h.service.isOwnLink(link), true);
  assert.equal(h.service.isOwnLink(`http://127.0.0.1:${port}/c/x`), false);
  const res = await get(link);
  assert.equal(res.status, 302);
  assert.equal(res.headers.get('location'), 'https://example.com/p');
  // behind a proxy that strips the prefix the same token works, and pages link under the prefix
  const token = link.slice(link.lastIndexOf('/') + 1);
  assert.equal((await get(`http://127.0.0.1:${port}/c/${token}`)).status, 302);
  assert.equal((await get(`${link}/`)).status, 302, 'a trailing slash is tolerated');
  const h2 = await start(suspicious, { port: 0, baseUrl: 'http://127.0.0.1:0/click' });
  t.after(() => h2.close());
  const warn = await get(h2.service.wrap('https://example.com/p', { mid: 1, recipient: '', reason: 'outbreak' }));
  const html = await warn.text();
  assert.match(html, /action="\/click\/c\/[A-Za-z0-9_-]+\/continue"/);
  assert.ok(html.includes('href="/click/back"'));
});

test('health answers ok, unknown paths get a 404 page, other methods a 405', async (t) => {
  const h = await start(clean);
  t.after(() => h.close());
  const health = await get(`${h.base}/health`);
  assert.equal(health.status, 200);
  assert.equal((await health.text()).trim(), 'ok');
  const missing = await get(`${h.base}/nothing-here`);
  assert.equal(missing.status, 404);
  assert.match(await missing.text(), /<h1>Page not found<\/h1>/);
  const link = h.service.wrap('https://example.com/', { mid: 1, recipient: '', reason: 'outbreak' });
  const put = await get(link, { method: 'PUT', body: 'x' });
  assert.equal(put.status, 405);
  assert.equal(put.headers.get('allow'), 'GET, HEAD');
  const back = await get(`${h.base}/back`);
  assert.equal(back.status, 200);
  assert.match(await back.text(), /<h1>The link was not opened<\/h1>/);
  assert.equal((await get(`${h.base}/c/`)).status, 400);
  assert.equal((await get(`${h.base}/c/${'A'.repeat(9000)}`)).status, 400);
  assert.equal(h.clicks.filter((c) => c.action !== 'invalid').length, 0);
});

test('a failing onClick does not change the response and is reported', async (t) => {
  const h = await start(clean, {
    onClick: () => {
      throw new Error('database locked');
    },
  });
  t.after(() => h.close());
  const res = await get(h.service.wrap('https://example.com/', { mid: 1, recipient: '', reason: 'outbreak' }));
  assert.equal(res.status, 302);
  assert.deepEqual(h.errors, ['onClick failed: database locked']);
});

test('close() ends idle keep-alive connections promptly', async () => {
  const h = await start(clean);
  await get(h.service.wrap('https://example.com/', { mid: 1, recipient: '', reason: 'outbreak' }));
  const t0 = performance.now();
  await h.close();
  assert.ok(performance.now() - t0 < 1500);
});
