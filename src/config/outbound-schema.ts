// Outgoing mail (`outbound`): DKIM signing per sending domain, ARC sealing of mail a policy modified, and
// the outbound TLS policy (per destination domain, MTA-STS). Part of the one schema in schema.ts; the
// delivery queue applies it (src/delivery/signing.ts, src/delivery/tls-policy.ts, docs/outbound.md).
import { z } from 'zod';
import { duration } from './outbreak-schema.ts';

export const domainName = z
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

/** One line of header-safe text (it goes into the report and its mail headers). */
export const singleLine = z.string().regex(/^[^\r\n]{1,200}$/, 'one line of at most 200 characters');

export const address = z
  .string()
  .regex(/^[^\s@<>,;"]+@[a-z0-9.-]+$/i, 'an address such as reports@example.com')
  .describe('an e-mail address');

/** When daily reports of past UTC days go out (TLSRPT here, DMARC aggregate reports in senderAuth). */
export const reportSendAt = z
  .string()
  .regex(/^(([01]\d|2[0-3]):[0-5]\d|\d+(ms|s|m|h|d))$/, 'a UTC time of day such as "01:30", or a duration such as "1h"')
  .default('01:00')
  .describe(
    'When the reports of past UTC days go out: a UTC time of day ("01:00"), or a duration to look for unsent ones that often',
  );

/** Policy domains a daily report records per day (`what`: what is not recorded past it). */
export function reportMaxDomains(what: string) {
  return z
    .number()
    .int()
    .min(1)
    .default(10_000)
    .describe(`Policy domains recorded per UTC day; ${what} that day are not recorded (the mail log says so once)`);
}

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
        tlsrpt: z
          .object({
            enabled: z
              .boolean()
              .default(false)
              .describe(
                'Send the daily reports to the addresses receiving domains publish (`_smtp._tls` TXT); off by default because they go to third parties. Sessions are recorded either way (`breakwater tlsrpt show`)',
              ),
            organization: singleLine.optional().describe('organization-name of the reports (default: hostname)'),
            contact: address.optional().describe('contact-info of the reports (default: from)'),
            submitter: domainName
              .optional()
              .describe('The submitter domain (TLS-Report-Submitter, the report file name; default: hostname)'),
            from: address
              .optional()
              .describe('Sender (header From and envelope) of reports sent by mail (default: tlsrpt-noreply@hostname)'),
            sendAt: reportSendAt,
            retries: z
              .array(duration)
              .max(10)
              .default(['5m', '30m', '2h', '6h', '12h'])
              .describe(
                'Waits between attempts of an HTTPS report that failed; after the last one it is given up and logged (RFC 8460 §5.4: retry for up to 24 hours)',
              ),
            timeout: duration.default('30s').describe('Longest HTTPS report upload and `_smtp._tls` lookup'),
            maxDomains: reportMaxDomains('sessions to further domains'),
            retention: duration.default('30d').describe('How long session counts and sent reports are kept'),
          })
          .strict()
          .prefault({})
          .describe(
            'SMTP TLS Reporting (RFC 8460): per UTC day and recipient domain, the TLS outcome of every MX session, reported daily to the domain’s `rua` addresses (mailto: through our own queue, https: POST)',
          ),
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
