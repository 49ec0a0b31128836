// Password hashing: argon2id (RFC 9106) through @node-rs/argon2, with its defaults (19 MiB, t=2, p=1:
// OWASP's minimum for argon2id), on libuv's thread pool so a login does not stall the event loop.
import { hash, verify } from '@node-rs/argon2';

/** Argon2id, as @node-rs/argon2's Algorithm.Argon2id (a const enum, which type stripping cannot inline). */
const ARGON2ID = 2;

export function hashPassword(password: string): Promise<string> {
  return hash(password, { algorithm: ARGON2ID });
}

/** False for a wrong password or a hash that is not a valid argon2 string (never throws). */
export async function verifyPassword(encoded: string, password: string): Promise<boolean> {
  try {
    return await verify(encoded, password);
  } catch {
    return false;
  }
}
