// SMTP TLS Reporting (RFC 8460) as a sending MTA: the delivery queue reports the TLS outcome of every
// MX session here; it is counted per UTC day, policy domain, policy, MX host and result (one upsert, on
// the store's writer thread). Once a day the reports of past days go out to the addresses each domain
// publishes at `_smtp._tls.DOMAIN` (when outbound.tls.tlsrpt.enabled): mailto: as our own message in the
// spool (durable, retried, tracked like any mail), https: as a POST kept in the database until it
// succeeds or its retries are over. A (day, domain) marked done is never reported again, across restarts.
// The formats are tlsrpt.ts's.
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import tls, { rootCertificates } from 'node:tls';
import { gzipSync } from 'node:zlib';
import type { Resolver } from 'node:dns/promises';
import type { Config } from '../config/schema.ts';
import { parseDuration } from '../config/schema.ts';
import type { Store } from '../store/db.ts';
import type { Spool, SpoolEnvelope } from '../spool/spool.ts';
import {
  buildReport,
  buildReportMessage,
  httpsUrl,
  mailtoAddress,
  parseTlsrptRecord,
  reportId,
  utcDay,
  type ReportMeta,
  type SessionRow,
  type TlsrptReport,
  type TlsSessionOutcome,
} from './tlsrpt.ts';

const SCHEMA = `
create table if not exists tlsrpt_sessions (
  day text not null,
  domain text not null,
  policy_type text not null,
  policy_string text not null,
  mx_host text not null,
  result text not null,
  sending_ip text not null,
  receiving_mx text not null,
  receiving_ip text not null,
  reason text not null,
  count integer not null,
  primary key (day, domain, policy_type, policy_string, result, sending_ip, receiving_mx, receiving_ip, reason)
) without rowid;
create table if not exists tlsrpt_reports (
  day text not null,
  domain text not null,
  status text not null,
  detail text not null,
  at integer not null,
  primary key (day, domain)
) without rowid;
create table if not exists tlsrpt_uploads (
  id integer primary key,
  day text not null,
  domain text not null,
  url text not null,
  body blob not null,
  attempts integer not null default 0,
  next_at integer not null,
  status text not null,
  last_error text
);
create index if not exists tlsrpt_uploads_pending on tlsrpt_uploads(next_at) where status = 'pending';
`;

const UPSERT = `insert into tlsrpt_sessions(day, domain, policy_type, policy_string, mx_host, result, sending_ip,
  receiving_mx, receiving_ip, reason, count) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)
  on conflict(day, domain, policy_type, policy_string, result, sending_ip, receiving_mx, receiving_ip, reason)
  do update set count = count + 1`;

const DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const NO_SUCH_NAME = new Set(['ENOTFOUND', 'ENODATA', 'NXDOMAIN']);
/** reports prepared at once (a `_smtp._tls` lookup each), and uploads at once */
const PARALLEL = 8;
const MAX_REASON = 200;

export interface TlsReportDeps {
  config: Config;
  dataDir: string;
  store: Pick<Store, 'db' | 'run' | 'stmt' | 'committed' | 'getMeta' | 'setMeta'>;
  dns: Pick<Resolver, 'resolveTxt' | 'resolve4' | 'resolve6'>;
  spool: Pick<Spool, 'append'>;
  allocateMid: () => number;
  /** hands a report mail, durable in the spool, to the message flow */
  accept: (m: { file: string; bodyOffset: number; size: number; env: SpoolEnvelope; bytes: Buffer }) => void;
  log: (line: string) => void;
  now?: () => number;
}

/** What `breakwater tlsrpt show` and the API answer for one domain and day. */
export interface TlsReportView {
  domain: string;
  day: string;
  report: TlsrptReport | null;
  /** whether and how the report went out: sent, no-record (the domain publishes none), … */
  delivery: { status: string; detail: string; at: number } | null;
  uploads: Array<{ url: string; status: string; attempts: number; lastError: string | null }>;
}

export class TlsReports {
  private readonly deps: TlsReportDeps;
  private readonly ca: string[] | undefined;
  private today = '';
  private domainsToday = new Set<string>();
  private overflowLogged = false;
  private recordFailureLogged = false;
  private runTimer: NodeJS.Timeout | null = null;
  private uploadTimer: NodeJS.Timeout | null = null;
  private running: Promise<number> | null = null;
  private uploading: Promise<void> | null = null;
  private stopped = false;

  constructor(deps: TlsReportDeps) {
    this.deps = deps;
    deps.store.db.exec(SCHEMA);
    const caFile = deps.config.outbound.tls.caFile;
    this.ca = caFile ? [...rootCertificates, readFileSync(path.resolve(deps.dataDir, caFile), 'utf8')] : undefined;
  }

  private get settings(): Config['outbound']['tls']['tlsrpt'] {
    return this.deps.config.outbound.tls.tlsrpt;
  }

  private now(): number {
    return this.deps.now?.() ?? Date.now();
  }

  private meta(): ReportMeta {
    const { config } = this.deps;
    const t = this.settings;
    return {
      organization: t.organization ?? config.hostname,
      contact: t.contact ?? this.from(),
      submitter: t.submitter ?? config.hostname,
    };
  }

  private from(): string {
    return this.settings.from ?? `tlsrpt-noreply@${this.deps.config.hostname}`;
  }

  /**
   * Counts one MX session. Called on the delivery path: it only queues a write, and it never throws (a
   * record that cannot be made is logged once, the mail goes on).
   */
  record(s: TlsSessionOutcome): void {
    try {
      const domain = s.domain.toLowerCase().replace(/\.$/, '');
      if (!DOMAIN.test(domain)) return;
      const day = utcDay(this.now());
      if (day !== this.today) {
        this.today = day;
        this.domainsToday = new Set(
          (
            this.deps.store.stmt('select distinct domain from tlsrpt_sessions where day = ?').all(day) as Array<{
              domain: string;
            }>
          ).map((r) => r.domain),
        );
        this.overflowLogged = false;
      }
      if (!this.domainsToday.has(domain)) {
        if (this.domainsToday.size >= this.settings.maxDomains) {
          if (!this.overflowLogged)
            this.deps.log(
              `TLS reporting: ${this.settings.maxDomains} domains recorded today (outbound.tls.tlsrpt.maxDomains); sessions to further domains are not recorded until the next UTC day`,
            );
          this.overflowLogged = true;
          return;
        }
        this.domainsToday.add(domain);
      }
      this.deps.store.run(
        UPSERT,
        day,
        domain,
        s.policy.type,
        JSON.stringify(s.policy.strings),
        JSON.stringify(s.policy.mx),
        s.result,
        s.sendingIp ?? '',
        s.mxHost,
        s.receivingIp ?? '',
        (s.reason ?? '').replace(/[\r\n]+/g, ' ').slice(0, MAX_REASON),
      );
    } catch (err) {
      if (!this.recordFailureLogged)
        this.deps.log(`TLS reporting: a session was not recorded: ${(err as Error).message}`);
      this.recordFailureLogged = true;
    }
  }

  /** The recorded rows of a domain and day. */
  private rows(domain: string, day: string): SessionRow[] {
    const rows = this.deps.store
      .stmt(
        `select policy_type, policy_string, mx_host, result, sending_ip, receiving_mx, receiving_ip, reason, count
         from tlsrpt_sessions where day = ? and domain = ?`,
      )
      .all(day, domain) as Array<Record<string, string | number>>;
    return rows.map((r) => ({
      policyType: r.policy_type as SessionRow['policyType'],
      policyString: JSON.parse(String(r.policy_string)) as string[],
      mxHost: JSON.parse(String(r.mx_host)) as string[],
      result: r.result as SessionRow['result'],
      sendingIp: String(r.sending_ip),
      receivingMx: String(r.receiving_mx),
      receivingIp: String(r.receiving_ip),
      reason: String(r.reason),
      count: Number(r.count),
    }));
  }

  /** The report of a domain and day as it is (or would be) sent, and whether it went out. */
  async show(domain: string, day: string): Promise<TlsReportView> {
    await this.deps.store.committed();
    const d = domain.toLowerCase().replace(/\.$/, '');
    const sent = this.deps.store
      .stmt('select status, detail, at from tlsrpt_reports where day = ? and domain = ?')
      .get(day, d) as { status: string; detail: string; at: number } | undefined;
    const uploads = this.deps.store
      .stmt('select url, status, attempts, last_error from tlsrpt_uploads where day = ? and domain = ? order by id')
      .all(day, d) as Array<{ url: string; status: string; attempts: number; last_error: string | null }>;
    return {
      domain: d,
      day,
      report: buildReport(d, day, this.rows(d, day), this.meta()),
      delivery: sent ? { status: sent.status, detail: sent.detail, at: sent.at } : null,
      uploads: uploads.map((u) => ({ url: u.url, status: u.status, attempts: u.attempts, lastError: u.last_error })),
    };
  }

  /** The domains with sessions on a day, with their counts, most sessions first. */
  async domains(
    day: string,
    limit: number,
  ): Promise<Array<{ domain: string; successful: number; failed: number; delivery: string | null }>> {
    await this.deps.store.committed();
    return (
      this.deps.store
        .stmt(
          `select s.domain, sum(case when s.result = 'success' then s.count else 0 end) ok,
             sum(case when s.result = 'success' then 0 else s.count end) failed, r.status
           from tlsrpt_sessions s left join tlsrpt_reports r on r.day = s.day and r.domain = s.domain
           where s.day = ? group by s.domain order by ok + failed desc, s.domain limit ?`,
        )
        .all(day, limit) as Array<{ domain: string; ok: number; failed: number; status: string | null }>
    ).map((r) => ({ domain: r.domain, successful: r.ok, failed: r.failed, delivery: r.status }));
  }

  start(): void {
    const at = this.settings.sendAt;
    const last = Number(this.deps.store.getMeta('tlsrpt_run_at') ?? 0);
    const now = this.now();
    // A gateway that was down when the reports were due sends them soon after it starts; otherwise the
    // schedule goes on from the last round (a restart does not make an extra one).
    const missed = isTimeOfDay(at) ? last < previousTimeOfDay(at, now) : last + parseDuration(at) <= now;
    this.scheduleRun(Math.max(1000, missed ? 0 : nextRun(at, isTimeOfDay(at) ? now : last) - now));
    // uploads still pending from before the restart
    this.scheduleUploads(1000);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.runTimer) clearTimeout(this.runTimer);
    if (this.uploadTimer) clearTimeout(this.uploadTimer);
    // a round or an upload in progress gets a moment to finish what it is writing; a lookup or POST that
    // hangs is not waited for (an unmarked report is sent at the next start)
    await Promise.race([
      Promise.allSettled([this.running, this.uploading]),
      new Promise((r) => setTimeout(r, 2000).unref()),
    ]);
  }

  private scheduleRun(inMs: number): void {
    if (this.stopped) return;
    if (this.runTimer) clearTimeout(this.runTimer);
    this.runTimer = setTimeout(() => {
      void this.runNow()
        .catch((err: Error) => this.deps.log(`TLS reporting failed: ${err.message}`))
        .finally(() => this.scheduleRun(nextRun(this.settings.sendAt, this.now()) - this.now()));
    }, inMs);
    this.runTimer.unref();
  }

  /**
   * One round: old records are removed, and (when enabled) the reports of every past day not yet done go
   * out; a round already running is waited for, not doubled. Answers how many reports were sent.
   */
  runNow(): Promise<number> {
    this.running ??= this.round().finally(() => (this.running = null));
    return this.running;
  }

  private async round(): Promise<number> {
    const { store } = this.deps;
    const now = this.now();
    const oldest = utcDay(now - parseDuration(this.settings.retention));
    store.run('delete from tlsrpt_sessions where day < ?', oldest);
    store.run('delete from tlsrpt_reports where day < ?', oldest);
    store.run("delete from tlsrpt_uploads where day < ? and status <> 'pending'", oldest);
    store.setMeta('tlsrpt_run_at', String(now));
    if (!this.settings.enabled) return 0;
    await store.committed();
    const today = utcDay(now);
    let sent = 0;
    const days = (
      store
        .stmt('select distinct day from tlsrpt_sessions where day >= ? and day < ? order by day')
        .all(oldest, today) as Array<{ day: string }>
    ).map((r) => r.day);
    for (const day of days) {
      const todo = (
        store
          .stmt(
            `select distinct s.domain from tlsrpt_sessions s where s.day = ?
             and not exists (select 1 from tlsrpt_reports r where r.day = s.day and r.domain = s.domain)`,
          )
          .all(day) as Array<{ domain: string }>
      ).map((r) => r.domain);
      await inParallel(todo, PARALLEL, async (domain) => {
        if (this.stopped) return;
        try {
          if (await this.sendReport(domain, day)) sent++;
        } catch (err) {
          // not marked: tried again at the next round
          this.deps.log(`TLS report ${day} ${domain}: ${(err as Error).message}; tried again at the next round`);
        }
      });
    }
    await store.committed();
    this.scheduleUploads(0);
    return sent;
  }

  /** Sends the report of one domain and day to its `rua` URIs; false when the domain wants none. */
  private async sendReport(domain: string, day: string): Promise<boolean> {
    const { store } = this.deps;
    const found = await this.lookup(domain);
    if ('error' in found) {
      store.run(
        'insert or replace into tlsrpt_reports(day, domain, status, detail, at) values (?, ?, ?, ?, ?)',
        day,
        domain,
        'no-record',
        found.error,
        this.now(),
      );
      return false;
    }
    const meta = this.meta();
    const report = buildReport(domain, day, this.rows(domain, day), meta);
    if (!report) return false;
    const gzip = gzipSync(JSON.stringify(report));
    const id = reportId(day, domain, meta.submitter);
    const mails: number[] = [];
    for (const uri of found.rua) {
      const to = mailtoAddress(uri);
      if (!to) continue;
      const message = buildReportMessage({
        from: this.from(),
        to,
        domain,
        day,
        submitter: meta.submitter,
        reportId: id,
        gzip,
        now: this.now(),
      });
      mails.push(await this.inject(to, message));
    }
    // The uploads and the mark commit in one transaction: a restart neither loses nor repeats them.
    for (const uri of found.rua)
      if (httpsUrl(uri))
        store.run(
          "insert into tlsrpt_uploads(day, domain, url, body, next_at, status) values (?, ?, ?, ?, ?, 'pending')",
          day,
          domain,
          uri,
          gzip,
          this.now(),
        );
    store.run(
      'insert or replace into tlsrpt_reports(day, domain, status, detail, at) values (?, ?, ?, ?, ?)',
      day,
      domain,
      'sent',
      found.rua.join(', '),
      this.now(),
    );
    this.deps.log(
      `TLS report ${id} for ${found.rua.join(', ')}${mails.length ? ` (mail: MID ${mails.join(', ')})` : ''}`,
    );
    return true;
  }

  /** The domain's TLSRPT record (RFC 8460 §3); a DNS failure throws (the report is tried again later). */
  private async lookup(domain: string): Promise<{ rua: string[] } | { error: string }> {
    let records: string[][];
    try {
      records = await withTimeout(
        this.deps.dns.resolveTxt(`_smtp._tls.${domain}`),
        parseDuration(this.settings.timeout),
        `_smtp._tls.${domain} TXT`,
      );
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code && NO_SUCH_NAME.has(code)) return { error: 'no _smtp._tls record' };
      throw new Error(`_smtp._tls.${domain} TXT: ${(err as Error).message}`);
    }
    return parseTlsrptRecord(records);
  }

  private async inject(to: string, message: Buffer): Promise<number> {
    const mid = this.deps.allocateMid();
    const env: SpoolEnvelope = {
      mid,
      icid: 0,
      listener: '(internal)',
      direction: 'outgoing',
      sender: this.from(),
      recipients: [to],
      senderIp: '127.0.0.1',
      rdns: null,
      helo: null,
      tls: null,
      receivedAt: this.now(),
      generated: 'tlsrpt',
    };
    const loc = await this.deps.spool.append(env, message);
    this.deps.accept({ ...loc, env, bytes: message });
    return mid;
  }

  private scheduleUploads(inMs: number): void {
    if (this.stopped) return;
    if (this.uploadTimer) clearTimeout(this.uploadTimer);
    this.uploadTimer = setTimeout(() => {
      this.uploadTimer = null;
      this.uploading ??= this.uploadDue()
        .catch((err: Error) => this.deps.log(`TLS report uploads failed: ${err.message}`))
        .finally(() => {
          this.uploading = null;
          this.scheduleNextUpload();
        });
    }, inMs);
    this.uploadTimer.unref();
  }

  private scheduleNextUpload(): void {
    const next = this.deps.store.stmt("select min(next_at) at from tlsrpt_uploads where status = 'pending'").get() as {
      at: number | null;
    };
    if (next.at !== null) this.scheduleUploads(Math.max(0, next.at - this.now()));
  }

  /** POSTs the pending uploads that are due; a failure waits for the next of outbound.tls.tlsrpt.retries. */
  private async uploadDue(): Promise<void> {
    const { store } = this.deps;
    const retries = this.settings.retries.map(parseDuration);
    for (;;) {
      await store.committed();
      const due = store
        .stmt(
          "select id, day, domain, url, body, attempts from tlsrpt_uploads where status = 'pending' and next_at <= ? order by next_at limit 100",
        )
        .all(this.now()) as Array<{
        id: number;
        day: string;
        domain: string;
        url: string;
        body: Uint8Array;
        attempts: number;
      }>;
      if (!due.length || this.stopped) return;
      await inParallel(due, PARALLEL, async (u) => {
        const attempts = u.attempts + 1;
        try {
          await this.post(u.url, Buffer.from(u.body));
          store.run("update tlsrpt_uploads set status = 'sent', attempts = ? where id = ?", attempts, u.id);
          this.deps.log(`TLS report ${u.day} ${u.domain} posted to ${u.url}`);
        } catch (err) {
          const why = (err as Error).message.slice(0, 500);
          if (attempts > retries.length) {
            store.run(
              "update tlsrpt_uploads set status = 'failed', attempts = ?, last_error = ? where id = ?",
              attempts,
              why,
              u.id,
            );
            this.deps.log(`TLS report ${u.day} ${u.domain} to ${u.url} given up after ${attempts} attempts: ${why}`);
          } else {
            const wait = retries[attempts - 1];
            store.run(
              'update tlsrpt_uploads set attempts = ?, last_error = ?, next_at = ? where id = ?',
              attempts,
              why,
              this.now() + wait,
              u.id,
            );
            this.deps.log(
              `TLS report ${u.day} ${u.domain} to ${u.url} failed (attempt ${attempts}): ${why}; next attempt in ${Math.round(wait / 1000)} s`,
            );
          }
        }
      });
    }
  }

  /**
   * RFC 8460 §5.4: POST with Content-Type application/tlsrpt+gzip, over HTTPS with a verified certificate
   * (system roots plus outbound.tls.caFile); 2xx is success, redirects are not followed. The host is
   * looked up through the gateway's DNS servers.
   */
  private async post(uri: string, body: Buffer): Promise<void> {
    const url = httpsUrl(uri);
    if (!url) throw new Error('not an https: URL');
    const name = url.hostname.replace(/^\[|\]$/g, '');
    const timeoutMs = parseDuration(this.settings.timeout);
    let address = name;
    if (!net.isIP(name)) {
      const v4 = await withTimeout(this.deps.dns.resolve4(name), timeoutMs, `${name} A`).catch(() => [] as string[]);
      const v6 = v4.length
        ? []
        : await withTimeout(this.deps.dns.resolve6(name), timeoutMs, `${name} AAAA`).catch(() => [] as string[]);
      address = v4[0] ?? v6[0] ?? '';
      if (!address) throw new Error(`${name} has no address`);
    }
    await new Promise<void>((resolve, reject) => {
      const req = https.request(
        {
          host: address,
          port: url.port ? Number(url.port) : 443,
          path: `${url.pathname}${url.search}`,
          method: 'POST',
          ...(net.isIP(name) ? {} : { servername: name }),
          headers: {
            host: url.host,
            'content-type': 'application/tlsrpt+gzip',
            'content-length': body.length,
            'user-agent': 'Breakwater TLSRPT',
          },
          ca: this.ca,
          rejectUnauthorized: true,
          checkServerIdentity: (_host, cert) => tls.checkServerIdentity(name, cert),
          agent: false,
          timeout: timeoutMs,
        },
        (res) => {
          res.resume();
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve();
          else reject(new Error(`HTTP ${status}`));
        },
      );
      const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.on('close', () => clearTimeout(timer));
      req.end(body);
    });
  }
}

function isTimeOfDay(at: string): boolean {
  return /^\d\d:\d\d$/.test(at);
}

/** The latest occurrence of a UTC time of day at or before `now`. */
function previousTimeOfDay(at: string, now: number): number {
  const [h, m] = at.split(':').map(Number);
  const d = new Date(now);
  const t = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), h, m);
  return t <= now ? t : t - 86_400_000;
}

/** When the next round is due after `now`. */
function nextRun(at: string, now: number): number {
  return isTimeOfDay(at) ? previousTimeOfDay(at, now) + 86_400_000 : now + parseDuration(at);
}

async function inParallel<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
