// Sign-in settings shared by the gateway's admin port (`admin.sessions`, `admin.login`) and the hub's
// (`sessions`, `login`): the same users, roles and sessions live in both (src/users/).
import { z } from 'zod';
import { duration } from './outbreak-schema.ts';

export const userSessionsSchema = z
  .object({
    idleTimeout: duration.default('30m').describe('A signed-in session unused this long ends'),
    maxAge: duration.default('12h').describe('A session ends this long after sign-in, used or not'),
  })
  .strict()
  .prefault({})
  .describe('Browser sessions of the web UI');

export const userLoginSchema = z
  .object({
    maxFailures: z
      .number()
      .int()
      .min(1)
      .max(100)
      .default(5)
      .describe('Wrong passwords in a row before the account locks'),
    lockout: duration.default('15m').describe('How long a locked account stays locked'),
  })
  .strict()
  .prefault({})
  .describe('Sign-in protection');
