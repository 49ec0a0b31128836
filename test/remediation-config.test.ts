// The remediation config section: defaults, the bounds on attempts and timeout, what each profile type
// needs, chains that must end, mappings to known profiles; and the redacted echo that keeps secrets out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateConfig } from '../src/config/load.ts';
import { redactRemediation } from '../src/config/remediation-schema.ts';
import { testConfig } from './helpers/gateway.ts';

function errors(remediation: unknown): string[] {
  const v = validateConfig(testConfig({ remediation }));
  return v.errors.map((e) => `${e.path}: ${e.message}`);
}

const imap = { type: 'imap', host: 'imap.test', masterUser: 'admin', masterPassword: 'pw' };

test('remediation defaults: no profiles, 3 attempts, 30 s', () => {
  const v = validateConfig(testConfig());
  assert.ok(v.config);
  assert.deepEqual(v.config.remediation, { profiles: [], mappings: [], attempts: 3, timeout: '30s' });
});

test('attempts 3–5 and timeout 30–60 s are enforced', () => {
  assert.deepEqual(errors({ attempts: 6, timeout: '5s' }).length, 2);
  assert.deepEqual(errors({ attempts: 2 }).length, 1);
  assert.deepEqual(errors({ attempts: 5, timeout: '60s' }), []);
  assert.deepEqual(errors({ timeout: '61s' }).length, 1);
});

test('each profile type needs its keys; a chain must end at a known profile; mappings name profiles', () => {
  const e = errors({
    profiles: [
      { name: 'a', type: 'imap', host: 'x' },
      { name: 'g', type: 'graph', tenantId: 't', clientId: 'c' },
      { name: 'h', type: 'graph', tenantId: 't', clientId: 'c', clientSecret: 's', next: 'i' },
      { name: 'i', ...imap, next: 'h' },
      { name: 'j', ...imap, next: 'nope' },
    ],
    mappings: [{ domain: 'x.test', profile: 'zz' }],
  });
  for (const m of [
    /profiles\[0\]\.masterUser: imap profile a needs masterUser/,
    /profiles\[0\]\.masterPassword/,
    /profiles\[1\]\.clientSecret: graph profile g needs exactly one of clientSecret and certificate/,
    /profiles\[2\]\.next: the chain from h loops/,
    /profiles\[3\]\.next: the chain from i loops/,
    /profiles\[4\]\.next: no profile nope/,
    /mappings\[0\]\.profile: no profile zz/,
  ])
    assert.ok(
      e.some((x) => m.test(x)),
      `${m} in ${e.join('\n')}`,
    );
});

test('the redacted section keeps no secret', () => {
  const v = validateConfig(
    testConfig({
      remediation: {
        profiles: [
          { name: 'a', ...imap, masterPassword: 'imap-secret' },
          { name: 'g', type: 'graph', tenantId: 't', clientId: 'c', clientSecret: 'graph-secret' },
          {
            name: 'c',
            type: 'graph',
            tenantId: 't',
            clientId: 'c',
            certificate: { key: '/keys/m365.pem', thumbprint: 'a'.repeat(40) },
          },
        ],
      },
    }),
  );
  assert.ok(v.config);
  const text = JSON.stringify(redactRemediation(v.config.remediation));
  for (const s of ['imap-secret', 'graph-secret', '/keys/m365.pem']) assert.ok(!text.includes(s), s);
  assert.match(text, /"host":"imap\.test"/);
  assert.match(text, /"thumbprint":"a{40}"/);
});
