// Device credentials (DESIGN §10, §11.1): at registration the hub issues each gateway a device id and
// a secret of its own. Every call between them carries a short-lived JWT (HS256, RFC 7519) signed with
// that secret: `iss` = `sub` = the device id, `aud` = who is called, `exp` a few minutes ahead, a unique
// `jti`. The hub looks the device up by `iss`, verifies with its secret, and refuses a deregistered
// device at once (its secret is gone).
import { randomBytes, randomUUID } from 'node:crypto';
import { SignJWT, jwtVerify, decodeJwt, errors as joseErrors } from 'jose';

/** Audience of calls to the hub, and of the hub's calls to a gateway. */
export const HUB_AUDIENCE = 'breakwater-hub';
export const GATEWAY_AUDIENCE = 'breakwater-gateway';
/** Lifetime of one call's token: long enough for clock skew, short enough to be useless when stolen. */
const TOKEN_SECONDS = 300;

export function newDeviceSecret(): string {
  return randomBytes(32).toString('base64url');
}

function key(secret: string): Uint8Array {
  return new Uint8Array(Buffer.from(secret, 'base64url'));
}

export async function signDeviceToken(deviceId: string, secret: string, audience: string): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer(deviceId)
    .setSubject(deviceId)
    .setAudience(audience)
    .setIssuedAt()
    .setExpirationTime(`${TOKEN_SECONDS}s`)
    .setJti(randomUUID())
    .sign(key(secret));
}

export type DeviceTokenFailure = 'missing' | 'malformed' | 'unknown_device' | 'invalid' | 'expired';

export class DeviceTokenError extends Error {
  readonly reason: DeviceTokenFailure;
  constructor(reason: DeviceTokenFailure, message: string) {
    super(message);
    this.reason = reason;
  }
}

/**
 * Verifies a bearer token from a device: the device (by `iss`) must be known and still registered
 * (`secretOf` returns null otherwise), the signature must be its secret's, the audience ours.
 */
export async function verifyDeviceToken(
  authorization: string | undefined,
  audience: string,
  secretOf: (deviceId: string) => string | null,
): Promise<string> {
  const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
  if (!m) throw new DeviceTokenError('missing', 'a device token is required (Authorization: Bearer <JWT>)');
  let iss: string | undefined;
  try {
    iss = decodeJwt(m[1]).iss;
  } catch {
    throw new DeviceTokenError('malformed', 'the token is not a JWT');
  }
  const secret = iss ? secretOf(iss) : null;
  if (!iss || !secret) throw new DeviceTokenError('unknown_device', 'unknown or deregistered device');
  try {
    const { payload } = await jwtVerify(m[1], key(secret), {
      algorithms: ['HS256'],
      audience,
      issuer: iss,
      subject: iss,
      maxTokenAge: `${TOKEN_SECONDS + 60}s`,
      clockTolerance: 60,
    });
    return payload.iss!;
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired) throw new DeviceTokenError('expired', 'the token has expired');
    throw new DeviceTokenError('invalid', 'the token does not verify');
  }
}
