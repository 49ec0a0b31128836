// A real Dovecot for the remediation tests and bench: its own dovecot.conf in a temp directory (no system
// service), run in the foreground as a child (`dovecot -F -c conf`), IMAP and LMTP on free loopback ports.
// Users and a master user (Dovecot's auth_master_user_separator, "user*master") live in passwd-files.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ImapFlow } from 'imapflow';
import { freePort, hasBinary, tempDir, waitForPort } from './peers.ts';

export function hasDovecot(): boolean {
  return hasBinary('dovecot');
}

export interface TestDovecot {
  dir: string;
  imapPort: number;
  lmtpPort: number;
  masterUser: string;
  masterPassword: string;
  /** an IMAP session as one user (through the master user), for the test to read mailboxes back */
  open(user: string): Promise<ImapFlow>;
  /** Message-IDs in every folder of a mailbox: folder → Message-IDs */
  messageIds(user: string): Promise<Record<string, string[]>>;
  log(): string;
  stop(): Promise<void>;
}

function idOf(name: string): number | null {
  try {
    return Number(execFileSync('id', ['-u', name]).toString().trim());
  } catch {
    return null;
  }
}

/** Starts Dovecot with these users (addresses; password "secret") and the master user admin/masterpw. */
export async function startDovecot(users: string[]): Promise<TestDovecot> {
  const dir = tempDir('bw-dovecot-');
  chmodSync(dir, 0o755);
  const imapPort = await freePort();
  const lmtpPort = await freePort();
  const root = process.getuid?.() === 0;
  // As root, mail is stored as the "mail" user (Dovecot refuses uid 0 for mail); otherwise as ourselves.
  const mailUid = root ? (idOf('mail') ?? 8) : process.getuid!();
  const mailGid = root ? Number(execFileSync('id', ['-g', 'mail']).toString().trim()) : process.getgid!();
  const me = root ? null : execFileSync('id', ['-un']).toString().trim();
  const home = path.join(dir, 'home');
  mkdirSync(home);
  if (root) chownSync(home, mailUid, mailGid);
  writeFileSync(
    path.join(dir, 'users'),
    users.map((u) => `${u}:{PLAIN}secret:${mailUid}:${mailGid}::${home}/${u}::\n`).join(''),
  );
  writeFileSync(path.join(dir, 'masters'), 'admin:{PLAIN}masterpw\n');
  const conf = path.join(dir, 'dovecot.conf');
  writeFileSync(
    conf,
    `base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${dir}/dovecot.log
info_log_path = ${dir}/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_master_user_separator = *
auth_failure_delay = 0
first_valid_uid = 1
mail_location = maildir:~/Maildir
postmaster_address = postmaster@dst.test
${root ? 'default_login_user = dovenull\ndefault_internal_user = dovecot' : `default_login_user = ${me}\ndefault_internal_user = ${me}`}
passdb {
  driver = passwd-file
  args = scheme=PLAIN ${dir}/masters
  master = yes
  pass = yes
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN ${dir}/users
}
userdb {
  driver = passwd-file
  args = ${dir}/users
}
namespace inbox {
  inbox = yes
  mailbox Trash {
    special_use = \\Trash
    auto = create
  }
  mailbox Archive {
    auto = create
  }
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${imapPort}
  }
  inet_listener imaps {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = ${lmtpPort}
  }
  unix_listener lmtp {
    mode = 0600
  }
}
service stats {
  unix_listener stats-reader {
    mode = 0666
  }
  unix_listener stats-writer {
    mode = 0666
  }
}
`,
  );
  const proc: ChildProcess = spawn('dovecot', ['-F', '-c', conf], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PATH: `/usr/sbin:${process.env.PATH ?? ''}` },
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const log = (): string => {
    let l = '';
    try {
      l = readFileSync(path.join(dir, 'dovecot.log'), 'utf8');
    } catch {
      /* not yet written */
    }
    return out + l;
  };
  try {
    await Promise.all([waitForPort(imapPort, 10_000), waitForPort(lmtpPort, 10_000)]);
  } catch (err) {
    proc.kill('SIGKILL');
    throw new Error(`dovecot did not start: ${(err as Error).message}\n${log()}`);
  }
  const open = async (user: string): Promise<ImapFlow> => {
    const c = new ImapFlow({
      host: '127.0.0.1',
      port: imapPort,
      secure: false,
      doSTARTTLS: false,
      auth: { user: `${user}*admin`, pass: 'masterpw' },
      logger: false,
    });
    await c.connect();
    return c;
  };
  return {
    dir,
    imapPort,
    lmtpPort,
    masterUser: 'admin',
    masterPassword: 'masterpw',
    open,
    async messageIds(user) {
      const c = await open(user);
      const out: Record<string, string[]> = {};
      try {
        for (const box of await c.list()) {
          const lock = await c.getMailboxLock(box.path);
          try {
            const ids: string[] = [];
            if ((c.mailbox as { exists: number }).exists > 0)
              for await (const m of c.fetch('1:*', { envelope: true })) ids.push(m.envelope?.messageId ?? '');
            out[box.path] = ids.sort();
          } finally {
            lock.release();
          }
        }
      } finally {
        await c.logout();
      }
      return out;
    },
    log,
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (proc.exitCode === null) proc.kill('SIGKILL');
    },
  };
}
