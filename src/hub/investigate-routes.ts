// The hub's investigation route (DESIGN §11.3): pasted text or a list of observables → sightings across
// every gateway, judgements, messages and the relationship graph (src/hub/investigate.ts). Malformed
// items are answered one by one in `errors`; the rest are investigated.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ApiError } from '../api/errors.ts';
import { investigate } from './investigate.ts';
import { collectObservables, MAX_OBSERVABLES } from './parse-observables.ts';
import { hubResponses, summarySchema } from './schemas.ts';
import type { HubStore } from './store.ts';
import type { DeviceChannel } from './device-channel.ts';

type Hook = (req: FastifyRequest, reply: FastifyReply) => Promise<void>;

const observableFinding = z
  .object({
    type: z.string(),
    value: z.string().describe('as searched (normalised)'),
    judgement: z
      .enum(['malicious', 'suspicious', 'no threat found', 'not seen'])
      .describe(
        'from the gateways’ verdicts: malicious (level 4–5, or held or dropped), suspicious (level 1–3), no threat found, not seen',
      ),
    sightings: z.object({
      count: z.int().describe('messages that carry it, every gateway together'),
      firstSeen: z.string().nullable(),
      lastSeen: z.string().nullable(),
      gateways: z.array(z.object({ deviceId: z.string(), name: z.string(), count: z.int() })),
    }),
    roles: z
      .object({ sender: z.int(), recipient: z.int(), content: z.int() })
      .describe('how it appeared in the messages returned'),
    maxThreatLevel: z.int().nullable(),
    statuses: z.record(z.string(), z.int()),
    rules: z.array(z.string()).describe('the rules that matched those messages, most frequent first'),
  })
  .meta({ id: 'ObservableFinding' });

export const investigationSchema = z
  .object({
    observables: z.array(observableFinding),
    errors: z
      .array(z.object({ input: z.string(), error: z.string() }))
      .describe('items that could not be investigated, each with why; the others were'),
    messages: z.array(
      z.object({
        deviceId: z.string(),
        gateway: z.string(),
        summary: summarySchema,
        matched: z.array(z.string()).describe('the observables (`type:value`) it carries'),
      }),
    ),
    truncated: z.boolean().describe('an observable was in more messages than perObservable (counts stay exact)'),
    live: z
      .object({
        asked: z.array(z.string()).describe('gateways connected to the hub, asked for what they hold now'),
        answered: z.array(z.object({ deviceId: z.string(), name: z.string(), messages: z.int() })),
        missing: z.array(z.string()).describe('gateways asked that did not answer within investigate.liveTimeout'),
      })
      .describe('the live part: messages not streamed yet are in the answer when a gateway answered in time'),
    graph: z.object({
      nodes: z.array(
        z.object({
          id: z.string().describe('`type:value`: investigate it next'),
          type: z.enum(['email', 'ip', 'domain', 'sha256', 'url_domain']),
          label: z.string(),
          messages: z.int(),
          investigated: z.boolean(),
          maxThreatLevel: z.int(),
        }),
      ),
      edges: z.array(
        z.object({
          source: z.string(),
          target: z.string(),
          kind: z.enum(['sent to', 'sent from', 'attached', 'linked', 'sender domain']),
          messages: z.int(),
        }),
      ),
      truncated: z.boolean(),
    }),
  })
  .meta({ id: 'Investigation' });

export function registerInvestigateRoutes(
  app: FastifyInstance,
  o: {
    store: HubStore;
    auth: Hook;
    names: () => Map<string, string>;
    channel: DeviceChannel;
    liveTimeoutMs: () => number;
  },
): void {
  app.withTypeProvider<ZodTypeProvider>().post(
    '/api/v1/investigate',
    {
      onRequest: o.auth,
      schema: {
        operationId: 'investigateObservables',
        tags: ['Search'],
        summary: 'Investigate observables across every gateway: sightings, judgements, messages, relationship graph',
        description: `Give pasted text (addresses, IPs, domains, URLs, SHA-256 hashes, Message-IDs, "MID 123", "Subject: …" lines and \`type: value\` lines are found in it) and/or a list of observables; at most ${MAX_OBSERVABLES}.`,
        body: z
          .object({
            text: z.string().max(200_000).optional(),
            observables: z
              .array(z.object({ type: z.string().max(40), value: z.string().max(4096) }).strict())
              .max(MAX_OBSERVABLES)
              .optional(),
            perObservable: z.int().min(1).max(1000).default(200).describe('messages read per observable, newest first'),
            live: z
              .boolean()
              .default(true)
              .describe('also ask the connected gateways for what they hold now (up to investigate.liveTimeout)'),
          })
          .strict(),
        response: hubResponses({ ok: investigationSchema, body: true, 400: ['invalid_parameter', 'invalid_body'] }),
      },
    },
    async (req) => {
      const { text, observables = [], perObservable } = req.body;
      if (!text?.trim() && !observables.length)
        throw new ApiError(400, 'invalid_parameter', 'give text or observables to investigate');
      const parsed = collectObservables({ text, observables });
      const names = o.names();
      // Live first: what the connected gateways hold now is stored like a streamed batch (they answer
      // through POST /api/v1/device/queries/{id}), so the investigation below reads one store.
      const timeout = o.liveTimeoutMs();
      const live =
        req.body.live && timeout > 0
          ? await o.channel.query(
              parsed.observables.map((x) => ({ type: x.type, value: x.value })),
              perObservable,
              timeout,
            )
          : { asked: [], answers: [] };
      const answered = new Set(live.answers.map((a) => a.deviceId));
      return {
        ...investigate(o.store, parsed, { perObservable, maxNodes: 150, names }),
        live: {
          asked: live.asked,
          answered: live.answers.map((a) => ({
            deviceId: a.deviceId,
            name: names.get(a.deviceId) ?? a.deviceId,
            messages: a.summaries.length,
          })),
          missing: live.asked.filter((d) => !answered.has(d)),
        },
      };
    },
  );
}
