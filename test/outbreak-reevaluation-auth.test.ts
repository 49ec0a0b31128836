// Re-evaluation of the Outbreak quarantine (outbreak/reevaluation.ts) and the adaptive rules on sender
// authentication (outbreak/adaptive/auth.ts): a held message is scored again with the results its scan
// recorded (`auth.checked`), never without them and never by asking DNS again. Real SMTP into a running
// gateway whose senderAuth stage asks a real DNS server (dnsmasq), rule bundles signed here and dropped
// into the feed directory.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { hasDnsmasq, startDns, type DnsRecords, type TestDns } from './helpers/dns.ts';
import { adminJson, startTestGateway, testConfig } from './helpers/gateway.ts';
import { RawSmtp } from './helpers/rawsmtp.ts';
import { tempDir, waitFor } from './helpers/peers.ts';
import { generateKeyPair, signBundle } from '../src/outbreak/bundle.ts';
import { recordedSenderAuth } from '../src/senderauth/recorded.ts';

const skip = hasDnsmasq() ? false : 'dnsmasq not installed (.ci/run)';

// paypal.com publishes DMARC, and its SPF allows no host: mail in its name from here fails both
const SPOOFED: DnsRecords = {
  localZones: ['test', 'paypal.com'],
  txt: [
    ['paypal.com', 'v=spf1 -all'],
    ['_dmarc.paypal.com', 'v=DMARC1; p=none'],
  ],
};
// the same domain later authorising this host: a check made now would pass
const AUTHORISED: DnsRecords = {
  localZones: ['test', 'paypal.com'],
  txt: [
    ['paypal.com', 'v=spf1 ip4:127.0.0.1 -all'],
    ['_dmarc.paypal.com', 'v=DMARC1; p=none'],
  ],
};

const RETIRED_RULE = {
  id: 'OUTBREAK_0000010',
  level: 4,
  category: 'phish',
  description: 'Credential phishing on retired.test',
  published: new Date().toISOString(),
  condition: { url: { host: ['.retired.test'] } },
};
const UNRELATED_RULE = {
  id: 'OUTBREAK_0000011',
  level: 4,
  category: 'malware',
  description: 'Malware downloads on unrelated.test',
  published: new Date().toISOString(),
  condition: { url: { host: ['.unrelated.test'] } },
};

const keys = generateKeyPair();
let feedDir: string;
let dns: TestDns;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
let version = 0;

/** Signs a bundle into the feed directory and has the gateway install it (which re-evaluates). */
async function publish(rules: unknown[]): Promise<void> {
  version++;
  const signed = signBundle({ version, published: new Date().toISOString(), rules }, keys.privateKey);
  writeFileSync(path.join(feedDir, `bundle-${String(version).padStart(4, '0')}.json`), JSON.stringify(signed));
  const r = await adminJson(`http://127.0.0.1:${gw.adminPort}/api/v1/outbreak/update`, gw.dataDir, 'POST', {});
  assert.equal(r.status, 'updated', JSON.stringify(r));
  assert.equal(gw.gateway.outbreak.bundle?.version, version);
  // the update started a re-evaluation; this waits for it (and one more run after it) to finish
  await gw.gateway.reevaluation.run();
}

before(async () => {
  if (skip) return;
  feedDir = tempDir('bw-feed-');
  dns = await startDns(SPOOFED);
  gw = await startTestGateway(
    testConfig({
      routes: { '*': ['file:delivered'] },
      senderAuth: { enabled: true, dns: { servers: [dns.server], timeout: '1s', tries: 1, cacheTtl: '0s' } },
      outbreakFilters: {
        adaptiveRules: true,
        ruleFeed: { dir: feedDir, publicKey: keys.publicKey },
        ruleUpdateInterval: '1h',
      },
    }),
  );
});

after(async () => {
  await gw?.stop();
  await dns?.stop();
});

function message(from: string, subject: string, body: string): Buffer {
  return Buffer.from(
    [
      `From: ${from}`,
      'To: bob@dst.test',
      `Subject: ${subject}`,
      'Date: Tue, 02 Jun 2026 10:00:00 +0000',
      `Message-ID: <${Math.random().toString(36).slice(2)}@client.test>`,
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      '',
      body,
      '',
    ].join('\r\n'),
  );
}

async function send(from: string, data: Buffer): Promise<number> {
  const c = await RawSmtp.open(gw.port('incoming'));
  try {
    await c.reply();
    await c.cmd('EHLO client.test');
    assert.match(await c.cmd(`MAIL FROM:<${from}>`), /^250/);
    assert.match(await c.cmd('RCPT TO:<bob@dst.test>'), /^250/);
    assert.match(await c.cmd('DATA'), /^354/);
    c.write(data);
    c.write('.\r\n');
    const end = await c.reply(20_000);
    const mid = Number(/queued as MID (\d+)/.exec(end)?.[1]);
    assert.ok(mid > 0, end);
    return mid;
  } finally {
    c.close();
  }
}

function held(mid: number) {
  return [...gw.gateway.quarantines.index.each({ quarantine: 'outbreak' })].find((e) => e.mid === mid);
}

test(
  'a message held for failing its brand’s DMARC stays held when rules change; one held by a retired rule leaves',
  { skip },
  async () => {
    await publish([RETIRED_RULE]);

    const spoof = await send(
      'service@paypal.com',
      message('PayPal <service@paypal.com>', 'Account notice', 'Please review your recent account activity.'),
    );
    const byRule = await send(
      'news@src.test',
      message('News <news@src.test>', 'Weekly digest', 'This week: http://login.retired.test/digest'),
    );
    await waitFor(() => held(spoof) && held(byRule), 20_000, 'both messages held');

    const s = gw.gateway.tracker.show(spoof)!;
    assert.equal(s.threatLevel, 4);
    assert.deepEqual(
      s.threatRules.filter((r) => r.level >= 3).map((r) => r.id),
      ['ADAPTIVE_AUTH_BRAND_SPOOF'],
      'held by the sender-authentication score alone',
    );
    const recorded = recordedSenderAuth(gw.gateway.store, spoof);
    assert.equal(recorded?.dmarc.result, 'fail');
    assert.equal(recorded?.dmarc.domain, 'paypal.com');
    assert.equal(recorded?.spf.result, 'fail');
    assert.equal(recordedSenderAuth(gw.gateway.store, byRule)?.dmarc.result, 'none');
    assert.equal(held(byRule)?.level, 4);

    // Since the scan, the domain authorised this host: a check made now would pass. Re-evaluation
    // must judge the message by the results it had when it was held.
    await dns.reload(AUTHORISED);

    // an unrelated rule is published: both stay held, with the levels and rules they had
    await publish([RETIRED_RULE, UNRELATED_RULE]);
    assert.equal(held(spoof)?.level, 4);
    assert.deepEqual(held(spoof)?.ruleIds, ['ADAPTIVE_AUTH_BRAND_SPOOF']);
    assert.equal(held(byRule)?.level, 4);
    assert.deepEqual(held(byRule)?.ruleIds, ['OUTBREAK_0000010']);

    // the rule holding the other one is retired: it leaves early and is delivered; the spoof stays
    await publish([UNRELATED_RULE]);
    const file = path.join(gw.dataDir, 'delivered', `${byRule}.eml`);
    await waitFor(() => existsSync(file), 20_000, `delivery of MID ${byRule}`);
    const released = gw.gateway.tracker.show(byRule)!.events.find((e) => e.type === 'quarantine.released');
    assert.match(String(released?.reason), /re-evaluated with rules version 3: level 0/);
    assert.equal(held(byRule), undefined);

    assert.equal(held(spoof)?.level, 4);
    assert.deepEqual(held(spoof)?.ruleIds, ['ADAPTIVE_AUTH_BRAND_SPOOF']);
    const after3 = gw.gateway.tracker.show(spoof)!;
    assert.equal(after3.status, 'quarantined');
    assert.ok(!after3.events.some((e) => e.type === 'quarantine.released'));
    assert.ok(!existsSync(path.join(gw.dataDir, 'delivered', `${spoof}.eml`)));

    // An administrator releases it: the release rescans it, but judges its sender by the results of its
    // arrival, not by today's DNS (which would now pass SPF); delivered with that Authentication-Results.
    const released2 = await gw.gateway.quarantines.releaseMatching({ quarantine: 'outbreak', mids: [spoof] }, 'admin');
    assert.deepEqual(released2, [spoof]);
    const spoofFile = path.join(gw.dataDir, 'delivered', `${spoof}.eml`);
    await waitFor(() => existsSync(spoofFile), 20_000, `delivery of MID ${spoof}`);
    const delivered = readFileSync(spoofFile, 'utf8');
    const ours = /^Authentication-Results: [^\r\n]*(?:\r?\n[ \t][^\r\n]*)*/m.exec(delivered)?.[0] ?? '';
    assert.match(ours, /spf=fail/, ours);
    assert.match(ours, /dmarc=fail/, ours);
    const checks = gw.gateway.tracker.show(spoof)!.events.filter((e) => e.type === 'auth.checked');
    assert.equal(checks.length, 2, 'checked on arrival, then its result reused on release');
    assert.equal(checks[1].recordedFrom, spoof);
    assert.equal(checks[1].spf, 'fail');
    assert.equal(checks[1].lookups, checks[0].lookups);
  },
);
