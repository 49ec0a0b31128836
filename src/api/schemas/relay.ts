// Schemas of the XDR relay-module routes (DESIGN §10): their own error shape and answers. The CTIM
// entities are described here loosely (their required fields); the full JSON Schemas they are tested
// against are src/xdr/ctim/schemas/*.json.
import { z } from 'zod';
import { SEARCHABLE_TYPES } from '../../xdr/observables.ts';

/** Error codes of the relay routes (`errors[].code`), in the words relay modules use. */
export const relayErrorCodes = {
  'authorization error': '401: the bearer JWT is missing, unsigned, expired, or does not verify',
  'invalid argument': '400, 413, 415: a malformed body, an unknown observable type, or an action not offered',
  'not found': '404: no relay route at this path',
  'method not allowed': '405: relay routes take POST',
  'action failed': '200 with `data.status: "failure"`: the responder could not carry out the action',
  unknown: '500: unexpected error (details in the mail log)',
} as const;

export type RelayErrorCode = keyof typeof relayErrorCodes;

const relayError = z.object({
  type: z.literal('fatal'),
  code: z.enum(Object.keys(relayErrorCodes) as [RelayErrorCode, ...RelayErrorCode[]]).describe(
    Object.entries(relayErrorCodes)
      .map(([code, when]) => `- \`${code}\` — ${when}`)
      .join('\n'),
  ),
  message: z.string().describe('for people; not stable'),
});

export const relayErrorsSchema = z
  .object({ errors: z.array(relayError) })
  .meta({ id: 'RelayErrors', description: 'Every 4xx/5xx answer of the relay routes (not `{"error": …}`)' });

export const observable = z
  .object({
    type: z
      .string()
      .min(1)
      .describe(`a CTIM observable type; searched: ${SEARCHABLE_TYPES.map((t) => `\`${t}\``).join(', ')}`),
    value: z.string().min(1),
  })
  .meta({ id: 'CtimObservable', description: 'A CTIM observable' });

/** The most observables one call takes. */
export const MAX_OBSERVABLES = 1000;

export const observablesBody = z
  .array(observable)
  .max(MAX_OBSERVABLES)
  .describe(`the observables, at most ${MAX_OBSERVABLES}`);

const ctim = (id: string, type: string, file: string) =>
  z
    .looseObject({ type: z.literal(type), id: z.string(), schema_version: z.string() })
    .meta({ id, description: `A CTIM ${type} (JSON Schema: \`src/xdr/ctim/schemas/${file}\`)` });

const docs = (entity: z.ZodType) => z.object({ count: z.int().min(0), docs: z.array(entity) });

export const observeAnswer = z.object({
  data: z.object({
    sightings: docs(ctim('CtimSighting', 'sighting', 'sighting.json')).optional(),
    judgements: docs(ctim('CtimJudgement', 'judgement', 'judgement.json')).optional(),
  }),
});

export const deliberateAnswer = z.object({
  data: z.object({ verdicts: docs(ctim('CtimVerdict', 'verdict', 'verdict.json')).optional() }),
});

export const referAnswer = z.object({
  data: z.array(
    z.object({
      id: z.string(),
      title: z.string(),
      description: z.string(),
      categories: z.array(z.string()),
      url: z.string().describe("a link to this gateway's message tracking"),
    }),
  ),
});

export const respondAnswer = z.object({
  data: z.array(
    z.object({
      id: z.string().describe('the `action-id` to trigger'),
      title: z.string(),
      description: z.string(),
      categories: z.array(z.string()),
      'query-params': z.object({ observable_type: z.string(), observable_value: z.string() }),
    }),
  ),
});

export const triggerBody = z.looseObject({
  'action-id': z.string().min(1),
  observable_type: z.string().min(1),
  observable_value: z.string().min(1),
});

export const triggerAnswer = z.object({
  data: z.object({ status: z.enum(['success', 'failure']) }),
  errors: z.array(relayError).optional().describe('why it failed'),
});

export const relayHealthBody = z.looseObject({}).nullable().describe('ignored');
export const relayHealthAnswer = z.object({ data: z.object({ status: z.literal('ok') }) });
