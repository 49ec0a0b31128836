// The hub's block list routes (src/hub/blocklist.ts): people list, request, approve, refuse and remove
// entries (roles: src/hub/permissions.ts; every change audited); registered gateways fetch the active
// entries with their device JWT.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ApiError } from '../api/errors.ts';
import { parseDuration } from '../config/schema.ts';
import {
  BLOCK_DIRECTIONS,
  BLOCK_KINDS,
  BLOCK_STATUSES,
  BlockListError,
  type BlockEntry,
  type HubBlockList,
} from './blocklist.ts';
import { hubResponses } from './schemas.ts';

type Hook = (req: FastifyRequest, reply: FastifyReply) => Promise<void>;

export const blockEntrySchema = z
  .object({
    id: z.string(),
    kind: z.enum(BLOCK_KINDS),
    value: z.string().describe('an address (sender) or a domain (and its subdomains)'),
    direction: z.enum(BLOCK_DIRECTIONS),
    reason: z.string(),
    requestedBy: z.string(),
    createdAt: z.string(),
    expiresAt: z.string().nullable(),
    status: z.enum(BLOCK_STATUSES),
    decidedBy: z.string().nullable().describe('who approved, refused or removed it'),
    decidedAt: z.string().nullable(),
  })
  .meta({ id: 'BlockEntry' });

const STATUS: Record<BlockListError['code'], number> = {
  block_not_found: 404,
  not_pending: 409,
  approval_by_requester: 403,
  invalid_parameter: 400,
};

function guarded(fn: () => BlockEntry): BlockEntry {
  try {
    return fn();
  } catch (err) {
    if (err instanceof BlockListError) throw new ApiError(STATUS[err.code], err.code, err.message);
    throw err;
  }
}

export function registerBlockRoutes(
  app: FastifyInstance,
  o: { list: HubBlockList; auth: Hook; device: Hook; who: (req: FastifyRequest) => string },
): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['Response'];
  const idParam = z.object({ id: z.string().min(1).max(100).describe('the entry id') });

  api.get(
    '/api/v1/blocklist',
    {
      onRequest: o.auth,
      schema: {
        operationId: 'listBlockEntries',
        tags,
        summary: 'The block list: senders and domains blocked on every gateway, requests waiting for approval, history',
        querystring: z.object({ status: z.enum(BLOCK_STATUSES).optional() }).strict(),
        response: hubResponses({
          ok: z.object({ entries: z.array(blockEntrySchema) }),
          400: ['invalid_parameter', 'unknown_parameter'],
        }),
      },
    },
    async (req) => ({ entries: o.list.list({ status: req.query.status }) }),
  );

  api.post(
    '/api/v1/blocklist',
    {
      onRequest: o.auth,
      schema: {
        operationId: 'requestBlockEntry',
        tags,
        summary: 'Block a sender or a domain on every gateway (active at once, or pending a second user’s approval)',
        description:
          'With the hub’s `approvals.block`, the entry is `pending` until another user approves it. Gateways refuse a blocked sender at MAIL FROM and drop mail whose header From is blocked, for the direction given: incoming, outgoing (a compromised internal user) or both.',
        body: z
          .object({
            kind: z.enum(BLOCK_KINDS),
            value: z.string().min(1).max(320),
            direction: z.enum(BLOCK_DIRECTIONS).default('incoming'),
            reason: z.string().min(1).max(1000),
            expires: z
              .string()
              .max(40)
              .optional()
              .describe('a duration from now (`7d`, `12h`) or an ISO 8601 time; none: until removed'),
          })
          .strict(),
        response: hubResponses({ ok: blockEntrySchema, body: true, 400: ['invalid_parameter', 'invalid_body'] }),
      },
    },
    async (req) => {
      const { expires } = req.body;
      let expiresAt: number | null = null;
      if (expires) {
        if (/^\d+(ms|s|m|h|d)$/.test(expires)) expiresAt = Date.now() + parseDuration(expires);
        else if (Number.isFinite(Date.parse(expires))) expiresAt = Date.parse(expires);
        else throw new ApiError(400, 'invalid_parameter', 'expires is a duration (7d, 12h) or an ISO 8601 time');
      }
      return guarded(() => o.list.request({ ...req.body, expiresAt }, o.who(req)));
    },
  );

  for (const [op, verb, summary] of [
    ['approveBlockEntry', 'approve', 'Approve a pending entry (not one you requested): it becomes active'],
    ['refuseBlockEntry', 'refuse', 'Refuse a pending entry'],
  ] as const)
    api.post(
      `/api/v1/blocklist/:id/${verb}`,
      {
        onRequest: o.auth,
        schema: {
          operationId: op,
          tags,
          summary,
          params: idParam,
          response: hubResponses({
            ok: blockEntrySchema,
            400: ['invalid_parameter'],
            403: ['approval_by_requester'],
            404: ['block_not_found'],
            409: ['not_pending'],
          }),
        },
      },
      async (req) =>
        guarded(() => (verb === 'approve' ? o.list.approve : o.list.refuse).call(o.list, req.params.id, o.who(req))),
    );

  api.delete(
    '/api/v1/blocklist/:id',
    {
      onRequest: o.auth,
      schema: {
        operationId: 'removeBlockEntry',
        tags,
        summary: 'Unblock (or withdraw a pending request); gateways stop applying it at their next fetch',
        params: idParam,
        response: hubResponses({ ok: blockEntrySchema, 400: ['invalid_parameter'], 404: ['block_not_found'] }),
      },
    },
    async (req) => guarded(() => o.list.remove(req.params.id, o.who(req))),
  );

  api.get(
    '/api/v1/device/blocklist',
    {
      onRequest: o.device,
      schema: {
        operationId: 'fetchDeviceBlockList',
        tags: ['Device calls'],
        summary: 'The active block list entries a gateway applies, with a version to ask again cheaply',
        security: [{ deviceJwt: [] }],
        querystring: z
          .object({ since: z.coerce.number().int().min(0).optional().describe('the version the gateway has') })
          .strict(),
        response: hubResponses({
          device: true,
          ok: z.object({
            version: z.int(),
            changed: z.boolean().describe('false: the gateway’s version is current (entries then empty)'),
            entries: z.array(blockEntrySchema),
          }),
          400: ['invalid_parameter', 'unknown_parameter'],
        }),
      },
    },
    async (req) => {
      const version = o.list.version();
      if (req.query.since === version) return { version, changed: false, entries: [] };
      return { version, changed: true, entries: o.list.active() };
    },
  );
}
