// The admin API's OpenAPI 3.1 document, generated from the routes' zod schemas by @fastify/swagger, served
// at /api/v1/openapi.json, and rendered at /api/docs by Swagger UI from its own package (no CDN, no
// inline script: the page runs under a same-origin content security policy). Both are public, like /health.
import { readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { createJsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { responses } from './schemas/common.ts';

export const DOCS_PREFIX = '/api/docs';

/** Served with every page and asset of /api/docs: scripts, styles and requests stay on this host. */
export const DOCS_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
  "font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const tags = [
  { name: 'System', description: 'Health, metrics, gateway status and the scanning pipeline' },
  { name: 'Documentation', description: 'This document (no token needed; rendered at /api/docs)' },
  { name: 'Tracking', description: 'Message tracking: search, and one record with every event' },
  { name: 'Queue', description: 'Messages not yet delivered' },
  { name: 'Outbreak Filters', description: 'Outbreak rules, the rule feed and the Outbreak Filters settings' },
  {
    name: 'Quarantines',
    description:
      'The system quarantines `outbreak` and `virus` and the policy quarantines. Bulk actions take a QuarantineFilter (`mids`, `rule`, `level`, `sender`, `recipient`, `since`, `until`, or `all: true`).',
  },
  {
    name: 'Reports',
    description: 'Web interaction tracking, Outbreak Filters reports and SMTP TLS reports (RFC 8460)',
  },
  { name: 'Alerts', description: 'Alerts raised by the gateway, newest first' },
  { name: 'Cloud services', description: 'Registration with the threat-response hub (DESIGN §10)' },
  {
    name: 'XDR relay',
    description:
      'The relay module an XDR calls (only when `xdr.relay` is configured): POST, a bearer JWT (`relayJwt`), CTIM answers, and errors of their own shape `{"errors": [{"type": "fatal", "code", "message"}]}` (schema RelayErrors). Not under /api/v1.',
  },
  {
    name: 'Remediation',
    description: 'Delete or forward delivered messages in the recipients’ mailboxes (IMAP, Microsoft Graph)',
  },
  {
    name: 'Settings',
    description:
      'The configuration: read (secrets masked), its JSON Schema for generated forms, check and save (the previous file kept as a backup; applies at the next start)',
  },
  {
    name: 'Users',
    description:
      'Sign-in sessions (HttpOnly cookie and a CSRF token), users and roles (admin, operator, analyst, helpdesk), personal API tokens and the audit log. Each operation lists the roles that may call it.',
  },
  {
    name: 'End-user quarantine',
    description:
      'Recipients and their own held incoming messages in the quarantines opened to them (`quarantine.policy[].endUsers`): sign in with a digest link or mailbox password (cookie `bw_enduser`, CSRF token in x-csrf-token), list, view, release, delete, allow-list senders. Never the virus or Outbreak quarantine.',
  },
];

const transform = createJsonSchemaTransform({ skipList: [] });

/**
 * Per route: the zod schemas as JSON Schema, and a mark on a body the route may go without (Fastify
 * validates a missing body as null), so that its requestBody is not documented as required.
 */
const transformRoute: typeof transform = (input) => {
  const out = transform(input);
  const body = input.schema?.body as z.ZodType | undefined;
  if (body instanceof z.ZodType && body.safeParse(null).success)
    (out.schema as Record<string, unknown>)[OPTIONAL] = true;
  return out;
};
const OPTIONAL = 'x-breakwater-optional-body';

type Json = Record<string, any>;

/** Every `$ref` in a value. */
function refs(v: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(v)) for (const x of v) refs(x, out);
  else if (v && typeof v === 'object')
    for (const [k, x] of Object.entries(v)) {
      if (k === '$ref' && typeof x === 'string') out.add(x);
      else refs(x, out);
    }
  return out;
}

/**
 * Marks optional bodies as not required, and keeps the named schemas the paths use: the registry gives
 * each one twice (`X` for answers, `XInput` for requests), so a request schema is called `X` when no
 * answer uses that name or both are the same.
 */
function tidy(doc: Json): Json {
  for (const item of Object.values(doc.paths as Json))
    for (const op of Object.values(item as Json))
      if (op[OPTIONAL]) {
        op.requestBody.required = false;
        delete op[OPTIONAL];
      }
  const prefix = '#/components/schemas/';
  const all: Json = doc.components.schemas;
  const used = (): Set<string> => {
    const seen = new Set<string>();
    const todo = [...refs(doc.paths)];
    while (todo.length) {
      const name = todo.pop()!.slice(prefix.length);
      if (!seen.has(name)) todo.push(...refs(all[(seen.add(name), name)]));
    }
    return seen;
  };
  const keep = used();
  for (const name of [...keep].filter((n) => n.endsWith('Input'))) {
    const plain = name.slice(0, -'Input'.length);
    const rename = (v: unknown) =>
      JSON.parse(JSON.stringify(v).replaceAll(`"${prefix}${name}"`, `"${prefix}${plain}"`));
    if (keep.has(plain) && !isDeepStrictEqual(rename(all[name]), all[plain])) continue;
    all[plain] = rename(all[name]);
    doc.paths = rename(doc.paths);
    for (const n of keep) all[n] = rename(all[n]);
  }
  const final = used();
  for (const name of Object.keys(all)) if (!final.has(name)) delete all[name];
  return doc;
}

/** What the document says about the API it describes (the gateway's admin API unless told). */
export interface DocsInfo {
  title: string;
  description: string;
  tags: Array<{ name: string; description: string }>;
  /** security schemes besides the admin token (`bearerAuth`) */
  securitySchemes?: Record<
    string,
    | { type: 'http'; scheme: 'bearer'; bearerFormat?: string; description: string }
    | { type: 'apiKey'; in: 'cookie'; name: string; description: string }
  >;
}

const gatewayDocs: DocsInfo = {
  title: 'Breakwater admin API',
  description:
    'JSON over HTTP. Every route needs `Authorization: Bearer <token>` (created at first start in `dataDir/admin.token`) except `/health`, this document and `/api/docs`. Errors are `{"error": {"code", "message"}}` with a stable code (schema Error).',
  tags,
  securitySchemes: {
    relayJwt: {
      type: 'http',
      scheme: 'bearer',
      bearerFormat: 'JWT',
      description:
        'XDR relay routes only: a JWT signed HS256 with `xdr.relay.jwtSecret`, or by a key of `xdr.relay.jwksUrl`',
    },
    endUserSession: {
      type: 'apiKey',
      in: 'cookie',
      name: 'bw_enduser',
      description: 'End-user quarantine routes only: the session cookie set by POST /api/v1/enduser/session',
    },
  },
};

/** Registers @fastify/swagger (before any route, so it sees them all), Swagger UI and the document route. */
export async function registerDocs(app: FastifyInstance, info: DocsInfo = gatewayDocs): Promise<void> {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.1',
      info: {
        title: info.title,
        version: pkg.version,
        description: info.description,
        license: { name: 'AGPL-3.0-or-later', identifier: 'AGPL-3.0-or-later' },
      },
      security: [{ bearerAuth: [] }],
      tags: info.tags,
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', description: 'The admin token from `dataDir/admin.token`' },
          ...info.securitySchemes,
        },
      },
    },
    transform: transformRoute,
    transformObject: (input) =>
      tidy(jsonSchemaTransformObject(input) as Json) as ReturnType<typeof jsonSchemaTransformObject>,
  });
  await app.register(fastifySwaggerUi, {
    routePrefix: DOCS_PREFIX,
    staticCSP: DOCS_CSP,
    theme: { title: info.title },
  });
  app.get(
    '/api/v1/openapi.json',
    {
      schema: {
        operationId: 'getOpenApiDocument',
        tags: ['Documentation'],
        summary: 'This OpenAPI document',
        security: [],
        response: responses({
          ok: z.looseObject({ openapi: z.string() }),
          okDescription: 'OpenAPI 3.1 document',
          public: true,
        }),
      },
    },
    async () => app.swagger(),
  );
}
