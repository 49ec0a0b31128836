// The one configuration schema: defaults, validation, docs/config-reference.md and (later) the UI's
// forms all come from here. Every key has a description; defaults live next to the key.
import { z } from 'zod';
import {
  alertsSchema,
  antivirusSchema,
  policyAntivirusSchema,
  policyUnscannableSchema,
  byteSize,
  duration,
  clickTimeSchema,
  outbreakFiltersSchema,
  policyOutbreakSchema,
  quarantineSchema,
} from './outbreak-schema.ts';
import { cloudSchema } from './cloud-schema.ts';
import { endUserQuarantineSchema } from './enduser-schema.ts';
import { userLoginSchema, userSessionsSchema } from './users-schema.ts';
import { xdrSchema } from './xdr-schema.ts';
import { remediationSchema } from './remediation-schema.ts';
import { antispamSchema, policyAntispamSchema } from './antispam-schema.ts';
import {
  checkDirectory,
  directorySchema,
  dnsListConditionSchema,
  recipientValidationSchema,
} from './directory-schema.ts';
import { dnsSchema } from './dns-schema.ts';
import { outboundSchema } from './outbound-schema.ts';
import { checkSenderAuthQuarantines, policySenderAuthSchema, senderAuthSchema } from './sender-auth-schema.ts';

export function parseDuration(text: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(text);
  if (!m) throw new Error(`bad duration ${text}`);
  const n = Number(m[1]);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  return n * unit;
}

export function parseByteSize(v: number | string): number {
  if (typeof v === 'number') return v;
  const m = /^(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB)$/i.exec(v)!;
  const mult: Record<string, number> = { b: 1, kb: 1e3, kib: 1024, mb: 1e6, mib: 1 << 20, gb: 1e9, gib: 1 << 30 };
  return Math.round(Number(m[1]) * mult[m[2].toLowerCase()]);
}

const ipOrCidr = z.string().refine((s) => isIpOrCidr(s), 'an IP address or CIDR such as 10.0.0.0/8 or ::1');

function isIpOrCidr(s: string): boolean {
  const [ip, bits, ...rest] = s.split('/');
  if (rest.length) return false;
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  const isV4 = !!v4 && v4.slice(1).every((o) => Number(o) <= 255);
  const isV6 = !isV4 && ip.includes(':') && /^[0-9a-fA-F:.]+$/.test(ip);
  if (!isV4 && !isV6) return false;
  if (bits === undefined) return true;
  const b = Number(bits);
  return /^\d+$/.test(bits) && b >= 0 && b <= (isV4 ? 32 : 128);
}

export const senderGroupSchema = z
  .object({
    name: z.string().min(1).describe('Name of the sender group, shown in logs and tracking'),
    match: z
      .array(
        z.union([
          ipOrCidr,
          z
            .string()
            .regex(/^\.[a-z0-9.-]+$/i)
            .describe('reverse-DNS suffix, starting with a dot: ".example.net"'),
          z.literal('ALL'),
          dnsListConditionSchema,
        ]),
      )
      .min(1)
      .describe(
        'Who is in the group: IP addresses, CIDR blocks, reverse-DNS suffixes (".example.net"), ALL, or DNS lists ({ dnsbl: zone } / { dnswl: zone })',
      ),
    action: z
      .enum(['accept', 'relay', 'reject', 'tempfail'])
      .describe(
        'accept: may send to accepted domains; relay: may also send anywhere (outgoing listeners only); reject: 554 at greeting; tempfail: 421 at greeting',
      ),
    earlyTalkerDelay: duration
      .default('100ms')
      .describe('Pause before the greeting; a client that talks first is refused. "0ms" for trusted groups'),
    maxMessagesPerSession: z.number().int().positive().default(1000).describe('Messages allowed per SMTP session'),
    maxRecipientsPerMessage: z
      .number()
      .int()
      .positive()
      .default(1000)
      .describe('RCPT TO commands accepted per message'),
    maxMessageSize: byteSize.default('50MiB').describe('Largest message accepted (SIZE)'),
    maxConcurrentConnectionsPerIp: z
      .number()
      .int()
      .positive()
      .default(100)
      .describe('Concurrent sessions allowed from one IP address'),
    maxRecipientsPerHourPerIp: z
      .number()
      .int()
      .positive()
      .optional()
      .describe('Recipients accepted per hour from one IP address (unlimited when unset)'),
    directoryHarvest: z
      .object({
        maxRefusalsPerSession: z
          .number()
          .int()
          .positive()
          .optional()
          .describe('Unknown recipients allowed per session for this group; past it 421 4.7.0 and disconnect'),
        maxRefusalsPerHourPerIp: z
          .number()
          .int()
          .positive()
          .optional()
          .describe('Unknown recipients allowed per hour from one IP address of this group; past it 452 4.7.1'),
      })
      .strict()
      .optional()
      .describe(
        "This group's directory harvest limits, in place of the listener's recipientValidation ones (stricter for unknown or listed senders, looser for partners that send to many stale addresses); unset: the listener's",
      ),
  })
  .strict();

export const listenerSchema = z
  .object({
    name: z.string().min(1).describe('Listener name, used in logs and tracking'),
    host: z.string().default('0.0.0.0').describe('Address to listen on'),
    port: z.number().int().min(0).max(65535).describe('TCP port (0 picks a free port; used by tests)'),
    direction: z
      .enum(['incoming', 'outgoing'])
      .describe('incoming: mail for acceptDomains, incoming policies; outgoing: relay for relay groups'),
    acceptDomains: z
      .array(z.string().min(1))
      .default([])
      .describe(
        'Recipient access table of an incoming listener: domains ("example.test", ".example.test" for subdomains) or addresses accepted',
      ),
    hat: z
      .array(senderGroupSchema)
      .min(1)
      .describe('Host access table: ordered sender groups; the first group that matches the client decides'),
    defaultAction: z
      .enum(['accept', 'reject', 'tempfail'])
      .default('accept')
      .describe('Action for clients that match no sender group (never relay)'),
    recipientValidation: recipientValidationSchema,
    tls: z
      .object({
        cert: z.string().optional().describe('PEM certificate file; a self-signed one is made in dataDir when unset'),
        key: z.string().optional().describe('PEM private key file'),
      })
      .strict()
      .default({})
      .describe('STARTTLS certificate'),
  })
  .strict();

const routeTarget = z
  .string()
  .regex(
    /^((smtp|lmtp):\/\/[^\s/]+:\d+|mx|file:.+)$/,
    'smtp://host:port, lmtp://host:port (a mailbox server that speaks LMTP, RFC 2033), "mx" (DNS MX lookup) or file:DIR (write delivered messages to a folder)',
  );

export const policySchema = z
  .object({
    name: z.string().min(1).describe('Policy name; the last policy must be named "default"'),
    match: z
      .array(z.string().min(1))
      .default([])
      .describe(
        'Addresses ("a@x.test"), domains ("x.test"), subdomain wildcards (".x.test") or "@x.test"; recipients for incoming, senders for outgoing',
      ),
    outbreakFilters: policyOutbreakSchema,
    antivirus: policyAntivirusSchema,
    unscannable: policyUnscannableSchema,
    antispam: policyAntispamSchema,
    senderAuth: policySenderAuthSchema,
  })
  .strict();

/** RFC 5424 syslog export of the mail log (log.syslog). */
export const syslogSchema = z
  .object({
    transport: z
      .enum(['udp', 'tcp', 'tls', 'unix'])
      .default('udp')
      .describe('udp (RFC 5426), tcp or tls (RFC 6587 octet counting; RFC 5425), or unix (a local stream socket)'),
    host: z.string().min(1).default('127.0.0.1').describe('Syslog server (udp, tcp, tls)'),
    port: z
      .number()
      .int()
      .min(1)
      .max(65535)
      .optional()
      .describe('Syslog server port (default 514 for udp and tcp, 6514 for tls)'),
    path: z.string().min(1).default('/dev/log').describe('Local socket (unix)'),
    facility: z
      .enum(['mail', 'local0', 'local1', 'local2', 'local3', 'local4', 'local5', 'local6', 'local7'])
      .default('mail')
      .describe('Syslog facility'),
    appName: z
      .string()
      .regex(/^[!-~]{1,48}$/, 'printable US-ASCII, no spaces, at most 48')
      .default('breakwater'),
    ca: z.string().min(1).optional().describe('PEM file of the CA that signs the server certificate (tls)'),
    rejectUnauthorized: z.boolean().default(true).describe('Refuse a tls server whose certificate does not verify'),
    maxQueue: z
      .number()
      .int()
      .min(100)
      .max(1_000_000)
      .default(10_000)
      .describe('Lines kept while the server cannot be reached; beyond, the oldest are dropped and counted'),
  })
  .strict();

export const configSchema = z
  .object({
    hostname: z.string().min(1).default('breakwater.localdomain').describe('Name in the greeting and Received lines'),
    dataDir: z.string().default('./data').describe('Spool, database, logs and keys, relative to the config file'),
    listeners: z.array(listenerSchema).min(1).describe('SMTP listeners'),
    routes: z
      .record(z.string(), z.array(routeTarget).min(1))
      .default({ '*': ['mx'] })
      .describe('Delivery routes: recipient domain (or "*") to targets tried in order'),
    policies: z
      .object({
        incoming: z.array(policySchema).prefault([{ name: 'default' }]),
        outgoing: z.array(policySchema).prefault([{ name: 'default' }]),
      })
      .strict()
      .prefault({})
      .describe('Mail policies, ordered; first match wins; "default" last'),
    delivery: z
      .object({
        retrySchedule: z
          .array(duration)
          .min(1)
          .default(['1m', '5m', '15m', '30m', '1h', '2h', '4h'])
          .describe('Waits between delivery attempts; the last one repeats until maxQueueLifetime'),
        maxQueueLifetime: duration.default('5d').describe('After this, undelivered recipients bounce (RFC 3464 DSN)'),
        concurrencyPerDestination: z
          .number()
          .int()
          .positive()
          .default(20)
          .describe('Connections open at once to one route target'),
        messagesPerConnection: z
          .number()
          .int()
          .positive()
          .default(100)
          .describe('Messages sent over one downstream connection before it is closed'),
        connectTimeout: duration.default('30s').describe('Downstream connect and greeting timeout'),
        sessionTimeout: duration
          .default('10m')
          .describe(
            'Longest wait for any downstream reply once connected (RFC 5321 §4.5.3.2 suggests 10 minutes for the reply to the final dot); then the recipients are deferred',
          ),
        requireTls: z.boolean().default(false).describe('Refuse to deliver over plain SMTP'),
      })
      .strict()
      .default({
        retrySchedule: ['1m', '5m', '15m', '30m', '1h', '2h', '4h'],
        maxQueueLifetime: '5d',
        concurrencyPerDestination: 20,
        messagesPerConnection: 100,
        connectTimeout: '30s',
        sessionTimeout: '10m',
        requireTls: false,
      })
      .describe('Delivery queue'),
    spool: z
      .object({
        fsync: z
          .boolean()
          .default(true)
          .describe('fsync each message and its directory entry before replying 250 (never turn off in production)'),
        minFree: byteSize
          .default('64MiB')
          .describe(
            "Free space the data directory's file system must keep (like Postfix's queue_minfree): below it new mail gets 452 4.3.1 at MAIL FROM until space frees",
          ),
      })
      .strict()
      .default({ fsync: true, minFree: '64MiB' })
      .describe('Spool'),
    workers: z
      .union([z.literal('auto'), z.number().int().min(1).max(16)])
      .default('auto')
      .describe(
        'Worker threads that parse, score and modify messages off the event loop; auto: one per core beyond the first, at least 2 and at most 4',
      ),
    smtp: z
      .object({
        allowNul: z
          .boolean()
          .default(false)
          .describe(
            'Accept messages whose data holds NUL bytes; off: such a message gets 554 5.6.0 and nothing is stored',
          ),
        dataTimeout: duration
          .default('10m')
          .describe('Longest time one DATA transfer may take; past it the client gets 451 4.4.2 and is disconnected'),
        dataMinRate: z
          .number()
          .int()
          .min(0)
          .default(500)
          .describe(
            'Slowest average DATA rate, in bytes per second, once dataRateGrace has passed (451 4.4.2 and disconnect below it; 0: no minimum)',
          ),
        dataRateGrace: duration.default('30s').describe('Time at the start of DATA before dataMinRate applies'),
        postmaster: z
          .string()
          .regex(/^[^\s@<>]+@[^\s@<>]+$/, 'an address such as hostmaster@example.com')
          .optional()
          .describe(
            'Where mail for the domainless recipient <postmaster> goes (RFC 5321 §4.5.1); unset: the first alerts.recipients address, else postmaster@ the first domain the listener accepts',
          ),
      })
      .strict()
      .prefault({})
      .describe('SMTP session limits and special recipients'),
    admin: z
      .object({
        host: z.string().default('127.0.0.1').describe('Admin API address'),
        port: z.number().int().min(0).max(65535).default(8025).describe('Admin API port'),
        sessions: userSessionsSchema,
        login: userLoginSchema,
        tls: z
          .object({
            enabled: z.boolean().default(false).describe('Serve the admin API and web UI over HTTPS only'),
            cert: z
              .string()
              .optional()
              .describe('PEM certificate file; unset: the self-signed certificate in dataDir/tls (as for STARTTLS)'),
            key: z.string().optional().describe('PEM private key file'),
          })
          .strict()
          .refine((t) => !t.cert === !t.key, { message: 'cert and key go together', path: ['key'] })
          .prefault({})
          .describe('HTTPS for the admin port (the session cookie is then Secure)'),
      })
      .strict()
      .prefault({})
      .describe('Admin API and web UI (REST, metrics, health, users and sessions)'),
    log: z
      .object({
        maxSize: byteSize.default('100MiB').describe('Rotate mail.log at this size'),
        keep: z.number().int().min(1).default(10).describe('Rotated mail logs kept'),
        syslog: syslogSchema.optional().describe('Also send every mail log line to a syslog server (a SIEM)'),
      })
      .strict()
      .default({ maxSize: '100MiB', keep: 10 })
      .describe('Mail log'),
    outbreakFilters: outbreakFiltersSchema,
    antivirus: antivirusSchema,
    antispam: antispamSchema,
    clickTime: clickTimeSchema,
    alerts: alertsSchema,
    quarantine: quarantineSchema,
    endUserQuarantine: endUserQuarantineSchema,
    cloud: cloudSchema.describe('Cloud services: the threat-response hub (DESIGN §10)'),
    xdr: xdrSchema,
    remediation: remediationSchema,
    directory: directorySchema,
    dns: dnsSchema,
    outbound: outboundSchema,
    senderAuth: senderAuthSchema,
  })
  .strict()
  .superRefine((cfg, ctx) => {
    checkDirectory(cfg, ctx);
    checkSenderAuthQuarantines(cfg, ctx);
    for (const dir of ['incoming', 'outgoing'] as const) {
      const list = cfg.policies[dir];
      if (list.length === 0 || list[list.length - 1].name !== 'default') {
        ctx.addIssue({ code: 'custom', path: ['policies', dir], message: 'the last policy must be named "default"' });
      }
      const seen = new Set<string>();
      list.forEach((p, i) => {
        if (seen.has(p.name))
          ctx.addIssue({ code: 'custom', path: ['policies', dir, i, 'name'], message: `duplicate policy ${p.name}` });
        seen.add(p.name);
      });
    }
    const quarantines = new Set<string>(['outbreak', 'virus']);
    cfg.quarantine.policy.forEach((q, i) => {
      if (quarantines.has(q.name))
        ctx.addIssue({
          code: 'custom',
          path: ['quarantine', 'policy', i, 'name'],
          message:
            q.name === 'outbreak' || q.name === 'virus'
              ? `${q.name} is a system quarantine; choose another name`
              : `duplicate quarantine ${q.name}`,
        });
      quarantines.add(q.name);
    });
    for (const dir of ['incoming', 'outgoing'] as const)
      cfg.policies[dir].forEach((p, i) => {
        const q = p.unscannable.quarantine;
        if (!quarantines.has(q) || q === 'outbreak')
          ctx.addIssue({
            code: 'custom',
            path: ['policies', dir, i, 'unscannable', 'quarantine'],
            message: `no quarantine ${q} (virus or a quarantine.policy entry)`,
          });
        for (const verdict of ['spam', 'reject'] as const) {
          const q = p.antispam[verdict].quarantine;
          if (p.antispam[verdict].action === 'quarantine' && (!quarantines.has(q) || q === 'outbreak'))
            ctx.addIssue({
              code: 'custom',
              path: ['policies', dir, i, 'antispam', verdict, 'quarantine'],
              message: `no quarantine ${q} (virus or a quarantine.policy entry)`,
            });
        }
        for (const verdict of ['infected', 'unscannable'] as const) {
          const q = p.antivirus[verdict].quarantine;
          if (!quarantines.has(q) || q === 'outbreak')
            ctx.addIssue({
              code: 'custom',
              path: ['policies', dir, i, 'antivirus', verdict, 'quarantine'],
              message: `no quarantine ${q} (virus or a quarantine.policy entry)`,
            });
        }
      });
    const names = new Set<string>();
    cfg.listeners.forEach((l, i) => {
      if (names.has(l.name))
        ctx.addIssue({ code: 'custom', path: ['listeners', i, 'name'], message: `duplicate listener ${l.name}` });
      names.add(l.name);
      if (l.direction === 'incoming' && l.acceptDomains.length === 0)
        ctx.addIssue({
          code: 'custom',
          path: ['listeners', i, 'acceptDomains'],
          message: 'an incoming listener needs at least one accepted domain or address',
        });
      l.hat.forEach((g, j) => {
        if (g.action === 'relay' && l.direction === 'incoming')
          ctx.addIssue({
            code: 'custom',
            path: ['listeners', i, 'hat', j, 'action'],
            message: 'relay is only allowed on outgoing listeners (no open relay); use accept',
          });
      });
    });
  });

export type Config = z.infer<typeof configSchema>;
export type PolicyConfig = Config['policies']['incoming'][number];
export type PolicyOutbreakConfig = PolicyConfig['outbreakFilters'];
export type PolicyAntivirusConfig = PolicyConfig['antivirus'];
export type PolicyUnscannableConfig = PolicyConfig['unscannable'];
export type PolicyAntispamConfig = PolicyConfig['antispam'];
export type ListenerConfig = Config['listeners'][number];
export type SenderGroup = ListenerConfig['hat'][number];
