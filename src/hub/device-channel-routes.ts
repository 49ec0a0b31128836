// Routes of the device channel's push side (hub/device-channel.ts): the event stream a registered gateway
// holds open, and its answers to live queries.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ApiError } from '../api/errors.ts';
import type { MessageSummary } from '../xdr/summary.ts';
import type { DeviceChannel } from './device-channel.ts';
import { hubResponses, summarySchema } from './schemas.ts';

type Hook = (req: FastifyRequest, reply: FastifyReply) => Promise<void>;

/** most summaries one gateway returns for one live query */
export const MAX_LIVE_ANSWER = 1000;

export function registerDeviceChannelRoutes(
  app: FastifyInstance,
  o: {
    channel: DeviceChannel;
    device: Hook;
    /** what the gateway should fetch first (the versions its polls would ask about) */
    hello: (deviceId: string) => Record<string, unknown>;
    /** a live answer's summaries, stored like a streamed batch */
    ingest: (deviceId: string, batchId: string, summaries: MessageSummary[]) => void;
  },
): void {
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.get(
    '/api/v1/device/events',
    {
      onRequest: o.device,
      schema: {
        operationId: 'openDeviceEvents',
        tags: ['Device calls'],
        summary:
          'Server-sent events for this gateway: `hello` (versions to fetch), `rules`, `actions`, `blocklist` (fetch now) and `query` (answer a live query); ends after 10 minutes. A device holds at most two streams: a third replaces (ends) the oldest',
        security: [{ deviceJwt: [] }],
        response: hubResponses({ device: true, ok: z.string().describe('text/event-stream') }),
      },
    },
    async (req, reply) => {
      reply.hijack();
      o.channel.open(req.deviceId!, reply.raw, o.hello(req.deviceId!));
    },
  );

  api.post(
    '/api/v1/device/queries/:id',
    {
      onRequest: o.device,
      schema: {
        operationId: 'answerLiveQuery',
        tags: ['Device calls'],
        summary: "A gateway's answer to a live query: the summaries of the messages it holds for its observables",
        security: [{ deviceJwt: [] }],
        params: z.object({ id: z.string().min(1).max(100) }),
        body: z.object({ summaries: z.array(summarySchema).max(MAX_LIVE_ANSWER) }).strict(),
        response: hubResponses({
          device: true,
          ok: z.object({ accepted: z.literal(true) }),
          body: true,
          400: ['invalid_parameter', 'unknown_parameter', 'invalid_body'],
          404: ['query_not_found'],
        }),
      },
    },
    async (req) => {
      const summaries = req.body.summaries as MessageSummary[];
      if (!o.channel.answer(req.deviceId!, req.params.id, summaries))
        throw new ApiError(404, 'query_not_found', 'no live query with that id is waiting for this gateway');
      o.ingest(req.deviceId!, `live-${req.params.id}`, summaries);
      return { accepted: true as const };
    },
  );
}
