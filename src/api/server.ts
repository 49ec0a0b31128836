// The admin API (DESIGN §9): /api/v1, bearer token, stable error codes, /health and /metrics.
// It only calls the gateway's service functions; the CLI calls this API.
import { readFileSync } from 'node:fs';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type RouteOptions } from 'fastify';
import type { Gateway } from '../gateway/gateway.ts';
import { describePipeline } from '../pipeline/pipeline.ts';
import { trackingFilters, type TrackingQuery } from '../tracking/tracker.ts';
import { ApiError, intParam, sendError, timeParam, tokenMatches } from './errors.ts';
import { registerOutbreakRoutes } from './outbreak-routes.ts';
import { openApiDocument } from './openapi.ts';
import { renderDocsPage } from './docs-page.ts';
import { registerQuarantineRoutes } from './quarantine-routes.ts';

export { ApiError } from './errors.ts';

/** The most tracking records one search answers; page with `before` for more. */
export const TRACKING_LIMIT = 1000;

export function trackingQueryFrom(q: Record<string, unknown>): TrackingQuery {
  const known = new Set<string>(trackingFilters);
  for (const k of Object.keys(q))
    if (!known.has(k)) throw new ApiError(400, 'unknown_parameter', `unknown search parameter ${k}`);
  const out: TrackingQuery = {};
  for (const k of [
    'sender',
    'recipient',
    'subject',
    'messageId',
    'ip',
    'sha256',
    'attachment',
    'urlDomain',
    'status',
    'rule',
  ] as const) {
    if (q[k] !== undefined) {
      if (typeof q[k] !== 'string' || !q[k])
        throw new ApiError(400, 'invalid_parameter', `${k} must be a non-empty string`);
      out[k] = q[k] as string;
    }
  }
  if (q.mid !== undefined) out.mid = intParam(q.mid, 'mid');
  if (q.before !== undefined) out.before = intParam(q.before, 'before');
  if (q.limit !== undefined) {
    out.limit = intParam(q.limit, 'limit');
    if (out.limit < 1 || out.limit > TRACKING_LIMIT)
      throw new ApiError(400, 'invalid_parameter', `limit must be 1–${TRACKING_LIMIT}`);
  }
  if (q.level !== undefined) {
    out.level = intParam(q.level, 'level');
    if (out.level < 0 || out.level > 5) throw new ApiError(400, 'invalid_parameter', 'level must be 0–5');
  }
  if (q.since !== undefined) out.since = timeParam(q.since, 'since');
  if (q.until !== undefined) out.until = timeParam(q.until, 'until');
  return out;
}

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
}

export async function buildApi(gw: Gateway, token: string, options: ApiOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
  if (options.onRoute) app.addHook('onRoute', options.onRoute);
  // JSON only: a text/plain body would otherwise reach the routes as a string
  app.removeContentTypeParser('text/plain');

  app.setErrorHandler((err: any, _req, reply) => {
    if (err instanceof ApiError) return sendError(reply, err.status, err.code, err.message);
    if (err.validation) return sendError(reply, 400, 'invalid_request', err.message);
    // Fastify's own errors (FST_ERR_*) are mapped to the documented codes: its names never leak.
    const fastify = FASTIFY_ERRORS[String(err.code)];
    if (fastify) return sendError(reply, fastify.status, fastify.code, fastify.message);
    if (err.statusCode && err.statusCode < 500)
      return sendError(reply, err.statusCode, 'bad_request', 'the request could not be read');
    gw.mailLog.warning(`admin API error: ${err.stack ?? err}`);
    return sendError(reply, 500, 'internal_error', 'internal error');
  });
  app.setNotFoundHandler((req, reply) =>
    sendError(reply, 404, 'not_found', `no route ${req.method} ${req.url.split('?')[0]}`),
  );

  const auth = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const h = req.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(h);
    if (!m || !tokenMatches(m[1], token)) {
      await sendError(
        reply.header('www-authenticate', 'Bearer'),
        401,
        'unauthorized',
        'a valid bearer token is required',
      );
    }
  };

  app.get('/health', async () => ({ status: 'ok', uptimeSeconds: Math.round((Date.now() - gw.startedAt) / 1000) }));

  // The OpenAPI document and its HTML rendering are public, like /health.
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  const openApi = openApiDocument(pkg.version);
  const docsPage = renderDocsPage(openApi);
  app.get('/api/v1/openapi.json', async () => openApi);
  app.get('/api/docs', async (_req, reply) =>
    reply
      .type('text/html; charset=utf-8')
      .header(
        'content-security-policy',
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'",
      )
      .header('x-content-type-options', 'nosniff')
      .send(docsPage),
  );

  app.get('/metrics', { onRequest: auth }, async (_req, reply) => {
    gw.metrics.queueDepth.set(gw.flow.active());
    gw.metrics.ruleVersion.set(gw.outbreak.bundle?.version ?? 0);
    gw.metrics.quarantineBytes.set(gw.quarantines.index.usage().bytes);
    reply.header('content-type', gw.metrics.registry.contentType);
    return gw.metrics.registry.metrics();
  });

  app.register(
    async (api) => {
      api.addHook('onRequest', auth);
      api.get('/status', async () => gw.status());
      api.get('/pipeline', async () => ({
        stages: gw.stages.map((s) => ({
          name: s.name,
          description: s.description,
          timeoutMs: s.timeoutMs,
          failureMode: s.failureMode,
          settings: s.settings,
        })),
        text: describePipeline(gw.stages),
      }));
      api.get('/tracking/messages', async (req) => {
        const q = trackingQueryFrom(req.query as Record<string, unknown>);
        return { messages: gw.tracker.search(q) };
      });
      api.get('/tracking/messages/:mid', async (req) => {
        const mid = intParam((req.params as { mid: string }).mid, 'mid');
        const rec = gw.tracker.show(mid);
        if (!rec) throw new ApiError(404, 'message_not_found', `no message with MID ${mid}`);
        return rec;
      });
      api.get('/queue', async () => ({ messages: gw.flow.queueList() }));
      api.post('/queue/:mid/retry', async (req) => {
        const mid = intParam((req.params as { mid: string }).mid, 'mid');
        const r = gw.flow.queueRetry(mid);
        if (!r) throw new ApiError(404, 'message_not_queued', `MID ${mid} is not in the queue`);
        return r;
      });
      api.delete('/queue/:mid', async (req) => {
        const mid = intParam((req.params as { mid: string }).mid, 'mid');
        const r = gw.flow.queueDelete(mid);
        if (!r) throw new ApiError(404, 'message_not_queued', `MID ${mid} is not in the queue`);
        return r;
      });
      registerOutbreakRoutes(api, gw);
      registerQuarantineRoutes(api, gw);
    },
    { prefix: '/api/v1' },
  );
  return app;
}
