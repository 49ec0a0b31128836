import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { zipSync } from 'fflate';
import MailComposer from 'nodemailer/lib/mail-composer';
import { parseMessage } from '../src/mime/parse.ts';
import type { ArchiveMember, AttachmentInfo, ExtractedUrl, ParsedMessage } from '../src/mime/types.ts';
import { registrableDomain, urlHost } from '../src/mime/urls.ts';
import {
  PhraseAutomaton,
  RULE_LIMITS,
  compileRules,
  globMatch,
  inferRuleType,
  maxLevel,
  parseBundle,
  urlFacts,
  type CompileOptions,
  type CompiledRules,
  type Condition,
  type Rule,
} from '../src/outbreak/rules.ts';
import type { MessageFacts } from '../src/outbreak/types.ts';

const PUBLISHED = '2025-01-01T00:00:00Z';
const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

function rawRule(id: string, condition: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { id, level: 3, category: 'malware', description: `rule ${id}`, published: PUBLISHED, condition, ...extra };
}

/**
 * Validates through parseBundle (as a feed would) and compiles twice, with the index and without: every evaluation
 * in these tests checks that both give the same hits, so the index can never hide or invent a match.
 */
function compile(rules: Array<Record<string, unknown>>, opts?: CompileOptions): CompiledRules {
  const r = parseBundle({ version: 1, published: PUBLISHED, rules });
  assert.ok('bundle' in r, 'errors' in r ? r.errors.join('\n') : '');
  const indexed = compileRules(r.bundle.rules, opts);
  const linear = compileRules(r.bundle.rules, { ...opts, index: false });
  return {
    size: indexed.size,
    expired: indexed.expired,
    unindexed: indexed.unindexed,
    evaluate(f, now) {
      const hits = indexed.evaluate(f, now);
      assert.deepEqual(linear.evaluate(f, now), hits, 'the linear engine disagrees with the index');
      return hits;
    },
    evaluateUrl(u, now) {
      const hits = indexed.evaluateUrl(u, now);
      assert.deepEqual(linear.evaluateUrl(u, now), hits, 'the linear engine disagrees with the index');
      return hits;
    },
  };
}

function one(condition: Condition, extra: Record<string, unknown> = {}): CompiledRules {
  return compile([rawRule('OUTBREAK_T', condition, extra)]);
}

function errorsOf(json: unknown): string[] {
  const r = parseBundle(json);
  assert.ok('errors' in r, 'the bundle was expected to be invalid');
  return r.errors;
}

function attachment(name: string, over: Partial<AttachmentInfo> = {}): AttachmentInfo {
  const dot = name.lastIndexOf('.');
  return {
    partPath: '1.2',
    name,
    extension: dot >= 0 ? name.slice(dot + 1).toLowerCase() : '',
    declaredType: 'application/octet-stream',
    trueType: null,
    size: 1000,
    sha256: sha(name),
    isArchive: false,
    members: [],
    encrypted: false,
    ...over,
  };
}

function member(name: string, over: Partial<ArchiveMember> = {}): ArchiveMember {
  const base = name.slice(name.lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  return {
    name,
    extension: dot >= 0 ? base.slice(dot + 1).toLowerCase() : '',
    size: 500,
    compressedSize: 200,
    trueType: null,
    sha256: sha(name),
    encrypted: false,
    depth: 1,
    ...over,
  };
}

function url(u: string): ExtractedUrl {
  const host = urlHost(u)!;
  return { url: u, host, domain: registrableDomain(host), source: 'text', anchorText: null };
}

function facts(over: Partial<ParsedMessage> = {}, env: { sender?: string; av?: number | null } = {}): MessageFacts {
  const parsed: ParsedMessage = {
    size: 1000,
    headers: [],
    from: null,
    subject: null,
    messageId: null,
    parts: [],
    attachments: [],
    urls: [],
    text: '',
    html: '',
    anomalies: [],
    ...over,
  };
  return { parsed, sender: env.sender ?? '', avSignatureVersion: env.av ?? null };
}

const ids = (rules: CompiledRules, f: MessageFacts, now?: number): string[] => rules.evaluate(f, now).map((h) => h.id);
const matches = (rules: CompiledRules, f: MessageFacts): boolean => rules.evaluate(f).length > 0;

// ---------------------------------------------------------------------------------------------------------------
// leaves

test('attachment extension matches case-insensitively, with or without the dot, and reports a viral hit', () => {
  const rules = one({ attachment: { extension: ['EXE', '.scr'] } }, { level: 4, category: 'virus' });
  const hits = rules.evaluate(facts({ attachments: [attachment('Invoice.EXE')] }));
  assert.deepEqual(hits, [
    {
      id: 'OUTBREAK_T',
      level: 4,
      category: 'virus',
      type: 'attachment',
      description: 'rule OUTBREAK_T',
      viral: true,
      adaptive: false,
      evidence: 'Invoice.EXE',
    },
  ]);
  assert.ok(matches(rules, facts({ attachments: [attachment('x.scr')] })));
  assert.ok(!matches(rules, facts({ attachments: [attachment('x.exe.pdf')] })));
  assert.ok(!matches(rules, facts()));
});

test('attachment true type matches exactly or by major type, and an unknown type never matches', () => {
  const exact = one({ attachment: { trueType: ['application/x-msdownload'] } });
  const major = one({ attachment: { trueType: ['image/*'] } });
  const exe = attachment('a.pdf', { trueType: 'application/x-msdownload' });
  const png = attachment('a.dat', { trueType: 'image/png' });
  const unknown = attachment('a.bin', { trueType: null });
  assert.ok(matches(exact, facts({ attachments: [exe] })));
  assert.ok(!matches(exact, facts({ attachments: [png] })));
  assert.ok(matches(major, facts({ attachments: [png] })));
  assert.ok(!matches(major, facts({ attachments: [exe] })));
  assert.ok(!matches(major, facts({ attachments: [unknown] })));
  // the declared type is not the true type
  assert.ok(
    !matches(exact, facts({ attachments: [attachment('b.exe', { declaredType: 'application/x-msdownload' })] })),
  );
});

test('file name globs are anchored and case-insensitive; names without wildcards match as substrings', () => {
  const glob = one({ attachment: { name: ['*.PDF.exe', 'scan_????.zip'] } });
  assert.ok(matches(glob, facts({ attachments: [attachment('Invoice.pdf.EXE')] })));
  assert.ok(matches(glob, facts({ attachments: [attachment('SCAN_2024.zip')] })));
  assert.ok(!matches(glob, facts({ attachments: [attachment('scan_12345.zip')] })), '? is exactly one character');
  assert.ok(!matches(glob, facts({ attachments: [attachment('invoice.pdf.exe.txt')] })), 'anchored at the end');
  const sub = one({ attachment: { name: ['Rechnung'] } });
  assert.ok(matches(sub, facts({ attachments: [attachment('Ihre_RECHNUNG_2024.doc')] })));
  assert.ok(!matches(sub, facts({ attachments: [attachment('invoice.doc')] })));
});

test('a name glob is tested against the base name of an archive member, a substring against the whole path', () => {
  const glob = one({ member: { name: ['invoice*.exe'] } });
  const sub = one({ member: { name: ['payload/'] } });
  const f = facts({ attachments: [attachment('a.zip', { members: [member('payload/Invoice_7.exe')] })] });
  assert.ok(matches(glob, f));
  assert.ok(matches(sub, f));
});

test('attachment size range is inclusive and either bound may be left out', () => {
  const range = one({ attachment: { size: { min: 100, max: 200 } } });
  const atLeast = one({ attachment: { size: { min: 1_000_000 } } });
  const sized = (size: number) => facts({ attachments: [attachment('a.bin', { size })] });
  assert.deepEqual(
    [99, 100, 200, 201].map((s) => matches(range, sized(s))),
    [false, true, true, false],
  );
  assert.ok(matches(atLeast, sized(5_000_000)));
  assert.ok(!matches(atLeast, sized(999_999)));
});

test('attachment sha256 matches whatever the case of the hex digits in the rule', () => {
  const h = sha('evil');
  const rules = one({ attachment: { sha256: [h.toUpperCase()] } });
  assert.ok(matches(rules, facts({ attachments: [attachment('x.doc', { sha256: h })] })));
  assert.ok(!matches(rules, facts({ attachments: [attachment('x.doc', { sha256: sha('good') })] })));
});

test('an attachment leaf with several keys needs one attachment that satisfies all of them', () => {
  const rules = one({ attachment: { extension: ['exe'], size: { min: 10_000 } } });
  const small = attachment('tool.exe', { size: 100 });
  const big = attachment('report.pdf', { size: 50_000 });
  assert.ok(!matches(rules, facts({ attachments: [small, big] })));
  assert.ok(matches(rules, facts({ attachments: [small, attachment('big.exe', { size: 50_000 })] })));
});

test('member leaves look inside archives with the same facts; attachment leaves do not', () => {
  const exeSha = sha('payload');
  const zip = attachment('Docs.ZIP', {
    isArchive: true,
    trueType: 'application/zip',
    members: [
      member('readme.txt', { trueType: 'text/plain' }),
      member('bin/Payload.EXE', { trueType: 'application/x-msdownload', sha256: exeSha, depth: 2 }),
    ],
  });
  const f = facts({ attachments: [zip] });
  for (const leaf of [
    { extension: ['exe'] },
    { trueType: ['application/x-msdownload'] },
    { name: ['payload.*'] },
    { sha256: [exeSha] },
    { extension: ['exe'], size: { max: 500 } },
  ]) {
    const hits = one({ member: leaf }).evaluate(f);
    assert.equal(hits.length, 1, JSON.stringify(leaf));
    assert.equal(hits[0].viral, true);
    assert.equal(hits[0].evidence, 'Docs.ZIP/bin/Payload.EXE');
  }
  assert.ok(!matches(one({ attachment: { extension: ['exe'] } }), f));
  assert.ok(!matches(one({ member: { extension: ['zip'] } }), f), 'the archive itself is not a member');
  assert.ok(!matches(one({ member: { sha256: [sha('other')] } }), f));
});

test('a member without a hash never matches a sha256 leaf', () => {
  const f = facts({ attachments: [attachment('a.gz', { members: [member('a', { sha256: null })] })] });
  assert.ok(!matches(one({ member: { sha256: [sha('a')] } }), f));
});

test('URL host: exact, or with a leading dot that host and its subdomains, never a look-alike suffix', () => {
  const exact = one({ url: { host: ['evil.com'] } });
  const suffix = one({ url: { host: ['.Evil.Com'] } });
  const on = (u: string) => facts({ urls: [url(u)] });
  assert.ok(matches(exact, on('https://EVIL.com/x')));
  assert.ok(!matches(exact, on('https://www.evil.com/x')));
  assert.ok(matches(suffix, on('http://evil.com')));
  assert.ok(matches(suffix, on('http://a.b.evil.com:8080/')));
  assert.ok(!matches(suffix, on('http://notevil.com/')));
  assert.ok(!matches(suffix, on('http://evil.com.example/')));
  assert.ok(matches(exact, on('https://evil.com./trailing-dot')));
});

test('URL hosts in Unicode and in punycode are the same host', () => {
  const unicodeRule = one({ url: { host: ['bücher.com'] } });
  const punyRule = one({ url: { host: ['xn--bcher-kva.com'] } });
  assert.ok(matches(unicodeRule, facts({ urls: [url('https://xn--bcher-kva.com/')] })));
  assert.ok(matches(punyRule, facts({ urls: [url('https://bücher.com/')] })));
});

test('URL registrable domain matches the public suffix + 1 of any host under it', () => {
  const rules = one({ url: { domain: ['evil.co.uk'] } });
  assert.ok(matches(rules, facts({ urls: [url('https://login.secure.evil.co.uk/a')] })));
  assert.ok(!matches(rules, facts({ urls: [url('https://evil.co.uk.attacker.example/')] })));
});

test('URL path glob ignores the query and treats ? literally; the full URL matches exactly or by glob', () => {
  const path = one({ url: { path: ['/wp-admin/*.php'] } });
  assert.ok(matches(path, facts({ urls: [url('https://x.com/WP-Admin/install.php?step=2')] })));
  assert.ok(!matches(path, facts({ urls: [url('https://x.com/wp-admin/install.phpx')] })));
  assert.ok(!matches(path, facts({ urls: [url('https://x.com/?/wp-admin/a.php')] })), 'the query is not the path');
  const root = one({ url: { path: ['/'] } });
  assert.ok(matches(root, facts({ urls: [url('https://x.com')] })), 'a URL without a path has path "/"');

  const exact = one({ url: { url: ['https://x.com/login?id=1'] } });
  assert.ok(matches(exact, facts({ urls: [url('HTTPS://X.COM/LOGIN?ID=1')] })));
  assert.ok(!matches(exact, facts({ urls: [url('https://x.com/loginXid=1')] })), '? is not a wildcard in URLs');
  const glob = one({ url: { url: ['https://*.x.com/*/verify*'] } });
  assert.ok(matches(glob, facts({ urls: [url('https://a.x.com/acct/verify?u=1')] })));
  assert.ok(!matches(glob, facts({ urls: [url('https://x.com/acct/verify')] })));
});

test('a URL leaf with several keys needs one URL that satisfies all of them', () => {
  const rules = one({ url: { domain: ['evil.com'], path: ['/login'] } });
  assert.ok(!matches(rules, facts({ urls: [url('https://evil.com/home'), url('https://good.com/login')] })));
  assert.ok(matches(rules, facts({ urls: [url('https://good.com/'), url('https://www.evil.com/login')] })));
});

test('sender: full address, domain with or without @ exactly, and .domain with its subdomains', () => {
  const address = one({ sender: ['Bad@Evil.Com'] });
  const domain = one({ sender: ['@evil.com'] });
  const bare = one({ sender: ['evil.com'] });
  const wildcard = one({ sender: ['.evil.com'] });
  const from = (s: string) => facts({}, { sender: s });
  assert.ok(matches(address, from('bad@evil.com')));
  assert.ok(!matches(address, from('good@evil.com')));
  for (const r of [domain, bare]) {
    assert.ok(matches(r, from('anyone@evil.com')));
    assert.ok(!matches(r, from('anyone@mail.evil.com')));
  }
  assert.ok(matches(wildcard, from('anyone@evil.com')));
  assert.ok(matches(wildcard, from('anyone@mail.evil.com')));
  assert.ok(!matches(wildcard, from('anyone@notevil.com')));
  assert.ok(!matches(domain, from('')), 'the null sender has no domain');
  const hit = address.evaluate(from('bad@evil.com'))[0];
  assert.equal(hit.type, 'sender');
  assert.equal(hit.viral, false);
  assert.equal(hit.evidence, 'bad@evil.com');
});

test('sender leaves also look at the header From address', () => {
  const rules = one({ sender: ['.evil.com'] });
  const f = facts({ from: '"Your Bank" <Service@Secure.Evil.Com>' }, { sender: 'bounce@relay.com' });
  assert.deepEqual(
    rules.evaluate(f).map((h) => h.evidence),
    ['service@secure.evil.com'],
  );
  assert.ok(!matches(rules, facts({ from: 'Evil Test <someone@good.com>' }, { sender: 'x@good.com' })));
});

test('subject and body phrases are case-insensitive and white space runs match any white space', () => {
  const subject = one({ subject: ['Verify  your ACCOUNT'] });
  assert.ok(matches(subject, facts({ subject: 'Action needed: verify\tyour\n account now' })));
  assert.ok(!matches(subject, facts({ subject: 'verify the account' })));
  assert.ok(!matches(subject, facts({ text: 'verify your account' })), 'the subject leaf does not read the body');
  const body = one({ body: ['wire transfer', 'gift card'] });
  assert.ok(matches(body, facts({ text: 'Please buy a GIFT\r\nCARD today' })));
  assert.ok(matches(body, facts({ html: '<p>urgent WIRE TRANSFER needed</p>' })));
  assert.ok(!matches(body, facts({ text: 'a wire', html: 'transfer' })), 'a phrase does not span text and html');
  const hit = body.evaluate(facts({ text: 'gift card' }))[0];
  assert.equal(hit.type, 'content');
  assert.equal(hit.evidence, 'gift card');
});

test('phrases fold non-ASCII case and Unicode white space, and overlapping phrases are all found', () => {
  const rules = compile([
    rawRule('OUTBREAK_DE', { body: ['Überweisung  sofort'] }),
    rawRule('OUTBREAK_HE', { body: ['he'] }),
    rawRule('OUTBREAK_SHE', { body: ['she'] }),
    rawRule('OUTBREAK_HERS', { body: ['hers'] }),
    rawRule('OUTBREAK_US', { body: ['ushers x'] }),
  ]);
  assert.deepEqual(ids(rules, facts({ text: 'Bitte ÜBERWEISUNG\u00a0\u2003 SOFORT' })), ['OUTBREAK_DE']);
  assert.deepEqual(ids(rules, facts({ text: 'ushers' })), ['OUTBREAK_HE', 'OUTBREAK_SHE', 'OUTBREAK_HERS']);
  assert.deepEqual(ids(rules, facts({ html: 'USHERS\n\n X' })), [
    'OUTBREAK_HE',
    'OUTBREAK_SHE',
    'OUTBREAK_HERS',
    'OUTBREAK_US',
  ]);
});

test('the phrase automaton finds the same phrases with its dense table and with its map fallback', () => {
  const rand = rng(11);
  const alphabet = 'abcé É\t';
  const text = (n: number) => Array.from({ length: n }, () => alphabet[Math.floor(rand() * alphabet.length)]).join('');
  const phrases = [
    ...new Set(
      Array.from({ length: 200 }, () =>
        text(1 + Math.floor(rand() * 5))
          .toLowerCase()
          .replace(/\s+/g, ' ')
          .trim(),
      ),
    ),
  ].filter(Boolean);
  const dense = new PhraseAutomaton(phrases);
  const sparse = new PhraseAutomaton(phrases, 0);
  for (let i = 0; i < 200; i++) {
    const t = text(200);
    const a = new Set<number>();
    const b = new Set<number>();
    dense.scan(t, a);
    sparse.scan(t, b);
    const norm = t.toLowerCase().replace(/\s+/g, ' ');
    const expected = phrases.flatMap((p, id) => (norm.includes(p) ? [id] : []));
    assert.deepEqual(
      [...a].sort((x, y) => x - y),
      expected,
    );
    assert.deepEqual(
      [...b].sort((x, y) => x - y),
      expected,
    );
  }
});

test('anti-virus signature version older than N: unknown never matches, equal does not match', () => {
  const rules = one({ all: [{ avSignatureOlderThan: 27500 }, { attachment: { extension: ['exe'] } }] });
  const exe = { attachments: [attachment('a.exe')] };
  assert.ok(matches(rules, facts(exe, { av: 27499 })));
  assert.ok(!matches(rules, facts(exe, { av: 27500 })));
  assert.ok(!matches(rules, facts(exe, { av: null })));
});

// ---------------------------------------------------------------------------------------------------------------
// combinators, evidence, types, expiry

test('all, any and not combine leaves', () => {
  const rules = one({
    all: [
      { any: [{ attachment: { extension: ['zip'] } }, { attachment: { extension: ['rar'] } }] },
      { not: { sender: ['.trusted.com'] } },
      { subject: ['invoice'] },
    ],
  });
  const zip = [attachment('a.zip')];
  assert.ok(matches(rules, facts({ attachments: zip, subject: 'Invoice 42' }, { sender: 'x@evil.com' })));
  assert.ok(!matches(rules, facts({ attachments: zip, subject: 'Invoice 42' }, { sender: 'x@mail.trusted.com' })));
  assert.ok(!matches(rules, facts({ attachments: zip, subject: 'hello' }, { sender: 'x@evil.com' })));
  assert.ok(matches(rules, facts({ attachments: [attachment('b.RAR')], subject: 'invoice' })));
  assert.ok(!matches(rules, facts({ attachments: [attachment('b.7z')], subject: 'invoice' })));
});

test('viral is set only when an attachment or member leaf took part in the match', () => {
  const rules = one({ any: [{ attachment: { extension: ['exe'] } }, { url: { domain: ['evil.com'] } }] });
  const viaUrl = rules.evaluate(facts({ urls: [url('https://evil.com/')], attachments: [attachment('a.pdf')] }));
  assert.equal(viaUrl[0].viral, false);
  assert.equal(viaUrl[0].evidence, 'https://evil.com/');
  const viaFile = rules.evaluate(facts({ attachments: [attachment('a.exe')] }));
  assert.equal(viaFile[0].viral, true);
  // an attachment that only made a `not` true is not evidence
  const negated = one({ all: [{ url: { domain: ['evil.com'] } }, { not: { attachment: { extension: ['pdf'] } } }] });
  const hit = negated.evaluate(facts({ urls: [url('https://evil.com/')], attachments: [attachment('a.exe')] }))[0];
  assert.equal(hit.viral, false);
});

test('a branch that failed leaves no evidence behind, so it cannot make a hit viral', () => {
  const rules = one({
    any: [{ all: [{ attachment: { extension: ['exe'] } }, { url: { domain: ['evil.com'] } }] }, { subject: ['promo'] }],
  });
  const hits = rules.evaluate(facts({ attachments: [attachment('a.exe')], subject: 'PROMO' }));
  assert.equal(hits.length, 1);
  assert.equal(hits[0].viral, false);
  assert.equal(hits[0].evidence, 'promo');
});

test('evidence prefers the kind of the rule type and is truncated to 200 characters', () => {
  const rules = one({ all: [{ subject: ['payment'] }, { url: { domain: ['evil.com'] } }] });
  const long = 'https://evil.com/' + 'a'.repeat(400);
  const hit = rules.evaluate(facts({ subject: 'payment', urls: [url(long)] }))[0];
  assert.equal(hit.type, 'url');
  assert.equal(hit.evidence!.length, RULE_LIMITS.maxEvidence);
  assert.ok(long.startsWith(hit.evidence!.slice(0, -1)));
});

test('the rule type is inferred from the conditions when absent, and an explicit type wins', () => {
  assert.equal(inferRuleType({ all: [{ body: ['x'] }, { member: { extension: ['exe'] } }] }), 'attachment');
  assert.equal(inferRuleType({ all: [{ subject: ['x'] }, { url: { domain: ['a.com'] } }] }), 'url');
  assert.equal(inferRuleType({ any: [{ subject: ['x'] }, { sender: ['a.com'] }] }), 'sender');
  assert.equal(inferRuleType({ all: [{ body: ['x'] }, { not: { attachment: { extension: ['exe'] } } }] }), 'content');
  const typed = one({ url: { domain: ['evil.com'] } }, { type: 'content' });
  assert.equal(typed.evaluate(facts({ urls: [url('https://evil.com')] }))[0].type, 'content');
});

test('expired rules never match: left out at compile time, skipped once they expire later', () => {
  const t0 = Date.parse('2025-06-01T00:00:00Z');
  const cond = { subject: ['promo'] };
  const rules = compile(
    [
      rawRule('OUTBREAK_OLD', cond, { expires: '2025-05-01T00:00:00Z' }),
      rawRule('OUTBREAK_SOON', cond, { expires: '2025-06-01T01:00:00Z' }),
      rawRule('OUTBREAK_KEEP', cond),
    ],
    { now: t0 },
  );
  assert.equal(rules.size, 2);
  assert.equal(rules.expired, 1);
  const f = facts({ subject: 'PROMO' });
  assert.deepEqual(ids(rules, f, t0), ['OUTBREAK_SOON', 'OUTBREAK_KEEP']);
  assert.deepEqual(ids(rules, f, t0 + 3_600_000), ['OUTBREAK_KEEP'], 'expires is exclusive');
});

test('hits come in bundle order and maxLevel is the highest level or 0', () => {
  const rules = compile([
    rawRule('OUTBREAK_B', { subject: ['x'] }, { level: 2 }),
    rawRule('OUTBREAK_A', { body: ['y'] }, { level: 5 }),
    rawRule('OUTBREAK_C', { subject: ['nomatch'] }, { level: 4 }),
  ]);
  const hits = rules.evaluate(facts({ subject: 'x', text: 'y' }));
  assert.deepEqual(
    hits.map((h) => h.id),
    ['OUTBREAK_B', 'OUTBREAK_A'],
  );
  assert.equal(maxLevel(hits), 5);
  assert.equal(maxLevel([]), 0);
});

test('evaluateUrl judges one URL alone: URL rules match, rules needing anything else do not', () => {
  const rules = compile([
    rawRule('OUTBREAK_URL', { url: { host: ['.evil.com'] } }, { level: 4, category: 'phish' }),
    rawRule('OUTBREAK_URL_AND_TEXT', { all: [{ url: { domain: ['evil.com'] } }, { body: ['password'] }] }),
    rawRule('OUTBREAK_URL_NOT_SENDER', { all: [{ url: { path: ['/login'] } }, { not: { sender: ['good.com'] } }] }),
    rawRule('OUTBREAK_FILE', { attachment: { extension: ['exe'] } }),
  ]);
  assert.deepEqual(
    rules.evaluateUrl('https://x.evil.com/login').map((h) => [h.id, h.type, h.viral]),
    [
      ['OUTBREAK_URL', 'url', false],
      ['OUTBREAK_URL_NOT_SENDER', 'url', false],
    ],
  );
  assert.deepEqual(rules.evaluateUrl('https://good.com/'), []);
  assert.deepEqual(rules.evaluateUrl('mailto:a@evil.com'), [], 'only http(s) URLs have a host');
  const f = urlFacts('https://A.Evil.com/x');
  assert.deepEqual(f.parsed.urls, [
    { url: 'https://A.Evil.com/x', host: 'a.evil.com', domain: 'evil.com', source: 'text', anchorText: null },
  ]);
  assert.equal(f.sender, '');
  assert.equal(f.avSignatureVersion, null);
});

test('evaluateUrl returns a fresh array each time (callers append adaptive hits to it)', () => {
  const rules = one({ url: { host: ['evil.com'] } });
  const a = rules.evaluateUrl('https://evil.com/');
  a.push(a[0]);
  assert.equal(rules.evaluateUrl('https://evil.com/').length, 1);
});

// ---------------------------------------------------------------------------------------------------------------
// globs

test('globMatch handles runs of stars and hostile input in linear-ish time', () => {
  assert.ok(globMatch('a*b*c', 'axxbyyc', true));
  assert.ok(globMatch('*', '', true));
  assert.ok(!globMatch('?', '', true));
  assert.ok(globMatch('a?c', 'abc', true));
  assert.ok(!globMatch('a?c', 'abc', false));
  assert.ok(globMatch('a?c', 'a?c', false));
  const start = performance.now();
  assert.ok(!globMatch('*a*a*a*a*a*a*a*a*b', 'a'.repeat(8000), true));
  assert.ok(performance.now() - start < 1000);
});

// ---------------------------------------------------------------------------------------------------------------
// the index gives the same answers as checking every rule

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

test('the indexed engine finds exactly the rules a linear check of every rule finds', () => {
  const rand = rng(7);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const exts = ['exe', 'scr', 'zip', 'pdf', 'docm', 'js', 'iso', 'txt'];
  const types = ['application/x-msdownload', 'application/zip', 'application/pdf', 'text/plain', 'image/png'];
  const hosts = ['evil.com', 'a.evil.com', 'b.a.evil.com', 'good.com', 'cdn.good.com', 'phish.co.uk'];
  const phrases = ['invoice', 'verify your account', 'gift card', 'urgent', 'password', 'wire'];
  const senders = ['a@evil.com', 'b@mail.evil.com', 'c@good.com', ''];
  const leaf = (): Condition => {
    switch (Math.floor(rand() * 9)) {
      case 0:
        return { attachment: { extension: [pick(exts), pick(exts)] } };
      case 1:
        return { attachment: { trueType: [rand() < 0.5 ? pick(types) : pick(types).replace(/\/.*/, '/*')] } };
      case 2:
        return { member: { name: [pick(['*.exe', 'invoice', '*.pdf.*', 'a?.js'])] } };
      case 3:
        return { url: { host: [rand() < 0.5 ? pick(hosts) : '.' + pick(hosts)] } };
      case 4:
        return { url: rand() < 0.5 ? { domain: [pick(hosts)] } : { path: [pick(['/login*', '/', '*.php'])] } };
      case 5:
        return { sender: [pick(['evil.com', '.evil.com', 'c@good.com', '@good.com'])] };
      case 6:
        return { subject: [pick(phrases)] };
      case 7:
        return { body: [pick(phrases), pick(phrases)] };
      default:
        return { avSignatureOlderThan: 100 };
    }
  };
  const cond = (depth: number): Condition => {
    const r = rand();
    if (depth > 2 || r < 0.5) return leaf();
    if (r < 0.7) return { all: [cond(depth + 1), cond(depth + 1)] };
    if (r < 0.9) return { any: [cond(depth + 1), cond(depth + 1), cond(depth + 1)] };
    return { all: [leaf(), { not: cond(depth + 1) }] };
  };
  const raw = Array.from({ length: 400 }, (_, i) => rawRule(`OUTBREAK_${i}`, cond(0)));
  // random trees can be "matches everything" trees, which the schema refuses; keep the valid ones
  const valid: Rule[] = [];
  for (const r of raw) {
    const one = parseBundle({ version: 1, published: PUBLISHED, rules: [r] });
    if ('bundle' in one) valid.push(one.bundle.rules[0]);
  }
  assert.ok(valid.length > 300);
  const indexed = compileRules(valid);
  const linear = compileRules(valid, { index: false });
  assert.ok(indexed.unindexed < valid.length / 4, `${indexed.unindexed} rules left unindexed`);
  assert.equal(linear.unindexed, valid.length);

  let total = 0;
  for (let m = 0; m < 300; m++) {
    const f = facts(
      {
        subject: rand() < 0.5 ? `Re: ${pick(phrases)} ${pick(phrases)}` : 'hello',
        text: Array.from({ length: 3 }, () => pick(phrases)).join(' lorem '),
        html: rand() < 0.3 ? `<b>${pick(phrases)}</b>` : '',
        attachments: Array.from({ length: Math.floor(rand() * 3) }, () =>
          attachment(`f${Math.floor(rand() * 9)}.${pick(exts)}`, {
            trueType: rand() < 0.8 ? pick(types) : null,
            members: rand() < 0.4 ? [member(pick(['invoice.pdf.exe', 'a1.js', 'x/readme.txt', 'run.exe']))] : [],
          }),
        ),
        urls: Array.from({ length: Math.floor(rand() * 3) }, () =>
          url(`https://${pick(hosts)}${pick(['/', '/login.php', '/a/b', '/login'])}`),
        ),
        from: rand() < 0.3 ? `X <${pick(senders) || 'z@z.com'}>` : null,
      },
      { sender: pick(senders), av: rand() < 0.5 ? null : Math.floor(rand() * 200) },
    );
    const a = indexed.evaluate(f);
    assert.deepEqual(a, linear.evaluate(f), `message ${m}`);
    total += a.length;
  }
  assert.ok(total > 300, `only ${total} hits: the generated messages should trigger many rules`);
});

// ---------------------------------------------------------------------------------------------------------------
// schema

test('parseBundle reports every error with its path', () => {
  const errors = errorsOf({
    version: 0,
    published: 'yesterday',
    rules: [
      rawRule('OUTBREAK_1', { url: { host: ['.evil.com'] } }),
      {
        id: 'bad id',
        level: 6,
        category: 'worm',
        description: '',
        published: PUBLISHED,
        expires: '2024-01-01T00:00:00Z',
        condition: {
          all: [
            { attachment: { extension: ['exe'], size: { min: 10, max: 5 }, sha256: ['abc'] } },
            { url: {} },
            { sender: ['not an address'] },
            { subject: [] },
            { attachment: { extension: ['exe'] }, url: { host: ['a.com'] } },
            { colour: 'red' },
          ],
        },
      },
      rawRule('OUTBREAK_1', { body: ['x'] }),
    ],
  });
  const expected = [
    'version:',
    'published:',
    'rules[1].id:',
    'rules[1].level:',
    'rules[1].category:',
    'rules[1].description:',
    'rules[1].expires: expires must be after published',
    'rules[1].condition.all[0].attachment.size: min is larger than max',
    'rules[1].condition.all[0].attachment.sha256[0]:',
    'rules[1].condition.all[1].url: needs at least one of host, domain, path, url',
    'rules[1].condition.all[2].sender[0]:',
    'rules[1].condition.all[3].subject: needs at least one entry',
    'rules[1].condition.all[4]: a condition needs exactly one of',
    'rules[1].condition.all[5]: a condition needs exactly one of',
    'rules[2].id: duplicate rule id OUTBREAK_1 (first at rules[0])',
  ];
  for (const prefix of expected) {
    assert.ok(
      errors.some((e) => e.startsWith(prefix)),
      `no error starting with "${prefix}" in:\n${errors.join('\n')}`,
    );
  }
});

test('a condition that would match an empty message is refused', () => {
  const errors = errorsOf({
    version: 1,
    published: PUBLISHED,
    rules: [
      rawRule('OUTBREAK_NOT', { not: { attachment: { extension: ['pdf'] } } }),
      rawRule('OUTBREAK_ANY', { any: [{ subject: ['x'] }, { not: { body: ['y'] } }] }),
      rawRule('OUTBREAK_OK', { all: [{ subject: ['x'] }, { not: { body: ['y'] } }] }),
    ],
  });
  assert.deepEqual(
    errors.map((e) => e.slice(0, e.indexOf(':'))),
    ['rules[0].condition', 'rules[1].condition'],
  );
});

test('bounds: depth, leaf count, list length and glob length are enforced with clear errors', () => {
  let deep: Condition = { subject: ['x'] };
  for (let i = 0; i < RULE_LIMITS.maxDepth; i++) deep = { all: [deep] };
  const leaves = { any: Array.from({ length: RULE_LIMITS.maxLeaves + 1 }, (_, i) => ({ subject: [`p${i}`] })) };
  const longList = { attachment: { sha256: Array.from({ length: RULE_LIMITS.maxList + 1 }, () => sha('x')) } };
  const longGlob = { attachment: { name: ['*' + 'a'.repeat(RULE_LIMITS.maxGlob)] } };
  const errors = errorsOf({
    version: 1,
    published: PUBLISHED,
    rules: [
      rawRule('OUTBREAK_DEEP', deep),
      rawRule('OUTBREAK_LEAVES', leaves),
      rawRule('OUTBREAK_LIST', longList),
      rawRule('OUTBREAK_GLOB', longGlob),
    ],
  });
  assert.ok(errors.some((e) => /^rules\[0\]\.condition(\.all\[0\])+: conditions nest at most 16 levels deep$/.test(e)));
  assert.ok(errors.includes('rules[1].condition: a condition has at most 256 leaves (found 257)'));
  assert.ok(errors.includes('rules[2].condition.attachment.sha256: at most 10000 entries'));
  assert.ok(errors.includes('rules[3].condition.attachment.name[0]: at most 512 characters'));

  let fits: Condition = { subject: ['x'] };
  for (let i = 0; i < RULE_LIMITS.maxDepth - 1; i++) fits = { all: [fits] };
  assert.ok('bundle' in parseBundle({ version: 1, published: PUBLISHED, rules: [rawRule('OUTBREAK_FITS', fits)] }));
});

test('hostile nesting is refused without exhausting the stack', () => {
  let deep: unknown = { subject: ['x'] };
  for (let i = 0; i < 200_000; i++) deep = { not: deep };
  const errors = errorsOf({ version: 1, published: PUBLISHED, rules: [rawRule('OUTBREAK_DEEP', deep)] });
  assert.equal(errors.length, 1);
  assert.match(errors[0], /conditions nest at most 16 levels deep/);
});

test('unknown keys of rules and bundles are warnings; unknown keys in conditions are errors', () => {
  const r = parseBundle({
    version: 1,
    published: PUBLISHED,
    channel: 'beta',
    rules: [rawRule('OUTBREAK_1', { subject: ['x'] }, { references: ['CVE-1'] })],
  });
  assert.ok('bundle' in r);
  assert.deepEqual(r.warnings, ['channel: unknown key, ignored', 'rules[0].references: unknown key, ignored']);
  const errors = errorsOf({
    version: 1,
    published: PUBLISHED,
    rules: [rawRule('OUTBREAK_1', { url: { host: ['a.com'], hostname: ['b.com'] } })],
  });
  assert.deepEqual(errors, ['rules[0].condition.url: Unrecognized key: "hostname"']);
});

test('a bundle that is not an object is an error at the root', () => {
  assert.deepEqual(errorsOf([]).length, 1);
  assert.match(errorsOf(null)[0], /^\(bundle\): /);
});

// ---------------------------------------------------------------------------------------------------------------
// real parsed messages

function peStub(): Buffer {
  const buf = Buffer.alloc(1024);
  buf.write('MZ', 0, 'latin1');
  buf.writeUInt32LE(0x80, 0x3c);
  buf.write('This program cannot be run in DOS mode.', 0x4e, 'latin1');
  buf.write('PE\0\0', 0x80, 'latin1');
  buf.writeUInt16LE(0x14c, 0x84);
  return buf;
}

test('rules match a message parsed from MIME: zip member, URL, subject and sender', async () => {
  const exe = peStub();
  const zip = Buffer.from(zipSync({ 'docs/Invoice.pdf.exe': exe, 'readme.txt': Buffer.from('hello') }));
  const raw = await new MailComposer({
    from: 'Accounts <billing@pay.evil.com>',
    to: 'victim@example.org',
    subject: 'Your INVOICE is overdue',
    text: 'Pay now at https://login.evil.com/pay?id=1 or call us.',
    html: '<p>Pay now at <a href="https://login.evil.com/pay?id=1">our portal</a></p>',
    attachments: [{ filename: 'invoice.zip', content: zip }],
  })
    .compile()
    .build();
  const parsed = await parseMessage(raw);
  const rules = compile([
    rawRule('OUTBREAK_MEMBER', { member: { name: ['*.pdf.exe'], trueType: ['application/x-msdownload'] } }),
    rawRule('OUTBREAK_MEMBER_HASH', { member: { sha256: [createHash('sha256').update(exe).digest('hex')] } }),
    rawRule('OUTBREAK_URL', { url: { domain: ['evil.com'], path: ['/pay'] } }),
    rawRule('OUTBREAK_SUBJECT', {
      all: [{ subject: ['invoice is overdue'] }, { attachment: { trueType: ['application/zip'] } }],
    }),
    rawRule('OUTBREAK_FROM', { sender: ['.evil.com'] }),
    rawRule('OUTBREAK_MISS', { attachment: { extension: ['exe'] } }),
  ]);
  const hits = rules.evaluate({ parsed, sender: 'bounce@relay.com', avSignatureVersion: null });
  assert.deepEqual(
    hits.map((h) => [h.id, h.viral, h.evidence]),
    [
      ['OUTBREAK_MEMBER', true, 'invoice.zip/docs/Invoice.pdf.exe'],
      ['OUTBREAK_MEMBER_HASH', true, 'invoice.zip/docs/Invoice.pdf.exe'],
      ['OUTBREAK_URL', false, 'https://login.evil.com/pay?id=1'],
      // the attachment leaf makes it an attachment rule, so the attachment is the evidence shown
      ['OUTBREAK_SUBJECT', true, 'invoice.zip'],
      ['OUTBREAK_FROM', false, 'billing@pay.evil.com'],
    ],
  );
});
