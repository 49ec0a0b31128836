// Peer text never reaches the mail log, tracking or an operator's terminal as control characters:
// NUL, ESC sequences, C1 controls and DEL in Subject, Message-ID and file names are escaped
// (\xNN); the message itself keeps its original bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { freePort, run, tempDir } from './helpers/peers.ts';
import { spawnGateway, testConfig } from './helpers/gateway.ts';
import { RawSmtp } from './helpers/rawsmtp.ts';
import { escapeControls, escapeDeep } from '../src/tracking/escape.ts';

const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

test('escapeControls escapes C0, DEL and C1 and leaves other text alone', () => {
  assert.equal(escapeControls('plain ünïcode → ok'), 'plain ünïcode → ok');
  assert.equal(escapeControls('a\u0000b\u001b[31mred\u007f\u009b'), 'a\\x00b\\x1b[31mred\\x7f\\x9b');
  assert.equal(escapeControls('line\r\nInfo: forged'), 'line\\x0d\\x0aInfo: forged');
  const deep = escapeDeep({ a: ['x\u001by', 3, null], b: { c: '\u0007' }, d: 'clean' });
  assert.deepEqual(deep, { a: ['x\\x1by', 3, null], b: { c: '\\x07' }, d: 'clean' });
  const clean = { a: ['x'], b: 'y' };
  assert.equal(escapeDeep(clean), clean, 'clean values are returned as they are (no copy)');
});

test('NUL, ESC and C1 from Subject, Message-ID and file names are escaped in mail.log, tracking and CLI output', async (t) => {
  const dir = tempDir('bw-escape-');
  const adminPort = await freePort();
  const inPort = await freePort();
  const doc = testConfig({ admin: { host: '127.0.0.1', port: adminPort }, routes: { '*': ['file:delivered'] } });
  (doc.listeners as any[])[0].port = inPort;
  (doc.listeners as any[]).splice(1, 1);
  const file = path.join(dir, 'breakwater.yaml');
  writeFileSync(file, YAML.stringify({ dataDir: './data', ...doc }));
  const gw = await spawnGateway(file);
  t.after(async () => {
    if (gw.proc.exitCode === null) {
      gw.proc.kill('SIGTERM');
      await once(gw.proc, 'exit');
    }
  });
  const c = await RawSmtp.open(inPort);
  await c.reply();
  // (smtp-server itself refuses an EHLO argument with control characters: 503 until a clean one.)
  assert.doesNotMatch(await c.cmd('EHLO evil\u001b[2J.test'), /^250/);
  assert.match(await c.cmd('EHLO evil.test'), /^250/);
  assert.match(await c.cmd('MAIL FROM:<a@src.test>'), /^250/);
  assert.match(await c.cmd('RCPT TO:<bob@dst.test>'), /^250/);
  assert.match(await c.cmd('DATA'), /^354/);
  // Raw ESC and a C1 CSI (UTF-8 C2 9B) in the Subject; NUL and BEL through encoded words.
  c.write(
    Buffer.concat([
      Buffer.from('Subject: hello \u001b[31mred'),
      Buffer.from([0xc2, 0x9b]),
      Buffer.from('2J =?utf-8?q?nul=00bel=07?=\r\n'),
      Buffer.from('Message-ID: <id\u001b]52;c;AAAA\u0007@src.test>\r\n'),
      Buffer.from(
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n',
      ),
      Buffer.from(
        '--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="=?utf-8?q?re=1B[0mport.txt?="\r\n\r\ndata\r\n--b--\r\n.\r\n',
      ),
    ]),
  );
  const end = await c.reply(10_000);
  assert.match(end, /^250 .*MID (\d+)/);
  const mid = Number(/MID (\d+)/.exec(end)![1]);
  c.close();
  const dataDir = path.join(dir, 'data');
  const token = readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();
  let record: any = null;
  for (const deadline = Date.now() + 15_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
    const r = await fetch(`http://127.0.0.1:${adminPort}/api/v1/tracking/messages/${mid}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const j = (await r.json()) as any;
    if (j?.recipients?.[0]?.status === 'delivered') {
      record = j;
      break;
    }
  }
  assert.ok(record, 'delivered and tracked');
  assert.doesNotMatch(JSON.stringify(record), /\\u00(0[0-8b-f]|1[0-9a-f]|7f)/i, 'no control characters in the record');
  assert.ok(record.subject.includes('\\x1b[31m'), record.subject);
  assert.ok(record.subject.includes('\\x9b'), record.subject);
  assert.ok(record.subject.includes('nul\\x00bel\\x07'), record.subject);
  assert.ok(record.messageId.includes('\\x1b]52;c;AAAA\\x07'), record.messageId);
  assert.ok(!RAW_CONTROL.test(record.helo ?? ''), `helo ${JSON.stringify(record.helo)}`);
  for (const a of record.attachments ?? []) assert.doesNotMatch(a.name, RAW_CONTROL);
  for (const e of record.events) assert.doesNotMatch(JSON.stringify(e), /\\u00(0[0-8b-f]|1[0-9a-f]|7f)|\\u009/i);

  const log = readFileSync(path.join(dataDir, 'logs', 'mail.log'), 'utf8');
  for (const line of log.split('\n')) assert.doesNotMatch(line, RAW_CONTROL, `raw control in: ${JSON.stringify(line)}`);
  assert.match(log, /Subject 'hello \\x1b\[31mred\\x9b2J nul\\x00bel\\x07'/);

  // The CLI's text output (what lands on an operator's terminal).
  const bin = path.resolve(import.meta.dirname, '../bin/breakwater.js');
  const shown = await run(process.execPath, [bin, 'track', 'show', String(mid), '--config', file]);
  assert.equal(shown.code, 0, shown.out);
  assert.doesNotMatch(shown.out, RAW_CONTROL);
  assert.match(shown.out, /\\x1b\[31m/);

  // The delivered message itself keeps the original bytes.
  const delivered = readFileSync(path.join(dataDir, 'delivered', `${mid}.eml`));
  assert.ok(delivered.includes(Buffer.from('\u001b[31mred')), 'the message keeps its bytes');
});
