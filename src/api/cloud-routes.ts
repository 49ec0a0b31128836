// Admin API routes for cloud services (DESIGN §10): registration with the threat-response hub, enable
// and disable, deregistration, telemetry on demand. The CLI's `breakwater cloud …` calls these.
import { z } from 'zod';
import type { Gateway } from '../gateway/gateway.ts';
import { CloudError } from '../xdr/cloud.ts';
import { ApiError } from './errors.ts';
import { responses } from './schemas/common.ts';
import { noBody } from './schemas/outbreak.ts';
import { cloudState } from './schemas/tracking.ts';
import type { Api } from './validation.ts';

/** A refused cloud operation answers with its stable code. */
async function cloudCall<T>(fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof CloudError) throw new ApiError(err.status, err.code, err.message);
    throw err;
  }
}

export function registerCloudRoutes(api: Api, gw: Gateway): void {
  const tags = ['Cloud services'];
  api.get(
    '/cloud',
    {
      schema: {
        operationId: 'getCloudStatus',
        tags,
        summary: 'Registration status: disabled, in-progress, registered or failed (with the reason)',
        response: responses({ ok: cloudState }),
      },
    },
    async () => gw.cloud.state(),
  );
  for (const on of [true, false])
    api.post(
      on ? '/cloud/enable' : '/cloud/disable',
      {
        schema: {
          operationId: on ? 'enableCloud' : 'disableCloud',
          tags,
          summary: on ? 'Turns cloud services on' : 'Turns cloud services off (nothing is sent to the hub)',
          body: noBody,
          response: responses({ ok: cloudState, body: true }),
        },
      },
      async () => gw.cloud.setEnabled(on),
    );
  api.post(
    '/cloud/register',
    {
      schema: {
        operationId: 'registerWithHub',
        tags,
        summary: 'Registers with the hub of a region using a one-time token from `breakwater hub token create`',
        description:
          'Answers the new state: `registered`, or `failed` with the reason the hub gave (invalid, expired or used token, unreachable hub). Changing region while registered is refused: deregister first.',
        body: z
          .object({
            token: z.string().max(200).describe('32 hexadecimal characters'),
            region: z.string().max(2048).optional().describe('nam, eu, apjc or a hub URL (default cloud.region)'),
          })
          .strict(),
        response: responses({
          ok: cloudState,
          body: true,
          400: ['invalid_parameter', 'unknown_parameter', 'invalid_token'],
          409: ['cloud_disabled', 'cloud_already_registered', 'cloud_in_progress'],
        }),
      },
    },
    async (req) => cloudCall(() => gw.cloud.register(req.body.token, req.body.region)),
  );
  api.post(
    '/cloud/deregister',
    {
      schema: {
        operationId: 'deregisterFromHub',
        tags,
        summary: 'Removes the device from the hub and forgets its credentials',
        body: z
          .object({ force: z.boolean().optional().describe('forget the registration even if the hub cannot be told') })
          .strict()
          .optional(),
        response: responses({ ok: cloudState, body: true, 502: ['cloud_hub_unreachable'] }),
      },
    },
    async (req) => cloudCall(() => gw.cloud.deregister(req.body?.force ?? false)),
  );
  api.post(
    '/cloud/telemetry',
    {
      schema: {
        operationId: 'sendTelemetry',
        tags,
        summary: 'Sends the telemetry report now (opt-in: cloud.telemetry)',
        body: noBody,
        response: responses({
          ok: z.object({
            sentAt: z.string(),
            report: z.record(z.string(), z.unknown()).describe('what was sent: never message content'),
          }),
          body: true,
          409: ['telemetry_off'],
        }),
      },
    },
    async () => {
      try {
        const report = await gw.telemetry.send();
        return { sentAt: gw.telemetry.lastSent!, report: report as unknown as Record<string, unknown> };
      } catch (err) {
        throw new ApiError(409, 'telemetry_off', (err as Error).message);
      }
    },
  );
}
