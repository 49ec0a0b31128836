// What the daily reports the gateway sends to other domains share, the service side: counts recorded per
// UTC day and domain (at most maxDomains a day, a failure to record logged once and never thrown on the
// mail path), a round once a day at `sendAt` (a gateway that was down then makes it up when it starts)
// that prunes old counts and sends the reports of past days not yet done, each (day, domain) marked done
// in the database with how it went — in the same write batch as what sending it wrote, so that a restart
// neither repeats nor loses one — and the report mail, a message of ours in the spool (durable, retried,
// tracked like any mail). SMTP TLS reports (delivery/tls-reports.ts) and DMARC aggregate reports
// (senderauth/dmarc-reports.ts) run on it.
import { parseDuration } from '../config/schema.ts';
import type { Spool, SpoolEnvelope } from '../spool/spool.ts';
import type { Store } from '../store/db.ts';
import { utcDay } from './report-mail.ts';

export type ReportStore = Pick<Store, 'db' | 'run' | 'stmt' | 'committed' | 'getMeta' | 'setMeta'>;

/** How a report mail gets into the spool and the message flow (the gateway's own MIDs and acceptance). */
export interface ReportMailDeps {
  spool: Pick<Spool, 'append'>;
  allocateMid: () => number;
  /** hands a report mail, durable in the spool, to the message flow */
  accept: (m: { file: string; bodyOffset: number; size: number; env: SpoolEnvelope; bytes: Buffer }) => void;
}

export interface DailyReportSettings {
  enabled: boolean;
  /** a UTC time of day ("01:00") or a duration ("1h") */
  sendAt: string;
  retention: string;
  maxDomains: number;
}

export interface DailyReportsOptions {
  /** what the log calls one report: "TLS report", "DMARC report" */
  what: string;
  /** the config section, for log lines that name a setting */
  section: string;
  store: ReportStore;
  /** the table of counts, with `day` and `domain` columns */
  countsTable: string;
  /** the table marking (day, domain) done; created here */
  doneTable: string;
  /** store meta key of the last round's time */
  metaKey: string;
  settings: () => DailyReportSettings;
  /** reports prepared at once */
  parallel: number;
  /**
   * Sends the report of one domain and day and marks it (markDone); false when none went out. A throw
   * leaves it unmarked: tried again at the next round.
   */
  send: (domain: string, day: string) => Promise<boolean>;
  /** what else is removed with the counts older than `oldest` */
  prune?: (oldest: string) => void;
  /** after a round has sent its reports */
  afterRound?: () => void;
  log: (line: string) => void;
  now?: () => number;
}

/** How the report of a (day, domain) went: sent (to the URIs in detail), or why not. */
export interface ReportDelivery {
  status: string;
  detail: string;
  at: number;
}

export class DailyReports {
  private readonly o: DailyReportsOptions;
  private today = '';
  private domainsToday = new Set<string>();
  private overflowLogged = false;
  private recordFailureLogged = false;
  private runTimer: NodeJS.Timeout | null = null;
  private running: Promise<number> | null = null;
  private halted = false;

  constructor(o: DailyReportsOptions) {
    this.o = o;
    o.store.db.exec(`create table if not exists ${o.doneTable} (
      day text not null,
      domain text not null,
      status text not null,
      detail text not null,
      at integer not null,
      primary key (day, domain)
    ) without rowid`);
  }

  now(): number {
    return this.o.now?.() ?? Date.now();
  }

  get stopped(): boolean {
    return this.halted;
  }

  /**
   * The day a count of `domain` goes to now, or null when it is not counted: maxDomains domains have
   * counts today already (logged once a day).
   */
  admit(domain: string): string | null {
    const day = utcDay(this.now());
    const { store, countsTable, section } = this.o;
    if (day !== this.today) {
      this.today = day;
      this.domainsToday = new Set(
        (
          store.stmt(`select distinct domain from ${countsTable} where day = ?`).all(day) as Array<{ domain: string }>
        ).map((r) => r.domain),
      );
      this.overflowLogged = false;
    }
    if (this.domainsToday.has(domain)) return day;
    const max = this.o.settings().maxDomains;
    if (this.domainsToday.size >= max) {
      if (!this.overflowLogged)
        this.o.log(
          `${this.o.what}s: ${max} domains recorded today (${section}.maxDomains); further domains are not recorded until the next UTC day`,
        );
      this.overflowLogged = true;
      return null;
    }
    this.domainsToday.add(domain);
    return day;
  }

  /** A count that could not be made: logged once (the mail goes on). */
  recordFailed(err: Error): void {
    if (!this.recordFailureLogged) this.o.log(`${this.o.what}s: a count was not recorded: ${err.message}`);
    this.recordFailureLogged = true;
  }

  markDone(day: string, domain: string, status: string, detail: string): void {
    this.o.store.run(
      `insert or replace into ${this.o.doneTable}(day, domain, status, detail, at) values (?, ?, ?, ?, ?)`,
      day,
      domain,
      status,
      detail,
      this.now(),
    );
  }

  /** How the report of a day and domain went; null: not sent (yet). Call after store.committed(). */
  delivery(day: string, domain: string): ReportDelivery | null {
    const r = this.o.store
      .stmt(`select status, detail, at from ${this.o.doneTable} where day = ? and domain = ?`)
      .get(day, domain) as ReportDelivery | undefined;
    return r ? { status: r.status, detail: r.detail, at: r.at } : null;
  }

  start(): void {
    const at = this.o.settings().sendAt;
    const last = Number(this.o.store.getMeta(this.o.metaKey) ?? 0);
    const now = this.now();
    // A gateway that was down when the reports were due sends them soon after it starts; otherwise the
    // schedule goes on from the last round (a restart does not make an extra one).
    const missed = isTimeOfDay(at) ? last < previousTimeOfDay(at, now) : last + parseDuration(at) <= now;
    this.scheduleRun(Math.max(1000, missed ? 0 : nextRun(at, isTimeOfDay(at) ? now : last) - now));
  }

  /**
   * No further round; one in progress (and `alsoWaitFor`) gets a moment to finish what it is writing. A
   * lookup that hangs is not waited for (an unmarked report is sent at the next start).
   */
  async stop(alsoWaitFor: Array<Promise<unknown> | null> = []): Promise<void> {
    this.halted = true;
    if (this.runTimer) clearTimeout(this.runTimer);
    await Promise.race([
      Promise.allSettled([this.running, ...alsoWaitFor]),
      new Promise((r) => setTimeout(r, 2000).unref()),
    ]);
  }

  private scheduleRun(inMs: number): void {
    if (this.halted) return;
    if (this.runTimer) clearTimeout(this.runTimer);
    this.runTimer = setTimeout(() => {
      void this.runNow()
        .catch((err: Error) => this.o.log(`${this.o.what}s failed: ${err.message}`))
        .finally(() => this.scheduleRun(nextRun(this.o.settings().sendAt, this.now()) - this.now()));
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
    const { store, countsTable, doneTable } = this.o;
    const settings = this.o.settings();
    const now = this.now();
    const oldest = utcDay(now - parseDuration(settings.retention));
    store.run(`delete from ${countsTable} where day < ?`, oldest);
    store.run(`delete from ${doneTable} where day < ?`, oldest);
    this.o.prune?.(oldest);
    store.setMeta(this.o.metaKey, String(now));
    if (!settings.enabled) return 0;
    await store.committed();
    let sent = 0;
    const days = (
      store
        .stmt(`select distinct day from ${countsTable} where day >= ? and day < ? order by day`)
        .all(oldest, utcDay(now)) as Array<{ day: string }>
    ).map((r) => r.day);
    for (const day of days) {
      const todo = (
        store
          .stmt(
            `select distinct c.domain from ${countsTable} c where c.day = ?
             and not exists (select 1 from ${doneTable} d where d.day = c.day and d.domain = c.domain)`,
          )
          .all(day) as Array<{ domain: string }>
      ).map((r) => r.domain);
      await inParallel(todo, this.o.parallel, async (domain) => {
        if (this.halted) return;
        try {
          if (await this.o.send(domain, day)) sent++;
        } catch (err) {
          // not marked: tried again at the next round
          this.o.log(`${this.o.what} ${day} ${domain}: ${(err as Error).message}; tried again at the next round`);
        }
      });
    }
    await store.committed();
    this.o.afterRound?.();
    return sent;
  }
}

/** Spools a report mail as the gateway's own message and hands it to the message flow; answers its MID. */
export async function mailReport(
  deps: ReportMailDeps,
  m: { from: string; to: string; message: Buffer; generated: NonNullable<SpoolEnvelope['generated']>; now: number },
): Promise<number> {
  const mid = deps.allocateMid();
  const env: SpoolEnvelope = {
    mid,
    icid: 0,
    listener: '(internal)',
    direction: 'outgoing',
    sender: m.from,
    recipients: [m.to],
    senderIp: '127.0.0.1',
    rdns: null,
    helo: null,
    tls: null,
    receivedAt: m.now,
    generated: m.generated,
  };
  const loc = await deps.spool.append(env, m.message);
  deps.accept({ ...loc, env, bytes: m.message });
  return mid;
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

export async function inParallel<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** A domain name as reports key it: lower case, no trailing dot; null when it is not one. */
export function reportDomain(name: string): string | null {
  const d = name.toLowerCase().replace(/\.$/, '');
  return /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(d) ? d : null;
}
