// The XDR relay-module routes on the admin port (DESIGN §10; reference R97–R105): all POST, JSON, a bearer
// JWT (src/xdr/relay-auth.ts), and their own error shape `{"errors":[{"type":"fatal","code","message"}]}`.
// They are not under /api/v1: an XDR calls fixed paths. Registered only when the relay is configured
// (`xdr.relay.jwtSecret` or `jwksUrl`); POST /health sits beside the admin API's public GET /health.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { z } from 'zod';
import type { XdrRelayConfig } from '../config/xdr-schema.ts';
import { callerOf, RelayAuth } from '../xdr/relay-auth.ts';
import { RelayError, type Relay } from '../xdr/relay.ts';
import { ApiError } from './errors.ts';
import {
  deliberateAnswer,
  observablesBody,
  observeAnswer,
  referAnswer,
  relayErrorsSchema,
  relayHealthAnswer,
  relayHealthBody,
  respondAnswer,
  triggerAnswer,
  triggerBody,
  type RelayErrorCode,
} from './schemas/relay.ts';

export const RELAY_TAG = 'XDR relay';

/** Every relay route (all POST). */
export const RELAY_PATHS = [
  '/health',
  '/observe/observables',
  '/deliberate/observables',
  '/refer/observables',
  '/respond/observables',
  '/respond/trigger',
] as const;

/** Paths under these belong to the relay: an unknown one answers in the relay's error shape. */
const RELAY_PREFIXES = ['/observe', '/deliberate', '/refer', '/respond'];

export function sendRelayError(reply: FastifyReply, status: number, code: RelayErrorCode, message: string) {
  return reply.code(status).send({ errors: [{ type: 'fatal', code, message }] });
}

/**
 * For the admin API's not-found handler: a request for a relay path (when the relay is on) is answered
 * in the relay's error shape, 405 for a known path with another method, 404 otherwise. False when the
 * path is not the relay's.
 */
export function relayNotFound(req: FastifyRequest, reply: FastifyReply): boolean {
  const p = req.url.split('?')[0];
  if ((RELAY_PATHS as readonly string[]).includes(p) && p !== '/health') {
    sendRelayError(
      reply.header('allow', 'POST'),
      405,
      'method not allowed',
      `${req.method} ${p}: relay routes take POST`,
    );
    return true;
  }
  if (RELAY_PREFIXES.some((x) => p === x || p.startsWith(x + '/'))) {
    sendRelayError(reply, 404, 'not found', `no relay route ${req.method} ${p}`);
    return true;
  }
  return false;
}

const FASTIFY_ERRORS: Record<string, [number, string]> = {
  FST_ERR_CTP_BODY_TOO_LARGE: [413, 'the body is larger than 1 MiB'],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: [415, 'send application/json'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: [400, 'content-length does not match the body'],
};

const json = (schema: z.ZodType, description: string) => ({ description, content: { 'application/json': { schema } } });

function relayResponses(ok: z.ZodType, okDescription: string) {
  return {
    200: json(ok, okDescription),
    400: json(relayErrorsSchema, '`invalid argument`: a malformed body or an unknown observable type'),
    401: json(relayErrorsSchema, '`authorization error`: the bearer JWT is missing, unsigned, expired or wrong'),
    413: json(relayErrorsSchema, '`invalid argument`: more than 1 MiB'),
    415: json(relayErrorsSchema, '`invalid argument`: send application/json'),
    500: json(relayErrorsSchema, '`unknown`'),
  };
}

/** Registers the relay routes in their own scope: JWT check, JSON parser and error handler of their own. */
export async function registerRelayRoutes(
  app: FastifyInstance,
  warn: (line: string) => void,
  relay: Relay,
  config: XdrRelayConfig,
) {
  const auth = new RelayAuth(config);
  const callers = new WeakMap<FastifyRequest, string>();
  await app.register(async (scope) => {
    // An empty body is no body (XDR's health check may send none); bad JSON is the relay's 400.
    scope.removeContentTypeParser('application/json');
    scope.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
      const text = String(body).trim();
      if (!text) return done(null, null);
      try {
        done(null, JSON.parse(text));
      } catch {
        done(new RelayError(400, 'invalid argument', 'the body is not valid JSON'), undefined);
      }
    });
    scope.setErrorHandler((err: any, _req, reply) => {
      if (err instanceof RelayError) {
        if (err.status === 401) reply.header('www-authenticate', 'Bearer');
        return sendRelayError(reply, err.status, err.code as RelayErrorCode, err.message);
      }
      if (err instanceof ApiError || err.validation) return sendRelayError(reply, 400, 'invalid argument', err.message);
      const known = FASTIFY_ERRORS[String(err.code)];
      if (known) return sendRelayError(reply, known[0], 'invalid argument', known[1]);
      if (err.statusCode && err.statusCode < 500)
        return sendRelayError(reply, 400, 'invalid argument', 'the request could not be read');
      warn(`XDR relay error: ${err.stack ?? err}`);
      return sendRelayError(reply, 500, 'unknown', 'internal error');
    });
    scope.addHook('onRequest', async (req) => {
      callers.set(req, callerOf(await auth.verify(req.headers.authorization)));
    });
    const api = scope.withTypeProvider<ZodTypeProvider>();
    const call = (req: FastifyRequest) => ({
      base: config.referUrl?.replace(/\/+$/, '') ?? `${req.protocol}://${req.host}`,
      by: callers.get(req) ?? 'xdr:relay',
    });
    const common = { tags: [RELAY_TAG], security: [{ relayJwt: [] }] };

    api.post(
      '/health',
      {
        schema: {
          ...common,
          operationId: 'relayHealth',
          summary: 'Relay module health (the token is checked)',
          body: relayHealthBody,
          response: relayResponses(relayHealthAnswer, 'the relay answers and the token is good'),
        },
      },
      async () => ({ data: { status: 'ok' as const } }),
    );
    api.post(
      '/observe/observables',
      {
        schema: {
          ...common,
          operationId: 'relayObserve',
          summary: 'Sightings (one per message, newest first) and judgements of observables',
          description: `At most \`xdr.relay.entityLimit\` sightings and judgements; only non-empty groups are present.`,
          body: observablesBody,
          response: relayResponses(observeAnswer, 'CTIM sightings and judgements'),
        },
      },
      async (req) => ({ data: relay.observe(req.body, call(req)) }),
    );
    api.post(
      '/deliberate/observables',
      {
        schema: {
          ...common,
          operationId: 'relayDeliberate',
          summary: 'Verdicts of observables (Malicious, Suspicious or Unknown from Outbreak Filters threat levels)',
          body: observablesBody,
          response: relayResponses(deliberateAnswer, 'CTIM verdicts'),
        },
      },
      async (req) => ({ data: relay.deliberate(req.body, call(req)) }),
    );
    api.post(
      '/refer/observables',
      {
        schema: {
          ...common,
          operationId: 'relayRefer',
          summary: "Links to this gateway's message tracking for each observable",
          body: observablesBody,
          response: relayResponses(referAnswer, 'links'),
        },
      },
      async (req) => ({ data: relay.refer(req.body, call(req)) }),
    );
    api.post(
      '/respond/observables',
      {
        schema: {
          ...common,
          operationId: 'relayRespondObservables',
          summary: 'Response actions available for each observable',
          body: observablesBody,
          response: relayResponses(respondAnswer, 'actions'),
        },
      },
      async (req) => ({ data: relay.actions(req.body) }),
    );
    api.post(
      '/respond/trigger',
      {
        schema: {
          ...common,
          operationId: 'relayRespondTrigger',
          summary: 'Carry out a response action on an observable',
          description:
            'Answers 200 with `data.status` `success` or `failure` (with `errors` saying why); an action not offered for the observable is a 400.',
          body: triggerBody,
          response: relayResponses(triggerAnswer, 'whether the action was carried out'),
        },
      },
      async (req) => relay.trigger(req.body, call(req).by),
    );
  });
}
