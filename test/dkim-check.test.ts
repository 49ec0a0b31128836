// `breakwater dkim check` (issue 15): an operator publishes the TXT record `dkim keygen` printed and asks
// whether receivers will find it. A real DNS server (dnsmasq) serves a correct Ed25519 record, a correct
// RSA record (longer than one 255-byte string), another key's record, a revoked one (empty p=), two
// records at one name and none at all; the CLI runs as an operator runs it, through the config's dns servers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { hasDnsmasq, startDns, type TestDns } from './helpers/dns.ts';
import { testConfig, writeTestConfig } from './helpers/gateway.ts';
import { freePort, tempDir } from './helpers/peers.ts';
import {
  checkDkimRecord,
  dkimRecordTags,
  generateDkimKey,
  type DkimRecordCheck,
  type GeneratedKey,
} from '../src/delivery/dkim-keys.ts';
import { loadSigningKey } from '../src/delivery/signing.ts';
import { DnsClient } from '../src/dns/resolver.ts';

const skip = hasDnsmasq() ? false : 'dnsmasq not installed (.ci/run)';
const bin = path.resolve(import.meta.dirname, '../bin/breakwater.js');

let dns: TestDns;
let dir: string;
const keys: Record<string, GeneratedKey> = {};

before(async () => {
  if (skip) return;
  dir = tempDir('bw-dkimcheck-');
  const dataDir = path.join(dir, 'data');
  for (const [domain, type] of [
    ['ok.test', 'ed25519'],
    ['rsa.test', 'rsa'],
    ['other.test', 'ed25519'],
    ['revoked.test', 'ed25519'],
    ['twice.test', 'ed25519'],
    ['gone.test', 'ed25519'],
  ] as const)
    keys[domain] = generateDkimKey(dataDir, domain, 's1', type);
  // a key that is not ours, published at other.test's selector
  const stranger = generateDkimKey(path.join(tempDir('bw-dkimother-'), 'data'), 'other.test', 's1', 'ed25519');
  dns = await startDns({
    localZones: ['test'],
    txt: [
      [keys['ok.test'].recordName, keys['ok.test'].recordValue],
      [keys['rsa.test'].recordName, keys['rsa.test'].recordValue],
      [keys['other.test'].recordName, stranger.recordValue],
      [keys['revoked.test'].recordName, 'v=DKIM1; k=ed25519; p='],
      [keys['twice.test'].recordName, keys['twice.test'].recordValue],
      [keys['twice.test'].recordName, stranger.recordValue],
    ],
  });
  writeTestConfig(
    testConfig({
      dns: { servers: [dns.server], timeout: '2s' },
      outbound: {
        dkim: {
          domains: Object.fromEntries(
            Object.values(keys).map((k) => [k.domain, { selector: k.selector, keyFile: k.keyFile }]),
          ),
        },
      },
    }),
    dir,
  );
});

after(async () => {
  await dns?.stop();
});

function cli(args: string[]) {
  return spawnSync(process.execPath, [bin, 'dkim', 'check', ...args, '--config', path.join(dir, 'breakwater.yaml')], {
    encoding: 'utf8',
  });
}

test('dkim check says, per configured key, whether DNS publishes it; exit 1 when one is wrong', { skip }, () => {
  const r = cli(['--json']);
  assert.equal(r.status, 1, r.stderr);
  const byDomain = Object.fromEntries((JSON.parse(r.stdout) as DkimRecordCheck[]).map((c) => [c.domain, c]));
  const status = (d: string) => byDomain[d].status;
  assert.equal(status('ok.test'), 'ok');
  assert.equal(status('rsa.test'), 'ok', 'an RSA record split into 255-byte strings is read whole');
  assert.equal(status('other.test'), 'mismatch');
  assert.equal(status('revoked.test'), 'revoked');
  assert.equal(status('twice.test'), 'multiple');
  assert.equal(status('gone.test'), 'missing');
  assert.equal(byDomain['gone.test'].expected, keys['gone.test'].recordValue);

  // only the good ones: exit 0; the text output names what to publish for a wrong one
  const good = cli(['ok.test', 'rsa.test']);
  assert.equal(good.status, 0, good.stdout + good.stderr);
  assert.match(good.stdout, /ok\.test\s+s1\s+ok/);
  const bad = cli(['other.test']);
  assert.equal(bad.status, 1);
  assert.match(bad.stdout, /mismatch\s+p= is another public key/);
  assert.ok(bad.stdout.includes(`s1._domainkey.other.test. IN TXT "${keys['other.test'].recordValue}"`));
  // a domain without a key in the config is an operator error (exit 2), not a DNS finding
  const unknown = cli(['nokey.test']);
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /not configured in outbound\.dkim\.domains: nokey\.test/);
});

test('DNS that does not answer is dns-error, not missing', async () => {
  const key = loadSigningKey(
    keys['ok.test']?.file ?? generateDkimKey(tempDir('bw-dk-'), 'a.test', 's', 'ed25519').file,
  ).key;
  const silent = new DnsClient({ servers: [`127.0.0.1:${await freePort()}`], timeoutMs: 300, tries: 1 });
  const r = await checkDkimRecord('ok.test', 's1', key, silent);
  assert.equal(r.status, 'dns-error');
  assert.match(r.detail, /no answer/);
  // tags: whitespace inside values (folded zone files) does not count, names are case-insensitive
  const tags = dkimRecordTags(' V=DKIM1 ; k=rsa; p=MIIB IjAN\tBgkq ');
  assert.equal(tags.get('v'), 'DKIM1');
  assert.equal(tags.get('p'), 'MIIBIjANBgkq');
});
