// Casebook routes (src/hub/casebooks.ts): save an investigation with notes, open it again (investigated
// anew), change it, delete it, and export it as a STIX 2.1 bundle (src/hub/stix.ts).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ApiError } from '../api/errors.ts';
import type { Casebooks } from './casebooks.ts';
import { investigate, type Investigation } from './investigate.ts';
import { investigationSchema } from './investigate-routes.ts';
import { collectObservables, MAX_OBSERVABLES, type ParsedObservable } from './parse-observables.ts';
import { casebookBundle } from './stix.ts';
import { hubResponses } from './schemas.ts';
import type { HubStore } from './store.ts';

type Hook = (req: FastifyRequest, reply: FastifyReply) => Promise<void>;

const casebookSchema = z
  .object({
    id: z.string(),
    title: z.string(),
    notes: z.string(),
    observables: z.array(z.object({ type: z.string(), value: z.string() })),
    createdBy: z.string(),
    createdAt: z.string(),
    updatedBy: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: 'Casebook' });

const observablesInput = z
  .array(z.object({ type: z.string().max(40), value: z.string().max(4096) }).strict())
  .max(MAX_OBSERVABLES)
  .optional();

/** Observables from a body: the list and/or text to find them in; an item that cannot be searched is a 400. */
function observablesOf(body: {
  observables?: Array<{ type: string; value: string }>;
  text?: string;
}): ParsedObservable[] {
  const { observables, errors } = collectObservables(body);
  if (errors.length)
    throw new ApiError(400, 'invalid_parameter', errors.map((e) => `${e.input}: ${e.error}`).join('; '));
  return observables;
}

export function registerCasebookRoutes(
  app: FastifyInstance,
  o: {
    casebooks: Casebooks;
    store: HubStore;
    auth: Hook;
    who: (req: FastifyRequest) => string;
    names: () => Map<string, string>;
    hub: { name: string; id: string };
  },
): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['Casebooks'];
  const idParam = z.object({ id: z.string().min(1).max(100).describe('the casebook id') });
  const reinvestigate = (observables: ParsedObservable[]): Investigation =>
    investigate(o.store, { observables, errors: [] }, { perObservable: 200, maxNodes: 150, names: o.names() });
  const found = (id: string) => {
    const c = o.casebooks.get(id);
    if (!c) throw new ApiError(404, 'casebook_not_found', 'no casebook with that id');
    return c;
  };

  api.get(
    '/api/v1/casebooks',
    {
      onRequest: o.auth,
      schema: {
        operationId: 'listCasebooks',
        tags,
        summary: 'Saved investigations, most recently changed first',
        response: hubResponses({ ok: z.object({ casebooks: z.array(casebookSchema) }) }),
      },
    },
    async () => ({ casebooks: o.casebooks.list() }),
  );

  api.post(
    '/api/v1/casebooks',
    {
      onRequest: o.auth,
      schema: {
        operationId: 'createCasebook',
        tags,
        summary: 'Save an investigation: a title, notes and its observables (a list and/or text to find them in)',
        body: z
          .object({
            title: z.string().min(1).max(200),
            notes: z.string().max(100_000).default(''),
            observables: observablesInput,
            text: z.string().max(200_000).optional(),
          })
          .strict(),
        response: hubResponses({ ok: casebookSchema, body: true, 400: ['invalid_parameter', 'invalid_body'] }),
      },
    },
    async (req) => {
      const observables = observablesOf(req.body);
      if (!observables.length) throw new ApiError(400, 'invalid_parameter', 'a casebook needs an observable');
      return o.casebooks.create({ title: req.body.title, notes: req.body.notes, observables }, o.who(req));
    },
  );

  api.get(
    '/api/v1/casebooks/:id',
    {
      onRequest: o.auth,
      schema: {
        operationId: 'getCasebook',
        tags,
        summary: 'A casebook, with its observables investigated again (what every gateway has seen up to now)',
        params: idParam,
        response: hubResponses({
          ok: z.object({ casebook: casebookSchema, investigation: investigationSchema }),
          400: ['invalid_parameter'],
          404: ['casebook_not_found'],
        }),
      },
    },
    async (req) => {
      const c = found(req.params.id);
      return { casebook: c, investigation: reinvestigate(c.observables) };
    },
  );

  api.patch(
    '/api/v1/casebooks/:id',
    {
      onRequest: o.auth,
      schema: {
        operationId: 'updateCasebook',
        tags,
        summary: 'Change a casebook’s title or notes, or replace its observables',
        params: idParam,
        body: z
          .object({
            title: z.string().min(1).max(200).optional(),
            notes: z.string().max(100_000).optional(),
            observables: observablesInput,
            text: z.string().max(200_000).optional(),
          })
          .strict(),
        response: hubResponses({
          ok: casebookSchema,
          body: true,
          400: ['invalid_parameter', 'invalid_body'],
          404: ['casebook_not_found'],
        }),
      },
    },
    async (req) => {
      found(req.params.id);
      const replace = req.body.observables !== undefined || req.body.text !== undefined;
      return o.casebooks.update(
        req.params.id,
        {
          title: req.body.title,
          notes: req.body.notes,
          ...(replace ? { observables: observablesOf(req.body) } : {}),
        },
        o.who(req),
      )!;
    },
  );

  api.delete(
    '/api/v1/casebooks/:id',
    {
      onRequest: o.auth,
      schema: {
        operationId: 'deleteCasebook',
        tags,
        summary: 'Delete a casebook',
        params: idParam,
        response: hubResponses({
          ok: z.object({ id: z.string(), deleted: z.literal(true) }),
          400: ['invalid_parameter'],
          404: ['casebook_not_found'],
        }),
      },
    },
    async (req) => {
      if (!o.casebooks.remove(req.params.id)) throw new ApiError(404, 'casebook_not_found', 'no casebook with that id');
      return { id: req.params.id, deleted: true as const };
    },
  );

  api.get(
    '/api/v1/casebooks/:id/stix',
    {
      onRequest: o.auth,
      schema: {
        operationId: 'exportCasebookStix',
        tags,
        summary:
          'The casebook as a STIX 2.1 bundle: indicators with patterns, observed data, sightings per gateway, relationships and the notes',
        params: idParam,
        response: hubResponses({
          ok: z
            .object({ type: z.literal('bundle'), id: z.string(), objects: z.array(z.record(z.string(), z.unknown())) })
            .describe('a STIX 2.1 bundle'),
          400: ['invalid_parameter'],
          404: ['casebook_not_found'],
        }),
      },
    },
    async (req, reply) => {
      const c = found(req.params.id);
      const bundle = casebookBundle(c, reinvestigate(c.observables), { hubName: o.hub.name, hubId: o.hub.id });
      reply.header('content-disposition', `attachment; filename="casebook-${c.id}.stix.json"`);
      return bundle;
    },
  );
}
