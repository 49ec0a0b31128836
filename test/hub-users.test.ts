// The hub's users and roles (issue 13): the same users, sessions, API tokens and audit log as a
// gateway's, a first admin at first start, and every hub route walked with every role — 403 `forbidden`
// exactly where src/hub/permissions.ts says; gateways' device calls stay outside the roles.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { loadHubConfig } from '../src/hub/config.ts';
import { runHub, type RunningHub } from '../src/hub/run.ts';
import { HUB_PERMISSIONS } from '../src/hub/permissions.ts';
import { allowed, ROLES, type Role } from '../src/users/roles.ts';
import { tempDir } from './helpers/peers.ts';

let hub: RunningHub;
const announced: string[] = [];
const tokens = {} as Record<Role, string>;

async function call(
  method: string,
  route: string,
  o: { auth?: string | null; cookie?: string; csrf?: string; body?: unknown } = {},
) {
  const headers: Record<string, string> = {};
  const auth = o.auth === undefined ? hub.token : o.auth;
  if (auth) headers.authorization = `Bearer ${auth}`;
  if (o.cookie) headers.cookie = o.cookie;
  if (o.csrf) headers['x-csrf-token'] = o.csrf;
  if (o.body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(hub.url + route, {
    method,
    headers,
    body: o.body === undefined ? undefined : JSON.stringify(o.body),
  });
  const text = await r.text();
  return { status: r.status, headers: r.headers, json: text ? (JSON.parse(text) as any) : null };
}

before(async () => {
  const dir = tempDir('bw-hub-users-');
  const file = path.join(dir, 'hub.yaml');
  writeFileSync(file, YAML.stringify({ dataDir: './data', listen: { host: '127.0.0.1', port: 0 } }));
  hub = await runHub(loadHubConfig(file), { announce: (l) => announced.push(l) });
  for (const role of ROLES) {
    const add = await call('POST', '/api/v1/users', { body: { name: `${role}-user`, role } });
    assert.equal(add.status, 200, JSON.stringify(add.json));
    tokens[role] = (await call('POST', `/api/v1/users/${role}-user/tokens`, { body: {} })).json.token;
  }
});

after(async () => {
  await hub?.stop();
});

test('the first start prints the first admin once; they sign in to the hub and it says it is the hub', async () => {
  const line = announced.find((l) => l.startsWith('First hub web UI user'));
  assert.ok(line, announced.join('\n'));
  const [, name, password] = /: (\S+) \/ (\S+) /.exec(line)!;
  const login = await call('POST', '/api/v1/session', { auth: null, body: { name, password } });
  assert.equal(login.status, 200, JSON.stringify(login.json));
  assert.equal(login.json.product, 'hub');
  assert.equal(login.json.role, 'admin');
  const cookie = login.headers.get('set-cookie')!.split(';')[0];
  const csrf = login.json.csrfToken as string;
  // a session's change needs its CSRF token, and is audited
  const noCsrf = await call('POST', '/api/v1/tokens', { auth: null, cookie, body: { region: 'eu' } });
  assert.equal(noCsrf.json.error.code, 'csrf_failed');
  const made = await call('POST', '/api/v1/tokens', { auth: null, cookie, csrf, body: { region: 'eu' } });
  assert.equal(made.status, 200);
  const list = await call('GET', '/api/v1/tokens', { auth: null, cookie });
  assert.equal(list.json.tokens[0].status, 'unused');
  assert.equal(list.json.tokens[0].region, 'eu');
  assert.ok(!JSON.stringify(list.json).includes(made.json.token), 'the token itself is never listed');
  const audit = await call('GET', `/api/v1/audit?user=${name}`);
  assert.ok(audit.json.entries.some((e: any) => e.action === 'createRegistrationToken' && e.status === 200));
  assert.ok(audit.json.entries.some((e: any) => e.action === 'login'));
  // a second start prints no new user
  assert.equal(announced.filter((l) => l.startsWith('First hub web UI user')).length, 1);
  // the web UI is served by the hub too
  const ui = await fetch(`${hub.url}/ui/`);
  assert.ok([200, 503].includes(ui.status), `the UI route answers (${ui.status})`);
});

test('every hub route with every role: 403 forbidden exactly where the hub permission table says', async () => {
  const doc = (await call('GET', '/api/v1/openapi.json', { auth: null })).json;
  let checked = 0;
  const seen = new Set<string>();
  for (const [p, item] of Object.entries<any>(doc.paths))
    for (const [method, o] of Object.entries<any>(item)) {
      const op = o.operationId as string;
      if (HUB_PERMISSIONS.ownAuth.has(op)) continue;
      const permission = HUB_PERMISSIONS.routes[op];
      assert.ok(permission, `${op} is in the hub's permission table`);
      seen.add(op);
      if (permission === 'public') continue;
      assert.match(o.description ?? '', /\*\*Roles:\*\*/, `${op} shows its roles`);
      const route = p.replace(/\{[^}]+\}/g, 'no-such-thing');
      const body = ['post', 'patch', 'put'].includes(method) ? {} : undefined;
      for (const role of ROLES) {
        const r = await call(method.toUpperCase(), route, { auth: tokens[role], body });
        if (allowed(role, permission))
          assert.ok(![401, 403].includes(r.status), `${role} may ${op}: ${r.status} ${JSON.stringify(r.json)}`);
        else {
          assert.equal(r.status, 403, `${role} may not ${op}: ${r.status}`);
          assert.equal(r.json.error.code, 'forbidden');
        }
        checked++;
      }
      const anonymous = await call(method.toUpperCase(), route, { auth: null, body });
      assert.equal(anonymous.status, 401, `${op} without credentials`);
    }
  for (const op of Object.keys(HUB_PERMISSIONS.routes)) assert.ok(seen.has(op), `${op} is documented`);
  assert.ok(checked >= 15 * ROLES.length, `${checked} checks`);
  // device calls are not for people: a user's token is not a device JWT
  const intake = await call('POST', '/api/v1/device/batches', {
    auth: tokens.admin,
    body: { batchId: 'x', summaries: [] },
  });
  assert.equal(intake.status, 401);
});
