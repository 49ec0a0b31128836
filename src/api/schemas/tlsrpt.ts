// Schemas of the TLS reporting routes (RFC 8460): the report of one policy domain and UTC day as it is
// (or would be) sent, field names as the RFC spells them, and the domains with recorded sessions.
import { z } from 'zod';
import { intInput } from './common.ts';

const DAY = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/;
const DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.?$/i;

const day = z
  .string({ error: 'day must be a UTC date such as 2026-01-15' })
  .regex(DAY, { error: 'day must be a UTC date such as 2026-01-15' })
  .describe('UTC day, YYYY-MM-DD (default: today)');

export const tlsReportParams = z.object({
  domain: z
    .string({ error: 'domain must be a domain name' })
    .regex(DOMAIN, { error: 'domain must be a domain name' })
    .describe('the policy domain (a recipient domain mail went to over MX)'),
});

export const tlsReportQuery = z.looseObject({ day: day.optional() });

export const tlsReportListQuery = z.looseObject({
  day: day.optional(),
  limit: intInput('limit')
    .optional()
    .describe('at most this many domains, most sessions first (default 100; at most 10,000)'),
});

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
  delivery: z
    .object({
      status: z
        .string()
        .describe(
          '`sent` (to the rua URIs in detail) or `no-record` (the domain publishes no usable `_smtp._tls` record)',
        ),
      detail: z.string(),
      at: count.describe('epoch milliseconds'),
    })
    .nullable()
    .describe('null: not sent (yet)'),
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
