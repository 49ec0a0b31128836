// clamd client (src/antivirus/clamd.ts) against a real clamd with our own signature database
// (test/helpers/clamd.ts), plus a scripted fake clamd for replies a real one will not produce on demand.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { randomBytes, createHash } from 'node:crypto';
import { zipSync } from 'fflate';
import {
  ClamdClient,
  ClamdUnavailableError,
  buildSignatureStamp,
  parseScanReply,
  parseVersion,
  type ClamdOptions,
  type ScanResult,
} from '../src/antivirus/clamd.ts';
import {
  CLAMAV_TESTFILES,
  EICAR,
  encryptedZip,
  hasClamavTestfiles,
  hasClamd,
  startClamd,
  type TestClamd,
} from './helpers/clamd.ts';

const skip = hasClamd()
  ? false
  : 'clamd is not installed (apt-get install clamav-daemon clamav-testfiles; see .ci/run)';
const skipTestfiles = skip || (hasClamavTestfiles() ? false : 'clamav-testfiles is not installed');

const EICAR_NAME = /^Gateway\.Test\.EICAR-(NDB|HDB)\.UNOFFICIAL$/;
const CLAM_EXE_NAME = 'Gateway.Test.ClamExe-HDB.UNOFFICIAL';

let clamd: TestClamd;
const clients: ClamdClient[] = [];
const proxies: Proxy[] = [];

function client(o: Partial<ClamdOptions> = {}): ClamdClient {
  const c = new ClamdClient({
    target: { host: '127.0.0.1', port: clamd.port },
    timeoutMs: 5000,
    maxStreamBytes: 10 * 1024 * 1024,
    maxConnections: 4,
    ...o,
  });
  clients.push(c);
  return c;
}

before(async () => {
  if (skip) return;
  clamd = await startClamd();
});

after(async () => {
  for (const c of clients) await c.close().catch(() => {});
  for (const p of proxies) p.close();
  await clamd?.stop();
});

function assertInfected(r: ScanResult, name: RegExp | string): void {
  assert.equal(r.verdict, 'infected', JSON.stringify(r));
  if (r.verdict !== 'infected') return;
  assert.ok(
    r.names.some((n) => (typeof name === 'string' ? n === name : name.test(n))),
    `${r.names.join(', ')} should match ${name}`,
  );
}

function assertUnscannable(r: ScanResult, reason: string): string {
  assert.equal(r.verdict, 'unscannable', JSON.stringify(r));
  assert.equal(r.verdict === 'unscannable' && r.reason, reason, JSON.stringify(r));
  return r.verdict === 'unscannable' ? r.detail : '';
}

function mimeMessage(
  attachment: { name: string; bytes: Buffer } | null,
  text = 'Please find the report attached.',
): Buffer {
  const lines = [
    'From: Alice <alice@src.test>',
    'To: bob@dst.test',
    'Subject: quarterly report',
    'Message-ID: <r1@src.test>',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b1"',
    '',
    '--b1',
    'Content-Type: text/plain; charset=utf-8',
    '',
    text,
  ];
  if (attachment) {
    lines.push(
      '--b1',
      `Content-Type: application/octet-stream; name="${attachment.name}"`,
      'Content-Transfer-Encoding: base64',
      `Content-Disposition: attachment; filename="${attachment.name}"`,
      '',
      ...(attachment.bytes.toString('base64').match(/.{1,76}/g) ?? []),
    );
  }
  lines.push('--b1--', '');
  return Buffer.from(lines.join('\r\n'));
}

async function* chunks(total: number, size = 64 * 1024, fill = 0x41): AsyncGenerator<Buffer> {
  for (let i = 0; i < total; i += size) yield Buffer.alloc(Math.min(size, total - i), fill);
}

/** A TCP proxy in front of clamd that counts connections and bytes; can cut reused connections. */
interface Proxy {
  port: number;
  accepted: number;
  open: number;
  maxOpen: number;
  bytesIn: number;
  /** the next time a connection that already carried a request sends data, cut it */
  cutNextReused: boolean;
  close(): void;
}
async function startProxy(targetPort: number): Promise<Proxy> {
  const p: Proxy = { port: 0, accepted: 0, open: 0, maxOpen: 0, bytesIn: 0, cutNextReused: false, close: () => {} };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((c) => {
    p.accepted++;
    p.open++;
    p.maxOpen = Math.max(p.maxOpen, p.open);
    sockets.add(c);
    let replied = false;
    const u = net.connect(targetPort, '127.0.0.1');
    sockets.add(u);
    c.on('data', (d) => {
      if (replied && p.cutNextReused) {
        p.cutNextReused = false;
        c.destroy();
        u.destroy();
        return;
      }
      p.bytesIn += d.length;
      u.write(d);
    });
    u.on('data', (d) => {
      replied = true;
      c.write(d);
    });
    const done = () => {
      if (!sockets.has(c)) return;
      sockets.delete(c);
      sockets.delete(u);
      p.open--;
      c.destroy();
      u.destroy();
    };
    c.on('close', done);
    u.on('close', done);
    c.on('error', () => {});
    u.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  p.port = (server.address() as net.AddressInfo).port;
  p.close = () => {
    for (const s of sockets) s.destroy();
    server.close();
  };
  proxies.push(p);
  return p;
}

/**
 * A scripted clamd: understands zIDSESSION, zINSTREAM (chunks), zPING, zVERSION, zEND; `reply` gives
 * the answer to each INSTREAM (null: say nothing).
 */
async function fakeClamd(reply: (data: Buffer) => string | Buffer | null): Promise<{ port: number; close(): void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let buf = Buffer.alloc(0);
    let session = false;
    let id = 0;
    let stream: Buffer[] | null = null;
    const send = (text: string | Buffer) => {
      const prefix = session ? `${id}: ` : '';
      s.write(Buffer.concat([Buffer.from(prefix), Buffer.isBuffer(text) ? text : Buffer.from(text), Buffer.from([0])]));
    };
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (stream) {
          if (buf.length < 4) return;
          const n = buf.readUInt32BE(0);
          if (buf.length < 4 + n) return;
          const piece = buf.subarray(4, 4 + n);
          buf = buf.subarray(4 + n);
          if (n > 0) {
            stream.push(piece);
            continue;
          }
          const data = Buffer.concat(stream);
          stream = null;
          const r = reply(data);
          if (r !== null) send(r);
          continue;
        }
        const nul = buf.indexOf(0);
        if (nul === -1) return;
        const cmd = buf.subarray(0, nul).toString();
        buf = buf.subarray(nul + 1);
        if (cmd === 'zIDSESSION') {
          session = true;
          continue;
        }
        if (cmd === 'zEND') {
          s.end();
          return;
        }
        if (session) id++;
        if (cmd === 'zINSTREAM') stream = [];
        else if (cmd === 'zPING') send('PONG');
        else if (cmd === 'zVERSION') send('ClamAV 1.4.6/27500/Mon Nov 23 09:00:00 2026');
        else send('UNKNOWN COMMAND');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

// ---------------------------------------------------------------- reply parsing (no clamd needed)

test('replies map to verdicts: OK, one or several FOUND names, size limit, other ERROR lines', () => {
  assert.deepEqual(parseScanReply('stream: OK\0'), { verdict: 'clean' });
  assert.deepEqual(parseScanReply('stream: Eicar-Signature FOUND'), {
    verdict: 'infected',
    names: ['Eicar-Signature'],
  });
  assert.deepEqual(parseScanReply('stream: Win.Test.A FOUND\nstream: Win.Test.B FOUND\n'), {
    verdict: 'infected',
    names: ['Win.Test.A', 'Win.Test.B'],
  });
  assertUnscannable(parseScanReply('INSTREAM size limit exceeded. ERROR'), 'size_limit');
  assert.match(assertUnscannable(parseScanReply("stream: Can't allocate memory ERROR"), 'error'), /allocate memory/);
  assert.match(assertUnscannable(parseScanReply('COMMAND READ TIMED OUT'), 'error'), /TIMED OUT/);
  assertUnscannable(parseScanReply(''), 'error');
});

test('Heuristics.Encrypted names mean unscannable/encrypted unless a real detection comes with them', () => {
  assert.match(
    assertUnscannable(parseScanReply('stream: Heuristics.Encrypted.Zip FOUND'), 'encrypted'),
    /Encrypted\.Zip/,
  );
  assertUnscannable(
    parseScanReply('stream: Heuristics.Encrypted.PDF FOUND\nstream: Heuristics.Encrypted.Zip FOUND'),
    'encrypted',
  );
  assertUnscannable(parseScanReply('stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND'), 'size_limit');
  assert.deepEqual(parseScanReply('stream: Heuristics.Encrypted.Zip FOUND\nstream: Eicar FOUND'), {
    verdict: 'infected',
    names: ['Heuristics.Encrypted.Zip', 'Eicar'],
  });
});

test('VERSION is parsed with and without the daily database version', () => {
  assert.deepEqual(parseVersion('ClamAV 1.4.6/27500/Mon Nov 23 09:12:01 2026\0'), {
    engine: '1.4.6',
    signatureVersion: 27500,
    signatureDate: 'Mon Nov 23 09:12:01 2026',
    raw: 'ClamAV 1.4.6/27500/Mon Nov 23 09:12:01 2026',
  });
  assert.deepEqual(parseVersion('ClamAV 1.4.6'), {
    engine: '1.4.6',
    signatureVersion: null,
    signatureDate: null,
    raw: 'ClamAV 1.4.6',
  });
});

test('the signature stamp is an unsigned CVD whose header carries the version', () => {
  const s = buildSignatureStamp(42, new Date('2026-11-23T10:00:00Z'));
  const head = s.subarray(0, 512).toString('latin1').trimEnd();
  const f = head.split(':');
  assert.equal(f[0], 'ClamAV-VDB');
  assert.equal(f[2], '42');
  assert.equal(f[5], createHash('md5').update(s.subarray(512)).digest('hex'));
  assert.equal(f[8], String(Date.parse('2026-11-23T10:00:00Z') / 1000));
  assert.throws(() => buildSignatureStamp(0), RangeError);
});

test('programmer errors reject; clamd failures never do', async () => {
  const c = new ClamdClient({
    target: { host: '127.0.0.1', port: 1 },
    timeoutMs: 500,
    maxStreamBytes: 1000,
    maxConnections: 1,
  });
  await assert.rejects(c.scan('text' as unknown as Buffer), TypeError);
  await assert.rejects(c.scan(Buffer.from('x'), -1), RangeError);
  assertUnscannable(await c.scan(Buffer.from('x')), 'unavailable');
  assert.equal(await c.ping(), false);
  await assert.rejects(c.version(), ClamdUnavailableError);
  await c.close();
  await assert.rejects(c.scan(Buffer.from('x')), /after close/);
  assert.throws(
    () => new ClamdClient({ target: {} as never, timeoutMs: 1, maxStreamBytes: 1, maxConnections: 1 }),
    TypeError,
  );
  assert.throws(
    () => new ClamdClient({ target: { socket: '/x' }, timeoutMs: 1, maxStreamBytes: 1, maxConnections: 0 }),
    RangeError,
  );
});

test('session replies carry request ids; several names in one reply all come back', async () => {
  const fake = await fakeClamd((d) => (d.includes('two') ? 'stream: A.One FOUND\nstream: B.Two FOUND' : 'stream: OK'));
  const c = new ClamdClient({
    target: { host: '127.0.0.1', port: fake.port },
    timeoutMs: 2000,
    maxStreamBytes: 1e6,
    maxConnections: 1,
  });
  try {
    assert.deepEqual(await c.scan(Buffer.from('one')), { verdict: 'clean' });
    assert.deepEqual(await c.scan(Buffer.from('two')), { verdict: 'infected', names: ['A.One', 'B.Two'] });
    assert.deepEqual(await c.scan(Buffer.from('three')), { verdict: 'clean' });
    const s = c.stats();
    assert.equal(s.connectionsOpened, 1, 'one session for all three scans');
    assert.equal(s.sessionReuses, 2);
  } finally {
    await c.close();
    fake.close();
  }
});

test('an oversized reply is cut off and comes back unscannable/error', async () => {
  const fake = await fakeClamd(() => Buffer.alloc(200_000, 0x61));
  const c = new ClamdClient({
    target: { host: '127.0.0.1', port: fake.port },
    timeoutMs: 2000,
    maxStreamBytes: 1e6,
    maxConnections: 1,
  });
  try {
    assert.match(assertUnscannable(await c.scan(Buffer.from('x')), 'error'), /longer than 65536/);
  } finally {
    await c.close();
    fake.close();
  }
});

test('a clamd that accepts but never answers gives unscannable/timeout after timeoutMs', async () => {
  const fake = await fakeClamd(() => null);
  const c = new ClamdClient({
    target: { host: '127.0.0.1', port: fake.port },
    timeoutMs: 300,
    maxStreamBytes: 1e6,
    maxConnections: 1,
  });
  try {
    const t0 = Date.now();
    assertUnscannable(await c.scan(Buffer.from('x')), 'timeout');
    const ms = Date.now() - t0;
    assert.ok(ms >= 250 && ms < 1500, `${ms} ms`);
    // a stalled streamed input is bounded by the same timeout
    const stalled = (async function* () {
      yield Buffer.from('a');
      await new Promise(() => {});
    })();
    assertUnscannable(await c.scan(stalled), 'timeout');
  } finally {
    await c.close();
    fake.close();
  }
});

// ---------------------------------------------------------------- real clamd

test('EICAR is infected raw, zipped, and as a base64 attachment in a whole message', { skip }, async () => {
  const c = client();
  assertInfected(await c.scan(Buffer.from(EICAR)), EICAR_NAME);
  const zip = Buffer.from(zipSync({ 'docs/readme.txt': Buffer.from('hello'), 'tool.com': Buffer.from(EICAR) }));
  assertInfected(await c.scan(zip), EICAR_NAME);
  const msg = mimeMessage({ name: 'tool.com', bytes: Buffer.from(EICAR) });
  assert.ok(!msg.includes('EICAR-STANDARD'), 'only the base64 form is in the message');
  assertInfected(await c.scan(msg), EICAR_NAME);
  const zippedInMail = mimeMessage({ name: 'archive.zip', bytes: zip });
  assertInfected(await c.scan(zippedInMail), EICAR_NAME);
});

test('a clean message is clean, over TCP and over the unix socket', { skip }, async () => {
  const msg = mimeMessage({
    name: 'report.pdf',
    bytes: Buffer.concat([Buffer.from('%PDF-1.7\n'), randomBytes(50_000)]),
  });
  assert.deepEqual(await client().scan(msg), { verdict: 'clean' });
  const u = client({ target: { socket: clamd.socket } });
  assert.deepEqual(await u.scan(msg), { verdict: 'clean' });
  assertInfected(await u.scan(Buffer.from(EICAR)), EICAR_NAME);
  assert.deepEqual(await u.scan(Buffer.alloc(0)), { verdict: 'clean' });
});

test('streamed input (AsyncIterable) is scanned like a buffer', { skip }, async () => {
  const c = client();
  const msg = mimeMessage({ name: 'tool.com', bytes: Buffer.from(EICAR) });
  async function* pieces() {
    for (let i = 0; i < msg.length; i += 100) yield msg.subarray(i, i + 100);
  }
  assertInfected(await c.scan(pieces(), msg.length), EICAR_NAME);
  assert.deepEqual(await c.scan(chunks(300_000)), { verdict: 'clean' });
});

test(
  'clamav-testfiles (clam.exe plain, packed, and in zip, 7z, tgz, cab, mail) are infected',
  { skip: skipTestfiles },
  async () => {
    const c = client();
    const files = [
      'clam.exe',
      'clam-upx.exe',
      'clam.zip',
      'clam.7z',
      'clam.tar.gz',
      'clam.cab',
      'clam.exe.mbox.base64',
      'clam.pdf',
    ];
    const results = await Promise.all(files.map((f) => c.scan(readFileSync(path.join(CLAMAV_TESTFILES, f)))));
    results.forEach((r, i) => assert.deepEqual(r, { verdict: 'infected', names: [CLAM_EXE_NAME] }, files[i]));
  },
);

test('an encrypted zip is unscannable/encrypted (AlertEncrypted), even when it hides EICAR', { skip }, async () => {
  const c = client();
  const r1 = await c.scan(encryptedZip('notes.txt', Buffer.from('quarterly numbers\n'), 'secret'));
  assert.match(assertUnscannable(r1, 'encrypted'), /^Heuristics\.Encrypted\.Zip$/);
  const r2 = await c.scan(
    mimeMessage({ name: 'invoice.zip', bytes: encryptedZip('invoice.com', Buffer.from(EICAR), '1234') }),
  );
  assertUnscannable(r2, 'encrypted');
  // the same content unencrypted is found
  assertInfected(await c.scan(Buffer.from(zipSync({ 'invoice.com': Buffer.from(EICAR) }))), EICAR_NAME);
});

test('input larger than maxStreamBytes is unscannable/size_limit and not sent', { skip }, async () => {
  const proxy = await startProxy(clamd.port);
  const max = 1024 * 1024;
  const c = client({ target: { host: '127.0.0.1', port: proxy.port }, maxStreamBytes: max });
  // known size (a buffer, or a stream with its size): nothing is sent at all
  assert.match(assertUnscannable(await c.scan(Buffer.alloc(max + 1)), 'size_limit'), /exceed maxStreamBytes/);
  assertUnscannable(await c.scan(chunks(5 * max), 5 * max), 'size_limit');
  assert.equal(proxy.accepted, 0, 'no connection to clamd');
  // unknown size: sending stops at the limit
  assertUnscannable(await c.scan(chunks(5 * max)), 'size_limit');
  assert.ok(proxy.bytesIn <= max + 64 * 1024, `${proxy.bytesIn} bytes sent`);
  // exactly the limit is scanned
  assert.deepEqual(await c.scan(Buffer.alloc(max, 0x42)), { verdict: 'clean' });
});

test(
  "clamd's own StreamMaxLength refusal comes back as unscannable/size_limit, on sessions too",
  { skip },
  async () => {
    const small = await startClamd({ streamMaxLength: 1024 * 1024, stamp: false });
    const c = new ClamdClient({
      target: { host: '127.0.0.1', port: small.port },
      timeoutMs: 5000,
      maxStreamBytes: 20 * 1024 * 1024, // misconfigured: above clamd's limit
      maxConnections: 2,
    });
    try {
      assert.deepEqual(await c.scan(Buffer.from('warm up the session')), { verdict: 'clean' });
      for (let i = 0; i < 5; i++) {
        const r = await c.scan(Buffer.alloc(4 * 1024 * 1024, 0x43));
        assert.match(assertUnscannable(r, 'size_limit'), /INSTREAM size limit exceeded/);
      }
      assertInfected(await c.scan(Buffer.from(EICAR)), EICAR_NAME);
    } finally {
      await c.close();
      await small.stop();
    }
  },
);

test(
  'many concurrent scans share at most maxConnections connections, with correct verdicts each',
  { skip },
  async () => {
    const proxy = await startProxy(clamd.port);
    const c = client({ target: { host: '127.0.0.1', port: proxy.port }, maxConnections: 3 });
    const inputs = Array.from({ length: 60 }, (_, i) =>
      i % 3 === 0 ? mimeMessage({ name: `t${i}.com`, bytes: Buffer.from(EICAR) }) : mimeMessage(null, `message ${i}`),
    );
    const results = await Promise.all(inputs.map((b) => c.scan(b)));
    results.forEach((r, i) =>
      i % 3 === 0 ? assertInfected(r, EICAR_NAME) : assert.deepEqual(r, { verdict: 'clean' }),
    );
    assert.ok(proxy.accepted <= 3, `${proxy.accepted} connections opened`);
    assert.ok(proxy.maxOpen <= 3, `${proxy.maxOpen} open at once`);
    const s = c.stats();
    assert.equal(s.connectionsOpened, proxy.accepted);
    assert.equal(s.sessionsOpened, proxy.accepted);
    assert.ok(s.sessionReuses >= 57, `${s.sessionReuses} reuses`);
    assert.ok(s.open <= 3 && s.idle <= 3);
    // a second wave reuses the same sessions
    await Promise.all(inputs.slice(0, 10).map((b) => c.scan(b)));
    assert.ok(proxy.accepted <= 3, `${proxy.accepted} connections after a second wave`);
  },
);

test('a session that breaks is retried once over a fresh connection', { skip }, async () => {
  const proxy = await startProxy(clamd.port);
  const c = client({ target: { host: '127.0.0.1', port: proxy.port }, maxConnections: 1 });
  assert.deepEqual(await c.scan(Buffer.from('first')), { verdict: 'clean' });
  proxy.cutNextReused = true;
  assertInfected(await c.scan(Buffer.from(EICAR)), EICAR_NAME);
  const msg = mimeMessage({ name: 'tool.com', bytes: Buffer.from(EICAR) });
  await c.scan(Buffer.from('open a session again'));
  proxy.cutNextReused = true;
  // streamed input is replayed from what was already read
  async function* pieces() {
    for (let i = 0; i < msg.length; i += 64) yield msg.subarray(i, i + 64);
  }
  assertInfected(await c.scan(pieces()), EICAR_NAME);
  assert.equal(c.stats().sessionFallbacks, 2);
  assert.deepEqual(await c.scan(Buffer.from('later')), { verdict: 'clean' });
});

test("sessions closed by clamd's ReadTimeout are replaced without failing a scan", { skip }, async () => {
  const short = await startClamd({ extraConfig: ['ReadTimeout 1'], stamp: false });
  const c = new ClamdClient({
    target: { socket: short.socket },
    timeoutMs: 5000,
    maxStreamBytes: 1e6,
    maxConnections: 2,
  });
  try {
    assert.deepEqual(await c.scan(Buffer.from('a')), { verdict: 'clean' });
    await new Promise((r) => setTimeout(r, 2500));
    assertInfected(await c.scan(Buffer.from(EICAR)), EICAR_NAME);
    const s = c.stats();
    assert.equal(s.sessionsOpened, 2, 'a new session replaced the one clamd closed');
    assert.equal(s.sessionReuses, 0);
    assert.equal(s.sessionFallbacks, 0);
  } finally {
    await c.close();
    await short.stop();
  }
});

test(
  'clamd paused: a scan gives unscannable/timeout after timeoutMs, and works once clamd resumes',
  { skip },
  async () => {
    const c = client({ timeoutMs: 600 });
    assert.deepEqual(await c.scan(Buffer.from('warm')), { verdict: 'clean' });
    clamd.pause();
    try {
      const t0 = Date.now();
      assertUnscannable(await c.scan(mimeMessage(null)), 'timeout');
      const ms = Date.now() - t0;
      assert.ok(ms >= 550 && ms < 2000, `${ms} ms`);
    } finally {
      clamd.resume();
    }
    assertInfected(await c.scan(Buffer.from(EICAR)), EICAR_NAME);
  },
);

test(
  'clamd killed: scans are unscannable/unavailable at once; after a restart the same client scans again',
  { skip, timeout: 30_000 },
  async () => {
    const c = client({ maxConnections: 3, timeoutMs: 5000 });
    await Promise.all([1, 2, 3].map((i) => c.scan(Buffer.from(`warm ${i}`))));
    assert.ok(c.stats().idle >= 1, 'sessions are pooled');
    clamd.kill();
    const t0 = Date.now();
    const down = await Promise.all(
      [1, 2, 3, 4].map(() => c.scan(mimeMessage({ name: 't.com', bytes: Buffer.from(EICAR) }))),
    );
    for (const r of down) assertUnscannable(r, 'unavailable');
    assert.ok(Date.now() - t0 < 1500, `${Date.now() - t0} ms`);
    assert.equal(await c.ping(), false);
    await assert.rejects(c.version(), ClamdUnavailableError);
    await clamd.restart();
    assert.equal(await c.ping(), true);
    assertInfected(await c.scan(Buffer.from(EICAR)), EICAR_NAME);
    const again = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => c.scan(Buffer.from(`after ${i}`))));
    for (const r of again) assert.deepEqual(r, { verdict: 'clean' });
    assert.ok(c.stats().open <= 3);
  },
);

test(
  'version() reports the stamp version; addSignature + RELOAD raises it and the new signature detects',
  { skip },
  async () => {
    const c = client();
    const v1 = await c.version();
    assert.equal(v1.engine.split('.')[0], '1');
    assert.equal(v1.signatureVersion, clamd.stampVersion);
    assert.ok(v1.signatureDate && /\d{4}$/.test(v1.signatureDate), v1.raw);
    const payload = Buffer.from(`breakwater test payload ${randomBytes(8).toString('hex')}`);
    assert.deepEqual(await c.scan(payload), { verdict: 'clean' });
    const md5 = createHash('md5').update(payload).digest('hex');
    await clamd.addSignature(`${md5}:${payload.length}:Breakwater.Test.Payload`, 'hdb');
    const v2 = await c.version();
    assert.equal(v2.signatureVersion, v1.signatureVersion! + 1);
    assertInfected(await c.scan(payload), 'Breakwater.Test.Payload.UNOFFICIAL');
    // a body signature (.ndb) found inside a message
    const marker = `bw-marker-${randomBytes(6).toString('hex')}`;
    await clamd.addSignature(`Breakwater.Test.Marker:0:*:${Buffer.from(marker).toString('hex')}`, 'ndb');
    assert.equal((await c.version()).signatureVersion, v1.signatureVersion! + 2);
    assertInfected(await c.scan(mimeMessage(null, `hello ${marker} bye`)), 'Breakwater.Test.Marker.UNOFFICIAL');
  },
);

test(
  'without a stamp clamd reports no signature version, even after a RELOAD with new signatures',
  { skip },
  async () => {
    const bare = await startClamd({ stamp: false });
    const c = new ClamdClient({
      target: { host: '127.0.0.1', port: bare.port },
      timeoutMs: 5000,
      maxStreamBytes: 1e6,
      maxConnections: 1,
    });
    try {
      const v1 = await c.version();
      assert.match(v1.raw, /^ClamAV \d+\.\d+\.\d+$/);
      assert.equal(v1.signatureVersion, null);
      assert.equal(v1.signatureDate, null);
      const payload = Buffer.from(`unstamped ${randomBytes(8).toString('hex')}`);
      await bare.addSignature(
        `${createHash('md5').update(payload).digest('hex')}:${payload.length}:Breakwater.Test.Unstamped`,
      );
      assertInfected(await c.scan(payload), 'Breakwater.Test.Unstamped.UNOFFICIAL');
      assert.deepEqual(await c.version(), v1, 'nothing in VERSION changed');
    } finally {
      await c.close();
      await bare.stop();
    }
  },
);

test('close() waits for scans in flight and ends the pooled sessions', { skip }, async () => {
  const c = new ClamdClient({
    target: { host: '127.0.0.1', port: clamd.port },
    timeoutMs: 5000,
    maxStreamBytes: 1e7,
    maxConnections: 2,
  });
  const pending = [c.scan(Buffer.from(EICAR)), c.scan(Buffer.alloc(2_000_000, 0x44)), c.scan(Buffer.from('x'))];
  await new Promise((r) => setTimeout(r, 5));
  await c.close();
  const [a, b, x] = await Promise.all(pending);
  assertInfected(a, EICAR_NAME);
  assert.deepEqual(b, { verdict: 'clean' });
  assert.ok(x.verdict === 'clean' || (x.verdict === 'unscannable' && x.reason === 'unavailable'), JSON.stringify(x));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(c.stats().open, 0);
});
