// The hub's outbreak rule routes (src/hub/rules.ts): people draft, publish, edit and retire rules (roles:
// src/hub/permissions.ts; every change audited); registered gateways hold a long poll for the next
// version and fetch the signed bundle with their device JWT.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ApiError } from '../api/errors.ts';
import { threatCategories, type ThreatCategory } from '../outbreak/types.ts';
import { RULE_STATUSES, RuleError, type HubRules } from './rules.ts';
import { hubResponses } from './schemas.ts';
import type { OutbreakIntelligence } from './intelligence.ts';

type Hook = (req: FastifyRequest, reply: FastifyReply) => Promise<void>;

const ruleSchema = z
  .object({
    id: z.string(),
    level: z.int(),
    category: z.string(),
    description: z.string(),
    condition: z.record(z.string(), z.unknown()).describe('the rule condition (docs/outbreak.md)'),
    status: z.enum(RULE_STATUSES),
    createdBy: z.string(),
    createdAt: z.string(),
    publishedBy: z.string().nullable(),
    publishedAt: z.string().nullable(),
    expiresAt: z.string().nullable(),
  })
  .meta({ id: 'HubRule' });

const bundleInfo = z
  .object({ version: z.int(), publishedAt: z.string(), publishedBy: z.string(), rules: z.int() })
  .meta({ id: 'PublishedBundle' });

const STATUS: Record<RuleError['code'], number> = { rule_not_found: 404, invalid_rule: 400, rule_not_draft: 409 };

function guarded<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof RuleError) throw new ApiError(STATUS[err.code], err.code, err.message);
    throw err;
  }
}

const expires = z
  .string()
  .max(40)
  .nullable()
  .optional()
  .describe('an ISO 8601 time after which gateways stop applying the rule; null: never');

function expiryOf(v: string | null | undefined): number | null | undefined {
  if (v === undefined || v === null) return v;
  const t = Date.parse(v);
  if (!Number.isFinite(t)) throw new ApiError(400, 'invalid_parameter', 'expires must be an ISO 8601 time');
  return t;
}

export function registerRuleRoutes(
  app: FastifyInstance,
  o: { rules: HubRules; auth: Hook; device: Hook; who: (req: FastifyRequest) => string },
): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['Outbreak rules'];
  const idParam = z.object({ id: z.string().min(1).max(64).describe('the rule id') });

  api.get(
    '/api/v1/rules',
    {
      onRequest: o.auth,
      schema: {
        operationId: 'listHubRules',
        tags,
        summary: 'Outbreak rules the hub publishes (drafts, published, retired) and the bundles it signed',
        querystring: z.object({ status: z.enum(RULE_STATUSES).optional() }).strict(),
        response: hubResponses({
          ok: z.object({ rules: z.array(ruleSchema), bundles: z.array(bundleInfo), publicKey: z.string() }),
          400: ['invalid_parameter', 'unknown_parameter'],
        }),
      },
    },
    async (req) => ({
      rules: o.rules.list(req.query.status),
      bundles: o.rules.bundles(),
      publicKey: o.rules.publicKey,
    }),
  );

  api.post(
    '/api/v1/rules',
    {
      onRequest: o.auth,
      schema: {
        operationId: 'draftHubRule',
        tags,
        summary: 'Draft an outbreak rule (checked as gateways will check it; published separately)',
        body: z
          .object({
            level: z.int().min(1).max(5),
            category: z.enum(threatCategories as unknown as [ThreatCategory, ...ThreatCategory[]]),
            description: z.string().min(1).max(500),
            condition: z.record(z.string(), z.unknown()),
            expires,
          })
          .strict(),
        response: hubResponses({
          ok: ruleSchema,
          body: true,
          400: ['invalid_parameter', 'invalid_body', 'invalid_rule'],
        }),
      },
    },
    async (req) => guarded(() => o.rules.draft({ ...req.body, expires: expiryOf(req.body.expires) }, o.who(req))),
  );

  api.patch(
    '/api/v1/rules/:id',
    {
      onRequest: o.auth,
      schema: {
        operationId: 'editHubRule',
        tags,
        summary: 'Change a rule’s level, description, condition or expiry; a published rule is published again at once',
        params: idParam,
        body: z
          .object({
            level: z.int().min(1).max(5).optional(),
            description: z.string().min(1).max(500).optional(),
            condition: z.record(z.string(), z.unknown()).optional(),
            expires,
          })
          .strict(),
        response: hubResponses({
          ok: z.object({ rule: ruleSchema, bundle: bundleInfo.nullable() }),
          body: true,
          400: ['invalid_parameter', 'invalid_body', 'invalid_rule'],
          404: ['rule_not_found'],
        }),
      },
    },
    async (req) =>
      guarded(() => o.rules.edit(req.params.id, { ...req.body, expires: expiryOf(req.body.expires) }, o.who(req))),
  );

  api.post(
    '/api/v1/rules/publish',
    {
      onRequest: o.auth,
      schema: {
        operationId: 'publishHubRules',
        tags,
        summary: 'Publish drafts: the next bundle version, signed, reaches every online gateway at once',
        body: z.object({ ids: z.array(z.string().min(1).max(64)).min(1).max(1000) }).strict(),
        response: hubResponses({
          ok: z.object({ rules: z.array(ruleSchema), bundle: bundleInfo }),
          body: true,
          400: ['invalid_parameter', 'invalid_body', 'invalid_rule'],
          404: ['rule_not_found'],
          409: ['rule_not_draft'],
        }),
      },
    },
    async (req) => guarded(() => o.rules.publish(req.body.ids, o.who(req))),
  );

  api.post(
    '/api/v1/rules/:id/retire',
    {
      onRequest: o.auth,
      schema: {
        operationId: 'retireHubRule',
        tags,
        summary: 'Retire a published rule (gateways release what only it held) or reject a draft',
        params: idParam,
        response: hubResponses({
          ok: z.object({ rule: ruleSchema, bundle: bundleInfo.nullable() }),
          400: ['invalid_parameter'],
          404: ['rule_not_found'],
        }),
      },
    },
    async (req) => guarded(() => o.rules.retire(req.params.id, o.who(req))),
  );

  api.get(
    '/api/v1/device/rules',
    {
      onRequest: o.device,
      schema: {
        operationId: 'pollDeviceRules',
        tags: ['Device calls'],
        summary:
          'The latest rule bundle version: answered at once when newer than `since`, else at the next publication or after `wait` seconds',
        security: [{ deviceJwt: [] }],
        querystring: z
          .object({
            since: z.coerce.number().int().min(0).default(0),
            wait: z.coerce.number().int().min(0).max(60).default(0),
          })
          .strict(),
        response: hubResponses({
          device: true,
          ok: z.object({ version: z.int().describe('0: nothing published yet') }),
          400: ['invalid_parameter', 'unknown_parameter'],
        }),
      },
    },
    async (req) => {
      const abort = new AbortController();
      req.raw.once('close', () => abort.abort());
      return { version: await o.rules.waitForVersion(req.query.since, req.query.wait * 1000, abort.signal) };
    },
  );

  api.get(
    '/api/v1/device/rules/bundle',
    {
      onRequest: o.device,
      schema: {
        operationId: 'fetchDeviceRuleBundle',
        tags: ['Device calls'],
        summary: 'The latest signed rule bundle (verified by the gateway with the key it got at registration)',
        security: [{ deviceJwt: [] }],
        response: hubResponses({
          device: true,
          ok: z.object({ bundle: z.unknown(), signature: z.string(), keyId: z.string() }).describe('a signed bundle'),
          404: ['rule_not_found'],
        }),
      },
    },
    async (_req, reply) => {
      const latest = o.rules.latest();
      if (!latest) throw new ApiError(404, 'rule_not_found', 'the hub has published no rules yet');
      // the signed text as it was signed: re-serialising it is not needed to verify (canonical JSON) but
      // keeping it byte for byte is simplest to reason about
      return reply.type('application/json').send(latest.text);
    },
  );
}

/** Rule drafts outbreak intelligence made, with their evidence and confidence (the Rules page shows them). */
export function registerIntelligenceRoute(
  app: FastifyInstance,
  o: { intelligence: OutbreakIntelligence; auth: Hook },
): void {
  app.withTypeProvider<ZodTypeProvider>().get(
    '/api/v1/intelligence/drafts',
    {
      onRequest: o.auth,
      schema: {
        operationId: 'listIntelligenceDrafts',
        tags: ['Outbreak rules'],
        summary:
          'Rules drafted from bursts across gateways: the evidence (messages, gateways, baseline, verdicts) and a confidence',
        response: hubResponses({
          ok: z.object({
            drafts: z.array(
              z.object({
                ruleId: z.string(),
                confidence: z
                  .number()
                  .describe('0–1: spread across gateways, rate above baseline, what gateways judged'),
                createdAt: z.string(),
                evidence: z.object({
                  kind: z.enum(['sha256', 'url_domain', 'campaign']),
                  key: z.string(),
                  hour: z.string(),
                  messages: z.int(),
                  gateways: z.array(z.object({ deviceId: z.string(), messages: z.int() })),
                  baselinePerHour: z.number(),
                  flagged: z.int().describe('messages the gateways held or dropped'),
                  maxLevel: z.int(),
                  everydayOn: z
                    .int()
                    .describe('gateways that had it, not held, the week before: everyday use, level 2 at most'),
                  sampleSubjects: z.array(z.string()),
                }),
              }),
            ),
          }),
        }),
      },
    },
    async () => ({ drafts: o.intelligence.drafts() }),
  );
}
