// Admin API routes for quarantines (DESIGN §5, §9): list, show, manage by rule, and the bulk actions
// release, delete, delay, move and send a copy. Each route declares its input and answers
// (schemas/quarantine.ts) and calls one gateway service function; the CLI calls these routes.
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Gateway } from '../gateway/gateway.ts';
import type { QuarantineEntry, QuarantineFilter, QuarantineName } from '../quarantine/quarantine.ts';
import { ApiError } from './errors.ts';
import { responses, type ErrorCode } from './schemas/common.ts';
import {
  actionResult,
  copyBody,
  delayBody,
  filterBody,
  listQuery,
  moveBody,
  nameMidParams,
  nameParam,
  QUARANTINE_LIMITS,
  quarantineList,
  quarantineMessage,
  quarantineRules,
} from './schemas/quarantine.ts';
import { trackingRecord } from './schemas/tracking.ts';
import { answer, type Api } from './validation.ts';
import { defaultParseLimits } from '../mime/types.ts';

export { QUARANTINE_LIMITS } from './schemas/quarantine.ts';

function quarantineName(gw: Gateway, v: unknown, code = 'quarantine_not_found', status = 404): QuarantineName {
  if (typeof v !== 'string' || !gw.quarantines.settingsOf(v)) {
    const known = (gw.config.quarantine.policy.map((q) => q.name) as string[]).concat(['outbreak', 'virus']);
    throw new ApiError(status, code, `no quarantine ${String(v).slice(0, 80)} (known: ${known.sort().join(', ')})`);
  }
  return v;
}

/** What a listing query or bulk body selects, as the quarantine takes it. */
type FilterInput = Partial<Record<keyof QuarantineFilter | 'all' | 'by' | 'quarantine', unknown>>;
function filterOf(q: FilterInput, quarantine: QuarantineName): QuarantineFilter {
  const f: QuarantineFilter = { quarantine };
  for (const k of ['rule', 'sender', 'recipient', 'level', 'limit', 'since', 'until', 'mids'] as const)
    if (q[k] !== undefined) (f as Record<string, unknown>)[k] = q[k];
  return f;
}

function bulk(q: FilterInput, quarantine: QuarantineName): { filter: QuarantineFilter; by: string | null } {
  return { filter: filterOf(q, quarantine), by: typeof q.by === 'string' ? q.by : null };
}

const errors400: ErrorCode[] = [
  'invalid_body',
  'invalid_parameter',
  'unknown_parameter',
  'filter_required',
  'too_many_mids',
];

/** text and HTML shown of a held message, each (characters) */
const CONTENT_MAX = 512 * 1024;

export const messageContent = z
  .object({
    mid: z.int(),
    headers: z.array(z.object({ name: z.string(), value: z.string() })).describe('top-level fields in order'),
    text: z.string().describe('decoded text/plain parts'),
    html: z.string().describe('decoded text/html parts, as the sender wrote them (sanitise before showing)'),
    attachments: z.array(
      z.object({ name: z.string(), trueType: z.string().nullable(), size: z.int(), sha256: z.string() }),
    ),
    truncated: z.boolean().describe('text or HTML cut at 512 Ki characters'),
  })
  .meta({ id: 'MessageContent' });

/** The held message, or 404 message_not_quarantined. */
async function heldEntry(gw: Gateway, name: QuarantineName, mid: number): Promise<QuarantineEntry> {
  const [e] = await gw.quarantines.list({ quarantine: name, mids: [mid] });
  if (!e) throw new ApiError(404, 'message_not_quarantined', `MID ${mid} is not in quarantine ${name}`);
  return e;
}

function bulkRoute(action: string, summary: string, description: string, body: z.ZodType, extra: ErrorCode[] = []) {
  return {
    operationId: `${action}QuarantinedMessages`,
    tags: ['Quarantines'],
    summary,
    description,
    params: nameParam,
    body,
    response: responses({
      ok: actionResult,
      okDescription: `\`{action: "${action}", count, mids, notFound}\``,
      body: true,
      400: [...errors400, ...extra],
      404: ['quarantine_not_found'],
    }),
  };
}

export function registerQuarantineRoutes(api: Api, gw: Gateway): void {
  // The quarantine in the path exists (and, for a move, the target): the configuration decides, so it is
  // checked before the schemas, and these answers come first as they always did.
  const preValidation = async (req: FastifyRequest): Promise<void> => {
    quarantineName(gw, (req.params as { name?: string }).name);
  };
  api.get(
    '/quarantines',
    {
      schema: {
        operationId: 'listQuarantines',
        tags: ['Quarantines'],
        summary: 'Quarantines with message counts and settings; total usage',
        response: responses({ ok: quarantineList }),
      },
    },
    async () => {
      const s = await gw.capacity.summary();
      return {
        quarantines: s.quarantines.map((q) => ({
          name: q.name,
          kind: q.kind,
          description: q.description,
          messages: q.messages,
          bytes: q.bytes,
          defaultAction: q.defaultAction,
          retention: q.retentionMs === null ? 'per policy' : formatDuration(q.retentionMs),
          releaseSubjectTag: q.releaseSubjectTag,
        })),
        usage: s.usage,
      };
    },
  );
  api.get(
    '/quarantines/:name/messages',
    {
      preValidation,
      schema: {
        operationId: 'listQuarantinedMessages',
        tags: ['Quarantines'],
        summary: 'Held messages, oldest first',
        params: nameParam,
        querystring: listQuery,
        response: responses({
          ok: z.object({ messages: z.array(quarantineMessage) }),
          400: ['invalid_parameter', 'unknown_parameter', 'too_many_mids'],
          404: ['quarantine_not_found'],
        }),
      },
    },
    async (req) => {
      const name = req.params.name;
      return { messages: (await gw.quarantines.list(filterOf(req.query, name))).map(publicEntry) };
    },
  );
  api.get(
    '/quarantines/:name/messages/:mid',
    {
      preValidation,
      schema: {
        operationId: 'getQuarantinedMessage',
        tags: ['Quarantines'],
        summary: 'One held message with its tracking record',
        params: nameMidParams,
        response: responses({
          ok: quarantineMessage.extend({ tracking: trackingRecord.nullable() }),
          400: ['invalid_parameter'],
          404: ['quarantine_not_found', 'message_not_quarantined'],
        }),
      },
    },
    async (req) => {
      const e = await heldEntry(gw, req.params.name, req.params.mid);
      return { ...publicEntry(e), tracking: answer(trackingRecord.nullable(), gw.tracker.show(e.mid)) };
    },
  );
  api.get(
    '/quarantines/:name/messages/:mid/content',
    {
      preValidation,
      schema: {
        operationId: 'getQuarantinedMessageContent',
        tags: ['Quarantines'],
        summary: 'A held message’s header fields, text and HTML (for a safe view: never rendered by the gateway)',
        description:
          'Parsed from the held copy with the scanning limits. The HTML is the message’s, unsanitised: the web UI sanitises it and shows it in a sandboxed frame with remote content blocked.',
        params: nameMidParams,
        response: responses({
          ok: messageContent,
          400: ['invalid_parameter'],
          404: ['quarantine_not_found', 'message_not_quarantined'],
        }),
      },
    },
    async (req) => {
      return heldContent(gw, await heldEntry(gw, req.params.name, req.params.mid));
    },
  );
  api.get(
    '/quarantines/:name/rules',
    {
      preValidation,
      schema: {
        operationId: 'listQuarantineRules',
        tags: ['Quarantines'],
        summary: 'Manage by rule: held messages per rule',
        description: 'Per outbreak rule (outbreak) or virus name (virus and policy quarantines).',
        params: nameParam,
        response: responses({ ok: quarantineRules, 404: ['quarantine_not_found'] }),
      },
    },
    async (req) => ({ rules: await gw.quarantines.rules(req.params.name) }),
  );
  api.post(
    '/quarantines/:name/release',
    {
      preValidation,
      schema: bulkRoute(
        'release',
        'Release messages',
        'Released messages are rescanned with the current rules, then delivered.',
        filterBody,
      ),
    },
    async (req) => {
      const { filter, by } = bulk(req.body as FilterInput, req.params.name);
      const mids = await gw.quarantines.releaseMatching(filter, by);
      return bulkResult('release', filter, mids);
    },
  );
  api.post(
    '/quarantines/:name/delete',
    {
      preValidation,
      schema: bulkRoute(
        'delete',
        'Delete messages',
        'The messages are deleted (tracking status `deleted`).',
        filterBody,
      ),
    },
    async (req) => {
      const { filter, by } = bulk(req.body as FilterInput, req.params.name);
      const mids = await gw.quarantines.deleteMatching(filter, by);
      return bulkResult('delete', filter, mids);
    },
  );
  api.post(
    '/quarantines/:name/delay',
    {
      preValidation,
      schema: bulkRoute('delay', 'Move the scheduled exit later', 'The filter plus `extend`.', delayBody),
    },
    async (req) => {
      const b = req.body as z.output<typeof delayBody>;
      const { filter, by } = bulk(b, req.params.name);
      const mids = await gw.quarantines.delay(filter, b.extend, by, QUARANTINE_LIMITS.maxHoldMs);
      return bulkResult('delay', filter, mids);
    },
  );
  api.post(
    '/quarantines/:name/move',
    {
      // the target is checked with the path's quarantine, before the body's filter
      preValidation: async (req) => {
        const name = quarantineName(gw, (req.params as { name: string }).name);
        const target = quarantineName(gw, ((req.body ?? {}) as Record<string, unknown>).to, 'invalid_target', 400);
        if (target === name) throw new ApiError(400, 'invalid_target', 'to must be another quarantine');
      },
      schema: bulkRoute(
        'move',
        'Move messages to another quarantine',
        'The filter plus `to`, the target quarantine: entry time kept, the target’s retention starts now.',
        moveBody,
        ['invalid_target'],
      ),
    },
    async (req) => {
      const b = req.body as z.output<typeof moveBody>;
      const { filter, by } = bulk(b, req.params.name);
      const mids = await gw.quarantines.move(filter, b.to, by);
      return bulkResult('move', filter, mids);
    },
  );
  api.post(
    '/quarantines/:name/copy',
    {
      preValidation,
      schema: bulkRoute(
        'copy',
        'Send a copy of each message',
        'The filter plus `to`. Each held message is sent, attached as `message/rfc822`, to the addresses; the messages stay held.',
        copyBody,
      ),
    },
    async (req) => {
      const b = req.body as z.output<typeof copyBody>;
      const { filter, by } = bulk(b, req.params.name);
      const mids = await gw.quarantines.copy(filter, [b.to].flat(), by);
      return bulkResult('copy', filter, mids);
    },
  );
}

/**
 * The answer of a bulk action: what was acted on and, when MIDs were named, which of them were not
 * (not in this quarantine, or already on their way out) so the CLI can say so and exit non-zero.
 */
function bulkResult(action: z.output<typeof actionResult>['action'], filter: QuarantineFilter, mids: number[]) {
  const done = new Set(mids);
  const notFound = filter.mids ? [...new Set(filter.mids)].filter((m) => !done.has(m)) : [];
  return { action, count: mids.length, mids, notFound };
}

/** A stored time as ISO 8601, or null when the row holds something no Date can show: a bad row never breaks a listing. */
function isoTime(ms: number): string | null {
  const d = new Date(ms);
  return Number.isFinite(d.getTime()) ? d.toISOString() : null;
}

function publicEntry(e: QuarantineEntry) {
  return {
    mid: e.mid,
    quarantine: e.quarantine,
    enteredAt: isoTime(e.enteredAt),
    scheduledExit: isoTime(e.exitAt),
    size: e.size,
    level: e.level,
    category: e.category,
    viral: e.viral,
    ruleIds: e.ruleIds,
    reason: e.reason,
    sender: e.sender,
    recipients: e.recipients,
    subject: e.subject,
    policy: e.policy,
  };
}

/** 14 days → "14d", 90 minutes → "90m": the config's own notation. */
function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const)
    if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

/** A held message's header fields, text, HTML and attachments, parsed with the scanning limits (never rendered). */
export async function heldContent(gw: Gateway, e: QuarantineEntry) {
  const parsed = await gw.parsePool.parse({ file: e.file, start: e.bodyOffset, size: e.size }, defaultParseLimits);
  const clip = (t: string, max: number) => (t.length > max ? t.slice(0, max) : t);
  return {
    mid: e.mid,
    headers: parsed.headers.slice(0, 500).map((h) => ({ name: h.key, value: clip(h.value, 8192) })),
    text: clip(parsed.text, CONTENT_MAX),
    html: clip(parsed.html, CONTENT_MAX),
    attachments: parsed.attachments.map((a) => ({
      name: a.name,
      trueType: a.trueType,
      size: a.size,
      sha256: a.sha256,
    })),
    truncated: parsed.text.length > CONTENT_MAX || parsed.html.length > CONTENT_MAX,
  };
}
