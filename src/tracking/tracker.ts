// Message tracking (DESIGN §8): the record per MID, built from the events on the bus alone, and search.
import { escapeControls, escapeDeep } from './escape.ts';
import { FROM_ADDRESS_SQL, SENDER_DOMAIN_SQL, type Store } from '../store/db.ts';
import {
  storedEventData,
  type MessageStatus,
  type ParsedDetail,
  type RecipientStatus,
  type ThreatDetail,
  type TrackingEvent,
  type DeliveryTlsInfo,
} from './events.ts';
import type { EventBus, BusEvent } from './bus.ts';
import { urlHost } from '../mime/urls.ts';

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
  'url',
  'senderDomain',
  'fromAddress',
  'status',
  'level',
  'rule',
  'auth',
  'spamAction',
  'spamScore',
  'since',
  'until',
  'limit',
  'before',
] as const satisfies ReadonlyArray<keyof TrackingQuery>;

/** Recipients with one status at or above which a status search reads messages in order (see search). */
const COMMON_STATUS_ROWS = 5000;

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
  /** a URL in the message, exactly */
  url?: string;
  /** the envelope sender's domain */
  senderDomain?: string;
  /** the address in the header From */
  fromAddress?: string;
  status?: string;
  /** threat level at least */
  level?: number;
  /** an outbreak or adaptive rule id that matched */
  rule?: string;
  /** a sender-authentication result, "method=result": dmarc=fail, spf=softfail, dkim=pass, arc=fail, helo=fail */
  auth?: string;
  /** rspamd's action ("no action", "add header", "reject", …) */
  spamAction?: string;
  /** rspamd's score at least */
  spamScore?: number;
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
  recipients: Array<{
    rid: number;
    address: string;
    status: string;
    attempts: number;
    lastReply: string | null;
    /** the TLS of the last delivery attempt (tlsSummary): "TLSv1.3 … verified (verify)", "none: … (require)" */
    tls: string | null;
  }>;
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
  /** where services announce events; this tracker subscribes to it */
  readonly bus: EventBus;

  constructor(store: Store, bus: EventBus) {
    this.store = store;
    this.bus = bus;
    bus.subscribe('tracking', (e) => this.record(e));
  }

  /**
   * The tracking subscriber: appends the event to the message's record (the events table, which is
   * also the ordered outbox a hub stream reads) and applies what it means to the record's state, in the
   * same write batch.
   */
  private record({ mid, at, event: e }: BusEvent): void {
    // Peer text (subjects, replies, HELO) is kept with its control characters escaped (SECURITY.md).
    this.store.run(
      'insert into events(mid, at, type, data) values (?, ?, ?, ?)',
      mid,
      at,
      e.type,
      JSON.stringify(escapeDeep(storedEventData(e))),
    );
    this.apply(mid, at, e);
  }

  /** What an event means for the record: its status, its recipients' statuses and its search facts. */
  private apply(mid: number, at: number, e: TrackingEvent): void {
    switch (e.type) {
      case 'ingress.accepted':
        this.createRecord(mid, at, e);
        break;
      case 'policy.split':
        for (const c of e.copies ?? []) this.createCopy(c.mid, mid, c.policy, c.recipients);
        this.recipientsWhereOpen(mid, 'splintered');
        this.setStatus(mid, 'splintered', true);
        break;
      case 'policy.matched':
        this.store.run(
          "update messages set policy = ?, status = 'scanning', updated_at = ? where mid = ?",
          e.policy,
          at,
          mid,
        );
        break;
      case 'scan.parsed':
        if (e.detail) this.setParsed(mid, e, e.detail);
        break;
      case 'outbreak.scored':
        if (e.detail) this.setThreat(mid, e.level, e.detail);
        break;
      case 'auth.checked':
        this.setAuth(mid, e);
        break;
      case 'antispam.scanned':
        // a rescan (release, restart) replaces what an earlier scan recorded
        this.store.run(
          'insert or replace into message_antispam(mid, action, score) values (?, ?, ?)',
          mid,
          e.action,
          e.score,
        );
        break;
      case 'verdict':
        if (e.verdict === 'tempfail') this.setStatus(mid, 'deferred', false);
        else if (e.verdict === 'drop') this.recipientsWhereOpen(mid, 'dropped');
        break;
      case 'delivery.queued':
        this.setStatus(mid, 'queued', false);
        break;
      case 'delivery.delivered':
        this.setRecipient(mid, e.rid, 'delivered', e.reply, null, e.tls);
        break;
      case 'delivery.bounced':
        this.setRecipient(mid, e.rid, 'bounced', e.reply, null, e.tls);
        break;
      case 'delivery.deferred':
        this.setRecipient(mid, e.rid, 'deferred', e.reply, e.nextAttemptAt, e.tls);
        break;
      case 'admin.deleted':
        for (const rid of e.rids) this.setRecipient(mid, rid, 'deleted', null, null);
        break;
      case 'quarantine.held':
        if (e.rids) for (const rid of e.rids) this.setRecipient(mid, rid, 'quarantined', null, null);
        else this.recipientsWhereOpen(mid, 'quarantined');
        this.setStatus(mid, 'quarantined', false);
        break;
      case 'quarantine.released':
        // Still held elsewhere: nothing changes until the last quarantine lets it go.
        if (e.stillIn?.length) break;
        this.recipientsWhereOpen(mid, 'released');
        this.setStatus(mid, 'scanning', false);
        break;
      case 'quarantine.deleted':
        this.recipientsWhereOpen(mid, 'deleted');
        this.setStatus(mid, 'deleted', true);
        break;
      case 'quarantine.recipient_released':
        for (const rid of e.rids) this.setRecipient(mid, rid, 'released', null, null);
        break;
      case 'quarantine.recipient_deleted':
        for (const rid of e.rids) this.setRecipient(mid, rid, 'deleted', null, null);
        break;
      case 'click':
        this.recordClick(mid, at, e);
        break;
      case 'message.done':
        this.setStatus(mid, e.status, true);
        break;
      default:
        break;
    }
  }

  private createRecord(mid: number, at: number, e: Extract<TrackingEvent, { type: 'ingress.accepted' }>): void {
    this.store.run(
      `insert or ignore into messages(mid, icid, parent_mid, spool_file, received_at, direction, listener, policy, sender,
       sender_ip, rdns, helo, tls, size, status, updated_at) values (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
      mid,
      e.icid,
      null,
      e.spoolFile ?? '',
      e.receivedAt ?? at,
      e.direction ?? 'incoming',
      e.listener,
      null,
      escapeControls(e.sender.toLowerCase()),
      e.senderIp,
      e.rdns == null ? null : escapeControls(e.rdns),
      e.helo === null ? null : escapeControls(e.helo),
      e.tls,
      e.size,
      'received',
      at,
    );
    e.recipients.forEach((address, rid) =>
      this.store.run(
        'insert or ignore into recipients(mid, rid, address, status) values (?, ?, ?, ?)',
        mid,
        rid,
        address.toLowerCase(),
        'queued',
      ),
    );
  }

  /** A policy-split copy: the original's envelope, its own MID, policy and recipients. */
  private createCopy(mid: number, parentMid: number, policy: string, recipients: string[]): void {
    this.store.run(
      `insert or ignore into messages(mid, icid, parent_mid, spool_file, received_at, direction, listener, policy, sender,
       sender_ip, rdns, helo, tls, size, status, updated_at)
       select ?, icid, mid, spool_file, received_at, direction, listener, ?, sender, sender_ip, rdns, helo, tls, size,
       'scanning', updated_at from messages where mid = ?`,
      mid,
      policy,
      parentMid,
    );
    recipients.forEach((address, rid) =>
      this.store.run(
        'insert or ignore into recipients(mid, rid, address, status) values (?, ?, ?, ?)',
        mid,
        rid,
        address.toLowerCase(),
        'queued',
      ),
    );
  }

  /** Records what the parse found; a rescan drops what an earlier scan recorded. */
  private setParsed(mid: number, p: { subject: string | null; messageId: string | null }, d: ParsedDetail): void {
    const run = this.store.run.bind(this.store);
    run(
      'update messages set subject = ?, message_id = ?, header_from = ?, updated_at = ? where mid = ?',
      p.subject === null ? null : escapeControls(p.subject),
      p.messageId === null ? null : escapeControls(p.messageId),
      d.from === null ? null : escapeControls(d.from),
      Date.now(),
      mid,
    );
    if (d.replace) {
      run('delete from subjects where rowid = ?', mid);
      run('delete from attachments where mid = ?', mid);
      run('delete from urls where mid = ?', mid);
    }
    if (p.subject) run('insert into subjects(rowid, subject) values (?, ?)', mid, escapeControls(p.subject));
    for (const a of d.attachments)
      run(
        'insert into attachments(mid, name, true_type, size, sha256) values (?, ?, ?, ?, ?)',
        mid,
        escapeControls(a.name),
        a.trueType,
        a.size,
        a.sha256,
      );
    const seen = new Set<string>();
    for (const u of d.urls) {
      if (seen.has(u.url)) continue;
      seen.add(u.url);
      run('insert into urls(mid, url, domain) values (?, ?, ?)', mid, u.url, u.domain);
    }
  }

  /** A message's Outbreak Filters score: level and matching rules (searchable by level and rule). */
  private setThreat(mid: number, level: number, d: ThreatDetail): void {
    this.store.run('update messages set threat_level = ? where mid = ?', level, mid);
    // A first scan has nothing to replace: skip the delete on the hot path.
    if (d.replace) this.store.run('delete from message_rules where mid = ?', mid);
    for (const h of d.hits.slice(0, 50))
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

  /** Sender-authentication results, one row per method and result (searchable as "dmarc=fail"). */
  private setAuth(mid: number, e: Extract<TrackingEvent, { type: 'auth.checked' }>): void {
    // a rescan (release, restart) replaces what an earlier one recorded
    this.store.run('delete from message_auth where mid = ?', mid);
    const rows = new Set([
      `spf=${e.spf}`,
      `dmarc=${e.dmarc}`,
      `arc=${e.arc}`,
      ...(e.spfHelo ? [`helo=${e.spfHelo}`] : []),
      ...(e.dkim.length ? e.dkim.map((d) => `dkim=${d.result}`) : ['dkim=none']),
    ]);
    for (const r of rows) {
      const [method, result] = r.split('=');
      this.store.run('insert or ignore into message_auth(mid, method, result) values (?, ?, ?)', mid, method, result);
    }
  }

  /** Web interaction tracking: one row per click on a rewritten link. */
  private recordClick(mid: number, at: number, e: Extract<TrackingEvent, { type: 'click' }>): void {
    let domain: string | null = null;
    try {
      domain = urlHost(e.url);
    } catch {
      domain = null;
    }
    this.store.run(
      'insert into clicks(at, mid, recipient, url, domain, verdict, action, reason, rule_ids, source) values (?,?,?,?,?,?,?,?,?,?)',
      at,
      mid,
      e.recipient,
      e.url,
      domain,
      e.verdict,
      e.action,
      e.reason ?? '',
      e.ruleIds.join(' '),
      e.source,
    );
  }

  private setRecipient(
    mid: number,
    rid: number,
    status: RecipientStatus,
    reply: string | null,
    nextAttemptAt: number | null,
    tls?: DeliveryTlsInfo,
  ): void {
    this.store.run(
      'update recipients set status = ?, last_reply = coalesce(?, last_reply), next_attempt_at = ?, attempts = attempts + (case when ? is null then 0 else 1 end), last_tls = coalesce(?, last_tls) where mid = ? and rid = ?',
      status,
      reply,
      nextAttemptAt,
      reply,
      tls ? escapeControls(tlsSummary(tls)) : null,
      mid,
      rid,
    );
  }

  /** Every recipient not yet settled (delivered, bounced, deleted, dropped) takes `status`. */
  private recipientsWhereOpen(mid: number, status: RecipientStatus): void {
    this.store.run(
      "update recipients set status = ?, next_attempt_at = null where mid = ? and status not in ('delivered', 'bounced', 'deleted', 'dropped')",
      status,
      mid,
    );
  }

  private setStatus(mid: number, status: MessageStatus, done: boolean): void {
    this.store.run(
      'update messages set status = ?, done = ?, updated_at = ? where mid = ?',
      status,
      done ? 1 : 0,
      Date.now(),
      mid,
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

  search(q: TrackingQuery): TrackingRecord[] {
    const { sql, args } = this.searchSql(q);
    const rows = this.store.db.prepare(sql).all(...args) as unknown as MessageRow[];
    return this.toRecords(rows, false);
  }

  /** The SQL of a search (tests check its query plan: every filter is answered from an index). */
  searchSql(q: TrackingQuery): { sql: string; args: Array<string | number> } {
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
    if (q.url) {
      where.push('m.mid in (select mid from urls where url = ?)');
      args.push(q.url);
    }
    if (q.senderDomain) {
      where.push(`${SENDER_DOMAIN_SQL} = ?`);
      args.push(q.senderDomain.toLowerCase());
    }
    if (q.fromAddress) {
      where.push(`${FROM_ADDRESS_SQL} = ?`);
      args.push(q.fromAddress.toLowerCase());
    }
    if (q.status) {
      // Two plans, chosen by how common the recipient status is (counted on its index, up to a cap): a
      // rare one ("quarantined", "bounced" on a good day) as a list of MIDs from the index; a common
      // one ("delivered") as a primary-key lookup per message read in received order, which stops after
      // `limit` matches — its MID list would be most of the table.
      const common =
        (
          this.store
            .stmt('select count(*) n from (select 1 from recipients where status = ? limit ?)')
            .get(q.status, COMMON_STATUS_ROWS) as { n: number }
        ).n >= COMMON_STATUS_ROWS;
      where.push(
        common
          ? '(m.status = ? or exists (select 1 from recipients r where r.mid = m.mid and r.status = ?))'
          : '(m.status = ? or m.mid in (select mid from recipients where status = ?))',
      );
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
    if (q.auth) {
      const [method, result = ''] = q.auth.toLowerCase().split('=', 2);
      where.push('m.mid in (select mid from message_auth where method = ? and result = ?)');
      args.push(method.trim(), result.trim());
    }
    if (q.spamAction) {
      where.push('m.mid in (select mid from message_antispam where action = ?)');
      args.push(q.spamAction);
    }
    if (q.spamScore !== undefined) {
      where.push('m.mid in (select mid from message_antispam where score >= ?)');
      args.push(q.spamScore);
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
    return { sql, args };
  }

  show(mid: number): TrackingRecord | null {
    const row = this.store.stmt('select * from messages where mid = ?').get(mid) as unknown as MessageRow | undefined;
    return row ? this.toRecords([row], true)[0] : null;
  }

  /**
   * Records of many messages at once: one query per table for all of them (searches and the hub stream
   * ask for hundreds). `events`: every event (show), only these types, or none.
   */
  private toRecords(rows: MessageRow[], events: boolean | readonly string[]): TrackingRecord[] {
    if (!rows.length) return [];
    const mids = JSON.stringify(rows.map((r) => r.mid));
    const inMids = 'mid in (select value from json_each(?))';
    const group = <T extends { mid: number }>(list: T[]): Map<number, T[]> => {
      const m = new Map<number, T[]>();
      for (const x of list) {
        const l = m.get(x.mid);
        if (l) l.push(x);
        else m.set(x.mid, [x]);
      }
      return m;
    };
    const all = <T>(sql: string, ...args: Array<string | number>) =>
      this.store.stmt(sql).all(mids, ...args) as unknown as T[];
    const recipients = group(
      all<{
        mid: number;
        rid: number;
        address: string;
        status: string;
        attempts: number;
        last_reply: string | null;
        last_tls: string | null;
      }>(
        `select mid, rid, address, status, attempts, last_reply, last_tls from recipients where ${inMids} order by mid, rid`,
      ),
    );
    const attachments = group(
      all<{ mid: number; name: string; true_type: string | null; size: number; sha256: string }>(
        `select mid, name, true_type, size, sha256 from attachments where ${inMids} order by mid, rowid`,
      ),
    );
    const urls = group(
      all<{ mid: number; url: string }>(`select mid, url from urls where ${inMids} order by mid, rowid`),
    );
    const rules = group(
      all<{
        mid: number;
        rule_id: string;
        level: number;
        category: string;
        type: string;
        description: string;
        adaptive: number;
      }>(
        `select mid, rule_id, level, category, type, description, adaptive from message_rules where ${inMids} order by mid, level desc, rule_id`,
      ),
    );
    const clicks = group(
      events === true
        ? all<{
            mid: number;
            at: number;
            recipient: string;
            url: string;
            verdict: string;
            action: string;
            source: string;
          }>(`select mid, at, recipient, url, verdict, action, source from clicks where ${inMids} order by id`)
        : [],
    );
    const eventRows = group(
      events === false
        ? []
        : events === true
          ? all<{ mid: number; at: number; type: string; data: string }>(
              `select mid, at, type, data from events where ${inMids} order by id`,
            )
          : all<{ mid: number; at: number; type: string; data: string }>(
              `select mid, at, type, data from events where ${inMids} and type in (select value from json_each(?)) order by id`,
              JSON.stringify(events),
            ),
    );
    return rows.map((r) => ({
      mid: r.mid,
      icid: r.icid,
      parentMid: r.parent_mid,
      receivedAt: new Date(r.received_at).toISOString(),
      direction: r.direction,
      listener: r.listener,
      policy: r.policy,
      sender: r.sender,
      recipients: (recipients.get(r.mid) ?? []).map((x) => ({
        rid: x.rid,
        address: x.address,
        status: x.status,
        attempts: x.attempts,
        lastReply: x.last_reply,
        tls: x.last_tls,
      })),
      subject: r.subject,
      messageId: r.message_id,
      headerFrom: r.header_from,
      senderIp: r.sender_ip,
      rdns: r.rdns,
      helo: r.helo,
      tls: r.tls,
      size: r.size,
      attachments: (attachments.get(r.mid) ?? []).map((a) => ({
        name: a.name,
        trueType: a.true_type,
        size: a.size,
        sha256: a.sha256,
      })),
      urls: (urls.get(r.mid) ?? []).map((u) => u.url),
      status: r.status,
      threatLevel: r.threat_level,
      threatRules: (rules.get(r.mid) ?? []).map((x) => ({
        id: x.rule_id,
        level: x.level,
        category: x.category,
        type: x.type,
        description: x.description,
        adaptive: !!x.adaptive,
      })),
      clicks: (clicks.get(r.mid) ?? []).map(({ mid: _m, ...c }) => ({ ...c, at: new Date(c.at).toISOString() })),
      events: (eventRows.get(r.mid) ?? []).map((e) => ({
        at: new Date(e.at).toISOString(),
        type: e.type,
        ...(JSON.parse(e.data || '{}') as object),
      })),
    }));
  }

  /** Records of these MIDs (those that exist, in the order given), with the events of these types only. */
  showMany(mids: readonly number[], eventTypes: readonly string[]): TrackingRecord[] {
    if (!mids.length) return [];
    const rows = this.store
      .stmt('select * from messages where mid in (select value from json_each(?))')
      .all(JSON.stringify(mids)) as unknown as MessageRow[];
    const byMid = new Map(rows.map((r) => [r.mid, r]));
    return this.toRecords(
      mids.map((m) => byMid.get(m)).filter((r): r is MessageRow => !!r),
      eventTypes,
    );
  }
}

/** One line for the TLS column: "TLSv1.3 TLS_AES_256_GCM_SHA384 verified (verify)", "none: … (require)". */
export function tlsSummary(t: DeliveryTlsInfo): string {
  const what = t.protocol
    ? `${t.protocol} ${t.cipher ?? ''} ${t.verified ? 'verified' : `not verified: ${t.reason}`}`
    : `none: ${t.reason}`;
  return `${what.replace(/\s+/g, ' ').trim()} (${t.policy})${t.note ? `; ${t.note}` : ''}`;
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
