// The sign-in policy of the gateway's admin port (`admin.sessions`, `admin.login`) or of the hub.
import type { z } from 'zod';
import { parseDuration } from '../config/schema.ts';
import type { userLoginSchema, userSessionsSchema } from '../config/users-schema.ts';
import type { UserPolicy } from './service.ts';

/** The UserService's policy from either section. */
export function userPolicy(c: {
  sessions: z.output<typeof userSessionsSchema>;
  login: z.output<typeof userLoginSchema>;
}): UserPolicy {
  return {
    idleTimeoutMs: parseDuration(c.sessions.idleTimeout),
    maxAgeMs: parseDuration(c.sessions.maxAge),
    maxFailures: c.login.maxFailures,
    lockoutMs: parseDuration(c.login.lockout),
  };
}
