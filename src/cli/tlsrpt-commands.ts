// `breakwater tlsrpt`: SMTP TLS Reporting (RFC 8460) through the admin API — the report of a policy
// domain and UTC day as it is (or would be) sent, and the domains with recorded sessions.
import type { Command } from 'commander';
import { api, CliError, dayQuery, print, table } from './common.ts';

export function registerTlsReportCommands(program: Command, withConfig: (c: Command) => Command): void {
  const tlsrpt = program.command('tlsrpt').description('SMTP TLS reports (RFC 8460) of outgoing delivery');
  withConfig(
    tlsrpt
      .command('show <domain>')
      .description('print the report of a recipient domain for a UTC day, as it is (or would be) sent')
      .option('--day <YYYY-MM-DD>', 'UTC day (default: today)')
      .option('--json', 'the report JSON only (as sent, before gzip)'),
  ).action(async (domain: string, opts) => {
    const r = await api(opts, 'GET', `/api/v1/tlsrpt/reports/${encodeURIComponent(domain)}${dayQuery(opts.day)}`);
    if (opts.json) {
      if (!r.report) throw new CliError(`no session to ${r.domain} recorded on ${r.day}`);
      print(true, r.report, () => '');
      return;
    }
    if (!r.report) {
      process.stdout.write(`no session to ${r.domain} recorded on ${r.day}\n`);
      return;
    }
    const lines = [
      `TLS report ${r.report['report-id']} (${r.report['date-range']['start-datetime']} – ${r.report['date-range']['end-datetime']})`,
      r.delivery
        ? `${r.delivery.status} ${new Date(r.delivery.at).toISOString()}: ${r.delivery.detail}`
        : 'not sent (yet)',
      ...r.uploads.map(
        (u: any) => `  ${u.url}: ${u.status} after ${u.attempts} attempt(s)${u.lastError ? ` (${u.lastError})` : ''}`,
      ),
    ];
    for (const p of r.report.policies) {
      lines.push(
        '',
        `policy ${p.policy['policy-type']}${p.policy['mx-host'] ? ` mx ${p.policy['mx-host'].join(' ')}` : ''}: ` +
          `${p.summary['total-successful-session-count']} successful, ${p.summary['total-failure-session-count']} failed`,
      );
      const rows = (p['failure-details'] ?? []).map((f: any) => [
        String(f['failed-session-count']),
        f['result-type'],
        f['receiving-mx-hostname'] ?? '-',
        f['receiving-ip'] ?? '-',
        f['failure-reason-code'] ?? '',
      ]);
      if (rows.length) lines.push(table([['sessions', 'result', 'mx', 'ip', 'reason'], ...rows]));
    }
    print(false, r, () => lines.join('\n'));
  });
  withConfig(
    tlsrpt
      .command('list')
      .description('recipient domains with sessions recorded on a UTC day, most sessions first')
      .option('--day <YYYY-MM-DD>', 'UTC day (default: today)')
      .option('--limit <n>', 'at most this many domains', '100')
      .option('--json', 'JSON output'),
  ).action(async (opts) => {
    const r = await api(opts, 'GET', `/api/v1/tlsrpt/reports${dayQuery(opts.day, { limit: String(opts.limit) })}`);
    print(opts.json, r, () =>
      r.domains.length
        ? table([
            ['domain', 'successful', 'failed', 'report'],
            ...r.domains.map((d: any) => [d.domain, String(d.successful), String(d.failed), d.delivery ?? '-']),
          ])
        : `no sessions recorded on ${r.day}`,
    );
  });
}
