import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync, zipSync, type Zippable } from 'fflate';
import MailComposer from 'nodemailer/lib/mail-composer';
import PostalMime from 'postal-mime';
import { parseMessage } from '../src/mime/parse.ts';
import { ParseTimeoutError, type ParsedMessage } from '../src/mime/types.ts';
import { UrlCollector, extractHtmlUrls, extractTextUrls } from '../src/mime/urls.ts';
import { createTransferDecoder } from '../src/mime/decode.ts';

const require = createRequire(import.meta.url);
const { simpleParser } = require('mailparser') as {
  simpleParser(input: Buffer): Promise<{ attachments: Array<{ filename?: string }> }>;
};

const FIXTURES = path.resolve(import.meta.dirname, 'fixtures/mime');

type MailOptions = ConstructorParameters<typeof MailComposer>[0];

function compose(options: MailOptions): Promise<Buffer> {
  return new MailComposer({ from: 'Sender <sender@example.com>', to: 'rcpt@example.org', ...options })
    .compile()
    .build();
}

function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A minimal PE file: MZ header, DOS stub and a PE signature at e_lfanew. */
function peStub(): Buffer {
  const buf = Buffer.alloc(1024);
  buf.write('MZ', 0, 'latin1');
  buf.writeUInt32LE(0x80, 0x3c);
  buf.write('This program cannot be run in DOS mode.', 0x4e, 'latin1');
  buf.write('PE\0\0', 0x80, 'latin1');
  buf.writeUInt16LE(0x14c, 0x84);
  return buf;
}

function zip(files: Zippable, level: 0 | 6 | 9 = 6): Buffer {
  return Buffer.from(zipSync(files, { level }));
}

/** Sets general purpose bit 0 (encrypted) in every local and central directory header. */
function markEncrypted(input: Buffer): Buffer {
  const buf = Buffer.from(input);
  for (let pos = buf.indexOf('PK\x03\x04', 0, 'latin1'); pos >= 0; pos = buf.indexOf('PK\x03\x04', pos + 4, 'latin1')) {
    buf.writeUInt16LE(buf.readUInt16LE(pos + 6) | 1, pos + 6);
  }
  for (let pos = buf.indexOf('PK\x01\x02', 0, 'latin1'); pos >= 0; pos = buf.indexOf('PK\x01\x02', pos + 4, 'latin1')) {
    buf.writeUInt16LE(buf.readUInt16LE(pos + 8) | 1, pos + 8);
  }
  return buf;
}

function chunkedStream(buf: Buffer, size: number): Readable {
  const chunks: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) {
    chunks.push(buf.subarray(i, i + size));
  }
  return Readable.from(chunks);
}

async function timed(
  input: Buffer,
  limits?: Parameters<typeof parseMessage>[1],
): Promise<{ ms: number; result: ParsedMessage }> {
  const start = performance.now();
  const result = await parseMessage(input, limits);
  return { ms: performance.now() - start, result };
}

function decodeChunked(encoding: string, input: Buffer, cuts: number[]): { out: Buffer; malformed: boolean } {
  const dec = createTransferDecoder(encoding);
  const out: Buffer[] = [];
  let prev = 0;
  for (const cut of [...cuts, input.length]) {
    out.push(dec.write(input.subarray(prev, cut)));
    prev = cut;
  }
  out.push(dec.end());
  return { out: Buffer.concat(out), malformed: dec.malformed };
}

function randomCuts(len: number, n: number): number[] {
  return Array.from({ length: n }, () => Math.floor(Math.random() * (len + 1))).sort((a, b) => a - b);
}

test('transfer decoders give the same bytes whatever the chunking', () => {
  for (let round = 0; round < 300; round++) {
    const data = randomBytes(Math.floor(Math.random() * 3000));
    const lineLen = [76, 64, 73, 75, 1000][round % 5];
    const eol = round % 3 === 0 ? '\n' : '\r\n';
    let b64 = data.toString('base64').replace(new RegExp(`.{${lineLen}}`, 'g'), `$&${eol}`);
    const mangle = round % 4 === 3;
    if (mangle) {
      // junk, spaces, mid-stream padding, a second blob
      const at = Math.floor(Math.random() * b64.length);
      b64 = b64.slice(0, at) + ['!', ' ', '=', '\t', '==QUJD', '*'][round % 6] + b64.slice(at) + '\r\nQUJD';
    }
    const input = Buffer.from(b64, 'latin1');
    const whole = decodeChunked('base64', input, []);
    if (!mangle) {
      assert.deepEqual(whole.out, data);
      assert.equal(whole.malformed, false);
    }
    for (let k = 0; k < 4; k++) {
      const chunked = decodeChunked('base64', input, randomCuts(input.length, 1 + (k % 3) * 10));
      assert.deepEqual(chunked.out, whole.out, `base64 round ${round}`);
    }

    const text = Buffer.from(data.toString('latin1') + 'caf\xe9 = ok\r\n', 'latin1');
    const tokens = text
      .toString('latin1')
      .replace(/[^\x20-\x3c\x3e-\x7e]/g, (c) => '=' + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0'))
      .match(/=[0-9A-F]{2}|[^=]/g)!;
    let qpText = '';
    let lineLength = 0;
    for (const tok of tokens) {
      if (lineLength + tok.length > 72) {
        qpText += '=\r\n';
        lineLength = 0;
      }
      qpText += tok;
      lineLength += tok.length;
    }
    const qp = Buffer.from(qpText, 'latin1');
    const qpWhole = decodeChunked('quoted-printable', qp, []);
    assert.deepEqual(qpWhole.out, text);
    assert.deepEqual(decodeChunked('quoted-printable', qp, randomCuts(qp.length, 20)).out, text);
  }
});

test('part tree, headers, offsets and attachments of a composed message', async () => {
  const pdf = Buffer.concat([Buffer.from('%PDF-1.7\n%\xe2\xe3\xcf\xd3\n', 'latin1'), randomBytes(5000)]);
  const png = Buffer.from(
    'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
    'base64',
  );
  const raw = await compose({
    from: 'Jörg Müller <joerg@example.com>',
    subject: 'Grüße – invoice',
    messageId: '<unit-1@example.com>',
    text: 'Hello, plain text body.',
    html: '<p>Hello <img src="cid:logo@x"></p>',
    attachments: [
      { filename: 'invoice.pdf', content: pdf },
      { filename: 'logo.png', content: png, cid: 'logo@x' },
      { filename: 'Prüfbericht für das Quartal – sehr langer Dateiname.docx.exe', content: peStub() },
    ],
  });
  const r = await parseMessage(raw);

  assert.equal(r.size, raw.length);
  assert.equal(r.subject, 'Grüße – invoice');
  assert.equal(r.from, 'Jörg Müller <joerg@example.com>');
  assert.equal(r.messageId, '<unit-1@example.com>');
  assert.equal(r.headers.find((h) => h.key === 'subject')?.value, 'Grüße – invoice');
  assert.ok(r.headers.every((h) => h.key === h.key.toLowerCase() && !/\r|\n/.test(h.value)));

  assert.deepEqual(
    r.parts.map((p) => [p.path, p.contentType, p.depth]),
    [
      ['1', 'multipart/mixed', 0],
      ['1.1', 'multipart/alternative', 1],
      ['1.1.1', 'text/plain', 2],
      ['1.1.2', 'multipart/related', 2],
      ['1.1.2.1', 'text/html', 3],
      ['1.1.2.2', 'image/png', 3],
      ['1.2', 'application/pdf', 1],
      // nodemailer declares .exe as application/octet-stream
      ['1.3', 'application/octet-stream', 1],
    ],
  );
  for (const part of r.parts) {
    assert.match(
      raw.subarray(part.headerOffset, part.headerOffset + 40).toString('latin1'),
      /^Content-Type:|^From:|^Content-/i,
    );
    assert.equal(raw[part.bodyOffset - 1], 0x0a, `body of ${part.path} starts after a line break`);
  }
  const pdfPart = r.parts.find((p) => p.path === '1.2')!;
  assert.equal(pdfPart.transferEncoding, 'base64');
  assert.equal(pdfPart.decodedSize, pdf.length);
  assert.equal(raw.subarray(pdfPart.bodyOffset, pdfPart.bodyOffset + 8).toString(), pdf.toString('base64').slice(0, 8));

  assert.equal(r.text, 'Hello, plain text body.');
  assert.equal(r.html, '<p>Hello <img src="cid:logo@x"></p>');

  assert.deepEqual(
    r.attachments.map((a) => [a.partPath, a.name, a.extension, a.declaredType, a.trueType, a.size]),
    [
      ['1.1.2.2', 'logo.png', 'png', 'image/png', 'image/png', png.length],
      ['1.2', 'invoice.pdf', 'pdf', 'application/pdf', 'application/pdf', pdf.length],
      [
        '1.3',
        'Prüfbericht für das Quartal – sehr langer Dateiname.docx.exe',
        'exe',
        'application/octet-stream',
        'application/x-msdownload',
        1024,
      ],
    ],
  );
  assert.equal(r.attachments[1].sha256, sha256(pdf));
  assert.equal(r.attachments[0].sha256, sha256(png));
  assert.equal(r.attachments[2].sha256, sha256(peStub()));
  assert.deepEqual(r.anomalies, []);
});

test('a .pdf-named executable is typed by its magic bytes', async () => {
  const exe = peStub();
  const raw = await compose({
    subject: 'scan',
    text: 'see attached',
    attachments: [{ filename: 'scan_2024.pdf', content: exe, contentType: 'application/pdf' }],
  });
  const r = await parseMessage(raw);
  assert.equal(r.attachments.length, 1);
  const [a] = r.attachments;
  assert.equal(a.name, 'scan_2024.pdf');
  assert.equal(a.extension, 'pdf');
  assert.equal(a.declaredType, 'application/pdf');
  // file-type reports PE files as application/x-msdownload
  assert.equal(a.trueType, 'application/x-msdownload');
  assert.equal(a.sha256, sha256(exe));
  assert.equal(a.isArchive, false);
});

test('RFC 2047 and RFC 2231 encoded filenames are decoded; extension is the last one', async () => {
  const body = Buffer.from('data').toString('base64');
  const raw = Buffer.from(
    [
      'From: a@example.com',
      'Subject: =?utf-8?q?names?=',
      'Content-Type: multipart/mixed; boundary="b"',
      '',
      '--b',
      'Content-Type: application/octet-stream; name="=?UTF-8?B?UmVjaG51bmcucGRmLmV4ZQ==?="',
      'Content-Transfer-Encoding: base64',
      '',
      body,
      '--b',
      'Content-Type: application/octet-stream',
      "Content-Disposition: attachment; filename*0*=utf-8''%C3%BCber; filename*1*=%20lang.JS",
      'Content-Transfer-Encoding: base64',
      '',
      body,
      '--b',
      'Content-Type: application/octet-stream',
      'Content-Disposition: attachment; filename="trailing.exe. . "',
      '',
      'x',
      '--b--',
      '',
    ].join('\r\n'),
  );
  const r = await parseMessage(raw);
  assert.deepEqual(
    r.attachments.map((a) => [a.name, a.extension]),
    [
      ['Rechnung.pdf.exe', 'exe'],
      ['über lang.JS', 'js'],
      ['trailing.exe. . ', 'exe'],
    ],
  );
  assert.equal(r.subject, 'names');
});

test('zip members are listed with type and hash; nested zips to depth 3 and not 4', async () => {
  const exe = peStub();
  const readme = Buffer.from('read me '.repeat(100));
  const inner3 = zip({ 'deepest.txt': Buffer.from('too deep') });
  const inner2 = zip({ 'level3.exe': exe, 'inner3.zip': inner3 });
  const inner = zip({ 'level2.txt': readme, 'inner2.zip': inner2 });
  const outer = zip({ 'docs/readme.txt': readme, 'payload.exe': exe, 'inner.zip': inner });
  const raw = await compose({
    subject: 'zip',
    text: 'zip attached',
    attachments: [{ filename: 'archive.zip', content: outer }],
  });
  const r = await parseMessage(raw);

  assert.equal(r.attachments.length, 1);
  const a = r.attachments[0];
  assert.equal(a.trueType, 'application/zip');
  assert.equal(a.isArchive, true);
  assert.equal(a.encrypted, false);
  assert.equal(a.sha256, sha256(outer));
  assert.deepEqual(
    a.members.map((m) => [m.name, m.extension, m.depth, m.size]),
    [
      ['docs/readme.txt', 'txt', 1, readme.length],
      ['payload.exe', 'exe', 1, exe.length],
      ['inner.zip', 'zip', 1, inner.length],
      ['level2.txt', 'txt', 2, readme.length],
      ['inner2.zip', 'zip', 2, inner2.length],
      ['level3.exe', 'exe', 3, exe.length],
      ['inner3.zip', 'zip', 3, inner3.length],
    ],
  );
  const byName = new Map(a.members.map((m) => [m.name, m]));
  assert.equal(byName.get('payload.exe')?.trueType, 'application/x-msdownload');
  assert.equal(byName.get('payload.exe')?.sha256, sha256(exe));
  assert.equal(byName.get('level3.exe')?.sha256, sha256(exe));
  assert.equal(byName.get('docs/readme.txt')?.sha256, sha256(readme));
  assert.equal(byName.get('inner.zip')?.trueType, 'application/zip');
  assert.ok(!a.members.some((m) => m.name === 'deepest.txt'));
  assert.ok(r.anomalies.includes('archive_depth_limit'));

  const shallow = await parseMessage(raw, { maxArchiveDepth: 1 });
  assert.deepEqual(
    shallow.attachments[0].members.map((m) => m.name),
    ['docs/readme.txt', 'payload.exe', 'inner.zip'],
  );
});

test('members with general purpose bit 0 are encrypted and not read', async () => {
  const plain = zip({ 'secret.docm': Buffer.from('macro stuff '.repeat(50)), 'note.txt': Buffer.from('hi') }, 0);
  const encrypted = markEncrypted(plain);
  const raw = await compose({
    subject: 'pw 1234',
    text: 'password 1234',
    attachments: [{ filename: 'locked.zip', content: encrypted }],
  });
  const r = await parseMessage(raw);
  const a = r.attachments[0];
  assert.equal(a.isArchive, true);
  assert.equal(a.encrypted, true);
  assert.deepEqual(
    a.members.map((m) => [m.name, m.encrypted, m.sha256, m.trueType]),
    [
      ['secret.docm', true, null, null],
      ['note.txt', true, null, null],
    ],
  );
});

test('a zip bomb is flagged and not expanded', async () => {
  const bomb = zip({ 'zeros.bin': new Uint8Array(50 * 1024 * 1024), 'ok.txt': Buffer.from('fine') }, 9);
  assert.ok(bomb.length < 200 * 1024);
  const raw = await compose({ subject: 'bomb', text: 'boom', attachments: [{ filename: 'bomb.zip', content: bomb }] });
  const { ms, result: r } = await timed(raw);
  const a = r.attachments[0];
  assert.ok(r.anomalies.includes('archive_bomb'));
  const zeros = a.members.find((m) => m.name === 'zeros.bin')!;
  assert.equal(zeros.size, 50 * 1024 * 1024);
  assert.equal(zeros.sha256, null);
  assert.equal(zeros.trueType, null);
  assert.equal(a.members.find((m) => m.name === 'ok.txt')?.sha256, sha256('fine'));
  assert.ok(ms < 1000, `bomb parse took ${ms} ms`);

  // with the ratio check disabled the budget still stops inflation mid-stream
  const capped = await parseMessage(raw, { maxCompressionRatio: 1e9, maxArchiveExpandedBytes: 1024 * 1024 });
  assert.ok(capped.anomalies.includes('archive_expansion_limit'));
  assert.ok(!capped.anomalies.includes('archive_bomb'));
  assert.equal(capped.attachments[0].members.find((m) => m.name === 'zeros.bin')?.sha256, null);
});

test('archive member and expansion limits', async () => {
  const files: Zippable = {};
  for (let i = 0; i < 12; i++) {
    files[`file${i}.bin`] = randomBytes(20_000);
  }
  const many = zip(files);
  const raw = await compose({ subject: 'many', text: 'x', attachments: [{ filename: 'many.zip', content: many }] });

  const limited = await parseMessage(raw, { maxArchiveMembers: 5 });
  assert.equal(limited.attachments[0].members.length, 5);
  assert.ok(limited.anomalies.includes('archive_member_limit'));

  const budget = await parseMessage(raw, { maxArchiveExpandedBytes: 100_000 });
  const members = budget.attachments[0].members;
  assert.equal(members.length, 12);
  assert.ok(budget.anomalies.includes('archive_expansion_limit'));
  const hashed = members.filter((m) => m.sha256 !== null).length;
  assert.ok(hashed >= 4 && hashed <= 5, `hashed ${hashed}`);

  const all = await parseMessage(raw);
  assert.ok(all.attachments[0].members.every((m, i) => m.sha256 === sha256(files[`file${i}.bin`] as Uint8Array)));
  assert.deepEqual(all.anomalies, []);
});

test('gzip attachments list their single member', async () => {
  const exe = peStub();
  const gz = Buffer.from(gzipSync(exe, { filename: 'setup.exe' }));
  const gzNoName = Buffer.from(gzipSync(Buffer.from('hello gzip')));
  const raw = await compose({
    subject: 'gz',
    text: 'x',
    attachments: [
      { filename: 'report.gz', content: gz },
      { filename: 'notes.txt.gz', content: gzNoName },
    ],
  });
  const r = await parseMessage(raw);
  assert.equal(r.attachments[0].trueType, 'application/gzip');
  assert.equal(r.attachments[0].isArchive, true);
  assert.deepEqual(
    r.attachments.map((a) => a.members.map((m) => [m.name, m.extension, m.size, m.trueType, m.sha256])),
    [
      [['setup.exe', 'exe', exe.length, 'application/x-msdownload', sha256(exe)]],
      [['notes.txt', 'txt', 10, null, sha256('hello gzip')]],
    ],
  );
});

test('URLs from text and HTML with anchor text and registrable domain', async () => {
  const raw = await compose({
    subject: 'links',
    text: [
      'Visit https://evil.example.co.uk/x, then www.Example.com/path.',
      'Raw IP: http://192.168.10.20:8080/login and http://[2001:db8::1]/x',
      'Same again https://evil.example.co.uk/x and mailto:someone@example.com ftp://files.example.com/',
      'user@example.net is not a link; neither is example.org alone.',
    ].join('\n'),
    html: [
      '<p>Hello <A HREF="https://login.micros0ft.example.com/?a=1&amp;b=2" target=_blank>',
      '  <span style="x">Sign&nbsp;in to <b>Microsoft</b></span> &amp; verify</a></p>',
      '<a href=\'javascript:alert(1)\'>js</a> <a href="mailto:x@example.com">mail</a>',
      '<a href=http://unquoted.example.org/p>unquoted</a>',
      '<map><area shape="rect" href="https://area.example.net/" alt="Area link"></map>',
      '<form method="post" action="https://collect.example.ru/post.php"><input></form>',
      '<a href="https://evil.example.co.uk/x"><img src="x.png"></a>',
      '<abbr href="https://not-a-link.example.com/">no</abbr>',
    ].join('\n'),
  });
  const r = await parseMessage(raw);
  const simplified = r.urls.map((u) => [u.source, u.url, u.host, u.domain, u.anchorText]);
  assert.deepEqual(simplified, [
    ['text', 'https://evil.example.co.uk/x', 'evil.example.co.uk', 'example.co.uk', null],
    ['text', 'http://www.Example.com/path', 'www.example.com', 'example.com', null],
    ['text', 'http://192.168.10.20:8080/login', '192.168.10.20', null, null],
    ['text', 'http://[2001:db8::1]/x', '[2001:db8::1]', null, null],
    [
      'html',
      'https://login.micros0ft.example.com/?a=1&b=2',
      'login.micros0ft.example.com',
      'example.com',
      'Sign in to Microsoft & verify',
    ],
    ['html', 'http://unquoted.example.org/p', 'unquoted.example.org', 'example.org', 'unquoted'],
    ['html', 'https://area.example.net/', 'area.example.net', 'example.net', 'Area link'],
    ['html', 'https://collect.example.ru/post.php', 'collect.example.ru', 'example.ru', null],
    ['html', 'https://evil.example.co.uk/x', 'evil.example.co.uk', 'example.co.uk', null],
  ]);
  assert.deepEqual(r.anomalies, []);
});

test('maxUrls bounds the URL list', async () => {
  const text = Array.from({ length: 30 }, (_, i) => `https://site${i}.example.com/`).join('\n');
  const r = await parseMessage(await compose({ subject: 'many links', text }), { maxUrls: 10 });
  assert.equal(r.urls.length, 10);
  assert.ok(r.anomalies.includes('url_limit'));
});

test('anchor text is bounded and unclosed anchors end at the next anchor', () => {
  const out = new UrlCollector(100);
  extractHtmlUrls(`<a href="https://a.example.com/">${'word '.repeat(200)}<a href="https://b.example.com/">B`, out);
  assert.equal(out.urls.length, 2);
  assert.equal(out.urls[0].anchorText?.length, 200);
  assert.equal(out.urls[1].anchorText, 'B');
});

test('crafted ReDoS-style text and HTML parse quickly', async () => {
  const cases: Array<[string, string, 'text' | 'html']> = [
    ['a. x100k', 'http://' + 'a.'.repeat(50_000), 'text'],
    ['50k dots', '.'.repeat(50_000) + ' https://ok.example.com/', 'text'],
    ['many dotted segments', ('http://' + 'a.'.repeat(30) + 'com ').repeat(3000), 'text'],
    ['xn-- labels', ('http://' + 'xn--a.'.repeat(6) + 'xn--' + 'b'.repeat(3000) + ' ').repeat(100), 'text'],
    ['long dashes', ('www.' + 'a-'.repeat(2000) + ' ').repeat(200), 'text'],
    ['colons', ('https:' + ':'.repeat(4000) + ' ').repeat(200), 'text'],
    ['unclosed anchors', '<a href="https://x.example.com/">'.repeat(20_000), 'html'],
    ['bare tags', '<a '.repeat(100_000), 'html'],
    ['unclosed quote', '<a href="' + 'x'.repeat(500_000), 'html'],
    ['entities', '<a href="https://e.example.com/">' + '&amp'.repeat(100_000) + '</a>', 'html'],
    ['lt runs', '<a href="https://e.example.com/">' + '<'.repeat(200_000) + '</a>', 'html'],
  ];
  for (const [name, body, kind] of cases) {
    const raw = Buffer.from(
      `From: a@example.com\r\nSubject: redos\r\nContent-Type: text/${kind === 'text' ? 'plain' : 'html'}; charset=utf-8\r\n\r\n${body}\r\n`,
    );
    const { ms } = await timed(raw);
    assert.ok(ms < 1000, `${name} took ${ms.toFixed(0)} ms`);
  }
  // the extractors themselves, on the largest inputs, without the parse around them
  const start = performance.now();
  extractTextUrls('http://' + 'a.'.repeat(500_000), new UrlCollector(1000));
  extractTextUrls(('http://' + 'a'.repeat(4000) + ' ').repeat(300), new UrlCollector(1000));
  extractHtmlUrls('<a href="https://x.example.com/">'.repeat(200_000), new UrlCollector(1000));
  assert.ok(performance.now() - start < 2000);
});

test('200 levels of multipart nesting flag depth_limit without throwing', async () => {
  let body = 'Content-Type: text/plain\r\n\r\ndeep leaf\r\n';
  for (let i = 0; i < 200; i++) {
    body = `Content-Type: multipart/mixed; boundary="b${i}"\r\n\r\n--b${i}\r\n${body}\r\n--b${i}--\r\n`;
  }
  const raw = Buffer.from(`From: a@example.com\r\nSubject: deep\r\n${body}`);
  const { ms, result: r } = await timed(raw);
  assert.ok(r.anomalies.includes('depth_limit'));
  assert.equal(r.parts.length, 21);
  assert.equal(Math.max(...r.parts.map((p) => p.depth)), 20);
  assert.equal(r.parts[20].path, '1' + '.1'.repeat(20));
  assert.equal(r.subject, 'deep');
  assert.equal(r.text, '');
  assert.ok(ms < 2000);

  const shallow = await parseMessage(raw, { maxDepth: 500 });
  assert.equal(shallow.parts.length, 201);
  assert.equal(shallow.text, 'deep leaf\r\n');
});

test('maxParts stops analysis and flags part_limit', async () => {
  const parts: string[] = [];
  for (let i = 0; i < 700; i++) {
    parts.push(`--b\r\nContent-Type: application/octet-stream; name="f${i}.bin"\r\n\r\n${i}\r\n`);
  }
  const raw = Buffer.from(
    `From: a@example.com\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n${parts.join('')}--b--\r\n`,
  );
  const r = await parseMessage(raw);
  assert.ok(r.anomalies.includes('part_limit'));
  assert.equal(r.parts.length, 500);
  assert.equal(r.attachments.length, 499);
  assert.equal(r.size, raw.length);
  const few = await parseMessage(raw, { maxParts: 10 });
  assert.equal(few.parts.length, 10);
  assert.ok(few.anomalies.includes('part_limit'));
});

test('a slow or stalled stream raises ParseTimeoutError', async () => {
  const slow = new Readable({ read() {} });
  slow.push('From: a@example.com\r\nSubject: slow\r\n\r\n');
  const timer = setInterval(() => slow.push('more body text\r\n'), 10);
  const started = Date.now();
  try {
    await assert.rejects(parseMessage(slow, { timeoutMs: 60 }), (err: unknown) => {
      assert.ok(err instanceof ParseTimeoutError);
      assert.equal(err.code, 'parse_timeout');
      return true;
    });
  } finally {
    clearInterval(timer);
  }
  assert.ok(Date.now() - started < 1000);
  assert.ok(slow.destroyed);

  const stalled = new Readable({ read() {} });
  await assert.rejects(parseMessage(stalled, { timeoutMs: 30 }), ParseTimeoutError);
});

test('a stream closed without end is parsed as far as it got; a stream error rejects', async () => {
  const cut = new Readable({ read() {} });
  cut.push('From: a@example.com\r\nSubject: cut\r\n\r\npartial body https://cut.example.com/');
  setTimeout(() => cut.destroy(), 10);
  const r = await parseMessage(cut);
  assert.equal(r.subject, 'cut');
  assert.equal(r.text, 'partial body https://cut.example.com/');
  assert.ok(r.anomalies.includes('malformed_mime'));

  const broken = new Readable({ read() {} });
  broken.push('From: a@example.com\r\n');
  setTimeout(() => broken.destroy(new Error('disk on fire')), 10);
  await assert.rejects(parseMessage(broken), /disk on fire/);
});

test('a stream in small chunks gives the same result as a buffer', async () => {
  const zipped = zip({ 'a.txt': Buffer.from('A'.repeat(3000)), 'b.exe': peStub() });
  const raw = await compose({
    subject: 'chunks',
    text: 'Visit https://chunk.example.com/ now\n' + 'line of text\n'.repeat(500),
    html: '<a href="https://chunk.example.com/h">here</a>',
    attachments: [
      { filename: 'x.zip', content: zipped },
      { filename: 'q.txt', content: 'quoted = printable ü '.repeat(100), contentTransferEncoding: 'quoted-printable' },
    ],
  });
  const fromBuffer = await parseMessage(raw);
  for (const size of [1, 7, 4096]) {
    const fromStream = await parseMessage(chunkedStream(raw, size));
    assert.deepEqual(fromStream, fromBuffer, `chunk size ${size}`);
  }
  assert.equal(fromBuffer.attachments[1].sha256, sha256('quoted = printable ü '.repeat(100)));
});

test('malformed input never throws', async () => {
  const inputs: Array<[string, Buffer]> = [
    ['empty', Buffer.alloc(0)],
    ['random binary', randomBytes(200_000)],
    ['nul bytes', Buffer.alloc(100_000)],
    ['no newline at all', Buffer.from('x'.repeat(2 * 1024 * 1024))],
    ['huge header', Buffer.from(`From: a@example.com\r\nX-Big: ${'h'.repeat(1_500_000)}\r\n\r\nbody\r\n`)],
    ['header only', Buffer.from('Subject: only headers')],
    [
      'bare LF',
      Buffer.from(
        'From: a@b.c\nContent-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: text/plain\n\nbare lf\n--x--\n',
      ),
    ],
    [
      'unknown charset and encoding',
      Buffer.from(
        'Content-Type: text/plain; charset="x-made-up"\r\nContent-Transfer-Encoding: x-weird\r\n\r\ncaf\xe9\r\n',
        'latin1',
      ),
    ],
    [
      'multipart without boundary parameter',
      Buffer.from('Content-Type: multipart/mixed\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x--\r\n'),
    ],
    [
      'unterminated nested multiparts',
      Buffer.from(
        'Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: application/zip; name=x.zip\r\nContent-Transfer-Encoding: base64\r\n\r\nUEsDBBQAAAAIAA==\r\n',
      ),
    ],
    [
      'garbage zip',
      Buffer.from(
        `Content-Type: application/zip; name=a.zip\r\nContent-Transfer-Encoding: base64\r\n\r\n${Buffer.concat([Buffer.from('PK\x03\x04'), randomBytes(5000)]).toString('base64')}\r\n`,
      ),
    ],
    [
      'garbage gzip',
      Buffer.from(
        `Content-Type: application/gzip; name=a.gz\r\nContent-Transfer-Encoding: base64\r\n\r\n${Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0]), randomBytes(5000)]).toString('base64')}\r\n`,
      ),
    ],
  ];
  for (const [name, raw] of inputs) {
    const r = await parseMessage(raw);
    assert.equal(r.size, raw.length, name);
    const streamed = await parseMessage(chunkedStream(raw, 65536));
    assert.equal(streamed.size, raw.length, name);
  }
  for (const file of ['missing-boundary.eml', 'broken-base64.eml']) {
    const r = await parseMessage(readFileSync(path.join(FIXTURES, file)));
    assert.ok(r.anomalies.includes('malformed_mime'), `${file}: ${r.anomalies.join()}`);
  }
});

test('fixtures: bare LF, missing boundary, broken base64, truncated zip', async () => {
  const bare = await parseMessage(readFileSync(path.join(FIXTURES, 'bare-lf.eml')));
  assert.deepEqual(
    bare.parts.map((p) => p.path),
    ['1', '1.1', '1.2'],
  );
  assert.equal(bare.text, 'Bare LF line endings.\nSecond line https://lf.example.com/');
  assert.equal(bare.attachments[0].name, 'lf.txt');
  assert.equal(bare.attachments[0].sha256, sha256('attachment over bare LF'));
  assert.equal(bare.urls[0]?.host, 'lf.example.com');
  assert.deepEqual(bare.anomalies, []);

  const missing = await parseMessage(readFileSync(path.join(FIXTURES, 'missing-boundary.eml')));
  assert.deepEqual(missing.anomalies, ['malformed_mime']);
  assert.equal(missing.parts.length, 1);
  // the body of a multipart whose boundary never appears is still read as text
  assert.match(missing.text, /Wire the payment to https:\/\/pay\.example\.com\/now/);
  assert.equal(missing.urls[0]?.domain, 'example.com');

  const broken = await parseMessage(readFileSync(path.join(FIXTURES, 'broken-base64.eml')));
  assert.ok(broken.anomalies.includes('malformed_mime'));
  assert.equal(broken.text, 'Hello broken base64 world');

  const truncated = await parseMessage(readFileSync(path.join(FIXTURES, 'truncated-zip.eml')));
  assert.ok(truncated.anomalies.includes('archive_corrupt'));
  const a = truncated.attachments[0];
  // the central directory is gone, the local header still names the member
  assert.equal(a.isArchive, true);
  assert.equal(a.members[0]?.name, 'invoice.exe');
  assert.equal(a.members[0]?.trueType, 'application/x-msdownload');
});

test('charsets: declared, iconv-only, and unknown (latin1 fallback)', async () => {
  const mk = (charset: string, body: Buffer): Buffer =>
    Buffer.concat([Buffer.from(`Content-Type: text/plain; charset="${charset}"\r\n\r\n`), body]);
  assert.equal(
    (await parseMessage(mk('windows-1251', Buffer.from([0xcf, 0xf0, 0xe8, 0xe2, 0xe5, 0xf2])))).text,
    'Привет',
  );
  assert.equal((await parseMessage(mk('ISO-8859-1', Buffer.from('caf\xe9', 'latin1')))).text, 'café');
  assert.equal((await parseMessage(mk('utf-7', Buffer.from('Hi +AOk-')))).text, 'Hi é');
  assert.equal((await parseMessage(mk('x-no-such-charset', Buffer.from('caf\xe9', 'latin1')))).text, 'café');
  assert.equal((await parseMessage(mk('shift_jis', Buffer.from([0x82, 0xa0])))).text, 'あ');
});

test('maxTextChars truncates text and html', async () => {
  const raw = await compose({ subject: 't', text: 'x'.repeat(5000), html: '<p>' + 'y'.repeat(5000) + '</p>' });
  const r = await parseMessage(raw, { maxTextChars: 1000 });
  assert.equal(r.text.length, 1000);
  assert.equal(r.html.length, 1000);
  assert.ok(r.anomalies.includes('text_truncated'));
});

test('attached messages are descended into, inline or as (encoded) attachments', async () => {
  const inner = await compose({
    subject: 'inner',
    text: 'inner text https://inner.example.com/',
    attachments: [{ filename: 'inner.exe', content: peStub() }],
  });
  const raw = await compose({
    subject: 'outer',
    text: 'outer text',
    attachments: [
      { filename: 'inline.eml', content: inner, contentType: 'message/rfc822', contentDisposition: 'inline' },
      { filename: 'attached.eml', content: inner, contentType: 'message/rfc822', contentDisposition: 'attachment' },
      {
        filename: 'encoded.eml',
        content: inner,
        contentType: 'message/rfc822',
        contentDisposition: 'inline',
        contentTransferEncoding: 'base64',
      },
    ],
  });
  const r = await parseMessage(raw);
  assert.equal(r.subject, 'outer');
  const rfc = r.parts.filter((p) => p.contentType === 'message/rfc822');
  assert.deepEqual(
    rfc.map((p) => [p.path, p.filename]),
    [
      ['1.2', 'inline.eml'],
      ['1.3', 'attached.eml'],
      ['1.4', 'encoded.eml'],
    ],
  );
  // the inline one is split in the same pass, the other two are parsed from their bytes
  assert.deepEqual(
    r.attachments.map((a) => [a.partPath, a.name, a.trueType]),
    [
      ['1.2.1.2', 'inner.exe', 'application/x-msdownload'],
      ['1.3', 'attached.eml', null],
      ['1.4', 'encoded.eml', null],
      ['1.3.1.2', 'inner.exe', 'application/x-msdownload'],
      ['1.4.1.2', 'inner.exe', 'application/x-msdownload'],
    ],
  );
  assert.equal(r.attachments[2].sha256, sha256(inner));
  assert.equal(
    r.text,
    'outer text\ninner text https://inner.example.com/\ninner text https://inner.example.com/\ninner text https://inner.example.com/',
  );
  assert.deepEqual(
    r.urls.map((u) => u.url),
    ['https://inner.example.com/'],
  );
  const attachedRoot = r.parts.find((p) => p.path === '1.3.1')!;
  assert.equal(attachedRoot.depth, 2);
  // not transfer-encoded: offsets point into the outer message
  assert.match(
    raw.subarray(attachedRoot.headerOffset, attachedRoot.headerOffset + 200).toString(),
    /^From: Sender[^]*Subject: inner/,
  );
  assert.equal(raw.subarray(attachedRoot.bodyOffset - 4, attachedRoot.bodyOffset).toString(), '\r\n\r\n');
  const encodedRoot = r.parts.find((p) => p.path === '1.4.1')!;
  assert.equal(encodedRoot.headerOffset, r.parts.find((p) => p.path === '1.4')!.bodyOffset);
  assert.equal(r.subject, 'outer');
  assert.equal(r.headers.filter((h) => h.key === 'subject').length, 1);

  const shallow = await parseMessage(raw, { maxDepth: 1 });
  assert.ok(shallow.anomalies.includes('depth_limit'));
  assert.ok(!shallow.attachments.some((a) => a.name === 'inner.exe'));
});

test('attachment count and filenames agree with mailparser and postal-mime', async () => {
  const messages = [
    await compose({
      subject: 'one',
      text: 'a',
      html: '<b>a</b>',
      attachments: [{ filename: 'a.pdf', content: Buffer.from('%PDF-1.4 x') }],
    }),
    await compose({
      subject: 'two',
      text: 'b',
      attachments: [
        { filename: 'Überweisung März.xlsx', content: randomBytes(3000) },
        { filename: 'b.zip', content: zip({ 'x.txt': Buffer.from('x') }) },
        { filename: 'notes.txt', content: 'text attachment' },
      ],
    }),
    await compose({
      subject: 'three',
      html: '<img src="cid:i1"><img src="cid:i2">',
      attachments: [
        { filename: 'i1.png', content: randomBytes(100), cid: 'i1', contentType: 'image/png' },
        { filename: 'i2.gif', content: randomBytes(100), cid: 'i2', contentType: 'image/gif' },
        {
          filename: 'very long name with spaces and ünïcödé characters that needs rfc2231 folding.docx',
          content: randomBytes(200),
        },
      ],
    }),
  ];
  for (const raw of messages) {
    const ours = (await parseMessage(raw)).attachments.map((a) => a.name);
    const mp = (await simpleParser(raw)).attachments.map((a) => a.filename ?? '');
    const pm = (await PostalMime.parse(raw)).attachments.map((a) => a.filename ?? '');
    assert.deepEqual(ours, mp, 'mailparser');
    assert.deepEqual(ours, pm, 'postal-mime');
  }
});
