// `breakwater users …` and `breakwater audit` (DESIGN §9): users, roles, API tokens and the audit log,
// through the running gateway's admin API (the local admin token), like every other command.
import type { Command } from 'commander';
import { api, print, table } from './common.ts';
import { ROLES, ROLE_DESCRIPTIONS } from '../users/roles.ts';

type WithConfig = (c: Command) => Command;

/** A password from --password, or from stdin with --password-stdin (never echoed). */
async function passwordFrom(opts: { password?: string; passwordStdin?: boolean }): Promise<string | undefined> {
  if (opts.password) return opts.password;
  if (!opts.passwordStdin) return undefined;
  let text = '';
  for await (const chunk of process.stdin) text += chunk;
  return text.replace(/\r?\n$/, '');
}

/** On `program` (the gateway's) or `breakwater hub` (the hub's, with its own API caller). */
export function registerUserCommands(program: Command, withConfig: WithConfig, call: typeof api = api): void {
  const users = program
    .command('users')
    .description(
      `users of the admin API and web UI; roles: ${ROLES.map((r) => `${r} (${ROLE_DESCRIPTIONS[r]})`).join('; ')}`,
    );
  withConfig(users.command('list').description('every user with their role').option('--json', 'JSON output')).action(
    async (opts) => {
      const r = await call(opts, 'GET', '/api/v1/users');
      print(opts.json, r.users, () =>
        table([
          ['NAME', 'ROLE', 'LAST LOGIN', 'LOCKED UNTIL'],
          ...r.users.map((u: any) => [u.name, u.role, u.lastLogin ?? '-', u.lockedUntil ?? '-']),
        ]),
      );
    },
  );
  withConfig(
    users
      .command('add <name>')
      .description('add a user; without a password one is generated and printed once')
      .requiredOption('--role <role>', ROLES.join(', '))
      .option('--password <password>', 'the password (visible in the process list: prefer --password-stdin)')
      .option('--password-stdin', 'read the password from standard input')
      .option('--json', 'JSON output'),
  ).action(async (name: string, opts) => {
    const password = await passwordFrom(opts);
    const r = await call(opts, 'POST', '/api/v1/users', { name, role: opts.role, ...(password ? { password } : {}) });
    print(opts.json, r, () =>
      [`added ${r.user.name} (${r.user.role})`, ...(r.password ? [`password (shown once): ${r.password}`] : [])].join(
        '\n',
      ),
    );
  });
  withConfig(
    users
      .command('passwd <name>')
      .description('set a new password (ends their sessions, lifts a lockout); generated and printed when not given')
      .option('--password <password>', 'the password (prefer --password-stdin)')
      .option('--password-stdin', 'read the password from standard input')
      .option('--json', 'JSON output'),
  ).action(async (name: string, opts) => {
    const given = await passwordFrom(opts);
    const password = given ?? (await import('../users/service.ts')).generatePassword();
    const u = await call(opts, 'PATCH', `/api/v1/users/${encodeURIComponent(name)}`, { password });
    print(opts.json, { user: u, password: given ? null : password }, () =>
      [`new password set for ${u.name}`, ...(given ? [] : [`password (shown once): ${password}`])].join('\n'),
    );
  });
  withConfig(
    users.command('role <name> <role>').description('change a user’s role').option('--json', 'JSON output'),
  ).action(async (name: string, role: string, opts) => {
    const u = await call(opts, 'PATCH', `/api/v1/users/${encodeURIComponent(name)}`, { role });
    print(opts.json, u, () => `${u.name} is now ${u.role}`);
  });
  withConfig(
    users
      .command('remove <name>')
      .description('remove a user with their sessions and API tokens')
      .option('--json', 'JSON output'),
  ).action(async (name: string, opts) => {
    const r = await call(opts, 'DELETE', `/api/v1/users/${encodeURIComponent(name)}`);
    print(opts.json, r, () => `removed ${r.removed}`);
  });
  withConfig(
    users
      .command('token <name>')
      .description('create a personal API token for a user (printed once; it carries the user’s role)')
      .option('--label <label>', 'what it is for', 'api')
      .option('--days <n>', 'expires after this many days (default: never)')
      .option('--json', 'JSON output'),
  ).action(async (name: string, opts) => {
    const r = await call(opts, 'POST', `/api/v1/users/${encodeURIComponent(name)}/tokens`, {
      label: opts.label,
      ...(opts.days ? { expiresInDays: Number(opts.days) } : {}),
    });
    print(opts.json, r, () => `token ${r.info.id} for ${r.info.user} (shown once): ${r.token}`);
  });

  withConfig(
    program
      .command('audit')
      .description('the audit log, newest first: every change through the API, sign-ins and failed sign-ins')
      .option('--user <name>', 'only this user (admin-token: the local admin token)')
      .option('--action <operation>', 'only this operation (e.g. releaseQuarantinedMessages, loginFailed)')
      .option('--text <text>', 'text anywhere in the target or the request')
      .option('--since <time>', 'from this time (ISO 8601)')
      .option('--limit <n>', 'at most this many', '100')
      .option('--json', 'JSON output'),
  ).action(async (opts) => {
    const q = new URLSearchParams({ limit: String(opts.limit) });
    for (const k of ['user', 'action', 'text', 'since'] as const) if (opts[k]) q.set(k, opts[k]);
    const r = await call(opts, 'GET', `/api/v1/audit?${q}`);
    print(opts.json, r.entries, () =>
      table([
        ['AT', 'USER', 'ROLE', 'ACTION', 'TARGET', 'STATUS', 'FROM'],
        ...r.entries.map((e: any) => [e.at, e.user, e.role || '-', e.action, e.target, String(e.status), e.ip]),
      ]),
    );
  });
}
