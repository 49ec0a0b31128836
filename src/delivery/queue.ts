// The delivery queue (DESIGN §3.6): per-route destinations with a concurrency limit, reused and
// pipelined downstream connections, per-recipient results, retries on the schedule, and bounces.
import { createReadStream, promises as fsp, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Readable } from 'node:stream';
import { rootCertificates } from 'node:tls';
import type { Resolver } from 'node:dns/promises';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { Config } from '../config/schema.ts';
import { parseDuration } from '../config/schema.ts';
import type { EventBus } from '../tracking/bus.ts';
import { parseTarget, routeFor, type Route, type RouteTarget } from './routes.ts';
import { domainOf } from '../smtp/address.ts';
import { fsyncDirSync } from '../spool/spool.ts';
import { installFastDataStream } from './data-stream.ts';
import { DnsClient } from '../dns/resolver.ts';
import { OutboundSigner, type JobOrigin, type SignResult } from './signing.ts';
import { MtaSts } from './mta-sts.ts';
import { connectFailureResult, reportPolicy, sessionResult, type TlsSessionOutcome } from './tlsrpt.ts';
import {
  admits,
  connectTls,
  filterMx,
  policyName,
  requirementFor,
  sessionTls,
  type DeliveryTls,
  type TlsRequirement,
} from './tls-policy.ts';

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
  /** where the copy came from: decides DKIM signing and ARC sealing (outbound) */
  origin?: JobOrigin;
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
  /** the TLS outcome of each MX session attempt (TLS reporting, RFC 8460) */
  onTlsSession?(s: TlsSessionOutcome): void;
}

interface Conn {
  smtp: SMTPConnection;
  target: string;
  /** the host name the certificate was checked against */
  name: string;
  sent: number;
  idleTimer: NodeJS.Timeout | null;
  broken: boolean;
  /** what the session achieved (protocol, cipher, verified), for the policy of the next job and tracking */
  tls: DeliveryTls;
  /** our address of the session */
  localAddress: string | null;
}

/** A host to connect to: `host` is what to dial, `name` what its certificate must carry (the MX name). */
interface Target {
  host: string;
  port: number;
  lmtp?: boolean;
  name: string;
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
  /** DKIM and ARC keys (outbound.dkim, outbound.arc) */
  readonly signer: OutboundSigner;
  private readonly dns: Resolver;
  private readonly mtaSts: MtaSts | null;
  /** trusted CAs for verified TLS: the system roots plus outbound.tls.caFile; undefined: the roots */
  private readonly ca: string[] | undefined;

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
    this.signer = new OutboundSigner(config, dataDir);
    for (const w of this.signer.warnings) log(`warning: DKIM key ${w}`);
    this.dns = DnsClient.fromConfig(config.dns).resolver;
    const t = config.outbound.tls;
    this.ca = t.caFile ? [...rootCertificates, readFileSync(path.resolve(dataDir, t.caFile), 'utf8')] : undefined;
    this.mtaSts = t.mtaSts.enabled
      ? new MtaSts({
          resolver: this.dns,
          ca: this.ca,
          timeoutMs: parseDuration(t.mtaSts.timeout),
          maxEntries: t.mtaSts.maxEntries,
        })
      : null;
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
    let signed: SignResult;
    try {
      signed = await this.signer.sign(job, job.sender, job.origin);
    } catch (err) {
      // A configured signature that cannot be made: the mail waits rather than leaving unsigned.
      this.defer(job, job.recipients, `4.7.0 ${(err as Error).message}`, dcid, route.key);
      return conn;
    }
    if (first.kind === 'file') {
      await this.deliverToFile(job, first.dir, dcid, signed);
      return null;
    }
    const isMx = route.targets.some((t) => t.kind === 'mx');
    const req = await requirementFor(
      this.config,
      job.recipients.map((r) => r.address),
      isMx ? { domain: route.domain, sts: this.mtaSts } : null,
    );
    let lastError = 'no route target reachable';
    let lastTls: DeliveryTls | undefined;
    const resolved = await this.resolveTargets(route, job);
    // MTA-STS (RFC 8461 §5): in enforce mode only the MX hosts the policy lists may receive the mail.
    const mx = filterMx(
      req,
      resolved.filter((t) => t.fromMx),
    );
    const targets = resolved.filter((t) => !t.fromMx || mx.allowed.includes(t));
    const notes = [req.stsNote, mx.note].filter((n): n is string => !!n);
    if (!targets.length && resolved.length) {
      for (const t of resolved)
        this.tlsSession(route.domain, req, t, null, {
          result: 'validation-failure',
          reason: `MX ${t.name} not in the MTA-STS policy`,
        });
      const reply = `4.7.5 ${mx.note ?? 'no MX host allowed by the MTA-STS policy'} (TLS policy ${policyName(req)})`;
      this.defer(job, job.recipients, reply, dcid, route.domain);
      return null;
    }
    const noted = (t: DeliveryTls, extra?: string): DeliveryTls => {
      const all = [...notes, ...(extra ? [extra] : [])];
      return all.length ? { ...t, note: all.join('; ') } : t;
    };
    // A reused connection must meet this job's policy too (its recipients' domains may ask for more).
    if (
      conn &&
      !conn.broken &&
      (!admits(req, conn.tls, conn.name).ok ||
        (req.sts?.mode === 'enforce' && !targets.some((t) => t.name === conn!.name)))
    ) {
      conn.smtp.quit();
      conn = null;
    }
    // A reused connection may have been closed by the peer meanwhile: retry once on a fresh one.
    for (let attempt = 0; attempt < 2; attempt++) {
      let note: string | undefined;
      if (!conn || conn.broken) {
        conn = null;
        for (const t of targets) {
          let c: Conn;
          try {
            c = await this.connect(t, req);
          } catch (err) {
            lastError = `${t.host}:${t.port}: ${(err as Error).message}`;
            if (t.fromMx && req.level !== 'none')
              this.tlsSession(route.domain, req, t, null, connectFailureResult(err as Error));
            continue;
          }
          if (t.fromMx) this.tlsSession(route.domain, req, t, c.localAddress, sessionResult(req, c.tls, t.name));
          const ok = admits(req, c.tls, t.name);
          if (!ok.ok) {
            // Refused before MAIL FROM: nothing of the message went over this session.
            c.broken = true;
            c.smtp.quit();
            lastError = ok.reply;
            lastTls = noted(c.tls);
            continue;
          }
          note = ok.note;
          if (ok.note) c.tls = { ...c.tls, note: ok.note };
          conn = c;
          break;
        }
        if (!conn) {
          this.defer(
            job,
            job.recipients,
            lastError,
            dcid,
            targets.map((t) => `${t.host}:${t.port}`).join(','),
            lastTls,
          );
          return null;
        }
      } else note = conn.tls.note;
      const tlsNow = noted(conn.tls, note);
      const reused = conn.sent > 0;
      this.events.emit(job.mid, {
        type: 'delivery.start',
        dcid,
        target: conn.target,
        rids: job.recipients.map((r) => r.rid),
        ...(signed.notes.length ? { signed: signed.notes } : {}),
      });
      const outcome = await this.sendOn(conn, job, signed.prefix);
      if (outcome.kind === 'connection-error') {
        conn.broken = true;
        conn.smtp.close();
        lastError = outcome.reply;
        const target = conn.target;
        conn = null;
        if (reused) continue;
        this.defer(job, job.recipients, lastError, dcid, target, tlsNow);
        return null;
      }
      this.applyResults(job, dcid, conn.target, outcome.results, tlsNow);
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
    this.defer(job, job.recipients, lastError, dcid, '-', lastTls);
    return null;
  }

  /**
   * The hosts of a route, in order. MX hosts are looked up through the gateway's DNS servers (`dns`), and
   * their addresses too: the session dials the address and checks the certificate against the MX name.
   */
  private async resolveTargets(route: Route, job: DeliveryJob): Promise<Array<Target & { fromMx: boolean }>> {
    const out: Array<Target & { fromMx: boolean }> = [];
    for (const t of route.targets as RouteTarget[]) {
      if (t.kind === 'smtp')
        out.push({ host: t.host, port: t.port, name: t.host, fromMx: false, ...(t.lmtp ? { lmtp: true } : {}) });
      else if (t.kind === 'mx') {
        let hosts: string[];
        try {
          const mx = await this.dns.resolveMx(route.domain);
          mx.sort((a, b) => a.priority - b.priority);
          // RFC 7505 null MX: the domain accepts no mail.
          if (mx.length === 1 && mx[0].exchange === '') continue;
          hosts = mx.map((m) => m.exchange.replace(/\.$/, '').toLowerCase());
        } catch {
          hosts = [route.domain]; // RFC 5321 §5.1: implicit MX
        }
        for (const name of hosts) {
          const addrs = net.isIP(name) ? [name] : await this.dns.resolve4(name).catch(() => [] as string[]);
          // no address through our servers: let the session resolve the name itself
          for (const host of addrs.length ? addrs : [name]) out.push({ host, port: 25, name, fromMx: true });
        }
      }
    }
    if (!out.length) this.log(`MID ${job.mid} no delivery targets for ${route.domain}`);
    return out;
  }

  private connect(t: Target, req: TlsRequirement): Promise<Conn> {
    const timeout = parseDuration(this.config.delivery.connectTimeout);
    const policy = policyName(req);
    return new Promise((resolve, reject) => {
      const smtp = new SMTPConnection({
        host: t.host,
        port: t.port,
        name: this.config.hostname,
        lmtp: t.lmtp ?? false,
        ...connectTls(req.level, t.name, this.ca),
        connectionTimeout: timeout,
        greetingTimeout: timeout,
        socketTimeout: parseDuration(this.config.delivery.sessionTimeout),
        allowInternalNetworkInterfaces: true,
        logger: false,
      } as ConstructorParameters<typeof SMTPConnection>[0]);
      const conn: Conn = {
        smtp,
        target: `${t.host}:${t.port}`,
        name: t.name,
        sent: 0,
        idleTimer: null,
        broken: false,
        tls: { protocol: null, cipher: null, verified: false, reason: 'not connected', policy },
        localAddress: null,
      };
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
      // nodemailer hands a close before the greeting to this callback (not to 'error'): such a target
      // failed to connect like a refusal, so the next one is tried and the deferral names it.
      smtp.connect((err?: Error) => {
        if (err) {
          conn.broken = true;
          if (!settled) {
            settled = true;
            reject(err);
          }
          return;
        }
        // nodemailer keeps the session's socket (a TLSSocket after STARTTLS) and the EHLO keywords private
        const inner = smtp as unknown as { _socket?: net.Socket; _supportedExtensions?: string[] };
        conn.tls = sessionTls(
          inner._socket,
          smtp.secure,
          (inner._supportedExtensions ?? []).includes('STARTTLS'),
          t.name,
          policy,
        );
        conn.localAddress = inner._socket?.localAddress ?? null;
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
    prefix: Buffer,
  ): Promise<
    | {
        kind: 'done';
        results: Array<{ r: DeliveryRecipient; outcome: RecipientOutcome; reply: string }>;
        needsReset: boolean;
      }
    | { kind: 'connection-error'; reply: string }
  > {
    return new Promise((resolve) => {
      const file = createReadStream(job.file, {
        start: job.bodyOffset,
        end: job.bodyOffset + job.size - 1,
        highWaterMark: 256 * 1024,
      });
      // DKIM-Signature / ARC header fields go in front of the durable bytes (delivery/signing.ts)
      const stream = prefix.length ? withPrefix(prefix, file) : file;
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

  /** Hands one MX session's TLS outcome to TLS reporting; recording never gets in the way of delivery. */
  private tlsSession(
    domain: string,
    req: TlsRequirement,
    t: Target,
    localAddress: string | null,
    outcome: { result: TlsSessionOutcome['result']; reason: string | null } | null,
  ): void {
    if (!outcome || !this.hooks.onTlsSession) return;
    try {
      this.hooks.onTlsSession({
        domain,
        policy: reportPolicy(req),
        result: outcome.result,
        reason: outcome.reason,
        sendingIp: localAddress,
        mxHost: t.name,
        receivingIp: net.isIP(t.host) ? t.host : null,
      });
    } catch (err) {
      this.log(`TLS report record failed: ${(err as Error).message}`);
    }
  }

  private async deliverToFile(job: DeliveryJob, dir: string, dcid: number, signed: SignResult): Promise<void> {
    const abs = path.resolve(this.dataDir, dir);
    const target = `file:${abs}`;
    this.events.emit(job.mid, {
      type: 'delivery.start',
      dcid,
      target,
      rids: job.recipients.map((r) => r.rid),
      ...(signed.notes.length ? { signed: signed.notes } : {}),
    });
    try {
      await fsp.mkdir(abs, { recursive: true });
      const dest = path.join(abs, `${job.mid}.eml`);
      const tmp = `${dest}.tmp`;
      const fh = await fsp.open(job.file, 'r');
      const out = await fsp.open(tmp, 'w', 0o640);
      try {
        if (signed.prefix.length) await out.write(signed.prefix);
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
    tls?: DeliveryTls,
  ): void {
    const final: RecipientResult[] = [];
    const retry: DeliveryRecipient[] = [];
    const t = tls ? { tls } : {};
    for (const { r, outcome, reply } of results) {
      if (outcome === 'delivered') {
        this.events.emit(job.mid, {
          type: 'delivery.delivered',
          dcid,
          rid: r.rid,
          address: r.address,
          target,
          reply,
          ...t,
        });
        final.push({ rid: r.rid, address: r.address, outcome, reply, target });
      } else if (outcome === 'bounced') {
        this.events.emit(job.mid, {
          type: 'delivery.bounced',
          dcid,
          rid: r.rid,
          address: r.address,
          target,
          reply,
          ...t,
        });
        final.push({ rid: r.rid, address: r.address, outcome, reply, target });
      } else retry.push(r);
    }
    if (retry.length) this.defer(job, retry, results.find((x) => x.outcome === 'deferred')!.reply, dcid, target, tls);
    if (final.length) this.hooks.onFinal(job, final);
  }

  /** Schedules a retry, or bounces the recipients once the queue lifetime is over. */
  private defer(
    job: DeliveryJob,
    rcpts: DeliveryRecipient[],
    reply: string,
    dcid: number | null,
    target: string,
    tls?: DeliveryTls,
  ): void {
    const t = tls ? { tls } : {};
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
          ...t,
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
        ...t,
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

/** The header fields `prefix`, then the bytes of `rest`. */
function withPrefix(prefix: Buffer, rest: Readable): Readable {
  return Readable.from(
    (async function* () {
      yield prefix;
      yield* rest;
    })(),
    { objectMode: false },
  );
}
