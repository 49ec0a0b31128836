// Schemas of the quarantine routes (DESIGN §5, §9): the filter that selects held messages (a query string
// or a JSON body: typed values and digit strings alike), the bulk action bodies, and the answers.
import { z } from 'zod';
import { safeAddress } from '../../alerts/message.ts';
import { parseDuration } from '../../config/schema.ts';
import { withCodes, type CodeRules } from '../validation.ts';
import {
  intInput,
  midParam,
  quarantineNameDescription,
  quarantineNamePattern,
  text,
  threatLevel,
  timeInput,
} from './common.ts';

/** Bounds on admin input (issue 10): larger requests are refused before anything changes. */
export const QUARANTINE_LIMITS = {
  /** MIDs in one request: a bulk action over more uses a filter (rule, level, time range) or `all` */
  mids: 10_000,
  /** entries in one listing page */
  listLimit: 10_000,
  /** the longest `extend` of a delay, and the latest scheduled exit from now: ten years */
  maxHoldMs: 3650 * 86_400_000,
} as const;

const quarantineName = z.string().regex(quarantineNamePattern).describe(quarantineNameDescription);
export const nameParam = z.object({ name: quarantineName });
export const nameMidParams = z.object({ name: quarantineName, mid: midParam.shape.mid });

/** A time in a JSON body may also be a number (epoch milliseconds). */
const time = (name: string) => z.union([z.number(), timeInput(name)]);

/** One MID of a list: a number, or digits with blanks around them. */
const listedMid = z.preprocess(
  (v) => (typeof v === 'string' && /^\s*\d{1,15}\s*$/.test(v) ? Number(v) : v),
  z.int({ error: 'mids must be non-negative integers' }).min(0, { error: 'mids must be non-negative integers' }),
);

/** An array, or a comma list; more than the limit is refused before any MID is read. */
const mids = z.preprocess(
  (v) => (v === undefined || Array.isArray(v) ? v : String(v).split(',')),
  z
    .array(listedMid)
    .max(QUARANTINE_LIMITS.mids, {
      error: (i) =>
        `at most ${QUARANTINE_LIMITS.mids} MIDs per request (got ${(i.input as unknown[]).length}); select by rule, level or time instead`,
    })
    .min(1, { error: 'mids must not be empty' }),
);

/** Fields a filter takes; `all`, `by` and `quarantine` are known (not refused) wherever a filter is. */
const filterShape = {
  rule: text('rule').optional().describe('an outbreak or adaptive rule id (or virus name) that matched'),
  sender: text('sender').optional().describe('envelope sender'),
  recipient: text('recipient').optional().describe('an envelope recipient'),
  level: intInput('level', 0, 5).optional().describe('threat level at least'),
  limit: intInput('limit', 1, QUARANTINE_LIMITS.listLimit)
    .optional()
    .describe(`at most this many messages (default 1000, at most ${QUARANTINE_LIMITS.listLimit})`),
  since: time('since').optional().describe('entered the quarantine at or after'),
  until: time('until').optional().describe('entered the quarantine before'),
  mids: mids
    .optional()
    .describe(
      `these MIDs: an array, or a comma list (\`1,2,3\`); at most ${QUARANTINE_LIMITS.mids} (\`too_many_mids\`)`,
    ),
  // other values than true are ignored, as they always were
  all: z.unknown().optional().meta({ type: 'boolean', description: '`true`: every message in the quarantine' }),
  by: z.unknown().optional().meta({ type: 'string', description: 'who acts: recorded in tracking and the mail log' }),
  quarantine: z
    .unknown()
    .optional()
    .meta({ type: 'string', description: 'ignored: the quarantine is the path’s name' }),
};

const FILTER_ORDER = ['rule', 'sender', 'recipient', 'level', 'limit', 'since', 'until', 'mids'] as const;
const codes = { mids: (i: z.core.$ZodIssue) => (i.code === 'too_big' ? 'too_many_mids' : 'invalid_parameter') };

/** The filter of a listing (query string). */
export const listQuery = withCodes(z.strictObject(filterShape), {
  order: ['(type)', '(unknown)', ...FILTER_ORDER],
  codes,
});

/** Bulk actions need a filter, or an explicit `all: true`: an empty body never empties a quarantine. */
function bulkBody<T extends z.core.$ZodLooseShape>(extra: T) {
  const isObject = (p: { value: unknown }) =>
    typeof p.value === 'object' && p.value !== null && !Array.isArray(p.value);
  return z
    .strictObject({ ...filterShape, ...extra })
    .refine(
      (b: Record<string, unknown>) => b.all === true || FILTER_ORDER.some((k) => k !== 'limit' && b[k] !== undefined),
      {
        params: { code: 'filter_required' },
        error: 'give mids, rule, level, sender, recipient or a time range, or all: true',
        when: isObject,
      },
    )
    .refine((b: Record<string, unknown>) => b.by === undefined || (typeof b.by === 'string' && b.by.length <= 200), {
      params: { code: 'by' },
      error: 'by must be a short string',
      when: isObject,
    });
}

/**
 * The order of a bulk body's checks; a route's own field (`extend`, `to`) comes first, and a body that
 * is not an object lacks it, so it gets that field's code.
 */
function bulkCodes(first?: { field: string; code: string; message: string }): CodeRules {
  const order = ['(type)', '(unknown)', ...FILTER_ORDER, 'filter_required', 'by'];
  return {
    order: first ? [first.field, ...order] : order,
    codes: { ...codes, by: 'invalid_parameter', ...(first ? { '(type)': first.code } : {}) },
    messages: first ? { '(type)': first.message } : {},
  };
}

export const filterBody = withCodes(
  bulkBody({}).meta({
    id: 'QuarantineFilter',
    description:
      'Selects held messages for a bulk action: give at least one of `mids`, `rule`, `level`, `sender`, `recipient`, `since`, `until`, or `all: true` (otherwise `filter_required`: an empty body never empties a quarantine). Unknown fields are refused (`unknown_parameter`).',
  }),
  bulkCodes(),
);

const extendError = 'extend must be a duration from 1s to 3650d, such as "4h" or "2d"';
export const delayBody = withCodes(
  bulkBody({
    extend: z
      .string({ error: extendError })
      .regex(/^\d{1,12}(ms|s|m|h|d)$/, { error: extendError })
      .transform((s, ctx) => {
        const ms = parseDuration(s);
        if (ms > 0 && ms <= QUARANTINE_LIMITS.maxHoldMs) return ms;
        ctx.issues.push({ code: 'custom', message: extendError, input: s });
        return z.NEVER;
      })
      .describe('a duration from 1s to 3650d, such as `4h` or `2d`; no scheduled exit moves past ten years from now'),
  }).describe('The filter plus `extend`'),
  bulkCodes({ field: 'extend', code: 'invalid_parameter', message: extendError }),
);

/** `to` is checked before the filter, against the configured quarantines (quarantine-routes.ts). */
export const moveBody = withCodes(
  bulkBody({ to: quarantineName.describe('the target quarantine') }).describe(
    'The filter plus `to`, another quarantine',
  ),
  bulkCodes(),
);

const toError = 'to must be 1 to 20 e-mail addresses';
const address = z.string().transform((a, ctx) => {
  const safe = safeAddress(a);
  if (safe !== null) return safe;
  ctx.issues.push({ code: 'custom', message: toError, input: a });
  return z.NEVER;
});
export const copyBody = withCodes(
  bulkBody({
    to: z
      .union([address, z.array(address).min(1).max(20)], { error: toError })
      .describe('1 to 20 e-mail addresses (or one address as a string)'),
  }).describe('The filter plus `to`, where the copies go'),
  bulkCodes({ field: 'to', code: 'invalid_parameter', message: toError }),
);

const count = z.int().min(0);
const mid = z.int().min(0).describe('message ID (MID)');

export const quarantineUsage = z.object({
  messages: count,
  bytes: count,
  maxSize: count.describe('the budget shared by all quarantines, in bytes (`quarantine.maxSize`)'),
  percent: z.number().describe('bytes as a percentage of maxSize'),
});

export const quarantineList = z.object({
  quarantines: z.array(
    z.object({
      name: z.string(),
      kind: z.enum(['system', 'policy']).describe('system: `outbreak` and `virus`'),
      description: z.string(),
      messages: count,
      bytes: count,
      defaultAction: z.enum(['release', 'delete']).describe('at the scheduled exit and on overflow'),
      retention: z
        .string()
        .describe(
          "as in the configuration, e.g. `14d`; `per policy` for outbreak (each policy's `outbreakFilters.maxRetention`)",
        ),
      releaseSubjectTag: z.string().describe('prepended to the subject of released messages'),
    }),
  ),
  usage: quarantineUsage.describe('All quarantines together'),
});

const storedTime = z
  .string()
  .nullable()
  .describe('ISO 8601; null when the stored time cannot be shown (a damaged row)');

export const quarantineMessage = z
  .object({
    mid,
    quarantine: z.string(),
    enteredAt: storedTime,
    scheduledExit: storedTime.describe('when the default action runs; null for a damaged row'),
    size: count.describe('bytes'),
    level: threatLevel.describe('threat level'),
    category: z.string().nullable().describe('threat category'),
    viral: z.boolean(),
    ruleIds: z.array(z.string()).describe('the rules (or virus names) that put it here'),
    reason: z.string(),
    sender: z.string(),
    recipients: z.array(z.string()),
    subject: z.string().nullable(),
    policy: z.string(),
  })
  .meta({ id: 'QuarantineMessage', description: 'A held message' });

export const quarantineRules = z.object({
  rules: z.array(z.object({ ruleId: z.string(), description: z.string(), messages: count, totalSize: count })),
});

export const actionResult = z
  .object({
    action: z.enum(['release', 'delete', 'delay', 'move', 'copy']),
    count: count.describe('messages acted on'),
    mids: z.array(mid).describe('the MIDs acted on'),
    notFound: z
      .array(mid)
      .describe(
        'MIDs the request named that were not acted on (not held there, or already leaving); empty for a filter without mids',
      ),
  })
  .meta({ id: 'ActionResult' });
