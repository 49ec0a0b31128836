import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, sign } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { tempDir } from './helpers/peers.ts';
import {
  InvalidBundleError,
  MAX_CLOCK_SKEW_MS,
  canonicalJson,
  generateKeyPair,
  keyIdOf,
  publicKeyOf,
  signBundle,
  verifySignedBundle,
  type VerifyResult,
} from '../src/outbreak/bundle.ts';
import { FeedError, fetchBundle } from '../src/outbreak/feed.ts';
import { compileRules, urlFacts } from '../src/outbreak/rules.ts';
import { RulesCliError, rulesKeygen, rulesSign, rulesVerify } from '../src/outbreak/rules-cli.ts';

const NOW = Date.parse('2025-03-01T12:00:00Z');
const keys = generateKeyPair();
const otherKeys = generateKeyPair();

function bundle(version = 7, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version,
    published: '2025-03-01T11:00:00Z',
    publisher: 'Test Hub',
    rules: [
      {
        id: 'OUTBREAK_0000001',
        level: 4,
        category: 'phish',
        description: 'Credential phishing campaign',
        published: '2025-03-01T10:00:00Z',
        condition: { url: { host: ['.phish.example.com'] } },
      },
      {
        id: 'OUTBREAK_0000002',
        level: 5,
        category: 'virus',
        description: 'Invoice dropper',
        published: '2025-03-01T10:00:00Z',
        condition: { all: [{ attachment: { extension: ['zip'] } }, { member: { extension: ['exe', 'scr'] } }] },
      },
      {
        id: 'OUTBREAK_0000003',
        level: 2,
        category: 'scam',
        description: 'Gift card scam',
        published: '2025-03-01T10:00:00Z',
        expires: '2025-03-01T11:30:00Z',
        condition: { body: ['gift card'] },
      },
    ],
    ...over,
  };
}

const signedText = (b: unknown = bundle(), priv = keys.privateKey): string => JSON.stringify(signBundle(b, priv));

function rejected(r: VerifyResult): { code: string; message: string } {
  assert.equal(r.ok, false, 'verification was expected to fail');
  return r as { ok: false; code: string; message: string };
}

// ---------------------------------------------------------------------------------------------------------------
// canonical JSON and keys

test('canonical JSON sorts keys recursively, drops white space and ignores key order', () => {
  const a = { b: [3, { z: 1, a: 'x' }], a: { d: null, c: true }, é: 1.5 };
  const b = JSON.parse('{ "é": 1.50, "a": { "c": true, "d": null }, "b": [3, { "a": "x", "z": 1 }] }');
  assert.equal(canonicalJson(a), '{"a":{"c":true,"d":null},"b":[3,{"a":"x","z":1}],"é":1.5}');
  assert.equal(canonicalJson(b), canonicalJson(a));
  assert.equal(canonicalJson('line\nbreak "quoted"'), '"line\\nbreak \\"quoted\\""');
  assert.throws(() => canonicalJson({ n: Infinity }), /non-finite/);
  assert.throws(() => canonicalJson({ d: new Date() }), /not a JSON value/);
});

test('key pairs are base64 raw 32-byte Ed25519 keys and the key id is 16 hex digits', () => {
  assert.equal(Buffer.from(keys.publicKey, 'base64').length, 32);
  assert.equal(Buffer.from(keys.privateKey, 'base64').length, 32);
  assert.equal(publicKeyOf(keys.privateKey), keys.publicKey);
  assert.match(keyIdOf(keys.publicKey), /^[0-9a-f]{16}$/);
  assert.notEqual(keyIdOf(keys.publicKey), keyIdOf(otherKeys.publicKey));
  assert.throws(() => keyIdOf('not-a-key'), /base64 raw 32-byte Ed25519 key/);
});

// ---------------------------------------------------------------------------------------------------------------
// verification

test('a signed bundle verifies, also after being re-indented or its keys reordered', () => {
  const signed = signBundle(bundle(), keys.privateKey);
  assert.equal(signed.keyId, keyIdOf(keys.publicKey));
  const r = verifySignedBundle(JSON.stringify(signed), keys.publicKey, { now: NOW });
  assert.ok(r.ok);
  assert.equal(r.bundle.version, 7);
  assert.equal(r.bundle.rules.length, 3);
  assert.match(r.digest, /^[0-9a-f]{64}$/);

  const reordered = {
    keyId: signed.keyId,
    signature: signed.signature,
    bundle: Object.fromEntries(Object.entries(signed.bundle as object).reverse()),
  };
  assert.ok(verifySignedBundle(JSON.stringify(reordered, null, 4), keys.publicKey, { now: NOW }).ok);
});

test('one byte changed in a rule makes the signature fail', () => {
  const text = signedText();
  const at = text.indexOf('Invoice dropper');
  const tampered = text.slice(0, at) + 'J' + text.slice(at + 1);
  assert.equal(tampered.length, text.length);
  assert.equal(rejected(verifySignedBundle(tampered, keys.publicKey, { now: NOW })).code, 'bad_signature');

  // a level raised from 4 to 5 is caught the same way
  const raised = text.replace('"level":4', '"level":5');
  assert.notEqual(raised, text);
  assert.equal(rejected(verifySignedBundle(raised, keys.publicKey, { now: NOW })).code, 'bad_signature');
});

test('a bundle signed with another key is refused as wrong_key, or bad_signature when the key id is forged', () => {
  const byOther = signBundle(bundle(), otherKeys.privateKey);
  const r = rejected(verifySignedBundle(JSON.stringify(byOther), keys.publicKey, { now: NOW }));
  assert.equal(r.code, 'wrong_key');
  assert.match(r.message, new RegExp(keyIdOf(otherKeys.publicKey)));
  const forged = { ...byOther, keyId: keyIdOf(keys.publicKey) };
  assert.equal(
    rejected(verifySignedBundle(JSON.stringify(forged), keys.publicKey, { now: NOW })).code,
    'bad_signature',
  );
  assert.equal(rejected(verifySignedBundle(signedText(), 'AAAA', { now: NOW })).code, 'wrong_key');
});

test('text that is not a signed bundle is bad_json', () => {
  const deep = '['.repeat(100_000) + ']'.repeat(100_000);
  const nested = `{"bundle":{"rules":${deep}},"signature":"x","keyId":"${keyIdOf(keys.publicKey)}"}`;
  for (const text of [
    '',
    '{',
    '[]',
    '{"bundle":{}}',
    JSON.stringify({ bundle: 1, signature: 'x', keyId: 'y' }),
    nested,
  ]) {
    assert.equal(rejected(verifySignedBundle(text, keys.publicKey, { now: NOW })).code, 'bad_json', text.slice(0, 80));
  }
});

test('a correctly signed but invalid bundle is refused with every error and its path', () => {
  const invalid = bundle(7, {
    rules: [
      { ...(bundle().rules as object[])[0], level: 9 },
      { ...(bundle().rules as object[])[1], condition: { member: { extension: [] } } },
    ],
  });
  // signBundle refuses to sign it, so sign by hand the way a careless publisher might
  assert.throws(
    () => signBundle(invalid, keys.privateKey),
    (err: unknown) => err instanceof InvalidBundleError && err.errors.length === 2,
  );
  const der = Buffer.concat([
    Buffer.from('302e020100300506032b657004220420', 'hex'),
    Buffer.from(keys.privateKey, 'base64'),
  ]);
  const key = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  const signature = sign(null, Buffer.from(canonicalJson(invalid)), key).toString('base64');
  const text = JSON.stringify({ bundle: invalid, signature, keyId: keyIdOf(keys.publicKey) });
  const r = rejected(verifySignedBundle(text, keys.publicKey, { now: NOW }));
  assert.equal(r.code, 'invalid_bundle');
  assert.match(r.message, /rules\[0\]\.level: /);
  assert.match(r.message, /rules\[1\]\.condition\.member\.extension: needs at least one entry/);
});

test('a lower version than the active one is refused (rollback); the same version only with the same content', () => {
  const v7 = verifySignedBundle(signedText(bundle(7)), keys.publicKey, { now: NOW });
  assert.ok(v7.ok);
  const stale = rejected(verifySignedBundle(signedText(bundle(6)), keys.publicKey, { now: NOW, minVersion: 7 }));
  assert.equal(stale.code, 'stale_version');
  assert.match(stale.message, /version 6 is older than the active version 7/);

  const same = verifySignedBundle(signedText(bundle(7)), keys.publicKey, {
    now: NOW,
    minVersion: 7,
    activeDigest: v7.digest,
  });
  assert.ok(same.ok);
  const changed = bundle(7, { publisher: 'Someone else' });
  assert.equal(
    rejected(
      verifySignedBundle(signedText(changed), keys.publicKey, { now: NOW, minVersion: 7, activeDigest: v7.digest }),
    ).code,
    'stale_version',
  );
  assert.ok(verifySignedBundle(signedText(bundle(8)), keys.publicKey, { now: NOW, minVersion: 7 }).ok);
});

test('a bundle published more than five minutes in the future is refused; less is clock skew', () => {
  const at = (ms: number) => bundle(7, { published: new Date(NOW + ms).toISOString() });
  const future = rejected(verifySignedBundle(signedText(at(MAX_CLOCK_SKEW_MS + 1000)), keys.publicKey, { now: NOW }));
  assert.equal(future.code, 'expired');
  assert.match(future.message, /in the future/);
  assert.ok(verifySignedBundle(signedText(at(MAX_CLOCK_SKEW_MS - 1000)), keys.publicKey, { now: NOW }).ok);
});

test('a verified bundle compiles into rules that match', () => {
  const r = verifySignedBundle(signedText(), keys.publicKey, { now: NOW });
  assert.ok(r.ok);
  const rules = compileRules(r.bundle.rules, { now: NOW });
  assert.equal(rules.size, 2, 'the rule that expired at 11:30 is left out');
  assert.deepEqual(
    rules.evaluate(urlFacts('https://login.phish.example.com/x')).map((h) => h.id),
    ['OUTBREAK_0000001'],
  );
});

// ---------------------------------------------------------------------------------------------------------------
// feed: directory

test('a directory feed serves the file with the highest bundle version, whatever the modification times', async () => {
  const dir = tempDir('bw-feed-dir-');
  const v9 = signedText(bundle(9));
  writeFileSync(path.join(dir, 'a-old-name.json'), v9);
  writeFileSync(path.join(dir, 'z-newer-mtime.json'), signedText(bundle(8)));
  writeFileSync(path.join(dir, 'notes.txt'), '{"bundle":{"version":99}}');
  mkdirSync(path.join(dir, 'sub.json'));
  const past = new Date(NOW - 86_400_000);
  utimesSync(path.join(dir, 'a-old-name.json'), past, past);
  assert.equal(await fetchBundle({ dir }, { timeoutMs: 1000, maxBytes: 1 << 20 }), v9);
});

test('a directory feed falls back to the newest modification time when versions cannot be read', async () => {
  const dir = tempDir('bw-feed-mtime-');
  writeFileSync(path.join(dir, 'one.json'), 'not json, older');
  writeFileSync(path.join(dir, 'two.json'), 'not json, newer');
  utimesSync(path.join(dir, 'one.json'), new Date(NOW - 10_000), new Date(NOW - 10_000));
  utimesSync(path.join(dir, 'two.json'), new Date(NOW), new Date(NOW));
  assert.equal(await fetchBundle({ dir }, { timeoutMs: 1000, maxBytes: 1 << 20 }), 'not json, newer');
});

test('directory feed errors: missing directory and no bundle are not_found; only oversized files is too_large', async () => {
  const opts = { timeoutMs: 1000, maxBytes: 100 };
  await assert.rejects(fetchBundle({ dir: '/nonexistent/bw-feed' }, opts), { name: 'FeedError', code: 'not_found' });
  const empty = tempDir('bw-feed-empty-');
  writeFileSync(path.join(empty, 'readme.txt'), 'x');
  await assert.rejects(fetchBundle({ dir: empty }, opts), { code: 'not_found' });
  const big = tempDir('bw-feed-big-');
  writeFileSync(path.join(big, 'bundle.json'), 'x'.repeat(101));
  await assert.rejects(fetchBundle({ dir: big }, opts), { code: 'too_large' });
  await assert.rejects(fetchBundle({}, opts), { code: 'not_found' });
});

// ---------------------------------------------------------------------------------------------------------------
// feed: HTTP

async function serve(handler: http.RequestListener): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

test('an HTTP feed returns the body; HTTP errors, timeouts and oversized bodies are FeedErrors', async (t) => {
  const text = signedText();
  const server = await serve((req, res) => {
    if (req.url === '/bundle.json') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(text);
    } else if (req.url === '/big-declared') {
      res.writeHead(200, { 'content-length': String(5000) });
      res.end('x'.repeat(5000));
    } else if (req.url === '/big-chunked') {
      // no content-length, 5000 bytes, then the connection stays open: only a cap applied while streaming ends it
      res.writeHead(200);
      for (let i = 0; i < 5; i++) res.write('y'.repeat(1000));
    } else if (req.url === '/slow') {
      // headers never come
    } else if (req.url === '/stall') {
      res.writeHead(200);
      res.write('{"bundle":');
    } else {
      res.writeHead(404);
      res.end('no');
    }
  });
  t.after(server.close);
  const opts = { timeoutMs: 300, maxBytes: 4000 };

  assert.equal(await fetchBundle({ url: `${server.url}/bundle.json` }, { timeoutMs: 2000, maxBytes: 1 << 20 }), text);
  await assert.rejects(fetchBundle({ url: `${server.url}/missing` }, opts), (err: unknown) => {
    assert.ok(err instanceof FeedError);
    assert.equal(err.code, 'http_status');
    assert.equal(err.status, 404);
    return true;
  });
  await assert.rejects(fetchBundle({ url: `${server.url}/big-declared` }, opts), { code: 'too_large' });
  await assert.rejects(fetchBundle({ url: `${server.url}/big-chunked` }, { timeoutMs: 5000, maxBytes: 4000 }), {
    code: 'too_large',
  });
  const started = performance.now();
  await assert.rejects(fetchBundle({ url: `${server.url}/slow` }, opts), { code: 'timeout' });
  await assert.rejects(fetchBundle({ url: `${server.url}/stall` }, opts), { code: 'timeout' });
  assert.ok(performance.now() - started < 3000, 'both timeouts fired near 300 ms');
});

test('an HTTP feed that cannot be reached is unreachable', async () => {
  const server = await serve(() => {});
  const url = server.url;
  await server.close();
  await assert.rejects(fetchBundle({ url }, { timeoutMs: 2000, maxBytes: 1000 }), { code: 'unreachable' });
  await assert.rejects(fetchBundle({ url: 'ftp://127.0.0.1/x' }, { timeoutMs: 2000, maxBytes: 1000 }), {
    code: 'unreachable',
  });
});

// ---------------------------------------------------------------------------------------------------------------
// CLI functions

test('rules keygen, sign and verify work together; the private key is owner-only and never overwritten', () => {
  const dir = tempDir('bw-rules-cli-');
  const kp = rulesKeygen(path.join(dir, 'keys'));
  assert.equal(statSync(kp.privateKeyFile).mode & 0o777, 0o600);
  assert.equal(readFileSync(kp.publicKeyFile, 'utf8').trim(), kp.publicKey);
  assert.throws(() => rulesKeygen(path.join(dir, 'keys')), /already exists/);

  const src = path.join(dir, 'bundle.json');
  writeFileSync(src, JSON.stringify(bundle(12)));
  const out = path.join(dir, 'bundle.signed.json');
  const signed = rulesSign(src, kp.privateKeyFile, out);
  assert.deepEqual(signed, { outFile: out, version: 12, rules: 3, keyId: kp.keyId });

  const report = rulesVerify(out, kp.publicKey, { now: NOW });
  assert.ok(report.ok);
  assert.equal(report.version, 12);
  assert.equal(report.rules, 3);
  assert.deepEqual(report.levels, [0, 0, 1, 0, 1, 1]);
  assert.deepEqual(report.categories, { virus: 1, malware: 0, phish: 1, scam: 1, other: 0 });
  assert.equal(report.expiredRules, 1);
  assert.match(report.summary, /version 12/);
  assert.match(report.summary, /3 rules \(1 expired\)/);
  assert.match(report.summary, /2: 1, 3: 0, 4: 1, 5: 1/);

  // the key may also be given as the path of the .pub file
  assert.ok(rulesVerify(out, kp.publicKeyFile, { now: NOW }).ok);
  const wrong = rulesVerify(out, otherKeys.publicKey, { now: NOW });
  assert.equal(wrong.ok, false);
  assert.match(wrong.summary, /^REJECTED \(wrong_key\)/);
});

test('rules sign lists every error of an invalid bundle and writes nothing', () => {
  const dir = tempDir('bw-rules-sign-');
  const kp = rulesKeygen(dir);
  const src = path.join(dir, 'bad.json');
  const rules = bundle().rules as Array<Record<string, unknown>>;
  writeFileSync(src, JSON.stringify(bundle(0, { rules: [{ ...rules[0], category: 'worm' }, rules[0]] })));
  const out = path.join(dir, 'out.json');
  assert.throws(
    () => rulesSign(src, kp.privateKeyFile, out),
    (err: unknown) => {
      assert.ok(err instanceof RulesCliError);
      assert.deepEqual(
        err.errors.map((e) => e.slice(0, e.indexOf(':'))),
        ['version', 'rules[0].category', 'rules[1].id'],
      );
      return true;
    },
  );
  assert.throws(() => statSync(out), { code: 'ENOENT' });
  writeFileSync(src, '{ not json');
  assert.throws(() => rulesSign(src, kp.privateKeyFile, out), /is not JSON/);
});
