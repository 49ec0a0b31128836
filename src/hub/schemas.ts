// The hub API's schemas: what its routes take and answer, and its stable error codes.
import { z } from 'zod';
import { responses } from '../api/schemas/common.ts';

/** The hub answers errors like the gateway's admin API: one registry of stable codes (api/schemas/common.ts). */
export const hubResponses = responses;

const printable = (max: number) => z.string().min(1).max(max);

/** What a gateway says about itself at registration. */
export const identitySchema = z
  .object({
    uuid: printable(100).describe('the gateway installation UUID'),
    hostname: printable(255),
    name: printable(255).optional(),
    serial: printable(100).optional(),
    model: printable(100).optional(),
    version: printable(50).optional(),
    /** standalone, or a machine of a cluster (machine mode) */
    deployment: z.enum(['standalone', 'cluster']).optional(),
  })
  .strict();

export const tokenAnswer = z.object({
  token: z.string().describe('32 hexadecimal characters; give it to `breakwater cloud register`'),
  region: z.string(),
  expiresAt: z.string().describe('ISO 8601'),
});

export const registrationAnswer = z.object({
  deviceId: z.string(),
  secret: z.string().describe('the device secret: signs the JWT of every later call; shown this once'),
  region: z.string(),
  rulesPublicKey: z
    .string()
    .describe('the Ed25519 key (base64) the hub signs its outbreak rule bundles with: the gateway pins it'),
});

export const deviceSchema = z.object({
  id: z.string(),
  name: z.string(),
  uuid: z.string(),
  serial: z.string().nullable(),
  model: z.string().nullable(),
  version: z.string().nullable(),
  hostname: z.string().nullable(),
  region: z.string(),
  status: z.enum(['registered', 'removed']),
  registeredAt: z.string(),
  lastContact: z.string().nullable(),
  messages: z.int().describe('message summaries stored from this device'),
  telemetry: z.record(z.string(), z.unknown()).nullable().describe('the last telemetry report, if it opted in'),
  telemetryAt: z.string().nullable(),
});

/** A message summary as a gateway streams it (src/xdr/summary.ts). */
export const summarySchema = z
  .object({
    mid: z.int().min(0),
    icid: z.int().min(0),
    parentMid: z.int().nullable(),
    receivedAt: z.string().max(40),
    direction: z.string().max(20),
    listener: z.string().max(200),
    policy: z.string().max(200).nullable(),
    sender: z.string().max(1000),
    recipients: z
      .array(
        z.object({
          address: z.string().max(1000),
          status: z.string().max(40),
          lastReply: z.string().max(4000).nullable(),
        }),
      )
      .max(10_000),
    headerFrom: z.string().max(2000).nullable(),
    subject: z.string().max(4000).nullable(),
    messageId: z.string().max(2000).nullable(),
    senderIp: z.string().max(100),
    rdns: z.string().max(1000).nullable(),
    helo: z.string().max(1000).nullable(),
    size: z.int().min(0),
    attachments: z
      .array(
        z.object({
          name: z.string().max(1000),
          trueType: z.string().max(200).nullable(),
          size: z.int(),
          sha256: z.string().max(64),
        }),
      )
      .max(10_000),
    urls: z.array(z.string().max(8192)).max(10_000),
    status: z.string().max(40),
    verdict: z.string().max(40).nullable(),
    threatLevel: z.int().min(0).max(5).nullable(),
    rules: z.array(z.string().max(200)).max(1000),
    version: z.int().min(0),
  })
  .meta({ id: 'MessageSummary' });

/** Usage telemetry (DESIGN §10): never message content. */
export const telemetrySchema = z
  .object({
    deviceUid: printable(100),
    model: printable(100),
    deployment: z.enum(['standalone', 'cluster']),
    accountId: z.string().max(100).nullable(),
    version: printable(50),
    installDate: z.string().max(40),
    features: z
      .array(
        z.object({
          name: printable(100),
          featureId: printable(100),
          enabled: z.boolean(),
          status: z.string().max(100),
          expiry: z.string().max(40).nullable(),
        }),
      )
      .max(100),
  })
  .strict();
