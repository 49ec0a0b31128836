// Crash recovery of the message flow: at start every spooled message that was not finished resumes
// from the point the database recorded — re-split, re-scan, or delivery on its retry schedule. Held
// messages stay held (the quarantine index owns their files), and a modified copy is delivered from
// its modified bytes.
import { existsSync } from 'node:fs';
import type { Spool, SpoolEnvelope, SpooledMessage } from '../spool/spool.ts';
import type { Store } from '../store/db.ts';
import type { QuarantineIndex, QuarantineName } from '../quarantine/quarantine.ts';
import type { Copy, MidAllocator, Outcome } from './copies.ts';
import type { MessageFlow } from './message-flow.ts';
import type { Tracker } from '../tracking/tracker.ts';
import { recordedSenderAuth } from '../senderauth/recorded.ts';

export interface RecoveryDeps {
  spool: Spool;
  store: Store;
  index: Pick<QuarantineIndex, 'files' | 'memberships'>;
  flow: MessageFlow;
  /** bounced recipients whose DSN never reached the spool (tracking knows: no DSN event names them) */
  tracker: Pick<Tracker, 'bouncesWithoutDsn'>;
  mids: MidAllocator;
  log: { info(line: string): void; warning(line: string): void };
}

interface MessageRow {
  mid: number;
  parent_mid: number | null;
  status: string;
  policy: string | null;
  done: number;
}

interface RecipientRow {
  rid: number;
  address: string;
  status: string;
  attempts: number;
  next_attempt_at: number | null;
}

const SETTLED = ['delivered', 'bounced', 'deleted', 'dropped'];

/** Resumes every spooled message that was not finished (after a crash or a restart). */
export function recoverSpool(deps: RecoveryDeps): void {
  const { spool, store, flow, log } = deps;
  let resumed = 0;
  let maxMid = 0;
  const all = [...spool.scan((file, why) => log.warning(`spool file ${file}: ${why}`))];
  for (const m of all) maxMid = Math.max(maxMid, m.env.mid);
  deps.mids.atLeast(maxMid + 1);
  // Files written after a scan (held, modified) belong to one copy and are resumed apart.
  const spooled = all.filter((m) => !m.env.derived);
  const derived = new Map<number, SpooledMessage[]>();
  for (const m of all)
    if (m.env.derived) {
      const list = derived.get(m.env.mid) ?? [];
      list.push(m);
      derived.set(m.env.mid, list);
    }
  // Held messages stay held: the quarantine index owns their files.
  const heldFiles = new Set<string>();
  // (A message in several quarantines has one file: one reference for the index.)
  for (const file of deps.index.files()) {
    if (existsSync(file)) {
      spool.retain(file);
      heldFiles.add(file);
    } else log.warning(`quarantine file ${file} is missing`);
  }
  for (const { file, env, bodyOffset, size } of spooled) {
    // Copies made by the policy split share their original's bytes: found by parent MID.
    const rows = store
      .stmt('select mid, parent_mid, status, policy, done from messages where mid = ? or parent_mid = ? order by mid')
      .all(env.mid, env.mid) as unknown as MessageRow[];
    const own = rows.find((r) => r.mid === env.mid);
    if (!own) {
      // Accepted (250 sent) but the database never heard of it: start from the beginning.
      spool.retain(file);
      flow.accept({ file, env, size, bodyOffset, bytes: null });
      resumed++;
      continue;
    }
    if (own.status === 'received') {
      flow.split(file, bodyOffset, null, size, env);
      resumed++;
      continue;
    }
    const undone = rows.filter(
      (r) => !r.done && r.status !== 'splintered' && r.status !== 'quarantined' && !derived.has(r.mid),
    );
    for (const r of undone) {
      const rcpts = recipientRows(store, r.mid);
      const copy = flow.addCopy(
        r.mid,
        r.parent_mid,
        file,
        bodyOffset,
        null,
        size,
        env,
        r.policy ?? 'default',
        rcpts.map((x) => ({ rid: x.rid, address: x.address })),
      );
      // Every recipient settled, but the crash came before the finish (or before a DSN was spooled).
      const settled = !restoreOutcomes(copy, rcpts);
      flow.resendLostBounces(copy, deps.tracker.bouncesWithoutDsn(r.mid), () => settled && flow.finish(copy));
      if (settled) continue;
      resumed++;
      if (r.status === 'scanning' || (r.status === 'deferred' && rcpts.every((x) => x.attempts === 0))) {
        void flow.scan(copy);
      } else {
        // Keep the retry schedule the crash interrupted.
        copy.authResults = recordedSenderAuth(store, r.mid)?.header || null;
        const attempts = new Map(rcpts.map((x) => [x.rid, x.attempts]));
        const due = Math.max(...rcpts.filter((x) => copy.pending.has(x.rid)).map((x) => x.next_attempt_at ?? 0));
        flow.queueForDelivery(copy, attempts, due, true);
      }
    }
  }
  resumed += recoverDerived(deps, derived, heldFiles);
  spool.removeUnreferenced();
  if (resumed) log.info(`recovered ${resumed} unfinished message(s) from the spool`);
}

/** Marks the recipients the database says are settled; returns whether any is left to do. */
function restoreOutcomes(copy: Copy, rcpts: RecipientRow[]): boolean {
  copy.recovered = true;
  for (const x of rcpts)
    if (SETTLED.includes(x.status)) {
      copy.pending.delete(x.rid);
      copy.outcomes.set(x.rid, x.status as Outcome);
    }
  return copy.pending.size > 0;
}

function recipientRows(store: Store, mid: number): RecipientRow[] {
  return store
    .stmt('select rid, address, status, attempts, next_attempt_at from recipients where mid = ? order by rid')
    .all(mid) as unknown as RecipientRow[];
}

/**
 * The quarantines a copy was released from (its tracking events say: never held there again), and the
 * header and tag its last release gave it.
 */
function releasedQuarantines(
  store: Store,
  mid: number,
): { quarantines: QuarantineName[]; note: string | null; tag: string | null } {
  const rows = store
    .stmt("select data from events where mid = ? and type = 'quarantine.released' order by id")
    .all(mid) as Array<{ data: string }>;
  const events = rows.map((r) => JSON.parse(r.data) as { quarantine: string; note?: string; tag?: string | null });
  const last = events.at(-1);
  return {
    quarantines: [...new Set(events.map((e) => e.quarantine))],
    note: last?.note ?? null,
    tag: last?.tag ?? null,
  };
}

/**
 * Resumes copies that had a file of their own when the process stopped. A "modified" file is the
 * output of a finished scan: deliver it. A "held" file whose copy is not in the quarantine index was
 * being quarantined or released: scan it again (it holds the original bytes).
 */
function recoverDerived(deps: RecoveryDeps, derived: Map<number, SpooledMessage[]>, heldFiles: Set<string>): number {
  const { store, flow } = deps;
  let resumed = 0;
  for (const [mid, files] of derived) {
    const row = store.stmt('select mid, parent_mid, status, policy, done from messages where mid = ?').get(mid) as
      MessageRow | undefined;
    const live = files.filter((f) => !heldFiles.has(f.file));
    if (!row || row.done || !live.length) continue;
    // Still "quarantined" with no index row: a release was under way (older versions committed the
    // two apart). Its held file is the message: rescan it like any release, never drop it.
    if (row.status === 'quarantined' && deps.index.memberships(mid).length) continue;
    const pick = live.find((f) => f.env.derived === 'modified') ?? live[live.length - 1];
    const rcpts = recipientRows(store, mid);
    const env: SpoolEnvelope = { ...pick.env };
    delete env.derived;
    const copy = flow.addCopy(
      mid,
      row.parent_mid,
      pick.file,
      pick.bodyOffset,
      null,
      pick.size,
      env,
      row.policy ?? 'default',
      rcpts.map((x) => ({ rid: x.rid, address: x.address })),
    );
    const settled = !restoreOutcomes(copy, rcpts);
    flow.resendLostBounces(copy, deps.tracker.bouncesWithoutDsn(mid), () => settled && flow.finish(copy));
    if (settled) continue;
    resumed++;
    if (pick.env.derived === 'modified') {
      copy.modified = true;
      copy.authResults = recordedSenderAuth(store, mid)?.header || null;
      const attempts = new Map(rcpts.map((x) => [x.rid, x.attempts]));
      const due = Math.max(0, ...rcpts.filter((x) => copy.pending.has(x.rid)).map((x) => x.next_attempt_at ?? 0));
      flow.queueForDelivery(copy, attempts, due, true);
    } else {
      const releasing = row.status === 'quarantined' || rcpts.some((x) => x.status === 'released');
      if (releasing) {
        const r = releasedQuarantines(store, mid);
        copy.releasedFrom = r.quarantines;
        copy.releaseNote = r.note;
        copy.releaseTag = r.tag;
      }
      void flow.scan(copy);
    }
  }
  return resumed;
}
