// Editing the configuration through the API (issue 13): secrets masked in answers and kept when sent
// back masked, every error with its path, the difference from the file, comments kept, a backup of the
// previous file, nothing written when invalid.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { ConfigEditor, MASK } from '../src/config/editor.ts';
import { startTestGateway, testConfig } from './helpers/gateway.ts';
import { tempDir } from './helpers/peers.ts';

const YAML_TEXT = `# the gateway of the test
hostname: gw.test # our name
listeners:
  - name: incoming
    host: 127.0.0.1
    port: 2525
    direction: incoming
    acceptDomains: [example.test]
    hat: [{ name: all, match: ['0.0.0.0/0'], action: accept }]
smtp:
  dataMinRate: 500
remediation:
  profiles:
    - { name: dovecot, type: imap, host: 127.0.0.1, port: 143, masterUser: admin, masterPassword: hunter2secret }
`;

test('masked secrets, every error with its path, comments kept, a backup, nothing written when invalid', () => {
  const dir = tempDir('bw-cfg-');
  const file = path.join(dir, 'breakwater.yaml');
  writeFileSync(file, YAML_TEXT);
  const editor = new ConfigEditor(file);
  const doc = editor.document() as any;
  assert.equal(doc.remediation.profiles[0].masterPassword, MASK, 'the secret is masked');
  assert.ok(!JSON.stringify(doc).includes('hunter2secret'));

  // invalid: every error, with its path; nothing written
  const bad = structuredClone(doc);
  bad.smtp.dataMinRate = -5;
  bad.listeners[0].direction = 'sideways';
  const c = editor.check(bad);
  assert.equal(c.valid, false);
  assert.deepEqual(c.errors.map((e) => e.path).sort(), ['listeners[0].direction', 'smtp.dataMinRate']);
  const r = editor.save(bad);
  assert.equal(r.backup, null);
  assert.equal(readFileSync(file, 'utf8'), YAML_TEXT, 'an invalid document is never written');

  // valid: what changes is listed; the masked secret stays as it was; comments stay
  const good = structuredClone(doc);
  good.smtp.dataMinRate = 600;
  const saved = editor.save(good);
  assert.equal(saved.valid, true);
  assert.deepEqual(saved.changes, [{ path: 'smtp.dataMinRate', before: 500, after: 600 }]);
  const text = readFileSync(file, 'utf8');
  assert.match(text, /# the gateway of the test/);
  assert.match(text, /hostname: gw.test # our name/);
  assert.equal(YAML.parse(text).smtp.dataMinRate, 600);
  assert.equal(YAML.parse(text).remediation.profiles[0].masterPassword, 'hunter2secret', 'the secret kept');
  assert.ok(saved.backup && existsSync(saved.backup));
  assert.equal(readFileSync(saved.backup, 'utf8'), YAML_TEXT);
  assert.equal(editor.changedSinceStart(), true);
  // a changed secret is shown masked in the difference
  const newSecret = structuredClone(editor.document() as any);
  newSecret.remediation.profiles[0].masterPassword = 'another-secret';
  const diff = editor.check(newSecret).changes;
  assert.deepEqual(diff, [
    {
      path: 'remediation.profiles',
      before: [{ ...newSecret.remediation.profiles[0], masterPassword: MASK }],
      after: [{ ...newSecret.remediation.profiles[0], masterPassword: MASK }],
    },
  ]);
  assert.ok(!JSON.stringify(diff).includes('another-secret'));
  // backups are bounded
  for (let i = 0; i < 12; i++) {
    const d = structuredClone(editor.document() as any);
    d.smtp.dataMinRate = 700 + i;
    editor.save(d);
  }
  assert.equal(readdirSync(dir).filter((f) => f.includes('.bak-')).length, 10);
});

test('the settings API: schema for the forms, check, save; an invalid save is refused with every error', async () => {
  const gw = await startTestGateway(testConfig());
  const base = `http://127.0.0.1:${gw.adminPort}/api/v1`;
  const call = async (method: string, p: string, body?: unknown) => {
    const r = await fetch(base + p, {
      method,
      headers: { authorization: `Bearer ${gw.token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: r.status, json: (await r.json()) as any };
  };
  try {
    const schema = (await call('GET', '/config/schema')).json;
    assert.equal(schema.properties.smtp.properties.dataMinRate.default, 500);
    assert.match(schema.properties.smtp.properties.dataMinRate.description, /Slowest average DATA rate/);
    const cur = (await call('GET', '/config')).json;
    assert.equal(cur.restartPending, false);
    const doc = { ...cur.document, smtp: { dataMinRate: -1 } };
    const checked = (await call('POST', '/config/check', { document: doc })).json;
    assert.equal(checked.valid, false);
    assert.equal(checked.errors[0].path, 'smtp.dataMinRate');
    const refused = await call('PUT', '/config', { document: doc });
    assert.equal(refused.status, 400);
    assert.equal(refused.json.error.code, 'invalid_config');
    assert.match(refused.json.error.message, /smtp\.dataMinRate/);
    const ok = await call('PUT', '/config', { document: { ...cur.document, smtp: { dataMinRate: 800 } } });
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    assert.equal(ok.json.restartRequired, true);
    assert.equal(YAML.parse(readFileSync(gw.gateway.configFile, 'utf8')).smtp.dataMinRate, 800);
    assert.equal((await call('GET', '/config')).json.restartPending, true);
    // embedded in this process, the gateway cannot restart itself (test/config-apply.test.ts: it can)
    const apply = await call('POST', '/config/apply', {});
    assert.equal(apply.status, 409);
    assert.equal(apply.json.error.code, 'restart_unavailable');
    const audit = await gw.gateway.audit.search({ action: 'saveConfig', limit: 5 });
    assert.equal(audit.length, 2, 'both saves, refused and done, are audited');
  } finally {
    await gw.stop();
  }
});
