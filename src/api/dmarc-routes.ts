// Admin API routes of DMARC aggregate reports (RFC 7489 §7.2, src/senderauth/dmarc-reports.ts): the
// report of a policy domain and UTC day as it is (or would be) sent, and the domains with mail counted
// that day. The CLI (`breakwater dmarc report`) calls these routes.
import type { Gateway } from '../gateway/gateway.ts';
import { utcDay } from '../reports/report-mail.ts';
import { responses } from './schemas/common.ts';
import {
  dmarcReportList,
  dmarcReportListQuery,
  dmarcReportParams,
  dmarcReportQuery,
  dmarcReportView,
} from './schemas/dmarc.ts';
import { answer, type Api } from './validation.ts';

export function registerDmarcReportRoutes(api: Api, gw: Gateway): void {
  api.get(
    '/dmarc/reports',
    {
      schema: {
        operationId: 'listDmarcReports',
        tags: ['Reports'],
        summary: 'Policy domains with incoming mail counted on a UTC day, and whether their DMARC report went out',
        querystring: dmarcReportListQuery,
        response: responses({ ok: dmarcReportList, 400: ['invalid_parameter'] }),
      },
    },
    async (req) => {
      const day = req.query.day ?? utcDay(Date.now());
      const limit = Math.min(req.query.limit ?? 100, 10_000);
      return { day, domains: await gw.dmarcReports.domains(day, limit) };
    },
  );
  api.get(
    '/dmarc/reports/:domain',
    {
      schema: {
        operationId: 'getDmarcReport',
        tags: ['Reports'],
        summary: 'The DMARC aggregate report (RFC 7489) of a policy domain and UTC day, as it is or would be sent',
        description:
          'The report in JSON, element names as in its XML, from the mail counted so far; `delivery` says whether it was sent (reports of past days go out at `senderAuth.dmarcReports.sendAt` when `enabled`).',
        params: dmarcReportParams,
        querystring: dmarcReportQuery,
        response: responses({ ok: dmarcReportView, 400: ['invalid_parameter'] }),
      },
    },
    async (req) =>
      answer(dmarcReportView, await gw.dmarcReports.show(req.params.domain, req.query.day ?? utcDay(Date.now()))),
  );
}
