// Admin API routes for quarantines (DESIGN §5, §9): list, show, manage by rule, and the bulk actions
// release, delete, delay, move and send a copy. Each route validates its input and calls one gateway
// service function; the CLI calls these routes.
import type { FastifyInstance } from 'fastify';
import type { Gateway } from '../gateway/gateway.ts';
import { parseDuration } from '../config/schema.ts';
import { safeAddress } from '../alerts/message.ts';
import type { QuarantineEntry, QuarantineFilter, QuarantineName } from '../quarantine/quarantine.ts';
import { ApiError, intParam, timeParam } from './errors.ts';

const FILTER_KEYS = ['rule', 'level', 'sender', 'recipient', 'since', 'until', 'limit', 'mids'] as const;

/** Bounds on admin input (issue 10): larger requests are refused before anything changes. */
export const QUARANTINE_LIMITS = {
  /** MIDs in one request: a bulk action over more uses a filter (rule, level, time range) or `all` */
  mids: 10_000,
  /** entries in one listing page */
  listLimit: 10_000,
  /** the longest `extend` of a delay, and the latest scheduled exit from now: ten years */
  maxHoldMs: 3650 * 86_400_000,
} as const;

function quarantineName(gw: Gateway, v: unknown, code = 'quarantine_not_found', status = 404): QuarantineName {
  if (typeof v !== 'string' || !gw.quarantines.settingsOf(v)) {
    const known = (gw.config.quarantine.policy.map((q) => q.name) as string[]).concat(['outbreak', 'virus']);
    throw new ApiError(status, code, `no quarantine ${String(v).slice(0, 80)} (known: ${known.sort().join(', ')})`);
  }
  return v;
}

/** A quarantine filter from a query string (strings) or a JSON body (typed values). */
export function quarantineFilterFrom(q: Record<string, unknown>, quarantine: QuarantineName): QuarantineFilter {
  const known = new Set<string>([...FILTER_KEYS, 'all', 'by', 'quarantine']);
  for (const k of Object.keys(q))
    if (!known.has(k)) throw new ApiError(400, 'unknown_parameter', `unknown quarantine filter ${k}`);
  const f: QuarantineFilter = { quarantine };
  const str = (k: 'rule' | 'sender' | 'recipient') => {
    if (q[k] === undefined) return;
    if (typeof q[k] !== 'string' || !q[k])
      throw new ApiError(400, 'invalid_parameter', `${k} must be a non-empty string`);
    f[k] = q[k] as string;
  };
  str('rule');
  str('sender');
  str('recipient');
  const int = (k: string): number => (typeof q[k] === 'number' ? checkInt(q[k] as number, k) : intParam(q[k], k));
  if (q.level !== undefined) {
    f.level = int('level');
    if (f.level > 5) throw new ApiError(400, 'invalid_parameter', 'level must be 0–5');
  }
  if (q.limit !== undefined) {
    f.limit = int('limit');
    if (f.limit < 1 || f.limit > QUARANTINE_LIMITS.listLimit)
      throw new ApiError(400, 'invalid_parameter', `limit must be 1–${QUARANTINE_LIMITS.listLimit}`);
  }
  if (q.since !== undefined) f.since = typeof q.since === 'number' ? q.since : timeParam(q.since, 'since');
  if (q.until !== undefined) f.until = typeof q.until === 'number' ? q.until : timeParam(q.until, 'until');
  if (q.mids !== undefined) {
    const list = Array.isArray(q.mids) ? q.mids : String(q.mids).split(',');
    if (list.length > QUARANTINE_LIMITS.mids)
      throw new ApiError(
        400,
        'too_many_mids',
        `at most ${QUARANTINE_LIMITS.mids} MIDs per request (got ${list.length}); select by rule, level or time instead`,
      );
    f.mids = list.map((m) => (typeof m === 'number' ? checkInt(m, 'mids') : intParam(String(m).trim(), 'mids')));
    if (!f.mids.length) throw new ApiError(400, 'invalid_parameter', 'mids must not be empty');
  }
  return f;
}

function checkInt(n: number, name: string): number {
  if (!Number.isSafeInteger(n) || n < 0)
    throw new ApiError(400, 'invalid_parameter', `${name} must be a non-negative integer`);
  return n;
}

/** Bulk actions need a filter, or an explicit `all: true`: an empty body never empties a quarantine. */
function bulkFilter(
  body: unknown,
  quarantine: QuarantineName,
  extra: readonly string[] = [],
): { filter: QuarantineFilter; by: string | null } {
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw new ApiError(400, 'invalid_body', 'the body must be a JSON object with a filter (mids, rule, level, …)');
  const b = Object.fromEntries(Object.entries(body as Record<string, unknown>).filter(([k]) => !extra.includes(k)));
  const filter = quarantineFilterFrom(b, quarantine);
  const narrowed = FILTER_KEYS.some((k) => k !== 'limit' && b[k] !== undefined);
  if (!narrowed && b.all !== true)
    throw new ApiError(
      400,
      'filter_required',
      'give mids, rule, level, sender, recipient or a time range, or all: true',
    );
  if (b.by !== undefined && (typeof b.by !== 'string' || b.by.length > 200))
    throw new ApiError(400, 'invalid_parameter', 'by must be a short string');
  return { filter, by: (b.by as string | undefined) ?? null };
}

export function registerQuarantineRoutes(api: FastifyInstance, gw: Gateway): void {
  api.get('/quarantines', async () => {
    const s = await gw.capacity.summary();
    return {
      quarantines: s.quarantines.map((q) => ({
        name: q.name,
        kind: q.kind,
        description: q.description,
        messages: q.messages,
        bytes: q.bytes,
        defaultAction: q.defaultAction,
        retention: q.retentionMs === null ? 'per policy' : formatDuration(q.retentionMs),
        releaseSubjectTag: q.releaseSubjectTag,
      })),
      usage: s.usage,
    };
  });
  api.get('/quarantines/:name/messages', async (req) => {
    const name = quarantineName(gw, (req.params as { name: string }).name);
    const f = quarantineFilterFrom(req.query as Record<string, unknown>, name);
    return { messages: (await gw.quarantines.list(f)).map(publicEntry) };
  });
  api.get('/quarantines/:name/messages/:mid', async (req) => {
    const p = req.params as { name: string; mid: string };
    const name = quarantineName(gw, p.name);
    const mid = intParam(p.mid, 'mid');
    const [e] = await gw.quarantines.list({ quarantine: name, mids: [mid] });
    if (!e) throw new ApiError(404, 'message_not_quarantined', `MID ${mid} is not in quarantine ${name}`);
    return { ...publicEntry(e), tracking: gw.tracker.show(mid) };
  });
  api.get('/quarantines/:name/rules', async (req) => {
    const name = quarantineName(gw, (req.params as { name: string }).name);
    return { rules: await gw.quarantines.rules(name) };
  });
  api.post('/quarantines/:name/release', async (req) => {
    const name = quarantineName(gw, (req.params as { name: string }).name);
    const { filter, by } = bulkFilter(req.body, name);
    const mids = await gw.quarantines.releaseMatching(filter, by);
    return bulkResult('release', filter, mids);
  });
  api.post('/quarantines/:name/delete', async (req) => {
    const name = quarantineName(gw, (req.params as { name: string }).name);
    const { filter, by } = bulkFilter(req.body, name);
    const mids = await gw.quarantines.deleteMatching(filter, by);
    return bulkResult('delete', filter, mids);
  });
  api.post('/quarantines/:name/delay', async (req) => {
    const name = quarantineName(gw, (req.params as { name: string }).name);
    const b = (req.body ?? {}) as Record<string, unknown>;
    const { extend } = b;
    const ms = typeof extend === 'string' && /^\d{1,12}(ms|s|m|h|d)$/.test(extend) ? parseDuration(extend) : NaN;
    if (!(ms > 0 && ms <= QUARANTINE_LIMITS.maxHoldMs))
      throw new ApiError(400, 'invalid_parameter', 'extend must be a duration from 1s to 3650d, such as "4h" or "2d"');
    const { filter, by } = bulkFilter(req.body, name, ['extend']);
    const mids = await gw.quarantines.delay(filter, ms, by, QUARANTINE_LIMITS.maxHoldMs);
    return bulkResult('delay', filter, mids);
  });

  api.post('/quarantines/:name/move', async (req) => {
    const name = quarantineName(gw, (req.params as { name: string }).name);
    const to = ((req.body ?? {}) as Record<string, unknown>).to;
    const target = quarantineName(gw, to, 'invalid_target', 400);
    if (target === name) throw new ApiError(400, 'invalid_target', 'to must be another quarantine');
    const { filter, by } = bulkFilter(req.body, name, ['to']);
    const mids = await gw.quarantines.move(filter, target, by);
    return bulkResult('move', filter, mids);
  });
  api.post('/quarantines/:name/copy', async (req) => {
    const name = quarantineName(gw, (req.params as { name: string }).name);
    const to = ((req.body ?? {}) as Record<string, unknown>).to;
    const list = Array.isArray(to) ? to : typeof to === 'string' ? [to] : [];
    const addresses = list.map((a) => (typeof a === 'string' ? safeAddress(a) : null));
    if (!addresses.length || addresses.length > 20 || addresses.some((a) => a === null))
      throw new ApiError(400, 'invalid_parameter', 'to must be 1 to 20 e-mail addresses');
    const { filter, by } = bulkFilter(req.body, name, ['to']);
    const mids = await gw.quarantines.copy(filter, addresses as string[], by);
    return bulkResult('copy', filter, mids);
  });
}

/**
 * The answer of a bulk action: what was acted on and, when MIDs were named, which of them were not
 * (not in this quarantine, or already on their way out) so the CLI can say so and exit non-zero.
 */
function bulkResult(action: string, filter: QuarantineFilter, mids: number[]) {
  const done = new Set(mids);
  const notFound = filter.mids ? [...new Set(filter.mids)].filter((m) => !done.has(m)) : [];
  return { action, count: mids.length, mids, notFound };
}

/** A stored time as ISO 8601, or null when the row holds something no Date can show: a bad row never breaks a listing. */
function isoTime(ms: number): string | null {
  const d = new Date(ms);
  return Number.isFinite(d.getTime()) ? d.toISOString() : null;
}

function publicEntry(e: QuarantineEntry) {
  return {
    mid: e.mid,
    quarantine: e.quarantine,
    enteredAt: isoTime(e.enteredAt),
    scheduledExit: isoTime(e.exitAt),
    size: e.size,
    level: e.level,
    category: e.category,
    viral: e.viral,
    ruleIds: e.ruleIds,
    reason: e.reason,
    sender: e.sender,
    recipients: e.recipients,
    subject: e.subject,
    policy: e.policy,
  };
}

/** 14 days → "14d", 90 minutes → "90m": the config's own notation. */
function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const)
    if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}
