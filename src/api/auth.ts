// Who is calling and whether they may (DESIGN §9). Credentials, in order: the local admin token
// (dataDir/admin.token, what the CLI on the gateway's machine uses: role admin), a personal API token
// (`bwt_…`, the role of its user), or the session cookie of a browser login. A session's state-changing
// requests must carry its CSRF token in `x-csrf-token` (a bearer token is never sent by a browser on its
// own, so it needs none). Then the route's permission (src/api/permissions.ts) is checked against the
// role. Every state-changing request with known credentials, allowed or not, goes to the audit log.
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { sendError, tokenMatches } from './errors.ts';
import { GATEWAY_PERMISSIONS, OWN_AUTH_OPERATIONS, type PermissionTable } from './permissions.ts';
import { allowed, PERMISSIONS, type Role } from '../users/roles.ts';
import type { SessionInfo, UserService } from '../users/service.ts';
import type { AuditLog } from '../users/audit.ts';

export const SESSION_COOKIE = 'bw_session';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export interface Principal {
  /** the user name; "admin-token" for the local admin token */
  user: string;
  role: Role;
  via: 'admin-token' | 'user-token' | 'session';
  session?: SessionInfo;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}

function operationOf(req: FastifyRequest): string | undefined {
  return (req.routeOptions.schema as { operationId?: string } | undefined)?.operationId;
}

/** The caller's credentials, or null when there are none (or they are not valid). */
export function principalOf(req: FastifyRequest, users: UserService, adminToken: string): Principal | null {
  const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  if (m) {
    if (tokenMatches(m[1], adminToken)) return { user: 'admin-token', role: 'admin', via: 'admin-token' };
    const t = users.authenticateToken(m[1]);
    return t ? { user: t.user, role: t.role, via: 'user-token' } : null;
  }
  const sid = (req as FastifyRequest & { cookies?: Record<string, string | undefined> }).cookies?.[SESSION_COOKIE];
  if (sid) {
    const s = users.session(sid);
    if (s) return { user: s.user, role: s.role, via: 'session', session: s };
  }
  return null;
}

/**
 * Every admin API route must name its permission: an unlisted operation stops the API from starting.
 * The roles allowed go into the route's description, so the generated document shows them.
 */
export function routePermissionCheck(table: PermissionTable = GATEWAY_PERMISSIONS) {
  return (route: RouteOptions): void => {
    const schema = route.schema as { operationId?: string; description?: string } | undefined;
    const op = schema?.operationId;
    if (!schema || !op || table.ownAuth.has(op)) return;
    const permission = table.routes[op];
    if (!permission) throw new Error(`API: operation ${op} has no permission in ${table.file}`);
    if (permission === 'public') return;
    // once: Fastify registers a GET route's HEAD twin with the same schema object
    if (schema.description?.includes('**Roles:**')) return;
    const roles = PERMISSIONS[permission].join(', ');
    schema.description = `${schema.description ? `${schema.description}\n\n` : ''}**Roles:** ${roles} (\`${permission}\`).`;
  };
}

/** The onRequest hook of every route but those with credentials of their own (relay, end users, devices). */
export function authenticator(users: UserService, adminToken: string, table: PermissionTable = GATEWAY_PERMISSIONS) {
  return async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const op = operationOf(req);
    const permission = op ? table.routes[op] : undefined;
    if (permission === 'public' || (op && table.ownAuth.has(op))) return;
    const p = principalOf(req, users, adminToken);
    if (!p) {
      await sendError(
        reply.header('www-authenticate', 'Bearer'),
        401,
        'unauthorized',
        'sign in, or send a valid bearer token',
      );
      return;
    }
    req.principal = p;
    if (p.via === 'session' && !SAFE_METHODS.has(req.method)) {
      const token = req.headers['x-csrf-token'];
      if (!users.csrfMatches(p.session!, Array.isArray(token) ? token[0] : token)) {
        await sendError(reply, 403, 'csrf_failed', "send the session's CSRF token in x-csrf-token");
        return;
      }
    }
    if (!permission || !allowed(p.role, permission))
      await sendError(reply, 403, 'forbidden', `the ${p.role} role may not do this (${op ?? req.url.split('?')[0]})`);
  };
}

/** Records every state-changing request made with credentials (allowed, refused or failed). */
export function registerAuditHook(app: FastifyInstance, audit: AuditLog): void {
  app.addHook('onResponse', async (req, reply) => {
    if (SAFE_METHODS.has(req.method) || !req.principal) return;
    const op = operationOf(req);
    if (!op || OWN_AUTH_OPERATIONS.has(op)) return;
    audit.record({
      user: req.principal.user,
      role: req.principal.role,
      action: op,
      target: req.url.split('?')[0],
      detail: { params: req.params, query: req.query, body: req.body },
      ip: req.ip,
      status: reply.statusCode,
    });
  });
}
