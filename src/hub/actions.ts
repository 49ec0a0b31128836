// Response actions the hub asks a gateway to carry out (DESIGN §11.3: remediation of delivered mail
// through the gateway's mailbox profiles). Gateways reach the hub, never the reverse (they sit behind
// firewalls and NAT, like Cisco's cloud connector): an action waits in the hub's store until the gateway's
// long poll (`GET /api/v1/device/actions`) takes it, and the gateway posts the result back. An action a
// gateway took but never answered (it crashed) is offered again after REOFFER_MS; one nobody took within
// EXPIRE_MS (the gateway is gone) expires. Every state change is kept: the action list is the audit trail.
import { randomUUID } from 'node:crypto';
import type { DatabaseSync } from 'node:sqlite';
import { ApprovalError } from './approvals.ts';

const SCHEMA = `
create table if not exists device_actions (
  id text primary key,
  device_id text not null,
  action text not null,
  observable_type text not null,
  observable_value text not null,
  requested_by text not null,
  status text not null,
  detail text,
  created_at integer not null,
  updated_at integer not null,
  taken_at integer
);
create index if not exists device_actions_open on device_actions(device_id, status);
`;

export type ActionStatus = 'awaiting_approval' | 'pending' | 'taken' | 'done' | 'failed' | 'expired' | 'refused';

export interface DeviceAction {
  id: string;
  deviceId: string;
  action: string;
  observable: { type: string; value: string };
  requestedBy: string;
  status: ActionStatus;
  detail: string | null;
  createdAt: string;
  updatedAt: string;
}

interface Row {
  id: string;
  device_id: string;
  action: string;
  observable_type: string;
  observable_value: string;
  requested_by: string;
  status: ActionStatus;
  detail: string | null;
  created_at: number;
  updated_at: number;
}

/** an action taken but not answered is offered again after this long */
export const REOFFER_MS = 5 * 60_000;
/** an action no gateway took within this long expires */
export const EXPIRE_MS = 24 * 3600_000;
/** the longest a gateway's poll is held open */
export const MAX_POLL_MS = 25_000;

const finished = (s: ActionStatus): boolean => s === 'done' || s === 'failed' || s === 'expired' || s === 'refused';

function toAction(r: Row): DeviceAction {
  return {
    id: r.id,
    deviceId: r.device_id,
    action: r.action,
    observable: { type: r.observable_type, value: r.observable_value },
    requestedBy: r.requested_by,
    status: r.status,
    detail: r.detail,
    createdAt: new Date(r.created_at).toISOString(),
    updatedAt: new Date(r.updated_at).toISOString(),
  };
}

export class DeviceActions {
  private readonly db: DatabaseSync;
  /** gateways holding a poll open, by device */
  private readonly polls = new Map<string, Set<() => void>>();
  /** callers waiting for actions to finish */
  private readonly finishWaiters = new Set<() => void>();
  private closed = false;

  /** told when an action becomes pending for a gateway (the device channel pushes it) */
  private readonly onPending: (deviceId: string) => void;

  constructor(db: DatabaseSync, o: { onPending?: (deviceId: string) => void } = {}) {
    this.db = db;
    this.db.exec(SCHEMA);
    this.onPending = o.onPending ?? (() => {});
  }

  private wake(deviceId: string): void {
    for (const wake of this.polls.get(deviceId) ?? []) wake();
    this.onPending(deviceId);
  }

  /** Actions waiting for a gateway to take them. */
  pendingCount(deviceId: string): number {
    return (
      this.db
        .prepare("select count(*) n from device_actions where device_id = ? and status = 'pending'")
        .get(deviceId) as { n: number }
    ).n;
  }

  /**
   * Queues an action for a gateway and wakes its poll; with `awaitingApproval` it waits for a second
   * user's approval first (approvals.remediate), and no gateway sees it until then.
   */
  queue(
    deviceId: string,
    action: string,
    observable: { type: string; value: string },
    requestedBy: string,
    o: { awaitingApproval?: boolean } = {},
  ): DeviceAction {
    const now = Date.now();
    const id = randomUUID();
    this.db
      .prepare(
        `insert into device_actions(id, device_id, action, observable_type, observable_value, requested_by, status, created_at, updated_at)
         values (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        id,
        deviceId,
        action,
        observable.type,
        observable.value,
        requestedBy,
        o.awaitingApproval ? 'awaiting_approval' : 'pending',
        now,
        now,
      );
    if (!o.awaitingApproval) this.wake(deviceId);
    return this.get(id)!;
  }

  /** A second user approves: the action goes to its gateway. The requester may not approve their own. */
  approve(id: string, by: string): DeviceAction {
    const a = this.awaiting(id);
    if (a.requestedBy === by)
      throw new ApprovalError('approval_by_requester', 'an action is approved by someone other than its requester');
    const now = Date.now();
    // the 24-hour expiry counts from the approval
    this.db
      .prepare("update device_actions set status = 'pending', detail = ?, created_at = ?, updated_at = ? where id = ?")
      .run(`approved by ${by}`, now, now, id);
    this.wake(a.deviceId);
    return this.get(id)!;
  }

  refuse(id: string, by: string): DeviceAction {
    this.awaiting(id);
    this.db
      .prepare("update device_actions set status = 'refused', detail = ?, updated_at = ? where id = ?")
      .run(`refused by ${by}`, Date.now(), id);
    for (const wake of this.finishWaiters) wake();
    return this.get(id)!;
  }

  private awaiting(id: string): DeviceAction {
    const a = this.get(id);
    if (!a) throw new ApprovalError('action_not_found', 'no response action with that id');
    if (a.status !== 'awaiting_approval')
      throw new ApprovalError('not_pending', `the action is ${a.status}, not awaiting approval`);
    return a;
  }

  get(id: string): DeviceAction | null {
    const r = this.db.prepare('select * from device_actions where id = ?').get(id) as Row | undefined;
    return r ? toAction(r) : null;
  }

  /** The newest actions first, optionally of one device or status. */
  list(filter: { deviceId?: string; status?: ActionStatus; limit: number }): DeviceAction[] {
    this.expire();
    const rows = this.db
      .prepare(
        `select * from device_actions where (?1 is null or device_id = ?1) and (?2 is null or status = ?2)
         order by created_at desc, id limit ?3`,
      )
      .all(filter.deviceId ?? null, filter.status ?? null, filter.limit) as unknown as Row[];
    return rows.map(toAction);
  }

  /**
   * The actions waiting for a gateway, marked taken; when there are none, waits up to `waitMs` for one
   * (a long poll). `signal` ends the wait early (the gateway hung up).
   */
  async take(deviceId: string, waitMs: number, signal?: AbortSignal): Promise<DeviceAction[]> {
    const now = Date.now();
    this.expire(now);
    const rows = this.db
      .prepare(
        `update device_actions set status = 'taken', taken_at = ?1, updated_at = ?1
         where device_id = ?2 and (status = 'pending' or (status = 'taken' and taken_at < ?3))
         returning *`,
      )
      .all(now, deviceId, now - REOFFER_MS) as unknown as Row[];
    if (rows.length || waitMs <= 0 || signal?.aborted) return rows.map(toAction).sort(byCreated);
    await new Promise<void>((resolve) => {
      let set = this.polls.get(deviceId);
      if (!set) this.polls.set(deviceId, (set = new Set()));
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        set.delete(done);
        if (!set.size) this.polls.delete(deviceId);
        resolve();
      };
      const timer = setTimeout(done, Math.min(waitMs, MAX_POLL_MS));
      timer.unref();
      signal?.addEventListener('abort', done);
      set.add(done);
    });
    return signal?.aborted || this.closed ? [] : this.take(deviceId, 0);
  }

  /** A gateway's result; null when the action is not this device's (or unknown). Finished actions stay as they are. */
  complete(deviceId: string, id: string, ok: boolean, detail: string): DeviceAction | null {
    const r = this.db.prepare('select * from device_actions where id = ? and device_id = ?').get(id, deviceId) as
      Row | undefined;
    if (!r) return null;
    if (!finished(r.status)) {
      this.db
        .prepare('update device_actions set status = ?, detail = ?, updated_at = ? where id = ?')
        .run(ok ? 'done' : 'failed', detail.slice(0, 4000), Date.now(), id);
      for (const wake of this.finishWaiters) wake();
    }
    return this.get(id);
  }

  /** Waits until every action has finished or `timeoutMs` passed; returns their states then. */
  async settle(ids: string[], timeoutMs: number): Promise<DeviceAction[]> {
    const states = (): DeviceAction[] => ids.map((id) => this.get(id)!).filter(Boolean);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const now = states();
      if (now.every((a) => finished(a.status)) || Date.now() >= deadline) return now;
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.finishWaiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, Math.max(0, deadline - Date.now()));
        timer.unref();
        this.finishWaiters.add(done);
      });
    }
  }

  /** Wakes every open poll (the hub is stopping: they answer with nothing). */
  close(): void {
    this.closed = true;
    for (const set of this.polls.values()) for (const wake of set) wake();
    for (const wake of this.finishWaiters) wake();
  }

  private expire(now = Date.now()): void {
    this.db
      .prepare(
        `update device_actions set status = 'expired',
           detail = case status when 'pending' then 'no gateway took it within 24 hours' else 'nobody approved it within 24 hours' end,
           updated_at = ?1
         where status in ('pending', 'awaiting_approval') and created_at < ?2`,
      )
      .run(now, now - EXPIRE_MS);
  }
}

function byCreated(a: DeviceAction, b: DeviceAction): number {
  return a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0;
}
