// The generated OpenAPI document against the real admin API: every route Fastify registers is documented
// (only the /api/docs viewer's own files are not) with a response schema for its success code and, when
// it takes a body, a request body schema; the document is well-formed OpenAPI 3.1 whose schemas compile;
// its security matches what the server enforces; every operation is called live and its answer (success
// and error) fits the documented schema; /api/v1/openapi.json and /api/docs are served without a token,
// and the docs page loads nothing from anywhere but the gateway. The XDR relay routes (on here) are
// documented too, under their own tag and security scheme, with their own error shape (RelayErrors).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { chromium } from 'playwright-core';
import { buildApi } from '../src/api/server.ts';
import { DOCS_CSP, DOCS_PREFIX } from '../src/api/docs.ts';
import { errorCodes } from '../src/api/schemas/common.ts';
import { startTestGateway, testConfig } from './helpers/gateway.ts';
import { RawSmtp } from './helpers/rawsmtp.ts';
import { waitFor } from './helpers/peers.ts';
import { SignJWT } from 'jose';
import { RELAY_TAG } from '../src/api/relay-routes.ts';

const root = path.resolve(import.meta.dirname, '..');
const version = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;
const METHODS = ['get', 'post', 'put', 'patch', 'delete'];
const PUBLIC = [
  'GET /health',
  'GET /api/v1/openapi.json',
  'POST /api/v1/session',
  'GET /api/v1/session',
  // the end-user quarantine's sign-in (recipients, not administrators)
  'GET /api/v1/enduser/session',
  'POST /api/v1/enduser/session',
  'POST /api/v1/enduser/link',
];
const CHROMIUM = '/usr/bin/chromium';
const RELAY_SECRET = 'openapi-relay-secret-0123456789abcdef';
/** The relay routes answer errors as `{"errors": […]}` (schema RelayErrors), not the admin API's Error. */
const isRelay = (o: Json) => (o.tags as string[]).includes(RELAY_TAG);

type Json = Record<string, any>;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
let base: string;
let auth: Record<string, string>;
let doc: Json;
/** "METHOD /path/{param}" for every documented route the real buildApi registers, and the viewer's */
const registered = new Set<string>();
const hidden = new Set<string>();

before(async () => {
  gw = await startTestGateway(
    testConfig({
      routes: { '*': ['file:delivered'] },
      quarantine: { policy: [{ name: 'review' }] },
      xdr: { relay: { jwtSecret: RELAY_SECRET } },
    }),
  );
  base = `http://127.0.0.1:${gw.adminPort}`;
  auth = { authorization: `Bearer ${gw.token}` };
  // A second instance of the same API on the same gateway, only to see its routes (prefixed ones too).
  const seen: Array<[string, string, boolean]> = [];
  const app = await buildApi(gw.gateway, gw.token, {
    onRoute: (r) => {
      for (const m of [r.method].flat()) seen.push([m, r.url, !!(r.schema as Json | undefined)?.hide]);
    },
  });
  await app.ready();
  await app.close();
  const gets = new Set(seen.filter(([m]) => m === 'GET').map(([, u]) => u));
  for (const [method, url, hide] of seen) {
    if (method === 'HEAD' && gets.has(url)) continue; // Fastify's automatic HEAD for every GET
    (hide ? hidden : registered).add(`${method} ${url.replace(/:(\w+)/g, '{$1}')}`);
  }
  doc = (await (await fetch(`${base}/api/v1/openapi.json`)).json()) as Json;
});

after(async () => {
  await gw?.stop();
});

function operations(): Array<[string, Json]> {
  return Object.entries(doc.paths as Json).flatMap(([p, item]) =>
    METHODS.filter((m) => item[m]).map((m): [string, Json] => [`${m.toUpperCase()} ${p}`, item[m]]),
  );
}

function pointer(ref: string): any {
  assert.match(ref, /^#\//, `local $ref ${ref}`);
  let at: any = doc;
  for (const part of ref.slice(2).split('/')) at = at?.[part];
  return at;
}

/** Validates against a schema of the document (its component $refs resolved), with Ajv in strict mode. */
function validator(): (schema: Json, value: unknown, at: string, errors: string[]) => void {
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  ajv.addKeyword('example');
  const local = (v: unknown) => JSON.parse(JSON.stringify(v).replaceAll('"#/components/schemas/', '"#/$defs/'));
  const defs = local(doc.components.schemas);
  const cache = new Map<Json, ReturnType<typeof ajv.compile>>();
  return (schema, value, at, errors) => {
    let check = cache.get(schema);
    if (!check) cache.set(schema, (check = ajv.compile({ ...local(schema), $defs: defs })));
    if (!check(value))
      for (const e of check.errors ?? [])
        errors.push(`${at}${e.instancePath}: ${e.message} ${JSON.stringify(e.params)}`);
  };
}

test('every registered route is documented and every documented operation is registered', () => {
  assert.ok(registered.size > 20, `routes seen: ${[...registered].join(', ')}`);
  const ops = new Set(operations().map(([label]) => label));
  assert.deepEqual(
    [...registered].filter((r) => !ops.has(r)),
    [],
    'registered but not in the OpenAPI document',
  );
  assert.deepEqual(
    [...ops].filter((o) => !registered.has(o)),
    [],
    'documented but not registered',
  );
  // Only the viewer's page and files, and the web UI (`/` leads to `/ui/`, its files), are left out of the document.
  assert.ok(hidden.has(`GET ${DOCS_PREFIX}`), [...hidden].join(', '));
  for (const h of hidden)
    assert.match(h, new RegExp(`^(GET|HEAD) (${DOCS_PREFIX}|/ui/|/$)`), `${h} is hidden from the document`);
});

test('every operation has a success response schema, and every body-taking one a request body schema', () => {
  for (const [label, o] of operations()) {
    const ok = o.responses['200'];
    assert.ok(ok?.description && ok.content, `${label}: 200 with content`);
    for (const [type, media] of Object.entries(ok.content as Json)) {
      const s = (media as Json).schema;
      assert.ok(s && Object.keys(s).length, `${label}: a ${type} schema for 200`);
      if (type === 'application/json') assert.ok(s.$ref || s.type, `${label}: the 200 schema says what it is`);
    }
    if (/^(POST|PUT|PATCH) /.test(label)) {
      const s = o.requestBody?.content?.['application/json']?.schema;
      assert.ok(s && Object.keys(s).length, `${label}: a request body schema`);
    }
  }
});

test('the document is well-formed OpenAPI 3.1 and its schemas compile', () => {
  assert.match(doc.openapi, /^3\.1\.\d+$/);
  assert.equal(doc.info.version, version);
  assert.ok(doc.info.title);
  assert.deepEqual(doc.components.securitySchemes.bearerAuth, {
    type: 'http',
    scheme: 'bearer',
    description: doc.components.securitySchemes.bearerAuth.description,
  });
  assert.deepEqual(doc.security, [{ bearerAuth: [] }]);

  // Every $ref anywhere resolves, and every named schema is used.
  const refs: string[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object')
      for (const [k, x] of Object.entries(v)) {
        if (k === '$ref') refs.push(x as string);
        else walk(x);
      }
  };
  walk(doc);
  assert.ok(refs.length > 50);
  for (const r of new Set(refs)) assert.notEqual(pointer(r), undefined, `$ref ${r} resolves`);
  for (const name of Object.keys(doc.components.schemas))
    assert.ok(refs.includes(`#/components/schemas/${name}`), `schema ${name} is used`);

  const tagNames = new Set(doc.tags.map((t: Json) => t.name));
  const ids = new Set<string>();
  const publicOps: string[] = [];
  const check = validator();
  for (const [label, o] of operations()) {
    const p = label.split(' ')[1];
    const templated = [...p.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
    assert.ok(o.operationId && !ids.has(o.operationId), `${label}: unique operationId`);
    ids.add(o.operationId);
    assert.ok(o.summary, `${label}: summary`);
    assert.ok(o.tags?.length && o.tags.every((t: string) => tagNames.has(t)), `${label}: declared tags`);
    const params: Json[] = o.parameters ?? [];
    const inPath = params.filter((x) => x.in === 'path');
    assert.deepEqual(inPath.map((x) => x.name).sort(), templated, `${label}: path parameters declared`);
    for (const x of inPath) assert.equal(x.required, true, `${label}: path parameter ${x.name} required`);
    for (const x of params) {
      assert.ok(['path', 'query'].includes(x.in) && x.schema && x.description, `${label}: parameter ${x.name}`);
      assert.equal(
        params.filter((y) => y.name === x.name && y.in === x.in).length,
        1,
        `${label}: parameter ${x.name} once`,
      );
      check(x.schema, undefined, '', []); // compiles
    }
    for (const [status, r] of Object.entries(o.responses as Json)) {
      assert.match(status, /^[1-5]\d\d$/, `${label}: status ${status}`);
      assert.ok(r.description, `${label} ${status}: description`);
      if (Number(status) >= 400)
        assert.equal(
          r.content?.['application/json']?.schema.$ref,
          isRelay(o) ? '#/components/schemas/RelayErrors' : '#/components/schemas/Error',
          `${label} ${status}`,
        );
      if (isRelay(o)) assert.deepEqual(o.security, [{ relayJwt: [] }], `${label}: the relay's own token`);
      for (const media of Object.values(r.content ?? {})) check((media as Json).schema, undefined, '', []);
    }
    if (Array.isArray(o.security) && o.security.length === 0) publicOps.push(label);
    else assert.ok(o.responses['401'], `${label}: documents 401`);
  }
  assert.deepEqual(publicOps.sort(), [...PUBLIC].sort(), 'public operations');

  // The error codes listed in docs/api.md are all in the Error schema, with the quarantine ones.
  const codes = Object.keys(errorCodes);
  const listed = /Error codes:([\s\S]*?)\.\s*$/m.exec(readFileSync(path.join(root, 'docs/api.md'), 'utf8'));
  assert.ok(listed, 'docs/api.md lists the error codes');
  for (const m of listed[1].matchAll(/`([a-z_]+)`/g)) assert.ok(codes.includes(m[1]), `error code ${m[1]} documented`);
  for (const c of ['quarantine_not_found', 'invalid_target', 'filter_required', 'unauthorized', 'too_many_mids'])
    assert.ok(codes.includes(c), c);
  assert.deepEqual(doc.components.schemas.Error.properties.error.properties.code.enum, codes);
});

test('the document and /api/docs are public; every other operation needs the token', async () => {
  const spec = await fetch(`${base}/api/v1/openapi.json`);
  assert.equal(spec.status, 200);
  assert.match(spec.headers.get('content-type') ?? '', /^application\/json/);
  assert.deepEqual(await spec.json(), doc);

  // The viewer: its page and every file it names come from this host, under a same-origin CSP.
  const page = await fetch(`${base}${DOCS_PREFIX}`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type') ?? '', /^text\/html; charset=utf-8/);
  assert.equal(page.headers.get('content-security-policy'), DOCS_CSP);
  const html = await page.text();
  assert.doesNotMatch(html, /<script(?![^>]*\ssrc=)/i, 'no inline script');
  const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
  assert.ok(assets.length >= 4, assets.join(', '));
  for (const a of assets) {
    assert.match(a, new RegExp(`^${DOCS_PREFIX}/`), `${a} is served by the gateway`);
    const r = await fetch(base + a);
    assert.equal(r.status, 200, a);
    assert.equal(r.headers.get('content-security-policy'), DOCS_CSP, a);
  }
  const viewerDoc = await fetch(`${base}${DOCS_PREFIX}/json`);
  assert.deepEqual(await viewerDoc.json(), doc, 'the viewer shows the same document');

  const noToken = await fetch(`${base}/api/v1/status`);
  assert.equal(noToken.status, 401);
  assert.equal(((await noToken.json()) as any).error.code, 'unauthorized');
  assert.equal((await fetch(`${base}/api/v1/status`, { headers: auth })).status, 200);

  // What the document says about security is what the server does (the auth hook answers before any handler).
  for (const [op, o] of operations()) {
    const [method, p] = op.split(' ');
    const url = base + p.replace('{mid}', '1').replace('{name}', 'review');
    const r = await fetch(url, { method });
    if (PUBLIC.includes(op)) assert.notEqual(r.status, 401, `${op} is public`);
    else if (isRelay(o)) {
      assert.equal(r.status, 401, `${op} needs the relay token`);
      assert.equal(((await r.json()) as any).errors[0].code, 'authorization error', op);
    } else {
      assert.equal(r.status, 401, `${op} needs the token`);
      assert.equal(((await r.json()) as any).error.code, 'unauthorized', op);
    }
  }
});

test(
  '/api/docs renders every operation in Chromium without a request leaving the gateway',
  { skip: existsSync(CHROMIUM) ? false : `Chromium not installed at ${CHROMIUM}` },
  async () => {
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-sync'],
    });
    try {
      const page = await browser.newPage();
      const requests: string[] = [];
      const problems: string[] = [];
      page.on('request', (r) => requests.push(r.url()));
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(m.text());
      });
      page.on('pageerror', (e) => problems.push(String(e)));
      await page.goto(`${base}${DOCS_PREFIX}`);
      await page.waitForSelector('.opblock', { timeout: 30_000 });
      const shown = await page.locator('.opblock').count();
      assert.equal(shown, operations().length, 'one block per operation');
      assert.match(await page.locator('.info .title').innerText(), /Breakwater admin API/);
      assert.deepEqual(
        requests.filter((u) => !u.startsWith(`${base}/`)),
        [],
        'every request goes to the gateway',
      );
      assert.deepEqual(problems, [], 'no script errors or CSP violations');
    } finally {
      await browser.close();
    }
  },
);

test('every operation answers live as documented, success and errors alike', async () => {
  // One message, so that tracking has a record to show.
  const c = await RawSmtp.open(gw.port('incoming'));
  assert.match(await c.reply(), /^220 /);
  assert.match(await c.cmd('EHLO client.test'), /^250/);
  assert.match(await c.cmd('MAIL FROM:<alice@src.test>'), /^250/);
  assert.match(await c.cmd('RCPT TO:<bob@dst.test>'), /^250/);
  assert.match(await c.cmd('DATA'), /^354/);
  const queued = await c.cmd(
    'From: alice@src.test\r\nTo: bob@dst.test\r\nSubject: openapi\r\n\r\nsee https://example.test/x\r\n.',
  );
  c.close();
  const mid = Number(/queued as MID (\d+)/.exec(queued)?.[1]);
  assert.ok(mid > 0, queued);
  // Delivered first: /status answers 500 while a parse worker is still starting (ParsePool.heapStats).
  await waitFor(() => gw.gateway.tracker.show(mid)?.status === 'delivered', 10_000, 'delivery');

  const check = validator();
  const errors: string[] = [];
  // The check itself finds mistakes.
  check({ $ref: '#/components/schemas/TrackingRecord' }, { mid: 'x', recipients: [{}] }, 'bad', errors);
  assert.ok(
    errors.some((e) => e.startsWith('bad/mid: must be integer')),
    errors.join('\n'),
  );
  assert.ok(errors.some((e) => e.includes('missingProperty":"sender')));
  assert.ok(errors.some((e) => e.startsWith('bad/recipients/0: must have required property')));
  errors.length = 0;

  const called = new Set<string>();
  const relayAuth = {
    authorization: `Bearer ${await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode(RELAY_SECRET))}`,
  };
  const call = async (method: string, p: string, url: string, status: number, body?: unknown) => {
    const relay = isRelay(doc.paths[p][method.toLowerCase()]);
    const r = await fetch(base + url, {
      method,
      headers: { ...(relay ? relayAuth : auth), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const label = `${method} ${p}`;
    assert.equal(r.status, status, `${method} ${url}: ${r.status}`);
    const type = (r.headers.get('content-type') ?? '').split(';')[0];
    const media = doc.paths[p][method.toLowerCase()].responses[String(status)]?.content?.[type];
    assert.ok(media, `${label}: ${status} ${type} is documented`);
    if (type === 'application/json') check(media.schema, await r.json(), `${label} ${status}`, errors);
    called.add(label);
  };

  for (const [label] of operations()) {
    const [method, p] = label.split(' ');
    if (method !== 'GET' || p.startsWith('/api/v1/enduser/')) continue;
    if (p.startsWith('/api/v1/users/{name}')) await call(method, p, p.replace('{name}', 'admin'), 200);
    else if (p.includes('{name}'))
      for (const name of ['outbreak', 'virus', 'review'])
        await call(method, p, p.replace('{name}', name).replace('{mid}', String(mid)), p.includes('{mid}') ? 404 : 200);
    else await call(method, p, p.replace('{mid}', String(mid)).replace('{domain}', 'dst.test'), 200);
  }
  await call('GET', '/api/v1/tracking/messages', `/api/v1/tracking/messages?mid=${mid}&limit=5`, 200);
  await call('POST', '/api/v1/queue/{mid}/retry', `/api/v1/queue/${mid}/retry`, 404);
  await call('DELETE', '/api/v1/queue/{mid}', `/api/v1/queue/${mid}`, 404);
  await call('POST', '/api/v1/outbreak/update', '/api/v1/outbreak/update', 200, {});
  await call('POST', '/api/v1/outbreak/flush', '/api/v1/outbreak/flush', 200, { confirm: true });
  const q = '/api/v1/quarantines/{name}';
  await call('POST', `${q}/release`, '/api/v1/quarantines/outbreak/release', 200, { mids: [99_999] });
  await call('POST', `${q}/delete`, '/api/v1/quarantines/virus/delete', 200, { rule: 'NO_SUCH_RULE' });
  await call('POST', `${q}/delay`, '/api/v1/quarantines/review/delay', 200, { mids: '5,6', extend: '4h' });
  await call('POST', `${q}/move`, '/api/v1/quarantines/review/move', 200, { all: true, to: 'virus', by: 'test' });
  await call('POST', `${q}/copy`, '/api/v1/quarantines/outbreak/copy', 200, { mids: [1], to: 'soc@dst.test' });
  // cloud services: off in this config, so registration and telemetry are refused with their codes
  await call('POST', '/api/v1/cloud/enable', '/api/v1/cloud/enable', 200, {});
  await call('POST', '/api/v1/cloud/register', '/api/v1/cloud/register', 400, { token: 'not-a-token' });
  await call('POST', '/api/v1/cloud/telemetry', '/api/v1/cloud/telemetry', 409, {});
  await call('POST', '/api/v1/cloud/deregister', '/api/v1/cloud/deregister', 200, {});
  await call('POST', '/api/v1/cloud/disable', '/api/v1/cloud/disable', 200, {});
  await call('POST', '/api/v1/cloud/register', '/api/v1/cloud/register', 409, { token: 'ab'.repeat(16) });
  const observables = [
    { type: 'email', value: 'alice@src.test' },
    { type: 'cisco_mid', value: String(mid) },
  ];
  await call('POST', '/health', '/health', 200, {});
  for (const p of ['/observe/observables', '/deliberate/observables', '/refer/observables', '/respond/observables'])
    await call('POST', p, p, 200, observables);
  await call('POST', '/respond/trigger', '/respond/trigger', 200, {
    'action-id': 'delete',
    observable_type: 'cisco_mid',
    observable_value: String(mid),
  });
  await call('POST', '/observe/observables', '/observe/observables', 400, [{ type: 'colour', value: 'red' }]);
  // settings: check a document, save it unchanged (nothing to write)
  const current = await fetch(`${base}/api/v1/config`, { headers: auth }).then((r) => r.json() as Promise<any>);
  await call('POST', '/api/v1/config/check', '/api/v1/config/check', 200, { document: current.document });
  await call('PUT', '/api/v1/config', '/api/v1/config', 200, { document: current.document });
  // embedded in the test process: no restart of its own (test/config-apply.test.ts applies for real)
  await call('POST', '/api/v1/config/apply', '/api/v1/config/apply', 409, {});
  // users, sessions, API tokens
  await call('POST', '/api/v1/users', '/api/v1/users', 200, {
    name: 'docs',
    role: 'operator',
    password: 'docs password',
  });
  await call('PATCH', '/api/v1/users/{name}', '/api/v1/users/docs', 200, { role: 'analyst' });
  const login = await fetch(`${base}/api/v1/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'docs', password: 'docs password' }),
  });
  check(
    doc.paths['/api/v1/session'].post.responses['200'].content['application/json'].schema,
    await login.json(),
    'login',
    errors,
  );
  called.add('POST /api/v1/session');
  await call('POST', '/api/v1/session/password', '/api/v1/session/password', 400, {
    current: 'wrong',
    password: 'whatever password',
  });
  await call('DELETE', '/api/v1/session', '/api/v1/session', 200);
  const tok = await fetch(`${base}/api/v1/users/docs/tokens`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: '{}',
  }).then((r) => r.json() as Promise<any>);
  called.add('POST /api/v1/users/{name}/tokens');
  check(
    doc.paths['/api/v1/users/{name}/tokens'].post.responses['200'].content['application/json'].schema,
    tok,
    'token',
    errors,
  );
  await call('DELETE', '/api/v1/users/{name}/tokens/{id}', `/api/v1/users/docs/tokens/${tok.info.id}`, 200);
  await call('DELETE', '/api/v1/users/{name}', '/api/v1/users/docs', 200);
  // the end-user quarantine is off here: its sign-in says so, its other routes want a recipient's session
  const eu = '/api/v1/enduser';
  await call('GET', `${eu}/session`, `${eu}/session`, 200);
  await call('POST', `${eu}/session`, `${eu}/session`, 404, { token: 'a.b' });
  await call('POST', `${eu}/link`, `${eu}/link`, 404, { address: 'bob@dst.test' });
  await call('POST', `${eu}/digests`, `${eu}/digests`, 404, {});
  await call('DELETE', `${eu}/session`, `${eu}/session`, 401);
  await call('GET', `${eu}/messages`, `${eu}/messages`, 401);
  await call('GET', `${eu}/messages/{quarantine}/{mid}/content`, `${eu}/messages/review/${mid}/content`, 401);
  await call('POST', `${eu}/messages/release`, `${eu}/messages/release`, 401, { messages: [] });
  await call('POST', `${eu}/messages/delete`, `${eu}/messages/delete`, 401, { messages: [] });
  await call('POST', `${eu}/senders`, `${eu}/senders`, 401, { sender: '@src.test' });
  await call('DELETE', `${eu}/senders/{sender}`, `${eu}/senders/%40src.test`, 401);
  // no remediation profile is configured: the delivered recipient is counted failed (no_profile)
  await call('POST', '/api/v1/remediation', '/api/v1/remediation', 200, { action: 'delete', mids: [mid, 99_999] });
  assert.deepEqual(
    operations()
      .map(([label]) => label)
      .filter((l) => !called.has(l)),
    [],
    'every operation was called',
  );
  assert.deepEqual(errors, []);

  // Errors have the documented shape and codes.
  for (const [method, p, url, status, code, body] of [
    ['GET', '/api/v1/tracking/messages/{mid}', '/api/v1/tracking/messages/999999', 404, 'message_not_found'],
    ['GET', '/api/v1/quarantines/{name}/messages', '/api/v1/quarantines/nope/messages', 404, 'quarantine_not_found'],
    ['GET', '/api/v1/tracking/messages', '/api/v1/tracking/messages?colour=red', 400, 'unknown_parameter'],
    ['GET', '/api/v1/tracking/messages', '/api/v1/tracking/messages?limit=1001', 400, 'invalid_parameter'],
    ['POST', `${q}/release`, '/api/v1/quarantines/outbreak/release', 400, 'filter_required', {}],
    ['POST', `${q}/release`, '/api/v1/quarantines/outbreak/release', 400, 'invalid_body', [1]],
    ['POST', `${q}/move`, '/api/v1/quarantines/outbreak/move', 400, 'invalid_target', { all: true, to: 'outbreak' }],
    ['POST', '/api/v1/outbreak/flush', '/api/v1/outbreak/flush', 400, 'confirmation_required', {}],
    [
      'POST',
      '/api/v1/remediation',
      '/api/v1/remediation',
      400,
      'forward_address_required',
      { action: 'forward', mids: [1] },
    ],
    ['POST', '/api/v1/remediation', '/api/v1/remediation', 400, 'message_required', { action: 'delete', mids: [] }],
  ] as const) {
    const r = await fetch(base + url, {
      method,
      headers: { ...auth, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    assert.equal(r.status, status, url);
    const answer = await r.json();
    check(
      doc.paths[p][method.toLowerCase()].responses[String(status)].content['application/json'].schema,
      answer,
      url,
      errors,
    );
    assert.equal((answer as any).error.code, code, `${method} ${url}`);
  }
  const route = await fetch(`${base}/api/v1/nothing`, { headers: auth });
  assert.equal(((await route.json()) as any).error.code, 'not_found');
  assert.deepEqual(errors, []);
});
