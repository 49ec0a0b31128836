// The OpenAPI document against the real admin API: every route Fastify registers is documented and every
// documented operation exists, the document is well formed, its security matches what the server enforces,
// live responses fit the documented schemas, and /api/v1/openapi.json and /api/docs are served without a token.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { buildApi } from '../src/api/server.ts';
import { errorCodes, openApiDocument, type Parameter, type Ref, type Schema } from '../src/api/openapi.ts';
import { renderDocsPage } from '../src/api/docs-page.ts';
import { startTestGateway, testConfig } from './helpers/gateway.ts';
import { RawSmtp } from './helpers/rawsmtp.ts';
import { waitFor } from './helpers/peers.ts';

const root = path.resolve(import.meta.dirname, '..');
const version = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;
const doc = openApiDocument(version);
const METHODS = ['get', 'post', 'put', 'patch', 'delete'];
const PUBLIC = ['GET /health', 'GET /api/v1/openapi.json', 'GET /api/docs'];

let gw: Awaited<ReturnType<typeof startTestGateway>>;
let base: string;
let auth: Record<string, string>;
/** "METHOD /path/{param}" for every route the real buildApi registers */
const registered = new Set<string>();

before(async () => {
  gw = await startTestGateway(
    testConfig({ routes: { '*': ['file:delivered'] }, quarantine: { policy: [{ name: 'review' }] } }),
  );
  base = `http://127.0.0.1:${gw.adminPort}`;
  auth = { authorization: `Bearer ${gw.token}` };
  // A second instance of the same API on the same gateway, only to see its routes (prefixed ones too).
  const seen: Array<[string, string]> = [];
  const app = await buildApi(gw.gateway, gw.token, {
    onRoute: (r) => {
      for (const m of [r.method].flat()) seen.push([m, r.url]);
    },
  });
  await app.ready();
  await app.close();
  const gets = new Set(seen.filter(([m]) => m === 'GET').map(([, u]) => u));
  for (const [method, url] of seen) {
    if (method === 'HEAD' && gets.has(url)) continue; // Fastify's automatic HEAD for every GET
    registered.add(`${method} ${url.replace(/:(\w+)/g, '{$1}')}`);
  }
});

after(async () => {
  await gw?.stop();
});

function documented(): string[] {
  return Object.entries(doc.paths).flatMap(([p, item]) =>
    METHODS.filter((m) => item[m]).map((m) => `${m.toUpperCase()} ${p}`),
  );
}

function pointer(ref: string): unknown {
  assert.match(ref, /^#\//, `local $ref ${ref}`);
  let at: unknown = doc;
  for (const part of ref.slice(2).split('/')) at = (at as Record<string, unknown> | undefined)?.[part];
  return at;
}

function deref<T>(v: T | Ref): T {
  return v && typeof v === 'object' && '$ref' in v && typeof v.$ref === 'string' ? (pointer(v.$ref) as T) : (v as T);
}

test('every registered route is documented and every documented operation is registered', () => {
  assert.ok(registered.size > 20, `routes seen: ${[...registered].join(', ')}`);
  const ops = new Set(documented());
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
});

test('the document is well-formed OpenAPI 3.1', () => {
  assert.match(doc.openapi, /^3\.1\.\d+$/);
  assert.equal(doc.info.version, version);
  assert.ok(doc.info.title);
  assert.deepEqual(doc.components.securitySchemes.bearerAuth, {
    type: 'http',
    scheme: 'bearer',
    description: doc.components.securitySchemes.bearerAuth.description,
  });
  assert.deepEqual(doc.security, [{ bearerAuth: [] }]);

  // Every $ref anywhere resolves.
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

  const tagNames = new Set(doc.tags.map((t) => t.name));
  const ids = new Set<string>();
  const publicOps: string[] = [];
  for (const [p, item] of Object.entries(doc.paths)) {
    assert.match(p, /^\/[a-z0-9/{}._-]*$/i, `path ${p}`);
    const templated = [...p.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
    for (const [method, o] of Object.entries(item)) {
      const label = `${method.toUpperCase()} ${p}`;
      assert.ok(METHODS.includes(method), label);
      assert.ok(o.operationId && !ids.has(o.operationId), `${label}: unique operationId`);
      ids.add(o.operationId);
      assert.ok(o.summary, `${label}: summary`);
      assert.ok(o.tags.length && o.tags.every((t) => tagNames.has(t)), `${label}: declared tags`);
      const params = (o.parameters ?? []).map((x) => deref<Parameter>(x));
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
      }
      if (method === 'post' && o.requestBody) assert.ok(o.requestBody.content['application/json'], label);
      const ok = deref(o.responses['200']);
      assert.ok(ok?.description && ok.content && Object.keys(ok.content).length, `${label}: 200 with content`);
      for (const [status, r] of Object.entries(o.responses)) {
        assert.match(status, /^[1-5]\d\d$/, `${label}: status ${status}`);
        assert.ok(deref(r).description, `${label} ${status}: description`);
        if (Number(status) >= 400)
          assert.equal(deref(r).content?.['application/json']?.schema.$ref, '#/components/schemas/Error', label);
      }
      if (Array.isArray(o.security) && o.security.length === 0) publicOps.push(label);
      else assert.ok(o.responses['401'], `${label}: documents 401`);
    }
  }
  assert.deepEqual(publicOps.sort(), [...PUBLIC].sort(), 'public operations');

  // The error codes listed in docs/api.md are all in the Error schema, with the new quarantine ones.
  const codes = Object.keys(errorCodes);
  const listed = /Error codes:([\s\S]*?)\.\s*$/m.exec(readFileSync(path.join(root, 'docs/api.md'), 'utf8'));
  assert.ok(listed, 'docs/api.md lists the error codes');
  for (const m of listed[1].matchAll(/`([a-z_]+)`/g)) assert.ok(codes.includes(m[1]), `error code ${m[1]} documented`);
  for (const c of ['quarantine_not_found', 'invalid_target', 'filter_required', 'unauthorized'])
    assert.ok(codes.includes(c), c);
  const codeSchema = (doc.components.schemas.Error.properties!.error.properties!.code as Schema).anyOf![0];
  assert.deepEqual(codeSchema.enum, codes);
});

test('the document and /api/docs are public; every other operation needs the token', async () => {
  const spec = await fetch(`${base}/api/v1/openapi.json`);
  assert.equal(spec.status, 200);
  assert.match(spec.headers.get('content-type') ?? '', /^application\/json/);
  assert.deepEqual(await spec.json(), doc);

  const page = await fetch(`${base}/api/docs`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type') ?? '', /^text\/html; charset=utf-8/);
  assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/);
  const html = await page.text();
  assert.match(html, /^<!doctype html>/);
  assert.doesNotMatch(html, /<script|<link|src=|@import|url\(/i, 'self-contained, no script');
  for (const [p, item] of Object.entries(doc.paths)) {
    assert.ok(html.includes(`<code>${p}</code>`), `page shows ${p}`);
    for (const o of Object.values(item)) assert.ok(html.includes(`id="op-${o.operationId.toLowerCase()}"`));
  }
  for (const t of doc.tags) assert.ok(html.includes(`<h2>${t.name}</h2>`), `page has section ${t.name}`);

  const noToken = await fetch(`${base}/api/v1/status`);
  assert.equal(noToken.status, 401);
  assert.equal(((await noToken.json()) as any).error.code, 'unauthorized');
  assert.equal((await fetch(`${base}/api/v1/status`, { headers: auth })).status, 200);

  // What the document says about security is what the server does (the auth hook answers before any handler).
  for (const op of documented()) {
    const [method, p] = op.split(' ');
    const url = base + p.replace('{mid}', '1').replace('{name}', 'review');
    const r = await fetch(url, { method });
    if (PUBLIC.includes(op)) assert.notEqual(r.status, 401, `${op} is public`);
    else {
      assert.equal(r.status, 401, `${op} needs the token`);
      assert.equal(((await r.json()) as any).error.code, 'unauthorized', op);
    }
  }
});

test('the docs page escapes what it renders', () => {
  const evil = openApiDocument('1.0.0"><script>alert(1)</script>');
  evil.paths['/api/v1/status'].get.summary = '<img src=x onerror=alert(1)> `<b>`';
  const html = renderDocsPage(evil);
  assert.doesNotMatch(html, /<script|<img|<b>/);
  assert.ok(html.includes('&lt;img src=x onerror=alert(1)&gt; <code>&lt;b&gt;</code>'));
  assert.ok(html.includes('1.0.0&quot;&gt;&lt;script&gt;'));
});

// A small JSON Schema check, enough for the keywords the document uses.
function validate(schema: Schema, value: unknown, at: string, errors: string[]): void {
  if (schema.$ref) validate(pointer(schema.$ref) as Schema, value, at, errors);
  for (const s of schema.allOf ?? []) validate(s, value, at, errors);
  if (schema.anyOf)
    if (
      !schema.anyOf.some((s) => {
        const e: string[] = [];
        validate(s, value, at, e);
        return !e.length;
      })
    )
      errors.push(`${at}: matches no alternative: ${JSON.stringify(value)?.slice(0, 100)}`);
  if (schema.const !== undefined && value !== schema.const) errors.push(`${at}: not ${JSON.stringify(schema.const)}`);
  if (schema.enum && !schema.enum.includes(value)) errors.push(`${at}: ${JSON.stringify(value)} not in enum`);
  if (schema.type) {
    const is: Record<string, (v: unknown) => boolean> = {
      integer: Number.isInteger,
      number: (v) => typeof v === 'number',
      string: (v) => typeof v === 'string',
      boolean: (v) => typeof v === 'boolean',
      null: (v) => v === null,
      array: Array.isArray,
      object: (v) => typeof v === 'object' && v !== null && !Array.isArray(v),
    };
    const types = [schema.type].flat();
    if (!types.some((t) => is[t](value))) {
      errors.push(`${at}: expected ${types.join(' | ')}, got ${JSON.stringify(value)?.slice(0, 100)}`);
      return;
    }
  }
  if (typeof value === 'string') {
    if (schema.pattern && !new RegExp(schema.pattern, 'u').test(value)) errors.push(`${at}: ${value} ≁ pattern`);
    if (schema.format === 'date-time' && Number.isNaN(Date.parse(value))) errors.push(`${at}: ${value} not a time`);
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) errors.push(`${at}: ${value} < ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) errors.push(`${at}: ${value} > ${schema.maximum}`);
  }
  if (Array.isArray(value) && schema.items)
    value.slice(0, 50).forEach((v, i) => validate(schema.items!, v, `${at}[${i}]`, errors));
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const o = value as Record<string, unknown>;
    for (const k of schema.required ?? []) if (!(k in o)) errors.push(`${at}: missing ${k}`);
    for (const [k, s] of Object.entries(schema.properties ?? {})) if (k in o) validate(s, o[k], `${at}.${k}`, errors);
  }
}

test('live responses fit the documented schemas', async () => {
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

  const errors: string[] = [];
  // The check itself finds mistakes.
  validate(pointer('#/components/schemas/TrackingRecord') as Schema, { mid: 'x', recipients: [{}] }, 'bad', errors);
  assert.ok(errors.some((e) => e.startsWith('bad.mid: expected integer')) && errors.includes('bad: missing sender'));
  assert.ok(errors.some((e) => e.startsWith('bad.recipients[0]: missing rid')));
  errors.length = 0;
  let checked = 0;
  for (const [p, item] of Object.entries(doc.paths)) {
    const o = item.get;
    if (!o || p === '/api/docs' || p === '/metrics' || p.includes('{name}')) continue;
    const url = base + p.replace('{mid}', String(mid));
    const r = await fetch(url, { headers: auth });
    assert.equal(r.status, 200, `GET ${url}: ${r.status}`);
    const schema = deref(o.responses['200']).content!['application/json'].schema;
    validate(schema, await r.json(), `GET ${p}`, errors);
    checked++;
  }
  for (const name of ['outbreak', 'virus', 'review'])
    for (const sub of ['messages', 'rules']) {
      const p = `/api/v1/quarantines/{name}/${sub}`;
      const r = await fetch(`${base}/api/v1/quarantines/${name}/${sub}`, { headers: auth });
      assert.equal(r.status, 200, `${name}/${sub}`);
      validate(deref(doc.paths[p].get.responses['200']).content!['application/json'].schema, await r.json(), p, errors);
    }
  assert.ok(checked >= 13, `checked ${checked} routes`);
  assert.deepEqual(errors, []);

  // Errors have the documented shape and codes.
  for (const [url, code] of [
    [`/api/v1/tracking/messages/999999`, 'message_not_found'],
    [`/api/v1/quarantines/nope/messages`, 'quarantine_not_found'],
    [`/api/v1/tracking/messages?colour=red`, 'unknown_parameter'],
    [`/api/v1/nothing`, 'not_found'],
  ]) {
    const r = await fetch(base + url, { headers: auth });
    const body = await r.json();
    validate(pointer('#/components/schemas/Error') as Schema, body, url, errors);
    assert.equal((body as any).error.code, code, url);
  }
  const bulk = await fetch(`${base}/api/v1/quarantines/outbreak/release`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: '{}',
  });
  assert.equal(bulk.status, 400);
  assert.equal(((await bulk.json()) as any).error.code, 'filter_required');
  assert.deepEqual(errors, []);
});
