// Message tracking (DESIGN §8): the record per MID, its events, the mail log lines, and search.
import { escapeControls, escapeDeep } from './escape.ts';
import type { Store } from '../store/db.ts';
import type { MailLog } from './maillog.ts';
import type { MessageStatus, RecipientStatus, TrackingEvent } from './events.ts';
import { EventBus, type BusEvent } from './bus.ts';
import type { ParsedMessage } from '../mime/types.ts';

export interface NewMessageRecord {
  mid: number;
  icid: number;
  parentMid: number | null;
  spoolFile: string;
  receivedAt: number;
  direction: 'incoming' | 'outgoing';
  listener: string;
  policy: string | null;
  sender: string;
  senderIp: string;
  rdns: string | null;
  helo: string | null;
  tls: string | null;
  size: number;
  recipients: Array<{ rid: number; address: string }>;
  status: MessageStatus;
}

/** Every search filter, as named in the API's query string and (kebab-cased) in the CLI. */
export const trackingFilters = [
  'sender',
  'recipient',
  'subject',
  'messageId',
  'mid',
  'ip',
  'sha256',
  'attachment',
  'urlDomain',
  'status',
  'level',
  'rule',
  'since',
  'until',
  'limit',
  'before',
] as const satisfies ReadonlyArray<keyof TrackingQuery>;

export interface TrackingQuery {
  sender?: string;
  recipient?: string;
  subject?: string;
  messageId?: string;
  mid?: number;
  ip?: string;
  sha256?: string;
  attachment?: string;
  urlDomain?: string;
  status?: string;
  /** threat level at least */
  level?: number;
  /** an outbreak or adaptive rule id that matched */
  rule?: string;
  since?: number;
  until?: number;
  limit?: number;
  /** paging: only records received strictly before this MID's position (receivedAt, mid) */
  before?: number;
}

export interface TrackingRecord {
  mid: number;
  icid: number;
  parentMid: number | null;
  receivedAt: string;
  direction: string;
  listener: string;
  policy: string | null;
  sender: string;
  recipients: Array<{ rid: number; address: string; status: string; attempts: number; lastReply: string | null }>;
  subject: string | null;
  messageId: string | null;
  headerFrom: string | null;
  senderIp: string;
  rdns: string | null;
  helo: string | null;
  tls: string | null;
  size: number;
  attachments: Array<{ name: string; trueType: string | null; size: number; sha256: string }>;
  urls: string[];
  status: string;
  threatLevel: number | null;
  /** the Outbreak Filters rules that matched, strongest first */
  threatRules: Array<{
    id: string;
    level: number;
    category: string;
    type: string;
    description: string;
    adaptive: boolean;
  }>;
  /** clicks on rewritten links (web interaction tracking) */
  clicks: Array<{ at: string; recipient: string; url: string; verdict: string; action: string; source: string }>;
  events: Array<{ at: string; type: string; [k: string]: unknown }>;
}

export class Tracker {
  private readonly store: Store;
  private readonly log: MailLog;
  /** where events are announced; this tracker is its first subscriber (record, then mail log line) */
  readonly bus: EventBus;

  constructor(store: Store, log: MailLog, bus: EventBus = new EventBus()) {
    this.store = store;
    this.log = log;
    this.bus = bus;
    bus.subscribe('tracking', (e) => this.record(e));
  }

  recordMessage(m: NewMessageRecord): void {
    this.store.run(
      `insert or ignore into messages(mid, icid, parent_mid, spool_file, received_at, direction, listener, policy, sender,
       sender_ip, rdns, helo, tls, size, status, updated_at) values (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
      m.mid,
      m.icid,
      m.parentMid,
      m.spoolFile,
      m.receivedAt,
      m.direction,
      m.listener,
      m.policy,
      escapeControls(m.sender.toLowerCase()),
      m.senderIp,
      m.rdns === null ? null : escapeControls(m.rdns),
      m.helo === null ? null : escapeControls(m.helo),
      m.tls,
      m.size,
      m.status,
      Date.now(),
    );
    for (const r of m.recipients)
      this.store.run(
        'insert or ignore into recipients(mid, rid, address, status) values (?, ?, ?, ?)',
        m.mid,
        r.rid,
        r.address.toLowerCase(),
        'queued',
      );
  }

  /** Announces an event on the bus (kept for callers not yet moved to emitting on the bus themselves). */
  event(mid: number, e: TrackingEvent, icid?: number): void {
    this.bus.emit(mid, e, icid);
  }

  /** The tracking subscriber: appends the event to the message's record and writes its mail log line. */
  private record({ mid, at, event: e, icid }: BusEvent): void {
    const { type, ...data } = e;
    // Peer text (subjects, replies, HELO) is kept with its control characters escaped (SECURITY.md).
    this.store.run(
      'insert into events(mid, at, type, data) values (?, ?, ?, ?)',
      mid,
      at,
      type,
      JSON.stringify(escapeDeep(data)),
    );
    this.logLine(mid, e, icid);
  }

  private logLine(mid: number, e: TrackingEvent, icid?: number): void {
    switch (e.type) {
      case 'ingress.accepted':
        this.log.info(`MID ${mid} ICID ${e.icid} From: <${e.sender}>`);
        e.recipients.forEach((r, i) => this.log.info(`MID ${mid} ICID ${e.icid} RID ${i} To: <${r}>`));
        this.log.info(`MID ${mid} ready ${e.size} bytes from ${e.senderIp}`);
        break;
      case 'policy.split':
        this.log.info(`MID ${mid} splintered into MIDs ${e.children.join(', ')} by policy`);
        break;
      case 'policy.matched':
        this.log.info(
          `MID ${mid} matched ${e.policy} policy` +
            (e.splinteredFrom !== null ? ` (splintered from MID ${e.splinteredFrom})` : ''),
        );
        break;
      case 'scan.parsed':
        if (e.messageId) this.log.info(`MID ${mid} Message-ID '${e.messageId}'`);
        if (e.subject !== null) this.log.info(`MID ${mid} Subject '${e.subject}'`);
        if (e.anomalies.length) this.log.warning(`MID ${mid} MIME anomalies: ${e.anomalies.join(', ')}`);
        break;
      case 'stage.failed':
        this.log.warning(`MID ${mid} stage ${e.stage} failed (${e.failureMode}): ${e.error}`);
        break;
      case 'scan.unscannable':
        this.log.warning(`MID ${mid} unscannable: ${e.limits.join(', ')} limit reached; action ${e.action}`);
        break;
      case 'verdict':
        this.log.info(`MID ${mid} verdict ${e.verdict} (${e.reason})`);
        break;
      case 'delivery.start':
        this.log.info(`Delivery start DCID ${e.dcid} MID ${mid} to RID [${e.rids.join(', ')}]`);
        break;
      case 'delivery.delivered':
        this.log.info(`Message done DCID ${e.dcid} MID ${mid} to RID [${e.rid}] [('${e.address}', '${e.reply}')]`);
        break;
      case 'delivery.deferred':
        this.log.info(
          `Delayed: DCID ${e.dcid ?? '-'} MID ${mid} to RID ${e.rid} - ${e.reply} (next attempt ${new Date(e.nextAttemptAt).toISOString()})`,
        );
        break;
      case 'delivery.bounced':
        this.log.info(`Bounced: DCID ${e.dcid ?? '-'} MID ${mid} to RID ${e.rid} - ${e.reply}`);
        break;
      case 'delivery.dsn':
        this.log.info(`MID ${mid} DSN sent as MID ${e.bounceMid} for RID [${e.rids.join(', ')}]`);
        break;
      case 'delivery.dsn_suppressed':
        this.log.info(`MID ${mid} no DSN for RID [${e.rids.join(', ')}]: ${e.reason}`);
        break;
      case 'admin.retry':
        this.log.info(`MID ${mid} retry requested by administrator for RID [${e.rids.join(', ')}]`);
        break;
      case 'admin.deleted':
        this.log.info(`MID ${mid} deleted by administrator for RID [${e.rids.join(', ')}]`);
        break;
      case 'antivirus.scanned':
        this.log.info(
          `MID ${mid} antivirus ${e.verdict}${e.names.length ? ` ${e.names.join(', ')}` : ''}${e.reason ? ` (${e.reason})` : ''}`,
        );
        break;
      case 'antivirus.stripped':
        this.log.info(`MID ${mid} antivirus: ${e.parts.length} infected attachment(s) removed`);
        break;
      case 'outbreak.scored':
        if (e.skipped) this.log.info(`MID ${mid} Outbreak Filters: not scanned (${e.skipped})`);
        if (e.partial) this.log.info(`MID ${mid} Outbreak Filters: content scored up to maxScanSize`);
        else if (e.level > 0)
          this.log.info(
            `MID ${mid} Outbreak Filters: verdict positive (${e.ruleIds.slice(0, 5).join(', ')} level ${e.level})`,
          );
        else this.log.info(`MID ${mid} Outbreak Filters: verdict negative`);
        break;
      case 'outbreak.modified':
        this.log.info(
          `MID ${mid} Outbreak Filters: modified (${[
            e.subject ? 'subject' : '',
            e.headers.length ? 'headers' : '',
            e.disclaimerParts ? 'disclaimer' : '',
            e.rewrittenUrls ? `${e.rewrittenUrls} URL(s) rewritten` : '',
            e.rewriteSkipped ? `rewriting skipped: ${e.rewriteSkipped}` : '',
            e.alternateMailHost ? `to ${e.alternateMailHost}` : '',
          ]
            .filter(Boolean)
            .join(', ')})`,
        );
        break;
      case 'quarantine.held':
        this.log.info(`MID ${mid} quarantined to "${quarantineLabel(e.quarantine)}" (${e.reason})`);
        break;
      case 'quarantine.rescored':
        this.log.info(`MID ${mid} rescanned in quarantine "${quarantineLabel(e.quarantine)}": level ${e.level}`);
        break;
      case 'quarantine.released':
        this.log.info(
          `MID ${mid} released from quarantine "${quarantineLabel(e.quarantine)}" (${e.reason})` +
            (e.stillIn?.length ? `; still in ${e.stillIn.map((q) => `"${quarantineLabel(q)}"`).join(', ')}` : ''),
        );
        break;
      case 'quarantine.deleted':
        this.log.info(
          `MID ${mid} deleted from quarantine "${quarantineLabel(e.quarantine)}" (${e.reason})` +
            (e.alsoIn?.length
              ? `; also removed from ${e.alsoIn.map((q) => `"${quarantineLabel(q)}"`).join(', ')}`
              : ''),
        );
        break;
      case 'quarantine.moved':
        this.log.info(
          `MID ${mid} moved from quarantine "${quarantineLabel(e.quarantine)}" to "${quarantineLabel(e.to)}"` +
            (e.by ? ` by ${e.by}` : ''),
        );
        break;
      case 'quarantine.copied':
        this.log.info(
          `MID ${mid} copy sent from quarantine "${quarantineLabel(e.quarantine)}" to ${e.to.map((a) => `<${a}>`).join(', ')} as MID ${e.copyMid}`,
        );
        break;
      case 'quarantine.overflow':
        this.log.warning(
          `MID ${mid} quarantine "${quarantineLabel(e.quarantine)}" over capacity (${e.usedBytes} of ${e.maxSize} bytes): oldest message takes its default action, ${e.action}`,
        );
        break;
      case 'quarantine.delayed':
        this.log.info(
          `MID ${mid} scheduled exit from quarantine "${quarantineLabel(e.quarantine)}" moved to ${new Date(e.exitAt).toISOString()}`,
        );
        break;
      case 'click':
        this.log.info(
          `MID ${mid} click by <${e.recipient}> on ${e.url}: ${e.verdict}, ${e.action}` +
            (e.source && e.source !== 'none' ? ` (from ${e.source})` : ''),
        );
        break;
      case 'message.done':
        this.log.info(`Message finished MID ${mid} ${e.status}` + (icid !== undefined ? ` ICID ${icid}` : ''));
        break;
      default: {
        const never: never = e;
        throw new Error(`unknown event ${(never as { type: string }).type}`);
      }
    }
  }

  connection(text: string): void {
    this.log.info(text);
  }

  /** Records what the parse found; `replace` (a rescan after a restart) drops what an earlier scan recorded. */
  setParsed(mid: number, p: ParsedMessage, replace = false): void {
    const run = this.store.run.bind(this.store);
    run(
      'update messages set subject = ?, message_id = ?, header_from = ?, updated_at = ? where mid = ?',
      p.subject === null ? null : escapeControls(p.subject),
      p.messageId === null ? null : escapeControls(p.messageId),
      p.from === null ? null : escapeControls(p.from),
      Date.now(),
      mid,
    );
    if (replace) {
      run('delete from subjects where rowid = ?', mid);
      run('delete from attachments where mid = ?', mid);
      run('delete from urls where mid = ?', mid);
    }
    if (p.subject) run('insert into subjects(rowid, subject) values (?, ?)', mid, escapeControls(p.subject));
    for (const a of p.attachments)
      run(
        'insert into attachments(mid, name, true_type, size, sha256) values (?, ?, ?, ?, ?)',
        mid,
        escapeControls(a.name),
        a.trueType,
        a.size,
        a.sha256,
      );
    const seen = new Set<string>();
    for (const u of p.urls) {
      if (seen.has(u.url)) continue;
      seen.add(u.url);
      run('insert into urls(mid, url, domain) values (?, ?, ?)', mid, u.url, u.domain ?? u.host);
    }
  }

  /**
   * Records a message's Outbreak Filters score: level and matching rules (searchable by level and rule).
   * `replace` (a rescan) drops the rules an earlier scan recorded.
   */
  setThreat(
    mid: number,
    level: number,
    hits: ReadonlyArray<{
      id: string;
      level: number;
      category: string;
      type: string;
      description: string;
      adaptive: boolean;
    }>,
    replace = true,
  ): void {
    this.store.run('update messages set threat_level = ? where mid = ?', level, mid);
    // A first scan has nothing to replace: skip the delete on the hot path.
    if (replace) this.store.run('delete from message_rules where mid = ?', mid);
    for (const h of hits.slice(0, 50))
      this.store.run(
        'insert or ignore into message_rules(mid, rule_id, level, category, type, description, adaptive) values (?,?,?,?,?,?,?)',
        mid,
        h.id,
        h.level,
        h.category,
        h.type,
        h.description,
        h.adaptive ? 1 : 0,
      );
  }

  setPolicy(mid: number, policy: string): void {
    this.store.run('update messages set policy = ? where mid = ?', policy, mid);
  }

  setRecipient(
    mid: number,
    rid: number,
    status: RecipientStatus,
    reply: string | null,
    nextAttemptAt: number | null,
  ): void {
    this.store.run(
      'update recipients set status = ?, last_reply = coalesce(?, last_reply), next_attempt_at = ?, attempts = attempts + (case when ? is null then 0 else 1 end) where mid = ? and rid = ?',
      status,
      reply,
      nextAttemptAt,
      reply,
      mid,
      rid,
    );
  }

  /**
   * Recipients of `mid` recorded as bounced whose DSN was neither spooled nor suppressed (no
   * `delivery.dsn` / `delivery.dsn_suppressed` event names them): the process stopped between the
   * bounce and the DSN reaching the spool. Each with the reply and target of its bounce, for the DSN.
   */
  bouncesWithoutDsn(
    mid: number,
  ): Array<{ rid: number; address: string; outcome: 'bounced'; reply: string; target: string }> {
    const covered = new Set<number>();
    const targets = new Map<number, string>();
    const events = this.store
      .stmt(
        "select type, data from events where mid = ? and type in ('delivery.bounced', 'delivery.dsn', 'delivery.dsn_suppressed') order by id",
      )
      .all(mid) as Array<{ type: string; data: string }>;
    for (const e of events) {
      const d = JSON.parse(e.data) as { rid?: number; rids?: number[]; target?: string };
      if (e.type === 'delivery.bounced') targets.set(d.rid!, d.target ?? 'policy');
      else for (const rid of d.rids ?? []) covered.add(rid);
    }
    const rows = this.store
      .stmt("select rid, address, last_reply from recipients where mid = ? and status = 'bounced' order by rid")
      .all(mid) as Array<{ rid: number; address: string; last_reply: string | null }>;
    return rows
      .filter((r) => !covered.has(r.rid))
      .map((r) => ({
        rid: r.rid,
        address: r.address,
        outcome: 'bounced' as const,
        reply: r.last_reply ?? '5.0.0 bounced',
        // a policy bounce has no delivery event: no remote MTA in the DSN
        target: targets.get(r.rid) ?? 'policy',
      }));
  }

  setStatus(mid: number, status: MessageStatus, done: boolean): void {
    this.store.run(
      'update messages set status = ?, done = ?, updated_at = ? where mid = ?',
      status,
      done ? 1 : 0,
      Date.now(),
      mid,
    );
  }

  search(q: TrackingQuery): TrackingRecord[] {
    const where: string[] = [];
    const args: Array<string | number> = [];
    if (q.mid !== undefined) {
      where.push('m.mid = ?');
      args.push(q.mid);
    }
    if (q.sender) {
      where.push('m.sender = ?');
      args.push(q.sender.toLowerCase());
    }
    if (q.recipient) {
      where.push('m.mid in (select mid from recipients where address = ?)');
      args.push(q.recipient.toLowerCase());
    }
    if (q.messageId) {
      const id = q.messageId.trim();
      where.push('m.message_id in (?, ?)');
      args.push(id, id.startsWith('<') ? id.slice(1, -1) : `<${id}>`);
    }
    if (q.ip) {
      where.push('m.sender_ip = ?');
      args.push(q.ip);
    }
    if (q.sha256) {
      where.push('m.mid in (select mid from attachments where sha256 = ?)');
      args.push(q.sha256.toLowerCase());
    }
    if (q.attachment) {
      where.push('m.mid in (select mid from attachments where name = ? collate nocase)');
      args.push(q.attachment);
    }
    if (q.urlDomain) {
      where.push('m.mid in (select mid from urls where domain = ?)');
      args.push(q.urlDomain.toLowerCase());
    }
    if (q.status) {
      where.push('(m.status = ? or m.mid in (select mid from recipients where status = ?))');
      args.push(q.status, q.status);
    }
    if (q.level !== undefined) {
      where.push('m.threat_level >= ?');
      args.push(q.level);
    }
    if (q.rule) {
      where.push('m.mid in (select mid from message_rules where rule_id = ?)');
      args.push(q.rule);
    }
    if (q.subject) {
      if ([...q.subject].length >= 3) {
        // Trigram full-text index answers "contains" without scanning every row.
        where.push("m.mid in (select rowid from subjects where subject match ?) and m.subject like ? escape '\\'");
        args.push(`"${q.subject.replace(/"/g, '""')}"`, `%${likeEscape(q.subject)}%`);
      } else {
        where.push("m.subject like ? escape '\\'");
        args.push(`%${likeEscape(q.subject)}%`);
      }
    }
    if (q.since !== undefined) {
      where.push('m.received_at >= ?');
      args.push(q.since);
    }
    if (q.until !== undefined) {
      where.push('m.received_at < ?');
      args.push(q.until);
    }
    if (q.before !== undefined) {
      where.push('m.mid < ?');
      args.push(q.before);
    }
    const limit = Math.min(Math.max(q.limit ?? 100, 1), 10_000);
    const sql = `select m.* from messages m ${where.length ? 'where ' + where.join(' and ') : ''} order by m.received_at desc, m.mid desc limit ${limit}`;
    const rows = this.store.db.prepare(sql).all(...args) as unknown as MessageRow[];
    return rows.map((r) => this.toRecord(r, false));
  }

  show(mid: number): TrackingRecord | null {
    const row = this.store.stmt('select * from messages where mid = ?').get(mid) as unknown as MessageRow | undefined;
    return row ? this.toRecord(row, true) : null;
  }

  private toRecord(r: MessageRow, withEvents: boolean): TrackingRecord {
    const recipients = (
      this.store
        .stmt('select rid, address, status, attempts, last_reply from recipients where mid = ? order by rid')
        .all(r.mid) as unknown as Array<{
        rid: number;
        address: string;
        status: string;
        attempts: number;
        last_reply: string | null;
      }>
    ).map((x) => ({ rid: x.rid, address: x.address, status: x.status, attempts: x.attempts, lastReply: x.last_reply }));
    const attachments = (
      this.store
        .stmt('select name, true_type, size, sha256 from attachments where mid = ?')
        .all(r.mid) as unknown as Array<{
        name: string;
        true_type: string | null;
        size: number;
        sha256: string;
      }>
    ).map((a) => ({ name: a.name, trueType: a.true_type, size: a.size, sha256: a.sha256 }));
    const urls = (
      this.store.stmt('select url from urls where mid = ?').all(r.mid) as unknown as Array<{ url: string }>
    ).map((u) => u.url);
    const threatRules = (
      this.store
        .stmt(
          'select rule_id, level, category, type, description, adaptive from message_rules where mid = ? order by level desc, rule_id',
        )
        .all(r.mid) as unknown as Array<{
        rule_id: string;
        level: number;
        category: string;
        type: string;
        description: string;
        adaptive: number;
      }>
    ).map((x) => ({
      id: x.rule_id,
      level: x.level,
      category: x.category,
      type: x.type,
      description: x.description,
      adaptive: !!x.adaptive,
    }));
    const clicks = withEvents
      ? (
          this.store
            .stmt('select at, recipient, url, verdict, action, source from clicks where mid = ? order by id')
            .all(r.mid) as unknown as Array<{
            at: number;
            recipient: string;
            url: string;
            verdict: string;
            action: string;
            source: string;
          }>
        ).map((c) => ({ ...c, at: new Date(c.at).toISOString() }))
      : [];
    const events = withEvents
      ? (
          this.store
            .stmt('select at, type, data from events where mid = ? order by id')
            .all(r.mid) as unknown as Array<{
            at: number;
            type: string;
            data: string;
          }>
        ).map((e) => ({ at: new Date(e.at).toISOString(), type: e.type, ...(JSON.parse(e.data || '{}') as object) }))
      : [];
    return {
      mid: r.mid,
      icid: r.icid,
      parentMid: r.parent_mid,
      receivedAt: new Date(r.received_at).toISOString(),
      direction: r.direction,
      listener: r.listener,
      policy: r.policy,
      sender: r.sender,
      recipients,
      subject: r.subject,
      messageId: r.message_id,
      headerFrom: r.header_from,
      senderIp: r.sender_ip,
      rdns: r.rdns,
      helo: r.helo,
      tls: r.tls,
      size: r.size,
      attachments,
      urls,
      status: r.status,
      threatLevel: r.threat_level,
      threatRules,
      clicks,
      events,
    };
  }
}

function quarantineLabel(q: string): string {
  return q === 'outbreak' ? 'Outbreak' : q === 'virus' ? 'Virus' : q;
}

function likeEscape(s: string): string {
  return s.replace(/[\\%_]/g, (c) => '\\' + c);
}

interface MessageRow {
  mid: number;
  icid: number;
  parent_mid: number | null;
  spool_file: string;
  received_at: number;
  direction: string;
  listener: string;
  policy: string | null;
  sender: string;
  sender_ip: string;
  rdns: string | null;
  helo: string | null;
  tls: string | null;
  header_from: string | null;
  subject: string | null;
  message_id: string | null;
  size: number;
  status: string;
  threat_level: number | null;
  updated_at: number;
  done: number;
}
