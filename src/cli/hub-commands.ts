// `breakwater hub …` (DESIGN §9, §11): start a hub, create registration tokens, list and remove devices.
// Everything but `start` talks to the running hub's API with its admin token.
import { existsSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { readAdminToken } from '../api/token.ts';
import { checkHubConfigFile, loadHubConfig } from '../hub/config.ts';
import { hubAddressFile } from '../hub/run.ts';
import { callJson, CliError, exitOnUncaughtError, print, printConfigCheck, table } from './common.ts';
import { registerUserCommands } from './user-commands.ts';

function hubConfigPath(opt?: string): string {
  const c = opt ?? process.env.BREAKWATER_HUB_CONFIG ?? (existsSync('hub.yaml') ? 'hub.yaml' : 'examples/hub.yaml');
  if (!existsSync(c)) throw new CliError('no hub config file: pass --config FILE or set BREAKWATER_HUB_CONFIG');
  return c;
}

async function hubApi(opts: { config?: string }, method: string, urlPath: string, body?: unknown): Promise<any> {
  const loaded = loadHubConfig(hubConfigPath(opts.config));
  const token = readAdminToken(loaded.dataDir);
  if (!token) throw new CliError(`no hub admin token in ${loaded.dataDir}: has the hub been started with this config?`);
  const file = hubAddressFile(loaded.dataDir);
  const base = existsSync(file)
    ? readFileSync(file, 'utf8').trim()
    : `http://${loaded.config.listen.host}:${loaded.config.listen.port}`;
  return callJson(base, token, method, urlPath, body, 'the hub');
}

export function registerHubCommands(program: Command): void {
  const hub = program.command('hub').description('the threat-response hub');
  const withConfig = (c: Command): Command =>
    c.option('-c, --config <file>', 'hub config file (or BREAKWATER_HUB_CONFIG)');

  withConfig(hub.command('start').description('start the hub (registration, data intake, search)')).action(
    async (opts) => {
      const { runHub } = await import('../hub/run.ts');
      const loaded = loadHubConfig(hubConfigPath(opts.config));
      const running = await runHub(loaded, { announce: (l) => process.stdout.write(l + '\n') });
      process.stdout.write(`hub on ${running.url} (regions ${loaded.config.regions.join(', ')})\n`);
      process.stdout.write(`data in ${loaded.dataDir}\n`);
      exitOnUncaughtError('breakwater hub', (line) => running.log(`Critical: ${line}`));
      const stop = (): void => {
        running.stop().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    },
  );

  hub
    .command('config')
    .description('the hub configuration')
    .command('check <file>')
    .description('validate a hub config file; prints every error with its path')
    .option('--json', 'machine-readable output')
    .action((file: string, opts) => printConfigCheck(file, checkHubConfigFile(file).errors, opts.json));

  // users, API tokens and the audit log of the hub's web UI and API
  registerUserCommands(hub, withConfig, hubApi);

  const token = hub.command('token').description('registration tokens');
  withConfig(
    token
      .command('create')
      .description('a one-time registration token (valid 1 hour) for `breakwater cloud register`')
      .requiredOption('--region <region>', 'nam, eu or apjc')
      .option('--json', 'JSON output'),
  ).action(async (opts) => {
    const t = await hubApi(opts, 'POST', '/api/v1/tokens', { region: opts.region });
    // the token alone on stdout, so that `cloud register $(… hub token create …)` works
    if (!opts.json) process.stderr.write(`region ${t.region}, one use, expires ${t.expiresAt}\n`);
    print(opts.json, t, () => t.token);
  });

  const devices = withConfig(
    hub.command('devices').description('registered gateways').option('--json', 'JSON output'),
  ).action(async (opts) => {
    const r = await hubApi(opts, 'GET', '/api/v1/devices');
    print(opts.json, r.devices, () =>
      r.devices.length
        ? table([
            ['ID', 'NAME', 'REGION', 'STATUS', 'VERSION', 'MESSAGES', 'LAST CONTACT'],
            ...r.devices.map((d: any) => [
              d.id,
              d.name,
              d.region,
              d.status,
              d.version ?? '-',
              String(d.messages),
              d.lastContact ?? '-',
            ]),
          ])
        : 'no devices',
    );
  });
  withConfig(devices.command('remove <id>').description('deregister a gateway from the hub side')).action(
    async (id: string, opts) => {
      const r = await hubApi(opts, 'DELETE', `/api/v1/devices/${encodeURIComponent(id)}`);
      process.stdout.write(`device ${r.id} removed\n`);
    },
  );

  withConfig(
    hub
      .command('investigate <observables...>')
      .description(
        'investigate observables across every gateway: `type:value` (email, ip, domain, sha256, url, subject, message-id, mid, file) or text to find them in ("-" reads standard input)',
      )
      .option('--per-observable <n>', 'messages read per observable', '200')
      .option('--json', 'JSON output'),
  ).action(async (items: string[], opts) => {
    let text = items.join('\n');
    if (items.length === 1 && items[0] === '-') {
      text = '';
      for await (const chunk of process.stdin) text += chunk;
    }
    const r = await hubApi(opts, 'POST', '/api/v1/investigate', {
      text,
      perObservable: Number(opts.perObservable),
    });
    print(opts.json, r, () =>
      [
        r.observables.length
          ? table([
              ['TYPE', 'VALUE', 'JUDGEMENT', 'MESSAGES', 'GATEWAYS', 'FIRST SEEN', 'LAST SEEN', 'MAX LEVEL'],
              ...r.observables.map((o: any) => [
                o.type,
                o.value,
                o.judgement,
                String(o.sightings.count),
                o.sightings.gateways.map((g: any) => `${g.name} (${g.count})`).join(', ') || '-',
                o.sightings.firstSeen ?? '-',
                o.sightings.lastSeen ?? '-',
                o.maxThreatLevel === null ? '-' : String(o.maxThreatLevel),
              ]),
            ])
          : 'no observable found',
        ...r.errors.map((e: any) => `not investigated: ${e.input}: ${e.error}`),
        r.messages.length
          ? table([
              ['GATEWAY', 'MID', 'RECEIVED', 'SENDER', 'SUBJECT', 'STATUS', 'LEVEL'],
              ...r.messages
                .slice(0, 50)
                .map((m: any) => [
                  m.gateway,
                  String(m.summary.mid),
                  m.summary.receivedAt,
                  m.summary.sender,
                  m.summary.subject ?? '',
                  m.summary.status,
                  m.summary.threatLevel === null ? '-' : String(m.summary.threatLevel),
                ]),
            ])
          : '',
      ]
        .filter(Boolean)
        .join('\n\n'),
    );
  });
}
