// A real rspamd (Debian's) for tests and benchmarks: run in the foreground with a config of its own in a
// temp dir (no system service). It uses the stock rules from /etc/rspamd with every module that would
// query the internet or need redis turned off (RBLs, fuzzy, DCC, SPF/DKIM/DMARC lookups, reputation,
// greylisting, Bayes, map downloads…) and a local Lua rule file that scores markers deterministically:
// - a body with RSPAMD_MARK.spam gets BW_TEST_SPAM (7 points: "add header", threshold 6);
// - a body with RSPAMD_MARK.reject gets BW_TEST_REJECT (50 points: "reject", threshold 15);
// - anything else is ham ("no action").
// rspamd's main process forks its workers; it is started in a process group of its own, so pause()
// (SIGSTOP to the group) makes it accept connections and answer nothing, and stop() ends them all.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { binary, freePort, hasBinary, tempDir } from './peers.ts';

export const RSPAMD_MARK = {
  spam: 'BW-RSPAMD-TEST-SPAM',
  reject: 'BW-RSPAMD-TEST-REJECT',
} as const;

export function hasRspamd(): boolean {
  return hasBinary('rspamd') && existsSync('/etc/rspamd/common.conf');
}

export interface TestRspamd {
  port: number;
  /** http://127.0.0.1:<port> */
  url: string;
  dir: string;
  readonly pid: number | undefined;
  /** SIGTERM to the group, waits for the exit */
  stop(): Promise<void>;
  /** Starts it again with the same configuration and port; waits until /ping answers. */
  restart(): Promise<void>;
  /** SIGSTOP / SIGCONT to every rspamd process: connections are accepted (the kernel does) and never answered */
  pause(): void;
  resume(): void;
  log(): string;
}

/** Modules that query the internet (DNS lists, hash services, lookups), need redis, or download maps. */
const DISABLED_MODULES = [
  'antivirus',
  'arc',
  'asn',
  'bimi',
  'chartable',
  'clickhouse',
  'dcc',
  'dkim',
  'dkim_signing',
  'dmarc',
  'elastic',
  'emails',
  'external_relay',
  'external_services',
  'fuzzy_check',
  'greylist',
  'hfilter',
  'history_redis',
  'metadata_exporter',
  'metric_exporter',
  'mime_types',
  'multimap',
  'mx_check',
  'neural',
  'p0f',
  'phishing',
  'ratelimit',
  'rbl',
  'replies',
  'reputation',
  'rspamd_update',
  'spamassassin',
  'spamtrap',
  'spf',
  'surbl',
  'trie',
  'url_redirector',
  'whitelist',
];

const LUA_RULES = `-- Breakwater tests: deterministic local rules (no network).
local function marker(text)
  return function(task)
    local body = task:get_rawbody()
    if body and tostring(body):find(text, 1, true) then return true end
    return false
  end
end
rspamd_config.BW_TEST_SPAM = {
  callback = marker('${RSPAMD_MARK.spam}'),
  score = 7.0,
  description = 'Breakwater test: spam marker',
  group = 'breakwater',
}
rspamd_config.BW_TEST_REJECT = {
  callback = marker('${RSPAMD_MARK.reject}'),
  score = 50.0,
  description = 'Breakwater test: reject marker',
  group = 'breakwater',
}
`;

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of running) if (p.pid) killGroup(p.pid, 'SIGKILL');
});

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/** GET /ping; resolves true on "pong" within timeoutMs. */
export function rspamdPing(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/ping', timeout: timeoutMs, agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(body.trim() === 'pong'));
      res.on('error', () => resolve(false));
    });
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
    req.on('error', () => resolve(false));
  });
}

export async function startRspamd(opts: { workers?: number } = {}): Promise<TestRspamd> {
  const bin = binary('rspamd');
  const dir = tempDir('bw-rspamd-');
  const localD = path.join(dir, 'local.d');
  const db = path.join(dir, 'db');
  mkdirSync(localD);
  mkdirSync(db);
  const port = await freePort();
  writeFileSync(
    path.join(dir, 'rspamd.conf'),
    [
      '.include "$CONFDIR/common.conf"',
      'options {',
      '  pidfile = "$RUNDIR/rspamd.pid";',
      '  .include "$CONFDIR/options.inc"',
      '  .include(try=true; priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/options.inc"',
      '}',
      'logging {',
      '  type = "file";',
      '  filename = "$LOGDIR/rspamd.log";',
      '  level = "notice";',
      '}',
      'worker "normal" {',
      `  bind_socket = "127.0.0.1:${port}";`,
      '  .include "$CONFDIR/worker-normal.inc"',
      `  count = ${opts.workers ?? 1};`,
      '}',
      '',
    ].join('\n'),
  );
  // No DNS server that answers (every lookup fails at once), no hyperscan compilation, no Bayes (it
  // needs redis), and a short public-suffix list: compiling the full one takes rspamd 20–40 s at start.
  const tld = path.join(dir, 'effective_tld_names.dat');
  writeFileSync(tld, ['com', 'net', 'org', 'de', 'uk', 'co.uk', 'io', 'info', 'test', 'example', ''].join('\n'));
  writeFileSync(
    path.join(localD, 'options.inc'),
    [
      'dns { nameserver = ["127.0.0.1:9"]; timeout = 100ms; retransmits = 1; }',
      'disable_hyperscan = true;',
      `url_tld = "${tld}";`,
      '',
    ].join('\n'),
  );
  writeFileSync(path.join(localD, 'classifier-bayes.conf'), 'enabled = false;\n');
  // Settings-ID corpus_replay (scripts/detection-rspamd.ts): archived mail is old by now, so the symbols
  // that only say "sent long ago" are off for it
  writeFileSync(
    path.join(localD, 'settings.conf'),
    'corpus_replay { id = "corpus_replay"; apply { symbols_disabled = ["DATE_IN_PAST"]; } }\n',
  );
  for (const m of DISABLED_MODULES) writeFileSync(path.join(localD, `${m}.conf`), 'enabled = false;\n');
  writeFileSync(path.join(dir, 'rspamd.local.lua'), LUA_RULES);
  const logFile = path.join(dir, 'rspamd.log');
  const args = [
    '-f',
    '-c',
    path.join(dir, 'rspamd.conf'),
    `--var=LOCAL_CONFDIR=${dir}`,
    `--var=DBDIR=${db}`,
    `--var=RUNDIR=${dir}`,
    `--var=LOGDIR=${dir}`,
    // as root rspamd wants a user to drop to; the tests' files are root's
    ...(process.getuid?.() === 0 ? ['-i'] : []),
  ];

  let proc: ChildProcess | null = null;
  let output = '';
  const log = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');

  async function launch(): Promise<void> {
    output = '';
    const p = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    proc = p;
    running.add(p);
    const keep = (d: Buffer) => {
      if (output.length < 20_000) output += d;
    };
    p.stdout!.on('data', keep);
    p.stderr!.on('data', keep);
    p.once('exit', () => running.delete(p));
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (p.exitCode !== null || p.signalCode)
        throw new Error(`rspamd exited (${p.exitCode ?? p.signalCode}): ${output}\n${log().slice(-4000)}`);
      if (await rspamdPing(port, 500)) return;
      if (Date.now() > deadline) {
        killGroup(p.pid!, 'SIGKILL');
        throw new Error(`rspamd did not answer /ping: ${output}\n${log().slice(-4000)}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  function stopProc(): Promise<void> {
    const p = proc;
    if (!p || p.exitCode !== null || p.signalCode) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => killGroup(p.pid!, 'SIGKILL'), 5000);
      p.once('exit', () => {
        clearTimeout(t);
        // the workers leave with the main process; make sure none is left behind
        setTimeout(() => {
          killGroup(p.pid!, 'SIGKILL');
          resolve();
        }, 100);
      });
      killGroup(p.pid!, 'SIGCONT');
      killGroup(p.pid!, 'SIGTERM');
    });
  }

  await launch();
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    dir,
    get pid() {
      return proc?.pid;
    },
    stop: stopProc,
    async restart() {
      await stopProc();
      await launch();
    },
    pause() {
      if (proc?.pid) killGroup(proc.pid, 'SIGSTOP');
    },
    resume() {
      if (proc?.pid) killGroup(proc.pid, 'SIGCONT');
    },
    log,
  };
}
