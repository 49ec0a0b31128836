// The hub's API (DESIGN §11.1, §11.2, §11.6): registration tokens and devices for administrators (the
// hub's admin token), registration for gateways (a one-time token), and the calls of registered devices
// (a JWT signed with the device's secret): data intake, telemetry, deregistration. Schema-first like the
// gateway's admin API: every route's zod schemas validate it and generate /api/v1/openapi.json.
import { randomBytes, randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { parseDuration } from '../config/schema.ts';
import { registerDocs } from '../api/docs.ts';
import { ApiError, sendError } from '../api/errors.ts';
import fastifyCookie from '@fastify/cookie';
import { authenticator, principalOf, registerAuditHook, routePermissionCheck } from '../api/auth.ts';
import { registerUserRoutes } from '../api/user-routes.ts';
import { registerWebUi, WEB_DIR } from '../web/serve.ts';
import type { UserService } from '../users/service.ts';
import type { AuditLog } from '../users/audit.ts';
import { HUB_PERMISSIONS } from './permissions.ts';
import { serializerCompiler, validatorCompiler } from '../api/validation.ts';
import { DeviceTokenError, HUB_AUDIENCE, newDeviceSecret, verifyDeviceToken } from '../xdr/device-jwt.ts';
import type { MessageSummary } from '../xdr/summary.ts';
import { REGIONS, type HubConfig } from './config.ts';
import { OBSERVABLE_TYPES, normalizeObservable } from './observables.ts';
import type { HubStore } from './store.ts';
import { hubSource } from './relay-source.ts';
import { relayEnabled } from '../config/xdr-schema.ts';
import { registerRelayRoutes, relayNotFound } from '../api/relay-routes.ts';
import { Relay } from '../xdr/relay.ts';
import { DeviceActions } from './actions.ts';
import { registerActionRoutes } from './action-routes.ts';
import { registerInvestigateRoutes } from './investigate-routes.ts';
import { registerCasebookRoutes } from './casebook-routes.ts';
import { Casebooks } from './casebooks.ts';
import { registerBlockRoutes } from './block-routes.ts';
import { HubBlockList } from './blocklist.ts';
import { hubReport } from './reports.ts';
import { registerIntelligenceRoute, registerRuleRoutes } from './rule-routes.ts';
import { OutbreakIntelligence } from './intelligence.ts';
import { TicketDesk } from './tickets.ts';
import { registerTaxiiRoutes } from './taxii-routes.ts';
import { hubIdentityId } from './stix.ts';
import { Watchlist } from './watches.ts';
import { registerWatchRoutes } from './watch-routes.ts';
import type { HubRules } from './rules.ts';
import { hubResponder } from './responder.ts';
import { RetroRemediation } from './retro.ts';
import { DeviceChannel } from './device-channel.ts';
import { registerDeviceChannelRoutes } from './device-channel-routes.ts';
import { registerRetroRoutes } from './retro-routes.ts';
import {
  deviceSchema,
  hubResponses,
  identitySchema,
  registrationAnswer,
  summarySchema,
  telemetrySchema,
  tokenAnswer,
} from './schemas.ts';

export interface HubContext {
  config: HubConfig;
  store: HubStore;
  /** the outbreak rules the hub publishes (hub/rules.ts) */
  rules: HubRules;
  /** the hub's users (the same roles as a gateway's) and its audit log */
  users: UserService;
  audit: AuditLog;
  adminToken: string;
  startedAt: number;
  log: (line: string) => void;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** the device a device call comes from (verified JWT) */
    deviceId?: string;
  }
}

export async function buildHubApi(ctx: HubContext): Promise<FastifyInstance> {
  const { store, config } = ctx;
  /** device id → the name it registered with */
  const deviceNames = (): Map<string, string> => new Map(store.devices().map((d) => [d.id, d.name]));
  // forceCloseConnections: a stopping hub does not wait out keep-alive connections (72 s in Fastify);
  // a batch cut off is sent again by its gateway and stored once.
  const app = Fastify({ logger: false, bodyLimit: 32 * 1024 * 1024, forceCloseConnections: true });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler((err: any, _req, reply) => {
    if (err instanceof ApiError) return sendError(reply, err.status, err.code, err.message);
    if (err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY')
      return sendError(reply, 400, 'invalid_json', 'the body is not valid JSON');
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return sendError(reply, 413, 'body_too_large', 'body too large');
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
      return sendError(reply, 415, 'unsupported_media_type', 'send application/json');
    if (err.statusCode && err.statusCode < 500) return sendError(reply, err.statusCode, 'bad_request', 'bad request');
    ctx.log(`hub API error: ${err.stack ?? err}`);
    return sendError(reply, 500, 'internal_error', 'internal error');
  });
  const relayOn = relayEnabled(config.relay);
  app.setNotFoundHandler((req, reply) => {
    if (relayOn && relayNotFound(req, reply)) return reply;
    return sendError(reply, 404, 'not_found', `no route ${req.method} ${req.url.split('?')[0]}`);
  });

  // Administrators and analysts: the local admin token, a user's API token or a browser session, each
  // route's permission checked against the role (src/hub/permissions.ts); every change audited.
  await app.register(fastifyCookie);
  app.addHook('onRoute', routePermissionCheck(HUB_PERMISSIONS));
  const admin = authenticator(ctx.users, ctx.adminToken, HUB_PERMISSIONS);
  registerAuditHook(app, ctx.audit);
  const device = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    try {
      req.deviceId = await verifyDeviceToken(req.headers.authorization, HUB_AUDIENCE, (id) => store.secretOf(id));
      store.touch(req.deviceId);
    } catch (err) {
      const reason = err instanceof DeviceTokenError ? err.reason : 'invalid';
      await sendError(
        reply.header('www-authenticate', 'Bearer'),
        401,
        reason === 'unknown_device' ? 'device_not_registered' : 'unauthorized',
        (err as Error).message,
      );
    }
  };

  await registerDocs(app, {
    title: 'Breakwater hub API',
    description:
      'The threat-response hub. People: a session (sign in at `POST /api/v1/session`, the web UI at `/ui/`) or `Authorization: Bearer <token>` (a user\'s API token, or the hub\'s `dataDir/admin.token`); each operation lists the roles that may call it. Gateways: `POST /api/v1/register` with a one-time registration token, then a short-lived JWT signed with the device secret it received. Errors are `{"error": {"code", "message"}}`.',
    tags: [
      { name: 'System', description: 'Health' },
      { name: 'Documentation', description: 'This document' },
      { name: 'Devices', description: 'Registration tokens and registered gateways (administrators)' },
      { name: 'Search', description: 'Messages across every gateway by observable; investigations' },
      { name: 'Casebooks', description: 'Saved investigations with notes; STIX 2.1 export' },
      {
        name: 'TAXII 2.1',
        description:
          'The published outbreak rules as a read-only TAXII 2.1 collection of STIX indicators (HTTP Basic: a personal API token as the password)',
      },
      { name: 'Response', description: 'Response actions sent to gateways and the block list' },
      {
        name: 'Outbreak rules',
        description: 'Rules the hub drafts, publishes (signed, pushed to every online gateway) and retires',
      },
      { name: 'Device calls', description: 'What registered gateways call (device JWT)' },
      {
        name: 'Users',
        description:
          'Sign-in sessions (HttpOnly cookie and a CSRF token), users and roles (admin, operator, analyst, helpdesk), personal API tokens and the audit log',
      },
    ],
    securitySchemes: {
      relayJwt: {
        type: 'http',
        scheme: 'bearer',
        bearerFormat: 'JWT',
        description: 'XDR relay routes only: a JWT signed HS256 with `relay.jwtSecret`, or by a key of `relay.jwksUrl`',
      },
      deviceJwt: {
        type: 'http',
        scheme: 'bearer',
        bearerFormat: 'JWT',
        description:
          'HS256 JWT signed with the device secret: iss = sub = device id, aud = breakwater-hub, exp ≤ 5 min',
      },
    },
  });
  const api = app.withTypeProvider<ZodTypeProvider>();
  // the same web UI as a gateway's: it asks /api/v1/session which product answered and shows the hub's pages
  const ui = await registerWebUi(app);
  if (!ui.built) ctx.log(`web UI not built (${WEB_DIR} has no index.html): run npm run build:web`);
  await app.register(
    async (scope) => {
      scope.addHook('onRequest', admin);
      registerUserRoutes(scope.withTypeProvider<ZodTypeProvider>(), ctx, {
        secureCookie: false,
        principal: (req) => principalOf(req, ctx.users, ctx.adminToken),
        product: 'hub',
      });
    },
    { prefix: '/api/v1' },
  );

  // Response actions wait here until the gateway they are for polls (hub/actions.ts).
  // The push side of the device channel: gateways hold an event stream open and are told at once when
  // something waits for them (hub/device-channel.ts); their polls are the fallback.
  const channel = new DeviceChannel();
  app.addHook('preClose', async () => channel.close());
  const actions = new DeviceActions(store.db, { onPending: (id) => channel.send(id, 'actions', {}) });
  // open polls answer at once when the hub stops (the server waits for requests in flight)
  app.addHook('preClose', async () => actions.close());
  // Outbreak intelligence: bursts across gateways become rule drafts (hub/intelligence.ts), looked at a
  // moment after each intake (one evaluation for the batches of that moment).
  const intelligence = new OutbreakIntelligence({
    store,
    rules: ctx.rules,
    settings: () => config.intelligence,
    log: ctx.log,
  });
  let intelTimer: NodeJS.Timeout | null = null;
  const scheduleIntelligence = (): void => {
    intelTimer ??= setTimeout(() => {
      intelTimer = null;
      try {
        intelligence.evaluate();
      } catch (err) {
        ctx.log(`outbreak intelligence: ${(err as Error).message}`);
      }
    }, 1000);
    intelTimer.unref();
  };
  const pruneTimer = setInterval(() => intelligence.prune(), 3_600_000);
  pruneTimer.unref();
  app.addHook('onClose', async () => {
    if (intelTimer) clearTimeout(intelTimer);
    clearInterval(pruneTimer);
  });
  registerIntelligenceRoute(app, { intelligence, auth: admin });
  // The published rules as a TAXII 2.1 collection of STIX indicators (hub/taxii.ts).
  registerTaxiiRoutes(app, {
    rules: ctx.rules,
    auth: admin,
    hubIdentity: { id: hubIdentityId(ctx.rules.publicKey), name: 'Breakwater hub', created: new Date(0).toISOString() },
  });
  // Tickets through the webhook, and the watchlist (which can open tickets).
  const tickets = new TicketDesk({
    store,
    settings: () => ({
      url: config.tickets.url,
      headers: config.tickets.headers,
      template: config.tickets.template,
      timeoutMs: parseDuration(config.tickets.timeout),
      attempts: config.tickets.attempts,
      backoffMs: parseDuration(config.tickets.backoff),
    }),
    log: ctx.log,
  });
  tickets.start();
  app.addHook('onClose', async () => tickets.stop());
  const watches = new Watchlist({ store, tickets, ticketsNeedApproval: () => config.approvals.ticket });
  /** A gateway's summaries (streamed, or a live answer) into the store, counted and watched once each. */
  const ingest = (deviceId: string, batchId: string, summaries: MessageSummary[]) => {
    const r = store.intake(deviceId, batchId, summaries, {
      onNew: (s) => watches.observe(deviceId, s),
      onJudged: (s) => intelligence.observe(deviceId, s),
    });
    watches.flush((id) => deviceNames().get(id) ?? id);
    scheduleIntelligence();
    return r;
  };
  registerWatchRoutes(app, {
    watches,
    tickets,
    auth: admin,
    who: (req) => req.principal?.user ?? 'unknown',
    approvals: () => ({ watch: config.approvals.watch, ticket: config.approvals.ticket }),
  });
  // Outbreak rules the hub publishes: open rule polls answer at once when the hub stops.
  app.addHook('preClose', async () => ctx.rules.close());
  registerRuleRoutes(app, { rules: ctx.rules, auth: admin, device, who: (req) => req.principal?.user ?? 'unknown' });
  // The block list: senders and domains blocked on every gateway (hub/blocklist.ts).
  const blockList = new HubBlockList(store, {
    requireApproval: () => config.approvals.block,
    onChange: () => channel.broadcast('blocklist', { version: blockList.version() }),
  });
  // Response actions: people (and the relay's /respond/trigger) ask; gateways carry them out.
  const deviceName = (id: string) => {
    const name = deviceNames().get(id);
    return name ? `${name} (${id})` : id;
  };
  const responder = hubResponder(
    store,
    actions,
    parseDuration(config.actions.timeout),
    deviceName,
    blockList,
    () => config.approvals.remediate,
  );
  registerActionRoutes(app, { actions, admin, device, responder, who: (req) => req.principal?.user ?? 'unknown' });
  // Retro-remediation: each publication's rules against mail already delivered (hub/retro.ts), a moment
  // after the publication (the gateways get the bundle first).
  const retro = new RetroRemediation({
    store,
    actions,
    settings: () => ({
      enabled: config.retroRemediation.enabled,
      windowMs: parseDuration(config.retroRemediation.window),
      action: config.retroRemediation.action,
      minLevel: config.retroRemediation.minLevel,
      maxMessages: config.retroRemediation.maxMessages,
    }),
    log: ctx.log,
  });
  const stopRetro = ctx.rules.onPublished((published) => {
    channel.broadcast('rules', { version: ctx.rules.latest()?.version ?? 0 });
    setImmediate(() => {
      try {
        retro.onPublished(published);
      } catch (err) {
        ctx.log(`retro-remediation: ${(err as Error).message}`);
      }
    });
  });
  app.addHook('onClose', async () => stopRetro());
  registerRetroRoutes(app, { retro, auth: admin, who: (req) => req.principal?.user ?? 'unknown' });
  registerBlockRoutes(app, {
    list: blockList,
    auth: admin,
    device,
    who: (req) => req.principal?.user ?? 'unknown',
  });
  registerCasebookRoutes(app, {
    casebooks: new Casebooks(store),
    store,
    auth: admin,
    who: (req) => req.principal?.user ?? 'unknown',
    names: deviceNames,
    hub: { name: 'Breakwater hub', id: ctx.rules.publicKey },
  });
  registerInvestigateRoutes(app, {
    store,
    auth: admin,
    names: deviceNames,
    channel,
    liveTimeoutMs: () => parseDuration(config.investigate.liveTimeout),
  });
  registerDeviceChannelRoutes(app, {
    channel,
    device,
    ingest,
    hello: (id) => ({
      rules: ctx.rules.latest()?.version ?? 0,
      blocklist: blockList.version(),
      actions: actions.pendingCount(id),
    }),
  });

  // The XDR relay module across every gateway's messages (same protocol and shapes as a gateway's).
  if (relayOn) {
    const relay = new Relay({
      source: hubSource(store),
      entityLimit: config.relay.entityLimit,
      name: 'Breakwater hub',
      messageUri: (base, s) => `${base}/api/v1/messages?type=cisco_mid&value=${s.mid}`,
      // the hub's web UI: its search across every gateway
      referUri: (base, o) =>
        `${base}/ui/#/search?${new URLSearchParams({ type: o.type === 'ipv6' ? 'ip' : o.type, value: o.value })}`,
    });
    relay.responder = responder;
    await registerRelayRoutes(app, ctx.log, relay, config.relay);
  }

  api.get(
    '/health',
    {
      schema: {
        operationId: 'hubHealth',
        tags: ['System'],
        summary: 'Liveness',
        security: [],
        response: hubResponses({ ok: z.object({ status: z.literal('ok'), uptimeSeconds: z.int() }), public: true }),
      },
    },
    async () => ({ status: 'ok' as const, uptimeSeconds: Math.round((Date.now() - ctx.startedAt) / 1000) }),
  );

  api.post(
    '/api/v1/tokens',
    {
      onRequest: admin,
      schema: {
        operationId: 'createRegistrationToken',
        tags: ['Devices'],
        summary: 'A registration token: 32 hex characters, one use, valid for tokenLifetime (1 hour)',
        body: z.object({ region: z.enum(REGIONS) }).strict(),
        response: hubResponses({ ok: tokenAnswer, body: true, 400: ['invalid_parameter', 'region_not_served'] }),
      },
    },
    async (req) => {
      if (!config.regions.includes(req.body.region))
        throw new ApiError(400, 'region_not_served', `this hub serves ${config.regions.join(', ')}`);
      const token = randomBytes(16).toString('hex');
      const expiresAt = Date.now() + parseDuration(config.tokenLifetime);
      store.addToken(token, req.body.region, expiresAt);
      ctx.log(`registration token created for region ${req.body.region}`);
      return { token, region: req.body.region, expiresAt: new Date(expiresAt).toISOString() };
    },
  );

  api.get(
    '/api/v1/reports',
    {
      onRequest: admin,
      schema: {
        operationId: 'getHubReport',
        tags: ['Search'],
        summary: 'Mail flow and Outbreak Filters across every gateway, per gateway and in total, for a period',
        querystring: z
          .object({
            since: z.string().max(40).optional().describe('ISO 8601; default: a week before until'),
            until: z.string().max(40).optional().describe('ISO 8601; default: now'),
            top: z.coerce.number().int().min(1).max(1000).default(20),
          })
          .strict(),
        response: hubResponses({
          ok: z.object({
            since: z.string(),
            until: z.string(),
            bucketSeconds: z.int(),
            total: z.object({ messages: z.int(), statuses: z.record(z.string(), z.int()), threats: z.int() }),
            gateways: z.array(
              z.object({
                deviceId: z.string(),
                name: z.string(),
                messages: z.int(),
                statuses: z.record(z.string(), z.int()),
                threats: z.int().describe('messages at threat level 3 or more'),
              }),
            ),
            buckets: z.array(z.object({ at: z.string(), statuses: z.record(z.string(), z.int()) })),
            threatLevels: z.array(z.object({ level: z.int(), messages: z.int() })),
            topRules: z.array(z.object({ rule: z.string(), messages: z.int(), gateways: z.int() })),
            topThreatSenders: z.array(z.object({ sender: z.string(), messages: z.int(), gateways: z.int() })),
          }),
          400: ['invalid_parameter', 'unknown_parameter'],
        }),
      },
    },
    async (req) => {
      const until = req.query.until ? Date.parse(req.query.until) : Date.now();
      const since = req.query.since ? Date.parse(req.query.since) : until - 7 * 86_400_000;
      if (!Number.isFinite(until) || !Number.isFinite(since) || since >= until)
        throw new ApiError(400, 'invalid_parameter', 'since and until are ISO 8601 times, since before until');
      return hubReport(store, {
        since,
        until,
        top: req.query.top,
        names: deviceNames(),
      });
    },
  );

  api.get(
    '/api/v1/tokens',
    {
      onRequest: admin,
      schema: {
        operationId: 'listRegistrationTokens',
        tags: ['Devices'],
        summary:
          'Registration tokens, newest first: region, validity, and the gateway that used each (never the token)',
        response: hubResponses({
          ok: z.object({
            tokens: z.array(
              z.object({
                id: z.string().describe('the first characters of the token’s hash'),
                region: z.string(),
                createdAt: z.string(),
                expiresAt: z.string(),
                usedAt: z.string().nullable(),
                deviceId: z.string().nullable(),
                status: z.enum(['unused', 'used', 'expired']),
              }),
            ),
          }),
        }),
      },
    },
    async () => {
      const now = Date.now();
      const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
      return {
        tokens: store.tokens().map((t) => ({
          id: t.id,
          region: t.region,
          createdAt: iso(t.created_at)!,
          expiresAt: iso(t.expires_at)!,
          usedAt: iso(t.used_at),
          deviceId: t.device_id,
          status: t.used_at ? ('used' as const) : t.expires_at < now ? ('expired' as const) : ('unused' as const),
        })),
      };
    },
  );

  api.get(
    '/api/v1/devices',
    {
      onRequest: admin,
      schema: {
        operationId: 'listDevices',
        tags: ['Devices'],
        summary: 'Registered (and removed) gateways',
        response: hubResponses({ ok: z.object({ devices: z.array(deviceSchema) }) }),
      },
    },
    async () => ({
      devices: store.devices().map((d) => ({
        id: d.id,
        name: d.name,
        uuid: d.uuid,
        serial: d.serial,
        model: d.model,
        version: d.version,
        hostname: d.hostname,
        region: d.region,
        status: d.status,
        registeredAt: new Date(d.registered_at).toISOString(),
        lastContact: d.last_contact ? new Date(d.last_contact).toISOString() : null,
        messages: store.messageCount(d.id),
        telemetry: d.telemetry ? (JSON.parse(d.telemetry) as Record<string, unknown>) : null,
        telemetryAt: d.telemetry_at ? new Date(d.telemetry_at).toISOString() : null,
      })),
    }),
  );

  api.delete(
    '/api/v1/devices/:id',
    {
      onRequest: admin,
      schema: {
        operationId: 'removeDevice',
        tags: ['Devices'],
        summary: 'Deregisters a gateway from the hub side: its next call is refused',
        params: z.object({ id: z.string().min(1).max(100) }),
        response: hubResponses({
          ok: z.object({ id: z.string(), status: z.literal('removed') }),
          404: ['device_not_found'],
        }),
      },
    },
    async (req) => {
      if (!store.removeDevice(req.params.id))
        throw new ApiError(404, 'device_not_found', 'no registered device with that id');
      // a stream it holds would go on carrying hints and live queries until it expired
      channel.disconnect(req.params.id);
      ctx.log(`device ${req.params.id} removed by an administrator`);
      return { id: req.params.id, status: 'removed' as const };
    },
  );

  api.get(
    '/api/v1/messages',
    {
      onRequest: admin,
      schema: {
        operationId: 'searchMessages',
        tags: ['Search'],
        summary: 'Messages in which an observable was seen, newest first, across every gateway',
        querystring: z
          .object({
            type: z.enum(OBSERVABLE_TYPES),
            value: z.string().min(1).max(2048),
            limit: z.coerce.number().int().min(1).max(1000).default(100),
          })
          .strict(),
        response: hubResponses({
          ok: z.object({
            count: z.int(),
            messages: z.array(z.object({ deviceId: z.string(), summary: summarySchema })),
          }),
          400: ['invalid_parameter', 'unknown_parameter'],
        }),
      },
    },
    async (req) => {
      const { type, value, limit } = req.query;
      const found = store.search(type, normalizeObservable(type, value), limit);
      return { count: found.length, messages: found };
    },
  );

  // ---- what gateways call ------------------------------------------------------------------------

  api.post(
    '/api/v1/register',
    {
      schema: {
        operationId: 'registerDevice',
        tags: ['Device calls'],
        summary: 'A gateway registers with a one-time token and receives its device id and secret',
        security: [],
        body: z.object({ token: z.string().max(200), region: z.string().max(100), identity: identitySchema }).strict(),
        response: hubResponses({
          ok: registrationAnswer,
          public: true,
          body: true,
          400: ['invalid_parameter', 'invalid_token', 'expired_token', 'token_used', 'wrong_region'],
        }),
      },
    },
    async (req) => {
      const { token, identity } = req.body;
      let region = req.body.region;
      if (!/^[0-9a-f]{32}$/i.test(token))
        throw new ApiError(400, 'invalid_token', 'a token is 32 hexadecimal characters');
      const t = store.token(token);
      if (!t) throw new ApiError(400, 'invalid_token', 'this hub did not issue that token');
      if (t.used_at) throw new ApiError(400, 'token_used', 'the token was already used: create a new one');
      if (t.expires_at < Date.now())
        throw new ApiError(400, 'expired_token', 'the token has expired: create a new one');
      // A gateway configured with a custom hub URL names no region: it takes the token's.
      if ((REGIONS as readonly string[]).includes(region) && t.region !== region)
        throw new ApiError(400, 'wrong_region', `the token is for region ${t.region}, the gateway asked for ${region}`);
      region = t.region;
      const id = randomUUID();
      const secret = newDeviceSecret();
      try {
        store.registerDevice(
          token,
          {
            id,
            name: identity.name ?? identity.hostname,
            uuid: identity.uuid,
            serial: identity.serial ?? null,
            model: identity.model ?? null,
            version: identity.version ?? null,
            hostname: identity.hostname,
            region,
            registered_at: Date.now(),
          },
          secret,
        );
      } catch {
        throw new ApiError(400, 'token_used', 'the token was already used: create a new one');
      }
      ctx.log(`device ${id} (${identity.hostname}) registered in region ${region}`);
      return { deviceId: id, secret, region, rulesPublicKey: ctx.rules.publicKey };
    },
  );

  api.post(
    '/api/v1/device/deregister',
    {
      onRequest: device,
      schema: {
        operationId: 'deregisterSelf',
        tags: ['Device calls'],
        summary: 'A gateway deregisters itself',
        security: [{ deviceJwt: [] }],
        response: hubResponses({
          device: true,
          ok: z.object({ id: z.string(), status: z.literal('removed') }),
        }),
      },
    },
    async (req) => {
      store.removeDevice(req.deviceId!);
      channel.disconnect(req.deviceId!);
      ctx.log(`device ${req.deviceId} deregistered itself`);
      return { id: req.deviceId!, status: 'removed' as const };
    },
  );

  api.post(
    '/api/v1/device/batches',
    {
      onRequest: device,
      schema: {
        operationId: 'intakeBatch',
        tags: ['Device calls'],
        summary: 'Message summaries from a gateway; a batch id seen before is acknowledged and not stored again',
        security: [{ deviceJwt: [] }],
        body: z
          .object({
            batchId: z.string().min(1).max(200),
            summaries: z.array(summarySchema).max(config.intake.maxBatch),
          })
          .strict(),
        response: hubResponses({
          device: true,
          ok: z.object({ batchId: z.string(), duplicate: z.boolean(), stored: z.int() }),
          body: true,
          400: ['invalid_parameter', 'unknown_parameter', 'invalid_body'],
        }),
      },
    },
    async (req) => ({
      batchId: req.body.batchId,
      ...ingest(req.deviceId!, req.body.batchId, req.body.summaries as MessageSummary[]),
    }),
  );

  api.post(
    '/api/v1/device/telemetry',
    {
      onRequest: device,
      schema: {
        operationId: 'intakeTelemetry',
        tags: ['Device calls'],
        summary: 'Usage telemetry from a gateway that opted in (never message content)',
        security: [{ deviceJwt: [] }],
        body: telemetrySchema,
        response: hubResponses({
          device: true,
          ok: z.object({ stored: z.literal(true) }),
          body: true,
          400: ['invalid_parameter'],
        }),
      },
    },
    async (req) => {
      store.setTelemetry(req.deviceId!, req.body);
      return { stored: true as const };
    },
  );

  return app;
}
