// Anti-virus part access and stripping (DESIGN §5 "deliver with infected attachments stripped"):
// extractPart returns exactly the bytes the parse stage hashed, stripParts replaces a part with a
// text notice and leaves every other byte alone, and mailparser and postal-mime agree.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import PostalMime from 'postal-mime';
import { parseMessage } from '../src/mime/parse.ts';
import type { ParsedMessage } from '../src/mime/types.ts';
import { mapParts, type PartSpan } from '../src/mime/edit/parts.ts';
import { extractPart, noticeFileName, stripParts } from '../src/mime/edit/replace.ts';

const require = createRequire(import.meta.url);

interface MailparserAttachment {
  filename?: string;
  contentType: string;
  content: Buffer;
}
interface MailparserResult {
  text?: string;
  html?: string | false;
  attachments: MailparserAttachment[];
}
const { simpleParser } = require('mailparser') as { simpleParser(input: Buffer): Promise<MailparserResult> };

const CORPUS = path.resolve(import.meta.dirname, '../../shared/corpus');

/** stands in for an infected file (not a real signature, so that no scanner flags this file) */
const INFECTED = Buffer.from('INFECTED-PAYLOAD-MARKER\x00\x01\x02 dropper ' + 'A'.repeat(300), 'latin1');
const MARKER = 'INFECTED-PAYLOAD-MARKER';
const REPORT = Buffer.from('%PDF-1.4\n% clean report\n' + 'report line\n'.repeat(40) + '%%EOF\n', 'latin1');
const NOTICE = 'The attachment invoice.zip was removed: it contains Eicar-Test-Signature.';

const sha = (b: Buffer | Uint8Array | ArrayBuffer | string): string =>
  createHash('sha256')
    .update(typeof b === 'string' ? Buffer.from(b) : b instanceof ArrayBuffer ? Buffer.from(b) : b)
    .digest('hex');

function b64(data: Buffer): string {
  return (data.toString('base64').match(/.{1,76}/g) ?? []).join('\n');
}

/** `text` with "\n" line breaks, as CRLF or bare LF bytes */
function eml(text: string, eol: '\r\n' | '\n' = '\r\n'): Buffer {
  return Buffer.from(eol === '\n' ? text : text.replace(/\n/g, '\r\n'), 'latin1');
}

const HEADER = `From: Alice <alice@src.test>
To: bob@dst.test
Subject: Invoice
Date: Tue, 02 Jun 2026 10:00:00 +0000
Message-ID: <m1@src.test>
MIME-Version: 1.0
`;

const ZIP_PART = `Content-Type: application/zip; name="invoice.zip"
Content-Disposition: attachment; filename="invoice.zip"
Content-Transfer-Encoding: base64

${b64(INFECTED)}`;

const PDF_PART = `Content-Type: application/pdf; name="report.pdf"
Content-Disposition: attachment; filename="report.pdf"
Content-Transfer-Encoding: base64

${b64(REPORT)}`;

function mixedText(): string {
  return `${HEADER}Content-Type: multipart/mixed; boundary="outer-b"

This is a multi-part message in MIME format.
--outer-b
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

Please find the invoice attached.
--outer-b
${PDF_PART}
--outer-b
${ZIP_PART}
--outer-b--
epilogue stays
`;
}

function span(bytes: Buffer, partPath: string): PartSpan {
  const s = mapParts(bytes).byPath.get(partPath);
  assert.ok(s, `part ${partPath}`);
  return s;
}

/** the raw bytes of a part, header and body */
function rawPart(bytes: Buffer, partPath: string): Buffer {
  const s = span(bytes, partPath);
  return bytes.subarray(s.start, s.end);
}

interface Seen {
  name: string;
  type: string;
  hash: string;
  content: Buffer;
}

/** Attachments as mailparser shows them, attached messages opened up. */
async function mailparserView(bytes: Buffer, depth = 0): Promise<{ text: string; attachments: Seen[] }> {
  const mail = await simpleParser(bytes);
  const attachments: Seen[] = [];
  let text = mail.text ?? '';
  for (const a of mail.attachments) {
    attachments.push({ name: a.filename ?? '', type: a.contentType, hash: sha(a.content), content: a.content });
    if (a.contentType === 'message/rfc822' && depth < 5) {
      const inner = await mailparserView(a.content, depth + 1);
      attachments.push(...inner.attachments);
      text += '\n' + inner.text;
    }
  }
  return { text, attachments };
}

/** Attachments as postal-mime shows them, attached messages opened up. */
async function postalView(bytes: Buffer, depth = 0): Promise<{ text: string; attachments: Seen[] }> {
  const mail = await PostalMime.parse(bytes);
  const attachments: Seen[] = [];
  let text = mail.text ?? '';
  for (const a of mail.attachments) {
    const content =
      typeof a.content === 'string'
        ? Buffer.from(a.content)
        : a.content instanceof ArrayBuffer
          ? Buffer.from(a.content)
          : Buffer.from(a.content.buffer, a.content.byteOffset, a.content.byteLength);
    attachments.push({ name: a.filename ?? '', type: a.mimeType, hash: sha(content), content });
    if (a.mimeType === 'message/rfc822' && depth < 5) {
      const inner = await postalView(content, depth + 1);
      attachments.push(...inner.attachments);
      text += '\n' + inner.text;
    }
  }
  return { text, attachments };
}

/** Both readers: the notice replaces the infected file, the clean file is unchanged. */
async function assertReadersSeeNotice(
  bytes: Buffer,
  notice: string,
  noticeName: string,
  clean: Buffer[],
): Promise<void> {
  for (const [reader, view] of [
    ['mailparser', mailparserView],
    ['postal-mime', postalView],
  ] as const) {
    const seen = await view(bytes);
    const note = seen.attachments.find((a) => a.name === noticeName);
    assert.ok(note, `${reader}: notice attachment ${noticeName} in ${seen.attachments.map((a) => a.name)}`);
    assert.equal(note.type, 'text/plain', reader);
    if (reader === 'mailparser') {
      assert.equal(note.content.toString('utf8'), notice, reader);
    } else {
      // postal-mime rebuilds the lines of 7bit and quoted-printable bodies with LF and ends them with one
      const lf = (s: string): string => s.replace(/\r\n/g, '\n').replace(/\n$/, '');
      assert.equal(lf(note.content.toString('utf8')), lf(notice), reader);
    }
    assert.ok(!seen.attachments.some((a) => a.content.includes(MARKER)), `${reader}: infected bytes are gone`);
    for (const c of clean) {
      assert.ok(
        seen.attachments.some((a) => a.hash === sha(c)),
        `${reader}: clean attachment unchanged`,
      );
    }
  }
}

function attachment(parsed: ParsedMessage, name: string) {
  const a = parsed.attachments.find((x) => x.name === name);
  assert.ok(a, `attachment ${name} in ${parsed.attachments.map((x) => x.name)}`);
  return a;
}

for (const eol of ['\r\n', '\n'] as const) {
  const label = eol === '\r\n' ? 'CRLF' : 'bare LF';

  test(`strips one attachment and keeps every other byte (${label})`, async () => {
    const raw = eml(mixedText(), eol);
    const before = await parseMessage(raw);
    const zip = attachment(before, 'invoice.zip');
    const pdf = attachment(before, 'report.pdf');
    assert.equal(zip.partPath, '1.3');
    assert.equal(sha(extractPart(raw, '1.3')!), zip.sha256);
    assert.deepEqual(extractPart(raw, '1.3'), INFECTED);
    assert.deepEqual(extractPart(raw, '1.2'), REPORT);

    const res = stripParts(raw, [{ partPath: '1.3', notice: NOTICE }]);
    assert.deepEqual(res.stripped, ['1.3']);
    const out = res.bytes;

    // other parts, the header, preamble, delimiters and epilogue: the same bytes
    for (const p of ['1.1', '1.2']) {
      assert.deepEqual(rawPart(out, p), rawPart(raw, p), `part ${p}`);
    }
    const old = span(raw, '1.3');
    const now = span(out, '1.3');
    assert.deepEqual(out.subarray(0, now.start), raw.subarray(0, old.start));
    assert.deepEqual(out.subarray(now.end), raw.subarray(old.end));
    assert.ok(!out.includes(INFECTED.subarray(0, 20).toString('base64')));

    // the notice part uses the message's own line breaks
    const text = out.toString('latin1');
    if (eol === '\r\n') {
      assert.ok(!/[^\r]\n/.test(text), 'no bare LF in a CRLF message');
    } else {
      assert.ok(!text.includes('\r'), 'no CR in a bare-LF message');
    }
    assert.match(
      out.subarray(now.start, now.bodyStart).toString('latin1'),
      /^Content-Type: text\/plain; charset=utf-8\r?\nContent-Disposition: attachment; filename=invoice\.zip\.removed\.txt\r?\nContent-Transfer-Encoding: 7bit\r?\n\r?\n$/,
    );

    const after = await parseMessage(out);
    assert.equal(attachment(after, 'report.pdf').sha256, pdf.sha256);
    const note = attachment(after, 'invoice.zip.removed.txt');
    assert.equal(note.partPath, '1.3');
    assert.equal(note.declaredType, 'text/plain');
    assert.equal(note.sha256, sha(NOTICE));
    assert.equal(extractPart(out, '1.3')!.toString('utf8'), NOTICE);
    assert.equal(after.subject, 'Invoice');
    assert.match(after.text, /Please find the invoice attached\./);

    await assertReadersSeeNotice(out, NOTICE, 'invoice.zip.removed.txt', [REPORT]);
  });
}

test('strips an attachment next to a multipart/alternative body', async () => {
  const raw = eml(`${HEADER}Content-Type: multipart/mixed; boundary="mix"

--mix
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset=us-ascii

Plain body.
--alt
Content-Type: text/html; charset=us-ascii
Content-Transfer-Encoding: quoted-printable

<p>HTML body with a <a href=3D"https://example.test/">link</a>.</p>
--alt--

--mix
${ZIP_PART}
--mix
${PDF_PART}
--mix--
`);
  const before = await parseMessage(raw);
  assert.equal(attachment(before, 'invoice.zip').partPath, '1.2');
  const res = stripParts(raw, [{ partPath: '1.2', notice: NOTICE }]);
  assert.deepEqual(res.stripped, ['1.2']);
  for (const p of ['1.1', '1.1.1', '1.1.2', '1.3']) {
    assert.deepEqual(rawPart(res.bytes, p), rawPart(raw, p), `part ${p}`);
  }
  const mail = await simpleParser(res.bytes);
  assert.equal(mail.text?.trim(), 'Plain body.');
  assert.match(String(mail.html), /HTML body with a <a href="https:\/\/example.test\/">link<\/a>/);
  await assertReadersSeeNotice(res.bytes, NOTICE, 'invoice.zip.removed.txt', [REPORT]);
});

const INNER = `From: Mallory <mallory@evil.test>
Subject: Fwd: invoice
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="inner-b"

--inner-b
Content-Type: text/plain

See attachment.
--inner-b
${ZIP_PART}
--inner-b--
`;

const ATTACHED: Record<string, string> = {
  'inline (the splitter descends into it)': `Content-Type: message/rfc822\n\n${INNER}`,
  'marked as attachment': `Content-Type: message/rfc822; name="fwd.eml"\nContent-Disposition: attachment; filename="fwd.eml"\n\n${INNER}`,
  'base64 encoded': `Content-Type: message/rfc822; name="fwd.eml"\nContent-Disposition: attachment; filename="fwd.eml"\nContent-Transfer-Encoding: base64\n\n${b64(eml(INNER))}`,
  'quoted-printable encoded': `Content-Type: message/rfc822\nContent-Transfer-Encoding: quoted-printable\n\n${eml(INNER)
    .toString('latin1')
    .replace(/=/g, '=3D')
    .replace(/\r\n/g, '\n')}`,
};

for (const [name, part] of Object.entries(ATTACHED)) {
  test(`strips an attachment inside an attached message (${name})`, async () => {
    const raw = eml(`${HEADER}Content-Type: multipart/mixed; boundary="outer-b"

--outer-b
Content-Type: text/plain

Forwarding this.
--outer-b
${part}
--outer-b
${PDF_PART}
--outer-b--
`);
    const before = await parseMessage(raw);
    const zip = attachment(before, 'invoice.zip');
    assert.equal(zip.partPath, '1.2.1.2');
    assert.equal(sha(extractPart(raw, zip.partPath)!), zip.sha256);

    const res = stripParts(raw, [{ partPath: zip.partPath, notice: NOTICE }]);
    assert.deepEqual(res.stripped, ['1.2.1.2']);
    for (const p of ['1.1', '1.3']) {
      assert.deepEqual(rawPart(res.bytes, p), rawPart(raw, p), `part ${p}`);
    }
    // the attached message's own header is left alone
    const o = span(raw, '1.2');
    const n = span(res.bytes, '1.2');
    assert.deepEqual(res.bytes.subarray(n.start, n.bodyStart), raw.subarray(o.start, o.bodyStart));

    const after = await parseMessage(res.bytes);
    const note = attachment(after, 'invoice.zip.removed.txt');
    assert.equal(note.partPath, '1.2.1.2');
    assert.equal(note.sha256, sha(NOTICE));
    assert.equal(attachment(after, 'report.pdf').sha256, attachment(before, 'report.pdf').sha256);
    assert.deepEqual(
      after.parts.map((p) => `${p.path} ${p.contentType}`),
      before.parts.map((p) => `${p.path} ${p.path === '1.2.1.2' ? 'text/plain' : p.contentType}`),
    );
    assert.match(after.text, /See attachment\./);
    assert.ok(!extractPart(res.bytes, '1.2')!.includes(b64(INFECTED).slice(0, 60)), 'infected bytes are gone');
    await assertReadersSeeNotice(res.bytes, NOTICE, 'invoice.zip.removed.txt', [REPORT]);
  });
}

for (const encoded of [false, true]) {
  test(`an attached message that is nothing but the attachment keeps its header fields (${encoded ? 'base64' : 'inline'})`, async () => {
    const inner = `From: Mallory <mallory@evil.test>\nSubject: setup\nMIME-Version: 1.0\n${ZIP_PART}\n`;
    const part = encoded
      ? `Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n${b64(eml(inner))}`
      : `Content-Type: message/rfc822\n\n${inner}`;
    const raw = eml(
      `${HEADER}Content-Type: multipart/mixed; boundary="o"\n\n--o\nContent-Type: text/plain\n\nhi\n--o\n${part}\n--o--\n`,
    );
    const before = await parseMessage(raw);
    assert.equal(attachment(before, 'invoice.zip').partPath, '1.2.1');
    const res = stripParts(raw, [{ partPath: '1.2.1', notice: NOTICE }]);
    assert.deepEqual(res.stripped, ['1.2.1']);
    assert.deepEqual(rawPart(res.bytes, '1.1'), rawPart(raw, '1.1'));
    const message = encoded ? extractPart(res.bytes, '1.2')! : rawPart(res.bytes, '1.2.1');
    assert.equal(
      message.toString('latin1').replace(/\r\n/g, '\n').trimEnd(),
      `From: Mallory <mallory@evil.test>\nSubject: setup\nMIME-Version: 1.0\n` +
        `Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 7bit\n\n${NOTICE}`,
    );
    const after = await parseMessage(res.bytes);
    assert.equal(after.attachments.filter((a) => a.name === 'invoice.zip').length, 0);
    assert.match(after.text, /was removed: it contains Eicar-Test-Signature/);
    assert.equal(after.parts.find((p) => p.path === '1.2.1')?.contentType, 'text/plain');
  });
}

test('an attachment-only message becomes a text/plain message with the notice', async () => {
  const text = `Return-Path: <alice@src.test>
From: Alice <alice@src.test>
To: bob@dst.test
Subject: setup
Content-Type: application/x-msdownload;
\tname="setup.exe"
X-Mailer: test
Content-Disposition: attachment; filename="setup.exe"
MIME-Version: 1.0
Content-Transfer-Encoding: base64

${b64(INFECTED)}
`;
  for (const eol of ['\r\n', '\n'] as const) {
    const raw = eml(text, eol);
    const before = await parseMessage(raw);
    assert.deepEqual(
      before.attachments.map((a) => a.partPath),
      ['1'],
    );
    assert.deepEqual(extractPart(raw, '1'), INFECTED);
    const notice = 'The attachment setup.exe was removed: it contains Win.Trojan.Test.';
    const res = stripParts(raw, [{ partPath: '1', notice }]);
    assert.deepEqual(res.stripped, ['1']);
    const out = res.bytes.toString('latin1');
    const expectedHeader = [
      'Return-Path: <alice@src.test>',
      'From: Alice <alice@src.test>',
      'To: bob@dst.test',
      'Subject: setup',
      'X-Mailer: test',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 7bit',
      '',
      notice,
      '',
    ].join(eol);
    assert.equal(out, expectedHeader);

    const after = await parseMessage(res.bytes);
    assert.deepEqual(after.attachments, []);
    assert.equal(after.text.trim(), notice);
    assert.equal(after.subject, 'setup');
    const mail = await simpleParser(res.bytes);
    assert.equal(mail.text?.trim(), notice);
    assert.deepEqual(mail.attachments, []);
    const postal = await PostalMime.parse(res.bytes);
    assert.equal(postal.text?.trim(), notice);
    assert.deepEqual(postal.attachments, []);
  }
});

test('a message without MIME-Version gets one with the notice', () => {
  const raw = eml('From: a@src.test\nSubject: x\nContent-Type: application/octet-stream\n\nMZ\x90\x00binary\n');
  const res = stripParts(raw, [{ partPath: '1', notice: 'removed' }]);
  assert.deepEqual(res.stripped, ['1']);
  assert.equal(
    res.bytes.toString('latin1'),
    'From: a@src.test\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n' +
      'Content-Transfer-Encoding: 7bit\r\n\r\nremoved\r\n',
  );
});

test('extractPart decodes base64, quoted-printable and identity bodies', async () => {
  const qpData = Buffer.from('line one = equals\r\nsoft-broken line that goes on\r\n\xe9t\xe9 \x00\x01', 'latin1');
  const raw = eml(`${HEADER}Content-Type: multipart/mixed; boundary="b"

--b
Content-Type: application/octet-stream; name="a.bin"
Content-Transfer-Encoding: base64

${b64(INFECTED)}
--b
Content-Type: application/x-sh; name="run.sh"
Content-Transfer-Encoding: quoted-printable

line one =3D equals
soft-broken line =
that goes on
=E9t=E9 =00=01
--b
Content-Type: application/octet-stream; name="raw.bin"
Content-Transfer-Encoding: 8bit

raw \xff\xfe bytes
--b
Content-Type: application/octet-stream; name="odd.bin"
Content-Transfer-Encoding: x-unknown

kept as is
--b--
`);
  const parsed = await parseMessage(raw);
  assert.equal(parsed.attachments.length, 4);
  for (const a of parsed.attachments) {
    assert.equal(sha(extractPart(raw, a.partPath)!), a.sha256, a.name);
  }
  assert.deepEqual(extractPart(raw, '1.1'), INFECTED);
  assert.deepEqual(extractPart(raw, '1.2'), qpData);
  assert.deepEqual(extractPart(raw, '1.3'), Buffer.from('raw \xff\xfe bytes', 'latin1'));
  assert.equal(extractPart(raw, '1.4')!.toString(), 'kept as is');
  // a multipart: its raw content
  assert.match(extractPart(raw, '1')!.toString('latin1'), /^--b\r\n/);
  assert.equal(extractPart(raw, '1.5'), null);
  assert.equal(extractPart(raw, '2'), null);
  assert.equal(extractPart(raw, ''), null);
  assert.equal(extractPart(raw, '1.x'), null);

  // strip the quoted-printable one
  const res = stripParts(raw, [{ partPath: '1.2', notice: 'run.sh was removed.' }]);
  assert.deepEqual(res.stripped, ['1.2']);
  for (const p of ['1.1', '1.3', '1.4']) {
    assert.deepEqual(rawPart(res.bytes, p), rawPart(raw, p), p);
  }
  assert.equal(extractPart(res.bytes, '1.2')!.toString(), 'run.sh was removed.');
});

test('stripping several parts at once, and a part inside another target', async () => {
  const raw = eml(mixedText());
  const res = stripParts(raw, [
    { partPath: '1.3', notice: NOTICE },
    { partPath: '1.2', notice: 'The attachment report.pdf was removed.' },
    { partPath: '1.9', notice: 'not there' },
  ]);
  assert.deepEqual(res.stripped, ['1.3', '1.2']);
  assert.deepEqual(rawPart(res.bytes, '1.1'), rawPart(raw, '1.1'));
  const after = await parseMessage(res.bytes);
  assert.deepEqual(
    after.attachments.map((a) => a.name),
    ['report.pdf.removed.txt', 'invoice.zip.removed.txt'],
  );

  const fwd = eml(
    `${HEADER}Content-Type: multipart/mixed; boundary="o"\n\n--o\n${ATTACHED['base64 encoded']}\n--o--\n`,
  );
  const both = stripParts(fwd, [
    { partPath: '1.1.1.2', notice: 'inner' },
    { partPath: '1.1', notice: 'The attached message fwd.eml was removed.' },
  ]);
  assert.deepEqual(both.stripped, ['1.1']);
  assert.equal(extractPart(both.bytes, '1.1')!.toString(), 'The attached message fwd.eml was removed.');
  assert.equal(attachment(await parseMessage(both.bytes), 'fwd.eml.removed.txt').partPath, '1.1');
});

test('a notice is always read back as written, whatever it contains', async () => {
  const raw = eml(mixedText());
  const notice =
    'Die Anlage »Rechnung März.zip« wurde entfernt.\n--outer-b--\n--outer-b\n-\n' +
    'trailing space \ncontrol\x00\x07 chars\r\nand a long line ' +
    'x'.repeat(300);
  const res = stripParts(raw, [{ partPath: '1.3', notice }]);
  assert.deepEqual(res.stripped, ['1.3']);
  const expected = notice
    .replace(/\r\n/g, '\n')
    .replace(/[\x00\x07]/g, '')
    .replace(/\n/g, '\r\n');
  assert.equal(extractPart(res.bytes, '1.3')!.toString('utf8'), expected);
  const now = span(res.bytes, '1.3');
  const body = res.bytes.subarray(now.bodyStart, now.end).toString('latin1');
  assert.ok(
    body.split('\r\n').every((l) => l.length <= 76 && !l.startsWith('-')),
    'short lines, none starting with "-"',
  );
  assert.match(res.bytes.subarray(now.start, now.bodyStart).toString(), /quoted-printable/);
  const after = await parseMessage(res.bytes);
  assert.deepEqual(
    after.parts.map((p) => p.path),
    ['1', '1.1', '1.2', '1.3'],
  );
  await assertReadersSeeNotice(res.bytes, expected, 'invoice.zip.removed.txt', [REPORT]);
});

test('the notice file name is built from the original name, whatever it is', async () => {
  assert.equal(noticeFileName('invoice.zip'), 'invoice.zip.removed.txt');
  assert.equal(noticeFileName(null), 'attachment.removed.txt');
  assert.equal(noticeFileName('a\r\nb/../c\\d'), 'ab_.._c_d.removed.txt');
  assert.equal(noticeFileName('x'.repeat(500)).length, 120 + '.removed.txt'.length);

  const raw = eml(`${HEADER}Content-Type: multipart/mixed; boundary="b"

--b
Content-Type: text/plain

hi
--b
Content-Type: application/zip
Content-Disposition: attachment; filename*=utf-8''Rechnung%20M%C3%A4rz%20%E2%82%AC.zip
Content-Transfer-Encoding: base64

${b64(INFECTED)}
--b--
`);
  const res = stripParts(raw, [{ partPath: '1.2', notice: 'removed' }]);
  assert.deepEqual(res.stripped, ['1.2']);
  const name = 'Rechnung März €.zip.removed.txt';
  assert.equal(attachment(await parseMessage(res.bytes), name).partPath, '1.2');
  await assertReadersSeeNotice(res.bytes, 'removed', name, []);
});

test('malformed messages never throw', async () => {
  // no closing delimiter: the last part runs to the end of the message
  const open = eml(mixedText().replace('--outer-b--\nepilogue stays\n', ''));
  const parsed = await parseMessage(open);
  assert.equal(sha(extractPart(open, '1.3')!), attachment(parsed, 'invoice.zip').sha256);
  for (const p of ['1.3', '1.2']) {
    const res = stripParts(open, [{ partPath: p, notice: NOTICE }]);
    assert.deepEqual(res.stripped, [p]);
    assert.equal(extractPart(res.bytes, p)!.toString().trim(), NOTICE);
    const after = await parseMessage(res.bytes);
    assert.equal(after.attachments.length, 2);
  }

  // nothing to find: the message comes back as it was
  const raw = eml(mixedText());
  for (const targets of [
    [],
    [{ partPath: '1.4', notice: 'x' }],
    [{ partPath: '', notice: 'x' }],
    [{ partPath: '1..2', notice: 'x' }],
    [{ partPath: '0', notice: 'x' }],
    [null, undefined, { notice: 'x' }] as unknown as Array<{ partPath: string; notice: string }>,
  ]) {
    const res = stripParts(raw, targets);
    assert.deepEqual(res.stripped, []);
    assert.equal(res.bytes, raw);
  }
  assert.deepEqual(stripParts(null as unknown as Buffer, [{ partPath: '1', notice: 'x' }]).stripped, []);
  assert.equal(extractPart(null as unknown as Buffer, '1'), null);

  // odd inputs and every prefix of a real message
  let seed = 7;
  const random = Buffer.alloc(4000);
  for (let i = 0; i < random.length; i++) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    random[i] = seed % 7 === 0 ? 0x0a : seed & 0xff;
  }
  const odd: Buffer[] = [
    Buffer.alloc(0),
    Buffer.from('no header end'),
    Buffer.from('Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n--x\r\n--x--'),
    Buffer.from('Content-Type: multipart/mixed\r\n\r\n--x\r\nContent-Type: application/zip\r\n\r\nPK'),
    Buffer.from('Content-Type: message/rfc822\r\n\r\nContent-Type: message/rfc822\r\n\r\n'),
    random,
  ];
  for (let i = 0; i < raw.length; i += 97) {
    odd.push(raw.subarray(0, i));
  }
  for (const b of odd) {
    const parsedOdd = await parseMessage(b);
    for (const a of parsedOdd.attachments) {
      assert.equal(sha(extractPart(b, a.partPath) ?? Buffer.alloc(1)), a.sha256);
    }
    for (const p of ['1', '1.1', '1.2', '1.3', '1.1.1']) {
      const res = stripParts(b, [{ partPath: p, notice: 'gone' }]);
      if (res.stripped.length) {
        assert.equal(extractPart(res.bytes, p)!.toString().trim(), 'gone');
      } else {
        assert.equal(res.bytes, b);
      }
    }
  }
});

/** A small seeded generator of odd MIME structures (unclosed and reused boundaries, padded and
 * CR-prefixed delimiters, header blocks cut short, attached messages of every kind). */
function oddMessages(count: number, seed0: number): Buffer[] {
  let seed = seed0;
  const rnd = (): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)];
  const leaf = (depth: number): string => {
    const kind = pick(['text', 'b64', 'qp', 'bin', 'rfc822', 'rfc822b64', 'noct', 'multi', 'multi', 'empty', 'cut']);
    if (kind === 'multi' && depth < 4) {
      return multipart(depth + 1);
    }
    if (kind.startsWith('rfc822') && depth < 4) {
      const inner = message(depth + 1);
      return kind === 'rfc822'
        ? `Content-Type: message/rfc822${pick(['', '\nContent-Disposition: attachment'])}\n\n${inner}`
        : `Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n${b64(Buffer.from(inner))}`;
    }
    switch (kind) {
      case 'b64':
        return `Content-Type: application/octet-stream; name="a${depth}.bin"\nContent-Transfer-Encoding: base64\n\n${Buffer.from('payload-' + rnd()).toString('base64')}${pick(['', '\n', '=='])}`;
      case 'qp':
        return `Content-Type: application/pdf\nContent-Transfer-Encoding: quoted-printable\n\nq=3Dp =\n soft${pick(['', '=', '\n'])}`;
      case 'bin':
        return `Content-Type: image/png\n\n\x89PNG\r\n\x00${pick(['', '\r', '\n\n'])}`;
      case 'noct':
        return `Content-Disposition: attachment; filename="x.exe"\n\nMZ${pick(['', '\n'])}`;
      case 'empty':
        return pick(['', '\n', 'Content-Type: application/zip\n\n', 'Content-Type: application/zip\n\n\n']);
      case 'cut':
        return 'Content-Type: application/zip; name=z.zip';
      default:
        return `Content-Type: text/plain\n\nhello ${rnd()}${pick(['', '\n', ' \n'])}`;
    }
  };
  const multipart = (depth: number): string => {
    const b = pick(['b' + depth, 'bb', 'x' + Math.floor(rnd() * 3)]);
    let s = `Content-Type: multipart/${pick(['mixed', 'alternative', 'digest'])}; boundary="${b}"\n\n${pick(['', 'preamble\n', `--${b}--\n`])}`;
    const n = 1 + Math.floor(rnd() * 3);
    for (let i = 0; i < n; i++) {
      s += `--${b}${pick(['', '', ' ', '\r'])}\n${leaf(depth)}\n`;
    }
    return s + pick([`--${b}--\n`, `--${b}--`, '', `--${b}--\nepilogue\n`, `\r--${b}--\n`]);
  };
  const message = (depth: number): string =>
    `From: a@src.test\nSubject: s${depth}\n${rnd() < 0.7 ? multipart(depth) : leaf(depth)}`;

  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    let text = message(0);
    if (rnd() < 0.5) {
      const lines = text.split(/(?<=\n)/);
      for (let k = 0; k < 3; k++) {
        const a = Math.floor(rnd() * lines.length);
        const b = Math.floor(rnd() * lines.length);
        const op = rnd();
        if (op < 0.3) {
          lines.splice(a, 1);
        } else if (op < 0.6) {
          lines.splice(a, 0, lines[b] ?? '');
        } else {
          lines.splice(a, 0, pick(['\n', '\r\n', '\r', '--', 'Content-Type: multipart/mixed; boundary=bb\n']));
        }
      }
      text = lines.join('');
    }
    if (rnd() < 0.5) {
      text = text.replace(/\n/g, '\r\n');
    }
    if (rnd() < 0.15) {
      text = text.slice(0, Math.floor(rnd() * text.length));
    }
    out.push(Buffer.from(text, 'latin1'));
  }
  return out;
}

/** every part path of a message, attached messages included, as the parse stage numbers them */
function allPaths(bytes: Buffer): string[] {
  const paths: string[] = [];
  const walk = (content: Buffer, root: string, depth: number): void => {
    for (const p of mapParts(content, root, depth).parts) {
      paths.push(`${p.path} ${p.contentType}`);
      if (p.leaf && p.contentType === 'message/rfc822' && p.depth < 20) {
        walk(extractPart(bytes, p.path) ?? Buffer.alloc(0), `${p.path}.1`, p.depth + 1);
      }
    }
  };
  walk(bytes, '1', 0);
  return paths.sort();
}

test('parts are numbered and read exactly as the parse stage does, on odd structures', async () => {
  let attachments = 0;
  let strippedCount = 0;
  for (const [i, raw] of oddMessages(400, 20260602).entries()) {
    const parsed = await parseMessage(raw);
    assert.deepEqual(allPaths(raw), parsed.parts.map((p) => `${p.path} ${p.contentType}`).sort(), `message ${i}`);
    for (const a of parsed.attachments) {
      attachments++;
      assert.equal(sha(extractPart(raw, a.partPath) ?? Buffer.alloc(1)), a.sha256, `message ${i} part ${a.partPath}`);
    }
    for (const p of parsed.parts) {
      if (!p.contentType.startsWith('multipart/') && p.decodedSize) {
        assert.equal(extractPart(raw, p.path)?.length, p.decodedSize, `message ${i} part ${p.path}`);
      }
    }
    // strip every other attachment; the rest keep their bytes
    const targets = parsed.attachments.filter((_, k) => k % 2 === 0);
    if (!targets.length) {
      continue;
    }
    const res = stripParts(
      raw,
      targets.map((a) => ({ partPath: a.partPath, notice: `removed ${a.partPath}\n--bb--\n-` })),
    );
    const expected = targets
      .filter((a) => !targets.some((b) => a.partPath.startsWith(b.partPath + '.')))
      .map((a) => a.partPath);
    assert.deepEqual(res.stripped, expected, `message ${i}`);
    strippedCount += res.stripped.length;
    const after = await parseMessage(res.bytes);
    const touched = (p: string): boolean =>
      res.stripped.some((q) => p === q || p.startsWith(q + '.') || q.startsWith(p + '.'));
    for (const a of parsed.attachments) {
      if (!touched(a.partPath)) {
        assert.ok(
          after.attachments.some((b) => b.partPath === a.partPath && b.sha256 === a.sha256),
          `message ${i}: ${a.partPath} unchanged`,
        );
      }
    }
    for (const q of res.stripped) {
      assert.match(
        extractPart(res.bytes, q)!.toString(),
        new RegExp(`^removed ${q.replace(/\./g, '\\.')}\\r?\\n--bb--`),
      );
    }
  }
  assert.ok(attachments > 300 && strippedCount > 150, `${attachments} attachments, ${strippedCount} stripped`);
});

function corpusSample(): string[] {
  const manifest = path.join(CORPUS, 'manifest.tsv');
  if (!existsSync(manifest)) {
    return [];
  }
  const byCorpus = new Map<string, string[]>();
  for (const line of readFileSync(manifest, 'utf8').split('\n').slice(1)) {
    const [file, corpus] = line.split('\t');
    if (file && corpus) {
      byCorpus.set(corpus, [...(byCorpus.get(corpus) ?? []), file]);
    }
  }
  const sample: string[] = [];
  for (const files of byCorpus.values()) {
    files.sort();
    // the small fixture collections whole, the large ones every 10th message
    const step = files.length > 200 ? 10 : 1;
    for (let i = 0; i < files.length; i += step) {
      sample.push(path.join(CORPUS, files[i]));
    }
  }
  return sample;
}

test('on real mail, extractPart matches the parse stage and stripping keeps the rest', async (t) => {
  const files = corpusSample();
  if (!files.length) {
    t.skip(`corpus not found at ${CORPUS}`);
    return;
  }
  let messages = 0;
  let checked = 0;
  for (const file of files) {
    if (!existsSync(file)) {
      continue;
    }
    const raw = readFileSync(file);
    const parsed = await parseMessage(raw, { timeoutMs: 60_000 });
    messages++;
    for (const a of parsed.attachments) {
      checked++;
      const got = extractPart(raw, a.partPath);
      assert.ok(got, `${file} ${a.partPath}`);
      assert.equal(sha(got), a.sha256, `${file} ${a.partPath} (${a.name || a.declaredType})`);

      const res = stripParts(raw, [{ partPath: a.partPath, notice: `The attachment ${a.name} was removed.` }]);
      assert.deepEqual(res.stripped, [a.partPath], `${file} ${a.partPath}`);
      const after = await parseMessage(res.bytes, { timeoutMs: 60_000 });
      for (const b of parsed.attachments) {
        if (
          b.partPath !== a.partPath &&
          !b.partPath.startsWith(a.partPath + '.') &&
          !a.partPath.startsWith(b.partPath + '.')
        ) {
          assert.ok(
            after.attachments.some((c) => c.partPath === b.partPath && c.sha256 === b.sha256),
            `${file}: stripping ${a.partPath} left ${b.partPath} alone`,
          );
        }
      }
      assert.equal(after.parts.find((p) => p.path === a.partPath)?.contentType, 'text/plain', `${file} ${a.partPath}`);
    }
  }
  assert.ok(messages > 500 && checked > 100, `${messages} messages, ${checked} attachments`);
});
