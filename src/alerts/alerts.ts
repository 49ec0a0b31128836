// Alerts (DESIGN §6): record every alert, suppress repeats of the same key, and send the rest as one
// e-mail through the gateway's own spool and as signed JSON webhooks delivered in the background.
import { setTimeout as delay } from 'node:timers/promises';
import type { SQLInputValue } from 'node:sqlite';
import type { Store } from '../store/db.ts';
import { buildAlertMessage, safeAddress, safeHostname, singleLine } from './message.ts';
import { deliverWebhook, webhookPayload } from './webhook.ts';
import {
  ALERT_CLASSES,
  ALERT_SEVERITIES,
  severityRank,
  type Alert,
  type AlertClass,
  type AlertInput,
  type AlertOptions,
  type AlertSeverity,
  type WebhookDelivery,
  type WebhookTarget,
} from './types.ts';

export * from './types.ts';
export { buildAlertMessage } from './message.ts';
export { signature, SIGNATURE_HEADER, USER_AGENT, type WebhookPayload } from './webhook.ts';

// `notified` is 1 when the alert passed minSeverity and suppression and went to the destinations: it
// anchors the suppression window of its key. `data` and `deliveries` are JSON. Secrets are never stored.
const SCHEMA = `
create table if not exists alerts (
  id integer primary key,
  at integer not null,
  class text not null,
  severity text not null,
  key text not null,
  title text not null,
  text text not null,
  data text,
  suppressed integer not null default 0,
  notified integer not null default 0,
  deliveries text not null
);
create index if not exists alerts_at on alerts(at, id);
create index if not exists alerts_class_at on alerts(class, at, id);
create index if not exists alerts_key on alerts(key, id);
`;

const INSERT =
  'insert into alerts (id, at, class, severity, key, title, text, data, suppressed, notified, deliveries) ' +
  'values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)';
const UPDATE_DELIVERIES = 'update alerts set deliveries = ? where id = ?';
const COLUMNS = 'id, at, class, severity, key, title, text, data, suppressed, deliveries';

/** alerts kept in memory for list(): covers everything whose latest write may not be committed yet */
const RING_SIZE = 1000;
const MAX_KEY = 200;
const MAX_TITLE = 200;
const MAX_TEXT = 32 * 1024;
const MAX_DATA_JSON = 32 * 1024;
const LIST_DEFAULT = 100;
const LIST_MAX = 1000;
/** the spool is local; this only bounds a hung sendMail */
const SPOOL_TIMEOUT = 30_000;

interface KeyState {
  /** the last alert of this key that was sent */
  anchorAt: number;
  anchorSeverity: number;
  /** suppressed since the anchor */
  suppressed: number;
  lastAt: number;
}

interface AlertRow {
  id: number;
  at: number;
  class: string;
  severity: string;
  key: string;
  title: string;
  text: string;
  data: string | null;
  suppressed: number;
  deliveries: string;
}

export interface ListOptions {
  /** newest first; default 100, at most 1000 */
  limit?: number;
  class?: AlertClass;
  /** only alerts at or after this time (ms) */
  since?: number;
}

function truncate(s: string, max: number): string {
  return s.length <= max ? s : s.slice(0, max - 1) + '…';
}

/** A JSON-safe copy of the data (bigints as strings), so memory and database agree. */
function cleanData(data: unknown): Record<string, unknown> | undefined {
  if (data === undefined || data === null) return undefined;
  const obj = typeof data === 'object' && !Array.isArray(data) ? (data as Record<string, unknown>) : { value: data };
  const replacer = (_k: string, v: unknown) => (typeof v === 'bigint' ? v.toString() : v);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined) continue;
    try {
      const json = JSON.stringify(v, replacer);
      out[k] = json === undefined ? String(v) : JSON.parse(json);
    } catch {
      out[k] = String(v);
    }
  }
  if (JSON.stringify(out).length > MAX_DATA_JSON) return { omitted: `data larger than ${MAX_DATA_JSON} bytes` };
  return out;
}

function fromRow(r: AlertRow): Alert {
  const alert: Alert = {
    id: r.id,
    at: r.at,
    class: r.class as AlertClass,
    severity: r.severity as AlertSeverity,
    key: r.key,
    title: r.title,
    text: r.text,
    suppressed: r.suppressed === 1,
    deliveries: JSON.parse(r.deliveries) as Alert['deliveries'],
  };
  if (r.data !== null) alert.data = JSON.parse(r.data) as Record<string, unknown>;
  return alert;
}

function newestFirst(a: Alert, b: Alert): number {
  return b.at - a.at || b.id - a.id;
}

function suppressionNote(count: number, since: number): string {
  const when = new Date(since).toISOString();
  return count === 1
    ? `1 similar alert was suppressed since ${when}.`
    : `${count} similar alerts were suppressed since ${when}.`;
}

export class Alerts {
  private readonly opts: AlertOptions;
  private readonly store: Store;
  private readonly now: () => number;
  private readonly fetchImpl: typeof fetch;
  private readonly from: string;
  private readonly hostname: string;
  private readonly recipients: string[];
  private readonly onError: (message: string) => void;
  private lastId: number;
  private readonly keys = new Map<string, KeyState>();
  private readonly ring: Alert[] = [];
  /** raise() calls and webhook deliveries still running */
  private readonly pending = new Set<Promise<unknown>>();
  private readonly shutdown = new AbortController();
  private closed = false;

  constructor(opts: AlertOptions) {
    this.opts = opts;
    this.store = opts.store;
    this.now = opts.now ?? Date.now;
    this.fetchImpl = opts.fetchImpl ?? fetch;
    this.onError = opts.onError ?? ((m) => process.emitWarning(m, 'BreakwaterAlert'));
    this.hostname = safeHostname(opts.hostname);
    this.from = safeAddress(opts.from) ?? `breakwater@${this.hostname}`;
    this.recipients = [];
    for (const r of opts.recipients) {
      const a = safeAddress(r);
      if (a) this.recipients.push(a);
      else this.onError(`alerts: recipient ${JSON.stringify(singleLine(r).slice(0, 100))} is not a plain address`);
    }
    this.store.db.exec(SCHEMA);
    const row = this.store.stmt('select coalesce(max(id), 0) as id from alerts').get() as { id: number };
    this.lastId = Number(row.id);
  }

  /**
   * Records the alert and, unless it is suppressed or below minSeverity, spools the e-mail and starts the
   * webhook deliveries. Resolves once the alert is recorded and the e-mail spooled (or failed to spool);
   * webhook failures never reject it. The returned alert's `deliveries.webhooks` fills in as they finish.
   */
  raise(input: AlertInput): Promise<Alert> {
    if (this.closed) return Promise.reject(new Error('alerts: raise() after close()'));
    if (!ALERT_CLASSES.includes(input.class)) return Promise.reject(new TypeError(`unknown alert class`));
    if (!ALERT_SEVERITIES.includes(input.severity)) return Promise.reject(new TypeError(`unknown alert severity`));
    const key = truncate(singleLine(String(input.key ?? '')), MAX_KEY);
    if (!key) return Promise.reject(new TypeError('an alert needs a key'));

    // Everything up to the first await is synchronous, so concurrent raises see each other's decisions.
    const at = this.now();
    const id = ++this.lastId;
    const rank = severityRank(input.severity);
    let notify = rank >= severityRank(this.opts.minSeverity);
    let suppressed = false;
    let text = truncate(String(input.text ?? ''), MAX_TEXT);
    if (notify) {
      const state = this.keyState(key);
      if (
        state &&
        this.opts.suppressFor > 0 &&
        at - state.anchorAt < this.opts.suppressFor &&
        rank <= state.anchorSeverity
      ) {
        // Within the window and no more severe than the alert that opened it.
        suppressed = true;
        notify = false;
        state.suppressed++;
        state.lastAt = at;
      } else {
        if (state?.suppressed)
          text = `${text.replace(/\s+$/, '')}\n\n${suppressionNote(state.suppressed, state.anchorAt)}`;
        this.keys.set(key, { anchorAt: at, anchorSeverity: rank, suppressed: 0, lastAt: at });
        this.pruneKeys(at);
      }
    }
    const alert: Alert = {
      id,
      at,
      class: input.class,
      severity: input.severity,
      key,
      title: truncate(singleLine(String(input.title ?? '')), MAX_TITLE),
      text,
      suppressed,
      deliveries: { email: 'skipped', webhooks: [] },
    };
    const data = cleanData(input.data);
    if (data) alert.data = data;

    const task = this.dispatch(alert, notify);
    this.track(task);
    return task;
  }

  /** Recorded alerts, newest first. */
  list(opts: ListOptions = {}): Alert[] {
    const limit = Math.max(1, Math.min(LIST_MAX, Math.trunc(opts.limit ?? LIST_DEFAULT) || LIST_DEFAULT));
    const where: string[] = [];
    const params: SQLInputValue[] = [];
    if (opts.class !== undefined) {
      where.push('class = ?');
      params.push(opts.class);
    }
    if (opts.since !== undefined) {
      where.push('at >= ?');
      params.push(opts.since);
    }
    const sql =
      `select ${COLUMNS} from alerts` +
      (where.length ? ` where ${where.join(' and ')}` : '') +
      ' order by at desc, id desc limit ?';
    const rows = this.store.stmt(sql).all(...params, limit) as unknown as AlertRow[];
    // The ring holds the latest state of recent alerts, committed or not: it wins over the database.
    const byId = new Map<number, Alert>();
    for (const r of rows) byId.set(r.id, fromRow(r));
    for (const a of this.ring) {
      if (opts.class !== undefined && a.class !== opts.class) continue;
      if (opts.since !== undefined && a.at < opts.since) continue;
      byId.set(a.id, structuredClone(a));
    }
    return [...byId.values()].sort(newestFirst).slice(0, limit);
  }

  /**
   * Stops taking alerts, waits for running deliveries (at most closeTimeout, then aborts them and records
   * them as failed) and for the alert rows to commit. Does not close the store.
   */
  async close(): Promise<void> {
    this.closed = true;
    const settled = () => Promise.allSettled([...this.pending]);
    if (this.pending.size) {
      const timer = new AbortController();
      const timedOut = await Promise.race([
        settled().then(() => false),
        delay(this.opts.closeTimeout ?? 10_000, true, { signal: timer.signal }).catch(() => false),
      ]);
      timer.abort();
      if (timedOut) this.shutdown.abort();
      // Whatever was started after a delivery finished (its row update) is in `pending` too.
      while (this.pending.size) await settled();
    }
    await this.store.committed();
  }

  private track(p: Promise<unknown>): void {
    const settled = p.then(
      () => undefined,
      () => undefined,
    );
    this.pending.add(settled);
    void settled.then(() => this.pending.delete(settled));
  }

  private async dispatch(alert: Alert, notify: boolean): Promise<Alert> {
    let recorded = false;
    if (notify) {
      const targets = this.opts.webhooks.filter((w) => this.wants(w, alert));
      if (targets.length) {
        const body = JSON.stringify(webhookPayload(alert, this.hostname));
        for (const target of targets) {
          const delivery = deliverWebhook(target, body, {
            fetchImpl: this.fetchImpl,
            timeout: this.opts.webhookTimeout ?? 5000,
            retryDelays: this.opts.webhookRetryDelays ?? [500, 2000],
            signal: this.shutdown.signal,
          }).then((result) => {
            alert.deliveries.webhooks.push(result);
            if (result.status === 'failed') {
              this.onError(`alert ${alert.id}: webhook ${result.url} failed: ${result.error ?? 'unknown error'}`);
            }
            if (recorded) this.store.run(UPDATE_DELIVERIES, JSON.stringify(alert.deliveries), alert.id);
          });
          this.track(delivery);
        }
      }
      if (this.recipients.length) alert.deliveries.email = await this.spool(alert);
    }
    this.store.run(
      INSERT,
      alert.id,
      alert.at,
      alert.class,
      alert.severity,
      alert.key,
      alert.title,
      alert.text,
      alert.data ? JSON.stringify(alert.data) : null,
      alert.suppressed ? 1 : 0,
      notify ? 1 : 0,
      JSON.stringify(alert.deliveries),
    );
    recorded = true;
    this.ring.push(alert);
    if (this.ring.length > RING_SIZE) this.ring.shift();
    return alert;
  }

  private async spool(alert: Alert): Promise<'sent' | 'failed'> {
    const message = buildAlertMessage({
      alert,
      from: this.from,
      recipients: this.recipients,
      hostname: this.hostname,
    });
    const timer = new AbortController();
    try {
      await Promise.race([
        this.opts.sendMail(this.from, [...this.recipients], message),
        delay(SPOOL_TIMEOUT, undefined, { signal: AbortSignal.any([timer.signal, this.shutdown.signal]) }).then(
          () => Promise.reject(new Error(`not spooled within ${SPOOL_TIMEOUT} ms`)),
          () => Promise.reject(new Error('aborted at shutdown')),
        ),
      ]);
      return 'sent';
    } catch (err) {
      this.onError(`alert ${alert.id}: e-mail could not be spooled: ${(err as Error)?.message ?? String(err)}`);
      return 'failed';
    } finally {
      timer.abort();
    }
  }

  private wants(w: WebhookTarget, alert: Alert): boolean {
    if (w.classes && !w.classes.includes(alert.class)) return false;
    if (w.minSeverity && severityRank(alert.severity) < severityRank(w.minSeverity)) return false;
    return true;
  }

  /** The suppression state of a key: from memory, or (after a restart) from the recorded alerts. */
  private keyState(key: string): KeyState | undefined {
    const known = this.keys.get(key);
    if (known) return known;
    const anchor = this.store
      .stmt('select id, at, severity from alerts where key = ? and notified = 1 order by id desc limit 1')
      .get(key) as { id: number; at: number; severity: string } | undefined;
    if (!anchor) return undefined;
    const count = this.store
      .stmt('select count(*) as n, max(at) as last from alerts where key = ? and suppressed = 1 and id > ?')
      .get(key, anchor.id) as { n: number; last: number | null };
    const state: KeyState = {
      anchorAt: anchor.at,
      anchorSeverity: severityRank(anchor.severity as AlertSeverity),
      suppressed: Number(count.n),
      lastAt: count.last ?? anchor.at,
    };
    this.keys.set(key, state);
    return state;
  }

  /** Forgets keys quiet for longer than the window (their state can be read back from the table). */
  private pruneKeys(at: number): void {
    if (this.keys.size < 1000) return;
    for (const [k, s] of this.keys) if (at - s.lastAt > this.opts.suppressFor + 60_000) this.keys.delete(k);
  }
}

export type { WebhookDelivery };
