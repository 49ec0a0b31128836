// Users, roles, sessions and the audit log (DESIGN §9, issue 13): every admin API route walked with
// every role (403 `forbidden` exactly where the permission table says), browser sessions with an
// HttpOnly SameSite=Strict cookie and a CSRF token, lockout after failed logins, personal API tokens,
// and an audit entry (who, what, from where) for every change, with secrets redacted.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestGateway, testConfig } from './helpers/gateway.ts';
import { ROUTE_PERMISSIONS } from '../src/api/permissions.ts';
import { allowed, ROLES, type Role } from '../src/users/roles.ts';

let gw: Awaited<ReturnType<typeof startTestGateway>>;
let base: string;
const tokens = {} as Record<Role, string>;

async function call(
  method: string,
  path: string,
  o: { auth?: string | null; cookie?: string; csrf?: string; body?: unknown } = {},
): Promise<{ status: number; json: any; headers: Headers }> {
  const headers: Record<string, string> = {};
  const auth = o.auth === undefined ? gw.token : o.auth;
  if (auth) headers.authorization = `Bearer ${auth}`;
  if (o.cookie) headers.cookie = o.cookie;
  if (o.csrf) headers['x-csrf-token'] = o.csrf;
  if (o.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    body: o.body !== undefined ? JSON.stringify(o.body) : undefined,
  });
  const text = await res.text();
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json, headers: res.headers };
}

before(async () => {
  gw = await startTestGateway(testConfig({ admin: { host: '127.0.0.1', port: 0, login: { maxFailures: 3 } } }));
  base = `http://127.0.0.1:${gw.adminPort}`;
  for (const role of ROLES) {
    const add = await call('POST', '/api/v1/users', { body: { name: `${role}-user`, role } });
    assert.equal(add.status, 200, JSON.stringify(add.json));
    assert.equal(add.json.user.role, role);
    assert.equal(add.json.password.length, 20, 'a generated password is answered once');
    const t = await call('POST', `/api/v1/users/${role}-user/tokens`, { body: { label: 'roles test' } });
    assert.equal(t.status, 200, JSON.stringify(t.json));
    assert.match(t.json.token, /^bwt_/);
    tokens[role] = t.json.token;
  }
});

after(async () => {
  await gw?.stop();
});

test('the first start creates one admin user; the last admin can neither go nor lose the role', async () => {
  const users = (await call('GET', '/api/v1/users')).json.users;
  assert.ok(users.some((u: any) => u.name === 'admin' && u.role === 'admin'));
  const del = await call('DELETE', '/api/v1/users/admin-user');
  assert.equal(del.status, 200, 'another admin may go');
  assert.equal(
    (await call('PATCH', '/api/v1/users/admin', { body: { role: 'analyst' } })).json.error.code,
    'last_admin',
  );
  assert.equal((await call('DELETE', '/api/v1/users/admin')).json.error.code, 'last_admin');
  const again = await call('POST', '/api/v1/users', {
    body: { name: 'admin-user', role: 'admin', password: 'p'.repeat(12) },
  });
  assert.equal(again.status, 200);
  tokens.admin = (await call('POST', '/api/v1/users/admin-user/tokens', { body: {} })).json.token;
  assert.equal(
    (await call('POST', '/api/v1/users', { body: { name: 'admin-user', role: 'admin' } })).json.error.code,
    'user_exists',
  );
  assert.equal((await call('POST', '/api/v1/users', { body: { name: 'x', role: 'root' } })).status, 400);
  assert.equal(
    (await call('POST', '/api/v1/users', { body: { name: 'short', role: 'analyst', password: 'short' } })).json.error
      .code,
    'weak_password',
  );
});

test('every route with every role: 403 forbidden exactly where the permission table says', async () => {
  const doc = (await call('GET', '/api/v1/openapi.json', { auth: null })).json;
  const ops: Array<{ method: string; path: string; op: string; description: string }> = [];
  for (const [p, item] of Object.entries<any>(doc.paths))
    for (const [method, o] of Object.entries<any>(item))
      if (o.operationId && p.startsWith('/api/v1') && o.operationId in ROUTE_PERMISSIONS)
        ops.push({ method: method.toUpperCase(), path: p, op: o.operationId, description: o.description ?? '' });
  // every documented admin operation is in the table, and the table has nothing undocumented
  const documented = new Set(ops.map((o) => o.op));
  for (const op of Object.keys(ROUTE_PERMISSIONS))
    if (!['getHealth', 'getMetrics'].includes(op)) assert.ok(documented.has(op), `${op} is documented`);
  let checked = 0;
  for (const o of ops) {
    const permission = ROUTE_PERMISSIONS[o.op];
    if (permission === 'public') continue;
    assert.equal(o.description.match(/\*\*Roles:\*\*/g)?.length, 1, `${o.op} shows its roles once in the document`);
    // path parameters: names that exist nowhere (an allowed call then gets 404/400, never 401/403)
    const path = o.path.replace(/\{[^}]+\}/g, 'no-such-thing');
    const body = ['POST', 'PATCH', 'PUT'].includes(o.method) ? {} : undefined;
    for (const role of ROLES) {
      const r = await call(o.method, path, { auth: tokens[role], body });
      if (allowed(role, permission))
        assert.ok(![401, 403].includes(r.status), `${role} may ${o.op}: got ${r.status} ${JSON.stringify(r.json)}`);
      else {
        assert.equal(r.status, 403, `${role} may not ${o.op}: got ${r.status}`);
        assert.equal(r.json.error.code, 'forbidden');
      }
      checked++;
    }
    const anonymous = await call(o.method, path, { auth: null, body });
    assert.equal(anonymous.status, 401, `${o.op} without credentials`);
    assert.equal(anonymous.json.error.code, 'unauthorized');
  }
  assert.ok(checked >= 40 * ROLES.length, `${checked} checks`);
  // /metrics is outside /api/v1 but under the same rules
  assert.equal((await call('GET', '/metrics', { auth: tokens.helpdesk })).status, 403);
  assert.equal((await call('GET', '/metrics', { auth: tokens.analyst })).status, 200);
});

test('browser sessions: HttpOnly SameSite=Strict cookie, CSRF token on changes, logout, lockout after failures', async () => {
  const password = 'correct horse battery';
  await call('POST', '/api/v1/users', { body: { name: 'carol', role: 'operator', password } });
  const login = await call('POST', '/api/v1/session', { auth: null, body: { name: 'Carol', password } });
  assert.equal(login.status, 200, JSON.stringify(login.json));
  assert.equal(login.json.role, 'operator');
  const setCookie = login.headers.get('set-cookie')!;
  assert.match(setCookie, /^bw_session=[A-Za-z0-9_-]{40,};/);
  assert.match(setCookie, /HttpOnly/);
  assert.match(setCookie, /SameSite=Strict/);
  assert.doesNotMatch(setCookie, /Secure/, 'plain HTTP: not Secure');
  const cookie = setCookie.split(';')[0];
  const csrf: string = login.json.csrfToken;

  const me = await call('GET', '/api/v1/session', { auth: null, cookie });
  assert.deepEqual(
    [me.json.user, me.json.role, me.json.via, me.json.csrfToken],
    ['carol', 'operator', 'session', csrf],
  );
  // a state-changing request without the CSRF token is refused, with it allowed
  const noCsrf = await call('POST', '/api/v1/quarantines/outbreak/release', {
    auth: null,
    cookie,
    body: { all: true },
  });
  assert.equal(noCsrf.status, 403);
  assert.equal(noCsrf.json.error.code, 'csrf_failed');
  const withCsrf = await call('POST', '/api/v1/quarantines/outbreak/release', {
    auth: null,
    cookie,
    csrf,
    body: { all: true },
  });
  assert.equal(withCsrf.status, 200, JSON.stringify(withCsrf.json));
  // the operator's role still applies to a session
  assert.equal((await call('GET', '/api/v1/users', { auth: null, cookie })).json.error.code, 'forbidden');

  const out = await call('DELETE', '/api/v1/session', { auth: null, cookie, csrf });
  assert.equal(out.json.signedOut, true);
  assert.match(out.headers.get('set-cookie')!, /Max-Age=0/);
  assert.equal(
    (await call('GET', '/api/v1/session', { auth: null, cookie })).json.signedIn,
    false,
    'the session ended',
  );
  assert.equal((await call('GET', '/api/v1/tracking/messages', { auth: null, cookie })).status, 401);

  // wrong passwords: the third in a row locks the account (config: maxFailures 3), even for the right one
  for (let i = 0; i < 2; i++) {
    const bad = await call('POST', '/api/v1/session', {
      auth: null,
      body: { name: 'carol', password: 'wrong password' },
    });
    assert.equal(bad.status, 401);
    assert.equal(bad.json.error.code, 'invalid_credentials');
  }
  const locked = await call('POST', '/api/v1/session', {
    auth: null,
    body: { name: 'carol', password: 'wrong again!' },
  });
  assert.equal(locked.status, 429);
  assert.equal(locked.json.error.code, 'account_locked');
  assert.match(locked.json.error.message, /locked until \d{4}-\d\d-\d\dT.*\(15 minutes\)/);
  const stillLocked = await call('POST', '/api/v1/session', { auth: null, body: { name: 'carol', password } });
  assert.equal(stillLocked.json.error.code, 'account_locked');
  // an unknown user gets the same answer as a wrong password
  const unknown = await call('POST', '/api/v1/session', { auth: null, body: { name: 'nobody', password } });
  assert.equal(unknown.json.error.code, 'invalid_credentials');
  // an admin lifts the lock by setting a new password
  assert.equal((await call('PATCH', '/api/v1/users/carol', { body: { password: 'a new password!' } })).status, 200);
  assert.equal(
    (await call('POST', '/api/v1/session', { auth: null, body: { name: 'carol', password: 'a new password!' } }))
      .status,
    200,
  );
});

test('the audit log names who changed what, from where, allowed or refused; secrets never appear', async () => {
  await call('POST', '/api/v1/quarantines/outbreak/release', { auth: tokens.helpdesk, body: { all: true } });
  await call('POST', '/api/v1/queue/1/retry', { auth: tokens.helpdesk });
  await call('POST', '/api/v1/users', { body: { name: 'dave', role: 'analyst', password: 'secret-password-1' } });
  const entries = (await call('GET', '/api/v1/audit?limit=1000')).json.entries as any[];
  const release = entries.find((e) => e.user === 'helpdesk-user' && e.action === 'releaseQuarantinedMessages');
  assert.ok(release, 'the helpdesk release is audited');
  assert.equal(release.role, 'helpdesk');
  assert.equal(release.status, 200);
  assert.match(release.ip, /127\.0\.0\.1/);
  assert.equal(release.target, '/api/v1/quarantines/outbreak/release');
  const refused = entries.find((e) => e.user === 'helpdesk-user' && e.action === 'retryQueuedMessage');
  assert.equal(refused?.status, 403, 'refused attempts are audited too');
  const added = entries.find((e) => e.action === 'addUser' && e.detail?.body?.name === 'dave');
  assert.equal(added.user, 'admin-token');
  assert.equal(added.detail.body.password, '[redacted]');
  assert.ok(!JSON.stringify(entries).includes('secret-password-1'), 'no password anywhere in the log');
  assert.ok(
    entries.some((e) => e.action === 'loginFailed' && e.user === 'carol'),
    'failed logins are audited',
  );
  assert.ok(entries.some((e) => e.action === 'login' && e.user === 'carol'));
  // searchable
  const byUser = (await call('GET', '/api/v1/audit?user=helpdesk-user')).json.entries;
  assert.ok(byUser.length >= 2 && byUser.every((e: any) => e.user === 'helpdesk-user'));
  const byText = (await call('GET', '/api/v1/audit?text=dave')).json.entries;
  assert.ok(byText.some((e: any) => e.action === 'addUser'));
  // analysts cannot read it
  assert.equal((await call('GET', '/api/v1/audit', { auth: tokens.analyst })).status, 403);
});

test('personal API tokens carry their user’s role, and end with the user or when revoked', async () => {
  const t = await call('POST', '/api/v1/users/dave/tokens', { body: { label: 'script', expiresInDays: 1 } });
  const token = t.json.token;
  assert.equal((await call('GET', '/api/v1/session', { auth: token })).json.role, 'analyst');
  const list = (await call('GET', '/api/v1/users/dave/tokens')).json.tokens;
  assert.equal(list.length, 1);
  assert.ok(!JSON.stringify(list).includes(token), 'listings never show the token');
  await call('PATCH', '/api/v1/users/dave', { body: { role: 'operator' } });
  assert.equal((await call('GET', '/api/v1/session', { auth: token })).json.role, 'operator', 'the role as it is now');
  assert.equal((await call('DELETE', `/api/v1/users/dave/tokens/${list[0].id}`)).status, 200);
  assert.equal((await call('GET', '/api/v1/session', { auth: token })).json.signedIn, false);
  const t2 = (await call('POST', '/api/v1/users/dave/tokens', { body: {} })).json.token;
  await call('DELETE', '/api/v1/users/dave');
  assert.equal((await call('GET', '/api/v1/session', { auth: t2 })).json.signedIn, false, 'gone with the user');
});

test('the CLI manages users and reads the audit log through the API', async () => {
  const { spawn } = await import('node:child_process');
  const { writeFileSync } = await import('node:fs');
  const path = await import('node:path');
  writeFileSync(path.join(gw.dataDir, 'admin.addr'), `127.0.0.1:${gw.adminPort}\n`);
  const bin = path.resolve(import.meta.dirname, '../bin/breakwater.js');
  const cli = (args: string[], stdin?: string) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const p = spawn(process.execPath, [bin, ...args, '--config', path.join(gw.dir, 'breakwater.yaml')]);
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (d) => (stdout += d));
      p.stderr.on('data', (d) => (stderr += d));
      p.stdin.end(stdin ?? '');
      p.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    });
  const add = await cli(['users', 'add', 'erin', '--role', 'helpdesk', '--password-stdin'], 'erin password 1\n');
  assert.equal(add.code, 0, add.stderr);
  assert.match(add.stdout, /added erin \(helpdesk\)/);
  // the password from stdin works for a sign-in
  const login = await call('POST', '/api/v1/session', {
    auth: null,
    body: { name: 'erin', password: 'erin password 1' },
  });
  assert.equal(login.status, 200);
  const list = await cli(['users', 'list', '--json']);
  assert.ok(JSON.parse(list.stdout).some((u: any) => u.name === 'erin' && u.role === 'helpdesk'));
  const passwd = await cli(['users', 'passwd', 'erin']);
  assert.match(passwd.stdout, /password \(shown once\): \S{20}/);
  const bad = await cli(['users', 'add', 'erin', '--role', 'helpdesk']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /user_exists/);
  assert.equal((await cli(['users', 'remove', 'erin'])).code, 0);
  const audit = JSON.parse((await cli(['audit', '--user', 'admin-token', '--json'])).stdout);
  assert.ok(audit.some((e: any) => e.action === 'removeUser' && e.target === '/api/v1/users/erin'));
});
