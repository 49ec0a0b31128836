// SMTP TLS Reporting (RFC 8460) as a sending MTA: the delivery queue reports the TLS outcome of every
// MX session here; it is counted per UTC day, policy domain, policy, MX host and result (one upsert, on
// the store's writer thread). Once a day the reports of past days go out to the addresses each domain
// publishes at `_smtp._tls.DOMAIN` (when outbound.tls.tlsrpt.enabled): mailto: as our own message in the
// spool (durable, retried, tracked like any mail), https: as a POST kept in the database until it
// succeeds or its retries are over. A (day, domain) marked done is never reported again, across restarts.
// The formats are tlsrpt.ts's; the daily round, the done marks and the report mail are what all our
// reports share (reports/daily-reports.ts).
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import tls, { rootCertificates } from 'node:tls';
import { gzipSync } from 'node:zlib';
import type { Resolver } from 'node:dns/promises';
import type { Config } from '../config/schema.ts';
import { parseDuration } from '../config/schema.ts';
import {
  DailyReports,
  inParallel,
  mailReport,
  reportDomain,
  withTimeout,
  type ReportMailDeps,
  type ReportStore,
} from '../reports/daily-reports.ts';
import { mailtoAddress, reportId } from '../reports/report-mail.ts';
import { installationTag } from '../store/installation.ts';
import {
  buildReport,
  buildReportMessage,
  httpsUrl,
  parseTlsrptRecord,
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

const NO_SUCH_NAME = new Set(['ENOTFOUND', 'ENODATA', 'NXDOMAIN']);
/** reports prepared at once (a `_smtp._tls` lookup each), and uploads at once */
const PARALLEL = 8;
const MAX_REASON = 200;

export interface TlsReportDeps extends ReportMailDeps {
  config: Config;
  dataDir: string;
  store: ReportStore;
  dns: Pick<Resolver, 'resolveTxt' | 'resolve4' | 'resolve6'>;
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
  private readonly daily: DailyReports;
  private uploadTimer: NodeJS.Timeout | null = null;
  private uploading: Promise<void> | null = null;

  constructor(deps: TlsReportDeps) {
    this.deps = deps;
    deps.store.db.exec(SCHEMA);
    this.daily = new DailyReports({
      what: 'TLS report',
      section: 'outbound.tls.tlsrpt',
      store: deps.store,
      countsTable: 'tlsrpt_sessions',
      doneTable: 'tlsrpt_reports',
      metaKey: 'tlsrpt_run_at',
      settings: () => this.settings,
      parallel: PARALLEL,
      send: (domain, day) => this.sendReport(domain, day),
      prune: (oldest) => deps.store.run("delete from tlsrpt_uploads where day < ? and status <> 'pending'", oldest),
      afterRound: () => this.scheduleUploads(0),
      log: deps.log,
      now: deps.now,
    });
    const caFile = deps.config.outbound.tls.caFile;
    this.ca = caFile ? [...rootCertificates, readFileSync(path.resolve(deps.dataDir, caFile), 'utf8')] : undefined;
  }

  private get settings(): Config['outbound']['tls']['tlsrpt'] {
    return this.deps.config.outbound.tls.tlsrpt;
  }

  private now(): number {
    return this.daily.now();
  }

  private get stopped(): boolean {
    return this.daily.stopped;
  }

  private meta(): ReportMeta {
    const { config } = this.deps;
    const t = this.settings;
    return {
      organization: t.organization ?? config.hostname,
      contact: t.contact ?? this.from(),
      submitter: t.submitter ?? config.hostname,
      instance: installationTag(this.deps.store),
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
      const domain = reportDomain(s.domain);
      const day = domain && this.daily.admit(domain);
      if (!day) return;
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
      this.daily.recordFailed(err as Error);
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
    const uploads = this.deps.store
      .stmt('select url, status, attempts, last_error from tlsrpt_uploads where day = ? and domain = ? order by id')
      .all(day, d) as Array<{ url: string; status: string; attempts: number; last_error: string | null }>;
    return {
      domain: d,
      day,
      report: buildReport(d, day, this.rows(d, day), this.meta()),
      delivery: this.daily.delivery(day, d),
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
    this.daily.start();
    // uploads still pending from before the restart
    this.scheduleUploads(1000);
  }

  async stop(): Promise<void> {
    if (this.uploadTimer) clearTimeout(this.uploadTimer);
    // an upload in progress gets a moment to finish what it is writing; a POST that hangs is not waited for
    await this.daily.stop([this.uploading]);
  }

  /**
   * One round: old records are removed, and (when enabled) the reports of every past day not yet done go
   * out; a round already running is waited for, not doubled. Answers how many reports were sent.
   */
  runNow(): Promise<number> {
    return this.daily.runNow();
  }

  /** Sends the report of one domain and day to its `rua` URIs; false when the domain wants none. */
  private async sendReport(domain: string, day: string): Promise<boolean> {
    const { store } = this.deps;
    const found = await this.lookup(domain);
    if ('error' in found) {
      this.daily.markDone(day, domain, 'no-record', found.error);
      return false;
    }
    const meta = this.meta();
    const report = buildReport(domain, day, this.rows(domain, day), meta);
    if (!report) return false;
    const gzip = gzipSync(JSON.stringify(report));
    const id = reportId(day, domain, meta.submitter, meta.instance);
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
      mails.push(await mailReport(this.deps, { from: this.from(), to, message, generated: 'tlsrpt', now: this.now() }));
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
    this.daily.markDone(day, domain, 'sent', found.rua.join(', '));
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
