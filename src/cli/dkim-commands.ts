// `breakwater dkim keygen`: local like `config check` (it writes a key file under dataDir and needs no
// running gateway); the key is used once the config names it (outbound.dkim.domains) and the gateway starts.
import type { Command } from 'commander';
import { Option } from 'commander';
import YAML from 'yaml';
import { generateDkimKey, type DkimKeyType } from '../delivery/dkim-keys.ts';
import { CliError, load, print } from './common.ts';

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
}
