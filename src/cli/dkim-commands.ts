// `breakwater dkim keygen`: local like `config check` (it writes a key file under dataDir and needs no
// running gateway); the key is used once the config names it (outbound.dkim.domains) and the gateway starts.
// `breakwater dkim check`: does DNS publish each configured key (through the config's dns servers)?
import type { Command } from 'commander';
import { Option } from 'commander';
import YAML from 'yaml';
import path from 'node:path';
import { checkDkimRecord, generateDkimKey, type DkimKeyType, type DkimRecordCheck } from '../delivery/dkim-keys.ts';
import { loadSigningKey } from '../delivery/signing.ts';
import { DnsClient } from '../dns/resolver.ts';
import { CliError, load, print, table } from './common.ts';

const DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.?$/i;
const SELECTOR = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

export function registerDkimCommands(program: Command, withConfig: (c: Command) => Command): void {
  const dkim = program.command('dkim').description('DKIM signing keys (outbound.dkim)');
  withConfig(
    dkim
      .command('keygen <domain>')
      .description('write a signing key under dataDir/dkim (mode 0600) and print the DNS TXT record to publish')
      .option('--selector <selector>', 'selector (s=); default: bw + today, e.g. bw20260115')
      .addOption(new Option('--type <type>', 'key type').choices(['ed25519', 'rsa']).default('ed25519'))
      .option('--force', 'replace an existing key file of this domain and selector')
      .option('--json', 'JSON output'),
  ).action((domain: string, opts) => {
    if (!DOMAIN.test(domain)) throw new CliError(`${domain} is not a domain name`);
    const selector: string = opts.selector ?? `bw${new Date().toISOString().slice(0, 10).replace(/-/g, '')}`;
    if (!SELECTOR.test(selector)) throw new CliError(`${selector} is not a selector (one DNS label)`);
    const { dataDir } = load(opts.config);
    let key;
    try {
      key = generateDkimKey(dataDir, domain, selector, opts.type as DkimKeyType, !!opts.force);
    } catch (err) {
      throw new CliError((err as Error).message);
    }
    const config = { outbound: { dkim: { domains: { [key.domain]: { selector, keyFile: key.keyFile } } } } };
    print(opts.json, { ...key, config }, () =>
      [
        `${key.type} key written to ${key.file} (mode 0600)`,
        '',
        'publish this DNS TXT record:',
        key.zoneLine,
        '',
        'then add to the config and restart:',
        YAML.stringify(config).trimEnd(),
      ].join('\n'),
    );
  });
  withConfig(
    dkim
      .command('check [domains...]')
      .description('check that DNS publishes the public key of each configured signing key (exit 1 when one does not)')
      .option('--json', 'JSON output'),
  ).action(async (domains: string[], opts) => {
    const { config, dataDir } = load(opts.config);
    const configured = config.outbound.dkim.domains;
    const names = domains.length ? domains.map((d) => d.toLowerCase()) : Object.keys(configured);
    if (!names.length) throw new CliError('no signing domain configured (outbound.dkim.domains)');
    const unknown = names.filter((d) => !configured[d]);
    if (unknown.length) throw new CliError(`not configured in outbound.dkim.domains: ${unknown.join(', ')}`);
    const dns = DnsClient.fromConfig(config.dns);
    const checks: DkimRecordCheck[] = [];
    for (const d of names) {
      const { selector, keyFile } = configured[d];
      let key;
      try {
        key = loadSigningKey(path.resolve(dataDir, keyFile)).key;
      } catch (err) {
        throw new CliError(`${d}: ${(err as Error).message}`);
      }
      checks.push(await checkDkimRecord(d, selector, key, dns));
    }
    if (checks.some((c) => c.status !== 'ok')) process.exitCode = 1;
    print(opts.json, checks, () =>
      [
        table([
          ['DOMAIN', 'SELECTOR', 'STATUS', 'DETAIL'],
          ...checks.map((c) => [c.domain, c.selector, c.status, c.detail]),
        ]),
        ...checks
          .filter((c) => c.status !== 'ok' && c.status !== 'dns-error')
          .map((c) => `\npublish for ${c.domain}:\n${c.recordName}. IN TXT "${c.expected}"`),
      ].join('\n'),
    );
  });
}
