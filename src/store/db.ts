// The embedded store: one SQLite database (node:sqlite, WAL) for queue state and tracking.
// Writes from the hot path are batched into one transaction per event-loop turn and applied by a
// writer thread; reads use this thread's own connection (WAL lets them run side by side). The spool
// files, not this database, are what makes an accepted message durable.
import { DatabaseSync, type StatementSync, type SQLInputValue } from 'node:sqlite';
import { Worker } from 'node:worker_threads';
import type { WriteAck, WriteBatch } from './writer.ts';
import { isSqliteStorageError } from './errors.ts';
import { mkdirSync } from 'node:fs';
import path from 'node:path';

const SCHEMA_VERSION = 1;

/**
 * The envelope sender's domain and the header From's address, as SQL expressions. Indexed as written
 * (expression indexes below); a query must use the very same expression for SQLite to use the index.
 */
export const SENDER_DOMAIN_SQL = "substr(sender, instr(sender, '@') + 1)";
export const FROM_ADDRESS_SQL =
  "lower(trim(case when instr(header_from, '<') > 0 then substr(header_from, instr(header_from, '<') + 1, instr(substr(header_from, instr(header_from, '<') + 1), '>') - 1) else header_from end))";

const SCHEMA = `
create table if not exists meta (key text primary key, value text not null);
create table if not exists messages (
  mid integer primary key,
  icid integer not null,
  parent_mid integer,
  spool_file text not null,
  received_at integer not null,
  direction text not null,
  listener text not null,
  policy text,
  sender text not null,
  sender_ip text not null,
  rdns text,
  helo text,
  tls text,
  header_from text,
  subject text,
  message_id text,
  size integer not null,
  status text not null,
  threat_level integer,
  updated_at integer not null,
  done integer not null default 0
);
create index if not exists messages_received on messages(received_at);
create index if not exists messages_sender on messages(sender, received_at);
create index if not exists messages_message_id on messages(message_id);
create index if not exists messages_ip on messages(sender_ip, received_at);
create index if not exists messages_status on messages(status, received_at);
create index if not exists messages_undone on messages(done) where done = 0;
create index if not exists messages_parent on messages(parent_mid) where parent_mid is not null;
create index if not exists messages_sender_domain on messages(${SENDER_DOMAIN_SQL}, received_at);
create index if not exists messages_from_address on messages(${FROM_ADDRESS_SQL});
create table if not exists recipients (
  mid integer not null,
  rid integer not null,
  address text not null,
  status text not null,
  attempts integer not null default 0,
  next_attempt_at integer,
  last_reply text,
  primary key (mid, rid)
) without rowid;
create index if not exists recipients_address on recipients(address, mid);
-- tracking search by status: which messages have a recipient in it (tracker.ts search)
create index if not exists recipients_status on recipients(status, mid);
create table if not exists events (
  id integer primary key,
  mid integer not null,
  at integer not null,
  type text not null,
  data text
);
create index if not exists events_mid on events(mid);
create table if not exists attachments (
  mid integer not null,
  name text not null,
  true_type text,
  size integer not null,
  sha256 text not null
);
create index if not exists attachments_mid on attachments(mid);
create index if not exists attachments_sha256 on attachments(sha256);
create index if not exists attachments_name on attachments(name collate nocase);
create table if not exists urls (
  mid integer not null,
  url text not null,
  domain text
);
create index if not exists urls_mid on urls(mid);
create index if not exists urls_domain on urls(domain);
create index if not exists urls_url on urls(url);
create table if not exists message_rules (
  mid integer not null,
  rule_id text not null,
  level integer not null,
  category text not null,
  type text not null,
  description text not null,
  adaptive integer not null,
  primary key (mid, rule_id)
) without rowid;
create index if not exists message_rules_rule on message_rules(rule_id, mid);
create table if not exists message_auth (
  mid integer not null,
  method text not null,
  result text not null,
  primary key (mid, method, result)
) without rowid;
create index if not exists message_auth_result on message_auth(method, result, mid);
create table if not exists message_antispam (
  mid integer primary key,
  action text not null,
  score real not null
);
create index if not exists message_antispam_action on message_antispam(action, mid);
create index if not exists message_antispam_score on message_antispam(score, mid);
create index if not exists messages_threat on messages(threat_level, received_at) where threat_level > 0;
create table if not exists clicks (
  id integer primary key,
  at integer not null,
  mid integer not null,
  recipient text not null,
  url text not null,
  domain text,
  verdict text not null,
  action text not null,
  reason text not null,
  rule_ids text not null,
  source text not null default ''
);
create index if not exists clicks_mid on clicks(mid);
create index if not exists clicks_at on clicks(at);
create virtual table if not exists subjects using fts5(subject, content='', contentless_delete=1, tokenize='trigram');
`;

type Param = SQLInputValue;

export class Store {
  readonly db: DatabaseSync;
  private ops: Array<[string, Param[]]> = [];
  private flushScheduled = false;
  private readonly statements = new Map<string, StatementSync>();
  /** the writer thread; null for an in-memory database, which cannot be shared between threads */
  private readonly writer: Worker | null;
  private nextBatch = 1;
  private acked = 0;
  private readonly ackWaiters: Array<{ id: number; resolve: () => void }> = [];
  /** told when a batch cannot commit for lack of disk space (it is retried until it does) */
  onStorageError: ((err: Error) => void) | null = null;
  /** batches that waited for the disk since start */
  storageRetries = 0;

  constructor(file: string) {
    if (file !== ':memory:') mkdirSync(path.dirname(file), { recursive: true });
    this.db = new DatabaseSync(file);
    this.db.exec('pragma journal_mode = wal; pragma synchronous = normal; pragma busy_timeout = 5000;');
    this.db.exec('pragma temp_store = memory; pragma cache_size = -16384;');
    this.db.exec(SCHEMA);
    // clicks.source (what decided a click's verdict) came after the first release
    const clickColumns = this.db.prepare("select name from pragma_table_info('clicks')").all() as Array<{
      name: string;
    }>;
    if (!clickColumns.some((c) => c.name === 'source'))
      this.db.exec("alter table clicks add column source text not null default ''");
    // recipients.last_tls (the TLS of the last delivery attempt) came with the outbound TLS policy
    const rcptColumns = this.db.prepare("select name from pragma_table_info('recipients')").all() as Array<{
      name: string;
    }>;
    if (!rcptColumns.some((c) => c.name === 'last_tls'))
      this.db.exec('alter table recipients add column last_tls text');
    this.db
      .prepare('insert or ignore into meta(key, value) values (?, ?)')
      .run('schema_version', String(SCHEMA_VERSION));
    // Writes from the hot path go to a thread of their own: the event loop only hands them over.
    this.writer =
      file === ':memory:' ? null : new Worker(new URL('./writer.ts', import.meta.url), { workerData: { file } });
    this.writer?.on('message', (ack: WriteAck) => this.onAck(ack));
    this.writer?.on('error', (err) => process.emitWarning(`store writer failed: ${err.message}`));
  }

  /** A cached prepared statement on the reading connection. */
  stmt(sql: string): StatementSync {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  /** Queues a write; all writes queued in one event-loop turn commit in one transaction, in order. */
  run(sql: string, ...params: Param[]): void {
    this.ops.push([sql, params]);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Resolves once every write queued so far has committed. */
  committed(): Promise<void> {
    if (this.ops.length) this.flush();
    const last = this.nextBatch - 1;
    if (this.acked >= last) return Promise.resolve();
    return new Promise((resolve) => this.ackWaiters.push({ id: last, resolve }));
  }

  flush(): void {
    this.flushScheduled = false;
    const ops = this.ops;
    this.ops = [];
    if (!ops.length) return;
    const id = this.nextBatch++;
    if (this.writer) {
      this.writer.postMessage({ id, ops } satisfies WriteBatch);
      return;
    }
    const errors: string[] = [];
    this.db.exec('begin');
    for (const [sql, params] of ops) {
      try {
        this.stmt(sql).run(...params);
      } catch (err) {
        if (isSqliteStorageError(err)) this.onStorageError?.(err as Error);
        errors.push((err as Error).message);
      }
    }
    this.db.exec('commit');
    this.onAck({ id, errors });
  }

  private onAck(ack: WriteAck): void {
    if (ack.storageError) {
      // Not committed yet: the writer retries it; waiters keep waiting.
      this.storageRetries++;
      const err = Object.assign(new Error(ack.storageError.message), { code: 'ENOSPC', sqlite: ack.storageError.code });
      if (ack.storageError.code !== 'SQLITE_FULL') err.code = 'EIO';
      this.onStorageError?.(err);
      return;
    }
    for (const e of ack.errors) process.emitWarning(`store write failed: ${e}`);
    this.acked = Math.max(this.acked, ack.id);
    for (let i = this.ackWaiters.length - 1; i >= 0; i--) {
      const w = this.ackWaiters[i];
      if (w.id <= this.acked) {
        this.ackWaiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  /** V8 heap figures of the writer thread (for status). */
  async writerHeap(): Promise<{ usedHeapSize: number; totalHeapSize: number } | null> {
    if (!this.writer) return null;
    const h = await this.writer.getHeapStatistics();
    return { usedHeapSize: h.used_heap_size, totalHeapSize: h.total_heap_size };
  }

  getMeta(key: string): string | undefined {
    const row = this.stmt('select value from meta where key = ?').get(key) as { value: string } | undefined;
    return row?.value;
  }

  setMeta(key: string, value: string): void {
    this.run(
      'insert into meta(key, value) values (?, ?) on conflict(key) do update set value = excluded.value',
      key,
      value,
    );
  }

  async close(): Promise<void> {
    await this.committed();
    await this.writer?.terminate();
    this.db.close();
  }
}
