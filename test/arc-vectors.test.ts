// The ARC validation vectors of the ARC specification's authors (issue 15; RFC 8617 interoperability
// suite, test/fixtures/arc/), every scenario through our verifySender with the scenario's key records
// served by a real DNS server (dnsmasq, test/helpers/dns.ts). Our `arc` result must be the suite's cv=,
// except for the deviations listed below with their reasons; those must give exactly the listed
// result, so that a change in mailauth (a fix, or a new deviation) shows up here either way.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import YAML, { isMap, isScalar } from 'yaml';
import { hasDnsmasq, startDns, type DnsRecords, type TestDns } from './helpers/dns.ts';
import { AuthResolver } from '../src/senderauth/resolver.ts';
import { verifySender, type AuthResultKeyword } from '../src/senderauth/verify.ts';

const skip = hasDnsmasq() ? false : 'dnsmasq not installed (.ci/run)';

const FIXTURE = path.resolve(import.meta.dirname, 'fixtures/arc/arc-draft-validation-tests.yml');
// the configuration's default senderAuth.minKeyBits (RFC 8301 §3.2)
const MIN_KEY_BITS = 1024;

type Cv = 'pass' | 'fail' | 'none';

interface Deviation {
  /** what we answer instead of the suite's cv= */
  ours: Cv;
  why: string;
  /** rfc: the suite predates RFC 8617 and we follow the RFC; lenient: mailauth's lenient mode, the suite is right */
  kind: 'rfc' | 'lenient';
}

const DRAFT_EMPTY_CV =
  'the suite expects an empty cv (its draft-era reference gave no verdict); RFC 8617 §5.2 steps 2 and 3: a chain with a cv=fail seal fails';
const RSA_SHA1 =
  'rsa-sha1, which the draft-era suite expects to pass: RFC 8301 §3.1 forbids verifying it and RFC 8617 §4.1.3 defines only rsa-sha256';
const LENIENT_TAGS =
  "mailauth's lenient mode (the one verifySender uses) accepts this ARC-Seal tag-list syntax error with an arc-tag-syntax warning; its strict mode fails it as the suite expects";

/** Every scenario whose result differs from the suite's cv=, and why. */
const DEVIATIONS: Record<string, Deviation> = {
  cv_fail_i1_as_cv_fail: { ours: 'fail', why: DRAFT_EMPTY_CV, kind: 'rfc' },
  cv_fail_i2_as2_fail: { ours: 'fail', why: DRAFT_EMPTY_CV, kind: 'rfc' },
  cv_fail_i2_as1_fail: { ours: 'fail', why: DRAFT_EMPTY_CV, kind: 'rfc' },
  ams_fields_a_sha1: { ours: 'fail', why: RSA_SHA1, kind: 'rfc' },
  as_fields_a_sha1: { ours: 'fail', why: RSA_SHA1, kind: 'rfc' },
  ams_fields_h_empty: {
    ours: 'fail',
    why: 'an ARC-Message-Signature with an empty h= signs no From (RFC 8617 §4.1.2 with RFC 6376 §3.5 and §6.1.1); the draft-era suite expects pass',
    kind: 'rfc',
  },
  as_fields_t_na: {
    ours: 'pass',
    why: 'an ARC-Seal without t=: mailauth requires only a, b, cv, d, i and s (RFC 8617 §4.1.3); the draft-era suite expects fail',
    kind: 'rfc',
  },
  ams_fields_c_na: {
    ours: 'pass',
    why: "an ARC-Message-Signature without c=: mailauth's lenient mode falls back to relaxed/relaxed (the drafts' default) instead of simple/simple (RFC 6376 §3.5); its strict mode fails it as the suite expects",
    kind: 'lenient',
  },
  as_format_inv_tag_key: { ours: 'pass', why: `invalid tag name "_": ${LENIENT_TAGS}`, kind: 'lenient' },
  as_format_tags_dup: { ours: 'pass', why: `duplicate s= tag: ${LENIENT_TAGS}`, kind: 'lenient' },
  as_format_tags_key_case: { ours: 'pass', why: `upper-case tag name S=: ${LENIENT_TAGS}`, kind: 'lenient' },
  as_format_tags_sc: { ours: 'pass', why: `empty tag (";;"): ${LENIENT_TAGS}`, kind: 'lenient' },
};

interface Scenario {
  doc: string;
  /** the scenario's key; the suite repeats 4 names in one document, the later ones get "#2" */
  name: string;
  description: string;
  message: string;
  /** the suite's cv= in lower case; "" where the suite expects no verdict at all */
  cv: string;
}

interface Suite {
  description: string;
  records: Array<[string, string]>;
  scenarios: Scenario[];
}

/** The fixture's documents; every scenario, also those whose name repeats one (a YAML mapping would keep only the last). */
function loadSuites(): Suite[] {
  const docs = YAML.parseAllDocuments(readFileSync(FIXTURE, 'utf8'), { uniqueKeys: false });
  return docs.map((doc) => {
    assert.deepEqual(doc.errors, [], 'the fixture parses');
    const description = String(doc.get('description')).trim();
    const tests = doc.get('tests', true);
    assert.ok(isMap(tests), `${description}: tests`);
    const seen = new Map<string, number>();
    const scenarios = tests.items.map((pair): Scenario => {
      assert.ok(isScalar(pair.key) && isMap(pair.value), `${description}: a scenario`);
      const key = String(pair.key.value);
      const n = (seen.get(key) ?? 0) + 1;
      seen.set(key, n);
      const s = pair.value.toJSON() as { description?: string; message?: string; cv?: string | null };
      return {
        doc: description,
        name: n > 1 ? `${key}#${n}` : key,
        description: String(s.description ?? '').trim(),
        message: s.message ?? '',
        cv: String(s.cv ?? '')
          .trim()
          .toLowerCase(),
      };
    });
    const txt = (doc.get('txt-records') as YAML.YAMLMap | undefined)?.toJSON() as Record<string, string> | undefined;
    return { description, records: Object.entries(txt ?? {}), scenarios };
  });
}

const suites = loadSuites();
let dns: TestDns;
let loaded = '';

before(async () => {
  if (!skip) dns = await startDns({ localZones: ['example.org', 'example2.org'], txt: [] });
});
after(async () => {
  await dns?.stop();
});

/** Serves these key records (only them: NXDOMAIN for everything else in the test zones). */
async function serve(records: Array<[string, string]>): Promise<void> {
  const key = JSON.stringify(records);
  if (key === loaded) return;
  const zones: DnsRecords = { localZones: ['example.org', 'example2.org'], txt: records };
  await dns.reload(zones);
  loaded = key;
}

async function arcOf(message: string): Promise<AuthResultKeyword> {
  // a fresh resolver: no answer cached from another document's records
  const resolver = new AuthResolver({
    servers: [dns.server],
    timeoutMs: 2000,
    tries: 1,
    cacheTtlMs: 0,
    cacheSize: 0,
    downAfter: 0,
  });
  const deadline = Date.now() + 5000;
  const r = await verifySender({
    // YAML gives LF line ends; mail on the wire (and in our spool) has CRLF
    message: Buffer.from(message.replace(/\r?\n/g, '\r\n')),
    sender: 'jqd@d1.example.org',
    ip: '127.0.0.1',
    helo: null,
    authservId: 'gw.test',
    resolver: resolver.forMessage(50, deadline),
    minKeyBits: MIN_KEY_BITS,
    deadline,
  });
  return r.arc.result;
}

const tally = { scenarios: 0, asExpected: 0, rfc: 0, lenient: 0 };

test('the fixture holds the whole suite and every listed deviation is one of its scenarios', () => {
  const names = suites.flatMap((s) => s.scenarios.map((x) => x.name));
  assert.equal(suites.length, 10);
  assert.equal(names.length, 174);
  assert.equal(new Set(names).size, 174);
  for (const name of Object.keys(DEVIATIONS)) assert.ok(names.includes(name), `deviation ${name} is in the suite`);
  const unexpected = suites
    .flatMap((s) => s.scenarios)
    .filter((x) => !['pass', 'fail', 'none'].includes(x.cv) && !(x.name in DEVIATIONS));
  assert.deepEqual(
    unexpected.map((x) => x.name),
    [],
    'a scenario without pass/fail/none has a listed deviation',
  );
});

for (const suite of suites) {
  test(`ARC vectors: ${suite.description} (${suite.scenarios.length} scenarios)`, { skip }, async (t) => {
    await serve(suite.records);
    const wrong: string[] = [];
    for (const s of suite.scenarios) {
      const got = await arcOf(s.message);
      const deviation = DEVIATIONS[s.name];
      const want = deviation?.ours ?? s.cv;
      tally.scenarios++;
      if (got !== want) {
        wrong.push(`${s.name} (${s.description}): suite cv=${s.cv || '(empty)'}, expected ${want}, got ${got}`);
        continue;
      }
      if (!deviation) tally.asExpected++;
      else {
        tally[deviation.kind]++;
        t.diagnostic(`deviation ${s.name}: suite cv=${s.cv || '(empty)'}, ours ${got}: ${deviation.why}`);
      }
    }
    assert.deepEqual(wrong, []);
  });
}

test('ARC vectors summary', { skip }, (t) => {
  const total = suites.reduce((n, s) => n + s.scenarios.length, 0);
  assert.equal(tally.scenarios, total, 'every scenario ran');
  t.diagnostic(
    `${total} scenarios: ${tally.asExpected} as the suite expects; ${tally.rfc} where the draft-era suite disagrees with RFC 8617 and we follow the RFC; ${tally.lenient} mailauth lenient-mode deviations`,
  );
  assert.equal(tally.asExpected + tally.rfc + tally.lenient, total);
});
