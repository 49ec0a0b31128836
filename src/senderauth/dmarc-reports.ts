// DMARC aggregate reports (RFC 7489 §7.2) as a receiver: every incoming message whose Author Domain (or
// its Organizational Domain) publishes a DMARC record is counted per UTC day, policy domain and row (source
// IP, identifiers, authentication results, what was done) from its `auth.checked` event on the bus — one
// upsert on the store's writer thread, nothing in the message flow. Once a day (when
// senderAuth.dmarcReports.enabled) the report of each past day goes to the domain's mailto: rua= addresses
// as our own message in the spool; an address outside the domain gets it only when its domain authorizes
// that (§7.1). A (day, domain) marked done is never reported again, across restarts. The formats are
// dmarc-aggregate.ts's; the daily round, the done marks and the report mail are reports/daily-reports.ts's.
import { gzipSync } from 'node:zlib';
import type { Config } from '../config/schema.ts';
import {
  DailyReports,
  mailReport,
  reportDomain,
  type ReportMailDeps,
  type ReportStore,
} from '../reports/daily-reports.ts';
import { reportId } from '../reports/report-mail.ts';
import { installationTag } from '../store/installation.ts';
import type { BusEvent } from '../tracking/bus.ts';
import type { TrackingEvent } from '../tracking/events.ts';
import {
  aggregateXml,
  authorizationName,
  authorizes,
  buildAggregate,
  buildAggregateMessage,
  dkimResult,
  rowValue,
  ruaDestinations,
  spfResult,
  type AggregateMeta,
  type DmarcAggregate,
  type DmarcPublished,
  type DmarcRow,
} from './dmarc-aggregate.ts';

const SCHEMA = `
create table if not exists dmarc_rows (
  day text not null,
  domain text not null,
  row text not null,
  pass integer not null,
  count integer not null,
  primary key (day, domain, row)
) without rowid;
create table if not exists dmarc_policies (
  day text not null,
  domain text not null,
  published text not null,
  primary key (day, domain)
) without rowid;
`;

const UPSERT = `insert into dmarc_rows(day, domain, row, pass, count) values (?, ?, ?, ?, 1)
  on conflict(day, domain, row) do update set count = count + 1`;

/** reports prepared at once (up to two authorization lookups each) */
const PARALLEL = 8;
/** split messages remembered as counted (a message is counted once, by the first of its copies scanned) */
const SPLITS_REMEMBERED = 10_000;

export interface DmarcReportDeps extends ReportMailDeps {
  config: Config;
  store: ReportStore;
  /** TXT records of a name, each joined; [] when there are none (a DNS failure throws) */
  dns: { resolveTxt(name: string): Promise<string[]> };
  log: (line: string) => void;
  now?: () => number;
}

/** What `breakwater dmarc report show` and the API answer for one domain and day. */
export interface DmarcReportView {
  domain: string;
  day: string;
  report: DmarcAggregate | null;
  /** the rua= URIs the domain published */
  rua: string[];
  /** whether and how the report went out: sent, no-rua, refused */
  delivery: { status: string; detail: string; at: number } | null;
}

export class DmarcReports {
  private readonly deps: DmarcReportDeps;
  private readonly daily: DailyReports;
  /** the published policy last written per "day domain", so that it is written when it changes only */
  private readonly published = new Map<string, string>();
  private readonly countedSplits = new Set<number>();

  constructor(deps: DmarcReportDeps) {
    this.deps = deps;
    deps.store.db.exec(SCHEMA);
    this.daily = new DailyReports({
      what: 'DMARC report',
      section: 'senderAuth.dmarcReports',
      store: deps.store,
      countsTable: 'dmarc_rows',
      doneTable: 'dmarc_reports',
      metaKey: 'dmarc_reports_run_at',
      settings: () => this.settings,
      parallel: PARALLEL,
      send: (domain, day) => this.sendReport(domain, day),
      prune: (oldest) => deps.store.run('delete from dmarc_policies where day < ?', oldest),
      log: deps.log,
      now: deps.now,
    });
  }

  private get settings(): Config['senderAuth']['dmarcReports'] {
    return this.deps.config.senderAuth.dmarcReports;
  }

  private meta(): AggregateMeta {
    const { hostname } = this.deps.config;
    const s = this.settings;
    return {
      orgName: s.orgName ?? hostname,
      email: this.from(),
      submitter: s.submitter ?? hostname,
      instance: installationTag(this.deps.store),
    };
  }

  private from(): string {
    return this.settings.email ?? `dmarc-noreply@${this.deps.config.hostname}`;
  }

  /** The bus subscriber: counts the messages `auth.checked` carries report facts for. */
  onEvent(e: BusEvent): void {
    if (e.event.type === 'auth.checked' && e.event.detail) this.record(e.event);
  }

  /** Counts one message; it only queues a write and never throws (a failure is logged once). */
  record(e: Extract<TrackingEvent, { type: 'auth.checked' }>): void {
    const f = e.detail;
    if (!f || (e.dmarc !== 'pass' && e.dmarc !== 'fail')) return;
    try {
      if (f.splitFrom !== null) {
        if (this.countedSplits.has(f.splitFrom)) return;
        this.countedSplits.add(f.splitFrom);
        if (this.countedSplits.size > SPLITS_REMEMBERED)
          this.countedSplits.delete(this.countedSplits.values().next().value!);
      }
      const domain = reportDomain(f.published.domain);
      const day = domain && this.daily.admit(domain);
      if (!day) return;
      const row: DmarcRow = {
        sourceIp: rowValue(f.sourceIp),
        headerFrom: rowValue(e.dmarcDomain?.toLowerCase()),
        envelopeFrom: rowValue(f.envelopeFrom),
        dkim: e.dkim.map((d) => ({
          domain: rowValue(d.domain?.toLowerCase()),
          selector: rowValue(d.selector),
          result: dkimResult(d.result),
        })),
        spf: {
          domain: rowValue(e.spfDomain?.toLowerCase()),
          scope: f.envelopeFrom ? 'mfrom' : 'helo',
          result: spfResult(e.spf),
        },
        dkimAligned: f.dkimAligned,
        spfAligned: f.spfAligned,
        disposition: f.disposition,
        reasons: f.reasons.map((r) => ({ type: r.type, comment: r.comment && rowValue(r.comment) })),
      };
      const { store } = this.deps;
      store.run(UPSERT, day, domain, JSON.stringify(row), f.dkimAligned || f.spfAligned ? 1 : 0);
      const key = `${day} ${domain}`;
      const published = JSON.stringify(f.published);
      if (this.published.get(key) !== published) {
        if (!this.published.has(key) && this.published.size >= this.settings.maxDomains * 2) this.published.clear();
        this.published.set(key, published);
        store.run(
          'insert or replace into dmarc_policies(day, domain, published) values (?, ?, ?)',
          day,
          domain,
          published,
        );
      }
    } catch (err) {
      this.daily.recordFailed(err as Error);
    }
  }

  /** The counted rows and the published policy of a domain and day (after store.committed()). */
  private counted(
    domain: string,
    day: string,
  ): { published: DmarcPublished | null; rows: Array<{ row: DmarcRow; count: number }> } {
    const { store } = this.deps;
    const p = store.stmt('select published from dmarc_policies where day = ? and domain = ?').get(day, domain) as
      { published: string } | undefined;
    const rows = store
      .stmt('select row, count from dmarc_rows where day = ? and domain = ?')
      .all(day, domain) as Array<{
      row: string;
      count: number;
    }>;
    return {
      published: p ? (JSON.parse(p.published) as DmarcPublished) : null,
      rows: rows.map((r) => ({ row: JSON.parse(r.row) as DmarcRow, count: r.count })),
    };
  }

  private aggregate(domain: string, day: string): { report: DmarcAggregate | null; published: DmarcPublished | null } {
    const { published, rows } = this.counted(domain, day);
    return { report: published && buildAggregate(domain, day, published, rows, this.meta()), published };
  }

  /** The report of a domain and day as it is (or would be) sent, and whether it went out. */
  async show(domain: string, day: string): Promise<DmarcReportView> {
    await this.deps.store.committed();
    const d = domain.toLowerCase().replace(/\.$/, '');
    const { report, published } = this.aggregate(d, day);
    return { domain: d, day, report, rua: published?.rua ?? [], delivery: this.daily.delivery(day, d) };
  }

  /** The policy domains with mail counted on a day: messages, those failing DMARC, most first. */
  async domains(
    day: string,
    limit: number,
  ): Promise<Array<{ domain: string; messages: number; failed: number; delivery: string | null }>> {
    await this.deps.store.committed();
    return (
      this.deps.store
        .stmt(
          `select c.domain, sum(c.count) messages, sum(case when c.pass then 0 else c.count end) failed, r.status
           from dmarc_rows c left join dmarc_reports r on r.day = c.day and r.domain = c.domain
           where c.day = ? group by c.domain order by messages desc, c.domain limit ?`,
        )
        .all(day, limit) as Array<{ domain: string; messages: number; failed: number; status: string | null }>
    ).map((r) => ({ domain: r.domain, messages: r.messages, failed: r.failed, delivery: r.status }));
  }

  start(): void {
    this.daily.start();
  }

  stop(): Promise<void> {
    return this.daily.stop();
  }

  /** One round now (reports of past days not yet done); answers how many reports went out. */
  runNow(): Promise<number> {
    return this.daily.runNow();
  }

  /**
   * Mails the report of one domain and day to its rua= destinations. The authorization lookups come
   * first: a DNS failure throws before anything is spooled, and the round tries the report again later.
   */
  private async sendReport(domain: string, day: string): Promise<boolean> {
    const { report, published } = this.aggregate(domain, day);
    const destinations = ruaDestinations(published?.rua ?? []);
    if (!report || !published || !destinations.length) {
      this.daily.markDone(day, domain, 'no-rua', `no mailto: URI in rua=${published?.rua.join(',') ?? ''}`);
      return false;
    }
    const outcomes: string[] = [];
    const allowed: typeof destinations = [];
    for (const d of destinations) {
      const name = authorizationName(domain, published.orgDomain, d.address);
      if (name && !authorizes(await this.deps.dns.resolveTxt(name))) {
        outcomes.push(`${d.address}: not authorized (no v=DMARC1 record at ${name})`);
        continue;
      }
      allowed.push(d);
    }
    const meta = this.meta();
    const id = reportId(day, domain, meta.submitter, meta.instance);
    const gzip = gzipSync(aggregateXml(report));
    const mails: number[] = [];
    for (const d of allowed) {
      const message = buildAggregateMessage({
        from: this.from(),
        to: d.address,
        domain,
        day,
        submitter: meta.submitter,
        reportId: id,
        gzip,
        now: this.daily.now(),
      });
      if (d.maxBytes !== null && message.length > d.maxBytes) {
        outcomes.push(`${d.address}: the report (${message.length} bytes) exceeds its limit of ${d.maxBytes}`);
        continue;
      }
      mails.push(
        await mailReport(this.deps, {
          from: this.from(),
          to: d.address,
          message,
          generated: 'dmarc',
          now: this.daily.now(),
        }),
      );
      outcomes.push(`${d.address}: MID ${mails[mails.length - 1]}`);
    }
    this.daily.markDone(day, domain, mails.length ? 'sent' : 'refused', outcomes.join('; '));
    this.deps.log(`DMARC report ${id}: ${outcomes.join('; ')}`);
    return mails.length > 0;
  }
}
