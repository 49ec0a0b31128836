// Cloud services settings (DESIGN §10): registration with a threat-response hub by region, sharing data
// with it, and opt-in telemetry.
import { z } from 'zod';
import { duration } from './outbreak-schema.ts';

const hubUrl = z.url({ protocol: /^https?$/ }).describe('Hub URL');

/** Where the gateway finds the hub of each region (`cloud.region`), unless the region is a URL itself. */
const DEFAULT_HUB = 'http://127.0.0.1:8440';

export const cloudSchema = z
  .object({
    enabled: z.boolean().default(false).describe('Cloud services on (`breakwater cloud enable|disable` too)'),
    region: z
      .union([z.enum(['nam', 'eu', 'apjc']), hubUrl])
      .default('nam')
      .describe('nam, eu or apjc (mapped by cloud.regions), or a custom hub URL'),
    regions: z
      .object({ nam: hubUrl.default(DEFAULT_HUB), eu: hubUrl.default(DEFAULT_HUB), apjc: hubUrl.default(DEFAULT_HUB) })
      .strict()
      .prefault({})
      .describe('Hub URL of each region (defaults: the local hub of the quick start)'),
    xdr: z.boolean().default(true).describe('Share message summaries and verdicts with the hub'),
    actions: z
      .boolean()
      .default(true)
      .describe(
        "Carry out the response actions the hub sends (delete / forward delivered mail through this gateway's remediation profiles)",
      ),
    rules: z
      .boolean()
      .default(true)
      .describe(
        'Take the outbreak rules the hub publishes (pushed at once over the device channel) when outbreakFilters.ruleFeed names no feed of its own',
      ),
    push: z
      .boolean()
      .default(true)
      .describe(
        'Hold an event stream open to the hub (server-sent events): rules, response actions and block list changes arrive at once, and investigations on the hub ask this gateway live (answered only with cloud.xdr); off, or when the stream is down: polling',
      ),
    telemetry: z.boolean().default(false).describe('Send usage telemetry to the hub (opt-in; never message content)'),
    telemetryInterval: duration.default('1d').describe('How often telemetry is sent (and on demand)'),
    model: z.string().min(1).max(100).default('Breakwater').describe('Model name the hub shows'),
    accountId: z.string().max(100).nullable().default(null).describe('Account id sent with telemetry'),
    stream: z
      .object({
        batchSize: z
          .number()
          .int()
          .min(1)
          .max(1000)
          .default(500)
          .describe('Most message summaries sent to the hub in one batch'),
        interval: duration.default('1s').describe('How often waiting summaries are sent'),
        maxBacklog: z
          .number()
          .int()
          .min(1000)
          .default(5_000_000)
          .describe('Events not yet sent beyond which the oldest are skipped (with an alert and a counter)'),
        timeout: duration.default('30s').describe('A batch not acknowledged in this time is sent again'),
      })
      .strict()
      .prefault({})
      .describe('Streaming to the hub'),
  })
  .strict()
  .prefault({});
