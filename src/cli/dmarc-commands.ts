// `breakwater dmarc report`: DMARC aggregate reports (RFC 7489 §7.2) through the admin API — the report
// of a policy domain and UTC day as it is (or would be) sent, and the domains with incoming mail counted.
import type { Command } from 'commander';
import { aggregateXml, type DmarcAggregate } from '../senderauth/dmarc-aggregate.ts';
import { api, CliError, dayQuery, print, table } from './common.ts';

export function registerDmarcCommands(program: Command, withConfig: (c: Command) => Command): void {
  const report = program
    .command('dmarc')
    .description('DMARC of incoming mail')
    .command('report')
    .description('DMARC aggregate reports (RFC 7489) to the domains whose records applied');
  withConfig(
    report
      .command('show <domain>')
      .description('print the report of a policy domain for a UTC day, as it is (or would be) sent')
      .option('--day <YYYY-MM-DD>', 'UTC day (default: today)')
      .option('--json', 'the report as JSON (element names as in the XML)')
      .option('--xml', 'the report XML only (as sent, before gzip)'),
  ).action(async (domain: string, opts) => {
    const r = await api(opts, 'GET', `/api/v1/dmarc/reports/${encodeURIComponent(domain)}${dayQuery(opts.day)}`);
    const a = r.report as DmarcAggregate | null;
    if (opts.xml || opts.json) {
      if (!a) throw new CliError(`no mail of ${r.domain} counted on ${r.day}`);
      if (opts.xml) process.stdout.write(aggregateXml(a));
      else print(true, a, () => '');
      return;
    }
    if (!a) {
      process.stdout.write(`no mail of ${r.domain} counted on ${r.day}\n`);
      return;
    }
    const p = a.policy_published;
    const lines = [
      `DMARC report ${a.report_metadata.report_id} (${r.day}, UTC)`,
      `published: p=${p.p} sp=${p.sp} pct=${p.pct} adkim=${p.adkim} aspf=${p.aspf} rua=${r.rua.join(',') || '-'}`,
      r.delivery
        ? `${r.delivery.status} ${new Date(r.delivery.at).toISOString()}: ${r.delivery.detail}`
        : 'not sent (yet)',
      '',
      table([
        ['messages', 'source', 'header from', 'envelope from', 'dkim', 'spf', 'disposition', 'override'],
        ...a.record.map((x) => [
          String(x.row.count),
          x.row.source_ip,
          x.identifiers.header_from,
          x.identifiers.envelope_from || '<>',
          `${x.row.policy_evaluated.dkim} (${x.auth_results.dkim.map((d) => `${d.domain}=${d.result}`).join(' ') || 'none'})`,
          `${x.row.policy_evaluated.spf} (${x.auth_results.spf.domain || '-'}=${x.auth_results.spf.result})`,
          x.row.policy_evaluated.disposition,
          x.row.policy_evaluated.reason.map((o) => o.type).join(' ') || '-',
        ]),
      ]),
    ];
    print(false, r, () => lines.join('\n'));
  });
  withConfig(
    report
      .command('list')
      .description('policy domains with incoming mail counted on a UTC day, most messages first')
      .option('--day <YYYY-MM-DD>', 'UTC day (default: today)')
      .option('--limit <n>', 'at most this many domains', '100')
      .option('--json', 'JSON output'),
  ).action(async (opts) => {
    const r = await api(opts, 'GET', `/api/v1/dmarc/reports${dayQuery(opts.day, { limit: String(opts.limit) })}`);
    print(opts.json, r, () =>
      r.domains.length
        ? table([
            ['domain', 'messages', 'failed', 'report'],
            ...r.domains.map((d: any) => [d.domain, String(d.messages), String(d.failed), d.delivery ?? '-']),
          ])
        : `no mail counted on ${r.day}`,
    );
  });
}
