// Schemas of the remediation route (DESIGN §10): which delivered messages, what to do in the recipients'
// mailboxes, and the batch result (counts and one failure per message and mailbox, with its reason).
import { z } from 'zod';
import { safeAddress } from '../../alerts/message.ts';
import { FAILURE_REASONS } from '../../xdr/remediation/types.ts';
import { REMEDIATION_LIMIT } from '../../xdr/remediation/service.ts';
import { withCodes } from '../validation.ts';

const isObject = (p: { value: unknown }) => typeof p.value === 'object' && p.value !== null && !Array.isArray(p.value);

const listedMid = z.preprocess(
  (v) => (typeof v === 'string' && /^\s*\d{1,15}\s*$/.test(v) ? Number(v) : v),
  z.int({ error: 'mids must be non-negative integers' }).min(0, { error: 'mids must be non-negative integers' }),
);

const forwardError = 'forwardTo must be an e-mail address';
const address = z.string({ error: forwardError }).transform((a, ctx) => {
  const safe = safeAddress(a);
  if (safe !== null) return safe;
  ctx.issues.push({ code: 'custom', message: forwardError, input: a });
  return z.NEVER;
});

export const remediationBody = withCodes(
  z
    .strictObject({
      action: z
        .enum(['delete', 'forward', 'forward-and-delete'], {
          error: 'action must be delete, forward or forward-and-delete',
        })
        .describe('what to do in each mailbox the message was delivered to'),
      mids: z
        .array(listedMid)
        .max(REMEDIATION_LIMIT, {
          error: (i) => `at most ${REMEDIATION_LIMIT} MIDs per request (got ${(i.input as unknown[]).length})`,
        })
        .optional()
        .describe(`message IDs (MIDs) from tracking; at most ${REMEDIATION_LIMIT} (\`too_many_mids\`)`),
      messageIds: z
        .array(z.string().min(1).max(998))
        .max(1000)
        .optional()
        .describe('Message-ID header values (with or without angle brackets); at most 1000'),
      forwardTo: address
        .optional()
        .describe('where forward and forward-and-delete send the message (default `remediation.forwardTo`)'),
      by: z.string().max(200).optional().describe('who acts: recorded in tracking and the mail log'),
    })
    .refine((b) => (b.mids?.length ?? 0) + (b.messageIds?.length ?? 0) > 0, {
      params: { code: 'message_required' },
      error: 'give mids or messageIds',
      when: isObject,
    })
    .meta({
      id: 'RemediationRequest',
      description:
        'Messages by MID and/or Message-ID; each is acted on in every mailbox tracking shows it was delivered to. Unknown fields are refused (`unknown_parameter`).',
    }),
  {
    order: ['(type)', '(unknown)', 'action', 'mids', 'messageIds', 'forwardTo', 'by', 'message_required'],
    codes: { mids: (i) => (i.code === 'too_big' ? 'too_many_mids' : 'invalid_parameter') },
  },
);

const count = z.int().min(0);

export const remediationResult = z
  .object({
    action: z.enum(['delete', 'forward', 'forward-and-delete']),
    total: count.describe('messages × recipient mailboxes, plus requested messages with none'),
    deleted: count,
    forwarded: count,
    forwardedAndDeleted: count,
    failed: count,
    failures: z.array(
      z.object({
        mid: z.int().min(0).nullable().describe('null: a Message-ID tracking does not know'),
        messageId: z.string().nullable(),
        recipient: z.string().nullable().describe('the mailbox; null when the message has no delivered recipient'),
        reason: z
          .enum(FAILURE_REASONS as [string, ...string[]])
          .describe(
            '`mailbox_not_found`, `message_not_found`, `auth_failed`, `timeout`, `not_delivered`, `no_profile`, `error` (docs/xdr.md)',
          ),
        detail: z.string().describe('for people; not stable'),
      }),
    ),
    remediated: z.array(
      z.object({
        mid: z.int().min(0),
        recipient: z.string(),
        profile: z.string().describe('the account profile that did it'),
        forwardMid: z.int().min(0).nullable().describe('the MID of the forwarded copy'),
      }),
    ),
  })
  .meta({ id: 'RemediationResult', description: 'The batch: counts, failures with their reason, what was done' });
