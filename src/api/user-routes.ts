// Sessions, users, personal API tokens and the audit log (DESIGN §9). The CLI (`breakwater users`,
// `breakwater audit`) and the web UI call these routes; src/users/ does the work.
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { AuditLog } from '../users/audit.ts';
import { ApiError } from './errors.ts';
import { responses, timeInput } from './schemas/common.ts';
import { answer, type Api } from './validation.ts';
import { SESSION_COOKIE, type Principal } from './auth.ts';
import { ROLES } from '../users/roles.ts';
import { generatePassword, UserError, type UserService } from '../users/service.ts';
import { LoginThrottle } from '../users/throttle.ts';

const role = z.enum(ROLES);
const userName = z.string().min(1).max(64).describe('user name');
const password = z.string().min(1).max(1024);

const user = z
  .object({
    name: z.string(),
    role,
    createdAt: z.string(),
    updatedAt: z.string(),
    lastLogin: z.string().nullable(),
    lockedUntil: z.string().nullable().describe('set while the account is locked after failed logins'),
  })
  .meta({ id: 'User' });

const session = z
  .object({
    signedIn: z.boolean().describe('false: no valid credentials came with the request (the other fields are null)'),
    user: z.string().nullable(),
    role: role.nullable(),
    via: z.enum(['session', 'user-token', 'admin-token']).nullable(),
    csrfToken: z
      .string()
      .nullable()
      .describe('send it in x-csrf-token with every state-changing request (sessions only)'),
    expiresAt: z.string().nullable(),
    product: z.enum(['gateway', 'hub']).describe('what answered: a gateway or the hub (the web UI shows its pages)'),
  })
  .meta({ id: 'Session' });

const tokenInfo = z
  .object({
    id: z.string(),
    user: z.string(),
    label: z.string(),
    createdAt: z.string(),
    lastUsed: z.string().nullable(),
    expiresAt: z.string().nullable(),
  })
  .meta({ id: 'ApiToken' });

const auditEntry = z
  .object({
    id: z.int(),
    at: z.string(),
    user: z.string(),
    role: z.string(),
    action: z.string().describe('the API operation, or login / loginFailed / logout'),
    target: z.string(),
    detail: z.unknown().describe('the request’s fields, secrets redacted'),
    ip: z.string(),
    status: z.int(),
  })
  .meta({ id: 'AuditEntry' });

/** UserError codes are API error codes of the same name, with these statuses. */
const STATUS: Record<UserError['code'], number> = {
  user_exists: 409,
  user_not_found: 404,
  invalid_role: 400,
  weak_password: 400,
  invalid_name: 400,
  invalid_credentials: 401,
  account_locked: 429,
  last_admin: 409,
  token_not_found: 404,
};

async function guarded<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof UserError) throw new ApiError(STATUS[err.code], err.code, err.message);
    throw err;
  }
}

export function registerUserRoutes(
  api: Api,
  gw: { users: UserService; audit: AuditLog },
  o: { secureCookie: boolean; principal: (req: FastifyRequest) => Principal | null; product: 'gateway' | 'hub' },
): void {
  const throttle = new LoginThrottle();
  const cookie = (value: string, maxAgeSeconds: number): string =>
    `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${o.secureCookie ? '; Secure' : ''}`;

  api.post(
    '/session',
    {
      schema: {
        operationId: 'login',
        tags: ['Users'],
        summary: 'Sign in: sets the HttpOnly session cookie and answers with the CSRF token',
        description:
          'After `admin.login.maxFailures` wrong passwords in a row the account is locked for `admin.login.lockout` (429 `account_locked`, saying until when); many failures from one address are refused for a while (429 `too_many_attempts`). Sessions end after `admin.sessions.idleTimeout` unused, or `admin.sessions.maxAge` after sign-in.',
        security: [],
        body: z.object({ name: userName, password }).strict(),
        response: responses({
          ok: session,
          public: true,
          body: true,
          400: ['invalid_body', 'invalid_parameter', 'unknown_parameter'],
          401: ['invalid_credentials'],
          429: ['account_locked', 'too_many_attempts'],
        }),
      },
    },
    async (req, reply) => {
      const ip = req.ip;
      const wait = throttle.blocked(ip);
      if (wait) {
        reply.header('retry-after', String(Math.ceil(wait / 1000)));
        throw new ApiError(
          429,
          'too_many_attempts',
          `too many failed logins from ${ip}: try again in ${Math.ceil(wait / 60_000)} minute(s)`,
        );
      }
      const name = req.body.name.trim().toLowerCase();
      try {
        const { sessionId, session: s } = await gw.users.login(name, req.body.password, ip);
        throttle.succeeded(ip);
        gw.audit.record({
          user: s.user,
          role: s.role,
          action: 'login',
          target: '/api/v1/session',
          detail: null,
          ip,
          status: 200,
        });
        const maxAge = Math.round((Date.parse(s.expiresAt) - Date.now()) / 1000);
        reply.header('set-cookie', cookie(sessionId, Math.max(1, maxAge)));
        reply.header('cache-control', 'no-store');
        return answer(session, {
          signedIn: true,
          user: s.user,
          role: s.role,
          via: 'session',
          csrfToken: s.csrfToken,
          expiresAt: s.expiresAt,
          product: o.product,
        });
      } catch (err) {
        if (!(err instanceof UserError)) throw err;
        throttle.failed(ip);
        const status = STATUS[err.code];
        gw.audit.record({
          user: name.slice(0, 64),
          role: '',
          action: 'loginFailed',
          target: '/api/v1/session',
          detail: { reason: err.code },
          ip,
          status,
        });
        throw new ApiError(status, err.code, err.message);
      }
    },
  );

  api.get(
    '/session',
    {
      schema: {
        operationId: 'getSession',
        tags: ['Users'],
        summary: 'Who is signed in (or whose token this is), with the session’s CSRF token',
        description:
          'Public, so that a page can ask without an error: without valid credentials the answer is `signedIn: false`.',
        security: [],
        response: responses({ ok: session, public: true }),
      },
    },
    async (req) => {
      const p = o.principal(req);
      if (!p)
        return answer(session, {
          signedIn: false,
          user: null,
          role: null,
          via: null,
          csrfToken: null,
          expiresAt: null,
          product: o.product,
        });
      return answer(session, {
        signedIn: true,
        user: p.user,
        role: p.role,
        via: p.via,
        csrfToken: p.session?.csrfToken ?? null,
        expiresAt: p.session?.expiresAt ?? null,
        product: o.product,
      });
    },
  );

  api.delete(
    '/session',
    {
      schema: {
        operationId: 'logout',
        tags: ['Users'],
        summary: 'Sign out: ends the session and clears its cookie',
        response: responses({ ok: z.object({ signedOut: z.boolean() }) }),
      },
    },
    async (req, reply) => {
      const sid = sessionCookie(req);
      if (sid && req.principal?.via === 'session') gw.users.logout(sid);
      reply.header('set-cookie', cookie('', 0));
      return { signedOut: req.principal?.via === 'session' };
    },
  );

  api.post(
    '/session/password',
    {
      schema: {
        operationId: 'changeOwnPassword',
        tags: ['Users'],
        summary: 'Change your own password (ends your other sessions)',
        body: z.object({ current: password, password }).strict(),
        response: responses({
          ok: user,
          body: true,
          400: ['invalid_body', 'invalid_parameter', 'unknown_parameter', 'weak_password', 'wrong_password'],
        }),
      },
    },
    async (req, reply) => {
      const p = req.principal!;
      if (p.via === 'admin-token')
        throw new ApiError(400, 'invalid_parameter', 'the local admin token has no password: use PATCH /users/{name}');
      if (!(await gw.users.verify(p.user, req.body.current)))
        throw new ApiError(400, 'wrong_password', 'the current password is wrong');
      const u = await guarded(() => gw.users.setPassword(p.user, req.body.password));
      // the caller's own browser session ended with the others: sign in again
      if (p.via === 'session') reply.header('set-cookie', cookie('', 0));
      return answer(user, u);
    },
  );

  api.get(
    '/users',
    {
      schema: {
        operationId: 'listUsers',
        tags: ['Users'],
        summary: 'Every user with their role',
        response: responses({ ok: z.object({ users: z.array(user) }) }),
      },
    },
    async () => ({ users: gw.users.list() }),
  );

  api.post(
    '/users',
    {
      schema: {
        operationId: 'addUser',
        tags: ['Users'],
        summary: 'Add a user; without `password` one is generated and answered once',
        body: z.object({ name: userName, role, password: password.optional() }).strict(),
        response: responses({
          ok: z.object({ user, password: z.string().nullable().describe('the generated password, shown this once') }),
          body: true,
          400: [
            'invalid_body',
            'invalid_parameter',
            'unknown_parameter',
            'invalid_name',
            'invalid_role',
            'weak_password',
          ],
          409: ['user_exists'],
        }),
      },
    },
    async (req) => {
      const generated = req.body.password ? null : generatePassword();
      const u = await guarded(() => gw.users.add(req.body.name, req.body.role, req.body.password ?? generated!));
      return { user: u, password: generated };
    },
  );

  api.patch(
    '/users/:name',
    {
      schema: {
        operationId: 'updateUser',
        tags: ['Users'],
        summary: 'Change a user’s role and/or password (a new password ends their sessions and lifts a lockout)',
        params: z.object({ name: userName }),
        body: z.object({ role: role.optional(), password: password.optional() }).strict(),
        response: responses({
          ok: user,
          body: true,
          400: ['invalid_body', 'invalid_parameter', 'unknown_parameter', 'invalid_role', 'weak_password'],
          404: ['user_not_found'],
          409: ['last_admin'],
        }),
      },
    },
    async (req) =>
      guarded(async () => {
        if (req.body.role) gw.users.setRole(req.params.name, req.body.role);
        if (req.body.password) await gw.users.setPassword(req.params.name, req.body.password);
        const u = gw.users.get(req.params.name);
        if (!u) throw new UserError('user_not_found', `no user ${req.params.name}`);
        return u;
      }),
  );

  api.delete(
    '/users/:name',
    {
      schema: {
        operationId: 'removeUser',
        tags: ['Users'],
        summary: 'Remove a user with their sessions and API tokens',
        params: z.object({ name: userName }),
        response: responses({ ok: z.object({ removed: z.string() }), 404: ['user_not_found'], 409: ['last_admin'] }),
      },
    },
    async (req) =>
      guarded(() => {
        gw.users.remove(req.params.name);
        return { removed: req.params.name.toLowerCase() };
      }),
  );

  api.post(
    '/users/:name/tokens',
    {
      schema: {
        operationId: 'createUserToken',
        tags: ['Users'],
        summary: 'A personal API token for a user (`Authorization: Bearer bwt_…`, with the user’s role); shown once',
        params: z.object({ name: userName }),
        body: z
          .object({
            label: z.string().min(1).max(100).default('api'),
            expiresInDays: z.int().min(1).max(3650).optional().describe('none: the token does not expire'),
          })
          .strict(),
        response: responses({
          ok: z.object({ token: z.string().describe('shown this once'), info: tokenInfo }),
          body: true,
          400: ['invalid_body', 'invalid_parameter', 'unknown_parameter'],
          404: ['user_not_found'],
        }),
      },
    },
    async (req) =>
      guarded(() =>
        gw.users.createToken(
          req.params.name,
          req.body.label,
          req.body.expiresInDays ? Date.now() + req.body.expiresInDays * 86_400_000 : null,
        ),
      ),
  );

  api.get(
    '/users/:name/tokens',
    {
      schema: {
        operationId: 'listUserTokens',
        tags: ['Users'],
        summary: 'A user’s API tokens (never the tokens themselves)',
        params: z.object({ name: userName }),
        response: responses({ ok: z.object({ tokens: z.array(tokenInfo) }), 404: ['user_not_found'] }),
      },
    },
    async (req) => {
      if (!gw.users.get(req.params.name)) throw new ApiError(404, 'user_not_found', `no user ${req.params.name}`);
      return { tokens: gw.users.tokens(req.params.name.toLowerCase()) };
    },
  );

  api.delete(
    '/users/:name/tokens/:id',
    {
      schema: {
        operationId: 'revokeUserToken',
        tags: ['Users'],
        summary: 'Revoke an API token',
        params: z.object({
          name: userName,
          id: z.string().min(1).max(64).describe('token id (from the token listing)'),
        }),
        response: responses({ ok: z.object({ revoked: z.string() }), 404: ['token_not_found'] }),
      },
    },
    async (req) =>
      guarded(() => {
        const mine = gw.users.tokens(req.params.name.toLowerCase()).some((t) => t.id === req.params.id);
        if (!mine) throw new UserError('token_not_found', `no token ${req.params.id} of ${req.params.name}`);
        gw.users.revokeToken(req.params.id);
        return { revoked: req.params.id };
      }),
  );

  api.get(
    '/audit',
    {
      schema: {
        operationId: 'searchAudit',
        tags: ['Users'],
        summary: 'The audit log, newest first: every change made through the API, logins and failed logins',
        querystring: z
          .object({
            user: z.string().min(1).max(200).optional().describe('who: a user name, or admin-token'),
            action: z.string().min(1).max(100).optional().describe('an operation id, or login / loginFailed'),
            text: z.string().min(1).max(200).optional().describe('found anywhere in the target or the request'),
            since: timeInput('since').optional().describe('from this time'),
            until: timeInput('until').optional().describe('before this time'),
            before: z.coerce.number().int().min(1).optional().describe('entries older than this id (paging)'),
            limit: z.coerce.number().int().min(1).max(1000).default(100).describe('at most this many (1–1000)'),
          })
          .strict(),
        response: responses({
          ok: z.object({ entries: z.array(auditEntry) }),
          400: ['invalid_parameter', 'unknown_parameter'],
        }),
      },
    },
    async (req) => {
      const q = req.query;
      return {
        entries: await gw.audit.search({
          user: q.user,
          action: q.action,
          text: q.text,
          since: q.since,
          until: q.until,
          before: q.before,
          limit: q.limit,
        }),
      };
    },
  );
}

function sessionCookie(req: FastifyRequest): string | undefined {
  return (req as FastifyRequest & { cookies?: Record<string, string | undefined> }).cookies?.[SESSION_COOKIE];
}
