// Outgoing mail (`outbound`): DKIM signing per sending domain, ARC sealing of mail a policy modified, and
// the outbound TLS policy (per destination domain, MTA-STS). Part of the one schema in schema.ts; the
// delivery queue applies it (src/delivery/signing.ts, src/delivery/tls-policy.ts, docs/outbound.md).
import { z } from 'zod';
import { duration } from './outbreak-schema.ts';

const domainName = z
  .string()
  .regex(/^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i, 'a domain name');

const selector = z
  .string()
  .regex(
    /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i,
    'a DKIM selector (DNS labels)',
  );

/** RFC 6376 §5.4.1's recommended set, plus the MIME fields a re-encoding relay would change. */
export const DEFAULT_SIGNED_HEADERS = [
  'from',
  'sender',
  'reply-to',
  'subject',
  'date',
  'message-id',
  'to',
  'cc',
  'mime-version',
  'content-type',
  'content-transfer-encoding',
  'content-id',
  'content-description',
  'resent-date',
  'resent-from',
  'resent-sender',
  'resent-to',
  'resent-cc',
  'resent-message-id',
  'in-reply-to',
  'references',
  'list-id',
  'list-help',
  'list-unsubscribe',
  'list-subscribe',
  'list-post',
  'list-owner',
  'list-archive',
];

const headerName = z.string().regex(/^[!-9;-~]+$/, 'a header field name');

const direction = z.enum(['incoming', 'outgoing']);

export const dkimDomainSchema = z
  .object({
    selector: selector.describe('Selector (s=): the key is published at SELECTOR._domainkey.DOMAIN'),
    keyFile: z
      .string()
      .min(1)
      .describe(
        'PEM private key (Ed25519 or RSA ≥ 2048 bits), relative to dataDir; `breakwater dkim keygen` writes dkim/DOMAIN.SELECTOR.key with mode 0600',
      ),
    headers: z
      .array(headerName)
      .min(1)
      .optional()
      .describe('Header fields signed for this domain (default: outbound.dkim.headers)'),
  })
  .strict();

export const outboundSchema = z
  .object({
    dkim: z
      .object({
        domains: z
          .record(domainName, dkimDomainSchema)
          .default({})
          .describe(
            'Signing domains: the header From domain (or a parent domain of it; else the envelope sender domain) picks the key; no match, no signature',
          ),
        headers: z
          .array(headerName)
          .min(1)
          .default(DEFAULT_SIGNED_HEADERS)
          .describe('Header fields signed (h=), those present in the message; From is always signed'),
        directions: z
          .array(direction)
          .default(['outgoing'])
          .describe('Mail received on listeners of these directions is signed'),
        listeners: z
          .array(z.string().min(1))
          .default([])
          .describe('Only mail received on these listeners is signed (empty: every listener of the directions)'),
        generated: z
          .boolean()
          .default(true)
          .describe("Sign the gateway's own messages (DSNs, alerts, digests) when their From domain has a key"),
      })
      .strict()
      .prefault({})
      .describe('DKIM signing (RFC 6376, Ed25519 RFC 8463) of delivered mail'),
    arc: z
      .object({
        enabled: z.boolean().default(false).describe('Add an ARC set (RFC 8617) to mail a policy modified'),
        domain: domainName
          .optional()
          .describe('The outbound.dkim.domains entry whose key and selector seal (d=, s=); required when enabled'),
        authservId: z
          .string()
          .min(1)
          .optional()
          .describe(
            'authserv-id of the ARC-Authentication-Results (default: senderAuth.authservId, else hostname); the results are those of our Authentication-Results header with this id',
          ),
        directions: z
          .array(direction)
          .default(['outgoing'])
          .describe('Modified mail received on listeners of these directions is sealed'),
      })
      .strict()
      .prefault({})
      .describe('ARC sealing of mail whose bytes a policy changed (disclaimer, rewritten links, stripped parts)'),
    tls: z
      .object({
        default: z
          .enum(['opportunistic', 'require', 'verify', 'none'])
          .default('opportunistic')
          .describe(
            'opportunistic: STARTTLS when offered, any certificate; require: never in clear (defer); verify: STARTTLS with a certificate that chains to a trusted CA and names the host; none: never STARTTLS. delivery.requireTls: true means require',
          ),
        domains: z
          .record(z.string().min(1), z.enum(['opportunistic', 'require', 'verify', 'none']))
          .default({})
          .describe(
            'Per recipient domain ("example.com", ".example.com" for subdomains too); the strictest of a delivery’s recipients applies',
          ),
        caFile: z
          .string()
          .min(1)
          .optional()
          .describe(
            'PEM file of extra CAs trusted (besides the system roots) for verify, MTA-STS and the policy host; absolute or relative to dataDir',
          ),
        mtaSts: z
          .object({
            enabled: z
              .boolean()
              .default(true)
              .describe('Look up and apply MTA-STS policies (RFC 8461) for MX delivery'),
            timeout: duration.default('10s').describe('Longest policy fetch (DNS and HTTPS)'),
            maxEntries: z.number().int().min(1).default(10_000).describe('Policies kept in the cache'),
          })
          .strict()
          .prefault({})
          .describe('MTA-STS: the receiving domain asks for verified TLS to its listed MX hosts'),
      })
      .strict()
      .prefault({})
      .describe('Outbound TLS policy'),
  })
  .strict()
  .prefault({})
  .superRefine((o, ctx) => {
    if (o.arc.enabled && (!o.arc.domain || !o.dkim.domains[o.arc.domain]))
      ctx.addIssue({
        code: 'custom',
        path: ['arc', 'domain'],
        message: 'ARC sealing needs a domain that has an outbound.dkim.domains entry (its key seals)',
      });
  })
  .describe('Outgoing mail: DKIM signing, ARC sealing and the TLS policy of delivery (docs/outbound.md)');

export type OutboundConfig = z.infer<typeof outboundSchema>;
export type TlsLevel = OutboundConfig['tls']['default'];
