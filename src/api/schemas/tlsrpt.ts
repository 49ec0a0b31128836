// Schemas of the TLS reporting routes (RFC 8460): the report of one policy domain and UTC day as it is
// (or would be) sent, field names as the RFC spells them, and the domains with recorded sessions.
import { z } from 'zod';
import { reportDayQuery, reportDelivery, reportDomainParams, reportListQuery } from './common.ts';

export const tlsReportParams = reportDomainParams('the policy domain (a recipient domain mail went to over MX)');

export const tlsReportQuery = reportDayQuery;

export const tlsReportListQuery = reportListQuery('most sessions first');

const count = z.int().min(0);

const resultType = z.enum([
  'starttls-not-supported',
  'certificate-host-mismatch',
  'certificate-expired',
  'certificate-not-trusted',
  'validation-failure',
  'sts-policy-fetch-error',
  'sts-policy-invalid',
  'sts-webpki-invalid',
]);

const report = z
  .object({
    'organization-name': z.string(),
    'date-range': z.object({ 'start-datetime': z.string(), 'end-datetime': z.string() }),
    'contact-info': z.string(),
    'report-id': z.string(),
    policies: z.array(
      z.object({
        policy: z.object({
          'policy-type': z.enum(['sts', 'no-policy-found']),
          'policy-string': z.array(z.string()).optional(),
          'policy-domain': z.string(),
          'mx-host': z.array(z.string()).optional(),
        }),
        summary: z.object({
          'total-successful-session-count': count,
          'total-failure-session-count': count,
        }),
        'failure-details': z
          .array(
            z.object({
              'result-type': resultType,
              'sending-mta-ip': z.string().optional(),
              'receiving-mx-hostname': z.string().optional(),
              'receiving-ip': z.string().optional(),
              'failed-session-count': count,
              'failure-reason-code': z.string().optional(),
            }),
          )
          .optional(),
      }),
    ),
  })
  .meta({ id: 'TlsReport', description: 'An SMTP TLS report (RFC 8460 §4) as it is sent, before gzip' });

export const tlsReportView = z.object({
  domain: z.string(),
  day: z.string(),
  report: report.nullable().describe('null: no session to this domain was recorded that day'),
  delivery: reportDelivery(
    '`sent` (to the rua URIs in detail) or `no-record` (the domain publishes no usable `_smtp._tls` record)',
  ),
  uploads: z
    .array(
      z.object({
        url: z.string(),
        status: z.enum(['pending', 'sent', 'failed']),
        attempts: count,
        lastError: z.string().nullable(),
      }),
    )
    .describe('the https: deliveries of the report'),
});

export const tlsReportList = z.object({
  day: z.string(),
  domains: z.array(
    z.object({
      domain: z.string(),
      successful: count,
      failed: count,
      delivery: z.string().nullable().describe('null: not sent (yet); else as in the report'),
    }),
  ),
});
