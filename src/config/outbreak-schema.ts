// Config sections for Outbreak Filters (DESIGN §4.3, §4.4), the click-time service (§4.6), alerts (§6)
// and quarantines (§5). Part of the one schema in schema.ts; kept apart so each section reads whole.
import { z } from 'zod';
import { DEFAULT_UNSCANNABLE_LIMITS, UNSCANNABLE_KINDS } from '../policy/unscannable.ts';

export const duration = z
  .string()
  .regex(/^\d+(ms|s|m|h|d)$/, 'a duration such as "500ms", "30s", "5m", "4h" or "5d"')
  .describe('duration: a number followed by ms, s, m, h or d');

export const byteSize = z
  .union([z.number().int().positive(), z.string().regex(/^\d+(\.\d+)?\s*(B|KB|KiB|MB|MiB|GB|GiB)$/i)])
  .describe('bytes, or a size such as "10MiB"');

const level = z.number().int().min(1).max(5);

/** Subject text: US-ASCII printable only (DESIGN §4.4); variables are expanded at modification time. */
const asciiText = z.string().regex(/^[\x20-\x7e]*$/, 'US-ASCII printable characters only');

const extension = z
  .string()
  .regex(/^[a-z0-9]{1,16}$/i, 'a file extension without the dot, e.g. "pdf"')
  .transform((s) => s.toLowerCase());

export const policyOutbreakSchema = z
  .object({
    mode: z
      .enum(['inherit', 'custom', 'disabled'])
      .default('inherit')
      .describe(
        'inherit: use the default policy of the same direction; custom: the settings below; disabled: no Outbreak Filters scanning (the default policy treats inherit as custom)',
      ),
    quarantineThreshold: level
      .default(3)
      .describe('Threat level (1–5) at or above which a message is held in the Outbreak quarantine'),
    retention: z
      .object({
        viral: duration.default('1d').describe('Longest hold for threats found in attachments'),
        other: duration.default('4h').describe('Longest hold for non-viral threats (phishing, scams, malicious links)'),
      })
      .strict()
      .prefault({})
      .describe('Maximum time in the Outbreak quarantine; when it ends the message is rescanned and released'),
    deliverWithoutQuarantine: z
      .boolean()
      .default(false)
      .describe('Non-viral threats are modified and delivered at once instead of held'),
    bypassExtensions: z
      .array(extension)
      .default([])
      .describe(
        'Attachment extensions not scored (also inside archives); a message with other attachments that rules cover is still scanned whole',
      ),
    modification: z
      .object({
        enabled: z
          .boolean()
          .default(true)
          .describe('Modify non-viral threat messages; must be on for non-viral threats to be quarantined at all'),
        threshold: level.default(3).describe('Threat level (1–5) at or above which non-viral threats are modified'),
        subject: z
          .object({
            mode: z.enum(['prepend', 'append', 'none']).default('prepend').describe('Where the subject tag goes'),
            text: asciiText
              .default('[Possible $threat_category Fraud] ')
              .describe(
                'Subject tag; variables: $threat_level, $threat_category, $threat_type, $threat_description, $threat_verdict',
              ),
          })
          .strict()
          .prefault({})
          .describe('Subject tag of modified messages'),
        headers: z
          .enum(['threats', 'all', 'off'])
          .default('threats')
          .describe('Add X-Breakwater-Outbreak-Status to threat messages only, to every scanned message, or never'),
        descriptionHeader: z.boolean().default(true).describe('Also add X-Breakwater-Outbreak-Description'),
        disclaimer: z
          .object({
            enabled: z.boolean().default(true).describe('Insert the disclaimer above the body of modified messages'),
            text: z
              .string()
              .max(4096)
              .default(
                'Caution: this message was flagged as a possible threat ($threat_category, level $threat_level): $threat_description. Do not open its links or attachments unless you trust the sender.',
              )
              .describe('Disclaimer for text/plain parts (same variables as the subject)'),
            html: z
              .string()
              .max(8192)
              .default(
                '<div style="border:2px solid #b45309;background:#fffbeb;color:#78350f;padding:8px 12px;margin:0 0 12px 0;font-family:sans-serif;font-size:14px"><strong>Caution:</strong> this message was flagged as a possible threat ($threat_category, level $threat_level): $threat_description. Do not open its links or attachments unless you trust the sender.</div>',
              )
              .describe('Disclaimer for text/html parts (HTML; variables are HTML-escaped when expanded)'),
          })
          .strict()
          .prefault({})
          .describe('Threat disclaimer'),
        alternateMailHost: z
          .string()
          .regex(/^(smtp:\/\/[^\s/]+:\d+|file:.+)$/, 'smtp://host:port or file:DIR')
          .optional()
          .describe('Deliver modified threat messages to this host instead of the normal route'),
        urlRewriting: z
          .enum(['unsigned', 'all', 'off'])
          .default('unsigned')
          .describe(
            'Rewrite links to the click-time service: only in unsigned messages (DKIM/S-MIME signatures stay valid), in all, or never',
          ),
        bypassDomains: z
          .array(z.string().min(1))
          .default([])
          .describe('Domains (and their subdomains) or IP addresses whose links are never rewritten'),
      })
      .strict()
      .prefault({})
      .describe('Message modification (DESIGN §4.4)'),
  })
  .strict()
  .prefault({})
  .describe('Outbreak Filters settings of this policy');

export const outbreakFiltersSchema = z
  .object({
    enabled: z.boolean().default(true).describe('Outbreak Filters scanning for every policy that does not disable it'),
    adaptiveRules: z.boolean().default(true).describe('Score messages with the built-in adaptive rules too'),
    maxScanSize: byteSize
      .default('2MiB')
      .describe('Larger messages are not scanned by Outbreak Filters and are tagged so in tracking'),
    alerts: z
      .boolean()
      .default(true)
      .describe('Raise outbreak alerts (rule changes, threshold crossings, feed failures)'),
    logUrls: z.boolean().default(false).describe('Write every URL found in a message into the mail log'),
    webInteractionTracking: z.boolean().default(true).describe('Record every click on a rewritten link'),
    ruleFeed: z
      .object({
        url: z.url().optional().describe('HTTP(S) URL of the signed rule bundle'),
        dir: z
          .string()
          .optional()
          .describe('Local directory holding signed rule bundles (*.json), relative to the config file'),
        publicKey: z
          .string()
          .optional()
          .describe('Ed25519 public key (base64) that bundles must be signed with; required when a feed is set'),
        timeout: duration.default('30s').describe('Fetch timeout'),
        maxSize: byteSize.default('32MiB').describe('Largest bundle accepted'),
      })
      .strict()
      .prefault({})
      .describe('Where signed outbreak rule bundles come from (DESIGN §4.2)'),
    ruleUpdateInterval: duration.default('5m').describe('How often the rule feed is polled'),
    reevaluateInterval: duration.default('1m').describe('How often held messages are checked for their scheduled exit'),
  })
  .strict()
  .prefault({})
  .superRefine((o, ctx) => {
    if ((o.ruleFeed.url || o.ruleFeed.dir) && !o.ruleFeed.publicKey)
      ctx.addIssue({
        code: 'custom',
        path: ['ruleFeed', 'publicKey'],
        message: 'a rule feed needs the publisher public key (bundles are always verified)',
      });
    if (o.ruleFeed.url && o.ruleFeed.dir)
      ctx.addIssue({ code: 'custom', path: ['ruleFeed'], message: 'set either url or dir, not both' });
  })
  .describe('Outbreak Filters global settings (DESIGN §4.3)');

export const clickTimeSchema = z
  .object({
    enabled: z.boolean().default(true).describe('Run the click-time service (links are only rewritten when it runs)'),
    host: z.string().default('127.0.0.1').describe('Address the click-time service listens on'),
    port: z.number().int().min(0).max(65535).default(8026).describe('Click-time service port'),
    baseUrl: z
      .string()
      .regex(/^https?:\/\/[^\s/]+(\/[^\s]*)?$/, 'an http(s) URL such as https://click.example.com')
      .optional()
      .describe('Public base URL of the service used in rewritten links (default http://<host>:<port>)'),
    verdictTimeout: duration.default('2s').describe('Past this, the click is let through and logged as unknown'),
    linkLifetime: duration.default('30d').describe('Rewritten links stop working after this'),
    warnLevel: level.default(1).describe('URL threat level at or above which the warning page is shown'),
    blockLevel: level.default(4).describe('URL threat level at or above which the link is blocked'),
    blockList: z
      .array(z.string().min(1))
      .default([])
      .describe('Domains (with subdomains) or URL prefixes that are always blocked at click time'),
    allowList: z
      .array(z.string().min(1))
      .default([])
      .describe('Domains (with subdomains) or URL prefixes that are always let through'),
    branding: z
      .object({
        productName: z.string().default('Breakwater').describe('Name on the warning and block pages'),
        logoUrl: z.string().optional().describe('Logo image URL shown on the pages'),
        contactText: z.string().optional().describe('Who to contact, e.g. "IT Service Desk, ext. 4357"'),
        contactUrl: z.string().optional().describe('Link for the contact text'),
      })
      .strict()
      .prefault({})
      .describe('Branding of the click-time pages'),
  })
  .strict()
  .prefault({})
  .describe('Click-time URL protection service (DESIGN §4.6)');

export const alertsSchema = z
  .object({
    recipients: z.array(z.string().min(3)).default([]).describe('Addresses that get alert e-mails'),
    from: z.string().optional().describe('Sender of alert e-mails (default breakwater@<hostname>)'),
    minSeverity: z
      .enum(['info', 'warning', 'critical'])
      .default('info')
      .describe('Alerts below this are only recorded'),
    suppressFor: duration.default('15m').describe('The same alert is not sent again within this interval'),
    webhooks: z
      .array(
        z
          .object({
            url: z.url().describe('Endpoint that receives a JSON POST per alert'),
            secret: z.string().optional().describe('HMAC-SHA256 key for the X-Breakwater-Signature header'),
            classes: z
              .array(z.enum(['outbreak', 'quarantine', 'antivirus', 'system']))
              .optional()
              .describe('Only these alert classes (all when unset)'),
            minSeverity: z.enum(['info', 'warning', 'critical']).optional().describe('Only alerts at or above'),
          })
          .strict(),
      )
      .default([])
      .describe('JSON webhooks'),
  })
  .strict()
  .prefault({})
  .describe('Alerts (DESIGN §6)');

const quarantineName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'lower-case letters, digits, "-" and "_" (at most 64)');

const releaseSubjectTag = asciiText
  .default('')
  .describe('Text prepended to the subject of released messages (e.g. "[RELEASED] ")');

export const quarantineSchema = z
  .object({
    maxSize: byteSize
      .default('10GiB')
      .describe('One budget for all quarantines together; past it the oldest messages take their default action first'),
    virus: z
      .object({
        retention: duration.default('30d').describe('How long messages stay before the default action'),
        defaultAction: z
          .enum(['release', 'delete'])
          .default('delete')
          .describe('What happens at the scheduled exit or on overflow: release (deliver) or delete'),
        releaseSubjectTag,
      })
      .strict()
      .prefault({})
      .describe('The virus quarantine (infected and unscannable messages)'),
    outbreak: z
      .object({
        defaultAction: z
          .enum(['release', 'delete'])
          .default('release')
          .describe('What happens at the scheduled exit or on overflow: release (rescan, then deliver) or delete'),
        releaseSubjectTag,
      })
      .strict()
      .prefault({})
      .describe("The Outbreak quarantine (retention is each policy's outbreakFilters.maxRetention)"),
    policy: z
      .array(
        z
          .object({
            name: quarantineName.describe('Name used by policies, the CLI and the API'),
            description: z.string().max(200).default('').describe('What the quarantine is for'),
            retention: duration.default('14d').describe('How long messages stay before the default action'),
            defaultAction: z
              .enum(['release', 'delete'])
              .default('release')
              .describe('What happens at the scheduled exit or on overflow: release (rescan, then deliver) or delete'),
            releaseSubjectTag,
            endUsers: z
              .enum(['none', 'view', 'release'])
              .default('none')
              .describe(
                'End-user quarantine (endUserQuarantine): none (not shown to recipients), view (recipients see, delete and allow-list the sender of their own incoming held messages), release (and release them)',
              ),
          })
          .strict(),
      )
      .default([])
      .describe('Named policy quarantines (targets of policy actions and of "move")'),
  })
  .strict()
  .prefault({})
  .describe('Quarantines (DESIGN §5)');

const avAction = z.enum(['deliver', 'drop', 'strip', 'quarantine']);

export const policyAntivirusSchema = z
  .object({
    mode: z
      .enum(['inherit', 'custom', 'disabled'])
      .default('inherit')
      .describe('inherit: the default policy of the same direction; custom: the settings below; disabled: no scan'),
    infected: z
      .object({
        action: avAction
          .default('quarantine')
          .describe('deliver, drop, strip (infected attachments replaced by a notice) or quarantine'),
        quarantine: quarantineName.default('virus').describe('The quarantine for action quarantine'),
        subjectTag: asciiText.default('[VIRUS] ').describe('Prepended to the subject when the message is delivered'),
      })
      .strict()
      .prefault({})
      .describe('Messages with a virus'),
    unscannable: z
      .object({
        action: z
          .enum(['deliver', 'drop', 'quarantine'])
          .default('quarantine')
          .describe('deliver, drop or quarantine (encrypted archives, over the size limit, scan errors)'),
        quarantine: quarantineName.default('virus').describe('The quarantine for action quarantine'),
        subjectTag: asciiText
          .default('[UNSCANNABLE] ')
          .describe('Prepended to the subject when the message is delivered'),
      })
      .strict()
      .prefault({})
      .describe('Messages clamd could not scan'),
  })
  .strict()
  .prefault({})
  .describe('Anti-virus settings of this policy');

export const policyUnscannableSchema = z
  .object({
    mode: z
      .enum(['inherit', 'custom', 'disabled'])
      .default('inherit')
      .describe(
        'inherit: the default policy of the same direction; custom: the settings below; disabled: limits are only recorded',
      ),
    action: z
      .enum(['deliver', 'quarantine', 'drop'])
      .optional()
      .describe(
        'What happens to a message that reached a limit: deliver (tagged), quarantine or drop; unset: quarantine for incoming policies, deliver for outgoing',
      ),
    quarantine: quarantineName
      .default('virus')
      .describe('The quarantine for action quarantine (virus, or a quarantine.policy entry)'),
    subjectTag: asciiText
      .optional()
      .describe('Prepended to the subject when delivered; unset: "[UNSCANNABLE] " for incoming, none for outgoing'),
    limits: z
      .array(z.enum(UNSCANNABLE_KINDS))
      .default([...DEFAULT_UNSCANNABLE_LIMITS])
      .describe(
        'Limits that make a message unscannable: depth, parts, archive_depth, archive_members, archive_expansion, archive_bomb, archive_corrupt, encrypted, parse_timeout, parse_error, scan_size, urls, text',
      ),
  })
  .strict()
  .prefault({})
  .describe(
    'Messages the parser or a scanner could not look at whole: nesting, part count, archive depth/size/members, encrypted archives, parse timeouts (docs/outbreak.md)',
  );

export const antivirusSchema = z
  .object({
    clamd: z
      .union([
        z.object({ socket: z.string().min(1).describe('clamd unix socket path') }).strict(),
        z
          .object({
            host: z.string().min(1).describe('clamd TCP address'),
            port: z.number().int().min(1).max(65535).describe('clamd TCP port'),
          })
          .strict(),
        z
          .literal('auto')
          .describe(
            'Probe `autoSockets` at start: use the first clamd that answers PING, otherwise run without anti-virus (and say so at start, in the mail log and in `breakwater status`)',
          ),
      ])
      .optional()
      .describe(
        'Where clamd listens: `{ socket }`, `{ host, port }`, or `auto` (probe `autoSockets` at start; when no clamd answers, run without anti-virus and say so at start, in the mail log and in `breakwater status`); anti-virus scanning is off when unset',
      ),
    autoSockets: z
      .array(z.string().min(1))
      .min(1)
      .default(['/run/clamav/clamd.ctl', '/var/run/clamav/clamd.ctl'])
      .describe(
        "With `clamd: auto`, the clamd unix sockets probed at start, in order (default: Debian's clamav-daemon socket); probed once, so a clamd started later needs a restart",
      ),
    timeout: duration.default('30s').describe('Longest wait for one scan; past it the message waits and is retried'),
    maxScanSize: byteSize
      .default('25MiB')
      .describe("clamd's StreamMaxLength: larger messages are unscannable (size limit)"),
    maxConnections: z.number().int().min(1).max(64).default(4).describe('Connections to clamd at once'),
    signatureCheckInterval: duration
      .default('5m')
      .describe('How often the clamd signature version is read; a change re-evaluates the Outbreak quarantine'),
    probeInterval: duration
      .default('5s')
      .describe(
        'While clamd does not answer, how often it is asked again; its first answer rescans the waiting messages at once',
      ),
  })
  .strict()
  .prefault({})
  .describe('Anti-virus through ClamAV clamd (DESIGN §5)');
