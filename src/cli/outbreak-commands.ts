// CLI commands for Outbreak Filters, quarantines, rule publishing, alerts and reports (DESIGN §9).
// Everything that touches the running gateway goes through the admin API; `rules` (publisher tools)
// and `outbreak setup` (edits the config file) work locally.
import type { Command } from 'commander';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import readline from 'node:readline';
import YAML from 'yaml';
import { validateConfig } from '../config/load.ts';
import { rulesKeygen, rulesSign, rulesVerify } from '../outbreak/rules-cli.ts';
import { api, CliError, configPath, print, table } from './common.ts';

const QUARANTINE_FILTERS = (c: Command): Command =>
  c
    .option('--quarantine <name>', 'quarantine', 'outbreak')
    .option('--rule <id>', 'messages held by this rule')
    .option('--level <n>', 'threat level at least n')
    .option('--sender <address>')
    .option('--recipient <address>')
    .option('--since <time>', 'entered at or after (ISO time or epoch ms)')
    .option('--until <time>', 'entered before (ISO time or epoch ms)')
    .option('--json', 'JSON output');

function filterBody(opts: Record<string, any>, mids: string[]): Record<string, unknown> {
  const b: Record<string, unknown> = {};
  if (mids.length)
    b.mids = mids.map((m) => {
      if (!/^\d{1,15}$/.test(m)) throw new CliError(`not a MID: ${JSON.stringify(m).slice(0, 40)}`);
      return Number(m);
    });
  for (const k of ['rule', 'sender', 'recipient', 'since', 'until'] as const) if (opts[k] !== undefined) b[k] = opts[k];
  if (opts.level !== undefined) b.level = Number(opts.level);
  if (opts.all) b.all = true;
  // Tracking records who acted: the operating-system user behind the CLI.
  b.by = `${safeUser()} (cli)`;
  return b;
}

/**
 * The outcome of a bulk quarantine action. MIDs named on the command line that were not acted on
 * (not held in that quarantine, or already leaving) are listed on stderr and the exit code is 1, so
 * a script never mistakes "nothing happened" for success.
 */
function printBulk(
  opts: Record<string, any>,
  r: { count: number; mids: number[]; notFound?: number[] },
  text: string,
): void {
  print(opts.json, r, () => text);
  if (r.notFound?.length) {
    process.stderr.write(`not found in quarantine ${opts.quarantine}: MID ${r.notFound.join(', ')}\n`);
    process.exitCode = 1;
  }
}

function safeUser(): string {
  try {
    return os.userInfo().username.slice(0, 64) || 'unknown';
  } catch {
    return 'unknown';
  }
}

export function registerOutbreakCommands(program: Command, withConfig: (c: Command) => Command): void {
  // ---- outbreak ----
  const outbreak = program.command('outbreak').description('Outbreak Filters');
  withConfig(outbreak.command('status').description('settings, rule versions, last update').option('--json')).action(
    async (opts) => {
      const s = await api(opts, 'GET', '/api/v1/outbreak/status');
      print(opts.json, s, () =>
        [
          `Outbreak Filters: ${s.settings.enabled ? 'enabled' : 'disabled'}`,
          `  adaptive rules: ${s.settings.adaptiveRules ? 'enabled' : 'disabled'}`,
          `  maximum message size to scan: ${s.settings.maxScanSize}`,
          `  emailed alerts: ${s.settings.alerts ? 'enabled' : 'disabled'}`,
          `  URL logging: ${s.settings.logUrls ? 'enabled' : 'disabled'}`,
          `  web interaction tracking: ${s.settings.webInteractionTracking ? 'enabled' : 'disabled'}`,
          `  rule feed: ${s.feed ? (s.feed.url ?? s.feed.dir) : 'none'} (every ${s.settings.ruleUpdateInterval})`,
          '',
          table([
            ['RULES', 'VERSION', 'RULES', 'LAST UPDATE'],
            [
              'outbreak rules',
              String(s.outbreakRules.version ?? '-'),
              String(s.outbreakRules.rules),
              s.lastUpdate ?? 'never',
            ],
            ['adaptive rules', 'built in', s.adaptiveRules.enabled ? 'on' : 'off', '-'],
          ]),
          `last check: ${s.lastCheck ?? 'never'}${s.lastError ? `\nlast error: ${s.lastError}` : ''}`,
          `quarantined: ${s.quarantine.messages} message(s), ${s.quarantine.bytes} bytes`,
        ].join('\n'),
      );
    },
  );
  withConfig(outbreak.command('update').description('fetch outbreak rules now').option('--json')).action(
    async (opts) => {
      const r = await api(opts, 'POST', '/api/v1/outbreak/update', {});
      print(opts.json, r, () =>
        r.status === 'failed'
          ? `update failed (${r.error.code}: ${r.error.message}); version ${r.version ?? '-'} stays active`
          : r.status === 'no_feed'
            ? 'no rule feed configured (outbreakFilters.ruleFeed)'
            : `rules ${r.status}: version ${r.version}, ${r.ruleCount} rules`,
      );
      if (r.status === 'failed') process.exitCode = 1;
    },
  );
  withConfig(
    outbreak
      .command('flush')
      .description('clear the cached outbreak rules')
      .option('-y, --yes', 'do not ask')
      .option('--json'),
  ).action(async (opts) => {
    if (!opts.yes) {
      const prompter = new Prompter(false);
      // no answer (input ended) is a no
      const answer = await prompter
        .ask(
          'Clear the current outbreak rules? Messages are scored by adaptive rules only until the next update. [y/N] ',
        )
        .catch(() => '')
        .finally(() => prompter.close());
      if (!/^y(es)?$/i.test(answer.trim())) {
        process.stdout.write('not flushed\n');
        return;
      }
    }
    const r = await api(opts, 'POST', '/api/v1/outbreak/flush', { confirm: true });
    print(opts.json, r, () => `rules flushed (was version ${r.removedVersion ?? '-'})`);
  });
  withConfig(outbreak.command('rules').description('active outbreak rules and adaptive rules').option('--json')).action(
    async (opts) => {
      const r = await api(opts, 'GET', '/api/v1/outbreak/rules');
      print(opts.json, r, () =>
        table([
          ['RULE', 'LEVEL', 'CATEGORY', 'DESCRIPTION'],
          ...r.rules.map((x: any) => [x.id, String(x.level), x.category, x.description]),
          ...r.adaptive.map((x: any) => [x.id, String(x.level), x.category, x.description]),
        ]),
      );
    },
  );
  withConfig(
    outbreak
      .command('setup')
      .description('walk through the global Outbreak Filters settings')
      .option('--defaults', 'answer every question with its current or default value (no terminal needed)'),
  ).action(async (opts) => {
    await outbreakSetup(configPath(opts.config), { defaults: !!opts.defaults });
  });

  // ---- quarantine ----
  const quarantine = program.command('quarantine').description('quarantines');
  withConfig(
    QUARANTINE_FILTERS(quarantine.command('list').description('held messages, oldest first')).option(
      '--limit <n>',
      'at most n',
      '100',
    ),
  ).action(async (opts) => {
    const q = new URLSearchParams();
    for (const k of ['rule', 'level', 'sender', 'recipient', 'since', 'until', 'limit'])
      if (opts[k] !== undefined) q.set(k, String(opts[k]));
    const r = await api(opts, 'GET', `/api/v1/quarantines/${encodeURIComponent(opts.quarantine)}/messages?${q}`);
    print(opts.json, r.messages, () =>
      r.messages.length === 0
        ? `quarantine ${opts.quarantine} is empty`
        : table([
            ['MID', 'ENTERED', 'SCHEDULED EXIT', 'LEVEL', 'RULES', 'SENDER', 'SUBJECT'],
            ...r.messages.map((m: any) => [
              String(m.mid),
              m.enteredAt,
              m.scheduledExit,
              String(m.level),
              m.ruleIds.join(','),
              m.sender || '<>',
              m.subject ?? '',
            ]),
          ]),
    );
  });
  withConfig(
    quarantine
      .command('show <mid>')
      .description('one held message')
      .option('--quarantine <name>', 'quarantine', 'outbreak')
      .option('--json'),
  ).action(async (mid: string, opts) => {
    const m = await api(
      opts,
      'GET',
      `/api/v1/quarantines/${encodeURIComponent(opts.quarantine)}/messages/${encodeURIComponent(mid)}`,
    );
    print(opts.json, m, () =>
      [
        `MID ${m.mid} in ${m.quarantine} since ${m.enteredAt}, scheduled exit ${m.scheduledExit}`,
        `level ${m.level} ${m.category ?? ''}${m.viral ? ' (viral)' : ''}: ${m.reason}`,
        `rules: ${m.ruleIds.join(', ') || '-'}`,
        `sender <${m.sender}> to ${m.recipients.join(', ')}  subject ${JSON.stringify(m.subject)}  ${m.size} bytes`,
      ].join('\n'),
    );
  });
  for (const action of ['release', 'delete'] as const) {
    withConfig(
      QUARANTINE_FILTERS(
        quarantine
          .command(`${action} [mids...]`)
          .description(
            action === 'release' ? 'release held messages (rescanned, then delivered)' : 'delete held messages',
          ),
      ).option('--all', 'every message in the quarantine'),
    ).action(async (mids: string[], opts) => {
      const body = filterBody(opts, mids);
      const r = await api(opts, 'POST', `/api/v1/quarantines/${encodeURIComponent(opts.quarantine)}/${action}`, body);
      printBulk(
        opts,
        r,
        `${r.count} message(s) ${action === 'release' ? 'released' : 'deleted'}${r.count ? `: ${r.mids.join(', ')}` : ''}`,
      );
    });
  }
  withConfig(
    QUARANTINE_FILTERS(quarantine.command('delay [mids...]').description('extend the scheduled exit'))
      .requiredOption('--extend <duration>', 'how much longer, e.g. 4h or 2d')
      .option('--all', 'every message in the quarantine'),
  ).action(async (mids: string[], opts) => {
    const r = await api(opts, 'POST', `/api/v1/quarantines/${encodeURIComponent(opts.quarantine)}/delay`, {
      ...filterBody(opts, mids),
      extend: opts.extend,
    });
    printBulk(opts, r, `${r.count} message(s) delayed by ${opts.extend}`);
  });
  withConfig(
    QUARANTINE_FILTERS(quarantine.command('move [mids...]').description('move held messages to another quarantine'))
      .requiredOption('--to <quarantine>', 'the target quarantine')
      .option('--all', 'every message in the quarantine'),
  ).action(async (mids: string[], opts) => {
    const r = await api(opts, 'POST', `/api/v1/quarantines/${encodeURIComponent(opts.quarantine)}/move`, {
      ...filterBody(opts, mids),
      to: opts.to,
    });
    printBulk(opts, r, `${r.count} message(s) moved to ${opts.to}${r.count ? `: ${r.mids.join(', ')}` : ''}`);
  });
  withConfig(
    QUARANTINE_FILTERS(
      quarantine
        .command('copy [mids...]')
        .description('send a copy of held messages (attached, unchanged) to administrators; they stay held'),
    )
      .requiredOption('--to <addresses>', 'comma-separated e-mail addresses')
      .option('--all', 'every message in the quarantine'),
  ).action(async (mids: string[], opts) => {
    const r = await api(opts, 'POST', `/api/v1/quarantines/${encodeURIComponent(opts.quarantine)}/copy`, {
      ...filterBody(opts, mids),
      to: String(opts.to)
        .split(',')
        .map((a) => a.trim())
        .filter(Boolean),
    });
    printBulk(opts, r, `copies of ${r.count} message(s) sent to ${opts.to}`);
  });
  withConfig(
    quarantine.command('status').description('quarantines, their usage and the capacity budget').option('--json'),
  ).action(async (opts) => {
    const r = await api(opts, 'GET', '/api/v1/quarantines');
    print(opts.json, r, () =>
      [
        table([
          ['QUARANTINE', 'KIND', 'MESSAGES', 'BYTES', 'RETENTION', 'DEFAULT ACTION'],
          ...r.quarantines.map((q: any) => [
            q.name,
            q.kind,
            String(q.messages),
            String(q.bytes),
            q.retention,
            q.defaultAction,
          ]),
        ]),
        `capacity: ${r.usage.messages} message(s), ${r.usage.bytes} of ${r.usage.maxSize} bytes (${r.usage.percent} %)`,
      ].join('\n'),
    );
  });
  withConfig(
    quarantine
      .command('digest')
      .description('send the end-user quarantine digests now (recipients with newly held messages)')
      .option('--json'),
  ).action(async (opts) => {
    const r = await api(opts, 'POST', '/api/v1/enduser/digests');
    print(opts.json, r, () => `${r.digests} digest(s) sent, listing ${r.messages} message(s)`);
  });
  withConfig(
    quarantine
      .command('rules')
      .description('held messages by rule (manage by rule)')
      .option('--quarantine <name>', 'quarantine', 'outbreak')
      .option('--json'),
  ).action(async (opts) => {
    const r = await api(opts, 'GET', `/api/v1/quarantines/${encodeURIComponent(opts.quarantine)}/rules`);
    print(opts.json, r.rules, () =>
      table([
        ['RULE', 'MESSAGES', 'TOTAL SIZE', 'DESCRIPTION'],
        ...r.rules.map((x: any) => [x.ruleId, String(x.messages), String(x.totalSize), x.description]),
      ]),
    );
  });

  // ---- rules (publisher tools, local) ----
  const rules = program.command('rules').description('outbreak rule bundles (for publishers)');
  rules
    .command('keygen')
    .description('create an Ed25519 key pair for signing rule bundles')
    .option('--out <dir>', 'where to write the key files', '.')
    .action((opts) => {
      const r = rulesKeygen(opts.out);
      process.stdout.write(
        `private key: ${r.privateKeyFile} (keep it secret)\npublic key: ${r.publicKeyFile}\n` +
          `put this in outbreakFilters.ruleFeed.publicKey: ${r.publicKey}\n`,
      );
    });
  rules
    .command('sign <bundle>')
    .description('validate and sign a rule bundle (JSON)')
    .requiredOption('--key <file>', 'private key file')
    .requiredOption('--out <file>', 'signed bundle to write')
    .action((bundle: string, opts) => {
      let r: ReturnType<typeof rulesSign>;
      try {
        r = rulesSign(bundle, opts.key, opts.out);
      } catch (err) {
        const errors = (err as { errors?: string[] }).errors ?? [(err as Error).message];
        process.stderr.write(`${bundle}: ${errors.length} error(s)\n${errors.map((e) => `  ${e}`).join('\n')}\n`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(`signed ${bundle} → ${r.outFile}: version ${r.version}, ${r.rules} rules, key ${r.keyId}\n`);
    });
  rules
    .command('verify <signed>')
    .description('verify a signed rule bundle')
    .requiredOption('--public-key <key>', 'publisher public key (base64) or a file holding it')
    .option('--json')
    .action((signed: string, opts) => {
      let key = opts.publicKey as string;
      try {
        key = readFileSync(key, 'utf8').trim();
      } catch {
        // not a file: the key itself
      }
      const r = rulesVerify(signed, key) as any;
      process.stdout.write((opts.json ? JSON.stringify(r, null, 2) : (r.summary ?? JSON.stringify(r))) + '\n');
      if (!r.ok) process.exitCode = 1;
    });

  // ---- alerts, reports ----
  const alerts = program.command('alerts').description('alerts');
  withConfig(
    alerts
      .command('list')
      .description('recent alerts, newest first')
      .option('--limit <n>', 'at most n', '50')
      .option('--class <class>')
      .option('--json'),
  ).action(async (opts) => {
    const q = new URLSearchParams({ limit: String(opts.limit) });
    if (opts.class) q.set('class', opts.class);
    const r = await api(opts, 'GET', `/api/v1/alerts?${q}`);
    print(opts.json, r.alerts, () =>
      table([
        ['TIME', 'SEVERITY', 'CLASS', 'TITLE', 'SENT'],
        ...r.alerts.map((a: any) => [
          new Date(a.at).toISOString(),
          a.severity,
          a.class,
          a.title,
          a.suppressed ? 'suppressed' : a.deliveries.email,
        ]),
      ]),
    );
  });
  const reports = program.command('reports').description('reports');
  withConfig(
    reports
      .command('web-interaction')
      .description('clicks on rewritten links')
      .option('--since <time>')
      .option('--until <time>')
      .option('--json'),
  ).action(async (opts) => {
    const q = new URLSearchParams();
    if (opts.since) q.set('since', opts.since);
    if (opts.until) q.set('until', opts.until);
    const r = await api(opts, 'GET', `/api/v1/reports/web-interaction?${q}`);
    print(opts.json, r, () =>
      [
        `clicks ${r.totals.clicks ?? 0}: allowed ${r.totals.allowed ?? 0}, warned ${r.totals.warned ?? 0}, blocked ${r.totals.blocked ?? 0}, unknown ${r.totals.unknown ?? 0}`,
        table([
          ['URL', 'CLICKS', 'ALLOWED', 'BLOCKED', 'UNKNOWN', 'MESSAGES'],
          ...r.urls.map((u: any) => [
            u.url,
            String(u.clicks),
            String(u.allowed),
            String(u.blocked),
            String(u.unknown),
            String(u.messages),
          ]),
        ]),
        'top users who clicked malicious links:',
        ...r.topMaliciousClickers.map((u: any) => `  ${u.recipient}: ${u.clicks} click(s) on ${u.urls} URL(s)`),
      ].join('\n'),
    );
  });
}

/**
 * Answers from a terminal or from a pipe (tests, scripts): lines are queued, never lost. Input that
 * ends before every question is answered aborts the walk-through: nothing is written (a cron job or a
 * `</dev/null` must never rewrite the config with defaults). `--defaults` takes every default instead.
 */
class Prompter {
  private readonly lines: string[] = [];
  private waiting: { resolve: (line: string) => void; reject: (err: Error) => void } | null = null;
  private closed = false;
  private readonly rl: readline.Interface | null;
  private readonly defaults: boolean;

  constructor(defaults: boolean) {
    this.defaults = defaults;
    this.rl = defaults ? null : readline.createInterface({ input: process.stdin, terminal: false });
    if (!this.rl) return;
    this.rl.on('line', (l) => {
      if (this.waiting) {
        const w = this.waiting;
        this.waiting = null;
        w.resolve(l);
      } else this.lines.push(l);
    });
    this.rl.on('close', () => {
      this.closed = true;
      this.waiting?.reject(Prompter.ended());
    });
  }

  private static ended(): CliError {
    return new CliError(
      'input ended before every question was answered: nothing was written. Run it in a terminal, ' +
        'pipe one answer per question, or pass --defaults to keep every current or default value',
    );
  }

  ask(question: string): Promise<string> {
    process.stdout.write(question);
    if (this.defaults) {
      process.stdout.write('(default)\n');
      return Promise.resolve('');
    }
    const next = this.lines.shift();
    if (next !== undefined) return Promise.resolve(next);
    if (this.closed) return Promise.reject(Prompter.ended());
    return new Promise((resolve, reject) => (this.waiting = { resolve, reject }));
  }

  close(): void {
    this.rl?.close();
  }
}

/** `breakwater outbreak setup`: the appliance's `outbreakconfig` walk-through, editing the config file. */
async function outbreakSetup(file: string, options: { defaults: boolean }): Promise<void> {
  const text = readFileSync(file, 'utf8');
  const doc = YAML.parseDocument(text);
  const current = (doc.toJS()?.outbreakFilters ?? {}) as Record<string, any>;
  const p = new Prompter(options.defaults);
  const yesNo = async (q: string, def: boolean): Promise<boolean> => {
    for (;;) {
      const a = (await p.ask(`${q} [${def ? 'Y/n' : 'y/N'}] `)).trim();
      if (!a) return def;
      if (/^y(es)?$/i.test(a)) return true;
      if (/^no?$/i.test(a)) return false;
      process.stdout.write('Please answer yes or no.\n');
    }
  };
  const value = async (q: string, def: string, valid: (s: string) => boolean, hint: string): Promise<string> => {
    for (;;) {
      const a = (await p.ask(`${q} [${def}] `)).trim();
      if (!a) return def;
      if (valid(a)) return a;
      process.stdout.write(`${hint}\n`);
    }
  };
  try {
    process.stdout.write('Outbreak Filters setup (answers are written to ' + file + ')\n');
    const enabled = await yesNo('Use Outbreak Filters?', current.enabled ?? true);
    const next: Record<string, unknown> = { ...current, enabled };
    if (enabled) {
      next.alerts = await yesNo('Receive Outbreak Filters alerts?', current.alerts ?? true);
      next.maxScanSize = await value(
        'Largest message size to scan (bytes or e.g. 2MiB)',
        String(current.maxScanSize ?? '2MiB'),
        (s) => /^\d+(\.\d+)?\s*(B|KB|KiB|MB|MiB|GB|GiB)?$/i.test(s),
        'a number of bytes or a size such as 2MiB',
      );
      if (/^\d+$/.test(String(next.maxScanSize))) next.maxScanSize = Number(next.maxScanSize);
      next.adaptiveRules = await yesNo('Use adaptive rules?', current.adaptiveRules ?? true);
      next.logUrls = await yesNo('Log URLs found in messages?', current.logUrls ?? false);
      next.webInteractionTracking = await yesNo(
        'Enable web interaction tracking?',
        current.webInteractionTracking ?? true,
      );
      const feed = { ...(current.ruleFeed ?? {}) } as Record<string, unknown>;
      const where = await value(
        'Rule feed: an http(s) URL, a directory, or "none"',
        String(feed.url ?? feed.dir ?? 'none'),
        () => true,
        '',
      );
      delete feed.url;
      delete feed.dir;
      if (/^https?:\/\//i.test(where)) feed.url = where;
      else if (where !== 'none') feed.dir = where;
      if (where !== 'none')
        feed.publicKey = await value(
          'Publisher public key (base64)',
          String(feed.publicKey ?? ''),
          (s) => /^[A-Za-z0-9+/=]{40,}$/.test(s),
          'the base64 public key printed by `breakwater rules keygen`',
        );
      next.ruleFeed = feed;
      next.ruleUpdateInterval = await value(
        'Rule update interval',
        String(current.ruleUpdateInterval ?? '5m'),
        (s) => /^\d+(ms|s|m|h|d)$/.test(s),
        'a duration such as 5m',
      );
    }
    doc.set('outbreakFilters', next);
    const v = validateConfig(doc.toJS());
    if (!v.config)
      throw new CliError(
        `the new settings are not valid:\n${v.errors.map((e) => `  ${e.path}: ${e.message}`).join('\n')}`,
      );
    copyFileSync(file, `${file}.bak`);
    writeFileSync(file, doc.toString());
    process.stdout.write(`saved to ${file} (previous version in ${file}.bak); restart the gateway to apply\n`);
  } finally {
    p.close();
  }
}
