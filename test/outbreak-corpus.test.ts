// Outbreak Filters' modification on real mail, through the whole gateway over SMTP: a sample of
// ../shared/corpus (loopback only) and a DKIM-signed message. A published rule makes every message with
// a link a level-3 phish that the policy modifies and delivers (deliverWithoutQuarantine).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { dkimSign, dkimVerify } from 'mailauth';
import PostalMime from 'postal-mime';
import { startTestGateway, testConfig } from './helpers/gateway.ts';
import { tempDir, waitFor } from './helpers/peers.ts';
import { generateKeyPair, signBundle } from '../src/outbreak/bundle.ts';

const require = createRequire(import.meta.url);
const { simpleParser } = require('mailparser') as {
  simpleParser: (
    src: Buffer,
  ) => Promise<{ subject?: string; html?: string | false; text?: string; attachments: Array<{ filename?: string }> }>;
};

const CORPUS = path.resolve(import.meta.dirname, '../../shared/corpus');

function onTheWire(raw: Buffer): Buffer {
  const text = raw.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n');
  return Buffer.from(text.endsWith('\r\n') ? text : text + '\r\n', 'latin1');
}

async function gatewayWithLinkRule() {
  const feed = tempDir('bw-feed-corpus-');
  mkdirSync(feed, { recursive: true });
  const keys = generateKeyPair();
  const rule = {
    id: 'OUTBREAK_EVERY_LINK',
    level: 3,
    category: 'phish',
    description: 'test rule: every message with a web link',
    published: new Date().toISOString(),
    condition: { url: { url: ['*'] } },
  };
  writeFileSync(
    path.join(feed, 'b.json'),
    JSON.stringify(signBundle({ version: 1, published: new Date().toISOString(), rules: [rule] }, keys.privateKey)),
  );
  const gw = await startTestGateway(
    testConfig({
      routes: { '*': ['file:delivered'] },
      outbreakFilters: { adaptiveRules: false, ruleFeed: { dir: feed, publicKey: keys.publicKey } },
      policies: { incoming: [{ name: 'default', outbreakFilters: { deliverWithoutQuarantine: true } }] },
    }),
  );
  await waitFor(() => gw.gateway.outbreak.bundle, 10_000, 'rules');
  return gw;
}

async function sendAll(port: number, messages: Buffer[]): Promise<number[]> {
  const conn = new SMTPConnection({
    host: '127.0.0.1',
    port,
    ignoreTLS: true,
    allowInternalNetworkInterfaces: true,
    logger: false,
  } as any);
  await new Promise<void>((resolve, reject) => {
    conn.once('error', reject);
    conn.connect(() => resolve());
  });
  const mids: number[] = [];
  for (const m of messages) {
    const reply = await new Promise<string>((resolve, reject) =>
      conn.send({ from: 'corpus@src.test', to: ['bob@dst.test'] } as any, m, (err: any, info: any) =>
        err ? reject(err) : resolve(String(info.response)),
      ),
    );
    mids.push(Number(/queued as MID (\d+)/.exec(reply)![1]));
  }
  conn.quit();
  return mids;
}

function delivered(gw: { dataDir: string }, mid: number): Buffer | null {
  const f = path.join(gw.dataDir, 'delivered', `${mid}.eml`);
  return existsSync(f) ? readFileSync(f) : null;
}

/** The delivered file without our Received: line. */
function withoutReceived(b: Buffer): Buffer {
  const s = b.toString('latin1');
  const m = /^Received: [^\r\n]*(?:\r\n[ \t][^\r\n]*)*\r\n/.exec(s);
  return m ? b.subarray(m[0].length) : b;
}

test(
  'real corpus mail with links is tagged, flagged, given the disclaimer and its links rewritten; attachments survive',
  { timeout: 240_000 },
  async (t) => {
    if (!existsSync(path.join(CORPUS, 'manifest.tsv'))) {
      t.skip(`corpus folder absent: ${CORPUS}`);
      return;
    }
    const rows = readFileSync(path.join(CORPUS, 'manifest.tsv'), 'utf8').trim().split('\n').slice(1);
    const files = rows
      .map((r) => r.split('\t'))
      .filter(
        ([, corpus], i) =>
          (corpus === 'phishing-pot' && i % 12 === 0) || (corpus === 'spamassassin-public' && i % 60 === 0),
      )
      .map(([file]) => path.join(CORPUS, file));
    const gw = await gatewayWithLinkRule();
    try {
      const sent = files.map((f) => onTheWire(readFileSync(f)));
      const mids = await sendAll(gw.port('incoming'), sent);
      await waitFor(
        () => mids.every((m) => gw.gateway.tracker.show(m)?.status === 'delivered'),
        60_000,
        'all delivered',
      );
      let modified = 0;
      let signedUntouched = 0;
      let rewritten = 0;
      const base = `http://127.0.0.1:${gw.gateway.ports.get('clickTime')}/c/`;
      for (let i = 0; i < mids.length; i++) {
        const rec = gw.gateway.tracker.show(mids[i])!;
        const out = withoutReceived(delivered(gw, mids[i])!);
        const before = await simpleParser(sent[i]);
        const after = await simpleParser(out);
        const postal = await PostalMime.parse(out);
        // structure: the same attachments for both parsers, before and after
        assert.deepEqual(
          after.attachments.map((a) => a.filename ?? ''),
          before.attachments.map((a) => a.filename ?? ''),
          files[i],
        );
        assert.equal(postal.attachments.length, after.attachments.length, files[i]);
        if (!rec.urls.length) continue;
        const mod = rec.events.find((e) => e.type === 'outbreak.modified') as Record<string, unknown> | undefined;
        assert.ok(mod, `${files[i]} has links, so it was modified`);
        modified++;
        assert.match(out.toString('latin1'), /^X-Breakwater-Outbreak-Status: yes, level 3, Phish - Url\r\n/, files[i]);
        if (mod.rewriteSkipped === 'signed') {
          signedUntouched++;
          continue;
        }
        assert.match(after.subject ?? '', /^\[Possible Phish Fraud\] /, files[i]);
        const html = typeof after.html === 'string' ? after.html : '';
        if (html) {
          assert.ok(html.includes('Caution:'), `${files[i]}: disclaimer in the HTML body`);
          for (const m of html.matchAll(/<a\b[^>]*\bhref\s*=\s*["']?(https?:\/\/[^"'\s>]+)/gi)) {
            assert.ok(m[1].startsWith(base), `${files[i]}: link left unwrapped: ${m[1]}`);
            rewritten++;
          }
        }
      }
      t.diagnostic(
        `${files.length} messages, ${modified} modified, ${signedUntouched} signed (body untouched), ${rewritten} links checked`,
      );
      assert.ok(modified > 20 && rewritten > 50, 'the sample exercises modification');
    } finally {
      await gw.stop();
    }
  },
);

test('a DKIM-signed message still verifies after passing through in unsigned mode', async () => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const txt = `v=DKIM1; k=rsa; p=${publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`;
  const resolver = async (name: string, type: string): Promise<string[][]> => {
    if (type === 'TXT' && name === 'sel._domainkey.src.test') return [[txt]];
    throw Object.assign(new Error(`no ${type} for ${name}`), { code: 'ENOTFOUND' });
  };
  const message = Buffer.from(
    [
      'From: Sender <news@src.test>',
      'To: bob@dst.test',
      'Subject: Your statement is ready',
      'Date: Mon, 23 Nov 2026 10:00:00 +0000',
      'Message-ID: <dkim-e2e@src.test>',
      'MIME-Version: 1.0',
      'Content-Type: text/html; charset=utf-8',
      '',
      '<html><body><p>See <a href="https://statements.example.org/view?id=7">your statement</a>.</p></body></html>',
      '',
    ].join('\r\n'),
  );
  const key = { signingDomain: 'src.test', selector: 'sel', privateKey: pem, canonicalization: 'relaxed/relaxed' };
  const signed = await dkimSign(message, { ...key, signatureData: [key] } as any);
  assert.deepEqual(signed.errors, []);
  assert.match(signed.signatures, /^DKIM-Signature: /);
  const raw = Buffer.concat([Buffer.from(signed.signatures), message]);
  const gw = await gatewayWithLinkRule();
  try {
    const [mid] = await sendAll(gw.port('incoming'), [raw]);
    const out = await waitFor(() => delivered(gw, mid), 10_000, 'delivery');
    const text = out.toString('latin1');
    assert.match(text, /X-Breakwater-Outbreak-Status: yes, level 3, Phish - Url/);
    assert.ok(text.includes('https://statements.example.org/view?id=7'), `the signed body is untouched: ${text}`);
    const result = await dkimVerify(out, { resolver } as any);
    assert.equal(result.results[0].status.result, 'pass');
    const rec = gw.gateway.tracker.show(mid)!;
    assert.ok(rec.events.some((e) => e.type === 'outbreak.modified' && e.rewriteSkipped === 'signed'));
  } finally {
    await gw.stop();
  }
});
