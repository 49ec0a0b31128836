// Routes of the hub's response actions (hub/actions.ts): gateways poll for the actions meant for them
// and post results (device JWT); administrators list them (the audit trail of who asked for what).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ApiError } from '../api/errors.ts';
import { MAX_POLL_MS, type DeviceActions } from './actions.ts';
import { asApiError } from './approvals.ts';
import type { RelayResponder } from '../xdr/relay.ts';
import { hubResponses } from './schemas.ts';

type Hook = (req: FastifyRequest, reply: FastifyReply) => Promise<void>;

const STATUSES = ['awaiting_approval', 'pending', 'taken', 'done', 'failed', 'expired', 'refused'] as const;

export const deviceActionSchema = z
  .object({
    id: z.string(),
    deviceId: z.string(),
    action: z.string().describe('delete, forward or forward-and-delete'),
    observable: z.object({ type: z.string(), value: z.string() }),
    requestedBy: z.string().describe('who asked: the XDR caller or hub user'),
    status: z.enum(STATUSES),
    detail: z.string().nullable().describe("the gateway's result"),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: 'DeviceAction', description: 'A response action the hub asked a gateway to carry out' });

export function registerActionRoutes(
  app: FastifyInstance,
  o: {
    actions: DeviceActions;
    admin: Hook;
    device: Hook;
    responder: RelayResponder;
    who: (req: FastifyRequest) => string;
  },
): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const { actions } = o;

  api.post(
    '/api/v1/actions',
    {
      onRequest: o.admin,
      schema: {
        operationId: 'requestRemediation',
        tags: ['Response'],
        summary:
          'Remediate a delivered message in every mailbox: delete, forward or forward-and-delete on each gateway that holds it (after a second user’s approval when approvals.remediate is on)',
        body: z
          .object({
            action: z.enum(['delete', 'forward', 'forward-and-delete']),
            observable: z
              .object({ type: z.enum(['email_messageid', 'cisco_mid']), value: z.string().min(1).max(2048) })
              .strict(),
          })
          .strict(),
        response: hubResponses({
          ok: z.object({ ok: z.boolean(), detail: z.string() }),
          body: true,
          400: ['invalid_parameter', 'invalid_body'],
        }),
      },
    },
    async (req) => {
      const r = await o.responder.trigger(req.body.action, req.body.observable, o.who(req));
      return { ok: r.ok, detail: typeof r.detail === 'string' ? r.detail : JSON.stringify(r.detail ?? '') };
    },
  );

  for (const verb of ['approve', 'refuse'] as const)
    api.post(
      `/api/v1/actions/:id/${verb}`,
      {
        onRequest: o.admin,
        schema: {
          operationId: verb === 'approve' ? 'approveAction' : 'refuseAction',
          tags: ['Response'],
          summary:
            verb === 'approve'
              ? 'Approve a response action (not one you requested): its gateway carries it out'
              : 'Refuse a response action awaiting approval',
          params: z.object({ id: z.string().min(1).max(100) }),
          response: hubResponses({
            ok: deviceActionSchema,
            400: ['invalid_parameter'],
            403: ['approval_by_requester'],
            404: ['action_not_found'],
            409: ['not_pending'],
          }),
        },
      },
      async (req) => {
        try {
          return verb === 'approve'
            ? actions.approve(req.params.id, o.who(req))
            : actions.refuse(req.params.id, o.who(req));
        } catch (err) {
          return asApiError(err);
        }
      },
    );

  api.get(
    '/api/v1/device/actions',
    {
      onRequest: o.device,
      schema: {
        operationId: 'takeDeviceActions',
        tags: ['Device calls'],
        summary:
          'The actions waiting for this gateway (marked taken); with none waiting, the answer is held up to `wait` seconds (a long poll)',
        security: [{ deviceJwt: [] }],
        querystring: z
          .object({
            wait: z.coerce
              .number()
              .int()
              .min(0)
              .max(MAX_POLL_MS / 1000)
              .default(0),
          })
          .strict(),
        response: hubResponses({
          device: true,
          ok: z.object({ actions: z.array(deviceActionSchema) }),
          400: ['invalid_parameter', 'unknown_parameter'],
        }),
      },
    },
    async (req, reply) => {
      // the gateway hanging up ends the wait (the response's 'close' before it finished)
      const hangUp = new AbortController();
      reply.raw.on('close', () => {
        if (!reply.raw.writableFinished) hangUp.abort();
      });
      return { actions: await actions.take(req.deviceId!, req.query.wait * 1000, hangUp.signal) };
    },
  );

  api.post(
    '/api/v1/device/actions/:id',
    {
      onRequest: o.device,
      schema: {
        operationId: 'completeDeviceAction',
        tags: ['Device calls'],
        summary: "A gateway's result of an action it took; a finished action keeps its first result",
        security: [{ deviceJwt: [] }],
        params: z.object({ id: z.string().min(1).max(100) }),
        body: z.object({ ok: z.boolean(), detail: z.string().max(4000) }).strict(),
        response: hubResponses({
          device: true,
          ok: deviceActionSchema,
          body: true,
          400: ['invalid_parameter', 'unknown_parameter', 'invalid_body'],
          404: ['action_not_found'],
        }),
      },
    },
    async (req) => {
      const a = actions.complete(req.deviceId!, req.params.id, req.body.ok, req.body.detail);
      if (!a) throw new ApiError(404, 'action_not_found', `no action ${req.params.id} for this gateway`);
      return a;
    },
  );

  api.get(
    '/api/v1/actions',
    {
      onRequest: o.admin,
      schema: {
        operationId: 'listDeviceActions',
        tags: ['Response'],
        summary: 'Response actions sent to gateways, newest first: who asked, what, where, and how it ended',
        querystring: z
          .object({
            device: z.string().min(1).max(100).optional(),
            status: z.enum(STATUSES).optional(),
            limit: z.coerce.number().int().min(1).max(1000).default(100),
          })
          .strict(),
        response: hubResponses({
          ok: z.object({ actions: z.array(deviceActionSchema) }),
          400: ['invalid_parameter', 'unknown_parameter'],
        }),
      },
    },
    async (req) => ({
      actions: actions.list({ deviceId: req.query.device, status: req.query.status, limit: req.query.limit }),
    }),
  );
}
