import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { dkimSign, dkimVerify } from 'mailauth';
import PostalMime from 'postal-mime';
import { modifyMessage, type ModifyOptions, type ModifyResult } from '../src/outbreak/modify.ts';
import { walkMessage } from '../src/mime/edit/structure.ts';
import { encodeBase64, encodeQuotedPrintable } from '../src/mime/edit/encoding.ts';
import { createTransferDecoder } from '../src/mime/decode.ts';
import { decodeEntities } from '../src/mime/urls.ts';

const require = createRequire(import.meta.url);

interface MailparserAttachment {
  filename?: string;
  contentType: string;
  content: Buffer;
}
interface MailparserResult {
  subject?: string;
  text?: string;
  html?: string | false;
  headers: Map<string, unknown>;
  attachments: MailparserAttachment[];
}
const { simpleParser } = require('mailparser') as { simpleParser(input: Buffer): Promise<MailparserResult> };

const FIXTURES = path.resolve(import.meta.dirname, 'fixtures/modify');
const CORPUS = path.resolve(import.meta.dirname, '../../shared/corpus');

const CLICK = 'https://bw.click.test/c/';
/** wraps into a click-time link; the "&" shows that the new URL is HTML-escaped in attributes */
const wrap = (url: string): string => `${CLICK}${Buffer.from(url).toString('base64url')}?v=1&m=7`;
const isOwnLink = (url: string): boolean => url.startsWith(CLICK);
/** the original URL of a link produced by `wrap`, or null for any other URL */
function unwrap(url: string): string | null {
  if (!url.startsWith(CLICK)) {
    return null;
  }
  const token = url.slice(CLICK.length).split('?')[0];
  return Buffer.from(token, 'base64url').toString();
}

function rewrite(
  mode: 'unsigned' | 'all' | 'off',
  bypassDomains: string[] = ['bypass.test', '192.0.2.7'],
): NonNullable<ModifyOptions['rewrite']> {
  return { mode, bypassDomains, wrap, isOwnLink };
}

const STATUS = 'X-Breakwater-Outbreak-Status';

function fullOptions(mode: 'unsigned' | 'all' | 'off' = 'all'): ModifyOptions {
  return {
    subject: { mode: 'prepend', text: '[SUSPICIOUS MESSAGE]' },
    addHeaders: [{ name: STATUS, value: 'yes, level 3, phish - url' }],
    disclaimer: {
      text: 'CAUTION: this message may be a phishing attempt.',
      html: '<div class="bw-disclaimer">CAUTION: this message may be a phishing attempt.</div>',
    },
    rewrite: rewrite(mode),
  };
}

/** A message from lines joined with CRLF (or `eol`). */
function eml(lines: string[], eol = '\r\n'): Buffer {
  return Buffer.from(lines.join(eol), 'latin1');
}

function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

function headerBlock(raw: Buffer): string {
  const s = raw.toString('latin1');
  const m = /\r?\n\r?\n/.exec(s);
  return m ? s.slice(0, m.index + m[0].length) : s;
}

/** href values of <a> and <area> as a browser reads them (test-side extractor, independent of the code under test). */
function hrefs(html: string): string[] {
  const out: string[] = [];
  const re = /<(?:a|area)\b[^>]*?\shref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))/gi;
  let m: RegExpExecArray | null;
  while ((m = re.exec(html)) !== null) {
    out.push(
      decodeEntities(m[1] ?? m[2] ?? m[3])
        .replace(/[\t\n\r]/g, '')
        .trim(),
    );
  }
  return out;
}

interface View {
  subject: string;
  text: string;
  html: string;
  attachments: Array<{ name: string; sha: string }>;
}

async function mailparserView(raw: Buffer): Promise<View> {
  const m = await simpleParser(raw);
  return {
    subject: m.subject ?? '',
    text: m.text ?? '',
    html: m.html || '',
    attachments: m.attachments.map((a) => ({ name: a.filename ?? '', sha: sha256(a.content) })),
  };
}

async function postalView(raw: Buffer): Promise<View> {
  const m = await PostalMime.parse(raw);
  return {
    subject: m.subject ?? '',
    text: m.text ?? '',
    html: m.html ?? '',
    attachments: m.attachments.map((a) => ({
      name: a.filename ?? '',
      sha: sha256(typeof a.content === 'string' ? a.content : new Uint8Array(a.content)),
    })),
  };
}

/** Both parsers see the same attachments (names and content) before and after. */
async function assertSameAttachments(before: Buffer, after: Buffer): Promise<{ mp: View; pm: View }> {
  const [mpBefore, mpAfter, pmBefore, pmAfter] = await Promise.all([
    mailparserView(before),
    mailparserView(after),
    postalView(before),
    postalView(after),
  ]);
  assert.deepEqual(mpAfter.attachments, mpBefore.attachments, 'mailparser attachments');
  assert.deepEqual(pmAfter.attachments, pmBefore.attachments, 'postal-mime attachments');
  return { mp: mpAfter, pm: pmAfter };
}

function run(raw: Buffer, opts: ModifyOptions): ModifyResult {
  const r = modifyMessage(raw, opts);
  assert.ok(Buffer.isBuffer(r.bytes));
  return r;
}

// ---------------------------------------------------------------------------------------------
// Subject

const SIMPLE = eml([
  'From: Sender <sender@example.com>',
  'To: rcpt@example.org',
  'Subject: Your invoice',
  'Date: Tue, 02 Jun 2026 10:00:00 +0000',
  'Message-ID: <simple@example.com>',
  'MIME-Version: 1.0',
  'Content-Type: text/plain; charset=us-ascii',
  '',
  'Hello, pay at https://pay.evil.test/now today.',
  '',
]);

test('subject tag is prepended or appended and other header fields stay byte-identical', async () => {
  const pre = run(SIMPLE, { subject: { mode: 'prepend', text: '[SUSPICIOUS]' } });
  assert.ok(pre.subjectChanged);
  assert.equal((await mailparserView(pre.bytes)).subject, '[SUSPICIOUS] Your invoice');
  assert.equal(
    pre.bytes.toString('latin1'),
    SIMPLE.toString('latin1').replace('Subject: Your invoice', 'Subject: [SUSPICIOUS] Your invoice'),
  );
  const post = run(SIMPLE, { subject: { mode: 'append', text: '[SUSPICIOUS]' } });
  assert.equal((await postalView(post.bytes)).subject, 'Your invoice [SUSPICIOUS]');
  assert.equal(pre.disclaimerParts, 0);
  assert.equal(pre.rewriteSkipped, 'off');
});

test('an already tagged subject is not tagged twice', () => {
  const once = run(SIMPLE, { subject: { mode: 'prepend', text: '[SUSPICIOUS]' } });
  const twice = run(once.bytes, { subject: { mode: 'prepend', text: '[SUSPICIOUS]' } });
  assert.equal(twice.subjectChanged, false);
  assert.equal(twice.subjectSkipped, 'already-tagged');
  assert.equal(twice.changed, false);
  assert.ok(twice.bytes.equals(once.bytes));
});

test('encoded-word subjects stay valid: decoded, tagged and re-encoded', async () => {
  const cases: Array<[string, string]> = [
    ['=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_M=C3=BCnchen?=', 'Grüße aus München'],
    ['=?ISO-8859-1?B?UmVjaG51bmcgZvxyIElocmUgQmVzdGVsbHVuZw==?=', 'Rechnung für Ihre Bestellung'],
    [
      '=?utf-8?b?0KHRh9C10YIg0L3QsCDQvtC/0LvQsNGC0YM=?= =?utf-8?b?INC/0YDQvtGB0YDQvtGH0LXQvQ==?=',
      'Счет на оплату просрочен',
    ],
    ['Invoice =?UTF-8?Q?=E2=82=AC?=100 due', 'Invoice €100 due'],
    ['=?UTF-8?Q?ASCII_only_but_encoded?=', 'ASCII only but encoded'],
  ];
  for (const [raw, decoded] of cases) {
    const msg = eml(['From: a@example.com', 'To: b@example.org', `Subject: ${raw}`, '', 'body', '']);
    for (const mode of ['prepend', 'append'] as const) {
      const r = run(msg, { subject: { mode, text: '[SUSPICIOUS]' } });
      const expected = mode === 'prepend' ? `[SUSPICIOUS] ${decoded}` : `${decoded} [SUSPICIOUS]`;
      assert.equal((await mailparserView(r.bytes)).subject, expected, raw);
      assert.equal((await postalView(r.bytes)).subject, expected, raw);
      // header lines are 7-bit and fold within 78 characters
      for (const line of headerBlock(r.bytes).split('\r\n')) {
        assert.ok(line.length <= 78, `line too long: ${line}`);
        assert.ok(!/[^\x00-\x7f]/.test(line));
      }
    }
    // an all-ASCII result is written as plain text
    if (/^[\x20-\x7e]*$/.test(decoded)) {
      const r = run(msg, { subject: { mode: 'prepend', text: '[T]' } });
      assert.ok(r.bytes.includes(`Subject: [T] ${decoded}\r\n`));
    }
  }
});

test('a raw UTF-8 subject and a long subject are tagged and folded', async () => {
  const utf8 = Buffer.from('From: a@example.com\r\nSubject: Überweisung bestätigen\r\n\r\nbody\r\n', 'utf8');
  const r = run(utf8, { subject: { mode: 'prepend', text: '[SUSPICIOUS]' } });
  assert.equal((await mailparserView(r.bytes)).subject, '[SUSPICIOUS] Überweisung bestätigen');
  assert.ok(!/[^\x00-\x7f]/.test(headerBlock(r.bytes)));

  const long = 'word '.repeat(60).trim();
  const r2 = run(eml(['From: a@example.com', `Subject: ${long}`, '', 'body', '']), {
    subject: { mode: 'append', text: '[SUSPICIOUS]' },
  });
  assert.equal((await mailparserView(r2.bytes)).subject, `${long} [SUSPICIOUS]`);
  for (const line of headerBlock(r2.bytes).split('\r\n')) {
    assert.ok(line.length <= 78);
  }
});

test('a message without a Subject gets one', async () => {
  const msg = eml(['From: a@example.com', 'To: b@example.org', '', 'body', '']);
  const r = run(msg, { subject: { mode: 'prepend', text: '[SUSPICIOUS] ' } });
  assert.ok(r.subjectChanged);
  assert.equal((await mailparserView(r.bytes)).subject, '[SUSPICIOUS]');
  assert.equal(
    r.bytes.toString('latin1'),
    'From: a@example.com\r\nTo: b@example.org\r\nSubject: [SUSPICIOUS]\r\n\r\nbody\r\n',
  );
  // a header block without a final line break still gets a separate field
  const bare = run(Buffer.from('From: a@example.com'), { subject: { mode: 'prepend', text: '[S]' } });
  assert.equal(bare.bytes.toString(), 'From: a@example.com\r\nSubject: [S]\r\n');
});

// ---------------------------------------------------------------------------------------------
// Header fields

test('added header fields come first and forged copies from the sender are removed', async () => {
  const msg = eml([
    'Received: from mx.example.com by gw.example.org; Tue, 02 Jun 2026 10:00:00 +0000',
    'From: a@example.com',
    'x-breakwater-outbreak-status: no, level 0, clean',
    'Subject: hi',
    'X-Breakwater-Outbreak-Status : no,',
    '  level 0 (folded forgery)',
    'X-Breakwater-Outbreak-Description: all good, trust me',
    'X-Other: kept',
    '',
    'body',
    '',
  ]);
  const description = 'Message contains a link to a domain that was registered recently and imitates a bank '
    .repeat(2)
    .trim();
  const r = run(msg, {
    addHeaders: [
      { name: STATUS, value: 'yes, level 4, phish - url' },
      { name: 'X-Breakwater-Outbreak-Description', value: `${description}\r\nInjected: header` },
    ],
  });
  const out = r.bytes.toString('latin1');
  assert.ok(out.startsWith(`${STATUS}: yes, level 4, phish - url\r\nX-Breakwater-Outbreak-Description: `));
  assert.ok(!out.includes('level 0'));
  assert.ok(!out.includes('trust me'));
  assert.ok(!/^Injected:/m.test(out), 'line breaks in values cannot inject fields');
  const ours = out.slice(0, out.indexOf('\r\nReceived:')).split('\r\n');
  assert.equal(ours.length, 4);
  for (const line of ours) {
    assert.ok(line.length <= 78, line);
  }
  const parsed = await simpleParser(r.bytes);
  assert.equal(parsed.headers.get('x-breakwater-outbreak-status'), 'yes, level 4, phish - url');
  assert.equal(parsed.headers.get('x-breakwater-outbreak-description'), `${description} Injected: header`);
  // everything else in order and byte-identical
  const rest = out.replace(
    /^X-Breakwater-Outbreak-Status: .*\r\nX-Breakwater-Outbreak-Description: .*\r\n(?: .*\r\n)*/,
    '',
  );
  assert.equal(
    rest,
    [
      'Received: from mx.example.com by gw.example.org; Tue, 02 Jun 2026 10:00:00 +0000',
      'From: a@example.com',
      'Subject: hi',
      'X-Other: kept',
      '',
      'body',
      '',
    ].join('\r\n'),
  );
  assert.throws(() => modifyMessage(msg, { addHeaders: [{ name: 'Bad Name', value: 'x' }] }), TypeError);
  assert.throws(() => modifyMessage(msg, { addHeaders: [{ name: 'Subject', value: 'x' }] }), TypeError);
});

test('removeHeaders drops forged fields that are not added back', () => {
  const msg = eml(['From: a@example.com', 'X-Breakwater-Outbreak-Description: forged', '', 'body', '']);
  const r = run(msg, {
    addHeaders: [{ name: STATUS, value: 'yes, level 3, phish - url' }],
    removeHeaders: ['X-Breakwater-Outbreak-Description'],
  });
  assert.equal(r.bytes.toString(), `${STATUS}: yes, level 3, phish - url\r\nFrom: a@example.com\r\n\r\nbody\r\n`);
});

// ---------------------------------------------------------------------------------------------
// Disclaimer

const DISCLAIMER = { text: 'CAUTION: external sender.', html: '<p class="bw">CAUTION: external sender.</p>' };

test('text/plain gets the disclaimer and a blank line above the body', async () => {
  const r = run(SIMPLE, { disclaimer: DISCLAIMER });
  assert.equal(r.disclaimerParts, 1);
  const view = await mailparserView(r.bytes);
  assert.equal(view.text, 'CAUTION: external sender.\n\nHello, pay at https://pay.evil.test/now today.\n');
  assert.ok(
    r.bytes
      .toString()
      .endsWith('\r\n\r\nCAUTION: external sender.\r\n\r\nHello, pay at https://pay.evil.test/now today.\r\n'),
  );
  // a second run leaves the disclaimer alone
  const again = run(r.bytes, { disclaimer: DISCLAIMER });
  assert.equal(again.disclaimerParts, 0);
  assert.ok(again.bytes.equals(r.bytes));
});

test('text/html gets the disclaimer right after the body tag, or at the start without one', async () => {
  const html = (body: string): Buffer =>
    eml(['From: a@example.com', 'MIME-Version: 1.0', 'Content-Type: text/html; charset=utf-8', '', body, '']);
  const cases: Array<[string, string]> = [
    [
      '<html><head><title>t</title></head><body class="main" onload=\'x(">")\'><p>Hi</p></body></html>',
      '<html><head><title>t</title></head><body class="main" onload=\'x(">")\'><p class="bw">CAUTION: external sender.</p><p>Hi</p></body></html>',
    ],
    [
      '<!-- <body> in a comment --><html><BODY><p>Hi</p></BODY></html>',
      '<!-- <body> in a comment --><html><BODY><p class="bw">CAUTION: external sender.</p><p>Hi</p></BODY></html>',
    ],
    ['<p>Hi</p>', '<p class="bw">CAUTION: external sender.</p><p>Hi</p>'],
    [
      '<html><head><style>body{color:red}</style></head><p>Hi</p></html>',
      '<html><head><style>body{color:red}</style></head><p class="bw">CAUTION: external sender.</p><p>Hi</p></html>',
    ],
  ];
  for (const [before, after] of cases) {
    const r = run(html(before), { disclaimer: DISCLAIMER });
    assert.equal(r.disclaimerParts, 1);
    assert.ok(r.bytes.toString().includes(`\r\n\r\n${after}\r\n`), r.bytes.toString());
  }
});

test('multipart/alternative gets the disclaimer in both alternatives, attachments and attached messages none', async () => {
  const attachedHtml = '<html><body><a href="https://inner.evil.test/x">inner</a></body></html>';
  const pdf = Buffer.from('%PDF-1.4\n' + 'x'.repeat(500) + '\n%%EOF\n').toString('base64');
  const pdfPart = [
    'Content-Type: application/pdf; name="a.pdf"',
    'Content-Disposition: attachment; filename="a.pdf"',
    'Content-Transfer-Encoding: base64',
    '',
    pdf.match(/.{1,76}/g)!.join('\r\n'),
  ].join('\r\n');
  const htmlAttachment = [
    'Content-Type: text/html; charset=utf-8',
    'Content-Disposition: attachment; filename="page.html"',
    '',
    '<html><body><a href="https://attached.evil.test/login">login</a></body></html>',
  ].join('\r\n');
  const namedText = ['Content-Type: text/plain; name="notes.txt"', '', 'see https://named.evil.test/'].join('\r\n');
  const rfc822 = [
    'Content-Type: message/rfc822',
    '',
    'From: inner@example.com',
    'Subject: inner',
    'Content-Type: text/html; charset=utf-8',
    '',
    attachedHtml,
  ].join('\r\n');
  const msg = eml([
    'From: a@example.com',
    'To: b@example.org',
    'Subject: mixed',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="mix"',
    '',
    'This is a multi-part message in MIME format.',
    '--mix',
    'Content-Type: multipart/alternative; boundary="alt"',
    '',
    '--alt',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    'Hello =E2=80=93 open https://evil.test/a',
    '--alt',
    'Content-Type: multipart/related; boundary="rel"',
    '',
    '--rel',
    'Content-Type: text/html; charset=utf-8',
    'Content-Transfer-Encoding: base64',
    '',
    Buffer.from(
      '<html><body><p>Hello – open <a href="https://evil.test/a">here</a></p><img src="cid:logo"></body></html>',
    )
      .toString('base64')
      .match(/.{1,76}/g)!
      .join('\r\n'),
    '--rel',
    'Content-Type: image/png',
    'Content-ID: <logo>',
    'Content-Transfer-Encoding: base64',
    '',
    'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==',
    '--rel--',
    '--alt--',
    '--mix',
    pdfPart,
    '--mix',
    htmlAttachment,
    '--mix',
    namedText,
    '--mix',
    rfc822,
    '--mix',
    'Content-Type: text/plain; charset=us-ascii',
    'Content-Disposition: inline',
    '',
    'Footer: unsubscribe at https://footer.evil.test/u',
    '--mix--',
    'epilogue',
    '',
  ]);
  const r = run(msg, { ...fullOptions('all'), disclaimer: DISCLAIMER });
  assert.equal(r.disclaimerParts, 2);
  const out = r.bytes.toString('latin1');
  // untouched parts are byte-identical, including the boundaries around them
  for (const part of [pdfPart, htmlAttachment, namedText, rfc822]) {
    assert.ok(out.includes(`\r\n--mix\r\n${part}\r\n--mix`), part.slice(0, 60));
  }
  assert.ok(out.includes('\r\n\r\nThis is a multi-part message in MIME format.\r\n--mix\r\n'));
  assert.ok(out.endsWith('\r\n--mix--\r\nepilogue\r\n'));
  assert.ok(
    out.includes('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=='),
  );

  const { mp, pm } = await assertSameAttachments(msg, r.bytes);
  for (const view of [mp, pm]) {
    assert.ok(view.text.startsWith('CAUTION: external sender.\n\nHello – open '), view.text);
    assert.ok(view.html.includes('<body><p class="bw">CAUTION: external sender.</p><p>Hello – open'), view.html);
    // the footer is a body part: links rewritten, no second disclaimer
    assert.equal(view.text.split('CAUTION').length, 2);
  }
  const links = hrefs(mp.html);
  assert.equal(unwrap(links[0]), 'https://evil.test/a');
  assert.ok(mp.text.includes(wrap('https://footer.evil.test/u')));
  assert.deepEqual(r.rewrittenUrls, ['https://evil.test/a', 'https://footer.evil.test/u']);
  assert.ok(!r.rewrittenUrls.some((u) => /attached|inner|named/.test(u)));
  // base64 stays base64 in 76-character lines
  const walked = walkMessage(out);
  const html = walked.root.children[0].children[1].children[0];
  assert.equal(html.encoding, 'base64');
  const lines = out.slice(html.bodyStart, html.bodyEnd).split('\r\n');
  assert.ok(lines.every((l) => l.length <= 76) && lines.slice(0, -1).every((l) => l.length === 76));
});

test('disclaimer keeps the part charset when it can, converts text to UTF-8 and escapes HTML when not', async () => {
  const part = (type: string, charset: string, cte: string, body: Buffer | string): Buffer =>
    Buffer.concat([
      eml([
        'From: a@example.com',
        'Subject: charset',
        'MIME-Version: 1.0',
        `Content-Type: ${type}; charset="${charset}"; format=flowed`,
        `Content-Transfer-Encoding: ${cte}`,
        '',
        '',
      ]),
      typeof body === 'string' ? Buffer.from(body, 'latin1') : body,
    ]);
  const latin1 = part('text/plain', 'iso-8859-1', 'quoted-printable', 'Hallo W=F6rld\r\n');

  const fits = run(latin1, { disclaimer: { text: 'Achtung: verdächtig', html: '' } });
  assert.ok(fits.bytes.includes('charset="iso-8859-1"; format=flowed'));
  assert.ok(fits.bytes.includes('\r\n\r\nAchtung: verd=E4chtig\r\n\r\nHallo W=F6rld\r\n'));
  assert.equal((await mailparserView(fits.bytes)).text.trimEnd(), 'Achtung: verdächtig\n\nHallo Wörld');

  const wide = run(latin1, { disclaimer: { text: '⚠ Achtung', html: '' } });
  assert.ok(wide.notes.includes('charset_converted'));
  assert.ok(wide.bytes.includes('Content-Type: text/plain; charset=utf-8; format=flowed\r\n'));
  assert.equal((await mailparserView(wide.bytes)).text.trimEnd(), '⚠ Achtung\n\nHallo Wörld');
  assert.equal((await postalView(wide.bytes)).text.trim(), '⚠ Achtung\n\nHallo Wörld');

  const html = part(
    'text/html',
    'windows-1252',
    'base64',
    Buffer.from('<html><head><meta charset="windows-1252"></head><body>Gr\xfc\xdfe \x80</body></html>', 'latin1')
      .toString('base64')
      .concat('\r\n'),
  );
  const escaped = run(html, { disclaimer: { text: '', html: '<p>⚠ Vorsicht – extern</p>' } });
  assert.ok(escaped.bytes.includes('charset="windows-1252"'));
  assert.ok(!escaped.notes.includes('charset_converted'));
  const escapedView = await mailparserView(escaped.bytes);
  assert.ok(
    escapedView.html.includes('<body><p>&#x26a0; Vorsicht &#x2013; extern</p>Grüße €</body>'),
    escapedView.html,
  );
  const fitsHtml = run(html, { disclaimer: { text: '', html: '<p>Grüße – €</p>' } });
  assert.ok((await mailparserView(fitsHtml.bytes)).html.includes('<body><p>Grüße – €</p>Grüße €</body>'));

  // 7bit ASCII part and a non-ASCII disclaimer: quoted-printable and UTF-8
  const ascii = eml(['From: a@example.com', 'Content-Type: text/plain; charset=us-ascii', '', 'plain ascii', '']);
  const qp = run(ascii, { disclaimer: { text: 'Achtung – extern', html: '' } });
  assert.ok(qp.notes.includes('transfer_encoding_changed'));
  assert.ok(
    qp.bytes.includes(
      'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\nMIME-Version: 1.0\r\n\r\n',
    ),
  );
  assert.equal((await mailparserView(qp.bytes)).text, 'Achtung – extern\n\nplain ascii\n');

  // no MIME header fields at all
  const bare = run(eml(['From: a@example.com', 'Subject: old style', '', 'hello', '']), {
    disclaimer: { text: 'Grüße', html: '' },
  });
  assert.equal((await mailparserView(bare.bytes)).text, 'Grüße\n\nhello\n');
  assert.equal((await postalView(bare.bytes)).text.trim(), 'Grüße\n\nhello');

  // decode-only charsets (ISO-2022-JP) are converted to UTF-8
  const jis = Buffer.from([
    0x1b, 0x24, 0x42, 0x24, 0x33, 0x24, 0x73, 0x24, 0x4b, 0x24, 0x41, 0x24, 0x4f, 0x1b, 0x28, 0x42,
  ]);
  const jp = part('text/plain', 'iso-2022-jp', '7bit', Buffer.concat([jis, Buffer.from(' https://evil.test/jp\r\n')]));
  const jpOut = run(jp, { disclaimer: { text: 'Caution', html: '' }, rewrite: rewrite('all') });
  assert.equal(
    (await mailparserView(jpOut.bytes)).text.trimEnd(),
    `Caution\n\nこんにちは ${wrap('https://evil.test/jp')}`,
  );

  // unknown charset: ASCII goes in, non-ASCII is dropped (the bytes cannot be re-read)
  const unknown = part('text/plain', 'x-mystery', '8bit', 'caf\xe9 https://evil.test/u\r\n');
  const askii = run(unknown, { disclaimer: { text: 'Caution', html: '' } });
  assert.ok(askii.bytes.includes(Buffer.from('\r\n\r\nCaution\r\n\r\ncaf\xe9 https://evil.test/u\r\n', 'latin1')));
  const wideUnknown = run(unknown, { disclaimer: { text: 'Vorsicht – extern', html: '' }, rewrite: rewrite('all') });
  assert.ok(wideUnknown.notes.includes('disclaimer_charset_unknown'));
  assert.equal(wideUnknown.disclaimerParts, 0);
  assert.ok(wideUnknown.bytes.includes(Buffer.from(`caf\xe9 ${wrap('https://evil.test/u')}\r\n`, 'latin1')));
});

test('quoted-printable parts are re-encoded as quoted-printable with short lines', async () => {
  const long =
    'Ein sehr langer Absatz mit Umlauten äöü und einem Link https://evil.test/' + 'x'.repeat(120) + ' am Ende. ';
  const qpBody = long
    .replace(/=/g, '=3D')
    .replace(/[^\x00-\x7f]/g, (c) =>
      [...Buffer.from(c, 'utf8')].map((b) => '=' + b.toString(16).toUpperCase()).join(''),
    );
  const msg = eml([
    'From: a@example.com',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    qpBody.match(/.{1,70}(?:=[0-9A-F]{2})*/g)!.join('=\r\n'),
    '',
  ]);
  const r = run(msg, { disclaimer: DISCLAIMER, rewrite: rewrite('all') });
  const body = r.bytes.toString().split('\r\n\r\n').slice(1).join('\r\n\r\n');
  for (const line of body.split('\r\n')) {
    assert.ok(line.length <= 76, line);
  }
  const text = (await mailparserView(r.bytes)).text;
  assert.ok(text.startsWith('CAUTION: external sender.\n\nEin sehr langer Absatz mit Umlauten äöü'));
  assert.ok(text.includes(wrap('https://evil.test/' + 'x'.repeat(120))));
  assert.ok(text.trimEnd().endsWith('am Ende.'));
});

test('quoted-printable and base64 encoders round-trip any bytes within 76-character lines', () => {
  let seed = 7;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed % n;
  };
  const alphabet = [0x20, 0x09, 0x0d, 0x0a, 0x3d, 0x2e, 0x41, 0x7a, 0xe4, 0x00, 0xff];
  for (let i = 0; i < 300; i++) {
    const data = Buffer.from(
      Array.from({ length: rnd(400) }, () => (rnd(3) ? alphabet[rnd(alphabet.length)] : rnd(256))),
    );
    for (const eol of ['\r\n', '\n']) {
      const qp = encodeQuotedPrintable(data, eol);
      assert.ok(/^[\x09\x0a\x0d\x20-\x7e]*$/.test(qp));
      for (const line of qp.split(eol)) {
        assert.ok(line.length <= 76, line);
        assert.ok(!/[ \t]$/.test(line), 'no whitespace at the end of a line');
        assert.ok(!line.includes('\r') && !line.includes('\n'));
      }
      const dec = createTransferDecoder('quoted-printable');
      const back = Buffer.concat([dec.write(Buffer.from(qp, 'latin1')), dec.end()]);
      const expected = Buffer.from(data.toString('latin1').replace(/\r?\n/g, eol), 'latin1');
      assert.ok(back.equals(expected), `qp round trip ${i}`);

      const b64 = encodeBase64(data, eol);
      assert.ok(b64.split(eol).every((l) => l.length <= 76));
      assert.ok(Buffer.from(b64, 'base64').equals(data));
    }
  }
});

// ---------------------------------------------------------------------------------------------
// URL rewriting

test('HTML links are rewritten in a, area with any quoting and entity-encoded URLs', async () => {
  const body = [
    '<html><body>',
    '<a href="https://evil.test/a?x=1&amp;y=2">double</a>',
    "<a href='http://evil.test/b'>single</a>",
    '<a href=https://evil.test/c>unquoted</a>',
    '<A HREF="h&#116;tps&colon;//evil.test/d">entities</A>',
    '<a href="&#x68;&#00000116;tp://evil.test/e">numeric</a>',
    '<map><area shape=rect coords="0,0,1,1" href="https://evil.test/f" alt="x"></map>',
    '<a href="mailto:x@evil.test">mail</a>',
    '<a href="https://sub.bypass.test/g">bypassed subdomain</a>',
    '<a href="https://bypass.test.evil.test/h">not bypassed</a>',
    '<a href="https://notbypass.test/i">not bypassed either</a>',
    '<a href="http://192.0.2.7/j">bypassed IP</a>',
    '<a href="https://bypass.test@evil.test/k">userinfo</a>',
    `<a href="${wrap('https://evil.test/own').replace('&', '&amp;')}">own</a>`,
    '<img src="https://evil.test/img.png">',
    '<a data-href="https://evil.test/l" title=">" href = "https://evil.test/m">spaces</a>',
    '<a href="//evil.test/n">scheme-relative</a>',
    '<a href=" https://evil.test/o\n">whitespace</a>',
    '<abbr href="https://evil.test/p">not a link</abbr>',
    '<!--[if mso]><a href="https://evil.test/q">outlook</a><![endif]-->',
    '</body></html>',
  ].join('\n');
  const msg = eml(['From: a@example.com', 'MIME-Version: 1.0', 'Content-Type: text/html; charset=utf-8', '', body, '']);
  const r = run(msg, { rewrite: rewrite('all') });
  const out = r.bytes.toString();
  const links = hrefs((await mailparserView(r.bytes)).html);
  const originals = links.map((l) => unwrap(l) ?? `KEPT ${l}`);
  assert.deepEqual(originals, [
    'https://evil.test/a?x=1&y=2',
    'http://evil.test/b',
    'https://evil.test/c',
    'https://evil.test/d',
    'http://evil.test/e',
    'https://evil.test/f',
    'KEPT mailto:x@evil.test',
    'KEPT https://sub.bypass.test/g',
    'https://bypass.test.evil.test/h',
    'https://notbypass.test/i',
    'KEPT http://192.0.2.7/j',
    'https://bypass.test@evil.test/k',
    'https://evil.test/own',
    // (the test extractor stops at the ">" in the title of the "m" link; checked below)
    'https://evil.test/n',
    'https://evil.test/o',
    'https://evil.test/q',
  ]);
  // quoting style kept, new URL HTML-escaped
  assert.ok(out.includes(`<a href="${wrap('https://evil.test/a?x=1&y=2').replace('&', '&amp;')}">double</a>`));
  assert.ok(out.includes(`<a href='${wrap('http://evil.test/b').replace('&', '&amp;')}'>single</a>`));
  // unquoted values cannot hold "=" (HTML syntax): it is written as a character reference
  assert.ok(
    out.includes(`<a href=${wrap('https://evil.test/c').replace('&', '&amp;').replaceAll('=', '&#61;')}>unquoted</a>`),
  );
  assert.ok(out.includes('<img src="https://evil.test/img.png">'));
  assert.ok(out.includes('<abbr href="https://evil.test/p">'));
  assert.ok(
    out.includes(
      `data-href="https://evil.test/l" title=">" href = "${wrap('https://evil.test/m').replace('&', '&amp;')}">`,
    ),
  );
  assert.ok(out.includes(`<a href="${wrap('https://evil.test/own').replace('&', '&amp;')}">own</a>`));
  assert.ok(!r.rewrittenUrls.some((u) => u.startsWith(CLICK)));
  assert.equal(r.rewrittenUrls.length, 13);
  assert.equal(r.rewriteSkipped, null);

  // a second run wraps nothing twice
  const again = run(r.bytes, { rewrite: rewrite('all') });
  assert.deepEqual(again.rewrittenUrls, []);
  assert.equal(again.changed, false);
});

test('bare URLs in text/plain are rewritten without trailing punctuation', async () => {
  const text = [
    'Visit https://evil.test/a?b=c. Or (see https://evil.test/p_(x)) and <http://evil.test/q>,',
    'quoted "https://evil.test/r", HTTPS://EVIL.TEST/S! and https://bypass.test/t or',
    'https://evil.test/u/\u00fcber\u00a0next ftp://evil.test/v www.evil.test/w http:// alone',
  ].join('\r\n');
  const msg = Buffer.concat([
    eml(['From: a@example.com', 'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: 8bit', '', '']),
    Buffer.from(text + '\r\n'),
  ]);
  const r = run(msg, { rewrite: rewrite('all') });
  assert.deepEqual(r.rewrittenUrls, [
    'https://evil.test/a?b=c',
    'https://evil.test/p_(x)',
    'http://evil.test/q',
    'https://evil.test/r',
    'HTTPS://EVIL.TEST/S',
    'https://evil.test/u/über',
  ]);
  const view = await mailparserView(r.bytes);
  assert.ok(
    view.text.includes(`Visit ${wrap('https://evil.test/a?b=c')}. Or (see ${wrap('https://evil.test/p_(x)')}) and <`),
  );
  assert.ok(view.text.includes('https://bypass.test/t'));
  assert.ok(view.text.includes('ftp://evil.test/v www.evil.test/w http:// alone'));
  const again = run(r.bytes, { rewrite: rewrite('all') });
  assert.equal(again.changed, false);
});

test('rewriting twice never double-wraps, with every option on', () => {
  const first = run(SIMPLE, fullOptions('all'));
  assert.deepEqual(first.rewrittenUrls, ['https://pay.evil.test/now']);
  const second = run(first.bytes, fullOptions('all'));
  assert.deepEqual(second.rewrittenUrls, []);
  assert.equal(second.disclaimerParts, 0);
  assert.equal(second.subjectChanged, false);
  // only our own status field is written again (removed and re-added at the top)
  assert.ok(second.bytes.equals(first.bytes));
});

test('a failing wrap callback is passed to the caller, not swallowed', () => {
  const failure = new Error('click-time key unavailable');
  assert.throws(
    () =>
      modifyMessage(SIMPLE, {
        rewrite: {
          ...rewrite('all'),
          wrap: () => {
            throw failure;
          },
        },
      }),
    (err) => err === failure,
  );
});

test('bypass domains match exact hosts and subdomains, IDN and IPv6 literals', () => {
  const body = [
    '<a href="https://münchen.bypass-idn.test/a">1</a>',
    '<a href="https://xn--mnchen-3ya.bypass-idn.test/b">2</a>',
    '<a href="http://[2001:db8::1]/c">3</a>',
    '<a href="http://[2001:db8::2]/d">4</a>',
    '<a href="https://EXAMPLE.COM./e">5</a>',
    '<a href="https://example.com.evil.test/f">6</a>',
  ].join('');
  const msg = eml(['From: a@example.com', 'Content-Type: text/html', '', body, '']);
  const r = run(msg, {
    rewrite: { ...rewrite('all'), bypassDomains: ['Bypass-IDN.test', '[2001:db8::1]', '*.example.com', 'example.com'] },
  });
  assert.deepEqual(r.rewrittenUrls, ['http://[2001:db8::2]/d', 'https://example.com.evil.test/f']);
});

// ---------------------------------------------------------------------------------------------
// Signed messages

const DKIM_SIGNED = (h: string): Buffer =>
  eml([
    `DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=s1;`,
    ` h=${h}; bh=AAAA; b=BBBB`,
    'From: a@example.com',
    'To: b@example.org',
    'Subject: signed',
    `${STATUS}: no, forged`,
    'Content-Type: text/html; charset=utf-8',
    '',
    '<html><body><a href="https://evil.test/x">x</a></body></html>',
    '',
  ]);

test('DKIM-signed mail in unsigned mode keeps its body and signed subject; our headers are still added', () => {
  const msg = DKIM_SIGNED('from:to:subject:content-type');
  const r = run(msg, fullOptions('unsigned'));
  assert.deepEqual(r.signatures, ['dkim']);
  assert.equal(r.rewriteSkipped, 'signed');
  assert.equal(r.disclaimerSkipped, 'signed');
  assert.equal(r.subjectSkipped, 'signed');
  assert.equal(r.subjectChanged, false);
  assert.equal(r.disclaimerParts, 0);
  assert.deepEqual(r.rewrittenUrls, []);
  const expected = `${STATUS}: yes, level 3, phish - url\r\n` + msg.toString().replace(`${STATUS}: no, forged\r\n`, '');
  assert.equal(r.bytes.toString(), expected);

  // a signature that does not cover Subject lets the tag through (the body still stays)
  const r2 = run(DKIM_SIGNED('from:to:content-type'), fullOptions('unsigned'));
  assert.ok(r2.subjectChanged);
  assert.equal(r2.rewriteSkipped, 'signed');
  assert.ok(r2.bytes.includes('<a href="https://evil.test/x">'));

  // all: everything is modified; off: no links, but subject and disclaimer
  const all = run(msg, fullOptions('all'));
  assert.equal(all.rewriteSkipped, null);
  assert.equal(all.disclaimerParts, 1);
  assert.ok(all.subjectChanged);
  const off = run(msg, fullOptions('off'));
  assert.equal(off.rewriteSkipped, 'off');
  assert.equal(off.disclaimerParts, 1);
  assert.ok(off.subjectChanged);
  assert.ok(off.bytes.includes('<a href="https://evil.test/x">'));

  // protection without rewriting (policy "unsigned", click-time service unavailable)
  const kept = run(msg, { ...fullOptions('off'), rewrite: undefined, protectSigned: true });
  assert.equal(kept.disclaimerSkipped, 'signed');
  assert.equal(kept.subjectSkipped, 'signed');
  assert.equal(kept.rewriteSkipped, 'off');
  assert.equal(kept.bytes.toString(), expected);
  // and the opposite: an explicit false modifies signed mail in unsigned mode
  const forced = run(msg, { ...fullOptions('unsigned'), protectSigned: false });
  assert.equal(forced.rewriteSkipped, null);
  assert.equal(forced.disclaimerParts, 1);
});

test('S/MIME multipart/signed is untouched in unsigned mode and rewritten in all mode', async () => {
  const msg = readFileSync(path.join(FIXTURES, 'smime-signed.eml'));
  const r = run(msg, fullOptions('unsigned'));
  assert.deepEqual(r.signatures, ['smime']);
  assert.equal(r.rewriteSkipped, 'signed');
  assert.equal(r.subjectSkipped, 'signed');
  assert.equal(r.bytes.toString('latin1'), `${STATUS}: yes, level 3, phish - url\r\n` + msg.toString('latin1'));

  const all = run(msg, fullOptions('all'));
  assert.equal(all.rewriteSkipped, null);
  assert.equal(all.disclaimerParts, 2);
  assert.deepEqual(all.rewrittenUrls, ['https://reports.example.net/q2']);
  const { mp } = await assertSameAttachments(msg, all.bytes);
  assert.equal(unwrap(hrefs(mp.html)[0]), 'https://reports.example.net/q2');
  assert.ok(mp.subject.startsWith('[SUSPICIOUS MESSAGE] '));
});

test('S/MIME signed-data and inline PGP count as signed', () => {
  const p7 = eml([
    'From: a@example.com',
    'Subject: opaque',
    'MIME-Version: 1.0',
    'Content-Type: application/pkcs7-mime; smime-type=signed-data; name=smime.p7m',
    'Content-Transfer-Encoding: base64',
    '',
    'MIAGCSqGSIb3DQEHAqCAMIACAQExDzANBglghkgBZQMEAgEFADCABgkqhkiG9w0BBwGggCSABA==',
    '',
  ]);
  const r = run(p7, fullOptions('unsigned'));
  assert.deepEqual(r.signatures, ['smime']);
  assert.equal(r.subjectChanged, false);

  const pgp = eml([
    'From: a@example.com',
    'Subject: pgp',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    '-----BEGIN PGP SIGNED MESSAGE-----',
    'Hash: SHA256',
    '',
    'See https://evil.test/pgp',
    '-----BEGIN PGP SIGNATURE-----',
    'iQEzBAEBCAAdFiEE',
    '-----END PGP SIGNATURE-----',
    '',
  ]);
  const r2 = run(pgp, fullOptions('unsigned'));
  assert.deepEqual(r2.signatures, ['pgp']);
  assert.equal(r2.rewriteSkipped, 'signed');
  assert.ok(r2.bytes.includes('See https://evil.test/pgp'));
  const r3 = run(pgp, fullOptions('all'));
  assert.deepEqual(r3.rewrittenUrls, ['https://evil.test/pgp']);
});

test('a DKIM signature made with mailauth still verifies after modification in unsigned mode', async () => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const txt = `v=DKIM1; k=rsa; p=${publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`;
  const resolver = async (name: string, type: string): Promise<string[][]> => {
    if (type === 'TXT' && name === 's1._domainkey.example.com') {
      return [[txt]];
    }
    throw Object.assign(new Error(`no ${type} for ${name}`), { code: 'ENOTFOUND' });
  };
  const message = eml([
    'From: Sender <sender@example.com>',
    'To: rcpt@example.org',
    'Subject: Please review the document',
    'Date: Tue, 02 Jun 2026 10:00:00 +0000',
    'Message-ID: <dkim-test@example.com>',
    `${STATUS}: no, level 0 (forged by the sender, not signed)`,
    'MIME-Version: 1.0',
    'Content-Type: multipart/alternative; boundary="b"',
    '',
    '--b',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'Review at https://docs.evil.test/review',
    '--b',
    'Content-Type: text/html; charset=utf-8',
    '',
    '<html><body><a href="https://docs.evil.test/review">Review</a></body></html>',
    '--b--',
    '',
  ]);
  for (const canonicalization of ['relaxed/relaxed', 'simple/simple']) {
    const key = { signingDomain: 'example.com', selector: 's1', privateKey: pem };
    const signed = await dkimSign(message, { ...key, canonicalization, signatureData: [{ ...key, canonicalization }] });
    assert.deepEqual(signed.errors, []);
    const raw = Buffer.concat([Buffer.from(signed.signatures), message]);
    const before = await dkimVerify(raw, { resolver });
    assert.equal(before.results[0].status.result, 'pass');

    const r = run(raw, fullOptions('unsigned'));
    assert.equal(r.rewriteSkipped, 'signed');
    assert.ok(r.changed);
    assert.ok(r.bytes.toString().startsWith(`${STATUS}: yes, level 3, phish - url\r\n`));
    assert.ok(!r.bytes.includes('forged by the sender'));
    const after = await dkimVerify(r.bytes, { resolver });
    assert.equal(after.results[0].status.result, 'pass', canonicalization);

    // the same message modified in "all" mode no longer verifies: the check above is meaningful
    const broken = await dkimVerify(run(raw, fullOptions('all')).bytes, { resolver });
    assert.notEqual(broken.results[0].status.result, 'pass');
  }
});

// ---------------------------------------------------------------------------------------------
// Bytes and structure

test('bare LF messages keep LF, untouched parts stay byte-identical', async () => {
  const msg = readFileSync(path.join(FIXTURES, 'bare-lf-mixed.eml'));
  const r = run(msg, fullOptions('all'));
  const out = r.bytes.toString('latin1');
  assert.ok(!out.includes('\r'), 'no CR introduced');
  assert.equal(r.disclaimerParts, 2);
  assert.deepEqual(r.rewrittenUrls, ['http://pay.example.net/invoice?id=7']);
  assert.ok(!/^X-BREAKWATER-OUTBREAK-STATUS/im.test(out.replace(/^X-Breakwater-Outbreak-Status: yes.*\n/, '')));
  // the pdf and the HTML attachment, with their boundaries, are byte-identical
  const src = msg.toString('latin1');
  const pdfStart = src.indexOf('--outer\nContent-Type: application/pdf');
  const tail = src.slice(pdfStart);
  assert.ok(out.endsWith(tail));
  assert.ok(out.includes('\n\npreamble kept as is\n--outer\n'));
  const { mp, pm } = await assertSameAttachments(msg, r.bytes);
  assert.equal(mp.attachments.length, 2);
  for (const view of [mp, pm]) {
    assert.ok(view.text.startsWith('CAUTION: this message may be a phishing attempt.\n\nPay here: '));
    assert.equal(unwrap(hrefs(view.html)[0]), 'http://pay.example.net/invoice?id=7');
  }
  // headers other than ours: same bytes, same order
  const head = (s: string): string =>
    s
      .slice(0, s.indexOf('\n\n'))
      .split(/\n(?![ \t])/)
      .filter((l) => !/^x-breakwater-outbreak-status\s*:/i.test(l) && !/^subject:/i.test(l))
      .join('\n');
  assert.equal(head(out), head(src));
});

test('only modified parts change: everything else in the message is copied', () => {
  const msg = readFileSync(path.join(FIXTURES, 'bare-lf-mixed.eml'));
  const r = run(msg, { rewrite: rewrite('all') });
  const src = msg.toString('latin1');
  const out = r.bytes.toString('latin1');
  // exactly the two body parts changed: the common prefix ends in the first one, the common
  // suffix starts in the second one
  let p = 0;
  while (src[p] === out[p]) {
    p++;
  }
  let q = 0;
  while (src[src.length - 1 - q] === out[out.length - 1 - q]) {
    q++;
  }
  assert.ok(src.slice(0, p).includes('Pay here: '));
  assert.ok(src.slice(src.length - q).includes('><a href='));
  assert.ok(src.slice(src.length - q).includes('Content-Type: application/pdf'));
});

test('structure the parsers read differently leaves the body alone', () => {
  const cases: Array<[string, Buffer]> = [
    [
      'child reuses the parent boundary',
      eml([
        'From: a@example.com',
        'Content-Type: multipart/mixed; boundary="same"',
        '',
        '--same',
        'Content-Type: multipart/alternative; boundary="same"',
        '',
        '--same',
        'Content-Type: text/html',
        '',
        '<a href="https://evil.test/a">a</a>',
        '--same--',
        '',
      ]),
    ],
    [
      'nested multipart left open',
      eml([
        'From: a@example.com',
        'Content-Type: multipart/mixed; boundary="outer"',
        '',
        '--outer',
        'Content-Type: multipart/alternative; boundary="inner"',
        '',
        '--inner',
        'Content-Type: text/plain',
        '',
        'https://evil.test/a',
        '--outer',
        'Content-Type: text/html',
        '',
        '<a href="https://evil.test/b">b</a>',
        '--outer--',
        '',
      ]),
    ],
    [
      'delimiter with transport padding',
      eml([
        'From: a@example.com',
        'Content-Type: multipart/mixed; boundary="pad"',
        '',
        '--pad ',
        'Content-Type: text/plain',
        '',
        'https://evil.test/a',
        '--pad--',
        '',
      ]),
    ],
  ];
  for (const [name, msg] of cases) {
    const r = run(msg, fullOptions('all'));
    assert.equal(r.rewriteSkipped, 'unparsable', name);
    assert.equal(r.disclaimerSkipped, 'unparsable', name);
    assert.ok(r.notes.includes('ambiguous_structure'), name);
    assert.ok(r.subjectChanged, name);
    const body = (b: Buffer): string => b.toString('latin1').slice(b.toString('latin1').indexOf('\r\n\r\n'));
    assert.equal(body(r.bytes), body(msg), name);
  }
});

test('malformed input never throws', async () => {
  const base = readFileSync(path.join(FIXTURES, 'bare-lf-mixed.eml'));
  const samples: Buffer[] = [
    Buffer.alloc(0),
    Buffer.from('\r\n'),
    Buffer.from('\n\n\n'),
    Buffer.from('no header end at all'),
    Buffer.from('Subject: x\r\n\r\n'),
    Buffer.from('Content-Type: multipart/mixed\r\n\r\n--x\r\nbody'),
    Buffer.from('Content-Type: multipart/mixed; boundary=x\r\n\r\nno delimiter https://evil.test/'),
    Buffer.from(
      'Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/html\r\n\r\n<a href="https://evil.test/">',
    ),
    Buffer.from('Content-Type: multipart/mixed; boundary=x\r\n\r\n--x--\r\n--x\r\n\r\ntext https://evil.test/\r\n--x'),
    Buffer.from(
      'Content-Type: text/plain; charset="\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64 at all===',
    ),
    Buffer.from(
      'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=ZZ=\r\n=E2=82',
    ),
    Buffer.from('Content-Type: text/html; charset=utf-16le\r\n\r\n<\0a\0 \0h\0r\0e\0f\0=\0'),
    Buffer.from('Content-Type: text/html\r\n\r\n<a href="https://evil.test/ unterminated'),
    Buffer.from("Content-Type: text/html\r\n\r\n<body <a href=<a href='<area"),
    Buffer.from([0xff, 0xfe, 0x00, 0x0d, 0x0a, 0x0d, 0x0a, 0x80]),
    Buffer.from('Content-Type: message/rfc822\r\n\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n'),
    base.subarray(0, base.length >> 1),
    Buffer.from(base.toString('latin1').replace(/\n/g, '\r'), 'latin1'),
  ];
  // deterministic mutations of a valid message: cut, duplicate, insert bytes, flip line endings
  let seed = 12345;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed % n;
  };
  for (let i = 0; i < 150; i++) {
    const b = Buffer.from(base);
    const a = rnd(b.length);
    const len = rnd(200);
    switch (i % 4) {
      case 0:
        samples.push(Buffer.concat([b.subarray(0, a), b.subarray(Math.min(b.length, a + len))]));
        break;
      case 1:
        samples.push(Buffer.concat([b.subarray(0, a), b.subarray(a, a + len), b.subarray(a)]));
        break;
      case 2:
        samples.push(
          Buffer.concat([b.subarray(0, a), Buffer.from(Array.from({ length: len }, () => rnd(256))), b.subarray(a)]),
        );
        break;
      default:
        samples.push(
          Buffer.from(
            b.toString('latin1').replace(/\n/g, () => (rnd(2) ? '\r\n' : '\n')),
            'latin1',
          ),
        );
    }
  }
  for (const sample of samples) {
    for (const mode of ['unsigned', 'all'] as const) {
      const r = modifyMessage(sample, fullOptions(mode));
      assert.ok(Buffer.isBuffer(r.bytes));
      assert.ok(r.bytes.includes(`${STATUS}: yes, level 3, phish - url`));
    }
  }
});

test('adversarial input stays fast (bounded depth, parts and linear scans)', () => {
  const big = 2 * 1024 * 1024;
  const cases: Array<[string, Buffer]> = [
    ['many anchors', Buffer.from('Content-Type: text/html\r\n\r\n' + '<a href=x'.repeat(big / 9))],
    ['many urls', Buffer.from('Content-Type: text/plain\r\n\r\n' + 'http://'.repeat(big / 7))],
    ['unterminated quotes', Buffer.from('Content-Type: text/html\r\n\r\n' + '<a href="'.repeat(big / 9))],
    ['many comments', Buffer.from('Content-Type: text/html\r\n\r\n' + '<!--'.repeat(big / 4))],
    ['many scripts', Buffer.from('Content-Type: text/html\r\n\r\n' + '<script>'.repeat(big / 8))],
    ['many metas', Buffer.from('Content-Type: text/html; charset=iso-2022-jp\r\n\r\n' + '<meta '.repeat(big / 6))],
    ['long url', Buffer.from('Content-Type: text/plain\r\n\r\nhttps://evil.test/' + ')'.repeat(big))],
    [
      'deep nesting',
      Buffer.from(
        Array.from({ length: 1000 }, (_, i) => `Content-Type: multipart/mixed; boundary=b${i}\r\n\r\n--b${i}\r\n`).join(
          '',
        ) + 'Content-Type: text/plain\r\n\r\nhttps://evil.test/deep\r\n',
      ),
    ],
    [
      'many parts',
      Buffer.from(
        'Content-Type: multipart/mixed; boundary=p\r\n\r\n' +
          '--p\r\nContent-Type: text/plain\r\n\r\nhttps://evil.test/x\r\n'.repeat(5000) +
          '--p--\r\n',
      ),
    ],
    ['many delimiters', Buffer.from('Content-Type: multipart/mixed; boundary=p\r\n\r\n' + '--p\r\n'.repeat(big / 5))],
    ['many header lines', Buffer.from('X-A: b\r\n'.repeat(big / 8) + '\r\nbody')],
  ];
  for (const [name, msg] of cases) {
    const t0 = performance.now();
    const r = modifyMessage(msg, fullOptions('all'));
    const ms = performance.now() - t0;
    assert.ok(ms < 3000, `${name}: ${ms.toFixed(0)} ms`);
    if (name === 'deep nesting') {
      assert.ok(r.notes.includes('depth_limit'));
    }
    if (name === 'many parts') {
      assert.ok(r.notes.includes('part_limit'));
      assert.ok(r.rewrittenUrls.length === 1);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// Real corpus

function listFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) {
      listFiles(p, out);
    } else if (!/^(SOURCE|UPSTREAM-)/.test(name)) {
      out.push(p);
    }
  }
  return out;
}

function sample(files: string[], n: number): string[] {
  const sorted = [...files].sort();
  const step = sorted.length / n;
  return Array.from({ length: Math.min(n, sorted.length) }, (_, i) => sorted[Math.floor(i * step)]);
}

test('corpus sample: modification never throws and keeps what parsers see, links are all rewritten', async (t) => {
  const folders = ['phishing-pot', 'spamassassin-public'].map((f) => path.join(CORPUS, f));
  if (!folders.every((f) => existsSync(f))) {
    t.skip(`corpus folder absent: ${CORPUS}`);
    return;
  }
  const files = folders.flatMap((f) => sample(listFiles(f), 100));
  const bypass = ['w3.org', 'microsoft.com'];
  const bypassed = (url: string): boolean => {
    try {
      const host = new URL(url).hostname;
      return bypass.some((d) => host === d || host.endsWith('.' + d));
    } catch {
      return false;
    }
  };
  let rewritten = 0;
  let withLinks = 0;
  let skippedAttachedMessages = 0;
  for (const file of files) {
    const raw = readFileSync(file);
    const opts: ModifyOptions = { ...fullOptions('all'), rewrite: { ...rewrite('all'), bypassDomains: bypass } };
    const r = modifyMessage(raw, opts);
    const { mp } = await assertSameAttachments(raw, r.bytes).catch((err: Error) => {
      throw new Error(`${file}: ${err.message}`);
    });
    assert.ok(r.bytes.includes(`${STATUS}: yes, level 3, phish - url`), file);
    assert.ok(mp.subject.includes('[SUSPICIOUS MESSAGE]'), file);
    rewritten += r.rewrittenUrls.length;
    if (r.rewriteSkipped !== null) {
      continue;
    }
    // mailparser shows inline attached messages in its html; those are never modified
    if (/^content-type:\s*message\/rfc822/im.test(raw.toString('latin1'))) {
      skippedAttachedMessages++;
      continue;
    }
    const before = hrefs((await mailparserView(raw)).html).filter((u) => /^https?:/i.test(u) && !bypassed(u));
    if (before.length) {
      withLinks++;
    }
    const after = new Set(hrefs(mp.html));
    const left = before.filter((u) => after.has(u));
    assert.deepEqual(left, [], file);
    for (const u of hrefs(mp.html)) {
      if (/^https?:/i.test(u) && !isOwnLink(u)) {
        assert.ok(bypassed(u) || !before.includes(u), `${file}: ${u}`);
      }
    }
  }
  assert.ok(withLinks > 50, `only ${withLinks} sampled messages had HTML links`);
  assert.ok(rewritten > 500);
  t.diagnostic(
    `${files.length} messages, ${withLinks} with HTML links, ${rewritten} URLs rewritten, ${skippedAttachedMessages} with attached messages not link-checked`,
  );
});
