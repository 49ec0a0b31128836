// Admin API routes for Outbreak Filters, the Outbreak quarantine, web interaction tracking and alerts.
// Each route validates its input and calls one gateway service function; the CLI calls these routes.
import type { FastifyInstance } from 'fastify';
import type { Gateway } from '../gateway/gateway.ts';
import { parseDuration } from '../config/schema.ts';
import { adaptiveRules } from '../outbreak/adaptive.ts';
import { quarantineNames, type QuarantineFilter, type QuarantineName } from '../quarantine/quarantine.ts';
import { ApiError, intParam, timeParam } from './errors.ts';

const FILTER_KEYS = ['rule', 'level', 'sender', 'recipient', 'since', 'until', 'limit', 'mids'] as const;

function quarantineName(v: unknown): QuarantineName {
  if (typeof v !== 'string' || !(quarantineNames as readonly string[]).includes(v))
    throw new ApiError(
      404,
      'quarantine_not_found',
      `no quarantine ${String(v)} (known: ${quarantineNames.join(', ')})`,
    );
  return v as QuarantineName;
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
  if (q.limit !== undefined) f.limit = int('limit');
  if (q.since !== undefined) f.since = typeof q.since === 'number' ? q.since : timeParam(q.since, 'since');
  if (q.until !== undefined) f.until = typeof q.until === 'number' ? q.until : timeParam(q.until, 'until');
  if (q.mids !== undefined) {
    const list = Array.isArray(q.mids) ? q.mids : String(q.mids).split(',');
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
function bulkFilter(body: unknown, quarantine: QuarantineName): { filter: QuarantineFilter; by: string | null } {
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw new ApiError(400, 'invalid_body', 'the body must be a JSON object with a filter (mids, rule, level, …)');
  const b = body as Record<string, unknown>;
  const filter = quarantineFilterFrom(b, quarantine);
  const narrowed = FILTER_KEYS.some((k) => k !== 'limit' && b[k] !== undefined);
  if (!narrowed && b.all !== true)
    throw new ApiError(
      400,
      'filter_required',
      'give mids, rule, level, sender, recipient or a time range, or all: true',
    );
  filter.limit ??= 100_000;
  if (b.by !== undefined && (typeof b.by !== 'string' || b.by.length > 200))
    throw new ApiError(400, 'invalid_parameter', 'by must be a short string');
  return { filter, by: (b.by as string | undefined) ?? null };
}

export function registerOutbreakRoutes(api: FastifyInstance, gw: Gateway): void {
  api.get('/outbreak/status', async () => {
    await gw.store.committed();
    return {
      settings: gw.config.outbreakFilters,
      policies: Object.fromEntries(
        (['incoming', 'outgoing'] as const).map((d) => [
          d,
          gw.config.policies[d].map((p) => ({ name: p.name, outbreakFilters: p.outbreakFilters })),
        ]),
      ),
      ...gw.rules.status(),
      quarantine: gw.quarantine.usage(),
    };
  });
  api.post('/outbreak/update', async () => gw.rules.update());
  api.post('/outbreak/flush', async (req) => {
    const b = (req.body ?? {}) as Record<string, unknown>;
    if (b.confirm !== true)
      throw new ApiError(400, 'confirmation_required', 'flushing the cached rules needs {"confirm": true}');
    const r = gw.rules.flush();
    return { flushed: true, ...r };
  });
  api.get('/outbreak/rules', async () => ({
    version: gw.outbreak.bundle?.version ?? null,
    rules: gw.rules.activeRules().map((r) => ({
      id: r.id,
      level: r.level,
      category: r.category,
      description: r.description,
      published: r.published,
      expires: r.expires ?? null,
    })),
    adaptive: gw.outbreak.adaptive ? adaptiveRules : [],
  }));

  api.get('/quarantines', async () => {
    await gw.store.committed();
    return {
      quarantines: quarantineNames.map((name) => ({
        name,
        messages: gw.quarantine.list({ quarantine: name, limit: 100_000 }).length,
        defaultAction: gw.config.quarantine[name].defaultAction,
      })),
      usage: gw.quarantine.usage(),
    };
  });
  api.get('/quarantines/:name/messages', async (req) => {
    const name = quarantineName((req.params as { name: string }).name);
    const f = quarantineFilterFrom(req.query as Record<string, unknown>, name);
    return { messages: (await gw.quarantineList(f)).map(publicEntry) };
  });
  api.get('/quarantines/:name/messages/:mid', async (req) => {
    const p = req.params as { name: string; mid: string };
    const name = quarantineName(p.name);
    const mid = intParam(p.mid, 'mid');
    const [e] = await gw.quarantineList({ quarantine: name, mids: [mid] });
    if (!e) throw new ApiError(404, 'message_not_quarantined', `MID ${mid} is not in quarantine ${name}`);
    return { ...publicEntry(e), tracking: gw.tracker.show(mid) };
  });
  api.get('/quarantines/:name/rules', async (req) => {
    quarantineName((req.params as { name: string }).name);
    return { rules: await gw.quarantineRules() };
  });
  api.post('/quarantines/:name/release', async (req) => {
    const name = quarantineName((req.params as { name: string }).name);
    const { filter, by } = bulkFilter(req.body, name);
    const mids = await gw.quarantineRelease(filter, by);
    return { action: 'release', count: mids.length, mids };
  });
  api.post('/quarantines/:name/delete', async (req) => {
    const name = quarantineName((req.params as { name: string }).name);
    const { filter, by } = bulkFilter(req.body, name);
    const mids = await gw.quarantineDelete(filter, by);
    return { action: 'delete', count: mids.length, mids };
  });
  api.post('/quarantines/:name/delay', async (req) => {
    const name = quarantineName((req.params as { name: string }).name);
    const b = (req.body ?? {}) as Record<string, unknown>;
    const { extend, ...rest } = b;
    if (typeof extend !== 'string' || !/^\d+(ms|s|m|h|d)$/.test(extend))
      throw new ApiError(400, 'invalid_parameter', 'extend must be a duration such as "4h" or "2d"');
    const { filter, by } = bulkFilter(rest, name);
    const mids = await gw.quarantineDelay(filter, parseDuration(extend), by);
    return { action: 'delay', count: mids.length, mids };
  });

  api.get('/reports/web-interaction', async (req) => {
    const q = req.query as Record<string, unknown>;
    const until = q.until !== undefined ? timeParam(q.until, 'until') : Date.now() + 1;
    const since = q.since !== undefined ? timeParam(q.since, 'since') : until - 30 * 86_400_000;
    const top = q.top !== undefined ? Math.min(intParam(q.top, 'top'), 1000) : 20;
    return gw.webInteractionReport(since, until, top);
  });

  api.get('/reports/outbreak', async (req) => {
    const q = req.query as Record<string, unknown>;
    const until = q.until !== undefined ? timeParam(q.until, 'until') : Date.now() + 1;
    const since = q.since !== undefined ? timeParam(q.since, 'since') : until - 7 * 86_400_000;
    const top = q.top !== undefined ? Math.min(intParam(q.top, 'top'), 1000) : 20;
    return gw.outbreakReport(since, until, top);
  });

  api.get('/alerts', async (req) => {
    const q = req.query as Record<string, unknown>;
    const limit = q.limit !== undefined ? Math.min(intParam(q.limit, 'limit'), 1000) : 50;
    const cls = q.class;
    if (cls !== undefined && !['outbreak', 'quarantine', 'antivirus', 'system'].includes(String(cls)))
      throw new ApiError(400, 'invalid_parameter', 'class must be outbreak, quarantine, antivirus or system');
    await gw.store.committed();
    return { alerts: gw.alerts.list({ limit, class: cls as 'outbreak' | undefined }) };
  });
}

function publicEntry(e: Awaited<ReturnType<Gateway['quarantineList']>>[number]) {
  return {
    mid: e.mid,
    quarantine: e.quarantine,
    enteredAt: new Date(e.enteredAt).toISOString(),
    scheduledExit: new Date(e.exitAt).toISOString(),
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
