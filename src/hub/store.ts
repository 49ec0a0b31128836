// The hub's embedded store (DESIGN §11): one SQLite database under its data dir. Registration tokens
// (kept hashed), devices and their credentials, the message summaries every gateway streams (the
// latest per device and MID) with an index of their observables, and the batches already taken (so a
// batch sent twice is stored once).
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import type { MessageSummary } from '../xdr/summary.ts';
import { observablesOf, type ObservableType } from './observables.ts';

const SCHEMA = `
create table if not exists tokens (
  token_hash text primary key,
  region text not null,
  created_at integer not null,
  expires_at integer not null,
  used_at integer,
  device_id text
);
create table if not exists devices (
  id text primary key,
  name text not null,
  uuid text not null,
  serial text,
  model text,
  version text,
  hostname text,
  region text not null,
  status text not null,
  registered_at integer not null,
  last_contact integer,
  secret text,
  telemetry text,
  telemetry_at integer,
  removed_at integer
);
create table if not exists batches (
  device_id text not null,
  batch_id text not null,
  received_at integer not null,
  count integer not null,
  primary key (device_id, batch_id)
) without rowid;
create table if not exists messages (
  device_id text not null,
  mid integer not null,
  version integer not null,
  received_at integer not null,
  data text not null,
  primary key (device_id, mid)
) without rowid;
create index if not exists messages_received on messages(received_at);
create table if not exists observables (
  type text not null,
  value text not null,
  at integer not null,
  device_id text not null,
  mid integer not null,
  primary key (type, value, at, device_id, mid)
) without rowid;
`;

export interface DeviceRow {
  id: string;
  name: string;
  uuid: string;
  serial: string | null;
  model: string | null;
  version: string | null;
  hostname: string | null;
  region: string;
  status: 'registered' | 'removed';
  registered_at: number;
  last_contact: number | null;
  telemetry: string | null;
  telemetry_at: number | null;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token.toLowerCase()).digest('hex');
}

export class HubStore {
  readonly db: DatabaseSync;
  private readonly statements = new Map<string, StatementSync>();

  constructor(dataDir: string) {
    mkdirSync(dataDir, { recursive: true });
    this.db = new DatabaseSync(path.join(dataDir, 'hub.db'));
    this.db.exec(
      'pragma journal_mode = wal; pragma synchronous = full; pragma busy_timeout = 5000; pragma cache_size = -65536; pragma temp_store = memory;',
    );
    this.db.exec(SCHEMA);
  }

  close(): void {
    this.db.close();
  }

  /** A prepared statement, cached (users, sessions and the audit log use these: src/users/store.ts). */
  stmt(sql: string): StatementSync {
    let st = this.statements.get(sql);
    if (!st) this.statements.set(sql, (st = this.db.prepare(sql)));
    return st;
  }

  /** A write, at once: the hub's writes are few (its intake has its own batched transactions). */
  run(sql: string, ...params: SQLInputValue[]): void {
    this.stmt(sql).run(...params);
  }

  /** Writes are synchronous here: always committed. */
  committed(): Promise<void> {
    return Promise.resolve();
  }

  /** Runs `fn` in one transaction (all or nothing). */
  transaction<T>(fn: () => T): T {
    this.db.exec('begin immediate');
    try {
      const r = fn();
      this.db.exec('commit');
      return r;
    } catch (err) {
      this.db.exec('rollback');
      throw err;
    }
  }

  // ---- tokens and devices ----------------------------------------------------------------------

  addToken(token: string, region: string, expiresAt: number): void {
    this.db
      .prepare('insert into tokens(token_hash, region, created_at, expires_at) values (?, ?, ?, ?)')
      .run(hashToken(token), region, Date.now(), expiresAt);
  }

  /** Registration tokens, newest first: never the token itself (only its hash is kept). */
  tokens(limit = 200): Array<{
    id: string;
    region: string;
    created_at: number;
    expires_at: number;
    used_at: number | null;
    device_id: string | null;
  }> {
    return this.stmt(
      'select substr(token_hash, 1, 12) as id, region, created_at, expires_at, used_at, device_id from tokens order by created_at desc limit ?',
    ).all(limit) as ReturnType<HubStore['tokens']>;
  }

  token(token: string): { region: string; expires_at: number; used_at: number | null } | undefined {
    return this.db
      .prepare('select region, expires_at, used_at from tokens where token_hash = ?')
      .get(hashToken(token)) as { region: string; expires_at: number; used_at: number | null } | undefined;
  }

  /** Spends a token on a new device, in one transaction with the device row. */
  registerDevice(
    token: string,
    d: Omit<DeviceRow, 'status' | 'last_contact' | 'telemetry' | 'telemetry_at'>,
    secret: string,
  ): void {
    this.transaction(() => {
      const spent = this.db
        .prepare('update tokens set used_at = ?, device_id = ? where token_hash = ? and used_at is null')
        .run(Date.now(), d.id, hashToken(token));
      if (Number(spent.changes) !== 1) throw new Error('token already used');
      this.db
        .prepare(
          `insert into devices(id, name, uuid, serial, model, version, hostname, region, status, registered_at, last_contact, secret)
           values (?, ?, ?, ?, ?, ?, ?, ?, 'registered', ?, ?, ?)`,
        )
        .run(
          d.id,
          d.name,
          d.uuid,
          d.serial,
          d.model,
          d.version,
          d.hostname,
          d.region,
          d.registered_at,
          d.registered_at,
          secret,
        );
    });
  }

  /** The secret of a registered device; null for an unknown or removed one (its calls are refused). */
  secretOf(id: string): string | null {
    const r = this.db.prepare("select secret from devices where id = ? and status = 'registered'").get(id) as
      { secret: string | null } | undefined;
    return r?.secret ?? null;
  }

  devices(): DeviceRow[] {
    return this.db
      .prepare(
        'select id, name, uuid, serial, model, version, hostname, region, status, registered_at, last_contact, telemetry, telemetry_at from devices order by registered_at',
      )
      .all() as unknown as DeviceRow[];
  }

  /** Deregisters: the secret is forgotten, so the device's next call is refused. Its data stays. */
  removeDevice(id: string): boolean {
    const r = this.db
      .prepare(
        "update devices set status = 'removed', secret = null, removed_at = ? where id = ? and status = 'registered'",
      )
      .run(Date.now(), id);
    return Number(r.changes) === 1;
  }

  touch(id: string): void {
    this.db.prepare('update devices set last_contact = ? where id = ?').run(Date.now(), id);
  }

  setTelemetry(id: string, report: unknown): void {
    this.db
      .prepare('update devices set telemetry = ?, telemetry_at = ? where id = ?')
      .run(JSON.stringify(report), Date.now(), id);
  }

  // ---- data intake and search --------------------------------------------------------------------

  /**
   * Stores a batch of summaries once: a batch id seen before is acknowledged without storing again, and
   * a summary older than the one stored (a lower version) changes nothing.
   */
  intake(
    deviceId: string,
    batchId: string,
    summaries: MessageSummary[],
    hooks: {
      /** told each message stored for the first time (watches) */
      onNew?: (s: MessageSummary) => void;
      /**
       * told each message once, at its first summary with a verdict: a gateway may stream a message
       * before its scan ended, without its verdict (outbreak intelligence counts judged messages)
       */
      onJudged?: (s: MessageSummary) => void;
    } = {},
  ): { duplicate: boolean; stored: number } {
    return this.transaction(() => {
      const seen = this.db
        .prepare('insert or ignore into batches(device_id, batch_id, received_at, count) values (?, ?, ?, ?)')
        .run(deviceId, batchId, Date.now(), summaries.length);
      if (Number(seen.changes) === 0) return { duplicate: true, stored: 0 };
      // The stored versions of the batch's messages in one query, and each summary's observables in one
      // statement (json_each): a few statements per summary instead of one per observable.
      const current = new Map(
        (
          this.db
            .prepare(
              'select mid, version, received_at, data from messages where device_id = ? and mid in (select value from json_each(?))',
            )
            .all(deviceId, JSON.stringify(summaries.map((s) => s.mid))) as Array<{
            mid: number;
            version: number;
            received_at: number;
            data: string;
          }>
        ).map((r) => [r.mid, r]),
      );
      const put = this.db.prepare(
        'insert or replace into messages(device_id, mid, version, received_at, data) values (?, ?, ?, ?, ?)',
      );
      const dropObs = this.db.prepare(
        `delete from observables where device_id = ?1 and mid = ?2 and at = ?3
         and (type, value) in (select value ->> 0, value ->> 1 from json_each(?4))`,
      );
      const addObs = this.db.prepare(
        `insert or ignore into observables(type, value, at, device_id, mid)
         select value ->> 0, value ->> 1, ?1, ?2, ?3 from json_each(?4)`,
      );
      const key = (o: { type: string; value: string }) => `${o.type}\u0000${o.value}`;
      const pairs = (os: Array<{ type: string; value: string }>) => JSON.stringify(os.map((o) => [o.type, o.value]));
      let stored = 0;
      for (const s of summaries) {
        const old = current.get(s.mid);
        if (old && old.version >= s.version) continue;
        const previous = old ? (JSON.parse(old.data) as MessageSummary) : null;
        if (!previous) hooks.onNew?.(s);
        if (s.verdict !== null && (!previous || previous.verdict === null)) hooks.onJudged?.(s);
        const at = Date.parse(s.receivedAt) || 0;
        const data = JSON.stringify(s);
        put.run(deviceId, s.mid, s.version, at, data);
        current.set(s.mid, { mid: s.mid, version: s.version, received_at: at, data });
        // A newer summary of a message mostly has the same observables: only the difference is written.
        const now = observablesOf(s);
        const before = previous ? observablesOf(previous) : [];
        const same = !!old && old.received_at === at;
        const next = new Set(now.map(key));
        const kept = new Set(same ? before.map(key) : []);
        const gone = before.filter((o) => !same || !next.has(key(o)));
        const added = now.filter((o) => !kept.has(key(o)));
        if (gone.length) dropObs.run(deviceId, s.mid, old!.received_at, pairs(gone));
        if (added.length) addObs.run(at, deviceId, s.mid, pairs(added));
        stored++;
      }
      return { duplicate: false, stored };
    });
  }

  /** Messages (newest first) in which an observable was seen, across every gateway. */
  search(type: ObservableType, value: string, limit: number): Array<{ deviceId: string; summary: MessageSummary }> {
    const rows = this.db
      .prepare(
        `select m.device_id, m.data from observables o join messages m on m.device_id = o.device_id and m.mid = o.mid
         where o.type = ? and o.value = ? order by o.at desc limit ?`,
      )
      .all(type, value, limit) as Array<{ device_id: string; data: string }>;
    return rows.map((r) => ({ deviceId: r.device_id, summary: JSON.parse(r.data) as MessageSummary }));
  }

  /** How many messages carry an observable, per gateway, and when it was first and last seen. */
  sightings(
    type: ObservableType,
    value: string,
  ): { count: number; first: number | null; last: number | null; devices: Array<{ deviceId: string; count: number }> } {
    const rows = this.stmt(
      `select device_id, count(*) n, min(at) first, max(at) last from observables
       where type = ? and value = ? group by device_id order by n desc`,
    ).all(type, value) as Array<{ device_id: string; n: number; first: number; last: number }>;
    return {
      count: rows.reduce((a, r) => a + r.n, 0),
      first: rows.length ? Math.min(...rows.map((r) => r.first)) : null,
      last: rows.length ? Math.max(...rows.map((r) => r.last)) : null,
      devices: rows.map((r) => ({ deviceId: r.device_id, count: r.n })),
    };
  }

  messageCount(deviceId?: string): number {
    const r = (
      deviceId
        ? this.db.prepare('select count(*) n from messages where device_id = ?').get(deviceId)
        : this.db.prepare('select count(*) n from messages').get()
    ) as { n: number };
    return r.n;
  }

  /** Every stored MID of a device (tests and audits: what the hub holds). */
  mids(deviceId: string): number[] {
    return (
      this.db.prepare('select mid from messages where device_id = ? order by mid').all(deviceId) as Array<{
        mid: number;
      }>
    ).map((r) => r.mid);
  }
}
