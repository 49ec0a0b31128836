// Config sections for sender authentication (DESIGN §7, docs/sender-auth.md): the global `senderAuth`
// section (SPF, DKIM, DMARC and ARC verification, the DNS resolver it uses) and each mail policy's
// `senderAuth` settings (what a DMARC `reject` or `quarantine` policy does). Part of the one schema in
// schema.ts.
import { z } from 'zod';
import { duration } from './outbreak-schema.ts';
import { address, domainName, reportMaxDomains, reportSendAt, singleLine } from './outbound-schema.ts';

const quarantineName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'lower-case letters, digits, "-" and "_" (at most 64)');

const asciiText = z.string().regex(/^[\x20-\x7e]*$/, 'US-ASCII printable characters only');

/** "1.2.3.4", "1.2.3.4:5353", "::1", "[::1]:5353": what node:dns setServers takes. */
const dnsServer = z
  .string()
  .regex(
    /^(?:\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?|[0-9a-fA-F:]*:[0-9a-fA-F:.]*|\[[0-9a-fA-F:.]+\](?::\d{1,5})?)$/,
    'an IP address, optionally with a port: "127.0.0.1:5353", "::1", "[::1]:5353"',
  );

/** Authentication-Results authserv-id (RFC 8601 §2.5): a host name. */
const authservId = z
  .string()
  .regex(/^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/, 'a host name such as mx.example.com');

export const senderAuthSchema = z
  .object({
    enabled: z
      .boolean()
      .default(true)
      .describe(
        'Verify SPF, DKIM, DMARC and ARC of mail from the internet (the `senderAuth` stage) and write one Authentication-Results header. Without a reachable DNS server every check is temperror (the header says so) and mail still flows',
      ),
    directions: z
      .array(z.enum(['incoming', 'outgoing']))
      .default(['incoming'])
      .describe(
        'Listener directions whose mail is verified: incoming (from the internet); outgoing mail comes from your own relay clients',
      ),
    authservId: authservId
      .optional()
      .describe(
        'The authserv-id of our Authentication-Results header (RFC 8601 §2.5); unset: the gateway hostname. Incoming Authentication-Results headers claiming this id are removed as forged',
      ),
    timeout: duration
      .default('10s')
      .describe(
        'Longest time the checks of one message may take; a check still waiting for DNS then is temperror (the message is never held back longer)',
      ),
    minKeyBits: z
      .number()
      .int()
      .min(512)
      .max(4096)
      .default(1024)
      .describe('Smallest RSA key a DKIM or ARC signature may use; smaller keys fail (RFC 8301 asks for 1024)'),
    trustedArcSealers: z
      .array(
        z
          .string()
          .regex(
            /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$/i,
            'a domain such as lists.example.org',
          )
          .transform((d) => d.toLowerCase()),
      )
      .max(200)
      .default([])
      .describe(
        'Intermediaries (the d= of their ARC seal: mailing lists, forwarding services, your upstream filter) whose word you take: mail that fails DMARC here, with a valid ARC chain whose newest set is theirs and records dmarc=pass for the same From domain, is not acted on as a DMARC failure (RFC 7489 §6.7 local policy override; RFC 8617 §7.2). Recorded in tracking as an override',
      ),
    dns: z
      .object({
        servers: z
          .array(dnsServer)
          .default([])
          .describe(
            'DNS servers asked, e.g. ["127.0.0.1:5353"] for a local caching resolver; empty: the servers of the `dns` section, else the system resolvers (/etc/resolv.conf)',
          ),
        timeout: duration.default('2s').describe('Wait for one DNS answer before asking again (or giving up)'),
        tries: z.number().int().min(1).max(5).default(2).describe('Attempts per DNS query'),
        cacheTtl: duration
          .default('5m')
          .describe(
            'How long answers (records, NXDOMAIN and no-data) are kept; DNS failures are never cached. "0s": no cache',
          ),
        cacheSize: z
          .number()
          .int()
          .min(0)
          .max(1_000_000)
          .default(20_000)
          .describe('Answers kept in the cache at most (the oldest go first)'),
        lookupBudget: z
          .number()
          .int()
          .min(5)
          .max(1000)
          .default(60)
          .describe(
            'DNS lookups one message may cause across all its checks (SPF also keeps the 10-lookup and 2-void-lookup limits of RFC 7208 §4.6.4); past it, lookups are temperror',
          ),
        downAfter: z
          .number()
          .int()
          .min(0)
          .max(1000)
          .default(5)
          .describe(
            'Consecutive timed-out queries after which the DNS servers count as down: lookups then fail at once (temperror) and one query every 5 s checks whether they are back. 0: never',
          ),
      })
      .strict()
      .prefault({})
      .describe('The resolver sender authentication uses (timeouts, cache, per-message lookup budget)'),
    dmarcReports: z
      .object({
        enabled: z
          .boolean()
          .default(false)
          .describe(
            'Send the daily aggregate reports to the `rua=` addresses of the domains whose DMARC records applied to incoming mail; off by default because they go to third parties. Messages are counted either way (`breakwater dmarc report show`)',
          ),
        orgName: singleLine.optional().describe('org_name of the reports: who reports (default: hostname)'),
        email: address
          .optional()
          .describe(
            'The reporting address: the reports’ email element, header From and envelope sender (default: dmarc-noreply@hostname). Reports should pass DMARC themselves: sign its domain (outbound.dkim)',
          ),
        submitter: domainName
          .optional()
          .describe('The submitter domain (Submitter in the subject, the report file name; default: hostname)'),
        sendAt: reportSendAt,
        maxDomains: reportMaxDomains('messages of further domains'),
        retention: duration.default('30d').describe('How long message counts and sent reports are kept'),
      })
      .strict()
      .prefault({})
      .describe(
        'DMARC aggregate reports (RFC 7489 §7.2): per UTC day and policy domain, the mail received from each source with its authentication results and what was done, reported daily to the domain’s mailto: `rua` addresses (at most two; one outside the domain only when it authorizes it, §7.1) through our own queue',
      ),
  })
  .strict()
  .prefault({})
  .describe('Sender authentication: SPF, DKIM, DMARC and ARC (DESIGN §7, docs/sender-auth.md)');

const dmarcAction = <const T extends readonly [string, ...string[]]>(actions: T, def: T[number], what: string) =>
  z
    .object({
      action: z
        .enum(actions)
        .default(def)
        .describe(
          `What happens to mail whose Author Domain publishes p=${what} and fails DMARC: ${actions.join(', ')}`,
        ),
      quarantine: quarantineName
        .optional()
        .describe('The policy quarantine for action quarantine (a quarantine.policy entry)'),
      subjectTag: asciiText
        .default('[SUSPECTED SPOOF] ')
        .describe('Prepended to the subject for action tag (delivered, marked as suspicious)'),
      reply: z
        .string()
        .regex(/^5\d\d [245]\.\d{1,3}\.\d{1,3} [\x20-\x7e]+$/, 'an SMTP reply such as "550 5.7.1 text"')
        .default("550 5.7.1 Unauthenticated email is not accepted due to the domain's DMARC policy")
        .describe('The reply in the bounce (DSN) for action bounce'),
    })
    .strict()
    .refine((s) => s.action !== 'quarantine' || !!s.quarantine, {
      message: 'action quarantine needs a quarantine (a quarantine.policy entry)',
      path: ['quarantine'],
    });

export const policySenderAuthSchema = z
  .object({
    mode: z
      .enum(['inherit', 'custom', 'disabled'])
      .default('inherit')
      .describe(
        'inherit: the default policy of the same direction; custom: the settings below; disabled: no verification for this policy (no header, no DMARC action)',
      ),
    dmarcReject: dmarcAction(['drop', 'bounce', 'quarantine', 'tag', 'none'], 'drop', 'reject')
      .prefault({})
      .describe(
        'DMARC p=reject failures (the verdict comes after the message was accepted, so "reject" is drop — no backscatter — or bounce, a DSN to the envelope sender)',
      ),
    dmarcQuarantine: dmarcAction(['tag', 'quarantine', 'drop', 'none'], 'tag', 'quarantine')
      .prefault({})
      .describe('DMARC p=quarantine failures ("treat as suspicious", RFC 7489 §6.3): tag the subject, or hold them'),
    honorPct: z
      .boolean()
      .default(true)
      .describe(
        'Apply the policy to the pct= share of failing mail only, the rest as the next lower policy (RFC 7489 §6.6.4)',
      ),
  })
  .strict()
  .prefault({})
  .describe('Sender authentication settings of this policy: what DMARC reject and quarantine policies do');

/** Every policy's DMARC quarantine names a quarantine that exists (added to the schema's refinements). */
export function checkSenderAuthQuarantines(
  cfg: {
    quarantine: { policy: Array<{ name: string }> };
    policies: Record<'incoming' | 'outgoing', Array<{ senderAuth: z.infer<typeof policySenderAuthSchema> }>>;
  },
  ctx: z.RefinementCtx,
): void {
  const names = new Set(cfg.quarantine.policy.map((q) => q.name));
  for (const dir of ['incoming', 'outgoing'] as const)
    cfg.policies[dir].forEach((p, i) => {
      for (const k of ['dmarcReject', 'dmarcQuarantine'] as const) {
        const q = p.senderAuth[k].quarantine;
        if (p.senderAuth[k].action === 'quarantine' && q && !names.has(q))
          ctx.addIssue({
            code: 'custom',
            path: ['policies', dir, i, 'senderAuth', k, 'quarantine'],
            message: `no quarantine.policy entry named ${q}`,
          });
      }
    });
}

export type SenderAuthConfig = z.infer<typeof senderAuthSchema>;
export type PolicySenderAuthConfig = z.infer<typeof policySenderAuthSchema>;
