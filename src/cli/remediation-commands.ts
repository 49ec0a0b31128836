// `breakwater remediate` (DESIGN §10): delete or forward delivered messages in the recipients'
// mailboxes, through the admin API (POST /api/v1/remediation).
import { Option, type Command } from 'commander';
import { api, CliError, print } from './common.ts';

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

export function registerRemediationCommands(program: Command, withConfig: (c: Command) => Command): void {
  withConfig(
    program
      .command('remediate')
      .description('delete and/or forward delivered messages in the recipients’ mailboxes (IMAP, Microsoft Graph)')
      .addOption(
        new Option('--action <action>', 'what to do in each mailbox')
          .choices(['delete', 'forward', 'forward-and-delete'])
          .makeOptionMandatory(),
      )
      .option('--mid <mid>', 'a MID from tracking (repeatable, or a comma list)', collect)
      .option('--message-id <id>', 'a Message-ID header value (repeatable)', collect)
      .option('--forward-to <address>', 'where forward sends the message (default remediation.forwardTo)')
      .option('--by <who>', 'who acts, recorded in tracking (default: the user running the command)')
      .option('--json', 'JSON output'),
  ).action(async (opts) => {
    const mids = ((opts.mid as string[] | undefined) ?? []).flatMap((m) => m.split(',')).map((m) => m.trim());
    const bad = mids.find((m) => !/^\d{1,15}$/.test(m));
    if (bad !== undefined) throw new CliError(`--mid ${bad}: a MID is a number`);
    const messageIds = (opts.messageId as string[] | undefined) ?? [];
    if (!mids.length && !messageIds.length) throw new CliError('give --mid or --message-id');
    const r = await api(opts, 'POST', '/api/v1/remediation', {
      action: opts.action,
      ...(mids.length ? { mids: mids.map(Number) } : {}),
      ...(messageIds.length ? { messageIds } : {}),
      ...(opts.forwardTo ? { forwardTo: opts.forwardTo } : {}),
      by: opts.by ?? `cli:${process.env.USER ?? 'unknown'}`,
    });
    print(opts.json, r, () =>
      [
        `${r.action}: ${r.total - r.failed} of ${r.total} done (deleted ${r.deleted}, forwarded ${r.forwarded}, ` +
          `forwarded and deleted ${r.forwardedAndDeleted}, failed ${r.failed})`,
        ...r.remediated.map(
          (x: any) =>
            `  MID ${x.mid} <${x.recipient}> via ${x.profile}` +
            (x.forwardMid !== null ? `, forwarded as MID ${x.forwardMid}` : ''),
        ),
      ].join('\n'),
    );
    for (const f of r.failures)
      process.stderr.write(
        `failed: ${f.mid !== null ? `MID ${f.mid}` : f.messageId} ${f.recipient ? `<${f.recipient}> ` : ''}${f.reason} (${f.detail})\n`,
      );
    if (r.failed) process.exitCode = 1;
  });
}
