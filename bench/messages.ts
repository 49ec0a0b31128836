// Benchmark messages: 5 KB text, 60 KB HTML with links, 2 MB with a PDF and a zip attachment.
import { writeFileSync } from 'node:fs';
import { tempDir } from '../test/helpers/peers.ts';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import MailComposer from 'nodemailer/lib/mail-composer';
import { zipSync } from 'fflate';

const WORDS =
  'the quarterly report shows steady growth across regions while costs remain under control and the team ships on time'.split(
    ' ',
  );

function words(n: number): string {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(WORDS[(i * 7 + (i >> 3)) % WORDS.length]);
  return out.join(' ');
}

function build(opts: Record<string, unknown>): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    new MailComposer({ from: 'a@src.test', to: 'b@dst.test', ...opts })
      .compile()
      .build((err, msg) => (err ? reject(err) : resolve(msg))),
  );
}

export interface BenchMessage {
  name: string;
  file: string;
  bytes: number;
}

/** Writes the three messages (LF line ends: smtp-source -F adds CRLF) into a temp dir. */
export async function makeMessages(): Promise<BenchMessage[]> {
  const dir = tempDir('bw-bench-msg-');
  const text5k = await build({ subject: 'text 5k', text: words(780) });
  const paragraphs = Array.from(
    { length: 20 },
    (_, i) =>
      `<p>${words(300)} <a href="https://link${i}.example.com/path/${i}?utm_source=mail&amp;id=${i}">read more</a></p>`,
  );
  const html60k = await build({
    subject: 'html 60k',
    html: `<html><body>${paragraphs.join('\n')}</body></html>`,
    text: words(2900),
  });
  const pdf = Buffer.concat([Buffer.from('%PDF-1.7\n'), randomBytes(700 * 1024), Buffer.from('\n%%EOF\n')]);
  const zip = Buffer.from(
    zipSync({ 'data.bin': randomBytes(700 * 1024), 'notes.txt': Buffer.from(words(3500)) }, { level: 0 }),
  );
  const att2m = await build({
    subject: 'attachments 2m',
    text: words(200),
    html: `<p>${words(200)}</p>`,
    attachments: [
      { filename: 'report.pdf', content: pdf, contentType: 'application/pdf' },
      { filename: 'data.zip', content: zip, contentType: 'application/zip' },
    ],
  });
  const out: BenchMessage[] = [];
  for (const [name, buf] of [
    ['5KB text', text5k],
    ['60KB HTML', html60k],
    ['2MB attachments', att2m],
  ] as const) {
    const file = path.join(dir, name.replace(/\W+/g, '-') + '.eml');
    const lf = Buffer.from(buf.toString('latin1').replace(/\r\n/g, '\n'), 'latin1');
    writeFileSync(file, lf);
    out.push({ name, file, bytes: lf.length });
  }
  return out;
}
