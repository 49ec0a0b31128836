// Config sections for the optional rspamd stage (docs/antispam.md): where rspamd listens and what
// happens when it fails (`antispam`), and what each mail policy does with its answer
// (`policies.*[].antispam`). Part of the one schema in schema.ts; kept apart so each section reads whole.
import { z } from 'zod';
import { duration } from './outbreak-schema.ts';

const asciiText = z.string().regex(/^[\x20-\x7e]*$/, 'US-ASCII printable characters only');

const quarantineName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'lower-case letters, digits, "-" and "_" (at most 64)');

export const rspamdSchema = z
  .object({
    url: z
      .url({ protocol: /^https?$/ })
      .optional()
      .describe(
        'Base URL of rspamd\'s normal worker (e.g. "http://127.0.0.1:11333"); each message is POSTed to <url>/checkv2. The stage is off when unset',
      ),
    timeout: duration
      .default('10s')
      .describe('Longest wait for one answer (connect, send, scan); past it the failure mode applies'),
    failureMode: z
      .enum(['skip', 'tempfail'])
      .default('skip')
      .describe(
        'rspamd down, slow or answering an error: skip (the message goes on without its opinion, with a tracking note and an alert) or tempfail (the message waits and is scanned again)',
      ),
    maxScanSize: z
      .number()
      .int()
      .positive()
      .default(20 * 1024 * 1024)
      .describe('Larger messages are not sent to rspamd (recorded as skipped); bytes'),
    maxConnections: z.number().int().min(1).max(256).default(16).describe('Connections to rspamd at once'),
    password: z
      .string()
      .min(1)
      .optional()
      .describe('Sent as the Password header (only needed for a controller worker that requires one)'),
    settingsId: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/)
      .optional()
      .describe("rspamd's Settings-ID header: select one of its settings blocks for all mail"),
  })
  .strict()
  .prefault({})
  .describe('rspamd (HTTP /checkv2): scan each message and let the policies act on its action and score');

export const antispamSchema = z
  .object({
    rspamd: rspamdSchema,
  })
  .strict()
  .prefault({})
  .describe('Anti-spam through an rspamd the site already runs (docs/antispam.md); off unless rspamd.url is set');

const spamVerdict = (action: 'tag' | 'quarantine', tag: string, what: string) =>
  z
    .object({
      action: z
        .enum(['deliver', 'tag', 'quarantine', 'drop', 'bounce'])
        .default(action)
        .describe(
          'deliver (headers only), tag (subject tag and headers), quarantine, drop, or bounce (a DSN to the sender: beware backscatter)',
        ),
      quarantine: quarantineName
        .default('spam')
        .describe('The quarantine for action quarantine (a quarantine.policy entry)'),
      subjectTag: asciiText.default(tag).describe('Prepended to the subject for action tag'),
    })
    .strict()
    .prefault({})
    .describe(what);

export const policyAntispamSchema = z
  .object({
    mode: z
      .enum(['inherit', 'custom', 'disabled'])
      .default('inherit')
      .describe('inherit: the default policy of the same direction; custom: the settings below; disabled: no scan'),
    spam: spamVerdict(
      'tag',
      '[SUSPECTED SPAM] ',
      'rspamd says "add header" or "rewrite subject" (its add_header / rewrite_subject score reached)',
    ),
    reject: spamVerdict('tag', '[SPAM] ', 'rspamd says "reject" (its reject score reached)'),
    headers: z
      .boolean()
      .default(true)
      .describe(
        'Add X-Spam-Status (action, score) and X-Spam-Symbols to spam delivered or tagged (ham is delivered untouched)',
      ),
  })
  .strict()
  .prefault({})
  .describe("What rspamd's answer does for this policy (when antispam.rspamd.url is set)");
