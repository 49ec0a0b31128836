// Admin API routes for Outbreak Filters, web interaction tracking, reports and alerts.
// Each route validates its input and calls one gateway service function; the CLI calls these routes.
import type { FastifyInstance } from 'fastify';
import type { Gateway } from '../gateway/gateway.ts';
import { adaptiveRules } from '../outbreak/adaptive.ts';
import { ApiError, intParam, timeParam } from './errors.ts';

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
      quarantine: gw.quarantines.index.usage(),
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

  api.get('/reports/web-interaction', async (req) => {
    const q = req.query as Record<string, unknown>;
    const until = q.until !== undefined ? timeParam(q.until, 'until') : Date.now() + 1;
    const since = q.since !== undefined ? timeParam(q.since, 'since') : until - 30 * 86_400_000;
    const top = q.top !== undefined ? Math.min(intParam(q.top, 'top'), 1000) : 20;
    return gw.reports.webInteraction(since, until, top);
  });

  api.get('/reports/outbreak', async (req) => {
    const q = req.query as Record<string, unknown>;
    const until = q.until !== undefined ? timeParam(q.until, 'until') : Date.now() + 1;
    const since = q.since !== undefined ? timeParam(q.since, 'since') : until - 7 * 86_400_000;
    const top = q.top !== undefined ? Math.min(intParam(q.top, 'top'), 1000) : 20;
    return gw.reports.outbreak(since, until, top);
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
