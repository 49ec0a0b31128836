// Config section for mailbox remediation of delivered mail (DESIGN §10): account profiles (IMAP with a
// master user, Microsoft 365 through Microsoft Graph), chained profiles (`next`), recipient-domain
// mappings, attempts and timeout. Part of the one schema in schema.ts. Secrets here (masterPassword,
// clientSecret, the certificate key) never leave the config: see redactRemediation() and SECURITY.md.
import { z } from 'zod';
import { duration } from './outbreak-schema.ts';

const address = z.string().regex(/^[^\s@<>]+@[^\s@<>]+$/, 'an address such as soc@example.com');

/** Every key of a profile; which apply depends on `type` (checked below, per type). */
export const remediationProfileSchema = z
  .object({
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'letters, digits, "_", "." and "-"')
      .describe('Profile name, used by mappings, `next` and in tracking'),
    type: z
      .enum(['imap', 'graph'])
      .describe('imap: an IMAP server with a master (admin) user, e.g. Dovecot; graph: Microsoft 365 via Graph'),
    description: z.string().optional().describe('Free text for administrators'),
    next: z
      .string()
      .optional()
      .describe(
        'Chained profile: the profile tried when this one fails for a mailbox (after its attempts), e.g. on-premises first, then Microsoft 365',
      ),
    // imap
    host: z.string().min(1).optional().describe('(imap) server host name or address'),
    port: z
      .number()
      .int()
      .min(1)
      .max(65535)
      .optional()
      .describe('(imap) port (default 993 with tls implicit, else 143)'),
    tls: z
      .enum(['implicit', 'starttls', 'none'])
      .default('implicit')
      .describe('(imap) implicit: TLS from the start (993); starttls: upgrade and require it; none: plain text'),
    ca: z.string().min(1).optional().describe('(imap) PEM file of the CA that signs the server certificate'),
    rejectUnauthorized: z.boolean().default(true).describe('(imap) refuse a server whose certificate does not verify'),
    masterUser: z
      .string()
      .min(1)
      .optional()
      .describe('(imap) master (admin) user that may log in as any user (Dovecot: a `master = yes` passdb)'),
    masterPassword: z.string().min(1).optional().describe('(imap) the master user password (secret)'),
    login: z
      .enum(['separator', 'authzid'])
      .default('separator')
      .describe(
        '(imap) separator: LOGIN as "recipient<separator>masterUser" (Dovecot auth_master_user_separator); authzid: AUTHENTICATE PLAIN as masterUser authorized as the recipient (RFC 4616)',
      ),
    separator: z.string().min(1).max(4).default('*').describe('(imap) Dovecot auth_master_user_separator'),
    folders: z
      .array(z.string().min(1))
      .optional()
      .describe('(imap) folders searched for the message (every folder when unset)'),
    trash: z
      .string()
      .min(1)
      .optional()
      .describe('(imap) folder of deleteMode move-to-deleted-items (default: the folder marked \\Trash, else "Trash")'),
    // graph
    tenantId: z.string().min(1).optional().describe('(graph) Microsoft Entra tenant ID'),
    clientId: z.string().min(1).optional().describe('(graph) application (client) ID'),
    clientSecret: z.string().min(1).optional().describe('(graph) client secret (secret); or use certificate'),
    certificate: z
      .object({
        key: z.string().min(1).describe('PEM file of the certificate private key (secret)'),
        thumbprint: z
          .string()
          .regex(/^[0-9a-fA-F]{40}$/, 'the SHA-1 thumbprint, 40 hex digits')
          .describe('SHA-1 thumbprint of the certificate uploaded to the app registration'),
      })
      .strict()
      .optional()
      .describe('(graph) certificate credential (a signed client assertion), instead of clientSecret'),
    authority: z
      .url()
      .default('https://login.microsoftonline.com')
      .describe('(graph) token authority base URL (national clouds differ; tests point it at a local server)'),
    graphUrl: z
      .url()
      .default('https://graph.microsoft.com')
      .describe('(graph) Microsoft Graph base URL; the token scope is "<origin>/.default"'),
    deleteMode: z
      .enum(['move-to-deleted-items', 'purge'])
      .optional()
      .describe(
        'move-to-deleted-items: recoverable by the user (Graph: Deleted Items; IMAP: the trash folder); purge: gone (Graph: DELETE; IMAP: \\Deleted and EXPUNGE). Default: purge for imap, move-to-deleted-items for graph',
      ),
  })
  .strict();

export const remediationSchema = z
  .object({
    profiles: z.array(remediationProfileSchema).default([]).describe('Account profiles (imap or graph)'),
    mappings: z
      .array(
        z
          .object({
            domain: z
              .string()
              .min(1)
              .describe('Recipient domain ("example.com", ".example.com" for subdomains too) or "*"'),
            profile: z
              .string()
              .min(1)
              .describe('Profile used for recipients of this domain (its `next` chain follows)'),
          })
          .strict(),
      )
      .default([])
      .describe('Recipient domain → profile; the most specific domain wins, then "*"'),
    attempts: z
      .number()
      .int()
      .min(3)
      .max(5)
      .default(3)
      .describe('Attempts per mailbox and profile when it times out or fails transiently (3–5)'),
    timeout: duration
      .refine((d) => {
        const m = /^(\d+)(ms|s|m|h|d)$/.exec(d)!;
        const ms = Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's'];
        return ms >= 30_000 && ms <= 60_000;
      }, 'between 30s and 60s')
      .default('30s')
      .describe('Longest time one attempt on one mailbox may take (30s–60s)'),
    forwardTo: address
      .optional()
      .describe('Where forward and forward-and-delete send the message, unless a request names another address'),
    from: address
      .optional()
      .describe('Envelope sender and From: of forwarded messages (default breakwater@<hostname>)'),
  })
  .strict()
  .prefault({})
  .superRefine((r, ctx) => {
    const names = new Map<string, (typeof r.profiles)[number]>();
    r.profiles.forEach((p, i) => {
      const at = (k: string) => ['profiles', i, k];
      if (names.has(p.name)) ctx.addIssue({ code: 'custom', path: at('name'), message: `duplicate profile ${p.name}` });
      names.set(p.name, p);
      const need = (keys: string[]) => {
        for (const k of keys)
          if ((p as Record<string, unknown>)[k] === undefined)
            ctx.addIssue({ code: 'custom', path: at(k), message: `${p.type} profile ${p.name} needs ${k}` });
      };
      if (p.type === 'imap') need(['host', 'masterUser', 'masterPassword']);
      else {
        need(['tenantId', 'clientId']);
        if (!p.clientSecret === !p.certificate)
          ctx.addIssue({
            code: 'custom',
            path: at('clientSecret'),
            message: `graph profile ${p.name} needs exactly one of clientSecret and certificate`,
          });
      }
    });
    r.profiles.forEach((p, i) => {
      if (p.next === undefined) return;
      if (!names.has(p.next)) {
        ctx.addIssue({ code: 'custom', path: ['profiles', i, 'next'], message: `no profile ${p.next}` });
        return;
      }
      // A chain must end: following `next` never comes back to a profile already tried.
      const seen = new Set([p.name]);
      for (let n: string | undefined = p.next; n !== undefined; n = names.get(n)?.next) {
        if (seen.has(n)) {
          ctx.addIssue({ code: 'custom', path: ['profiles', i, 'next'], message: `the chain from ${p.name} loops` });
          return;
        }
        seen.add(n);
      }
    });
    r.mappings.forEach((m, i) => {
      if (!names.has(m.profile))
        ctx.addIssue({ code: 'custom', path: ['mappings', i, 'profile'], message: `no profile ${m.profile}` });
    });
  })
  .describe('Mailbox remediation of delivered mail (DESIGN §10; docs/xdr.md)');

export type RemediationConfig = z.infer<typeof remediationSchema>;
export type RemediationProfileConfig = RemediationConfig['profiles'][number];

const SECRET_KEYS = new Set(['masterPassword', 'clientSecret', 'key']);

/** The section with every secret replaced (for any echo of the config: status, logs, API answers). */
export function redactRemediation(r: RemediationConfig): RemediationConfig {
  const redact = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(redact);
    if (v && typeof v === 'object')
      return Object.fromEntries(
        Object.entries(v).map(([k, x]) => [k, SECRET_KEYS.has(k) && typeof x === 'string' ? '(redacted)' : redact(x)]),
      );
    return v;
  };
  return redact(r) as RemediationConfig;
}
