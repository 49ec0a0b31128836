// Who may send, to whom (issue 15): directory queries that validate recipients at RCPT TO (`directory`),
// the listener setting that turns them on (`listeners[].recipientValidation`), and the DNS blocklist and
// allowlist conditions of the host access table (`listeners[].hat[].match`). Part of the one schema in
// schema.ts; src/smtp/ldap-accept.ts and src/smtp/dnsbl.ts use them.
import { z } from 'zod';
import { duration } from './outbreak-schema.ts';

const PLACEHOLDERS = /\{([^}]*)\}/g;

const ldapFilter = z
  .string()
  .min(3)
  .refine((f) => f.startsWith('(') && f.endsWith(')'), 'an LDAP filter in parentheses, such as "(mail={a})"')
  .refine(
    (f) => [...f.matchAll(PLACEHOLDERS)].every((m) => ['a', 'u', 'd'].includes(m[1])),
    'placeholders are {a} (the address), {u} (its local part) and {d} (its domain)',
  )
  .refine((f) => /\{[aud]\}/.test(f), 'the filter needs at least one of {a}, {u}, {d}');

export const ldapQuerySchema = z
  .object({
    name: z.string().min(1).describe('Name of the query, used by listeners[].recipientValidation.ldap and in logs'),
    urls: z
      .array(z.string().regex(/^ldaps?:\/\/[^\s/]+\/?$/, 'ldap://host:port or ldaps://host:port'))
      .min(1)
      .describe('LDAP servers, tried in order: "ldap://dc1.example.com:389", "ldaps://dc2.example.com:636"'),
    bindDn: z
      .string()
      .optional()
      .describe('DN to bind as ("cn=breakwater,ou=services,dc=example,dc=com"); unset: anonymous'),
    bindPassword: z.string().optional().describe('Password of bindDn (secret: masked in answers, never logged)'),
    bindPasswordFile: z
      .string()
      .min(1)
      .optional()
      .describe(
        'File holding the password of bindDn instead of bindPassword (one line; absolute or relative to dataDir; read at start; keep it 0600, a warning is logged when group or others may read it)',
      ),
    base: z.string().min(1).describe('Search base: "ou=people,dc=example,dc=com"'),
    scope: z.enum(['base', 'one', 'sub']).default('sub').describe('Search scope below base'),
    filter: ldapFilter
      .default('(|(mail={a})(mailAlternateAddress={a}))')
      .describe(
        'Accept query: a recipient exists when this filter finds an entry. {a} is the address, {u} its local part, {d} its domain; each is escaped (RFC 4515) before it goes in',
      ),
    timeout: duration.default('3s').describe('Longest wait for the connection, the bind and the search, each'),
    cache: z
      .object({
        positiveTtl: duration.default('1h').describe('How long a recipient found in the directory is remembered'),
        negativeTtl: duration.default('10m').describe('How long a recipient the directory does not know is remembered'),
        staleTtl: duration
          .default('1h')
          .describe(
            'While no server answers, an answer past its TTL is still used for this much longer (logged as stale) instead of 451 4.4.3; 0s: never',
          ),
        maxEntries: z
          .number()
          .int()
          .min(0)
          .default(100_000)
          .describe('Answers kept (0: no cache); the oldest go first'),
      })
      .strict()
      .prefault({})
      .describe('Answers kept in memory, so that a busy or briefly unreachable directory does not hold mail'),
    failureMode: z
      .enum(['tempfail', 'accept'])
      .default('tempfail')
      .describe(
        'When no server answers: tempfail (451 4.4.3 at RCPT TO; the sender retries, nothing is lost) or accept (the recipient is taken unchecked)',
      ),
    tls: z
      .object({
        startTls: z
          .boolean()
          .default(false)
          .describe(
            'For ldap:// servers: upgrade each connection with StartTLS (RFC 4513 §3) before binding; a server that refuses it counts as down (ldaps:// servers are TLS from the start)',
          ),
        caFile: z
          .string()
          .min(1)
          .optional()
          .describe(
            "PEM file of CAs trusted (besides the system roots) for the servers' certificates; absolute or relative to dataDir",
          ),
        verify: z
          .boolean()
          .default(true)
          .describe(
            'Refuse a server certificate that does not verify (chain and host name); false encrypts without knowing who answers',
          ),
      })
      .strict()
      .prefault({})
      .describe('TLS to the directory: ldaps:// URLs, or StartTLS on ldap:// ones'),
  })
  .strict();

export const directorySchema = z
  .object({
    ldap: z.array(ldapQuerySchema).default([]).describe('LDAP accept queries, named; a listener uses one by name'),
  })
  .strict()
  .prefault({})
  .describe('Directories that validate recipients (LDAP accept queries)');

export const recipientValidationSchema = z
  .object({
    ldap: z.string().min(1).describe('Name of the directory.ldap query that decides which recipients exist'),
    domains: z
      .array(z.string().min(1))
      .optional()
      .describe(
        'Recipients checked ("example.com", ".example.com" for subdomains); unset: every recipient the listener accepts. Others are accepted unchecked',
      ),
    maxRefusalsPerSession: z
      .number()
      .int()
      .positive()
      .default(10)
      .describe(
        'Directory harvest limit: unknown recipients (550 5.1.1) allowed per session; past it the client gets 421 4.7.0 and is disconnected',
      ),
    maxRefusalsPerHourPerIp: z
      .number()
      .int()
      .positive()
      .default(50)
      .describe(
        'Directory harvest limit: unknown recipients allowed per hour from one IP address; past it every RCPT TO from it gets 452 4.7.1 (no directory answer) until the hour is over',
      ),
  })
  .strict()
  .optional()
  .describe(
    'Recipient validation at RCPT TO against a directory: unknown recipients get 550 5.1.1 (unset: recipients are not checked)',
  );

const returnCodes = z
  .array(z.string().regex(/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/, 'a 127.0.0.0/8 address such as 127.0.0.2'))
  .min(1)
  .optional()
  .describe('Answers that count as listed ("127.0.0.2", "127.0.0.4"); unset: any 127.0.0.0/8 answer');

const zone = z
  .string()
  .regex(/^[a-z0-9_-]+(\.[a-z0-9_-]+)+\.?$/i, 'a DNS zone such as zen.spamhaus.org')
  .transform((s) => s.toLowerCase().replace(/\.$/, ''));

/** A HAT match condition that asks a DNS list about the client's address. */
export const dnsListConditionSchema = z.union([
  z
    .object({ dnsbl: zone.describe('DNS blocklist zone: the group matches clients listed there'), returnCodes })
    .strict(),
  z
    .object({
      dnswl: zone.describe(
        'DNS allowlist zone: the group matches clients listed there, and a client listed on any allowlist of the listener matches no dnsbl condition',
      ),
      returnCodes,
    })
    .strict(),
]);

export type DirectoryConfig = z.infer<typeof directorySchema>;
export type LdapQueryConfig = DirectoryConfig['ldap'][number];
export type RecipientValidationConfig = NonNullable<z.infer<typeof recipientValidationSchema>>;
export type DnsListCondition = z.infer<typeof dnsListConditionSchema>;

/** Cross-checks for schema.ts's superRefine: names unique, listeners name queries that exist. */
export function checkDirectory(
  cfg: {
    directory: DirectoryConfig;
    listeners: Array<{ recipientValidation?: RecipientValidationConfig | undefined }>;
  },
  ctx: z.RefinementCtx,
): void {
  const names = new Set<string>();
  cfg.directory.ldap.forEach((q, i) => {
    if (names.has(q.name))
      ctx.addIssue({ code: 'custom', path: ['directory', 'ldap', i, 'name'], message: `duplicate query ${q.name}` });
    names.add(q.name);
    if (q.bindPassword !== undefined && q.bindPasswordFile !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['directory', 'ldap', i, 'bindPasswordFile'],
        message: `bindPassword and bindPasswordFile (${q.bindPasswordFile}) are both set: keep one`,
      });
    if ((q.bindPassword !== undefined || q.bindPasswordFile !== undefined) && q.bindDn === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['directory', 'ldap', i, 'bindDn'],
        message: `${q.bindPassword !== undefined ? 'bindPassword' : 'bindPasswordFile'} needs a bindDn`,
      });
  });
  cfg.listeners.forEach((l, i) => {
    const rv = l.recipientValidation;
    if (rv && !names.has(rv.ldap))
      ctx.addIssue({
        code: 'custom',
        path: ['listeners', i, 'recipientValidation', 'ldap'],
        message: `no directory.ldap query named ${rv.ldap}`,
      });
  });
}
