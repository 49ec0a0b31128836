// The admin API (DESIGN §9): /api/v1, bearer tokens or a session cookie, roles per route
// (src/api/permissions.ts, enforced in src/api/auth.ts), an audit log of every change, stable error
// codes, /health and /metrics.
// Every route declares its input and answers as zod schemas (src/api/schemas/): they validate requests,
// type the handlers and generate the OpenAPI document (src/api/docs.ts). The routes only call the
// gateway's service functions; the CLI calls this API.
import Fastify, { type FastifyInstance, type RouteOptions } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Gateway } from '../gateway/gateway.ts';
import { registerDocs } from './docs.ts';
import { ApiError, sendError } from './errors.ts';
import fastifyCookie from '@fastify/cookie';
import { authenticator, principalOf, registerAuditHook, routePermissionCheck } from './auth.ts';
import { registerUserRoutes } from './user-routes.ts';
import { registerEndUserRoutes } from './enduser-routes.ts';
import { registerConfigRoutes } from './config-routes.ts';
import type { LastApply } from '../gateway/process.ts';
import { registerWebUi, WEB_DIR } from '../web/serve.ts';
import { registerOutbreakRoutes } from './outbreak-routes.ts';
import { registerQuarantineRoutes } from './quarantine-routes.ts';
import { registerCloudRoutes } from './cloud-routes.ts';
import { registerRelayRoutes, relayNotFound } from './relay-routes.ts';
import { registerRemediationRoutes } from './remediation-routes.ts';
import { errorSchema, responses } from './schemas/common.ts';
import { health } from './schemas/tracking.ts';
import { registerSystemRoutes } from './system-routes.ts';
import { registerTlsReportRoutes } from './tlsrpt-routes.ts';
import { registerDmarcReportRoutes } from './dmarc-routes.ts';
import { checkResponses, serializerCompiler, validatorCompiler } from './validation.ts';

export { ApiError } from './errors.ts';
export { TRACKING_LIMIT } from './schemas/tracking.ts';

const FASTIFY_ERRORS: Record<string, { status: number; code: string; message: string }> = {
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'invalid_json', message: 'the body is not valid JSON' },
  FST_ERR_CTP_EMPTY_JSON_BODY: {
    status: 400,
    code: 'invalid_json',
    message: 'the body is empty but content-type says JSON',
  },
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'body_too_large', message: 'the body is larger than 1 MiB' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    status: 415,
    code: 'unsupported_media_type',
    message: 'send application/json',
  },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: {
    status: 400,
    code: 'bad_request',
    message: 'content-length does not match the body',
  },
};

export interface ApiOptions {
  /** called for every route as it is registered (tests compare them with the OpenAPI document) */
  onRoute?: (route: RouteOptions) => void;
  /** HTTPS (admin.tls): the session cookie is then Secure */
  https?: { key: Buffer; cert: Buffer };
  /** applies the configuration file now (`POST /config/apply`); unset in an embedded gateway */
  apply?: (why: string) => Promise<LastApply>;
  /** how the last apply went (GET /config) */
  lastApply?: () => LastApply | null;
}

export async function buildApi(gw: Gateway, token: string, options: ApiOptions = {}): Promise<FastifyInstance> {
  const app = options.https
    ? (Fastify({ logger: false, bodyLimit: 1024 * 1024, https: options.https }) as unknown as FastifyInstance)
    : Fastify({ logger: false, bodyLimit: 1024 * 1024 });
  const detailed = checkResponses();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  // every route names its permission (the API does not start otherwise); the document shows the roles
  app.addHook('onRoute', routePermissionCheck());
  if (options.onRoute) app.addHook('onRoute', options.onRoute);
  await app.register(fastifyCookie);
  // JSON only: a text/plain body would otherwise reach the routes as a string
  app.removeContentTypeParser('text/plain');

  app.setErrorHandler((err: any, _req, reply) => {
    // the route schemas' validation failures are ApiErrors already (validation.ts)
    if (err instanceof ApiError) return sendError(reply, err.status, err.code, err.message);
    if (err.validation) return sendError(reply, 400, 'invalid_request', err.message);
    // Fastify's own errors (FST_ERR_*) are mapped to the documented codes: its names never leak.
    const fastify = FASTIFY_ERRORS[String(err.code)];
    if (fastify) return sendError(reply, fastify.status, fastify.code, fastify.message);
    if (err.statusCode && err.statusCode < 500)
      return sendError(reply, err.statusCode, 'bad_request', 'the request could not be read');
    gw.mailLog.warning(`admin API error: ${err.stack ?? err}`);
    return sendError(reply, 500, 'internal_error', detailed ? String(err.message) : 'internal error');
  });
  app.setNotFoundHandler((req, reply) => {
    // the XDR relay's paths answer in the relay's own error shape (src/api/relay-routes.ts)
    if (gw.relay && relayNotFound(req, reply)) return reply;
    return sendError(reply, 404, 'not_found', `no route ${req.method} ${req.url.split('?')[0]}`);
  });

  const auth = authenticator(gw.users, token);
  registerAuditHook(app, gw.audit);

  // The OpenAPI document and its rendering at /api/docs are public, like /health; so is the web UI's
  // code (what it shows comes from the API, with credentials).
  await registerDocs(app);
  const ui = await registerWebUi(app);
  if (!ui.built) gw.mailLog.warning(`web UI not built (${WEB_DIR} has no index.html): run npm run build:web`);
  const typed = app.withTypeProvider<ZodTypeProvider>();

  typed.get(
    '/health',
    {
      schema: {
        operationId: 'getHealth',
        tags: ['System'],
        summary: 'Liveness',
        security: [],
        response: responses({ ok: health, public: true }),
      },
    },
    async () => ({ status: 'ok' as const, uptimeSeconds: Math.round((Date.now() - gw.startedAt) / 1000) }),
  );

  typed.get(
    '/metrics',
    {
      onRequest: auth,
      schema: {
        operationId: 'getMetrics',
        tags: ['System'],
        summary: 'Prometheus metrics',
        response: {
          200: {
            description: 'Prometheus text exposition format',
            content: { 'text/plain': { schema: z.string() } },
          },
          401: { description: '`unauthorized`', content: { 'application/json': { schema: errorSchema } } },
          500: { description: '`internal_error`', content: { 'application/json': { schema: errorSchema } } },
        },
      },
    },
    async (_req, reply) => {
      gw.metrics.queueDepth.set(gw.flow.active());
      gw.metrics.ruleVersion.set(gw.outbreak.bundle?.version ?? 0);
      gw.metrics.quarantineBytes.set(gw.quarantines.index.usage().bytes);
      reply.header('content-type', gw.metrics.registry.contentType);
      return gw.metrics.registry.metrics();
    },
  );

  await app.register(
    async (api) => {
      api.addHook('onRequest', auth);
      const routes = api.withTypeProvider<ZodTypeProvider>();
      registerSystemRoutes(routes, gw);
      registerOutbreakRoutes(routes, gw);
      registerQuarantineRoutes(routes, gw);
      registerCloudRoutes(routes, gw);
      registerRemediationRoutes(routes, gw);
      registerTlsReportRoutes(routes, gw);
      registerDmarcReportRoutes(routes, gw);
      registerConfigRoutes(routes, gw, options.apply ?? null, options.lastApply ?? (() => null));
      registerEndUserRoutes(routes, gw, { secureCookie: !!options.https });
      registerUserRoutes(routes, gw, {
        secureCookie: !!options.https,
        principal: (req) => principalOf(req, gw.users, token),
        product: 'gateway',
      });
    },
    { prefix: '/api/v1' },
  );
  // The XDR relay module (POST, its own JWT and error shape), when configured.
  if (gw.relay) await registerRelayRoutes(app, (l) => gw.mailLog.warning(l), gw.relay, gw.config.xdr.relay);
  return app;
}
