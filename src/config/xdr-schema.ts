// Config section for the XDR integration (DESIGN §10): the relay module an XDR calls. Part of the one
// schema in schema.ts; kept apart so the section reads whole (the remediation settings go beside it).
import { z } from 'zod';

const httpUrl = z
  .string()
  .regex(/^https?:\/\/[^\s/]+(\/[^\s]*)?$/, 'an http(s) URL such as https://xdr.example.com/.well-known/jwks.json');

export const xdrRelaySchema = z
  .object({
    jwtSecret: z
      .string()
      .min(32, 'at least 32 characters (HS256 wants a 256-bit key, RFC 7518 §3.2)')
      .optional()
      .describe(
        'Shared secret of HS256 bearer tokens (a serverless-style relay: the XDR module is configured with a token signed with it). Setting it, or jwksUrl, turns the relay module on',
      ),
    jwksUrl: httpUrl
      .optional()
      .describe(
        'JWKS URL of the XDR that issues the bearer tokens (RS256, ES256, … tokens are checked against its keys, which are cached and fetched again on an unknown key id). Setting it, or jwtSecret, turns the relay module on',
      ),
    issuer: z.string().min(1).optional().describe('When set, a token must carry this `iss`'),
    audience: z.string().min(1).optional().describe('When set, a token must carry this `aud`'),
    entityLimit: z
      .number()
      .int()
      .min(1)
      .max(1000)
      .default(100)
      .describe('Most sightings, judgements or verdicts one answer holds (newest messages first)'),
    referUrl: httpUrl
      .optional()
      .describe(
        "Base URL of this gateway's admin port as analysts reach it, for the links in sightings (`source_uri`) and /refer/observables (default: the host the XDR called)",
      ),
  })
  .strict()
  .prefault({})
  .describe(
    'The relay module an XDR calls on the admin port (/observe/observables, …); off unless jwtSecret or jwksUrl is set',
  );

export const xdrSchema = z
  .object({
    relay: xdrRelaySchema,
  })
  .strict()
  .prefault({})
  .describe('XDR integration');

export type XdrRelayConfig = z.infer<typeof xdrRelaySchema>;

/** Whether the relay module is on: a way to check bearer tokens is configured. */
export function relayEnabled(c: XdrRelayConfig): boolean {
  return !!(c.jwtSecret || c.jwksUrl);
}
