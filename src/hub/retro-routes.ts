// Routes of retro-remediation (hub/retro.ts): the proposals a publication made (which delivered messages
// a new rule matches, on which gateways), and a user's decision: approve (each message's action goes to
// its gateway) or dismiss (nothing is remediated).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { deviceActionSchema } from './action-routes.ts';
import { ApprovalError, asApiError } from './approvals.ts';
import { RETRO_ACTIONS, RETRO_STATUSES, type RetroRemediation } from './retro.ts';
import { hubResponses } from './schemas.ts';

type Hook = (req: FastifyRequest, reply: FastifyReply) => Promise<void>;

const proposalSchema = z
  .object({
    id: z.string(),
    ruleId: z.string(),
    ruleLevel: z.int(),
    action: z.enum(RETRO_ACTIONS),
    status: z
      .enum(RETRO_STATUSES)
      .describe('proposed: waits for a user; none: the rule matched no delivered message; not_evaluable: see note'),
    note: z.string().nullable(),
    createdAt: z.string(),
    decidedBy: z.string().nullable(),
    decidedAt: z.string().nullable(),
    messages: z.array(
      z.object({
        deviceId: z.string(),
        mid: z.int(),
        receivedAt: z.string(),
        sender: z.string(),
        subject: z.string().nullable(),
        recipients: z.array(z.string()).describe('the mailboxes it was delivered to'),
        actionId: z.string().describe('its response action (GET /api/v1/actions shows how it ended)'),
      }),
    ),
  })
  .meta({
    id: 'RetroProposal',
    description: 'Delivered mail a newly published rule matches, proposed for remediation',
  });

export function registerRetroRoutes(
  app: FastifyInstance,
  o: { retro: RetroRemediation; auth: Hook; who: (req: FastifyRequest) => string },
): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['Response'];
  const idParam = z.object({ id: z.string().min(1).max(100) });

  api.get(
    '/api/v1/retro',
    {
      onRequest: o.auth,
      schema: {
        operationId: 'listRetroProposals',
        tags,
        summary: 'Retro-remediation proposals, newest first: delivered mail each published rule matched',
        querystring: z
          .object({
            status: z.enum(RETRO_STATUSES).optional(),
            limit: z.coerce.number().int().min(1).max(500).default(100),
          })
          .strict(),
        response: hubResponses({
          ok: z.object({ proposals: z.array(proposalSchema) }),
          400: ['invalid_parameter', 'unknown_parameter'],
        }),
      },
    },
    async (req) => ({ proposals: o.retro.list({ status: req.query.status, limit: req.query.limit }) }),
  );

  api.get(
    '/api/v1/retro/:id',
    {
      onRequest: o.auth,
      schema: {
        operationId: 'getRetroProposal',
        tags,
        summary: 'One retro-remediation proposal',
        params: idParam,
        response: hubResponses({ ok: proposalSchema, 400: ['invalid_parameter'], 404: ['proposal_not_found'] }),
      },
    },
    async (req) =>
      o.retro.get(req.params.id) ?? asApiError(new ApprovalError('proposal_not_found', 'no such proposal')),
  );

  api.post(
    '/api/v1/retro/:id/approve',
    {
      onRequest: o.auth,
      schema: {
        operationId: 'approveRetroProposal',
        tags,
        summary: "Approve a proposal: each message's remediation goes to the gateway that delivered it",
        params: idParam,
        response: hubResponses({
          ok: z.object({ proposal: proposalSchema, actions: z.array(deviceActionSchema) }),
          400: ['invalid_parameter'],
          404: ['proposal_not_found'],
          409: ['not_pending'],
        }),
      },
    },
    async (req) => {
      try {
        return o.retro.approve(req.params.id, o.who(req));
      } catch (err) {
        return asApiError(err);
      }
    },
  );

  api.post(
    '/api/v1/retro/:id/dismiss',
    {
      onRequest: o.auth,
      schema: {
        operationId: 'dismissRetroProposal',
        tags,
        summary: 'Dismiss a proposal: nothing is remediated',
        params: idParam,
        response: hubResponses({
          ok: proposalSchema,
          400: ['invalid_parameter'],
          404: ['proposal_not_found'],
          409: ['not_pending'],
        }),
      },
    },
    async (req) => {
      try {
        return o.retro.dismiss(req.params.id, o.who(req));
      } catch (err) {
        return asApiError(err);
      }
    },
  );
}
