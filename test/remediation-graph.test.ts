// Mailbox remediation through Microsoft Graph, against a local HTTP server shaped from Microsoft's
// published reference (not Microsoft 365 itself): the v2.0 token endpoint (client credentials with a
// secret or a certificate's signed assertion), GET /v1.0/users/{id}/messages?$filter=internetMessageId eq
// '…', GET …/$value, POST …/move (deleteditems), DELETE, errors `{ error: { code, message } }` with 401
// and 404. Also: a chained profile (an unreachable IMAP server first, then Graph).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createPublicKey, verify, X509Certificate } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { startTestGateway, testConfig } from './helpers/gateway.ts';
import { deadPort, run, tempDir, waitFor } from './helpers/peers.ts';
import { sendMessage } from './helpers/rawsmtp.ts';

interface GraphMessage {
  id: string;
  internetMessageId: string;
  parentFolderId: string;
  mime: string;
}
const mailboxes = new Map<string, GraphMessage[]>();
const requests: string[] = [];
const tokens = { issued: 0, assertions: 0 };
let server: Server;
let base: string;
let certThumbprint: string;
let certPem: string;
let keyFile: string;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
/** the on-premises IMAP server that never answers */
let onprem: Awaited<ReturnType<typeof deadPort>> | undefined;

function body(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let b = '';
    req.on('data', (d) => (b += d));
    req.on('end', () => resolve(b));
  });
}

async function graph(req: IncomingMessage): Promise<{ status: number; json?: unknown; text?: string }> {
  const url = new URL(req.url!, base);
  requests.push(`${req.method} ${url.pathname}`);
  const err = (status: number, code: string, message: string) => ({ status, json: { error: { code, message } } });
  const token = /^\/([^/]+)\/oauth2\/v2\.0\/token$/.exec(url.pathname);
  if (token && req.method === 'POST') {
    const form = new URLSearchParams(await body(req));
    if (token[1] !== 'tenant-1' || form.get('grant_type') !== 'client_credentials' || form.get('client_id') !== 'app-1')
      return { status: 400, json: { error: 'invalid_request', error_description: 'AADSTS90002: tenant not found' } };
    if (form.get('scope') !== `${new URL(base).origin}/.default`)
      return { status: 400, json: { error: 'invalid_scope', error_description: 'AADSTS70011' } };
    const assertion = form.get('client_assertion');
    if (assertion) {
      // RFC 7523: a JWT signed by the certificate's key, x5t its SHA-1 thumbprint, aud the token URL
      const [h, c, sig] = assertion.split('.');
      const header = JSON.parse(Buffer.from(h, 'base64url').toString());
      const claims = JSON.parse(Buffer.from(c, 'base64url').toString());
      const ok =
        form.get('client_assertion_type') === 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer' &&
        header.alg === 'RS256' &&
        Buffer.from(header.x5t, 'base64url').toString('hex').toUpperCase() === certThumbprint &&
        claims.aud === `${base}/tenant-1/oauth2/v2.0/token` &&
        claims.iss === 'app-1' &&
        claims.sub === 'app-1' &&
        claims.exp > Date.now() / 1000 &&
        verify('sha256', Buffer.from(`${h}.${c}`), createPublicKey(certPem), Buffer.from(sig, 'base64url'));
      if (!ok) return { status: 401, json: { error: 'invalid_client', error_description: 'AADSTS700027' } };
      tokens.assertions++;
    } else if (form.get('client_secret') !== 's3cret')
      return {
        status: 401,
        json: { error: 'invalid_client', error_description: 'AADSTS7000215: Invalid client secret provided.' },
      };
    tokens.issued++;
    return { status: 200, json: { token_type: 'Bearer', expires_in: 3599, access_token: `tok-${tokens.issued}` } };
  }
  if (!/^Bearer tok-\d+$/.test(req.headers.authorization ?? ''))
    return err(401, 'InvalidAuthenticationToken', 'Access token is empty.');
  const m = /^\/v1\.0\/users\/([^/]+)\/(messages|mailFolders\/deleteditems)(?:\/([^/]+)(?:\/(move|\$value))?)?$/.exec(
    url.pathname,
  );
  if (!m) return err(400, 'BadRequest', 'Unsupported request');
  const box = mailboxes.get(decodeURIComponent(m[1]));
  if (!box) return err(404, 'ErrorInvalidUser', `The requested user '${decodeURIComponent(m[1])}' is invalid.`);
  if (m[2] !== 'messages') return { status: 200, json: { id: 'AAMkDeleted' } };
  if (!m[3] && req.method === 'GET') {
    const f = /^internetMessageId eq '(.*)'$/.exec(url.searchParams.get('$filter') ?? '');
    if (!f) return err(400, 'BadRequest', 'Invalid filter clause');
    const id = f[1].replace(/''/g, "'");
    return {
      status: 200,
      json: {
        value: box
          .filter((x) => x.internetMessageId === id)
          .map((x) => ({ id: x.id, parentFolderId: x.parentFolderId })),
      },
    };
  }
  const msg = box.find((x) => x.id === decodeURIComponent(m[3] ?? ''));
  if (!msg) return err(404, 'ErrorItemNotFound', 'The specified object was not found in the store.');
  if (m[4] === '$value' && req.method === 'GET') return { status: 200, text: msg.mime };
  if (m[4] === 'move' && req.method === 'POST') {
    const dest = JSON.parse(await body(req)).destinationId;
    assert.equal(dest, 'deleteditems');
    msg.parentFolderId = 'AAMkDeleted';
    return { status: 201, json: { id: msg.id } };
  }
  if (!m[4] && req.method === 'DELETE') {
    box.splice(box.indexOf(msg), 1);
    return { status: 204 };
  }
  return err(405, 'ErrorInvalidRequest', 'The OData request is not supported.');
}

async function send(name: string, to: string): Promise<number> {
  const raw = `From: <mallory@evil.test>\r\nTo: <${to}>\r\nSubject: ${name}\r\nMessage-ID: <${name}@evil.test>\r\n\r\nbody of ${name}\r\n`;
  const { mid, reply } = await sendMessage(gw.port('outgoing'), 'mallory@evil.test', [to], raw);
  assert.ok(mid, reply);
  await waitFor(() => gw.gateway.tracker.show(mid)?.status === 'delivered', 10_000, `${name} delivered`);
  // what Microsoft 365 would hold: the delivered message, in the Inbox
  const box = mailboxes.get(to);
  box?.push({ id: `AAMk-${name}`, internetMessageId: `<${name}@evil.test>`, parentFolderId: 'AAMkInbox', mime: raw });
  return mid;
}

before(async () => {
  const dir = tempDir('bw-graph-');
  keyFile = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  const r = await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-days',
    '1',
    '-subj',
    '/CN=breakwater-test',
  ]);
  assert.equal(r.code, 0, r.out);
  certPem = readFileSync(certFile, 'utf8');
  certThumbprint = new X509Certificate(certPem).fingerprint.replace(/:/g, '');
  mailboxes.set('ann@m365.test', []);
  mailboxes.set('ben@hybrid.test', []);
  server = createServer((req, res) => {
    void graph(req).then((a) => {
      res.statusCode = a.status;
      if (a.json !== undefined) res.setHeader('content-type', 'application/json');
      res.end(a.json !== undefined ? JSON.stringify(a.json) : (a.text ?? ''));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const graphProfile = { type: 'graph', tenantId: 'tenant-1', clientId: 'app-1', authority: base, graphUrl: base };
  gw = await startTestGateway(
    testConfig({
      routes: { '*': ['file:delivered'] },
      remediation: {
        profiles: [
          { name: 'm365', ...graphProfile, clientSecret: 's3cret' },
          {
            name: 'm365-cert',
            ...graphProfile,
            certificate: { key: keyFile, thumbprint: certThumbprint },
            deleteMode: 'purge',
          },
          { name: 'm365-bad', ...graphProfile, clientSecret: 'wrong' },
          {
            name: 'onprem',
            type: 'imap',
            host: '127.0.0.1',
            port: (onprem = await deadPort()).port, // closed at once: a transient error
            tls: 'none',
            masterUser: 'admin',
            masterPassword: 'x',
            next: 'm365',
          },
        ],
        mappings: [
          { domain: 'm365.test', profile: 'm365' },
          { domain: 'cert.m365.test', profile: 'm365-cert' },
          { domain: 'bad.test', profile: 'm365-bad' },
          { domain: 'hybrid.test', profile: 'onprem' },
        ],
        forwardTo: 'soc@sec.test',
      },
    }),
  );
});

after(async () => {
  await gw?.stop();
  server?.close();
  await onprem?.release();
});

/** The remediation attempts in tracking, once there are `n` (tracking writes in batches). */
async function events(mid: number, n: number): Promise<string[]> {
  const list = () =>
    gw.gateway.tracker
      .show(mid)!
      .events.filter((e) => e.type === 'remediation.attempt')
      .map((e) => `${e.profile} ${e.attempt} ${e.result} ${e.reason}`);
  await waitFor(() => list().length >= n, 5000, `${n} attempts of MID ${mid} in tracking`);
  return list();
}

test('delete moves the message to Deleted Items; again, it is message_not_found', async () => {
  const mid = await send('g1', 'ann@m365.test');
  const r = await gw.gateway.remediation.run({ action: 'delete', mids: [mid], by: 'hub' });
  assert.deepEqual([r.deleted, r.failed], [1, 0], JSON.stringify(r.failures));
  assert.equal(mailboxes.get('ann@m365.test')!.find((x) => x.id === 'AAMk-g1')!.parentFolderId, 'AAMkDeleted');
  assert.ok(requests.includes('POST /v1.0/users/ann%40m365.test/messages/AAMk-g1/move'), requests.join('\n'));
  const again = await gw.gateway.remediation.run({ action: 'delete', mids: [mid], by: 'hub' });
  assert.deepEqual(
    again.failures.map((f) => f.reason),
    ['message_not_found'],
  );
  assert.deepEqual(await events(mid, 2), ['m365 1 done null', 'm365 1 failed message_not_found']);
  assert.equal(tokens.issued, 1, 'the token is cached');
});

test('forward-and-delete with a certificate credential: the MIME goes through our queue, then DELETE', async () => {
  mailboxes.set('cat@cert.m365.test', []);
  const mid = await send('g2', 'cat@cert.m365.test');
  const r = await gw.gateway.remediation.run({ action: 'forward-and-delete', messageIds: ['g2@evil.test'], by: null });
  assert.deepEqual([r.forwardedAndDeleted, r.failed], [1, 0], JSON.stringify(r.failures));
  assert.equal(tokens.assertions, 1);
  assert.deepEqual(mailboxes.get('cat@cert.m365.test'), [], 'purged');
  const fwd = r.remediated[0].forwardMid!;
  await waitFor(() => gw.gateway.tracker.show(fwd)?.status === 'delivered', 10_000, 'forward delivered');
  const copy = readFileSync(path.join(gw.dataDir, 'delivered', `${fwd}.eml`), 'utf8');
  assert.match(copy, /^To: <soc@sec\.test>$/m);
  assert.match(copy, /Content-Type: message\/rfc822/);
  assert.match(copy, /\r\nMessage-ID: <g2@evil\.test>\r\nbody|Message-ID: <g2@evil\.test>\r\n\r\nbody of g2/);
  assert.equal(gw.gateway.tracker.show(fwd)!.recipients[0].address, 'soc@sec.test');
  assert.ok(readdirSync(path.join(gw.dataDir, 'delivered')).includes(`${mid}.eml`));
});

test('a wrong client secret is auth_failed; an unknown user is mailbox_not_found', async () => {
  const bad = await send('g3', 'dan@bad.test');
  const unknown = await send('g4', 'nobody@m365.test');
  const r = await gw.gateway.remediation.run({ action: 'delete', mids: [bad, unknown], by: null });
  assert.deepEqual(
    r.failures.map((f) => `${f.recipient} ${f.reason}`),
    ['dan@bad.test auth_failed', 'nobody@m365.test mailbox_not_found'],
  );
  assert.match(r.failures[0].detail, /AADSTS7000215/);
  assert.ok(!JSON.stringify(r).includes('wrong') && !JSON.stringify(gw.gateway.tracker.show(bad)).includes('wrong'));
  assert.deepEqual(await events(bad, 1), ['m365-bad 1 failed auth_failed']);
});

test('a chained profile: the unreachable IMAP server is retried, then Graph does it', async () => {
  const mid = await send('g5', 'ben@hybrid.test');
  const r = await gw.gateway.remediation.run({ action: 'delete', mids: [mid], by: null });
  assert.deepEqual([r.deleted, r.failed], [1, 0], JSON.stringify(r.failures));
  assert.equal(r.remediated[0].profile, 'm365');
  assert.deepEqual(await events(mid, 4), [
    'onprem 1 failed error',
    'onprem 2 failed error',
    'onprem 3 failed error',
    'm365 1 done null',
  ]);
});
