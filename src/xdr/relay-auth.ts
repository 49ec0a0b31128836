// Bearer tokens of the relay module (reference R97): HS256 signed with a shared secret (serverless-style
// relays), or signed by the XDR and checked against its JWKS (hosted relays). Unsigned tokens (`alg:
// none`), other algorithms, wrong signatures, expired or not-yet-valid tokens and a wrong issuer or
// audience are refused.
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';
import type { XdrRelayConfig } from '../config/xdr-schema.ts';
import { RelayError } from './relay.ts';

/** Asymmetric algorithms accepted from a JWKS. */
const JWKS_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

export class RelayAuth {
  private readonly secret: Uint8Array | null;
  private readonly jwks: ReturnType<typeof createRemoteJWKSet> | null;
  private readonly checks: { issuer?: string; audience?: string };

  constructor(c: XdrRelayConfig) {
    this.secret = c.jwtSecret ? new TextEncoder().encode(c.jwtSecret) : null;
    this.jwks = c.jwksUrl
      ? createRemoteJWKSet(new URL(c.jwksUrl), { timeoutDuration: 5000, cooldownDuration: 30_000 })
      : null;
    this.checks = { ...(c.issuer ? { issuer: c.issuer } : {}), ...(c.audience ? { audience: c.audience } : {}) };
  }

  /** The token's claims; throws a 401 RelayError saying why the token is refused. */
  async verify(authorization: string | undefined): Promise<JWTPayload> {
    const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
    if (!m) throw refused('an Authorization: Bearer <JWT> header is required');
    const token = m[1];
    let alg: string | undefined;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw refused('the bearer token is not a JWT');
    }
    if (!alg || alg.toLowerCase() === 'none') throw refused('unsigned tokens (alg none) are refused');
    try {
      if (alg === 'HS256' && this.secret) {
        return (await jwtVerify(token, this.secret, { algorithms: ['HS256'], ...this.checks })).payload;
      }
      if (JWKS_ALGORITHMS.includes(alg) && this.jwks) {
        return (await jwtVerify(token, this.jwks, { algorithms: JWKS_ALGORITHMS, ...this.checks })).payload;
      }
    } catch (err) {
      throw refused(reason(err as Error & { code?: string }));
    }
    throw refused(`tokens signed with ${alg} are not accepted here`);
  }
}

/** Who called, for the records of response actions: `xdr:` and the token's subject (or issuer). */
export function callerOf(claims: JWTPayload): string {
  const who = claims.sub ?? (typeof claims.email === 'string' ? claims.email : undefined) ?? claims.iss;
  return `xdr:${who ?? 'relay'}`;
}

function refused(message: string): RelayError {
  return new RelayError(401, 'authorization error', message);
}

function reason(err: Error & { code?: string; claim?: string }): string {
  switch (err.code) {
    case 'ERR_JWT_EXPIRED':
      return 'the token has expired';
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'the token signature does not verify';
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return 'no key of the JWKS verifies the token';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return `the token's ${err.claim ?? 'claims'} claim is not accepted: ${err.message}`;
    case 'ERR_JWKS_TIMEOUT':
      return 'the JWKS could not be fetched in time';
    default:
      return `the token is not accepted: ${err.message}`;
  }
}
