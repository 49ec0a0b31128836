// Admin API routes for the gateway's status, the scanning pipeline, message tracking and the delivery
// queue. Each route declares its input and answers (schemas/tracking.ts) and calls one gateway service
// function; the CLI calls these routes.
import { z } from 'zod';
import type { Gateway } from '../gateway/gateway.ts';
import { describePipeline } from '../pipeline/pipeline.ts';
import { ApiError } from './errors.ts';
import { midParam, responses } from './schemas/common.ts';
import { noBody } from './schemas/outbreak.ts';
import {
  gatewayStatus,
  pipeline,
  queueActionResult,
  queueEntry,
  trackingQuery,
  trackingRecord,
} from './schemas/tracking.ts';
import { answer, type Api } from './validation.ts';

export function registerSystemRoutes(api: Api, gw: Gateway): void {
  api.get(
    '/status',
    {
      schema: {
        operationId: 'getStatus',
        tags: ['System'],
        summary: 'Listeners, queue counts, anti-virus, storage, next MID, memory',
        response: responses({ ok: gatewayStatus }),
      },
    },
    async () => answer(gatewayStatus, await gw.status()),
  );
  api.get(
    '/pipeline',
    {
      schema: {
        operationId: 'getPipeline',
        tags: ['System'],
        summary: 'Scanning stages in order',
        response: responses({ ok: pipeline }),
      },
    },
    async () => ({
      stages: gw.stages.map((s) => ({
        name: s.name,
        description: s.description,
        timeoutMs: s.timeoutMs,
        failureMode: s.failureMode,
        settings: s.settings,
      })),
      text: describePipeline(gw.stages),
    }),
  );
  api.get(
    '/tracking/messages',
    {
      schema: {
        operationId: 'searchMessages',
        tags: ['Tracking'],
        summary: 'Search tracking records, newest first',
        description: 'Every filter is optional; they combine with AND. Unknown parameters are refused.',
        querystring: trackingQuery,
        response: responses({
          ok: z.object({ messages: z.array(trackingRecord) }),
          400: ['invalid_parameter', 'unknown_parameter'],
        }),
      },
    },
    async (req) => ({ messages: gw.tracker.search(req.query) }),
  );
  api.get(
    '/tracking/messages/:mid',
    {
      schema: {
        operationId: 'getMessage',
        tags: ['Tracking'],
        summary: 'One tracking record with every event and click',
        params: midParam,
        response: responses({ ok: trackingRecord, 400: ['invalid_parameter'], 404: ['message_not_found'] }),
      },
    },
    async (req) => {
      const { mid } = req.params;
      const rec = gw.tracker.show(mid);
      if (!rec) throw new ApiError(404, 'message_not_found', `no message with MID ${mid}`);
      return answer(trackingRecord, rec);
    },
  );
  api.get(
    '/queue',
    {
      schema: {
        operationId: 'listQueue',
        tags: ['Queue'],
        summary: 'Messages not yet delivered (in the pipeline, queued or deferred)',
        response: responses({ ok: z.object({ messages: z.array(queueEntry) }) }),
      },
    },
    async () => ({ messages: gw.flow.queueList() }),
  );
  api.post(
    '/queue/:mid/retry',
    {
      schema: {
        operationId: 'retryQueuedMessage',
        tags: ['Queue'],
        summary: 'Retry deferred recipients now',
        params: midParam,
        body: noBody,
        response: responses({
          ok: queueActionResult,
          body: true,
          400: ['invalid_parameter'],
          404: ['message_not_queued'],
        }),
      },
    },
    async (req) => {
      const { mid } = req.params;
      const r = gw.flow.queueRetry(mid);
      if (!r) throw new ApiError(404, 'message_not_queued', `MID ${mid} is not in the queue`);
      return r;
    },
  );
  api.delete(
    '/queue/:mid',
    {
      schema: {
        operationId: 'deleteQueuedMessage',
        tags: ['Queue'],
        summary: 'Delete deferred recipients (no bounce)',
        description: 'Only recipients waiting for a retry are deleted; one in flight finishes its attempt.',
        params: midParam,
        response: responses({ ok: queueActionResult, 400: ['invalid_parameter'], 404: ['message_not_queued'] }),
      },
    },
    async (req) => {
      const { mid } = req.params;
      const r = gw.flow.queueDelete(mid);
      if (!r) throw new ApiError(404, 'message_not_queued', `MID ${mid} is not in the queue`);
      return r;
    },
  );
}
