// The SMTP ingress session (DESIGN §3.1–3.3): HAT at connect, RAT at RCPT, data streamed to the
// spool with bare CR/LF and NUL refused, a deadline and a minimum rate for DATA, and the 250 reply
// only once the message is on disk.
import { SMTPServer, type SMTPServerSession, type SMTPServerDataStream, type SMTPServerAddress } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { installFastDataSearch } from './fast-data.ts';
import type { Socket } from 'node:net';
import type { ListenerConfig } from '../config/schema.ts';
import { parseByteSize, parseDuration } from '../config/schema.ts';
import { HostAccessTable, type HatMatch, type Reputation, type ReverseResolver } from './hat.ts';
import { DnsLists } from './dnsbl.ts';
import { DnsClient } from '../dns/resolver.ts';
import type { LdapAcceptQuery } from './ldap-accept.ts';
import type { RecipientValidationConfig } from '../config/directory-schema.ts';
import { Replies, SmtpReplyError, withEnhancedCodes, type SmtpReply } from './replies.ts';
import { addressMatches } from './address.ts';
import type { Spool, SpoolEnvelope, SpoolLocation, SpoolWriter } from '../spool/spool.ts';

// the end of DATA found with Buffer.indexOf instead of a loop over every byte (fast-data.ts)
installFastDataSearch();

export interface AcceptedMessage extends SpoolLocation {
  env: SpoolEnvelope;
  /** the message bytes when small enough to have stayed in memory (saves re-reading the spool) */
  bytes: Buffer | null;
}

export interface IngressDeps {
  hostname: string;
  spool: Spool;
  allocateMid: () => number;
  allocateIcid: () => number;
  onAccepted: (m: AcceptedMessage) => void;
  log: (line: string) => void;
  tls: { key: Buffer; cert: Buffer } | null;
  resolver?: ReverseResolver;
  /** free space for new mail (spool/storage.ts): refused at MAIL FROM while it says no */
  storage?: { readonly accepting: boolean; reportFailure(where: string, err: unknown): boolean };
  /** the config's smtp section; defaults when unset */
  smtp?: Partial<SmtpLimits>;
  /** a blocked envelope sender (the hub's block list, xdr/hub-blocklist.ts): refused at MAIL FROM */
  blockedSender?: (address: string, direction: 'incoming' | 'outgoing') => { id: string; reason: string } | null;
  /** DNS blocklist and allowlist lookups for the HAT's dnsbl / dnswl conditions (shared cache) */
  dnsLists?: DnsLists;
  /** the directory.ldap accept queries by name (listeners[].recipientValidation.ldap) */
  ldapQueries?: ReadonlyMap<string, LdapAcceptQuery>;
  /** connections and refusals, for metrics (they are not messages, so not tracking events) */
  observe?: (o: IngressObservation) => void;
}

export type IngressObservation =
  | { type: 'connection'; listener: string; group: string; action: string; listings: string[] }
  | {
      type: 'rcpt.refused';
      listener: string;
      reason: 'relay_denied' | 'unknown_recipient' | 'directory_unavailable' | 'harvest_session' | 'harvest_hour';
    }
  /** the directory was unavailable and an expired cached answer decided (cache.staleTtl) */
  | { type: 'rcpt.stale'; listener: string; directory: string; result: 'known' | 'unknown' };

export interface SmtpLimits {
  /** accept NUL bytes in message data */
  allowNul: boolean;
  /** longest DATA transfer, ms */
  dataTimeoutMs: number;
  /** slowest average DATA rate in bytes/s once dataRateGraceMs has passed; 0: none */
  dataMinRate: number;
  dataRateGraceMs: number;
  /** where the domainless <postmaster> recipient goes; null: postmaster@ the listener's first domain */
  postmaster: string | null;
}

const DEFAULT_LIMITS: SmtpLimits = {
  allowNul: false,
  dataTimeoutMs: 10 * 60_000,
  dataMinRate: 500,
  dataRateGraceMs: 30_000,
  postmaster: null,
};

/** Anything outside US-ASCII: such an address needs SMTPUTF8 (RFC 6531). */
const NON_ASCII = /[^\x00-\x7f]/;
/**
 * MAIL FROM / RCPT TO addresses that were not US-ASCII on the wire. smtp-server turns an ASCII
 * "xn--" domain into Unicode while parsing, so the parsed address cannot tell; the command can.
 */
const nonAsciiOnWire = new WeakSet<object>();

interface SessionState {
  icid: number;
  match: HatMatch;
  rdns: string | null;
  reputation: Reputation;
  messages: number;
  maxMessageSize: number;
  /** recipients refused as unknown by the directory in this session (harvest limit) */
  refusals: number;
  /**
   * Recipients the directory did not answer for live (a stale cached answer, or accepted unchecked while
   * it was down): lower-cased address → what decided; the accepted message's tracking record says so.
   */
  directoryNotes: Map<string, string>;
}

/** Small messages are gathered in memory and written with one call; larger ones stream to disk. */
const MEMORY_CHUNK_LIMIT = 256 * 1024;
/** Large messages are written to their spool file in pieces of about this size. */
const WRITE_BATCH_BYTES = 256 * 1024;

/** Finds bare CR and bare LF across chunk boundaries (RFC 5321 §2.3.8; SMTP smuggling). */
export class LineEndingGuard {
  private prevCR = false;
  bad = false;

  feed(chunk: Buffer): void {
    if (this.bad) return;
    let i = 0;
    if (this.prevCR) {
      if (chunk.length === 0) return;
      if (chunk[0] !== 0x0a) {
        this.bad = true;
        return;
      }
      i = 1;
    }
    this.prevCR = false;
    // Check every LF has a CR before it and every CR an LF after it.
    let lf = chunk.indexOf(0x0a, i);
    while (lf >= 0) {
      if (lf === 0 || chunk[lf - 1] !== 0x0d) {
        this.bad = true;
        return;
      }
      lf = chunk.indexOf(0x0a, lf + 1);
    }
    let cr = chunk.indexOf(0x0d, i);
    while (cr >= 0) {
      if (cr === chunk.length - 1) {
        this.prevCR = true;
        break;
      }
      if (chunk[cr + 1] !== 0x0a) {
        this.bad = true;
        return;
      }
      cr = chunk.indexOf(0x0d, cr + 1);
    }
  }

  /** The data must end with CRLF before the terminating dot; a trailing lone CR is bare. */
  end(): void {
    if (this.prevCR) this.bad = true;
  }
}

export class Ingress {
  readonly listener: ListenerConfig;
  readonly server: SMTPServer;
  private readonly deps: IngressDeps;
  private readonly hat: HostAccessTable;
  private readonly perIp = new Map<string, number>();
  private readonly rcptPerHour = new Map<string, { windowStart: number; count: number }>();
  /** unknown recipients refused per client IP in the current hour (directory harvest limit) */
  private readonly refusalsPerHour = new Map<string, { windowStart: number; count: number }>();
  private readonly validation: { cfg: RecipientValidationConfig; query: LdapAcceptQuery } | null;
  private readonly sessions = new WeakMap<SMTPServerSession, SessionState>();
  /** the smtp-server connection of each session, to reply and hang up from inside DATA */
  private readonly connections = new WeakMap<
    SMTPServerSession,
    { send: (code: number, text: string) => unknown; close: () => void }
  >();
  private readonly limits: SmtpLimits;
  /** address the domainless <postmaster> recipient is delivered to */
  readonly postmaster: string;

  constructor(listener: ListenerConfig, deps: IngressDeps) {
    this.listener = listener;
    this.deps = deps;
    const lists = listener.hat.some((g) => g.match.some((m) => typeof m === 'object'));
    this.hat = new HostAccessTable(
      listener,
      deps.resolver,
      undefined,
      lists
        ? (deps.dnsLists ?? new DnsLists(new DnsClient({ servers: [], timeoutMs: 2000, tries: 2 }), 300_000))
        : null,
    );
    const rv = listener.recipientValidation;
    const query = rv ? deps.ldapQueries?.get(rv.ldap) : undefined;
    if (rv && !query) throw new Error(`listener ${listener.name}: no directory.ldap query named ${rv.ldap}`);
    this.validation = rv && query ? { cfg: rv, query } : null;
    this.limits = { ...DEFAULT_LIMITS, ...deps.smtp };
    const firstDomain = listener.acceptDomains
      .filter((d) => !d.startsWith('.'))
      .map((d) => d.slice(d.lastIndexOf('@') + 1))
      .find((d) => d.length > 0);
    this.postmaster = this.limits.postmaster ?? `postmaster@${firstDomain ?? deps.hostname}`;
    const connections = this.connections;
    const maxSize = Math.max(...listener.hat.map((g) => parseByteSize(g.maxMessageSize)), 1024 * 1024);
    const hat = this.hat;
    const early = (ip: string): number => {
      const m = hat.classifySync(ip);
      return m?.group ? parseDuration(m.group.earlyTalkerDelay) : 100;
    };
    // smtp-server always waits 100 ms before its greeting to catch early talkers. That caps
    // reused-nothing clients at ~10 msg/s per session, so the pause is a per-group setting here.
    class GatewaySMTPServer extends SMTPServer {
      override connect(socket: Socket, socketOptions: unknown): void {
        const conn = new SMTPConnection(this, socket, socketOptions as any) as any;
        withEnhancedCodes(conn);
        connections.set(conn.session, conn);
        const parse = conn._parseAddressCommand.bind(conn);
        conn._parseAddressCommand = (name: unknown, command: unknown) => {
          const parsed = parse(name, command);
          const path = /<[^<>]*>/.exec(String(command ?? ''))?.[0] ?? '';
          if (parsed && NON_ASCII.test(path)) nonAsciiOnWire.add(parsed);
          return parsed;
        };
        const self = this as any;
        self.connections.add(conn);
        conn.on('error', (err: Error) => self._onError(err));
        conn.on('connect', (data: unknown) => self._onClientConnect(data));
        const delay = early(conn.remoteAddress);
        if (delay === 100) {
          conn.init();
          return;
        }
        conn._setListeners(() => {
          if (self.options.maxClients && self.connections.size > self.options.maxClients) {
            return conn.send(421, conn.name + ' Too many connected clients, try again in a moment', false);
          }
          if (delay <= 0) conn.connectionReady();
          else setTimeout(() => conn.connectionReady(), delay).unref();
        });
      }
    }
    this.server = new GatewaySMTPServer({
      name: deps.hostname,
      banner: 'Breakwater ESMTP',
      size: maxSize,
      authOptional: true,
      disabledCommands: ['AUTH'],
      hideENHANCEDSTATUSCODES: false,
      hideSTARTTLS: !deps.tls,
      hidePIPELINING: false,
      hide8BITMIME: false,
      hideSMTPUTF8: false,
      disableReverseLookup: true,
      key: deps.tls?.key,
      cert: deps.tls?.cert,
      logger: false,
      maxClients: 2000,
      socketTimeout: 60_000,
      onConnect: (session, cb) => this.onConnect(session, cb),
      onClose: (session) => this.onClose(session),
      onMailFrom: (address, session, cb) => this.onMailFrom(address, session, cb),
      onRcptTo: (address, session, cb) => this.onRcptTo(address, session, cb),
      onData: (stream, session, cb) => this.onData(stream, session, cb),
    });
    this.server.on('error', (err) => deps.log(`listener ${listener.name} error: ${err.message}`));
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      const srv = this.server.server;
      srv.once('error', reject);
      this.server.listen(this.listener.port, this.listener.host, () => {
        srv.off('error', reject);
        const addr = srv.address();
        resolve(typeof addr === 'object' && addr ? addr.port : this.listener.port);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private onConnect(session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    const ip = session.remoteAddress;
    const icid = this.deps.allocateIcid();
    this.hat
      .classify(ip)
      .then(({ match, rdns, reputation }) => {
        const group = match.group;
        this.deps.log(
          `New SMTP ICID ${icid} interface ${this.listener.name} address ${ip} reverse dns host ${rdns ?? 'unknown'} ` +
            `sender group ${match.name} action ${match.action}` +
            (match.listing ? ` (${match.listing})` : '') +
            (reputation.listings.length ? ` listed: ${reputation.listings.join('; ')}` : ''),
        );
        for (const note of reputation.notes) this.deps.log(`ICID ${icid} DNS list ${note}`);
        this.deps.observe?.({
          type: 'connection',
          listener: this.listener.name,
          group: match.name,
          action: match.action,
          listings: reputation.listings,
        });
        if (match.action === 'reject') return cb(new SmtpReplyError(Replies.rejectedByHat));
        if (match.action === 'tempfail') return cb(new SmtpReplyError(Replies.tempfailByHat));
        const count = (this.perIp.get(ip) ?? 0) + 1;
        const limit = group?.maxConcurrentConnectionsPerIp ?? 100;
        if (count > limit) return cb(new SmtpReplyError(Replies.tooManyConnections));
        this.perIp.set(ip, count);
        this.sessions.set(session, {
          icid,
          match,
          rdns,
          reputation,
          messages: 0,
          maxMessageSize: group ? parseByteSize(group.maxMessageSize) : 10 * 1024 * 1024,
          refusals: 0,
          directoryNotes: new Map(),
        });
        cb();
      })
      .catch((err: Error) => cb(err));
  }

  private onClose(session: SMTPServerSession): void {
    const st = this.sessions.get(session);
    if (!st) return;
    const ip = session.remoteAddress;
    const n = (this.perIp.get(ip) ?? 1) - 1;
    if (n <= 0) this.perIp.delete(ip);
    else this.perIp.set(ip, n);
    this.deps.log(`ICID ${st.icid} close`);
  }

  private onMailFrom(address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    const st = this.sessions.get(session);
    if (!st) return cb(new SmtpReplyError(Replies.rejectedByHat));
    const max = st.match.group?.maxMessagesPerSession ?? 1000;
    if (st.messages >= max) return cb(new SmtpReplyError(Replies.tooManyMessages));
    // RFC 5321 §4.5.3.1.10 / RFC 3463 4.3.1: no room for more mail now; the client retries later.
    if (this.deps.storage && !this.deps.storage.accepting) return cb(new SmtpReplyError(Replies.insufficientStorage));
    const args = address.args as unknown as Record<string, string> | false | undefined;
    const declared = Number((args && args.SIZE) || 0);
    if (declared > st.maxMessageSize) return cb(new SmtpReplyError(Replies.messageTooBig));
    if (nonAsciiOnWire.has(address) && !smtpUtf8(address))
      return cb(new SmtpReplyError(Replies.utf8SenderNeedsSmtputf8));
    if (address.address && !/^[^\s@<>]+@[^\s@<>]+$/.test(address.address))
      return cb(new SmtpReplyError(Replies.badSender));
    const blocked = address.address ? this.deps.blockedSender?.(address.address, this.listener.direction) : null;
    if (blocked) {
      this.deps.log(
        `ICID ${st.icid} MAIL FROM <${address.address}> refused: on the hub's block list (entry ${blocked.id}: ${blocked.reason})`,
      );
      return cb(new SmtpReplyError(Replies.senderBlocked));
    }
    cb();
  }

  private onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    const st = this.sessions.get(session);
    if (!st) return cb(new SmtpReplyError(Replies.rejectedByHat));
    // RFC 5321 §4.5.1: every SMTP server accepts the domainless <postmaster>. It goes to the
    // configured address, set by the administrator, so the recipient access table does not apply.
    const postmaster = address.address.toLowerCase() === 'postmaster';
    if (postmaster) {
      this.deps.log(`ICID ${st.icid} RCPT <${address.address}> is delivered to <${this.postmaster}>`);
      address.address = this.postmaster;
    }
    if (nonAsciiOnWire.has(address) && !(session.envelope.mailFrom && smtpUtf8(session.envelope.mailFrom)))
      return cb(new SmtpReplyError(Replies.utf8RecipientNeedsSmtputf8));
    if (!/^[^\s@<>]+@[^\s@<>]+$/.test(address.address)) return cb(new SmtpReplyError(Replies.badRecipient));
    // Recipient access table. No open relay, whatever the config: only a relay group on an outgoing
    // listener may send anywhere; everybody else only to the listener's accepted domains.
    const relay = this.listener.direction === 'outgoing' && st.match.action === 'relay';
    if (!postmaster && !relay && !addressMatches(address.address, this.listener.acceptDomains)) {
      this.deps.log(`ICID ${st.icid} RCPT <${address.address}> rejected: relaying denied`);
      this.deps.observe?.({ type: 'rcpt.refused', listener: this.listener.name, reason: 'relay_denied' });
      return cb(new SmtpReplyError(Replies.relayDenied));
    }
    const maxRcpt = st.match.group?.maxRecipientsPerMessage ?? 1000;
    if (session.envelope.rcptTo.length >= maxRcpt) return cb(new SmtpReplyError(Replies.tooManyRecipients));
    const v = this.validation;
    if (v && !postmaster && !relay && addressMatches(address.address, v.cfg.domains ?? this.listener.acceptDomains))
      return this.validateRecipient(v, address.address, st, session, cb);
    this.acceptRecipient(st, session, cb);
  }

  /**
   * Recipient validation (issue 15): the directory decides whether the recipient exists. Harvest limits
   * first, so that a client past them learns nothing more about which addresses exist.
   */
  private validateRecipient(
    v: { cfg: RecipientValidationConfig; query: LdapAcceptQuery },
    rcpt: string,
    st: SessionState,
    session: SMTPServerSession,
    cb: (err?: Error | null) => void,
  ): void {
    const refuse = (reason: 'unknown_recipient' | 'directory_unavailable' | 'harvest_session' | 'harvest_hour') =>
      this.deps.observe?.({ type: 'rcpt.refused', listener: this.listener.name, reason });
    const ip = session.remoteAddress;
    const noteDirectory = (note: string | null): void => {
      if (note) st.directoryNotes.set(rcpt.toLowerCase(), note.slice(0, 300));
      else st.directoryNotes.delete(rcpt.toLowerCase());
    };
    // the sender group's own limits (a mail flow policy setting, as in the HAT) before the listener's
    const own = st.match.group?.directoryHarvest;
    const perSession = own?.maxRefusalsPerSession ?? v.cfg.maxRefusalsPerSession;
    const perHour = own?.maxRefusalsPerHourPerIp ?? v.cfg.maxRefusalsPerHourPerIp;
    if (st.refusals >= perSession) {
      this.deps.log(
        `ICID ${st.icid} RCPT <${rcpt}> refused: directory harvest limit (${st.refusals} unknown recipients in this session), closing`,
      );
      refuse('harvest_session');
      return cb(new SmtpReplyError(Replies.tooManyUnknownRecipients));
    }
    const now = Date.now();
    let w = this.refusalsPerHour.get(ip);
    if (w && now - w.windowStart > 3_600_000) w = undefined;
    if (w && w.count >= perHour) {
      this.deps.log(
        `ICID ${st.icid} RCPT <${rcpt}> deferred: directory harvest limit (${w.count} unknown recipients from ${ip} this hour)`,
      );
      refuse('harvest_hour');
      return cb(new SmtpReplyError(Replies.unknownRecipientRateExceeded));
    }
    v.query
      .check(rcpt)
      .then((answer) => {
        if (answer.result === 'unavailable') {
          if (v.query.failureMode === 'accept') {
            this.deps.log(
              `ICID ${st.icid} RCPT <${rcpt}> accepted unchecked: directory ${v.query.name} unavailable (${answer.error})`,
            );
            noteDirectory(`accepted unchecked: directory ${v.query.name} unavailable (${answer.error})`);
            return this.acceptRecipient(st, session, cb);
          }
          this.deps.log(
            `ICID ${st.icid} RCPT <${rcpt}> deferred: directory ${v.query.name} unavailable (${answer.error})`,
          );
          refuse('directory_unavailable');
          return cb(new SmtpReplyError(Replies.directoryUnavailable));
        }
        // a stale answer: the directory is down and the cached answer is past its TTL, within cache.staleTtl
        const stale = answer.stale
          ? `, stale: expired ${Math.round(answer.stale.expiredMs / 1000)} s ago; directory unavailable (${answer.stale.error})`
          : '';
        if (answer.stale)
          this.deps.observe?.({
            type: 'rcpt.stale',
            listener: this.listener.name,
            directory: v.query.name,
            result: answer.result,
          });
        if (answer.result === 'unknown') {
          st.refusals++;
          let hour = this.refusalsPerHour.get(ip);
          if (!hour || Date.now() - hour.windowStart > 3_600_000) {
            if (this.refusalsPerHour.size >= 10_000) this.pruneRefusals();
            hour = { windowStart: Date.now(), count: 0 };
            this.refusalsPerHour.set(ip, hour);
          }
          hour.count++;
          this.deps.log(
            `ICID ${st.icid} RCPT <${rcpt}> rejected: unknown recipient (directory ${v.query.name}${answer.cached ? ', cached' : ''}${stale})`,
          );
          refuse('unknown_recipient');
          return cb(new SmtpReplyError(Replies.unknownRecipient));
        }
        if (answer.stale)
          this.deps.log(
            `ICID ${st.icid} RCPT <${rcpt}> accepted: known recipient (directory ${v.query.name}, cached${stale})`,
          );
        noteDirectory(answer.stale ? `known from a cached answer of directory ${v.query.name}${stale}` : null);
        this.acceptRecipient(st, session, cb);
      })
      .catch((err: Error) => cb(err));
  }

  private pruneRefusals(): void {
    const now = Date.now();
    for (const [ip, w] of this.refusalsPerHour) if (now - w.windowStart > 3_600_000) this.refusalsPerHour.delete(ip);
    // still full: the oldest windows go
    for (const ip of this.refusalsPerHour.keys()) {
      if (this.refusalsPerHour.size < 10_000) break;
      this.refusalsPerHour.delete(ip);
    }
  }

  /** The recipient passed every check: the per-IP hourly recipient limit is the last. */
  private acceptRecipient(st: SessionState, session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    const hourly = st.match.group?.maxRecipientsPerHourPerIp;
    if (hourly) {
      const now = Date.now();
      const key = session.remoteAddress;
      let w = this.rcptPerHour.get(key);
      if (!w || now - w.windowStart > 3_600_000) {
        w = { windowStart: now, count: 0 };
        this.rcptPerHour.set(key, w);
      }
      if (w.count >= hourly) return cb(new SmtpReplyError(Replies.recipientRateExceeded));
      w.count++;
    }
    cb();
  }

  private onData(
    stream: SMTPServerDataStream,
    session: SMTPServerSession,
    cb: (err?: Error | null, message?: string) => void,
  ): void {
    const st = this.sessions.get(session);
    if (!st) {
      stream.resume();
      stream.on('end', () => cb(new SmtpReplyError(Replies.rejectedByHat)));
      return;
    }
    const mid = this.deps.allocateMid();
    const now = Date.now();
    const tls = session.secure ? ((session as any).tlsOptions?.version ?? 'TLS') : null;
    const helo = session.hostNameAppearsAs || null;
    // <postmaster> and the address it stands for may both be in the envelope: deliver once
    const seen = new Set<string>();
    const rcpts = session.envelope.rcptTo
      .map((r) => r.address)
      .filter((a) => !seen.has(a.toLowerCase()) && !!seen.add(a.toLowerCase()));
    const env: SpoolEnvelope = {
      mid,
      icid: st.icid,
      listener: this.listener.name,
      direction: this.listener.direction,
      sender: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
      recipients: rcpts,
      senderIp: session.remoteAddress,
      rdns: st.rdns,
      helo,
      tls,
      receivedAt: now,
      senderGroup: st.match.name,
      ...(st.reputation.listings.length ? { reputation: st.reputation.listings } : {}),
    };
    const directory = rcpts.flatMap((r) => {
      const note = st.directoryNotes.get(r.toLowerCase());
      return note ? [`${r}: ${note}`] : [];
    });
    if (directory.length) env.directory = directory;
    const received = Buffer.from(this.receivedHeader(env, session, rcpts));
    const guard = new LineEndingGuard();
    const limits = this.limits;
    let nul = false;
    let size = 0;
    let oversize = false;
    let ended = false;
    let memory: Buffer[] | null = [received];
    let memoryBytes = received.length;
    let writer: SpoolWriter | null = null;
    let writing: Promise<void> = Promise.resolve();
    let failed: Error | null = null;

    let whole: Buffer | null = null;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    // Past MEMORY_CHUNK_LIMIT the message moves to a file of its own and streams there.
    const startWriter = (): void => {
      const bytes = Buffer.concat(memory!, memoryBytes);
      memory = null;
      writing = writing.then(async () => {
        writer = await this.deps.spool.create(env);
        await writer.write(bytes);
      });
    };

    // Whatever was written for a message that will not be accepted is removed.
    const discard = (): void => {
      void writing
        .catch(() => {})
        .then(() => (writer as SpoolWriter | null)?.abort())
        .catch(() => {});
    };
    // A client that drips the message (a byte every few seconds keeps the socket timeout from ever
    // firing) holds a session and its memory forever: DATA has a deadline and a minimum rate.
    const startedAt = Date.now();
    const breach = (reply: SmtpReply): void => {
      if (ended) return;
      ended = true;
      clearInterval(watch);
      failed = new Error(reply.text);
      this.deps.log(`ICID ${st.icid} message refused after ${size} bytes: ${reply.text}`);
      discard();
      const conn = this.connections.get(session);
      if (!conn) return void stream.destroy();
      conn.send(reply.code, reply.enhanced ? `${reply.enhanced} ${reply.text}` : reply.text);
      conn.close();
    };
    const tick = Math.max(20, Math.min(1000, Math.floor(limits.dataTimeoutMs / 10)));
    const watch = setInterval(() => {
      const elapsed = Date.now() - startedAt;
      if (elapsed >= limits.dataTimeoutMs) breach(Replies.dataTimeout);
      else if (
        limits.dataMinRate > 0 &&
        elapsed >= limits.dataRateGraceMs &&
        size < (limits.dataMinRate * elapsed) / 1000
      )
        breach(Replies.dataTooSlow);
    }, tick);
    watch.unref();
    // The client went away (or was sent away) before the end of the data: nothing is kept.
    stream.on('close', () => {
      if (ended) return;
      ended = true;
      clearInterval(watch);
      discard();
    });

    stream.on('data', (chunk: Buffer) => {
      if (ended) return;
      size += chunk.length;
      guard.feed(chunk);
      if (!limits.allowNul && !nul && chunk.includes(0)) nul = true;
      if (size > st.maxMessageSize) oversize = true;
      if (guard.bad || nul || oversize || failed) return; // keep reading to the end; the reply is an error
      if (memory) {
        memory.push(chunk);
        memoryBytes += chunk.length;
        if (memoryBytes > MEMORY_CHUNK_LIMIT) startWriter();
      } else {
        // Coalesce chunks into large writes; pause the client while a write is outstanding.
        pending.push(chunk);
        pendingBytes += chunk.length;
        if (pendingBytes >= WRITE_BATCH_BYTES) flushPending();
      }
    });
    const flushPending = (): void => {
      if (!pendingBytes) return;
      const data = Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      stream.pause();
      writing = writing.then(() => writer!.write(data)).finally(() => stream.resume());
    };
    stream.on('error', (err) => {
      failed = err;
    });
    stream.on('end', () => {
      if (ended) return;
      ended = true;
      clearInterval(watch);
      guard.end();
      const finish = async (): Promise<SpoolLocation> => {
        if (nul) throw new SmtpReplyError(Replies.nulInData);
        if (guard.bad) throw new SmtpReplyError(Replies.bareLineEnding);
        if (oversize || stream.sizeExceeded) throw new SmtpReplyError(Replies.messageTooBig);
        if (failed) throw failed;
        if (memory) {
          // Small message: one append to the shared journal, committed with its neighbours.
          whole = Buffer.concat(memory, memoryBytes);
          memory = null;
          return this.deps.spool.append(env, whole);
        }
        flushPending();
        await writing;
        if (failed) throw failed;
        return writer!.commit();
      };
      finish()
        .then((loc) => {
          st.messages++;
          cb(null, `Ok: queued as MID ${mid}`);
          this.deps.onAccepted({ ...loc, env, bytes: whole });
        })
        .catch(async (err: Error) => {
          await writing.catch(() => {});
          // The cast is needed because TS narrows writer to null inside this closure.
          const w = writer as SpoolWriter | null;
          if (w) await w.abort().catch(() => {});
          if (err instanceof SmtpReplyError) {
            this.deps.log(`ICID ${st.icid} message refused: ${err.message}`);
            cb(err);
          } else {
            this.deps.log(`ICID ${st.icid} spool failure: ${err.message}`);
            const full = this.deps.storage?.reportFailure(w ? 'spool message file' : 'spool journal', err) ?? false;
            cb(new SmtpReplyError(full ? Replies.insufficientStorage : Replies.spoolFailure));
          }
        });
    });
  }

  private receivedHeader(env: SpoolEnvelope, session: SMTPServerSession, rcpts: string[]): string {
    // RFC 5321 §4.4 trace field. HELO and rDNS come from the peer: strip anything that could break it.
    const clean = (s: string): string => s.replace(/[^\x21-\x7e]+/g, '');
    const proto = (session.transmissionType || 'ESMTP').replace(/[^A-Z]/g, '');
    const date = new Date(env.receivedAt).toUTCString().replace('GMT', '+0000');
    const lines = [
      `Received: from ${clean(env.helo ?? 'unknown') || 'unknown'} (${clean(env.rdns ?? 'unknown')} [${clean(env.senderIp)}])`,
      `\tby ${this.deps.hostname} (Breakwater) with ${proto} id ${env.mid}`,
    ];
    if (rcpts.length === 1) lines.push(`\tfor <${clean(rcpts[0])}>;`);
    else lines[1] += ';';
    lines.push(`\t${date}`);
    return lines.join('\r\n') + '\r\n';
  }
}

/** This MAIL FROM carried SMTPUTF8 (the envelope's flag outlives a refused MAIL FROM). */
function smtpUtf8(mailFrom: SMTPServerAddress): boolean {
  const args = mailFrom.args as unknown as Record<string, string | boolean> | false | undefined;
  return !!args && args.SMTPUTF8 === true;
}
