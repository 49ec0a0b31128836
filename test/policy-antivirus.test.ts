// The anti-virus policy layer: scan results and policy settings in, one action out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateConfig } from '../src/config/load.ts';
import { decideAntivirus, effectiveAntivirusSettings } from '../src/policy/antivirus.ts';
import type { AntivirusResult } from '../src/antivirus/types.ts';

function config(policies: unknown[], clamd = true) {
  const v = validateConfig({
    listeners: [
      {
        name: 'in',
        port: 0,
        direction: 'incoming',
        acceptDomains: ['x.test'],
        hat: [{ name: 'all', match: ['ALL'], action: 'accept' }],
      },
    ],
    ...(clamd ? { antivirus: { clamd: { host: '127.0.0.1', port: 3310 } } } : {}),
    policies: { incoming: policies },
  });
  assert.ok(v.config, JSON.stringify(v.errors));
  return v.config;
}

const infected = (parts: AntivirusResult['infectedParts'] = []): AntivirusResult => ({
  verdict: 'infected',
  names: ['Eicar-Test-Signature'],
  reason: null,
  detail: 'Eicar-Test-Signature',
  infectedParts: parts,
  signatureVersion: 1,
});
const unscannable: AntivirusResult = {
  verdict: 'unscannable',
  names: [],
  reason: 'encrypted',
  detail: 'Heuristics.Encrypted.Zip',
  infectedParts: [],
  signatureVersion: 1,
};

test('defaults: infected and unscannable mail goes to the virus quarantine; clean mail is left alone', () => {
  const s = effectiveAntivirusSettings(config([{ name: 'default' }]), 'incoming', 'default')!;
  assert.equal(decideAntivirus(infected(), s, { released: new Set() }).kind, 'quarantine');
  assert.equal(decideAntivirus(unscannable, s, { released: new Set() }).kind, 'quarantine');
  const clean = { ...infected(), verdict: 'clean' as const, names: [] };
  assert.equal(decideAntivirus(clean, s, { released: new Set() }).kind, 'none');
});

test('a message released from the virus quarantine is delivered with the tag, not held again', () => {
  const s = effectiveAntivirusSettings(config([{ name: 'default' }]), 'incoming', 'default')!;
  const a = decideAntivirus(infected(), s, { released: new Set(['virus']) });
  assert.equal(a.kind, 'deliver');
  assert.equal(a.kind === 'deliver' && a.subjectTag, '[VIRUS] ');
});

test('strip replaces the infected attachments; with none singled out the message is held instead', () => {
  const c = config([{ name: 'default', antivirus: { infected: { action: 'strip' } } }]);
  const s = effectiveAntivirusSettings(c, 'incoming', 'default')!;
  const a = decideAntivirus(infected([{ partPath: '1.2', name: 'x.com', names: ['Eicar'] }]), s, {
    released: new Set(),
  });
  assert.equal(a.kind, 'deliver');
  assert.deepEqual(a.kind === 'deliver' && a.strip.map((p) => p.partPath), ['1.2']);
  assert.match(a.kind === 'deliver' ? a.strip[0].notice : '', /x\.com was removed .* Eicar/);
  assert.equal(decideAntivirus(infected(), s, { released: new Set() }).kind, 'quarantine');
});

test('drop and deliver actions, inherit from the default policy, disabled policies and no clamd', () => {
  const c = config([
    { name: 'inherits', match: ['a@x.test'] },
    { name: 'off', match: ['b@x.test'], antivirus: { mode: 'disabled' } },
    { name: 'default', antivirus: { infected: { action: 'drop' }, unscannable: { action: 'deliver' } } },
  ]);
  const inherited = effectiveAntivirusSettings(c, 'incoming', 'inherits')!;
  assert.equal(decideAntivirus(infected(), inherited, { released: new Set() }).kind, 'drop');
  assert.equal(decideAntivirus(unscannable, inherited, { released: new Set() }).kind, 'deliver');
  assert.equal(effectiveAntivirusSettings(c, 'incoming', 'off'), null);
  assert.equal(effectiveAntivirusSettings(config([{ name: 'default' }], false), 'incoming', 'default'), null);
});
