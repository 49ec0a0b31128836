// The hub's configuration (DESIGN §11): its own schema, the same loader (every error at once, each with
// its path). `dataDir:` and `listen:` are enough; everything else has a default.
import path from 'node:path';
import { z } from 'zod';
import { duration } from '../config/outbreak-schema.ts';
import { ConfigInvalidError, checkYamlFile, type ConfigError } from '../config/load.ts';
import { xdrRelaySchema } from '../config/xdr-schema.ts';
import { userLoginSchema, userSessionsSchema } from '../config/users-schema.ts';
import { RETRO_ACTIONS } from './retro.ts';
import { checkTemplate } from './tickets.ts';

/** The regions a gateway names at registration (DESIGN §10); a hub serves one or several. */
export const REGIONS = ['nam', 'eu', 'apjc'] as const;
export type Region = (typeof REGIONS)[number];

export const hubConfigSchema = z
  .object({
    dataDir: z.string().min(1).default('./hub-data').describe('Where the hub keeps its database and keys'),
    listen: z
      .object({
        host: z.string().min(1).default('127.0.0.1').describe('Address the hub listens on'),
        port: z.number().int().min(0).max(65535).default(8440).describe('Port (0: any free port)'),
      })
      .strict()
      .default({ host: '127.0.0.1', port: 8440 })
      .describe('The hub API: gateways register and stream here; administrators and the CLI use it too'),
    regions: z
      .array(z.enum(REGIONS))
      .min(1)
      .default([...REGIONS])
      .describe('Regions this hub serves: a registration token is made for one of them'),
    tokenLifetime: duration.default('1h').describe('How long a registration token can be used (once)'),
    intake: z
      .object({
        maxBatch: z
          .number()
          .int()
          .min(1)
          .max(10_000)
          .default(1000)
          .describe('Most message summaries in one batch from a gateway'),
      })
      .strict()
      .default({ maxBatch: 1000 })
      .describe('Data the gateways stream'),
    actions: z
      .object({
        timeout: duration
          .default('30s')
          .describe(
            "How long /respond/trigger waits for the gateways' results; an action not answered by then goes on, and the hub's action list shows how it ended",
          ),
      })
      .strict()
      .default({ timeout: '30s' })
      .describe('Response actions the hub sends to gateways (mailbox remediation)'),
    intelligence: z
      .object({
        enabled: z.boolean().default(true).describe('Draft outbreak rules from bursts seen across gateways'),
        minGateways: z.number().int().min(1).max(1000).default(2).describe('Gateways that must see it within the hour'),
        minMessages: z.number().int().min(1).default(5).describe('Messages within the hour, every gateway together'),
        factor: z
          .number()
          .min(1)
          .default(10)
          .describe('How many times its baseline (average per hour over the previous week) the hour must reach'),
        autoPublishConfidence: z
          .number()
          .min(0)
          .max(1)
          .nullable()
          .default(null)
          .describe(
            'Publish a draft of level 3 or more at once at or above this confidence (0–1); null: analysts publish',
          ),
        informationalDrafts: z
          .boolean()
          .default(false)
          .describe(
            'Also draft informational level-2 rules for bursts the gateways held none of, and for keys in everyday use (mail nobody held on minGateways gateways the week before); they hold nothing at default thresholds but match legitimate mail such as mailing-list threads',
          ),
      })
      .strict()
      .prefault({})
      .describe('Outbreak intelligence: rule drafts from cross-gateway bursts (docs/xdr.md)'),
    investigate: z
      .object({
        liveTimeout: duration
          .default('3s')
          .describe(
            'How long an investigation waits for the live answers of the gateways connected to the hub (their event stream); 0s: answer from the stored summaries only',
          ),
      })
      .strict()
      .prefault({})
      .describe('Investigations (POST /api/v1/investigate)'),
    retroRemediation: z
      .object({
        enabled: z
          .boolean()
          .default(true)
          .describe(
            'When a published rule matches mail already delivered, propose remediating it from the mailboxes (always approved by a user)',
          ),
        window: duration.default('24h').describe('How far back delivered mail is looked at'),
        action: z
          .enum(RETRO_ACTIONS)
          .default('delete')
          .describe(
            'What the proposal does once approved: delete, or forward-and-delete (to the mailbox profile’s address)',
          ),
        minLevel: z.number().int().min(1).max(5).default(4).describe('Rules below this threat level propose nothing'),
        maxMessages: z
          .number()
          .int()
          .min(1)
          .max(10_000)
          .default(1000)
          .describe('Most messages one proposal names (the newest first)'),
      })
      .strict()
      .prefault({})
      .describe('Retro-remediation: published rules matched against mail delivered before them (docs/xdr.md)'),
    tickets: z
      .object({
        url: z
          .url({ protocol: /^https?$/ })
          .optional()
          .describe('Webhook of the ticketing system: each ticket is POSTed there as JSON'),
        headers: z
          .record(z.string(), z.string())
          .default({})
          .describe('Headers sent with each ticket (e.g. Authorization); secrets: never logged'),
        template: z
          .string()
          .max(20_000)
          .optional()
          .describe(
            'The JSON body, with {{title}}, {{text}}, {{observables}}, {{requestedBy}}, {{createdAt}}, {{id}}, {{casebookId}} filled in (escaped); unset: a plain JSON object',
          ),
        timeout: duration.default('10s').describe('How long one attempt waits for the ticketing system'),
        attempts: z.number().int().min(1).max(50).default(5).describe('Attempts before a ticket is marked failed'),
        backoff: duration.default('30s').describe('Wait before the second attempt; doubles after each failure'),
      })
      .strict()
      .superRefine((t, ctx) => {
        const problem = t.template ? checkTemplate(t.template) : null;
        if (problem) ctx.addIssue({ code: 'custom', path: ['template'], message: problem });
      })
      .prefault({})
      .describe('Tickets opened in a ticketing system through a webhook'),
    approvals: z
      .object({
        block: z
          .boolean()
          .default(false)
          .describe(
            'A block list entry waits for a second user’s approval (never the requester’s) before gateways apply it',
          ),
        remediate: z
          .boolean()
          .default(false)
          .describe(
            'Deleting or forwarding delivered mail from mailboxes (hub users or an XDR) waits for a second user’s approval',
          ),
        watch: z
          .boolean()
          .default(false)
          .describe('A new watch counts no hit (and opens no ticket) until a second user approves it'),
        ticket: z
          .boolean()
          .default(false)
          .describe(
            'A ticket (opened by a user, or by a watch) is sent to the ticketing system only after a second user’s approval — never its requester’s or the watch owner’s',
          ),
      })
      .strict()
      .prefault({})
      .describe('Response actions that need a second user’s approval'),
    sessions: userSessionsSchema.describe("Browser sessions of the hub's web UI"),
    login: userLoginSchema,
    relay: xdrRelaySchema.describe(
      "The relay module an XDR calls on the hub's port, answered across every gateway's messages; off unless jwtSecret or jwksUrl is set",
    ),
  })
  .strict();

export type HubConfig = z.output<typeof hubConfigSchema>;

export interface LoadedHubConfig {
  config: HubConfig;
  file: string;
  /** absolute data directory */
  dataDir: string;
}

export function checkHubConfigFile(file: string): { loaded: LoadedHubConfig | null; errors: ConfigError[] } {
  const { value, errors } = checkYamlFile(file, hubConfigSchema);
  if (!value) return { loaded: null, errors };
  const abs = path.resolve(file);
  return { loaded: { config: value, file: abs, dataDir: path.resolve(path.dirname(abs), value.dataDir) }, errors: [] };
}

export function loadHubConfig(file: string): LoadedHubConfig {
  const { loaded, errors } = checkHubConfigFile(file);
  if (!loaded) throw new ConfigInvalidError(file, errors);
  return loaded;
}
