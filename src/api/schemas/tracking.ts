// Schemas of the system, tracking and queue routes: what they take and what they answer.
import { z } from 'zod';
import { trackingFilters } from '../../tracking/tracker.ts';
import { intInput, text, threatLevel, timeInput } from './common.ts';

/** The most tracking records one search answers; page with `before` for more. */
export const TRACKING_LIMIT = 1000;

const mid = z.int().min(0).describe('message ID (MID)');
const time = z.string().describe('ISO 8601 time');
const count = z.int().min(0);

export const cloudState = z
  .object({
    status: z.enum(['disabled', 'in-progress', 'registered', 'failed']),
    region: z.string().nullable(),
    hubUrl: z.string().nullable(),
    deviceId: z.string().nullable(),
    lastContact: z.string().nullable().describe('ISO 8601: the last call the hub answered'),
    reason: z.string().nullable().describe('why registration failed, or what needs doing'),
  })
  .meta({ id: 'CloudState' });

export const health = z.object({ status: z.literal('ok'), uptimeSeconds: count });

export const gatewayStatus = z.object({
  hostname: z.string(),
  uptimeSeconds: count,
  listeners: z.array(z.object({ name: z.string(), direction: z.string(), address: z.string().describe('host:port') })),
  queue: z.object({ active: count, deferred: count }),
  antivirus: z.object({
    enabled: z.boolean(),
    mode: z
      .enum(['configured', 'auto', 'off'])
      .describe(
        'configured: antivirus.clamd names a clamd; auto: probed at start (clamd: auto); off: no clamd configured',
      ),
    clamd: z.string().nullable().describe('the clamd in use: socket path or host:port'),
    probed: z.array(z.string()).describe('with clamd: auto, the sockets probed at start'),
    answering: z.boolean().nullable().describe('whether clamd answered the last check (null when off)'),
    signatureVersion: z.int().nullable(),
    summary: z.string().describe('one line, as printed at start: `anti-virus: off (no clamd at …)`'),
  }),
  storage: z
    .object({
      accepting: z
        .boolean()
        .describe('false while new mail is refused (below `spool.minFree`, or after a write error)'),
      reason: z.string().nullable(),
      freeBytes: z.number().nullable(),
      totalBytes: z.number().nullable(),
      minFreeBytes: z.number(),
      writeFailures: z.record(z.string(), count).describe('failed writes per path'),
      databaseRetries: count,
    })
    .describe('the spool and database disk'),
  mailLog: z.object({ droppedLines: count, lastError: z.string().nullable() }),
  syslog: z
    .object({
      transport: z.enum(['udp', 'tcp', 'tls', 'unix']),
      target: z.string().describe('host:port or socket path'),
      connected: z.boolean(),
      sent: count,
      dropped: count.describe('lines dropped: queue full, or a datagram not sent'),
      queued: count,
      lastError: z.string().nullable(),
    })
    .optional()
    .describe('the mail log sent to syslog (log.syslog), when configured'),
  events: z
    .object({
      subscribers: z.array(
        z.object({
          name: z.string(),
          errors: count.describe('events this subscriber failed on'),
          lastError: z.string().nullable(),
        }),
      ),
    })
    .describe('the event bus: tracking, the mail log and metrics subscribe to it'),
  cloud: cloudState
    .extend({
      enabled: z.boolean(),
      stream: z.object({
        running: z.boolean().describe('streaming now: enabled, registered and cloud.xdr on'),
        sentBatches: count,
        sentSummaries: count,
        skippedEvents: count.describe('events skipped past cloud.stream.maxBacklog'),
        failures: count,
        lastError: z.string().nullable(),
        acknowledged: count.describe('the last outbox position the hub acknowledged'),
      }),
      actions: z.object({
        running: z.boolean().describe('polling the hub for response actions: enabled, registered and cloud.actions on'),
        carriedOut: count.describe('actions from the hub carried out'),
        failed: count.describe('actions from the hub that failed (the hub has the reasons)'),
        lastError: z.string().nullable(),
      }),
      blockList: z
        .object({
          version: count.describe('the hub block list version applied'),
          entries: count.describe('senders and domains blocked (refused at MAIL FROM, header From dropped)'),
          lastFetch: z.string().nullable(),
          lastError: z.string().nullable(),
        })
        .describe("the hub's block list on this gateway"),
      rules: z
        .object({
          running: z
            .boolean()
            .describe('taking outbreak rules from the hub (registered, cloud.rules, no feed of its own)'),
          announced: count.describe('the latest rule bundle version the hub announced'),
          lastError: z.string().nullable(),
        })
        .describe('outbreak rules from the hub'),
      events: z
        .object({
          running: z.boolean().describe('holding an event stream to the hub (registered, cloud.push)'),
          connected: z.boolean().describe('the stream is open: the hub pushes; the polls only reconcile'),
          events: count.describe('events received'),
          liveQueries: count.describe('live queries answered (investigations on the hub)'),
          lastError: z.string().nullable(),
        })
        .describe('events the hub pushes (rules, actions, block list, live queries)'),
    })
    .describe('cloud services: the hub registration, the stream to it and the actions it sends'),
  nextMid: mid,
  dataDir: z.string(),
  memory: z
    .record(z.string(), z.unknown())
    .describe('process memory, held message bytes, parse workers and store writer heaps'),
});

export const pipeline = z.object({
  stages: z.array(
    z.object({
      name: z.string(),
      description: z.string(),
      timeoutMs: count,
      failureMode: z.enum(['tempfail', 'skip', 'quarantine']),
      settings: z.record(z.string(), z.unknown()).describe('stage settings'),
    }),
  ),
  text: z.string().describe('the pipeline as `breakwater pipeline show` prints it'),
});

export const trackingRecord = z
  .object({
    mid,
    icid: count.describe('inbound connection ID'),
    parentMid: z.int().nullable().describe('the original of a policy-split copy'),
    receivedAt: time,
    direction: z.enum(['incoming', 'outgoing']),
    listener: z.string(),
    policy: z.string().nullable(),
    sender: z.string(),
    recipients: z.array(
      z.object({
        rid: count,
        address: z.string(),
        status: z.string(),
        attempts: count,
        lastReply: z.string().nullable(),
        tls: z
          .string()
          .nullable()
          .describe(
            'TLS of the last delivery attempt: protocol, cipher, verified or why not, and the policy applied (opportunistic, require, verify, none, mta-sts enforce, … (mta-sts testing))',
          ),
      }),
    ),
    subject: z.string().nullable(),
    messageId: z.string().nullable(),
    headerFrom: z.string().nullable(),
    senderIp: z.string(),
    rdns: z.string().nullable(),
    helo: z.string().nullable(),
    tls: z.string().nullable(),
    size: count.describe('bytes'),
    attachments: z.array(
      z.object({ name: z.string(), trueType: z.string().nullable(), size: count, sha256: z.string() }),
    ),
    urls: z.array(z.string()),
    status: z
      .string()
      .describe(
        'received, scanning, queued, deferred, delivered, bounced, dropped, deleted, quarantined, released or splintered',
      ),
    threatLevel: z.int().min(0).max(5).nullable().describe('Outbreak Filters threat level 0–5'),
    threatRules: z
      .array(
        z.object({
          id: z.string(),
          level: threatLevel,
          category: z.string(),
          type: z.string(),
          description: z.string(),
          adaptive: z.boolean(),
        }),
      )
      .describe('matching outbreak and adaptive rules, strongest first'),
    clicks: z
      .array(
        z.object({
          at: time,
          recipient: z.string(),
          url: z.string(),
          verdict: z.string(),
          action: z.string(),
          source: z
            .string()
            .describe(
              'what decided the verdict: allow_list, block_list, url_rules (at click time), url_at_rewrite, message (its threat level) or none ("" for clicks recorded before this field)',
            ),
        }),
      )
      .describe('clicks on rewritten links (empty in search results)'),
    events: z
      .array(z.looseObject({ at: time, type: z.string() }).describe('plus fields of the event type'))
      .describe('every event, oldest first (empty in search results)'),
  })
  .meta({ id: 'TrackingRecord', description: 'A message (one policy copy) and its recipients' });

/** Tracking search: every filter optional, combined with AND; unknown parameters are refused. */
export const trackingQuery = z.strictObject({
  sender: text('sender').optional().describe('envelope sender'),
  recipient: text('recipient').optional().describe('an envelope recipient'),
  subject: text('subject').optional().describe('subject contains'),
  messageId: text('messageId').optional().describe('Message-ID, with or without <>'),
  mid: intInput('mid').optional().describe('this MID'),
  ip: text('ip').optional().describe('sending IP address'),
  sha256: text('sha256').optional().describe('an attachment with this SHA-256'),
  attachment: text('attachment').optional().describe('an attachment with this name (case-insensitive)'),
  urlDomain: text('urlDomain').optional().describe('a URL in the message with this domain'),
  url: text('url').optional().describe('this URL in the message (exactly)'),
  senderDomain: text('senderDomain').optional().describe("the envelope sender's domain"),
  fromAddress: text('fromAddress').optional().describe('the address in the header From'),
  status: text('status').optional().describe('message status (see TrackingRecord.status)'),
  level: intInput('level', 0, 5).optional().describe('Outbreak Filters threat level at least'),
  rule: text('rule').optional().describe('an outbreak or adaptive rule id that matched'),
  auth: text('auth')
    .regex(/^(spf|helo|dkim|dmarc|arc)=[a-z]+$/i, {
      error: 'auth must be method=result, e.g. dmarc=fail, spf=softfail (methods: spf, helo, dkim, dmarc, arc)',
    })
    .optional()
    .describe(
      'a sender-authentication result, method=result: dmarc=fail, spf=softfail, dkim=pass, arc=fail, helo=fail',
    ),
  spamAction: text('spamAction').optional().describe('rspamd\'s action ("no action", "add header", "reject", …)'),
  spamScore: intInput('spamScore', 0, 1000).optional().describe("rspamd's score at least"),
  since: timeInput('since').optional().describe('received at or after'),
  until: timeInput('until').optional().describe('received before'),
  limit: intInput('limit', 1, TRACKING_LIMIT)
    .optional()
    .describe(`at most this many records (default 100, at most ${TRACKING_LIMIT})`),
  before: intInput('before').optional().describe('paging: only records received before this MID'),
});

// The search parameters are the tracker's filters, no more and no fewer.
if ([...trackingFilters].sort().join() !== Object.keys(trackingQuery.shape).sort().join())
  throw new Error('the tracking search parameters differ from trackingFilters');

export const queueEntry = z.object({
  mid,
  sender: z.string(),
  recipients: z.array(z.object({ rid: count, address: z.string() })).describe('recipients not yet done'),
  policy: z.string(),
  receivedAt: time,
  state: z.enum(['active', 'deferred']),
  nextAttemptAt: z.string().nullable(),
});

export const queueActionResult = z.object({ mid, recipients: count.describe('recipients acted on') });
