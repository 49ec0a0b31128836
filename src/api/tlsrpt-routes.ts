// Admin API routes of SMTP TLS Reporting (RFC 8460, src/delivery/tls-reports.ts): the report of a policy
// domain and UTC day as it is (or would be) sent, and the domains with sessions that day. The CLI
// (`breakwater tlsrpt`) calls these routes.
import type { Gateway } from '../gateway/gateway.ts';
import { utcDay } from '../reports/report-mail.ts';
import { responses } from './schemas/common.ts';
import { tlsReportList, tlsReportListQuery, tlsReportParams, tlsReportQuery, tlsReportView } from './schemas/tlsrpt.ts';
import { answer, type Api } from './validation.ts';

export function registerTlsReportRoutes(api: Api, gw: Gateway): void {
  api.get(
    '/tlsrpt/reports',
    {
      schema: {
        operationId: 'listTlsReports',
        tags: ['Reports'],
        summary: 'Policy domains with TLS sessions recorded on a UTC day, and whether their report went out',
        querystring: tlsReportListQuery,
        response: responses({ ok: tlsReportList, 400: ['invalid_parameter'] }),
      },
    },
    async (req) => {
      const day = req.query.day ?? utcDay(Date.now());
      const limit = Math.min(req.query.limit ?? 100, 10_000);
      return { day, domains: await gw.tlsReports.domains(day, limit) };
    },
  );
  api.get(
    '/tlsrpt/reports/:domain',
    {
      schema: {
        operationId: 'getTlsReport',
        tags: ['Reports'],
        summary: 'The SMTP TLS report (RFC 8460) of a policy domain and UTC day, as it is or would be sent',
        description:
          'The JSON of the report (before gzip) from the sessions recorded so far; `delivery` says whether it was sent (reports of past days go out at `outbound.tls.tlsrpt.sendAt` when `enabled`).',
        params: tlsReportParams,
        querystring: tlsReportQuery,
        response: responses({ ok: tlsReportView, 400: ['invalid_parameter'] }),
      },
    },
    async (req) =>
      answer(tlsReportView, await gw.tlsReports.show(req.params.domain, req.query.day ?? utcDay(Date.now()))),
  );
}
