// Schemas of the DMARC aggregate report routes (RFC 7489 §7.2): the report of one policy domain and UTC
// day as it is (or would be) sent, element names as Appendix C's XML spells them, and the domains with
// mail counted.
import { z } from 'zod';
import { reportDayQuery, reportDelivery, reportDomainParams, reportListQuery } from './common.ts';

export const dmarcReportParams = reportDomainParams(
  'the policy domain (where the DMARC record that applied to incoming mail is published)',
);

export const dmarcReportQuery = reportDayQuery;

export const dmarcReportListQuery = reportListQuery('most messages first');

const count = z.int().min(0);
const disposition = z.enum(['none', 'quarantine', 'reject']);
const alignment = z.enum(['r', 's']);
const aligned = z.enum(['pass', 'fail']);

const report = z
  .object({
    report_metadata: z.object({
      org_name: z.string(),
      email: z.string(),
      report_id: z.string(),
      date_range: z.object({
        begin: count.describe('epoch seconds'),
        end: count.describe('epoch seconds'),
      }),
    }),
    policy_published: z.object({
      domain: z.string(),
      adkim: alignment,
      aspf: alignment,
      p: z.string(),
      sp: z.string(),
      pct: count,
    }),
    record: z.array(
      z.object({
        row: z.object({
          source_ip: z.string(),
          count,
          policy_evaluated: z.object({
            disposition,
            dkim: aligned,
            spf: aligned,
            reason: z.array(
              z.object({
                type: z.enum(['trusted_forwarder', 'sampled_out', 'local_policy']),
                comment: z.string().nullable(),
              }),
            ),
          }),
        }),
        identifiers: z.object({ header_from: z.string(), envelope_from: z.string() }),
        auth_results: z.object({
          dkim: z.array(z.object({ domain: z.string(), selector: z.string(), result: z.string() })),
          spf: z.object({ domain: z.string(), scope: z.enum(['mfrom', 'helo']), result: z.string() }),
        }),
      }),
    ),
  })
  .meta({
    id: 'DmarcAggregateReport',
    description: 'A DMARC aggregate report (RFC 7489 Appendix C) as it is sent, in JSON (the mail carries it as XML)',
  });

export const dmarcReportView = z.object({
  domain: z.string(),
  day: z.string(),
  report: report.nullable().describe('null: no mail of this policy domain was counted that day'),
  rua: z.array(z.string()).describe('the rua= URIs the domain published'),
  delivery: reportDelivery(
    '`sent` (to the addresses in detail), `no-rua` (no mailto: rua URI) or `refused` (every destination was unauthorized or too small; detail says which)',
  ),
});

export const dmarcReportList = z.object({
  day: z.string(),
  domains: z.array(
    z.object({
      domain: z.string(),
      messages: count,
      failed: count.describe('messages that failed DMARC'),
      delivery: z.string().nullable().describe('null: not sent (yet); else as in the report'),
    }),
  ),
});
