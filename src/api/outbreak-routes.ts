// Admin API routes for Outbreak Filters, web interaction tracking, reports and alerts.
// Each route declares its input and answers (schemas/outbreak.ts) and calls one gateway service
// function; the CLI calls these routes.
import { z } from 'zod';
import type { Gateway } from '../gateway/gateway.ts';
import { adaptiveRules } from '../outbreak/adaptive.ts';
import { responses } from './schemas/common.ts';
import {
  alert,
  alertsQuery,
  confirmBody,
  flushResult,
  mailFlowReport,
  mailFlowReportQuery,
  noBody,
  outbreakReport,
  outbreakReportQuery,
  outbreakRules,
  outbreakStatus,
  updateResult,
  webInteractionReport,
  webReportQuery,
} from './schemas/outbreak.ts';
import { answer, type Api } from './validation.ts';
import { ApiError } from './errors.ts';
import { flowBucketMs } from '../reports/reports.ts';

const DAY = 86_400_000;

/** A report's period (until: now; since: `days` before until) and table size (20, at most 1000). */
function reportPeriod(
  q: { since?: number; until?: number; top?: number },
  days: number,
): { since: number; until: number; top: number } {
  const until = q.until ?? Date.now() + 1;
  return { since: q.since ?? until - days * DAY, until, top: q.top !== undefined ? Math.min(q.top, 1000) : 20 };
}

export function registerOutbreakRoutes(api: Api, gw: Gateway): void {
  api.get(
    '/outbreak/status',
    {
      schema: {
        operationId: 'getOutbreakStatus',
        tags: ['Outbreak Filters'],
        summary: 'Settings, rule version, last update/check/error, quarantine usage',
        response: responses({ ok: outbreakStatus }),
      },
    },
    async () => {
      await gw.store.committed();
      return answer(outbreakStatus, {
        settings: gw.config.outbreakFilters,
        policies: Object.fromEntries(
          (['incoming', 'outgoing'] as const).map((d) => [
            d,
            gw.config.policies[d].map((p) => ({ name: p.name, outbreakFilters: p.outbreakFilters })),
          ]),
        ),
        ...gw.rules.status(),
        quarantine: gw.quarantines.index.usage(),
      });
    },
  );
  api.post(
    '/outbreak/update',
    {
      schema: {
        operationId: 'updateOutbreakRules',
        tags: ['Outbreak Filters'],
        summary: 'Fetch the rule feed now',
        description: 'A failed update is a 200 with `status: failed`; the active rules stay.',
        body: noBody,
        response: responses({ ok: updateResult, body: true }),
      },
    },
    async () => gw.rules.update(),
  );
  api.post(
    '/outbreak/flush',
    {
      schema: {
        operationId: 'flushOutbreakRules',
        tags: ['Outbreak Filters'],
        summary: 'Clear the cached outbreak rules',
        body: confirmBody,
        response: responses({ ok: flushResult, body: true, 400: ['confirmation_required'] }),
      },
    },
    async () => {
      const r = gw.rules.flush();
      return { flushed: true as const, ...r };
    },
  );
  api.get(
    '/outbreak/rules',
    {
      schema: {
        operationId: 'listOutbreakRules',
        tags: ['Outbreak Filters'],
        summary: 'Active outbreak rules and the adaptive rule catalogue',
        response: responses({ ok: outbreakRules }),
      },
    },
    async () => ({
      version: gw.outbreak.bundle?.version ?? null,
      rules: gw.rules.activeRules().map((r) => ({
        id: r.id,
        level: r.level,
        category: r.category,
        description: r.description,
        published: r.published,
        expires: r.expires ?? null,
      })),
      adaptive: gw.outbreak.adaptive ? [...adaptiveRules] : [],
    }),
  );

  api.get(
    '/reports/web-interaction',
    {
      schema: {
        operationId: 'getWebInteractionReport',
        tags: ['Reports'],
        summary: 'Clicks on rewritten links',
        description:
          'Totals, clicks per URL, and the users who clicked malicious links (or continued past a warning). Counts are null over an empty period.',
        querystring: webReportQuery,
        response: responses({ ok: webInteractionReport, 400: ['invalid_parameter'] }),
      },
    },
    async (req) => {
      const { since, until, top } = reportPeriod(req.query, 30);
      return answer(webInteractionReport, await gw.reports.webInteraction(since, until, top));
    },
  );

  api.get(
    '/reports/outbreak',
    {
      schema: {
        operationId: 'getOutbreakReport',
        tags: ['Reports'],
        summary: 'Messages by threat level, by category and by rule',
        querystring: outbreakReportQuery,
        response: responses({ ok: outbreakReport, 400: ['invalid_parameter'] }),
      },
    },
    async (req) => {
      const { since, until, top } = reportPeriod(req.query, 7);
      return answer(outbreakReport, await gw.reports.outbreak(since, until, top));
    },
  );

  api.get(
    '/reports/mail-flow',
    {
      schema: {
        operationId: 'getMailFlowReport',
        tags: ['Reports'],
        summary: 'Mail flow over time: accepted, delivered, quarantined, bounced and dropped messages per bucket',
        querystring: mailFlowReportQuery,
        response: responses({ ok: mailFlowReport, 400: ['invalid_parameter'] }),
      },
    },
    async (req) => {
      const { since, until } = reportPeriod(req.query, 1);
      if (since >= until) throw new ApiError(400, 'invalid_parameter', 'since must be before until');
      return answer(mailFlowReport, await gw.reports.mailFlow(since, until, flowBucketMs(since, until)));
    },
  );

  api.get(
    '/alerts',
    {
      schema: {
        operationId: 'listAlerts',
        tags: ['Alerts'],
        summary: 'Recent alerts, newest first',
        querystring: alertsQuery,
        response: responses({ ok: z.object({ alerts: z.array(alert) }), 400: ['invalid_parameter'] }),
      },
    },
    async (req) => {
      const q = req.query;
      const limit = q.limit !== undefined ? Math.min(q.limit, 1000) : 50;
      await gw.store.committed();
      return { alerts: gw.alerts.list({ limit, class: q.class as 'outbreak' | undefined }) };
    },
  );
}
