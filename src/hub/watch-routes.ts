// Watchlist and ticket routes (src/hub/watches.ts, src/hub/tickets.ts): watch an observable (every new
// sighting is a hit, and a ticket when asked), open a ticket, and see how each ticket ended.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ApiError } from '../api/errors.ts';
import { asApiError } from './approvals.ts';
import { checkObservable } from './parse-observables.ts';
import { hubResponses } from './schemas.ts';
import type { TicketDesk } from './tickets.ts';
import type { Watchlist } from './watches.ts';

type Hook = (req: FastifyRequest, reply: FastifyReply) => Promise<void>;

const watchSchema = z
  .object({
    id: z.string(),
    type: z.string(),
    value: z.string(),
    note: z.string(),
    ticket: z.boolean().describe('a ticket is opened on new sightings'),
    createdBy: z.string(),
    createdAt: z.string(),
    expiresAt: z.string().nullable(),
    hits: z.int().describe('new messages that carried it since it was watched'),
    lastHitAt: z.string().nullable(),
    status: z
      .enum(['awaiting_approval', 'active', 'refused'])
      .describe('awaiting_approval: counts no hit until a second user approves (approvals.watch)'),
    decidedBy: z.string().nullable(),
  })
  .meta({ id: 'Watch' });

const ticketSchema = z
  .object({
    id: z.string(),
    title: z.string(),
    status: z
      .enum(['awaiting_approval', 'queued', 'sent', 'failed', 'refused'])
      .describe(
        'awaiting_approval: nothing sent until a second user approves (approvals.ticket); queued: being sent or waiting for a retry',
      ),
    attempts: z.int(),
    lastError: z.string().nullable().describe('why the last attempt failed'),
    responseStatus: z.int().nullable(),
    reference: z.string().nullable().describe('the ticket’s id in the ticketing system, when it answered one'),
    createdBy: z.string(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: 'Ticket' });

const observable = z.object({ type: z.string().max(40), value: z.string().max(4096) }).strict();

export function registerWatchRoutes(
  app: FastifyInstance,
  o: {
    watches: Watchlist;
    tickets: TicketDesk;
    auth: Hook;
    who: (req: FastifyRequest) => string;
    /** which of these wait for a second user's approval (hub config approvals) */
    approvals: () => { watch: boolean; ticket: boolean };
  },
): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['Response'];
  const idParam = z.object({ id: z.string().min(1).max(100) });

  api.get(
    '/api/v1/watches',
    {
      onRequest: o.auth,
      schema: {
        operationId: 'listWatches',
        tags,
        summary: 'Watched observables, with their hits',
        response: hubResponses({ ok: z.object({ watches: z.array(watchSchema) }) }),
      },
    },
    async () => ({ watches: o.watches.list() }),
  );

  api.post(
    '/api/v1/watches',
    {
      onRequest: o.auth,
      schema: {
        operationId: 'addWatch',
        tags,
        summary:
          'Watch an observable: every new message that carries it, on any gateway, is a hit (and a ticket with `ticket: true`)',
        body: z
          .object({
            observable,
            note: z.string().max(2000).default(''),
            ticket: z.boolean().default(false),
            expires: z.string().max(40).optional().describe('an ISO 8601 time; none: until removed'),
          })
          .strict(),
        response: hubResponses({ ok: watchSchema, body: true, 400: ['invalid_parameter', 'invalid_body'] }),
      },
    },
    async (req) => {
      const c = checkObservable(req.body.observable.type, req.body.observable.value);
      if ('error' in c) throw new ApiError(400, 'invalid_parameter', c.error);
      let expiresAt: number | null = null;
      if (req.body.expires) {
        expiresAt = Date.parse(req.body.expires);
        if (!Number.isFinite(expiresAt)) throw new ApiError(400, 'invalid_parameter', 'expires is an ISO 8601 time');
      }
      return o.watches.add(c, { note: req.body.note, ticket: req.body.ticket, expiresAt }, o.who(req), {
        awaitingApproval: o.approvals().watch,
      });
    },
  );

  api.get(
    '/api/v1/watches/:id/hits',
    {
      onRequest: o.auth,
      schema: {
        operationId: 'listWatchHits',
        tags,
        summary: 'The messages that hit a watch, newest first',
        params: idParam,
        response: hubResponses({
          ok: z.object({
            hits: z.array(
              z.object({ at: z.string(), deviceId: z.string(), mid: z.int(), subject: z.string().nullable() }),
            ),
          }),
          400: ['invalid_parameter'],
          404: ['watch_not_found'],
        }),
      },
    },
    async (req) => {
      if (!o.watches.get(req.params.id)) throw new ApiError(404, 'watch_not_found', 'no watch with that id');
      return { hits: o.watches.hits(req.params.id) };
    },
  );

  api.delete(
    '/api/v1/watches/:id',
    {
      onRequest: o.auth,
      schema: {
        operationId: 'removeWatch',
        tags,
        summary: 'Stop watching',
        params: idParam,
        response: hubResponses({
          ok: z.object({ id: z.string(), removed: z.literal(true) }),
          400: ['invalid_parameter'],
          404: ['watch_not_found'],
        }),
      },
    },
    async (req) => {
      if (!o.watches.remove(req.params.id)) throw new ApiError(404, 'watch_not_found', 'no watch with that id');
      return { id: req.params.id, removed: true as const };
    },
  );

  api.get(
    '/api/v1/tickets',
    {
      onRequest: o.auth,
      schema: {
        operationId: 'listTickets',
        tags,
        summary: 'Tickets opened through the webhook, newest first, with how each ended',
        response: hubResponses({ ok: z.object({ enabled: z.boolean(), tickets: z.array(ticketSchema) }) }),
      },
    },
    async () => ({ enabled: o.tickets.enabled, tickets: o.tickets.list() }),
  );

  api.post(
    '/api/v1/tickets',
    {
      onRequest: o.auth,
      schema: {
        operationId: 'openTicket',
        tags,
        summary: 'Open a ticket: the hub POSTs it to tickets.url (retried, then marked failed with the reason)',
        body: z
          .object({
            title: z.string().min(1).max(300),
            text: z.string().max(100_000).default(''),
            observables: z.array(observable).max(100).default([]),
            casebookId: z.string().max(100).optional(),
          })
          .strict(),
        response: hubResponses({
          ok: ticketSchema,
          body: true,
          400: ['invalid_parameter', 'invalid_body'],
          409: ['tickets_off'],
        }),
      },
    },
    async (req) => {
      if (!o.tickets.enabled) throw new ApiError(409, 'tickets_off', 'no ticket webhook is configured (tickets.url)');
      return o.tickets.open(req.body, o.who(req), { awaitingApproval: o.approvals().ticket });
    },
  );

  // Second-user approval of watches and tickets (approvals.watch, approvals.ticket).
  const decide = <T>(fn: () => T): T => {
    try {
      return fn();
    } catch (err) {
      return asApiError(err);
    }
  };
  for (const verb of ['approve', 'refuse'] as const) {
    const title = verb === 'approve' ? 'Approve' : 'Refuse';
    api.post(
      `/api/v1/watches/:id/${verb}`,
      {
        onRequest: o.auth,
        schema: {
          operationId: `${verb}Watch`,
          tags,
          summary:
            verb === 'approve'
              ? 'Approve a watch awaiting approval (not one you asked for): it counts hits from now on'
              : 'Refuse a watch awaiting approval',
          params: idParam,
          response: hubResponses({
            ok: watchSchema,
            400: ['invalid_parameter'],
            403: ['approval_by_requester'],
            404: ['watch_not_found'],
            409: ['not_pending'],
          }),
        },
      },
      async (req) => decide(() => o.watches[verb](req.params.id, o.who(req))),
    );
    api.post(
      `/api/v1/tickets/:id/${verb}`,
      {
        onRequest: o.auth,
        schema: {
          operationId: `${verb}Ticket`,
          tags,
          summary: `${title} a ticket awaiting approval${verb === 'approve' ? ' (not one you or your watch opened): it is sent' : ''}`,
          params: idParam,
          response: hubResponses({
            ok: ticketSchema,
            400: ['invalid_parameter'],
            403: ['approval_by_requester'],
            404: ['ticket_not_found'],
            409: ['not_pending'],
          }),
        },
      },
      async (req) => decide(() => o.tickets[verb](req.params.id, o.who(req))),
    );
  }
}
