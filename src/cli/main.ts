// The `breakwater` command line. Everything but `start` and `config check` talks to the running
// gateway through the admin API, so no behaviour lives only here.
import { Command, Option } from 'commander';
import path from 'node:path';
import { checkConfigFile } from '../config/load.ts';
import { buildPipeline, describePipeline } from '../pipeline/pipeline.ts';
import { senderAuthResolver } from '../senderauth/resolver.ts';
import { ParsePool } from '../mime/pool.ts';
import { OutbreakEngine } from '../outbreak/engine.ts';
import { ClamdClient } from '../antivirus/clamd.ts';
import { clamdTarget, resolveAntivirus } from '../antivirus/auto.ts';
import { parseByteSize, parseDuration } from '../config/schema.ts';
import { trackingFilters } from '../tracking/tracker.ts';
import {
  adminAddressFile,
  api,
  CliError,
  exitOnUncaughtError,
  load,
  print,
  printConfigCheck,
  table,
} from './common.ts';
import { registerOutbreakCommands } from './outbreak-commands.ts';
import { registerCloudCommands } from './cloud-commands.ts';
import { registerUserCommands } from './user-commands.ts';
import { registerHubCommands } from './hub-commands.ts';
import { registerRemediationCommands } from './remediation-commands.ts';
import { registerDkimCommands } from './dkim-commands.ts';
import { registerTlsReportCommands } from './tlsrpt-commands.ts';
import { registerDmarcCommands } from './dmarc-commands.ts';

export { adminAddressFile } from './common.ts';

export function buildCli(): Command {
  const program = new Command('breakwater')
    .description('Breakwater email security gateway')
    .showHelpAfterError()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  const withConfig = (c: Command): Command => c.option('-c, --config <file>', 'config file (or BREAKWATER_CONFIG)');

  withConfig(program.command('start').description('start the gateway (SMTP listeners, delivery, admin API)')).action(
    async (opts) => {
      const { GatewayProcess } = await import('../gateway/process.ts');
      const loaded = load(opts.config);
      const say = (l: string): void => void process.stdout.write(l + '\n');
      const gw = await GatewayProcess.start(loaded, { announce: say, addressFile: adminAddressFile });
      say(`data in ${loaded.dataDir}; mail log ${path.join(loaded.dataDir, 'logs/mail.log')}`);
      exitOnUncaughtError('breakwater', (line) => gw.current.gateway.mailLog.fatal(line));
      // SIGHUP (systemctl reload) applies the config file as `breakwater config apply` does
      process.on('SIGHUP', () => {
        void gw.apply('SIGHUP').then((r) => say(r.applied ? 'configuration applied' : `not applied: ${r.message}`));
      });
      let stopping = false;
      const stop = (): void => {
        if (stopping) return;
        stopping = true;
        say('stopping…');
        gw.stop().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    },
  );

  const config = program.command('config').description('configuration');
  config
    .command('check <file>')
    .description('validate a config file; prints every error with its path')
    .option('--json', 'machine-readable output')
    .action((file: string, opts) => printConfigCheck(file, checkConfigFile(file).errors, opts.json));
  withConfig(
    config
      .command('apply')
      .description('apply the saved config file to the running gateway now (its services restart in place)')
      .option('--json', 'JSON output'),
  ).action(async (opts) => {
    const asked = Date.now();
    const r = await api(opts, 'POST', '/api/v1/config/apply', {});
    // the services restart once the answer is out: wait until the API answers from the new ones
    const deadline = Date.now() + 120_000;
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      const now = await api(opts, 'GET', '/api/v1/config').catch(() => null);
      if (now?.lastApply && now.lastApply.at >= asked && !now.lastApply.applied)
        throw new CliError(`not applied: ${now.lastApply.message}`);
      if (now && !now.restartPending) break;
      if (Date.now() > deadline) throw new CliError('the gateway did not come back within 2 minutes: see its mail log');
    }
    print(opts.json, r, () =>
      [
        ...r.changes.map((c: any) => `${c.path}: ${JSON.stringify(c.before)} → ${JSON.stringify(c.after)}`),
        `applied (${r.changes.length} change(s))`,
      ].join('\n'),
    );
  });

  withConfig(program.command('status').description('gateway status').option('--json', 'JSON output')).action(
    async (opts) => {
      const s = await api(opts, 'GET', '/api/v1/status');
      print(opts.json, s, () =>
        [
          `hostname ${s.hostname}, up ${s.uptimeSeconds}s`,
          ...s.listeners.map((l: any) => `listener ${l.name} (${l.direction}) ${l.address}`),
          `queue: ${s.queue.active} active, ${s.queue.deferred} deferred`,
          s.antivirus.enabled && s.antivirus.answering === false
            ? `${s.antivirus.summary}, NOT ANSWERING: mail that needs a scan waits`
            : s.antivirus.summary,
        ].join('\n'),
      );
    },
  );

  const pipeline = program.command('pipeline').description('the scanning pipeline');
  withConfig(pipeline.command('show').description('print the stages in order').option('--json', 'JSON output')).action(
    async (opts) => {
      // The pipeline is built from config alone, so this works with the gateway stopped too
      // (`clamd: auto` is probed now, as start would).
      const { config } = await resolveAntivirus(load(opts.config).config);
      const av = config.antivirus;
      const target = clamdTarget(config);
      const stages = buildPipeline(config, {
        parsePool: new ParsePool(),
        outbreak: new OutbreakEngine(config.outbreakFilters.adaptiveRules),
        // the client connects only when it scans: describing the stage needs no clamd
        antivirus: target
          ? {
              clamd: new ClamdClient({
                target,
                timeoutMs: parseDuration(av.timeout),
                maxStreamBytes: parseByteSize(av.maxScanSize),
                maxConnections: av.maxConnections,
              }),
              signatureVersion: () => null,
            }
          : undefined,
        // the resolver asks DNS only when a message is verified
        senderAuth: config.senderAuth.enabled ? { resolver: senderAuthResolver(config) } : undefined,
      });
      print(
        opts.json,
        stages.map((s) => ({
          name: s.name,
          description: s.description,
          timeoutMs: s.timeoutMs,
          failureMode: s.failureMode,
          settings: s.settings,
        })),
        () => describePipeline(stages),
      );
    },
  );

  const track = program.command('track').description('message tracking');
  withConfig(
    track
      .command('search')
      .description('search tracking records (newest first)')
      .option('--sender <address>')
      .option('--recipient <address>')
      .option('--subject <text>', 'subject contains')
      .option('--message-id <id>')
      .option('--mid <mid>')
      .option('--ip <address>', 'sender IP')
      .option('--sha256 <hash>', 'attachment sha256')
      .option('--attachment <name>', 'attachment file name')
      .option('--url-domain <domain>', 'a URL domain in the message')
      .option('--url <url>', 'a URL in the message (exactly)')
      .option('--sender-domain <domain>', "the envelope sender's domain")
      .option('--from-address <address>', 'the address in the header From')
      .addOption(
        new Option('--status <status>').choices([
          'received',
          'scanning',
          'queued',
          'deferred',
          'delivered',
          'bounced',
          'dropped',
          'deleted',
          'quarantined',
          'released',
          'splintered',
        ]),
      )
      .option('--level <n>', 'Outbreak Filters threat level at least n (0–5)')
      .option('--rule <id>', 'an outbreak or adaptive rule that matched')
      .option('--auth <method=result>', 'a sender-authentication result: dmarc=fail, spf=softfail, dkim=pass, arc=fail')
      .option('--spam-action <action>', 'rspamd\'s action ("no action", "add header", "reject", …)')
      .option('--spam-score <n>', "rspamd's score at least n")
      .option('--since <time>', 'ISO time or epoch ms')
      .option('--until <time>', 'ISO time or epoch ms')
      .option('--limit <n>', 'at most n records', '50')
      .option('--json', 'JSON output'),
  ).action(async (opts) => {
    const params = new URLSearchParams();
    // commander camel-cases --message-id to messageId: the same names the API takes
    for (const k of trackingFilters) if (opts[k] !== undefined) params.set(k, String(opts[k]));
    const r = await api(opts, 'GET', `/api/v1/tracking/messages?${params}`);
    print(opts.json, r.messages, () =>
      table([
        ['MID', 'RECEIVED', 'SENDER', 'RECIPIENTS', 'STATUS', 'SUBJECT'],
        ...r.messages.map((m: any) => [
          String(m.mid),
          m.receivedAt,
          m.sender || '<>',
          m.recipients.map((x: any) => x.address).join(','),
          m.status,
          m.subject ?? '',
        ]),
      ]),
    );
  });
  withConfig(
    track.command('show <mid>').description('one message with every event').option('--json', 'JSON output'),
  ).action(async (mid: string, opts) => {
    const m = await api(opts, 'GET', `/api/v1/tracking/messages/${encodeURIComponent(mid)}`);
    print(opts.json, m, () =>
      [
        `MID ${m.mid} (ICID ${m.icid}${m.parentMid ? `, splintered from MID ${m.parentMid}` : ''}) ${m.status}`,
        `received ${m.receivedAt} from ${m.senderIp}${m.rdns ? ` (${m.rdns})` : ''} on ${m.listener}, policy ${m.policy ?? '-'}`,
        `sender <${m.sender}>  subject ${JSON.stringify(m.subject)}  message-id ${m.messageId ?? '-'}  size ${m.size}`,
        ...m.recipients.map(
          (r: any) =>
            `  RID ${r.rid} <${r.address}> ${r.status}${r.lastReply ? ` (${r.lastReply})` : ''}${r.tls ? `  TLS ${r.tls}` : ''}`,
        ),
        ...m.attachments.map(
          (a: any) => `  attachment ${a.name} ${a.trueType ?? '?'} ${a.size} bytes sha256 ${a.sha256}`,
        ),
        ...m.urls.map((u: string) => `  url ${u}`),
        ...(m.threatLevel !== null ? [`threat level ${m.threatLevel}`] : []),
        ...m.threatRules.map((r: any) => `  rule ${r.id} level ${r.level} ${r.category}/${r.type}: ${r.description}`),
        ...m.clicks.map(
          (c: any) =>
            `  click ${c.at} <${c.recipient}> ${c.url} ${c.verdict} → ${c.action}` +
            (c.source && c.source !== 'none' ? ` (from ${c.source})` : ''),
        ),
        'events:',
        ...m.events.map((e: any) => {
          const { at, type, ...rest } = e;
          return `  ${at} ${type} ${JSON.stringify(rest)}`;
        }),
      ].join('\n'),
    );
  });

  const queue = program.command('queue').description('the delivery queue');
  withConfig(queue.command('list').description('messages not yet delivered').option('--json', 'JSON output')).action(
    async (opts) => {
      const r = await api(opts, 'GET', '/api/v1/queue');
      print(opts.json, r.messages, () =>
        r.messages.length === 0
          ? 'queue is empty'
          : table([
              ['MID', 'STATE', 'NEXT ATTEMPT', 'SENDER', 'RECIPIENTS'],
              ...r.messages.map((m: any) => [
                String(m.mid),
                m.state,
                m.nextAttemptAt ?? '-',
                m.sender || '<>',
                m.recipients.map((x: any) => x.address).join(','),
              ]),
            ]),
      );
    },
  );
  withConfig(
    queue.command('retry <mid>').description('retry a deferred message now').option('--json', 'JSON output'),
  ).action(async (mid: string, opts) => {
    const r = await api(opts, 'POST', `/api/v1/queue/${encodeURIComponent(mid)}/retry`);
    print(opts.json, r, () => `MID ${r.mid}: ${r.recipients} recipient(s) retried`);
  });
  withConfig(
    queue.command('delete <mid>').description('delete a deferred message (no bounce)').option('--json', 'JSON output'),
  ).action(async (mid: string, opts) => {
    const r = await api(opts, 'DELETE', `/api/v1/queue/${encodeURIComponent(mid)}`);
    print(opts.json, r, () => `MID ${r.mid}: ${r.recipients} recipient(s) deleted`);
  });
  registerOutbreakCommands(program, withConfig);
  registerCloudCommands(program, withConfig);
  registerUserCommands(program, withConfig);
  registerHubCommands(program);
  registerRemediationCommands(program, withConfig);
  registerDkimCommands(program, withConfig);
  registerTlsReportCommands(program, withConfig);
  registerDmarcCommands(program, withConfig);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildCli().parseAsync(argv);
  } catch (err) {
    if (err instanceof CliError || (err as { code?: string }).code === 'config_invalid') {
      process.stderr.write(`breakwater: ${(err as Error).message}\n`);
      process.exitCode = 2;
      return;
    }
    throw err;
  }
}
