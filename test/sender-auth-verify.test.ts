// Sender authentication (issue 15) in process, against a real DNS server (dnsmasq, test/helpers/dns.ts):
// SPF (envelope and HELO), DKIM with keys made here (RSA-2048, Ed25519) and signed with mailauth, DMARC,
// ARC chains sealed with mailauth's sealer; bad input (malformed signatures, DNS loops, oversized SPF,
// huge Authentication-Results, too many signatures for the lookup budget); DNS down; the corpus's signed
// messages offline (NXDOMAIN for everything).
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { dkimSign, sealMessage } from 'mailauth';
import { hasDnsmasq, startDns, type DnsRecords, type TestDns } from './helpers/dns.ts';
import { AuthResolver } from '../src/senderauth/resolver.ts';
import { verifySender, type SenderAuthResult } from '../src/senderauth/verify.ts';
import { applyAuthResults, authResultsField, authservIdOf, countForgedAuthResults } from '../src/senderauth/headers.ts';
import { needsModification, type DeliverVerdict } from '../src/flow/modify-copy.ts';
import type { Copy } from '../src/flow/copies.ts';
import { arcOverride, decideSenderAuth, withAuthResults } from '../src/policy/sender-auth.ts';
import { authHits } from '../src/outbreak/adaptive/auth.ts';
import { freePort } from './helpers/peers.ts';

const skip = hasDnsmasq() ? false : 'dnsmasq not installed (.ci/run)';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ed = generateKeyPairSync('ed25519');
const rsaPem = rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const edPem = ed.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const rsaTxt = `v=DKIM1; k=rsa; p=${rsa.publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`;
// RFC 8463 §4.2: the raw 32-byte Ed25519 key (the SPKI DER ends with it)
const edTxt = `v=DKIM1; k=ed25519; p=${ed.publicKey.export({ type: 'spki', format: 'der' }).subarray(-32).toString('base64')}`;

export const RECORDS: DnsRecords = {
  localZones: ['test'],
  txt: [
    // good.test: everything passes from 127.0.0.1
    ['good.test', 'v=spf1 ip4:127.0.0.1 -all'],
    ['rsa._domainkey.good.test', rsaTxt],
    ['ed._domainkey.good.test', edTxt],
    ['_dmarc.good.test', 'v=DMARC1; p=reject'],
    ['mail.good.test', 'v=spf1 ip4:127.0.0.1 -all'],
    // reject.test / quarantine.test / none.test: SPF fails, no signature → DMARC fails
    ['reject.test', 'v=spf1 -all'],
    ['_dmarc.reject.test', 'v=DMARC1; p=reject'],
    ['quarantine.test', 'v=spf1 ~all'],
    ['_dmarc.quarantine.test', 'v=DMARC1; p=quarantine'],
    ['pct.test', 'v=spf1 -all'],
    ['_dmarc.pct.test', 'v=DMARC1; p=reject; pct=0'],
    ['sub.test', 'v=spf1 -all'],
    ['_dmarc.sub.test', 'v=DMARC1; p=none; sp=reject'],
    ['x.sub.test', 'v=spf1 -all'],
    // DNS loops and oversized SPF (RFC 7208 §4.6.4)
    ['loop-a.test', 'v=spf1 include:loop-b.test -all'],
    ['loop-b.test', 'v=spf1 include:loop-a.test -all'],
    ['many.test', `v=spf1 ${Array.from({ length: 12 }, (_, i) => `include:i${i}.many.test`).join(' ')} -all`],
    ...Array.from({ length: 12 }, (_, i): [string, string] => [`i${i}.many.test`, 'v=spf1 ?all']),
    ['twice.test', 'v=spf1 -all'],
    ['twice.test', 'v=spf1 +all'],
    // ARC sealers
    ['arc._domainkey.forwarder.test', rsaTxt],
    ['arc._domainkey.list.test', edTxt],
  ],
};

let dns: TestDns;
before(async () => {
  if (!skip) dns = await startDns(RECORDS);
});
after(async () => {
  await dns?.stop();
});

function resolverFor(server: string, o: Partial<ConstructorParameters<typeof AuthResolver>[0]> = {}): AuthResolver {
  return new AuthResolver({
    servers: [server],
    timeoutMs: 1500,
    tries: 1,
    cacheTtlMs: 60_000,
    cacheSize: 1000,
    downAfter: 3,
    ...o,
  });
}

function message(from: string, extra: string[] = [], subject = 'Quarterly report'): Buffer {
  return Buffer.from(
    [
      `From: Sender <${from}>`,
      'To: bob@dst.test',
      `Subject: ${subject}`,
      'Date: Tue, 02 Jun 2026 10:00:00 +0000',
      `Message-ID: <${Math.random().toString(36).slice(2)}@sender.test>`,
      ...extra,
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      '',
      'Hello Bob, the report is attached in spirit.',
      '',
    ].join('\r\n'),
  );
}

async function sign(msg: Buffer, keys: Array<{ selector: string; pem: string; domain?: string }>): Promise<Buffer> {
  const signed = await dkimSign(msg, {
    signingDomain: keys[0].domain ?? 'good.test',
    selector: keys[0].selector,
    privateKey: keys[0].pem,
    signatureData: keys.map((k) => ({
      signingDomain: k.domain ?? 'good.test',
      selector: k.selector,
      privateKey: k.pem,
      canonicalization: 'relaxed/relaxed',
    })),
  });
  assert.deepEqual(signed.errors, []);
  return Buffer.concat([Buffer.from(signed.signatures), msg]);
}

async function verify(
  msg: Buffer,
  o: { sender: string; helo?: string | null; resolver?: AuthResolver; budget?: number; timeoutMs?: number },
): Promise<SenderAuthResult> {
  const r = o.resolver ?? resolverFor(dns.server);
  const deadline = Date.now() + (o.timeoutMs ?? 8000);
  return verifySender({
    message: msg,
    sender: o.sender,
    ip: '127.0.0.1',
    helo: o.helo === undefined ? 'mail.good.test' : o.helo,
    authservId: 'gw.test',
    resolver: r.forMessage(o.budget ?? 60, deadline),
    minKeyBits: 1024,
    deadline,
  });
}

test('RSA-2048 and Ed25519 DKIM signatures, SPF of MAIL FROM and HELO and DMARC pass', { skip }, async () => {
  const msg = await sign(message('alice@good.test'), [
    { selector: 'rsa', pem: rsaPem },
    { selector: 'ed', pem: edPem },
  ]);
  const r = await verify(msg, { sender: 'alice@good.test' });
  assert.equal(r.spf.result, 'pass');
  assert.equal(r.spfHelo?.result, 'pass');
  assert.deepEqual(
    r.dkim.map((d) => [d.result, d.selector]),
    [
      ['pass', 'rsa'],
      ['pass', 'ed'],
    ],
  );
  assert.equal(r.dmarc.result, 'pass');
  assert.equal(r.dmarc.policy, 'reject');
  assert.equal(r.arc.result, 'none');
  assert.match(r.header, /^gw\.test;\r\n /);
  assert.match(r.header, /dkim=pass header\.i=@good\.test header\.s=rsa/);
  assert.match(r.header, /spf=pass[^;]*smtp\.mailfrom=/);
  assert.match(r.header, /spf=pass smtp\.helo=mail\.good\.test/);
  assert.match(r.header, /dmarc=pass/);
  for (const line of r.header.split('\r\n')) assert.ok(line.length < 998, 'header lines stay short');
  assert.equal(decideSenderAuth(r, policy(), { released: new Set() }).kind, 'none');
});

function policy(o: Record<string, unknown> = {}) {
  return {
    mode: 'custom' as const,
    dmarcReject: { action: 'drop' as const, subjectTag: '[SUSPECTED SPOOF] ', reply: '550 5.7.1 no' },
    dmarcQuarantine: { action: 'tag' as const, subjectTag: '[SUSPECTED SPOOF] ', reply: '550 5.7.1 no' },
    honorPct: true,
    ...o,
  };
}

test('DMARC reject, quarantine, sp= for subdomains and pct=0 are what the policy acts on', { skip }, async () => {
  const reject = await verify(message('ceo@reject.test'), { sender: 'ceo@reject.test' });
  assert.equal(reject.spf.result, 'fail');
  assert.equal(reject.dmarc.result, 'fail');
  assert.equal(reject.dmarc.policy, 'reject');
  assert.equal(decideSenderAuth(reject, policy(), { released: new Set() }).kind, 'drop');
  const bounce = decideSenderAuth(
    reject,
    policy({ dmarcReject: { action: 'bounce', subjectTag: '', reply: '550 5.7.1 DMARC' } }),
    { released: new Set() },
  );
  assert.deepEqual(bounce.kind === 'bounce' && bounce.reply, '550 5.7.1 DMARC');

  const q = await verify(message('ceo@quarantine.test'), { sender: 'ceo@quarantine.test' });
  assert.equal(q.spf.result, 'softfail');
  assert.equal(q.dmarc.policy, 'quarantine');
  assert.equal(decideSenderAuth(q, policy(), { released: new Set() }).kind, 'tag');
  const held = decideSenderAuth(
    q,
    policy({ dmarcQuarantine: { action: 'quarantine', quarantine: 'spoof', subjectTag: '', reply: '550 5.7.1 x' } }),
    { released: new Set() },
  );
  assert.equal(held.kind === 'quarantine' && held.quarantine, 'spoof');
  // released from that quarantine: delivered, never held there again
  assert.equal(
    decideSenderAuth(
      q,
      policy({ dmarcQuarantine: { action: 'quarantine', quarantine: 'spoof', subjectTag: '', reply: '550 5.7.1 x' } }),
      { released: new Set(['spoof']) },
    ).kind,
    'none',
  );

  const sub = await verify(message('x@x.sub.test'), { sender: 'x@x.sub.test' });
  assert.equal(sub.dmarc.result, 'fail');
  assert.equal(sub.dmarc.policy, 'reject', 'sp=reject applies to the subdomain');

  const pct = await verify(message('x@pct.test'), { sender: 'x@pct.test' });
  assert.equal(pct.dmarc.pct, 0);
  // pct=0: the policy applies to no message; the rest gets the next lower policy (quarantine → tag)
  assert.equal(decideSenderAuth(pct, policy(), { released: new Set(), sample: 50 }).kind, 'tag');
  assert.equal(decideSenderAuth(pct, policy({ honorPct: false }), { released: new Set(), sample: 50 }).kind, 'drop');
});

test('bad input: DNS loops, oversized and duplicate SPF are permerror, never a crash', { skip }, async () => {
  const loop = await verify(message('a@loop-a.test'), { sender: 'a@loop-a.test', helo: null });
  assert.equal(loop.spf.result, 'permerror');
  const many = await verify(message('a@many.test'), { sender: 'a@many.test', helo: null });
  assert.equal(many.spf.result, 'permerror', 'more than 10 DNS-querying terms (RFC 7208 §4.6.4)');
  const twice = await verify(message('a@twice.test'), { sender: 'a@twice.test', helo: null });
  assert.equal(twice.spf.result, 'permerror', 'two SPF records (RFC 7208 §4.5)');
});

test('bad input: malformed DKIM signatures and a huge Authentication-Results get a result each', { skip }, async () => {
  const malformed = [
    'DKIM-Signature: v=1; a=rsa-sha256; d=good.test; s=rsa; b=!!!not base64!!!; bh=@@',
    'DKIM-Signature: garbage without tags',
    'DKIM-Signature: v=1; a=rsa-sha999; d=; s=; h=from; bh=; b=',
    `DKIM-Signature: v=1; a=rsa-sha256; d=${'x'.repeat(300)}.test; s=rsa; h=from; bh=AAAA; b=AAAA`,
  ];
  const huge = `Authentication-Results: gw.test; dkim=pass ${'(padding) '.repeat(20_000)}`;
  const msg = Buffer.concat([Buffer.from(malformed.join('\r\n') + '\r\n' + huge + '\r\n'), message('a@good.test')]);
  const r = await verify(msg, { sender: 'a@good.test' });
  // mailauth (lenient) leaves out what it cannot parse at all; what it lists does not pass
  assert.ok(r.dkim.length >= 1);
  assert.ok(
    r.dkim.every((d) => d.result !== 'pass'),
    JSON.stringify(r.dkim),
  );
  assert.equal(r.spf.result, 'pass');
  // no DKIM pass, SPF aligned: DMARC passes on SPF
  assert.equal(r.dmarc.result, 'pass');
  // the forged header (our id) goes, ours comes on top; the edit costs no more than the header block
  const t0 = performance.now();
  const edited = applyAuthResults(msg, r.header, 'gw.test');
  assert.ok(performance.now() - t0 < 200);
  assert.equal(edited.removed, 1);
  assert.ok(edited.bytes.toString('latin1').startsWith('Authentication-Results: gw.test;\r\n '));
  assert.ok(!edited.bytes.includes('(padding) (padding)'));
});

test('forged Authentication-Results claiming our authserv-id are removed, others stay byte for byte', () => {
  assert.equal(authservIdOf(' gw.test; spf=pass'), 'gw.test');
  assert.equal(authservIdOf(' (comment (nested)) GW.TEST 1; none'), 'gw.test');
  assert.equal(authservIdOf(' "gw.test"; none'), 'gw.test');
  assert.equal(authservIdOf('\r\n\tgw.test;\r\n\tdkim=pass'), 'gw.test');
  assert.equal(authservIdOf(' gw.test.evil; none'), 'gw.test.evil');
  const msg = Buffer.from(
    [
      'Received: from x by y; Tue, 02 Jun 2026 10:00:00 +0000',
      'Authentication-Results: GW.test; dkim=pass header.d=bank.test',
      'Authentication-Results: mx.other.test;',
      '\tspf=pass smtp.mailfrom=a@other.test',
      'Authentication-Results: (sneaky) gw.test;',
      '\tdmarc=pass',
      'Subject: hi',
      '',
      'Authentication-Results: gw.test; in the body stays',
      '',
    ].join('\r\n'),
  );
  const out = applyAuthResults(msg, 'gw.test;\r\n spf=none', 'gw.test');
  assert.equal(out.removed, 2);
  assert.equal(
    out.bytes.toString(),
    [
      'Authentication-Results: gw.test;',
      ' spf=none',
      'Received: from x by y; Tue, 02 Jun 2026 10:00:00 +0000',
      'Authentication-Results: mx.other.test;',
      '\tspf=pass smtp.mailfrom=a@other.test',
      'Subject: hi',
      '',
      'Authentication-Results: gw.test; in the body stays',
      '',
    ].join('\r\n'),
  );
});

test('a copy is written only to remove forged fields: ours alone goes on at send time', () => {
  const clean = Buffer.from(
    'Received: from x by y; now\r\nAuthentication-Results: mx.other.test; spf=pass\r\nSubject: hi\r\n\r\nAuthentication-Results: gw.test; body\r\n',
  );
  const forged = Buffer.from('Subject: hi\r\nAuthentication-Results: (x) GW.test; dmarc=pass\r\n\r\nbody\r\n');
  assert.equal(countForgedAuthResults(clean, 'gw.test'), 0, 'the body and other hosts do not count');
  assert.equal(countForgedAuthResults(forged, 'gw.test'), 1);
  // a header block longer than what was read: unknown, so removed rather than trusted
  assert.equal(countForgedAuthResults(Buffer.from('Subject: hi\r\nX-Long: ' + 'a'.repeat(1000)), 'gw.test'), null);
  // removal only (no value): nothing added, forged ones gone, the rest byte for byte
  const removed = applyAuthResults(forged, null, 'gw.test');
  assert.equal(removed.removed, 1);
  assert.equal(removed.bytes.toString(), 'Subject: hi\r\n\r\nbody\r\n');
  assert.equal(
    authResultsField('gw.test;\r\n spf=pass').toString(),
    'Authentication-Results: gw.test;\r\n spf=pass\r\n',
  );

  const result = (forgedCount: number | null) =>
    ({ header: 'gw.test;\r\n spf=pass', authservId: 'gw.test', forged: forgedCount }) as SenderAuthResult;
  const deliver = { kind: 'deliver', reason: 'no policy action' } as const;
  const copy = { releaseTag: null, releaseNote: null } as unknown as Copy;
  const verdict = (n: number | null) => withAuthResults(deliver, result(n)) as DeliverVerdict;
  assert.equal(needsModification(copy, verdict(0)), false, 'no forged field: the spooled bytes are delivered');
  assert.equal(verdict(0).authResults?.value, 'gw.test;\r\n spf=pass');
  assert.equal(needsModification(copy, verdict(2)), true);
  assert.equal(needsModification(copy, verdict(null)), true, 'unknown counts as forged');
});

test('the lookup budget bounds a message with many signatures: temperror, not a stall', { skip }, async () => {
  // valid body hashes, so every signature asks DNS for its key (none exists)
  const msg = await sign(
    message('a@good.test'),
    Array.from({ length: 40 }, (_, i) => ({ selector: 's', pem: rsaPem, domain: `d${i}.many.test` })),
  );
  const r = await verify(msg, { sender: 'a@good.test', budget: 10 });
  assert.ok(r.budgetExhausted);
  assert.ok(r.lookups > 10);
  assert.ok(
    r.dkim.some((d) => d.result === 'temperror'),
    JSON.stringify(r.dkim.slice(0, 3)),
  );
  assert.ok(r.dkim.length <= 20, 'at most 20 signatures listed');
  assert.match(r.header, /more signatures not listed/);
});

test(
  'ARC: a chain sealed by two forwarders validates; a message changed after sealing does not',
  { skip },
  async () => {
    const signed = await sign(message('alice@good.test'), [{ selector: 'rsa', pem: rsaPem }]);
    const seal1 = await sealMessage(signed, {
      signingDomain: 'forwarder.test',
      selector: 'arc',
      privateKey: rsaPem,
      authResults: 'forwarder.test; dkim=pass header.d=good.test',
      cv: 'none',
    });
    const hop1 = Buffer.concat([seal1, signed]);
    const seal2 = await sealMessage(hop1, {
      signingDomain: 'list.test',
      selector: 'arc',
      privateKey: edPem,
      authResults: 'list.test; arc=pass',
      cv: 'pass',
    });
    const hop2 = Buffer.concat([seal2, hop1]);
    const r = await verify(hop2, { sender: 'list-bounces@good.test' });
    assert.equal(r.arc.result, 'pass', r.arc.comment ?? '');
    assert.equal(r.arc.instance, 2);
    assert.match(r.header, /arc=pass/);
    // a list footer added after the last seal breaks the chain (and the DKIM signature)
    const changed = Buffer.from(hop2.toString().replace('in spirit.', 'in spirit.\r\n-- list footer'));
    const bad = await verify(changed, { sender: 'list-bounces@good.test' });
    assert.equal(bad.arc.result, 'fail');
    assert.notEqual(bad.dkim[0].result, 'pass');
  },
);

test('DNS down: temperror quickly, then fail-fast while the servers stay silent', async () => {
  // a UDP port nobody answers on
  const silent = `127.0.0.1:${await freePort()}`;
  const r0 = new AuthResolver({
    servers: [silent],
    timeoutMs: 300,
    tries: 1,
    cacheTtlMs: 60_000,
    cacheSize: 100,
    downAfter: 2,
  });
  const t0 = Date.now();
  const first = await verifySender({
    message: message('a@good.test'),
    sender: 'a@good.test',
    ip: '127.0.0.1',
    helo: 'mail.good.test',
    authservId: 'gw.test',
    resolver: r0.forMessage(60, Date.now() + 3000),
    minKeyBits: 1024,
    deadline: Date.now() + 3000,
  });
  assert.equal(first.spf.result, 'temperror');
  assert.ok(first.dmarc.result === 'temperror' || first.dmarc.result === 'none', first.dmarc.result);
  assert.notEqual(first.dmarc.result, 'pass');
  assert.ok(Date.now() - t0 < 3500, `${Date.now() - t0} ms`);
  assert.ok(r0.down, 'after timeouts in a row the servers count as down');
  const t1 = Date.now();
  const second = await verifySender({
    message: message('b@good.test'),
    sender: 'b@good.test',
    ip: '127.0.0.1',
    helo: null,
    authservId: 'gw.test',
    resolver: r0.forMessage(60, Date.now() + 3000),
    minKeyBits: 1024,
    deadline: Date.now() + 3000,
  });
  assert.equal(second.spf.result, 'temperror');
  assert.ok(Date.now() - t1 < 200, `fail-fast while down: ${Date.now() - t1} ms`);
  assert.match(second.header, /spf=temperror/);
});

test('the cache answers repeated questions without asking the server', { skip }, async () => {
  const r = resolverFor(dns.server);
  await verify(message('a@good.test'), { sender: 'a@good.test', resolver: r });
  const asked = r.stats.queries;
  await verify(message('b@good.test'), { sender: 'b@good.test', resolver: r });
  assert.equal(r.stats.queries, asked, 'second message fully from the cache');
  assert.ok(r.stats.cacheHits > 0);
});

test('adaptive rules weigh DMARC failures: a brand domain or a lookalike failing DMARC is phishing', () => {
  const base: SenderAuthResult = {
    authservId: 'gw.test',
    spf: { result: 'fail', domain: 'x.test', comment: null },
    spfHelo: null,
    dkim: [],
    dmarc: { result: 'fail', domain: 'paypal.com', policy: 'reject', p: 'reject', sp: null, pct: 100, comment: null },
    arc: { result: 'none', instance: null, comment: null },
    header: '',
    lookups: 0,
    budgetExhausted: false,
    ms: 0,
  };
  const spoof = authHits(base, 'service@paypal.com', []);
  assert.deepEqual(
    spoof.map((h) => [h.id, h.level]),
    [['ADAPTIVE_AUTH_BRAND_SPOOF', 4]],
  );
  const look = authHits({ ...base, dmarc: { ...base.dmarc, domain: 'paypal-secure-login.com' } }, null, []);
  assert.equal(look[0]?.id, 'ADAPTIVE_AUTH_LOOKALIKE_FAIL');
  assert.equal(look[0]?.level, 4);
  const plain = authHits({ ...base, dmarc: { ...base.dmarc, domain: 'example.org', policy: 'none' } }, null, []);
  assert.deepEqual(
    plain.map((h) => [h.id, h.level]),
    [['ADAPTIVE_AUTH_DMARC_FAIL', 1]],
  );
  const pass = authHits(
    { ...base, spf: { ...base.spf, result: 'pass' }, dmarc: { ...base.dmarc, result: 'pass' } },
    'service@paypal.com',
    [],
  );
  assert.deepEqual(pass, []);
});

const CORPUS = path.resolve(import.meta.dirname, '../../shared/corpus/rspamd-messages/test/functional/messages');

function corpusFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...corpusFiles(p));
    else if (name.endsWith('.eml')) out.push(p);
  }
  return out;
}

test(
  'the corpus signed messages verify offline (NXDOMAIN for everything): a result each, no crash',
  {
    skip:
      skip ||
      (existsSync(CORPUS) ? false : `the shared corpus is absent (${CORPUS}): the signed corpus messages are skipped`),
  },
  async (t) => {
    const signed = corpusFiles(CORPUS).filter((f) =>
      /^(DKIM-Signature|ARC-Seal|ARC-Message-Signature):/im.test(readFileSync(f, 'latin1')),
    );
    assert.ok(signed.length >= 15, `${signed.length} signed corpus messages`);
    const nx = await startDns({
      localZones: ['com', 'org', 'net', 'ru', 'io', 'de', 'uk', 'test', 'info', 'biz', 'cz'],
    });
    try {
      const r = resolverFor(nx.server);
      const results: Record<string, number> = {};
      for (const f of signed) {
        const msg = readFileSync(f);
        const from = /^From:.*?([^\s<>"]+@[^\s<>"]+)/im.exec(msg.toString('latin1'))?.[1] ?? 'x@corpus.test';
        const res = await verify(msg, { sender: from, resolver: r, helo: 'corpus.test' });
        assert.match(res.header, /^gw\.test;/);
        assert.ok(res.spf.result, f);
        for (const d of res.dkim) results[`dkim=${d.result}`] = (results[`dkim=${d.result}`] ?? 0) + 1;
        results[`arc=${res.arc.result}`] = (results[`arc=${res.arc.result}`] ?? 0) + 1;
        assert.ok(
          res.dkim.every((d) => d.result !== 'pass'),
          `${path.basename(f)}: no key in DNS, so no DKIM pass`,
        );
      }
      t.diagnostic(`${signed.length} messages: ${JSON.stringify(results)}`);
    } finally {
      await nx.stop();
    }
  },
);

test(
  'a mailing list that changed a p=reject domain’s mail: a trusted ARC sealer’s dmarc=pass overrides the failure; an untrusted one, or a seal recording dmarc=fail, does not',
  { skip },
  async () => {
    const original = await sign(message('alice@good.test'), [{ selector: 'rsa', pem: rsaPem }]);
    // the list tags the subject (the DKIM signature breaks), sends from its own bounce address (SPF
    // aligns with list.test, not good.test) and seals what it saw on arrival
    const listed = Buffer.from(
      original.toString().replace('Subject: Quarterly report', 'Subject: [team] Quarterly report'),
    );
    const viaList = async (aar: string, domain = 'list.test', pem = edPem) =>
      Buffer.concat([
        await sealMessage(listed, {
          signingDomain: domain,
          selector: 'arc',
          privateKey: pem,
          authResults: aar,
          cv: 'none',
        }),
        listed,
      ]);
    const sawPass = `list.test; dkim=pass header.d=good.test; spf=pass smtp.mailfrom=good.test; dmarc=pass header.from=good.test`;
    const r = await verify(await viaList(sawPass), { sender: 'bounces@list.test' });
    assert.equal(r.dmarc.result, 'fail');
    assert.equal(r.dmarc.policy, 'reject');
    assert.equal(r.arc.result, 'pass', r.arc.comment ?? '');
    assert.equal(r.arc.sealer, 'list.test');
    assert.deepEqual(r.arc.upstream, { dmarc: 'pass', fromDomain: 'good.test' });
    const settings = {
      mode: 'custom' as const,
      dmarcReject: { action: 'drop' as const, subjectTag: '', reply: '550 5.7.1 no' },
      dmarcQuarantine: { action: 'tag' as const, subjectTag: '[SPOOF] ', reply: '550 5.7.1 no' },
      honorPct: true,
    };
    const released = new Set<string>();

    // trusted (the sealer, or a parent domain of it): no action, and no adaptive auth hit either
    for (const trusted of [['list.test'], ['other.test', 'test']]) {
      const note = arcOverride(r, trusted);
      assert.match(note ?? '', /trusted ARC sealer list\.test \(i=1\) saw dmarc=pass for good\.test/);
      const overridden = { ...r, dmarcOverride: note! };
      assert.deepEqual(decideSenderAuth(overridden, settings, { released }), { kind: 'none' });
      assert.deepEqual(
        authHits(overridden, 'alice@good.test', []).filter((h) => /DMARC|AUTH/.test(h.id + h.description)),
        [],
      );
    }
    // not trusted: the DMARC reject policy applies as before
    assert.equal(arcOverride(r, ['forwarder.test']), null);
    assert.equal(decideSenderAuth(r, settings, { released }).kind, 'drop');
    // the sealer recorded a failure, or a pass for another From domain: no override
    const sawFail = await verify(await viaList('list.test; dmarc=fail header.from=good.test'), {
      sender: 'bounces@list.test',
    });
    assert.equal(sawFail.arc.result, 'pass');
    assert.equal(arcOverride(sawFail, ['list.test']), null);
    const otherFrom = await verify(await viaList('list.test; dmarc=pass header.from=evil.test'), {
      sender: 'bounces@list.test',
    });
    assert.equal(arcOverride(otherFrom, ['list.test']), null);
    // a seal that does not validate (changed after sealing) vouches for nothing
    const broken = Buffer.from((await viaList(sawPass)).toString().replace('in spirit.', 'in spirit. (edited)'));
    const b = await verify(broken, { sender: 'bounces@list.test' });
    assert.equal(b.arc.result, 'fail');
    assert.equal(arcOverride(b, ['list.test']), null);
  },
);
