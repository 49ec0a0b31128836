// The end-user quarantine's routes (src/enduser/): recipients sign in with a signed link or their
// mailbox password and act on their own held messages. Their own session cookie (bw_enduser, HttpOnly,
// SameSite=Strict) and CSRF token, outside the administrators' roles (src/api/permissions.ts lists these
// operations apart). Every sign-in and action goes to the audit log as `enduser:<address>`.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Gateway } from '../gateway/gateway.ts';
import { ApiError, sendError } from './errors.ts';
import { intInput, quarantineNamePattern, responses } from './schemas/common.ts';
import { heldContent, messageContent } from './quarantine-routes.ts';
import { noBody } from './schemas/outbreak.ts';
import type { Api } from './validation.ts';
import { endUserAddress, type EndUserSession } from '../enduser/service.ts';
import { imapLogin } from '../enduser/imap-login.ts';
import { LoginThrottle } from '../users/throttle.ts';

export const END_USER_COOKIE = 'bw_enduser';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const security = [{ endUserSession: [] }];

declare module 'fastify' {
  interface FastifyRequest {
    endUser?: EndUserSession;
  }
}

const endUserSession = z
  .object({
    enabled: z.boolean().describe('false: the end-user quarantine is off (endUserQuarantine.enabled)'),
    signedIn: z.boolean(),
    address: z.string().nullable(),
    via: z.enum(['link', 'imap']).nullable(),
    csrfToken: z.string().nullable().describe('send it in x-csrf-token with every state-changing request'),
    expiresAt: z.string().nullable(),
    methods: z
      .object({ imap: z.boolean(), requestLink: z.boolean() })
      .describe('how a recipient without a link can sign in: mailbox password, or a link mailed on request'),
  })
  .meta({ id: 'EndUserSession' });

const endUserMessage = z
  .object({
    mid: z.int(),
    quarantine: z.string(),
    sender: z.string(),
    subject: z.string().nullable(),
    receivedAt: z.string(),
    heldUntil: z.string().nullable(),
    size: z.int(),
    reason: z.string(),
    canRelease: z.boolean().describe('false: the administrators let recipients see and delete, not release'),
  })
  .meta({ id: 'EndUserMessage' });

const item = z.object({
  quarantine: z.string().regex(quarantineNamePattern).describe('the quarantine it is held in'),
  mid: intInput('mid').describe('message ID (MID)'),
});
const actionBody = z.object({ messages: z.array(item).min(1).max(500) }).strict();
const actionResult = z.object({
  results: z.array(
    z.object({
      mid: z.int(),
      quarantine: z.string(),
      status: z.enum(['released', 'deleted', 'not_found', 'not_allowed', 'busy']),
      releasedAs: z.int().nullable().describe('the MID it was sent on as (released)'),
    }),
  ),
});
const sender = z
  .string()
  .trim()
  .toLowerCase()
  .regex(/^([^\s@<>"]{1,64})?@[a-z0-9.-]{1,190}$/, 'an address (a@example.com) or a domain (@example.com)')
  .describe('an address, or `@domain` for every sender of that domain');

function iso(ms: number): string | null {
  return Number.isFinite(ms) ? new Date(ms).toISOString() : null;
}

export function registerEndUserRoutes(api: Api, gw: Gateway, o: { secureCookie: boolean }): void {
  const eu = gw.endUsers;
  const throttle = new LoginThrottle();
  // links on request: each mails someone, so one client may not ask for many (whatever the addresses)
  const linkRequests = new LoginThrottle({ windowMs: 10 * 60_000, max: 10 });
  const cookie = (value: string, maxAgeSeconds: number): string =>
    `${END_USER_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${o.secureCookie ? '; Secure' : ''}`;
  const sessionOf = (req: FastifyRequest): EndUserSession | null => {
    const sid = (req as FastifyRequest & { cookies?: Record<string, string | undefined> }).cookies?.[END_USER_COOKIE];
    return sid ? eu.session(sid) : null;
  };
  const audit = (req: FastifyRequest, address: string, action: string, status: number, detail: unknown = null) =>
    gw.audit.record({
      user: `enduser:${address}`.slice(0, 200),
      role: 'enduser',
      action,
      target: req.url.split('?')[0],
      detail,
      ip: req.ip,
      status,
    });
  const signedIn = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const s = eu.enabled ? sessionOf(req) : null;
    if (!s) {
      await sendError(reply, 401, 'unauthorized', 'open the link in your digest, or sign in');
      return;
    }
    if (!SAFE_METHODS.has(req.method)) {
      const token = req.headers['x-csrf-token'];
      if (!eu.csrfMatches(s, Array.isArray(token) ? token[0] : token)) {
        await sendError(reply, 403, 'csrf_failed', "send the session's CSRF token in x-csrf-token");
        return;
      }
    }
    req.endUser = s;
  };
  const describe = (s: EndUserSession | null) => ({
    enabled: eu.enabled,
    signedIn: !!s,
    address: s?.address ?? null,
    via: s?.via ?? null,
    csrfToken: s?.csrfToken ?? null,
    expiresAt: s?.expiresAt ?? null,
    methods: {
      imap: eu.enabled && !!gw.config.endUserQuarantine.imap,
      requestLink: eu.enabled && gw.config.endUserQuarantine.requestLink,
    },
  });
  const enabled = () => {
    if (!eu.enabled) throw new ApiError(404, 'enduser_disabled', 'the end-user quarantine is off');
  };

  api.get(
    '/enduser/session',
    {
      schema: {
        operationId: 'getEndUserSession',
        tags: ['End-user quarantine'],
        summary: 'Whether a recipient is signed in, and how one can sign in',
        security: [],
        response: responses({ ok: endUserSession, public: true }),
      },
    },
    async (req, reply) => {
      reply.header('cache-control', 'no-store');
      return describe(eu.enabled ? sessionOf(req) : null);
    },
  );

  api.post(
    '/enduser/session',
    {
      schema: {
        operationId: 'endUserLogin',
        tags: ['End-user quarantine'],
        summary: 'A recipient signs in: with the token of a signed link, or with their mailbox address and password',
        description:
          'The token is the `t` of a digest link (`/ui/#/my-quarantine?t=…`). A password is checked by an IMAP LOGIN against `endUserQuarantine.imap` and never kept. Many failures from one address are refused for a while (429).',
        security: [],
        body: z.union([
          z.object({ token: z.string().min(1).max(2000) }).strict(),
          z.object({ user: z.string().min(1).max(254), password: z.string().min(1).max(1024) }).strict(),
        ]),
        response: responses({
          ok: endUserSession,
          public: true,
          body: true,
          400: ['invalid_body', 'invalid_parameter', 'invalid_link', 'expired_link'],
          401: ['invalid_credentials'],
          404: ['enduser_disabled'],
          429: ['too_many_attempts'],
          502: ['login_unavailable'],
        }),
      },
    },
    async (req, reply) => {
      enabled();
      const wait = throttle.blocked(req.ip);
      if (wait) {
        reply.header('retry-after', String(Math.ceil(wait / 1000)));
        throw new ApiError(
          429,
          'too_many_attempts',
          `too many failed sign-ins: try again in ${Math.ceil(wait / 60_000)} minute(s)`,
        );
      }
      let address: string;
      let via: 'link' | 'imap';
      if ('token' in req.body) {
        const v = eu.verifyLink(req.body.token);
        if ('error' in v) {
          throttle.failed(req.ip);
          audit(req, '(link)', 'endUserLoginFailed', 400, { reason: v.error });
          throw new ApiError(
            400,
            v.error,
            v.error === 'expired_link' ? 'the link has expired: ask for a new one' : 'the link is not valid',
          );
        }
        address = v.address;
        via = 'link';
      } else {
        if (!gw.config.endUserQuarantine.imap)
          throw new ApiError(502, 'login_unavailable', 'sign-in with a password is not set up: use your digest link');
        const r = await imapLogin(gw.config, req.body.user, req.body.password);
        const who = endUserAddress(r.ok ? r.address : req.body.user) ?? '(invalid)';
        if (!r.ok) {
          if (r.reason === 'unavailable')
            throw new ApiError(502, 'login_unavailable', 'the mail server could not be asked: try again later');
          throttle.failed(req.ip);
          audit(req, who, 'endUserLoginFailed', 401, { reason: 'invalid_credentials' });
          throw new ApiError(401, 'invalid_credentials', 'wrong address or password');
        }
        if (who === '(invalid)') throw new ApiError(400, 'invalid_parameter', 'sign in with your e-mail address');
        address = who;
        via = 'imap';
      }
      throttle.succeeded(req.ip);
      const { sessionId, session } = await eu.startSession(address, via);
      audit(req, address, 'endUserLogin', 200, { via });
      reply.header('set-cookie', cookie(sessionId, Math.round((Date.parse(session.expiresAt) - Date.now()) / 1000)));
      reply.header('cache-control', 'no-store');
      return describe(session);
    },
  );

  api.delete(
    '/enduser/session',
    {
      onRequest: signedIn,
      schema: {
        operationId: 'endUserLogout',
        tags: ['End-user quarantine'],
        summary: 'Sign out (ends the session, clears the cookie)',
        security,
        response: responses({ ok: endUserSession }),
      },
    },
    async (req, reply) => {
      const sid = (req as FastifyRequest & { cookies: Record<string, string | undefined> }).cookies[END_USER_COOKIE]!;
      await eu.endSession(sid);
      audit(req, req.endUser!.address, 'endUserLogout', 200);
      reply.header('set-cookie', cookie('', 0));
      return describe(null);
    },
  );

  api.post(
    '/enduser/link',
    {
      schema: {
        operationId: 'requestEndUserLink',
        tags: ['End-user quarantine'],
        summary: 'Mail a sign-in link to an address (only there, only if messages are held for it)',
        description:
          'Answers the same whatever the address, so it tells nobody whose mail is held; at most one link per address every 5 minutes, and 10 requests per client address every 10 minutes (429).',
        security: [],
        body: z.object({ address: z.string().min(3).max(254) }).strict(),
        response: responses({
          ok: z.object({ accepted: z.literal(true), message: z.string() }),
          public: true,
          body: true,
          400: ['invalid_body', 'invalid_parameter'],
          404: ['enduser_disabled'],
          429: ['too_many_attempts'],
        }),
      },
    },
    async (req, reply) => {
      enabled();
      if (!gw.config.endUserQuarantine.requestLink)
        throw new ApiError(404, 'enduser_disabled', 'links on request are off: use your digest link');
      const wait = linkRequests.blocked(req.ip);
      if (wait) {
        reply.header('retry-after', String(Math.ceil(wait / 1000)));
        throw new ApiError(
          429,
          'too_many_attempts',
          `too many link requests: try again in ${Math.ceil(wait / 60_000)} minute(s)`,
        );
      }
      linkRequests.failed(req.ip);
      const address = endUserAddress(req.body.address);
      if (!address) throw new ApiError(400, 'invalid_parameter', 'address must be an e-mail address');
      const sent = await gw.digests.sendLink(address);
      audit(req, address, 'requestEndUserLink', 200, { sent });
      return {
        accepted: true as const,
        message: 'If messages are held for this address, a link to them is on its way to it.',
      };
    },
  );

  api.get(
    '/enduser/messages',
    {
      onRequest: signedIn,
      schema: {
        operationId: 'listEndUserMessages',
        tags: ['End-user quarantine'],
        summary: 'The signed-in recipient’s held messages, newest first',
        security,
        response: responses({
          ok: z.object({ address: z.string(), messages: z.array(endUserMessage), allowList: z.array(z.string()) }),
        }),
      },
    },
    async (req) => {
      const address = req.endUser!.address;
      const list = await eu.messages(address);
      return {
        address,
        messages: list.reverse().map((m) => ({
          mid: m.mid,
          quarantine: m.quarantine,
          sender: m.sender,
          subject: m.subject,
          receivedAt: new Date(m.receivedAt).toISOString(),
          heldUntil: iso(m.exitAt),
          size: m.size,
          reason: m.reason,
          canRelease: m.canRelease,
        })),
        allowList: eu.allowList(address),
      };
    },
  );

  api.get(
    '/enduser/messages/:quarantine/:mid/content',
    {
      onRequest: signedIn,
      schema: {
        operationId: 'getEndUserMessageContent',
        tags: ['End-user quarantine'],
        summary: 'One of the recipient’s held messages: headers, text, HTML (shown sanitised by the page)',
        security,
        params: item,
        response: responses({ ok: messageContent, 400: ['invalid_parameter'], 404: ['message_not_quarantined'] }),
      },
    },
    async (req) => {
      const e = await eu.held(req.endUser!.address, req.params.quarantine, req.params.mid);
      if (!e) throw new ApiError(404, 'message_not_quarantined', 'no such message is held for you');
      return heldContent(gw, e);
    },
  );

  const act = (op: 'release' | 'delete') =>
    api.post(
      `/enduser/messages/${op}`,
      {
        onRequest: signedIn,
        schema: {
          operationId: op === 'release' ? 'releaseEndUserMessages' : 'deleteEndUserMessages',
          tags: ['End-user quarantine'],
          summary:
            op === 'release'
              ? 'Release the recipient’s own copies (rescanned, then delivered to them alone)'
              : 'Delete the recipient’s own copies (other recipients’ stay held)',
          security,
          body: actionBody,
          response: responses({ ok: actionResult, body: true, 400: ['invalid_body', 'invalid_parameter'] }),
        },
      },
      async (req) => {
        const address = req.endUser!.address;
        const results = [];
        for (const m of req.body.messages) {
          if (op === 'release') {
            const r = await eu.release(address, m.quarantine, m.mid);
            const ok = typeof r === 'object';
            results.push({ ...m, status: ok ? ('released' as const) : r, releasedAs: ok ? r.mid : null });
          } else {
            const r = await eu.delete(address, m.quarantine, m.mid);
            results.push({ ...m, status: r, releasedAs: null });
          }
        }
        audit(req, address, op === 'release' ? 'releaseEndUserMessages' : 'deleteEndUserMessages', 200, { results });
        return { results };
      },
    );
  act('release');
  act('delete');

  api.post(
    '/enduser/senders',
    {
      onRequest: signedIn,
      schema: {
        operationId: 'allowEndUserSender',
        tags: ['End-user quarantine'],
        summary: 'Allow-list a sender: their mail to this recipient is no longer held in end-user quarantines',
        description:
          'Never skips the virus or Outbreak quarantine. A message to several recipients skips a quarantine only when every one of them allows the sender.',
        security,
        body: z.object({ sender }).strict(),
        response: responses({
          ok: z.object({ allowList: z.array(z.string()) }),
          body: true,
          400: ['invalid_body', 'invalid_parameter'],
        }),
      },
    },
    async (req) => {
      const address = req.endUser!.address;
      await eu.allowSender(address, req.body.sender);
      audit(req, address, 'allowEndUserSender', 200, { sender: req.body.sender });
      return { allowList: eu.allowList(address) };
    },
  );

  api.delete(
    '/enduser/senders/:sender',
    {
      onRequest: signedIn,
      schema: {
        operationId: 'removeEndUserSender',
        tags: ['End-user quarantine'],
        summary: 'Take a sender off the recipient’s allow list',
        security,
        params: z.object({ sender }),
        response: responses({
          ok: z.object({ allowList: z.array(z.string()) }),
          400: ['invalid_parameter'],
          404: ['sender_not_found'],
        }),
      },
    },
    async (req) => {
      const address = req.endUser!.address;
      const had = await eu.removeSender(address, req.params.sender);
      audit(req, address, 'removeEndUserSender', had ? 200 : 404, { sender: req.params.sender });
      if (!had) throw new ApiError(404, 'sender_not_found', 'that sender is not on your allow list');
      return { allowList: eu.allowList(address) };
    },
  );

  // administrators: digests on demand (the schedule is endUserQuarantine.digest.every)
  api.post(
    '/enduser/digests',
    {
      schema: {
        operationId: 'sendEndUserDigests',
        tags: ['End-user quarantine'],
        summary: 'Send the end-user digests now (to recipients with messages held since their last one)',
        body: noBody,
        response: responses({
          ok: z.object({ digests: z.int(), messages: z.int() }),
          404: ['enduser_disabled'],
        }),
      },
    },
    async () => {
      enabled();
      return gw.digests.sendNow();
    },
  );
}
