// The XDR relay module end to end: a real gateway receives real SMTP traffic (swaks in, smtp-sink out) —
// a message with an attachment, URLs and a header From of its own, one held by an outbreak rule, a few
// bulk ones — then an XDR's calls find them: observe by every observable type, deliberate, refer,
// respond and trigger; bearer JWTs HS256 and from a JWKS (RS256, ES256), good and bad; the entity
// limit; the relay's own error shape. Every answer is checked against the CTIM JSON Schemas.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { SignJWT, exportJWK, generateKeyPair, type JWK } from 'jose';
import { hasBinary, startSmtpSink, swaks, tempDir, waitFor, type Sink } from './helpers/peers.ts';
import { startTestGateway, testConfig } from './helpers/gateway.ts';
import { writeRuleFeed } from './helpers/rules.ts';
import { ctimErrors, type CtimSchema } from './helpers/ctim.ts';
import type { RelayResponder } from '../src/xdr/relay.ts';

const skip =
  hasBinary('smtp-sink') && hasBinary('swaks') ? false : 'smtp-sink and swaks are not installed (run .ci/run)';

const SECRET = 'relay-secret-for-tests-0123456789abcdef';
const ISSUER = 'https://xdr.test';
const AUDIENCE = 'breakwater-relay';
const LIMIT = 3;

let sink: Sink;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
let jwksServer: Server;
let base: string;
type Key = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
let rsa: Key;
let ec: Key;
let otherRsa: Key;
const report = Buffer.from('%PDF-1.4\n% quarterly figures\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n');
const REPORT_SHA = createHash('sha256').update(report).digest('hex');
const REPORT_URL = 'https://docs.example.test/report?id=7';
let reportMid: number;
let heldMid: number;
let heldSha: string;
const bulkMids: number[] = [];

type Json = Record<string, any>;

async function token(
  opts: { key?: Key | Uint8Array; alg?: string; kid?: string; exp?: number | string; claims?: Json } = {},
): Promise<string> {
  const jwt = new SignJWT({ ...(opts.claims ?? {}) })
    .setProtectedHeader({ alg: opts.alg ?? 'HS256', ...(opts.kid ? { kid: opts.kid } : {}) })
    .setSubject('analyst@xdr.test')
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(opts.exp ?? '5m');
  if (opts.claims?.aud) jwt.setAudience(opts.claims.aud as string);
  return jwt.sign(opts.key ?? new TextEncoder().encode(SECRET));
}

let good: string;

async function relay(
  p: string,
  body: unknown,
  auth: string | null = good,
  init: { method?: string; raw?: string; contentType?: string } = {},
): Promise<{ status: number; json: Json; headers: Headers }> {
  const r = await fetch(`${base}${p}`, {
    method: init.method ?? 'POST',
    headers: {
      ...(auth === null ? {} : { authorization: `Bearer ${auth}` }),
      ...(body !== undefined || init.raw !== undefined
        ? { 'content-type': init.contentType ?? 'application/json' }
        : {}),
    },
    body: init.raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  return { status: r.status, json: (await r.json()) as Json, headers: r.headers };
}

/** A relay answer that must fit its envelope schema, each group's count matching its docs. */
function fits(schema: CtimSchema, json: Json): Json {
  assert.deepEqual(ctimErrors(schema, json), []);
  for (const g of Object.values((json.data ?? {}) as Json))
    if (g && typeof g === 'object' && 'docs' in g) assert.equal(g.count, g.docs.length);
  return json;
}

async function observe(type: string, value: string): Promise<Json[]> {
  const r = await relay('/observe/observables', [{ type, value }]);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return fits('responses#/$defs/observe', r.json).data.sightings?.docs ?? [];
}

const mids = (sightings: Json[]) =>
  sightings.map((s) => Number(s.observables.find((o: Json) => o.type === 'cisco_mid').value));

function rawMessage(): string {
  return [
    'From: "Alice Sender" <Alice.Header@src.test>',
    'To: bob@dst.test, carol@dst.test',
    'Subject: Quarterly report figures',
    'Message-ID: <report-1@src.test>',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b1"',
    '',
    '--b1',
    'Content-Type: text/plain; charset=utf-8',
    '',
    `The figures: ${REPORT_URL} and https://cdn.example.test/chart.png`,
    '--b1',
    'Content-Type: application/pdf; name="report.pdf"',
    'Content-Disposition: attachment; filename="report.pdf"',
    'Content-Transfer-Encoding: base64',
    '',
    report.toString('base64'),
    '--b1--',
    '',
  ].join('\r\n');
}

async function send(args: string[]): Promise<number> {
  const r = await swaks(['-s', `127.0.0.1:${gw.port('incoming')}`, ...args]);
  assert.equal(r.code, 0, r.out);
  const mid = Number(/queued as MID (\d+)/.exec(r.out)?.[1]);
  assert.ok(mid > 0, r.out);
  return mid;
}

before(async () => {
  if (skip) return;
  sink = await startSmtpSink();
  const feed = writeRuleFeed([
    {
      id: 'OUTBREAK_0000042',
      level: 4,
      category: 'virus',
      description: 'Invoice-themed zip attachments',
      condition: { attachment: { name: ['*invoice*.zip'] } },
    },
  ]);
  // The XDR's JWKS: an RS256 and an ES256 key.
  const r = await generateKeyPair('RS256', { extractable: true });
  const e = await generateKeyPair('ES256', { extractable: true });
  rsa = r.privateKey;
  ec = e.privateKey;
  otherRsa = (await generateKeyPair('RS256')).privateKey;
  const keys: JWK[] = [
    { ...(await exportJWK(r.publicKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' },
    { ...(await exportJWK(e.publicKey)), kid: 'ec-1', alg: 'ES256', use: 'sig' },
  ];
  jwksServer = createServer((_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys }));
  });
  await new Promise<void>((ok) => jwksServer.listen(0, '127.0.0.1', ok));
  const jwksPort = (jwksServer.address() as { port: number }).port;

  gw = await startTestGateway(
    testConfig({
      routes: { '*': [`smtp://127.0.0.1:${sink.port}`] },
      outbreakFilters: {
        adaptiveRules: false,
        ruleFeed: { dir: feed.dir, publicKey: feed.publicKey },
        ruleUpdateInterval: '1h',
      },
      xdr: {
        relay: {
          jwtSecret: SECRET,
          jwksUrl: `http://127.0.0.1:${jwksPort}/.well-known/jwks.json`,
          issuer: ISSUER,
          audience: AUDIENCE,
          entityLimit: LIMIT,
        },
      },
    }),
  );
  base = `http://127.0.0.1:${gw.adminPort}`;
  good = await token();
  await waitFor(() => gw.gateway.outbreak.bundle?.version === 1, 10_000, 'rule bundle');

  const dir = tempDir('bw-relay-');
  const eml = path.join(dir, 'report.eml');
  writeFileSync(eml, rawMessage());
  reportMid = await send(['-f', 'alice@src.test', '-t', 'bob@dst.test,carol@dst.test', '--data', `@${eml}`]);
  const zip = path.join(dir, 'march-invoice.zip');
  writeFileSync(zip, Buffer.from('504b0506000000000000000000000000000000000000', 'hex'));
  heldSha = createHash('sha256')
    .update(Buffer.from('504b0506000000000000000000000000000000000000', 'hex'))
    .digest('hex');
  heldMid = await send([
    '-f',
    'mallory@evil.test',
    '-t',
    'bob@dst.test',
    '--header',
    'Subject: Invoice overdue',
    '--body',
    'Pay now at http://pay.evil.test/now',
    '--attach-type',
    'application/zip',
    '--attach',
    `@${zip}`,
  ]);
  for (let i = 0; i < 4; i++)
    bulkMids.push(await send(['-f', 'news@bulk.test', '-t', 'dave@dst.test', '--header', `Subject: bulk ${i}`]));
  await waitFor(() => gw.gateway.tracker.show(heldMid)?.status === 'quarantined', 15_000, 'the invoice held');
  await waitFor(
    () => [reportMid, ...bulkMids].every((m) => gw.gateway.tracker.show(m)?.status === 'delivered'),
    15_000,
    'delivery',
  );
});

after(async () => {
  await gw?.stop();
  await sink?.stop();
  await new Promise((r) => jwksServer?.close(r));
});

test('the traffic is tracked as the tests expect', { skip }, () => {
  const r = gw.gateway.tracker.show(reportMid)!;
  assert.deepEqual(
    r.attachments.map((a) => [a.name, a.sha256]),
    [['report.pdf', REPORT_SHA]],
  );
  assert.ok(r.urls.includes(REPORT_URL), r.urls.join(' '));
  assert.equal(r.headerFrom, '"Alice Sender" <Alice.Header@src.test>');
  const held = gw.gateway.tracker.show(heldMid)!;
  assert.equal(held.threatLevel, 4);
  assert.deepEqual(
    held.attachments.map((a) => a.sha256),
    [heldSha],
  );
});

test('POST /health answers with a good token and sits beside the public GET /health', { skip }, async () => {
  assert.deepEqual(fits('responses#/$defs/health', (await relay('/health', {})).json), { data: { status: 'ok' } });
  const empty = await relay('/health', undefined, good, { raw: '' });
  assert.equal(empty.status, 200, 'no body is fine');
  const admin = (await (await fetch(`${base}/health`)).json()) as Json;
  assert.equal(admin.status, 'ok');
  assert.equal(typeof admin.uptimeSeconds, 'number');
});

test(
  'bearer JWTs: HS256 and JWKS (RS256, ES256) pass; wrong, expired, unsigned, missing are 401',
  { skip },
  async () => {
    const now = Math.floor(Date.now() / 1000);
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const unsigned = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'x', iss: ISSUER, aud: AUDIENCE, exp: now + 300 })}.`;
    const cases: Array<[string, string | null, number, RegExp?]> = [
      ['HS256 with the secret', good, 200],
      ['RS256 from the JWKS', await token({ key: rsa, alg: 'RS256', kid: 'rsa-1' }), 200],
      ['ES256 from the JWKS', await token({ key: ec, alg: 'ES256', kid: 'ec-1' }), 200],
      ['missing', null, 401, /Bearer <JWT> header is required/],
      ['not a JWT', 'abc', 401, /not a JWT/],
      ['HS256 with another secret', await token({ key: new TextEncoder().encode('x'.repeat(40)) }), 401, /signature/],
      ['expired', await token({ exp: now - 120 }), 401, /expired/],
      ['alg none', unsigned, 401, /unsigned/],
      [
        'RS256 signed by a key not in the JWKS',
        await token({ key: otherRsa, alg: 'RS256', kid: 'rsa-1' }),
        401,
        /signature/,
      ],
      ['RS256 with an unknown key id', await token({ key: otherRsa, alg: 'RS256', kid: 'nobody' }), 401, /no key/],
      ['wrong audience', await token({ claims: { aud: 'someone-else' } }), 401, /aud/],
    ];
    for (const [name, t, status, message] of cases) {
      const r = await relay('/observe/observables', [{ type: 'ip', value: '192.0.2.99' }], t);
      assert.equal(r.status, status, `${name}: ${JSON.stringify(r.json)}`);
      if (status === 401) {
        fits('responses#/$defs/errors', r.json);
        assert.equal(r.json.errors[0].code, 'authorization error', name);
        assert.match(r.json.errors[0].message, message!, name);
        assert.equal(r.headers.get('www-authenticate'), 'Bearer', name);
      } else assert.deepEqual(r.json, { data: {} }, `${name}: nothing seen from 192.0.2.99`);
    }
    // the admin token is not a relay token, and a relay token does not open the admin API
    assert.equal((await relay('/health', {}, gw.token)).status, 401);
    assert.equal((await fetch(`${base}/api/v1/status`, { headers: { authorization: `Bearer ${good}` } })).status, 401);
  },
);

test('observe finds the right messages by every observable type', { skip }, async () => {
  const expect: Array<[string, string, number[]]> = [
    ['domain', 'src.test', [reportMid]],
    ['domain', 'docs.example.test', [reportMid]],
    ['domain', 'evil.test', [heldMid]],
    ['email', 'alice@src.test', [reportMid]],
    ['email', 'Alice.Header@src.test', [reportMid]],
    ['email', 'carol@dst.test', [reportMid]],
    ['email', 'bob@dst.test', [heldMid, reportMid]],
    ['email_subject', 'report figures', [reportMid]],
    ['email_messageid', '<report-1@src.test>', [reportMid]],
    ['email_messageid', 'report-1@src.test', [reportMid]],
    ['cisco_mid', String(heldMid), [heldMid]],
    ['sha256', REPORT_SHA.toUpperCase(), [reportMid]],
    ['sha256', heldSha, [heldMid]],
    ['file_name', 'REPORT.pdf', [reportMid]],
    ['file_name', 'march-invoice.zip', [heldMid]],
    ['url', REPORT_URL, [reportMid]],
    ['ip', '192.0.2.99', []],
    ['md5', 'd41d8cd98f00b204e9800998ecf8427e', []],
  ];
  for (const [type, value, want] of expect) {
    const s = await observe(type, value);
    assert.deepEqual(mids(s), want, `${type} ${value}`);
    for (const x of s) assert.deepEqual(x.observables[0], { type, value }, 'the observable found by comes first');
  }

  // the held message's sighting: contained, high severity, its recipient a target, the zip related
  const [held] = await observe('cisco_mid', String(heldMid));
  assert.equal(held.resolution, 'contained');
  assert.equal(held.severity, 'High');
  assert.equal(held.source, 'Breakwater');
  assert.equal(held.source_uri, `${base}/api/v1/tracking/messages/${heldMid}`);
  assert.match(held.id, /^transient:sighting-/);
  assert.deepEqual(
    held.targets.map((t: Json) => t.observables[0].value),
    ['bob@dst.test'],
  );
  const rel = held.relations.map((r: Json) => `${r.source.value} ${r.relation} ${r.related.type}:${r.related.value}`);
  assert.ok(rel.includes(`mallory@evil.test Sent_To email:bob@dst.test`), rel.join('\n'));
  assert.ok(rel.includes(`${heldMid} Contains sha256:${heldSha}`), rel.join('\n'));
  assert.ok(rel.includes(`${heldMid} Contains file_name:march-invoice.zip`), rel.join('\n'));
  assert.ok(rel.includes(`${heldMid} Contains url:http://pay.evil.test/now`), rel.join('\n'));
  assert.ok(rel.includes(`${heldMid} Received_From ip:127.0.0.1`), rel.join('\n'));

  // the report: two recipients as targets, delivered (allowed)
  const [rep] = await observe('url', REPORT_URL);
  assert.equal(rep.resolution, 'allowed');
  assert.deepEqual(
    rep.targets.map((t: Json) => t.observables[0].value),
    ['bob@dst.test', 'carol@dst.test'],
  );
  assert.ok(rep.relations.some((r: Json) => r.relation === 'Sent_By' && r.related.value === 'alice.header@src.test'));

  // many observables at once: one sighting per message, each with every observable it was found by
  const r = await relay('/observe/observables', [
    { type: 'sha256', value: REPORT_SHA },
    { type: 'email', value: 'carol@dst.test' },
    { type: 'cisco_mid', value: String(heldMid) },
  ]);
  const docs = fits('responses#/$defs/observe', r.json).data.sightings.docs as Json[];
  assert.deepEqual(mids(docs).sort(), [reportMid, heldMid].sort());
  const both = docs.find((d) => mids([d])[0] === reportMid)!;
  assert.deepEqual(both.observables.slice(0, 2), [
    { type: 'sha256', value: REPORT_SHA },
    { type: 'email', value: 'carol@dst.test' },
  ]);
  // and the held zip is judged malicious
  const j = r.json.data.judgements.docs as Json[];
  assert.deepEqual(
    j.map((x) => [x.observable.type, x.disposition_name]),
    [['cisco_mid', 'Malicious']],
  );
});

test('the entity limit caps sightings and verdicts, newest first', { skip }, async () => {
  const s = await observe('ip', '127.0.0.1');
  assert.equal(s.length, LIMIT);
  assert.deepEqual(mids(s), [...bulkMids].reverse().slice(0, LIMIT));
  // five observables seen in mail, each with a verdict: only LIMIT are answered
  const r = await relay('/deliberate/observables', [
    { type: 'email', value: 'news@bulk.test' },
    { type: 'ip', value: '127.0.0.1' },
    { type: 'domain', value: 'bulk.test' },
    { type: 'cisco_mid', value: String(reportMid) },
    { type: 'sha256', value: REPORT_SHA },
  ]);
  assert.equal(fits('responses#/$defs/deliberate', r.json).data.verdicts.count, LIMIT);
});

test(
  'deliberate: the held zip and its sender are Malicious; the victim and clean mail are Unknown',
  { skip },
  async () => {
    const r = await relay('/deliberate/observables', [
      { type: 'sha256', value: heldSha },
      { type: 'email', value: 'mallory@evil.test' },
      { type: 'email', value: 'carol@dst.test' },
    ]);
    assert.equal(r.status, 200);
    const clean = await relay('/deliberate/observables', [
      { type: 'url', value: 'https://never.seen.test/' },
      { type: 'sha256', value: REPORT_SHA },
    ]);
    const v = [r, clean].flatMap((x) => fits('responses#/$defs/deliberate', x.json).data.verdicts.docs as Json[]);
    assert.deepEqual(
      v.map((x) => [x.observable.value, x.disposition, x.disposition_name]),
      [
        [heldSha, 2, 'Malicious'],
        ['mallory@evil.test', 2, 'Malicious'],
        ['carol@dst.test', 5, 'Unknown'],
        [REPORT_SHA, 5, 'Unknown'],
      ],
      'a recipient is never judged by the mail it received; an unseen URL has no verdict',
    );
    for (const x of v) {
      assert.match(x.id, /^transient:verdict-/);
      assert.ok(Date.parse(x.valid_time.end_time) > Date.parse(x.valid_time.start_time));
    }
    // bob received the held zip too: still Unknown
    const bob = await relay('/deliberate/observables', [{ type: 'email', value: 'bob@dst.test' }]);
    assert.equal(bob.json.data.verdicts.docs[0].disposition_name, 'Unknown');
    assert.deepEqual((await relay('/deliberate/observables', [])).json, { data: {} });
  },
);

test("refer links lead to the gateway's tracking of the observable", { skip }, async () => {
  const r = await relay('/refer/observables', [
    { type: 'email', value: 'carol@dst.test' },
    { type: 'cisco_mid', value: String(heldMid) },
    { type: 'md5', value: 'd41d8cd98f00b204e9800998ecf8427e' },
  ]);
  const links = fits('responses#/$defs/refer', r.json).data as Json[];
  assert.equal(links.length, 4, 'email: as sender, as header From, as recipient; the MID');
  assert.deepEqual(links[3], {
    id: `ref-breakwater-search-cisco_mid-mid-${heldMid}`,
    title: `Open MID ${heldMid} in Breakwater`,
    description: `Messages in Breakwater message tracking with ${heldMid} as MID`,
    categories: ['Breakwater', 'Search', 'Email'],
    url: `${base}/ui/#/tracking/${heldMid}`,
  });
  // the web UI's tracking page takes the tracking API's fields: the same search finds the messages
  const asApi = (url: string) =>
    url
      .replace('/ui/#/tracking?', '/api/v1/tracking/messages?')
      .replace('/ui/#/tracking/', '/api/v1/tracking/messages/');
  const admin = { authorization: `Bearer ${gw.token}` };
  const recipient = links.find((l) => l.url.includes('recipient='))!;
  const found = (await (await fetch(asApi(recipient.url), { headers: admin })).json()) as Json;
  assert.deepEqual(
    found.messages.map((m: Json) => m.mid),
    [reportMid],
  );
  const record = (await (await fetch(asApi(links[3].url), { headers: admin })).json()) as Json;
  assert.equal(record.mid, heldMid);
});

test(
  'respond lists the actions per observable; a trigger on a message never delivered fails clearly',
  { skip },
  async () => {
    const r = await relay('/respond/observables', [
      { type: 'cisco_mid', value: String(heldMid) },
      { type: 'email_messageid', value: '<report-1@src.test>' },
      { type: 'email', value: 'mallory@evil.test' },
      { type: 'domain', value: 'evil.test' },
      { type: 'ip', value: '127.0.0.1' },
    ]);
    const actions = fits('responses#/$defs/respond', r.json).data as Json[];
    assert.deepEqual(
      actions.map((a) => `${a['query-params'].observable_type} ${a.id}`),
      [
        'cisco_mid delete',
        'cisco_mid forward',
        'cisco_mid forward-and-delete',
        'email_messageid delete',
        'email_messageid forward',
        'email_messageid forward-and-delete',
        'email block-sender',
        'domain block-domain',
      ],
    );
    assert.deepEqual(actions[0]['query-params'], { observable_type: 'cisco_mid', observable_value: String(heldMid) });

    const trigger = { 'action-id': 'delete', observable_type: 'cisco_mid', observable_value: String(heldMid) };
    const failed = await relay('/respond/trigger', trigger);
    assert.equal(failed.status, 200);
    fits('responses#/$defs/trigger', failed.json);
    assert.equal(failed.json.data.status, 'failure');
    assert.equal(failed.json.errors[0].code, 'action failed');
    // the gateway's responder is mailbox remediation: a held message is in no mailbox
    assert.match(failed.json.errors[0].message, /delete: 0 of 1 mailbox\(es\) done; failed: .*not_delivered/);

    const notOffered = await relay('/respond/trigger', { ...trigger, 'action-id': 'block-sender' });
    assert.equal(notOffered.status, 400);
    assert.equal(fits('responses#/$defs/errors', notOffered.json).errors[0].code, 'invalid argument');

    // A responder plugged in (as the remediation service will be) carries it out, knowing who asked.
    const calls: string[] = [];
    const responder: RelayResponder = {
      async trigger(actionId, o, by) {
        calls.push(`${actionId} ${o.type}:${o.value} by ${by}`);
        return { ok: true };
      },
    };
    const relayService = gw.gateway.relay!;
    relayService.responder = responder;
    try {
      const ok = await relay('/respond/trigger', { ...trigger, extra: 'kept' });
      assert.deepEqual(fits('responses#/$defs/trigger', ok.json), { data: { status: 'success' } });
      assert.deepEqual(calls, [`delete cisco_mid:${heldMid} by xdr:analyst@xdr.test`]);
    } finally {
      relayService.responder = { trigger: async () => ({ ok: false, detail: { reason: 'mailbox_not_found' } }) };
    }
    const detail = await relay('/respond/trigger', trigger);
    assert.match(detail.json.errors[0].message, /mailbox_not_found/);
  },
);

test('malformed requests, unknown types and routes answer in the relay error shape', { skip }, async () => {
  const bad: Array<[string, unknown, string | undefined, number]> = [
    ['unknown type', [{ type: 'colour', value: 'red' }], undefined, 400],
    ['not a list', { type: 'ip', value: '1.2.3.4' }, undefined, 400],
    ['empty value', [{ type: 'ip', value: '' }], undefined, 400],
    ['bad JSON', undefined, '[{"type":', 400],
    ['no body', undefined, '', 400],
  ];
  for (const [name, body, raw, status] of bad) {
    const r = await relay('/observe/observables', body, good, raw === undefined ? {} : { raw });
    assert.equal(r.status, status, `${name}: ${JSON.stringify(r.json)}`);
    assert.equal(fits('responses#/$defs/errors', r.json).errors[0].code, 'invalid argument', name);
  }
  const unknown = await relay('/deliberate/observables', [{ type: 'colour', value: 'red' }]);
  assert.match(unknown.json.errors[0].message, /unknown observable type "colour"/);
  const text = await relay('/observe/observables', undefined, good, { raw: 'x', contentType: 'text/plain' });
  assert.equal(text.status, 415);
  assert.equal(text.json.errors[0].code, 'invalid argument');

  const get = await relay('/observe/observables', undefined, good, { method: 'GET' });
  assert.equal(get.status, 405);
  assert.equal(get.headers.get('allow'), 'POST');
  assert.equal(fits('responses#/$defs/errors', get.json).errors[0].code, 'method not allowed');
  const none = await relay('/observe/nothing', []);
  assert.equal(none.status, 404);
  assert.equal(fits('responses#/$defs/errors', none.json).errors[0].code, 'not found');
  // the admin API keeps its own shape
  const admin = await fetch(`${base}/api/v1/nothing`, { headers: { authorization: `Bearer ${gw.token}` } });
  assert.equal(((await admin.json()) as Json).error.code, 'not_found');
  const put = await fetch(`${base}/health`, { method: 'PUT' });
  assert.equal(((await put.json()) as Json).error.code, 'not_found');
});
