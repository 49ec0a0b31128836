// The delivery queue (DESIGN §3.6): per-route destinations with a concurrency limit, reused and
// pipelined downstream connections, per-recipient results, retries on the schedule, and bounces.
import { createReadStream, promises as fsp } from 'node:fs';
import { promises as dns } from 'node:dns';
import path from 'node:path';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { Config } from '../config/schema.ts';
import { parseDuration } from '../config/schema.ts';
import type { EventBus } from '../tracking/bus.ts';
import { parseTarget, routeFor, type Route, type RouteTarget } from './routes.ts';
import { domainOf } from '../smtp/address.ts';
import { fsyncDirSync } from '../spool/spool.ts';
import { installFastDataStream } from './data-stream.ts';

installFastDataStream();

export interface DeliveryRecipient {
  rid: number;
  address: string;
  /** attempts already made for this recipient */
  attempts: number;
}

export interface DeliveryJob {
  mid: number;
  file: string;
  bodyOffset: number;
  /** message bytes when in memory; otherwise read from the spool file */
  bytes: Buffer | null;
  size: number;
  sender: string;
  receivedAt: number;
  recipients: DeliveryRecipient[];
  route: Route;
  /** a route target that replaces the recipient's route (Outbreak Filters' alternate mail host) */
  routeOverride?: string;
}

export type RecipientOutcome = 'delivered' | 'deferred' | 'bounced';

export interface RecipientResult {
  rid: number;
  address: string;
  outcome: RecipientOutcome;
  reply: string;
  target: string;
}

export interface DeliveryHooks {
  /** called once a recipient reached a final outcome (delivered or bounced) */
  onFinal(job: DeliveryJob, results: RecipientResult[]): void;
  /** called when recipients wait for a retry; their job no longer holds the message in memory */
  onDeferred(job: DeliveryJob): void;
}

interface Conn {
  smtp: SMTPConnection;
  target: string;
  sent: number;
  idleTimer: NodeJS.Timeout | null;
  broken: boolean;
}

interface Destination {
  route: Route;
  ready: DeliveryJob[];
  active: number;
  idle: Conn[];
}

const IDLE_CLOSE_MS = 5_000;

export class DeliveryQueue {
  private readonly config: Config;
  private readonly events: Pick<EventBus, 'emit'>;
  private readonly log: (line: string) => void;
  private readonly hooks: DeliveryHooks;
  private readonly dataDir: string;
  private readonly destinations = new Map<string, Destination>();
  private readonly timers = new Set<NodeJS.Timeout>();
  /** deferred jobs by MID, so an administrator can retry or delete them */
  private readonly waiting = new Map<number, Array<{ job: DeliveryJob; timer: NodeJS.Timeout; dueAt: number }>>();
  private dcid = 0;
  private stopped = false;
  inFlight = 0;

  constructor(
    config: Config,
    dataDir: string,
    events: Pick<EventBus, 'emit'>,
    log: (line: string) => void,
    hooks: DeliveryHooks,
  ) {
    this.config = config;
    this.dataDir = dataDir;
    this.events = events;
    this.log = log;
    this.hooks = hooks;
  }

  /** Routes each recipient and queues one job per route, now or (dueAt in the future) as a retry. */
  submit(base: Omit<DeliveryJob, 'route' | 'recipients'>, recipients: DeliveryRecipient[], dueAt = 0): void {
    const byRoute = new Map<string, { route: Route; rcpts: DeliveryRecipient[] }>();
    for (const r of recipients) {
      const route = base.routeOverride
        ? { key: base.routeOverride, targets: [parseTarget(base.routeOverride)], domain: domainOf(r.address) }
        : routeFor(this.config, r.address);
      let g = byRoute.get(route.key);
      if (!g) byRoute.set(route.key, (g = { route, rcpts: [] }));
      g.rcpts.push(r);
    }
    for (const { route, rcpts } of byRoute.values()) {
      const job = { ...base, route, recipients: rcpts };
      if (dueAt > Date.now()) this.schedule({ ...job, bytes: null }, dueAt);
      else this.enqueue(job);
    }
  }

  enqueue(job: DeliveryJob): void {
    let dest = this.destinations.get(job.route.key);
    if (!dest) {
      dest = { route: job.route, ready: [], active: 0, idle: [] };
      this.destinations.set(job.route.key, dest);
    }
    dest.ready.push(job);
    this.pump(dest);
  }

  /** Jobs waiting for a retry, with their due time. */
  deferred(): Array<{ job: DeliveryJob; dueAt: number }> {
    return [...this.waiting.values()].flat().map(({ job, dueAt }) => ({ job, dueAt }));
  }

  /** Moves a MID's deferred jobs to the front of the queue; returns how many recipients. */
  retryNow(mid: number): number {
    const w = this.waiting.get(mid);
    if (!w) return 0;
    this.waiting.delete(mid);
    let n = 0;
    for (const { job, timer } of w) {
      clearTimeout(timer);
      this.timers.delete(timer);
      n += job.recipients.length;
      this.enqueue(job);
    }
    return n;
  }

  /** Removes a MID's deferred jobs; returns the recipients removed. */
  removeDeferred(mid: number): DeliveryRecipient[] {
    const w = this.waiting.get(mid);
    if (!w) return [];
    this.waiting.delete(mid);
    const out: DeliveryRecipient[] = [];
    for (const { job, timer } of w) {
      clearTimeout(timer);
      this.timers.delete(timer);
      out.push(...job.recipients);
    }
    return out;
  }

  queuedCount(): number {
    let n = 0;
    for (const d of this.destinations.values()) n += d.ready.length + d.active;
    return n;
  }

  private pump(dest: Destination): void {
    const limit = this.config.delivery.concurrencyPerDestination;
    while (!this.stopped && dest.ready.length && dest.active < limit) {
      dest.active++;
      void this.worker(dest).finally(() => {
        dest.active--;
        if (dest.ready.length) this.pump(dest);
      });
    }
  }

  private async worker(dest: Destination): Promise<void> {
    let conn: Conn | null = dest.idle.pop() ?? null;
    if (conn?.idleTimer) {
      clearTimeout(conn.idleTimer);
      conn.idleTimer = null;
    }
    while (!this.stopped && dest.ready.length) {
      const job = dest.ready.shift()!;
      this.inFlight++;
      try {
        conn = await this.deliver(job, dest.route, conn);
      } catch (err) {
        // deliver() handles every peer failure itself; anything here is a bug: keep the mail.
        this.defer(job, job.recipients, `4.3.0 internal error: ${(err as Error).message}`, null, 'internal');
        conn = null;
      } finally {
        this.inFlight--;
      }
    }
    if (conn && !conn.broken && !this.stopped) {
      const c = conn;
      c.idleTimer = setTimeout(() => {
        const i = dest.idle.indexOf(c);
        if (i >= 0) dest.idle.splice(i, 1);
        c.smtp.quit();
      }, IDLE_CLOSE_MS);
      c.idleTimer.unref();
      dest.idle.push(c);
    } else if (conn) conn.smtp.close();
  }

  /** Delivers one job; returns the connection to reuse, or null. */
  private async deliver(job: DeliveryJob, route: Route, conn: Conn | null): Promise<Conn | null> {
    const dcid = ++this.dcid;
    const first = route.targets[0];
    if (first.kind === 'file') {
      await this.deliverToFile(job, first.dir, dcid);
      return null;
    }
    let lastError = 'no route target reachable';
    const targets = await this.resolveTargets(route, job);
    // A reused connection may have been closed by the peer meanwhile: retry once on a fresh one.
    for (let attempt = 0; attempt < 2; attempt++) {
      if (!conn || conn.broken) {
        conn = null;
        for (const t of targets) {
          try {
            conn = await this.connect(t.host, t.port, t.lmtp ?? false);
            break;
          } catch (err) {
            lastError = `${t.host}:${t.port}: ${(err as Error).message}`;
          }
        }
        if (!conn) {
          this.defer(job, job.recipients, lastError, dcid, targets.map((t) => `${t.host}:${t.port}`).join(','));
          return null;
        }
      }
      const reused = conn.sent > 0;
      this.events.emit(job.mid, {
        type: 'delivery.start',
        dcid,
        target: conn.target,
        rids: job.recipients.map((r) => r.rid),
      });
      const outcome = await this.sendOn(conn, job);
      if (outcome.kind === 'connection-error') {
        conn.broken = true;
        conn.smtp.close();
        lastError = outcome.reply;
        conn = null;
        if (reused) continue;
        this.defer(job, job.recipients, lastError, dcid, targets[0] ? `${targets[0].host}:${targets[0].port}` : '-');
        return null;
      }
      this.applyResults(job, dcid, conn.target, outcome.results);
      conn.sent++;
      if (conn.sent >= this.config.delivery.messagesPerConnection || outcome.needsReset) {
        if (outcome.needsReset) {
          const ok = await new Promise<boolean>((resolve) => conn!.smtp.reset((err) => resolve(!err)));
          if (ok && conn.sent < this.config.delivery.messagesPerConnection) return conn;
        }
        conn.smtp.quit();
        return null;
      }
      return conn;
    }
    this.defer(job, job.recipients, lastError, dcid, '-');
    return null;
  }

  private async resolveTargets(
    route: Route,
    job: DeliveryJob,
  ): Promise<Array<{ host: string; port: number; lmtp?: boolean }>> {
    const out: Array<{ host: string; port: number; lmtp?: boolean }> = [];
    for (const t of route.targets as RouteTarget[]) {
      if (t.kind === 'smtp') out.push({ host: t.host, port: t.port, ...(t.lmtp ? { lmtp: true } : {}) });
      else if (t.kind === 'mx') {
        try {
          const mx = await dns.resolveMx(route.domain);
          mx.sort((a, b) => a.priority - b.priority);
          // RFC 7505 null MX: the domain accepts no mail.
          if (mx.length === 1 && mx[0].exchange === '') continue;
          for (const m of mx) out.push({ host: m.exchange, port: 25 });
        } catch {
          out.push({ host: route.domain, port: 25 }); // RFC 5321 §5.1: implicit MX
        }
      }
    }
    if (!out.length) this.log(`MID ${job.mid} no delivery targets for ${route.domain}`);
    return out;
  }

  private connect(host: string, port: number, lmtp: boolean): Promise<Conn> {
    const timeout = parseDuration(this.config.delivery.connectTimeout);
    return new Promise((resolve, reject) => {
      const smtp = new SMTPConnection({
        host,
        port,
        name: this.config.hostname,
        lmtp,
        opportunisticTLS: !this.config.delivery.requireTls,
        requireTLS: this.config.delivery.requireTls,
        tls: { rejectUnauthorized: false },
        connectionTimeout: timeout,
        greetingTimeout: timeout,
        socketTimeout: parseDuration(this.config.delivery.sessionTimeout),
        allowInternalNetworkInterfaces: true,
        logger: false,
      });
      const conn: Conn = { smtp, target: `${host}:${port}`, sent: 0, idleTimer: null, broken: false };
      let settled = false;
      smtp.on('error', (err: Error) => {
        conn.broken = true;
        if (!settled) {
          settled = true;
          reject(err);
        }
      });
      smtp.on('end', () => {
        conn.broken = true;
      });
      smtp.connect(() => {
        if (!settled) {
          settled = true;
          resolve(conn);
        }
      });
    });
  }

  private sendOn(
    conn: Conn,
    job: DeliveryJob,
  ): Promise<
    | {
        kind: 'done';
        results: Array<{ r: DeliveryRecipient; outcome: RecipientOutcome; reply: string }>;
        needsReset: boolean;
      }
    | { kind: 'connection-error'; reply: string }
  > {
    return new Promise((resolve) => {
      const stream = createReadStream(job.file, {
        start: job.bodyOffset,
        end: job.bodyOffset + job.size - 1,
        highWaterMark: 256 * 1024,
      });
      conn.smtp.send(
        { from: job.sender, to: job.recipients.map((r) => r.address) } as any,
        stream,
        (err: any, info: any) => {
          if (err) {
            const code: number | undefined = err.responseCode;
            const reply = String(err.response ?? err.message).slice(0, 500);
            if (!code) return resolve({ kind: 'connection-error', reply: `4.4.2 ${reply}` });
            const perRcpt = new Map<string, { code: number; reply: string }>();
            for (const re of (err.rejectedErrors ?? []) as any[]) {
              if (re.recipient)
                perRcpt.set(String(re.recipient).toLowerCase(), { code: re.responseCode, reply: re.response });
            }
            return resolve({
              kind: 'done',
              needsReset: true,
              results: job.recipients.map((r) => {
                const x = perRcpt.get(r.address.toLowerCase()) ?? { code, reply };
                return { r, outcome: x.code >= 500 ? 'bounced' : 'deferred', reply: String(x.reply ?? reply) };
              }),
            });
          }
          const rejected = new Map<string, any>();
          for (const re of (info.rejectedErrors ?? []) as any[]) rejected.set(String(re.recipient).toLowerCase(), re);
          resolve({
            kind: 'done',
            needsReset: false,
            results: job.recipients.map((r) => {
              const re = rejected.get(r.address.toLowerCase());
              if (!re) return { r, outcome: 'delivered', reply: String(info.response ?? '250 ok') };
              return {
                r,
                outcome: re.responseCode >= 500 ? 'bounced' : 'deferred',
                reply: String(re.response ?? re.message),
              };
            }),
          });
        },
      );
    });
  }

  private async deliverToFile(job: DeliveryJob, dir: string, dcid: number): Promise<void> {
    const abs = path.resolve(this.dataDir, dir);
    const target = `file:${abs}`;
    this.events.emit(job.mid, { type: 'delivery.start', dcid, target, rids: job.recipients.map((r) => r.rid) });
    try {
      await fsp.mkdir(abs, { recursive: true });
      const dest = path.join(abs, `${job.mid}.eml`);
      const tmp = `${dest}.tmp`;
      const fh = await fsp.open(job.file, 'r');
      const out = await fsp.open(tmp, 'w', 0o640);
      try {
        const buf = Buffer.alloc(256 * 1024);
        let pos = job.bodyOffset;
        const end = job.bodyOffset + job.size;
        while (pos < end) {
          const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, end - pos), pos);
          if (!bytesRead) break;
          await out.write(buf, 0, bytesRead);
          pos += bytesRead;
        }
        await out.datasync();
      } finally {
        await fh.close();
        await out.close();
      }
      await fsp.rename(tmp, dest);
      fsyncDirSync(abs);
      this.applyResults(
        job,
        dcid,
        target,
        job.recipients.map((r) => ({ r, outcome: 'delivered' as const, reply: `250 written to ${dest}` })),
      );
    } catch (err) {
      // (A full disk, say: leave no partial file behind; the message stays queued and is retried.)
      await fsp.unlink(path.join(abs, `${job.mid}.eml.tmp`)).catch(() => {});
      this.defer(job, job.recipients, `4.3.0 ${(err as Error).message}`, dcid, target);
    }
  }

  private applyResults(
    job: DeliveryJob,
    dcid: number,
    target: string,
    results: Array<{ r: DeliveryRecipient; outcome: RecipientOutcome; reply: string }>,
  ): void {
    const final: RecipientResult[] = [];
    const retry: DeliveryRecipient[] = [];
    for (const { r, outcome, reply } of results) {
      if (outcome === 'delivered') {
        this.events.emit(job.mid, {
          type: 'delivery.delivered',
          dcid,
          rid: r.rid,
          address: r.address,
          target,
          reply,
        });
        final.push({ rid: r.rid, address: r.address, outcome, reply, target });
      } else if (outcome === 'bounced') {
        this.events.emit(job.mid, { type: 'delivery.bounced', dcid, rid: r.rid, address: r.address, target, reply });
        final.push({ rid: r.rid, address: r.address, outcome, reply, target });
      } else retry.push(r);
    }
    if (retry.length) this.defer(job, retry, results.find((x) => x.outcome === 'deferred')!.reply, dcid, target);
    if (final.length) this.hooks.onFinal(job, final);
  }

  /** Schedules a retry, or bounces the recipients once the queue lifetime is over. */
  private defer(
    job: DeliveryJob,
    rcpts: DeliveryRecipient[],
    reply: string,
    dcid: number | null,
    target: string,
  ): void {
    const schedule = this.config.delivery.retrySchedule.map(parseDuration);
    const lifetime = parseDuration(this.config.delivery.maxQueueLifetime);
    const now = Date.now();
    const attempts = Math.max(...rcpts.map((r) => r.attempts)) + 1;
    const wait = schedule[Math.min(attempts - 1, schedule.length - 1)];
    const expired = now + wait - job.receivedAt > lifetime;
    if (expired) {
      const final: RecipientResult[] = [];
      for (const r of rcpts) {
        const why = `5.4.7 delivery time expired after ${attempts} attempts; last reply: ${reply}`;
        this.events.emit(job.mid, {
          type: 'delivery.bounced',
          dcid,
          rid: r.rid,
          address: r.address,
          target,
          reply: why,
        });
        final.push({ rid: r.rid, address: r.address, outcome: 'bounced', reply: why, target });
      }
      this.hooks.onFinal(job, final);
      return;
    }
    const dueAt = now + wait;
    for (const r of rcpts) {
      this.events.emit(job.mid, {
        type: 'delivery.deferred',
        dcid,
        rid: r.rid,
        address: r.address,
        target,
        reply,
        nextAttemptAt: dueAt,
      });
    }
    // A job that waits reads the spool when it runs again: waiting mail does not hold memory.
    const next: DeliveryJob = { ...job, bytes: null, recipients: rcpts.map((r) => ({ ...r, attempts })) };
    this.hooks.onDeferred(job);
    this.schedule(next, dueAt);
  }

  /** Queues a job for a later attempt (also used when recovering deferred mail at start). */
  schedule(job: DeliveryJob, dueAt: number): void {
    const timer = setTimeout(
      () => {
        this.timers.delete(timer);
        const list = this.waiting.get(job.mid);
        if (list) {
          const i = list.findIndex((w) => w.timer === timer);
          if (i >= 0) list.splice(i, 1);
          if (!list.length) this.waiting.delete(job.mid);
        }
        this.enqueue(job);
      },
      Math.max(0, dueAt - Date.now()),
    );
    timer.unref();
    this.timers.add(timer);
    let list = this.waiting.get(job.mid);
    if (!list) this.waiting.set(job.mid, (list = []));
    list.push({ job, timer, dueAt });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const d of this.destinations.values()) {
      for (const c of d.idle) {
        if (c.idleTimer) clearTimeout(c.idleTimer);
        c.smtp.close();
      }
      d.idle = [];
    }
    const deadline = Date.now() + 5000;
    while (this.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }
}
