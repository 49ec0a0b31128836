// TAXII 2.1 on the hub (src/hub/taxii.ts): discovery, one API root and one read-only collection of the
// outbreak indicators the hub publishes. Clients authenticate with HTTP Basic (any user name, a personal
// API token as the password — what TAXII clients send) or a bearer token; readers' roles apply.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ApiError } from '../api/errors.ts';
import type { HubRules } from './rules.ts';
import { hubResponses } from './schemas.ts';
import { COLLECTION_ID, ruleIndicator, STIX_MEDIA, TAXII_MEDIA } from './taxii.ts';

type Hook = (req: FastifyRequest, reply: FastifyReply) => Promise<void>;

const MAX_PAGE = 1000;

export function registerTaxiiRoutes(
  app: FastifyInstance,
  o: { rules: HubRules; auth: Hook; hubIdentity: { id: string; name: string; created: string } },
): void {
  // TAXII clients send HTTP Basic: the password is the token the usual check reads
  const auth: Hook = async (req, reply) => {
    const m = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    if (m) {
      const pass = Buffer.from(m[1], 'base64').toString('utf8').split(':').slice(1).join(':');
      req.headers.authorization = `Bearer ${pass}`;
    }
    await o.auth(req, reply);
  };
  const api = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['TAXII 2.1'];
  // The exact TAXII media type (Fastify's own serialisation would quote the version and add a charset):
  // the body goes out as bytes the route wrote itself.
  const taxii = (reply: FastifyReply) => ({
    send: (body: unknown) => reply.header('content-type', TAXII_MEDIA).send(Buffer.from(JSON.stringify(body))),
  });
  const collection = {
    id: COLLECTION_ID,
    title: 'Breakwater outbreak indicators',
    description:
      'The outbreak rules this hub publishes to its gateways, as STIX 2.1 indicators (rules whose condition STIX patterns cannot express are left out)',
    can_read: true,
    can_write: false,
    media_types: [STIX_MEDIA],
  };
  const identity = {
    type: 'identity',
    spec_version: '2.1',
    id: o.hubIdentity.id,
    created: o.hubIdentity.created,
    modified: o.hubIdentity.created,
    name: o.hubIdentity.name,
    identity_class: 'system',
  };
  /** Every object of the collection, oldest first, with when it was added. */
  const objects = () => {
    const list: Array<{ added: string; object: Record<string, unknown> }> = [
      { added: identity.created, object: identity },
    ];
    for (const r of o.rules.list('published').reverse()) {
      const ind = ruleIndicator(r, identity.id);
      if (ind) list.push({ added: r.publishedAt ?? r.createdAt, object: ind });
    }
    return list.sort((a, b) => a.added.localeCompare(b.added));
  };
  const ok = z.record(z.string(), z.unknown());
  const known = (id: string) => {
    if (id !== COLLECTION_ID) throw new ApiError(404, 'not_found', 'no such collection');
  };
  const page = z
    .object({
      added_after: z.string().max(40).optional(),
      limit: z.coerce.number().int().min(1).max(MAX_PAGE).default(100),
      next: z.string().max(20).regex(/^\d+$/).optional(),
      'match[id]': z.string().max(2000).optional(),
      'match[type]': z.string().max(200).optional(),
    })
    .strict();
  const select = (q: z.output<typeof page>) => {
    const ids = q['match[id]']?.split(',');
    const types = q['match[type]']?.split(',');
    const after = q.added_after ? Date.parse(q.added_after) : null;
    if (q.added_after && !Number.isFinite(after))
      throw new ApiError(400, 'invalid_parameter', 'added_after is a timestamp');
    const all = objects().filter(
      (x) =>
        (!ids || ids.includes(String(x.object.id))) &&
        (!types || types.includes(String(x.object.type))) &&
        (after === null || Date.parse(x.added) > after!),
    );
    const start = Number(q.next ?? 0);
    const slice = all.slice(start, start + q.limit);
    return { slice, more: start + q.limit < all.length, next: String(start + q.limit) };
  };
  const dated = (reply: FastifyReply, slice: Array<{ added: string }>) => {
    if (!slice.length) return;
    reply.header('x-taxii-date-added-first', slice[0].added);
    reply.header('x-taxii-date-added-last', slice[slice.length - 1].added);
  };

  api.get(
    '/taxii2/',
    {
      onRequest: auth,
      schema: { operationId: 'taxiiDiscovery', tags, summary: 'TAXII 2.1 discovery', response: hubResponses({ ok }) },
    },
    async (req, reply) => {
      const base = `${req.protocol}://${req.headers.host}`;
      return taxii(reply).send({
        title: 'Breakwater hub',
        description: 'Outbreak indicators published by this hub',
        default: `${base}/taxii2/api/`,
        api_roots: [`${base}/taxii2/api/`],
      });
    },
  );
  api.get(
    '/taxii2/api/',
    {
      onRequest: auth,
      schema: { operationId: 'taxiiApiRoot', tags, summary: 'The TAXII 2.1 API root', response: hubResponses({ ok }) },
    },
    async (_req, reply) => {
      return taxii(reply).send({
        title: 'Breakwater hub',
        versions: [TAXII_MEDIA],
        max_content_length: 32 * 1024 * 1024,
      });
    },
  );
  api.get(
    '/taxii2/api/collections/',
    {
      onRequest: auth,
      schema: { operationId: 'taxiiCollections', tags, summary: 'The collections', response: hubResponses({ ok }) },
    },
    async (_req, reply) => {
      return taxii(reply).send({ collections: [collection] });
    },
  );
  const cid = z.object({ id: z.string().max(100) });
  api.get(
    '/taxii2/api/collections/:id/',
    {
      onRequest: auth,
      schema: {
        operationId: 'taxiiCollection',
        tags,
        summary: 'The outbreak indicator collection',
        params: cid,
        response: hubResponses({ ok, 404: ['not_found'] }),
      },
    },
    async (req, reply) => {
      known(req.params.id);
      return taxii(reply).send(collection);
    },
  );
  api.get(
    '/taxii2/api/collections/:id/objects/',
    {
      onRequest: auth,
      schema: {
        operationId: 'taxiiObjects',
        tags,
        summary:
          'The collection’s objects in an envelope, oldest first (added_after, limit, next, match[id], match[type])',
        params: cid,
        querystring: page,
        response: hubResponses({ ok, 400: ['invalid_parameter', 'unknown_parameter'], 404: ['not_found'] }),
      },
    },
    async (req, reply) => {
      known(req.params.id);
      const { slice, more, next } = select(req.query);
      dated(reply, slice);
      return taxii(reply).send({ more, ...(more ? { next } : {}), objects: slice.map((x) => x.object) });
    },
  );
  api.get(
    '/taxii2/api/collections/:id/manifest/',
    {
      onRequest: auth,
      schema: {
        operationId: 'taxiiManifest',
        tags,
        summary: 'What the collection holds: ids, versions, when added',
        params: cid,
        querystring: page,
        response: hubResponses({ ok, 400: ['invalid_parameter', 'unknown_parameter'], 404: ['not_found'] }),
      },
    },
    async (req, reply) => {
      known(req.params.id);
      const { slice, more, next } = select(req.query);
      dated(reply, slice);
      return taxii(reply).send({
        more,
        ...(more ? { next } : {}),
        objects: slice.map((x) => ({
          id: x.object.id,
          date_added: x.added,
          version: x.object.modified,
          media_type: STIX_MEDIA,
        })),
      });
    },
  );
  api.get(
    '/taxii2/api/collections/:id/objects/:objectId/',
    {
      onRequest: auth,
      schema: {
        operationId: 'taxiiObject',
        tags,
        summary: 'One object of the collection',
        params: z.object({ id: z.string().max(100), objectId: z.string().max(200) }),
        response: hubResponses({ ok, 404: ['not_found'] }),
      },
    },
    async (req, reply) => {
      known(req.params.id);
      const found = objects().filter((x) => x.object.id === req.params.objectId);
      if (!found.length) throw new ApiError(404, 'not_found', 'no such object in the collection');
      dated(reply, found);
      return taxii(reply).send({ more: false, objects: found.map((x) => x.object) });
    },
  );
}
