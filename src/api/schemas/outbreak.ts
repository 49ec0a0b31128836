// Schemas of the Outbreak Filters, report and alert routes.
import { z } from 'zod';
import { ALERT_CLASSES, ALERT_SEVERITIES } from '../../alerts/types.ts';
import { withCodes } from '../validation.ts';
import { intInput, threatLevel, timeInput } from './common.ts';

const count = z.int().min(0);
const time = z.string().describe('ISO 8601 time');

export const quarantineUsage = z
  .object({ messages: count, bytes: count })
  .describe('All quarantines together: held messages and their bytes');

const policyList = z.array(
  z.object({ name: z.string(), outbreakFilters: z.record(z.string(), z.unknown()).describe('per-policy settings') }),
);

export const outbreakStatus = z.object({
  settings: z.record(z.string(), z.unknown()).describe('the global `outbreakFilters` settings'),
  policies: z.object({ incoming: policyList, outgoing: policyList }),
  outbreakRules: z.object({
    version: z.int().nullable(),
    published: z.string().nullable(),
    rules: count.describe('rule count'),
  }),
  adaptiveRules: z.object({ enabled: z.boolean() }),
  feed: z
    .union([z.object({ url: z.string() }), z.object({ dir: z.string() })])
    .nullable()
    .describe('where rule bundles come from; null without a feed'),
  lastUpdate: time.nullable(),
  lastCheck: time.nullable(),
  lastError: z.string().nullable(),
  quarantine: quarantineUsage,
});

export const updateResult = z
  .object({
    status: z.enum(['updated', 'unchanged', 'failed', 'no_feed']),
    version: z.int().nullable().describe('the active bundle version'),
    ruleCount: count,
    error: z.object({ code: z.string(), message: z.string() }).optional().describe('why the update failed'),
  })
  .meta({ id: 'UpdateResult' });

/** Not read: send no body, or `{}`. */
export const noBody = z.unknown().meta({ type: 'object', description: 'not read: send no body, or `{}`' });

/** `{"confirm": true}`; anything else (no body, other values) is refused with `confirmation_required`. */
export const confirmBody = withCodes(
  z.looseObject({
    confirm: z.literal(true, { error: 'flushing the cached rules needs {"confirm": true}' }),
  }),
  { codes: { '(type)': 'confirmation_required', confirm: 'confirmation_required' } },
);

export const flushResult = z.object({ flushed: z.literal(true), removedVersion: z.int().nullable() });

export const outbreakRules = z.object({
  version: z.int().nullable(),
  rules: z.array(
    z.object({
      id: z.string(),
      level: threatLevel,
      category: z.string(),
      description: z.string(),
      published: z.string(),
      expires: z.string().nullable(),
    }),
  ),
  adaptive: z
    .array(
      z.object({ id: z.string(), level: threatLevel, category: z.string(), type: z.string(), description: z.string() }),
    )
    .describe('empty when adaptive rules are off'),
});

/** Report periods: unknown parameters are ignored, `top` above 1000 counts as 1000. */
function reportQuery(days: number) {
  return z.looseObject({
    since: timeInput('since').optional().describe(`start of the period (default: ${days} days before until)`),
    until: timeInput('until').optional().describe('end of the period, exclusive (default: now)'),
    top: intInput('top').optional().describe('rows per table (default 20; more than 1000 counts as 1000)'),
  });
}
export const webReportQuery = reportQuery(30);
export const outbreakReportQuery = reportQuery(7);

export const webInteractionReport = z.object({
  since: time,
  until: time,
  totals: z
    .object({
      clicks: count,
      allowed: count.nullable(),
      blocked: count.nullable(),
      unknown: count.nullable(),
      warned: count.nullable(),
    })
    .describe('null counts over an empty period'),
  urls: z.array(
    z.object({
      url: z.string(),
      domain: z.string().nullable(),
      allowed: count,
      blocked: count,
      unknown: count,
      warned: count,
      clicks: count,
      messages: count,
    }),
  ),
  topMaliciousClickers: z.array(z.object({ recipient: z.string(), clicks: count, urls: count })),
});

export const mailFlowReportQuery = z.looseObject({
  since: timeInput('since').optional().describe('start of the period (default: 24 hours before until)'),
  until: timeInput('until').optional().describe('end of the period, exclusive (default: now)'),
});

const flowCount = z.int().min(0);
export const mailFlowReport = z.object({
  since: time,
  until: time,
  bucketSeconds: z.int().describe('the width of a bucket: about 120 per period, whole minutes'),
  buckets: z.array(
    z.object({
      at: time.describe('start of the bucket'),
      accepted: flowCount.describe('messages received (each once, not its policy copies)'),
      delivered: flowCount,
      quarantined: flowCount,
      bounced: flowCount,
      dropped: flowCount.describe('dropped or deleted by policy or an administrator'),
    }),
  ),
});

export const outbreakReport = z.object({
  since: time,
  until: time,
  byLevel: z.array(z.object({ level: threatLevel, messages: count })),
  byCategory: z.array(z.object({ category: z.string().nullable(), messages: count })),
  topRules: z.array(
    z.object({
      ruleId: z.string(),
      category: z.string().nullable(),
      type: z.string().nullable(),
      description: z.string().nullable(),
      adaptive: z.boolean(),
      level: threatLevel,
      messages: count,
    }),
  ),
  quarantine: quarantineUsage,
});

/** Unknown parameters are ignored; `limit` above 1000 counts as 1000. */
export const alertsQuery = z.looseObject({
  limit: intInput('limit').optional().describe('at most this many (default 50; more than 1000 counts as 1000)'),
  class: z
    .enum(ALERT_CLASSES as [string, ...string[]], {
      error: 'class must be outbreak, quarantine, antivirus or system',
    })
    .optional()
    .describe('only this class'),
});

export const alert = z
  .object({
    id: count,
    at: count.describe('epoch milliseconds'),
    class: z.enum(ALERT_CLASSES as [string, ...string[]]),
    severity: z.enum(ALERT_SEVERITIES as [string, ...string[]]),
    key: z.string().describe('stable key used for repeat suppression'),
    title: z.string(),
    text: z.string(),
    data: z.record(z.string(), z.unknown()).optional().describe('class-specific details'),
    suppressed: z.boolean(),
    deliveries: z.object({
      email: z.enum(['sent', 'skipped', 'failed']),
      webhooks: z.array(
        z.object({
          url: z.string(),
          status: z.enum(['sent', 'failed']),
          httpStatus: z.int().optional(),
          error: z.string().optional(),
        }),
      ),
    }),
  })
  .meta({ id: 'Alert' });
