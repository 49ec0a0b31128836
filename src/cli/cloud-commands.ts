// `breakwater cloud …` (DESIGN §9, §10): the gateway's registration with the threat-response hub,
// through the running gateway's admin API.
import type { Command } from 'commander';
import { api, print } from './common.ts';

type WithConfig = (c: Command) => Command;

function describe(s: any): string {
  return [
    `cloud services: ${s.status}${s.reason ? ` (${s.reason})` : ''}`,
    `region ${s.region ?? '-'}, hub ${s.hubUrl ?? '-'}`,
    `device ${s.deviceId ?? '-'}, last contact ${s.lastContact ?? '-'}`,
  ].join('\n');
}

export function registerCloudCommands(program: Command, withConfig: WithConfig): void {
  const cloud = program.command('cloud').description('cloud services: the threat-response hub');
  withConfig(cloud.command('status').description('registration status').option('--json', 'JSON output')).action(
    async (opts) => {
      const s = await api(opts, 'GET', '/api/v1/cloud');
      print(opts.json, s, () => describe(s));
    },
  );
  for (const on of ['enable', 'disable'] as const)
    withConfig(cloud.command(on).description(`${on} cloud services`).option('--json', 'JSON output')).action(
      async (opts) => {
        const s = await api(opts, 'POST', `/api/v1/cloud/${on}`, {});
        print(opts.json, s, () => describe(s));
      },
    );
  withConfig(
    cloud
      .command('register <token>')
      .description('register with the hub using a token from `breakwater hub token create`')
      .option('--region <region>', 'nam, eu, apjc or a hub URL (default: cloud.region)')
      .option('--json', 'JSON output'),
  ).action(async (token: string, opts) => {
    const s = await api(opts, 'POST', '/api/v1/cloud/register', {
      token,
      ...(opts.region ? { region: opts.region } : {}),
    });
    print(opts.json, s, () => describe(s));
    if (s.status !== 'registered') process.exitCode = 1;
  });
  withConfig(
    cloud
      .command('deregister')
      .description('remove this gateway from the hub')
      .option('--force', 'forget the registration even if the hub cannot be reached')
      .option('--json', 'JSON output'),
  ).action(async (opts) => {
    const s = await api(opts, 'POST', '/api/v1/cloud/deregister', opts.force ? { force: true } : {});
    print(opts.json, s, () => describe(s));
  });
  withConfig(
    cloud
      .command('telemetry')
      .description('send the telemetry report now (cloud.telemetry on)')
      .option('--json', 'JSON output'),
  ).action(async (opts) => {
    const r = await api(opts, 'POST', '/api/v1/cloud/telemetry', {});
    print(opts.json, r, () => `telemetry sent at ${r.sentAt}: ${r.report.features.length} features`);
  });
}
