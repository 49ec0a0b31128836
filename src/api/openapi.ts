// The admin API's OpenAPI 3.1 document (DESIGN §9): served at /api/v1/openapi.json and rendered at /api/docs.
// test/openapi.test.ts checks it both ways against the routes Fastify registers, and against live responses.

export interface Schema {
  $ref?: string;
  type?: string | string[];
  description?: string;
  format?: string;
  pattern?: string;
  enum?: readonly unknown[];
  const?: unknown;
  default?: unknown;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  maxLength?: number;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  items?: Schema;
  allOf?: Schema[];
  anyOf?: Schema[];
}

/** A Reference Object: OpenAPI 3.1 lets it override the target's description. */
export interface Ref {
  $ref: string;
  description?: string;
}

export interface Parameter {
  name: string;
  in: 'path' | 'query';
  required?: boolean;
  description: string;
  schema: Schema;
}

export interface MediaTypes {
  [contentType: string]: { schema: Schema };
}

export interface Response {
  description: string;
  content?: MediaTypes;
}

export interface Operation {
  operationId: string;
  tags: string[];
  summary: string;
  description?: string;
  /** [] for public operations; the document-wide bearer requirement otherwise */
  security?: Array<Record<string, string[]>>;
  parameters?: Array<Parameter | Ref>;
  requestBody?: { required: boolean; description?: string; content: MediaTypes };
  responses: Record<string, Response | Ref>;
}

export interface OpenApiDocument {
  openapi: string;
  info: { title: string; version: string; description: string; license: { name: string; identifier: string } };
  security: Array<Record<string, string[]>>;
  tags: Array<{ name: string; description: string }>;
  paths: Record<string, Record<string, Operation>>;
  components: {
    securitySchemes: Record<string, { type: 'http'; scheme: 'bearer'; description: string }>;
    schemas: Record<string, Schema>;
    parameters: Record<string, Parameter>;
    responses: Record<string, Response>;
  };
}

/** Stable error codes (`error.code`) and when they are returned. */
export const errorCodes: Readonly<Record<string, string>> = {
  unauthorized: '401: the bearer token is missing or wrong',
  not_found: '404: no such route',
  invalid_parameter: '400: a parameter or body field has the wrong type or is out of range',
  unknown_parameter: '400: a query parameter or filter field the route does not know',
  invalid_body: '400: the body is not a JSON object',
  invalid_json: '400: the body is not valid JSON, or empty while content-type says JSON',
  body_too_large: '413: the body is larger than 1 MiB',
  unsupported_media_type: '415: a body that is not application/json',
  too_many_mids: '400: more than 10,000 MIDs in one request (select by rule, level or time instead)',
  invalid_request: '400: the request failed schema validation',
  bad_request: '4xx: a request error without a code of its own',
  message_not_found: '404: no tracking record with that MID',
  message_not_queued: '404: the MID is not in the delivery queue',
  quarantine_not_found: '404: no quarantine with that name',
  message_not_quarantined: '404: the MID is not held in that quarantine',
  filter_required: '400: a bulk quarantine action without a filter or `all: true`',
  confirmation_required: '400: a destructive action without `{"confirm": true}`',
  invalid_target: '400: the `to` of a move is not another existing quarantine',
  internal_error: '500: unexpected error (details in the mail log)',
};

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: Schema): MediaTypes => ({ 'application/json': { schema } });
const int: Schema = { type: 'integer', minimum: 0 };
const str: Schema = { type: 'string' };
const bool: Schema = { type: 'boolean' };
const time: Schema = { type: 'string', format: 'date-time' };
const level: Schema = { type: 'integer', minimum: 0, maximum: 5 };
const nullable = (type: string, more: Schema = {}): Schema => ({ ...more, type: [type, 'null'] });
const arrayOf = (items: Schema, description?: string): Schema => ({ type: 'array', items, description });
const freeObject = (description: string): Schema => ({ type: 'object', description });
/** An object whose properties are all present, plus optional ones. */
function object(properties: Record<string, Schema>, optional: Record<string, Schema> = {}): Schema {
  return { type: 'object', required: Object.keys(properties), properties: { ...properties, ...optional } };
}
const described = (description: string, s: Schema): Schema => ({ ...s, description });

const quarantineNameDescription =
  '`outbreak`, `virus` or the name of a configured policy quarantine (`quarantine.policy[].name`)';
const filterFields = '`mids`, `rule`, `level`, `sender`, `recipient`, `since`, `until`';

const schemas: Record<string, Schema> = {
  Error: {
    type: 'object',
    description:
      "Every 4xx/5xx response. `error.code` is stable; Fastify's own request errors (malformed or empty JSON body, body over 1 MiB, unsupported content type) carry Fastify's code in lower case, e.g. `fst_err_ctp_invalid_json_body`.",
    required: ['error'],
    properties: {
      error: object({
        code: {
          type: 'string',
          description: Object.entries(errorCodes)
            .map(([code, when]) => `- \`${code}\` — ${when}`)
            .join('\n'),
          anyOf: [{ enum: Object.keys(errorCodes) }, { pattern: '^fst_err_[a-z0-9_]+$' }],
        },
        message: described('for people; not stable', str),
      }),
    },
  },
  Mid: { type: 'integer', minimum: 0, description: 'message ID (MID)' },
  Time: {
    type: ['string', 'integer'],
    description: 'ISO 8601 time (e.g. `2025-06-01T12:00:00Z`) or epoch milliseconds',
  },
  QuarantineName: { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]{0,63}$', description: quarantineNameDescription },
  QuarantineFilter: {
    type: 'object',
    description: `Selects held messages for a bulk action: give at least one of ${filterFields}, or \`all: true\` (otherwise \`filter_required\`: an empty body never empties a quarantine). Unknown fields are refused (\`unknown_parameter\`).`,
    properties: {
      mids: {
        description: 'these MIDs: an array, or a comma list; at most 10,000 (`too_many_mids`)',
        anyOf: [arrayOf(ref('Mid')), { type: 'string', pattern: '^\\d+(,\\d+)*$' }],
      },
      rule: described('an outbreak or adaptive rule id (or virus name) that matched', str),
      level: described('threat level at least', level),
      sender: described('envelope sender', str),
      recipient: described('an envelope recipient', str),
      since: { ...ref('Time'), description: 'entered the quarantine at or after' },
      until: { ...ref('Time'), description: 'entered the quarantine before' },
      limit: described('at most this many messages', { type: 'integer', minimum: 1, maximum: 10_000 }),
      all: { const: true, description: 'every message in the quarantine' },
      by: { type: 'string', maxLength: 200, description: 'who acts: recorded in tracking and the mail log' },
    },
  },
  ActionResult: object({
    action: { type: 'string', enum: ['release', 'delete', 'delay', 'move', 'copy'] },
    count: described('messages acted on', int),
    mids: arrayOf(ref('Mid'), 'the MIDs acted on'),
    notFound: arrayOf(
      ref('Mid'),
      'MIDs the request named that were not acted on (not held there, or already leaving); empty for a filter without mids',
    ),
  }),
  QuarantineMessage: {
    ...object({
      mid: ref('Mid'),
      quarantine: ref('QuarantineName'),
      enteredAt: time,
      scheduledExit: described('when the default action runs', time),
      size: described('bytes', int),
      level: described('threat level', level),
      category: nullable('string', { description: 'threat category' }),
      viral: bool,
      ruleIds: arrayOf(str, 'the rules (or virus names) that put it here'),
      reason: str,
      sender: str,
      recipients: arrayOf(str),
      subject: nullable('string'),
      policy: str,
    }),
    description: 'A held message',
  },
  QuarantineUsage: {
    ...object(
      { messages: int, bytes: int },
      {
        maxSize: described('the budget shared by all quarantines, in bytes (`quarantine.maxSize`)', int),
        percent: { type: 'number', description: 'bytes as a percentage of maxSize' },
      },
    ),
    description: 'All quarantines together',
  },
  Quarantine: object({
    name: ref('QuarantineName'),
    kind: { type: 'string', enum: ['system', 'policy'], description: 'system: `outbreak` and `virus`' },
    description: str,
    messages: int,
    bytes: int,
    defaultAction: {
      type: 'string',
      enum: ['release', 'delete'],
      description: 'at the scheduled exit and on overflow',
    },
    retention: described(
      "as in the configuration, e.g. `14d`; `per policy` for outbreak (each policy's `outbreakFilters.maxRetention`)",
      str,
    ),
    releaseSubjectTag: described('prepended to the subject of released messages', str),
  }),
  TrackingRecord: {
    ...object({
      mid: ref('Mid'),
      icid: described('inbound connection ID', int),
      parentMid: nullable('integer', { description: 'the original of a policy-split copy' }),
      receivedAt: time,
      direction: { type: 'string', enum: ['incoming', 'outgoing'] },
      listener: str,
      policy: nullable('string'),
      sender: str,
      recipients: arrayOf(
        object({ rid: int, address: str, status: str, attempts: int, lastReply: nullable('string') }),
      ),
      subject: nullable('string'),
      messageId: nullable('string'),
      headerFrom: nullable('string'),
      senderIp: str,
      rdns: nullable('string'),
      helo: nullable('string'),
      tls: nullable('string'),
      size: described('bytes', int),
      attachments: arrayOf(object({ name: str, trueType: nullable('string'), size: int, sha256: str })),
      urls: arrayOf(str),
      status: described(
        'received, scanning, queued, deferred, delivered, bounced, dropped, deleted, quarantined, released or splintered',
        str,
      ),
      threatLevel: nullable('integer', { description: 'Outbreak Filters threat level 0–5' }),
      threatRules: arrayOf(
        object({ id: str, level, category: str, type: str, description: str, adaptive: bool }),
        'matching outbreak and adaptive rules, strongest first',
      ),
      clicks: arrayOf(
        object({
          at: time,
          recipient: str,
          url: str,
          verdict: str,
          action: str,
          source: described(
            'what decided the verdict: allow_list, block_list, url_rules (at click time), url_at_rewrite, message (its threat level) or none ("" for clicks recorded before this field)',
            str,
          ),
        }),
        'clicks on rewritten links (empty in search results)',
      ),
      events: arrayOf(
        { ...object({ at: time, type: str }), description: 'plus fields of the event type' },
        'every event, oldest first (empty in search results)',
      ),
    }),
    description: 'A message (one policy copy) and its recipients',
  },
  QueueEntry: object({
    mid: ref('Mid'),
    sender: str,
    recipients: arrayOf(object({ rid: int, address: str }), 'recipients not yet done'),
    policy: str,
    receivedAt: time,
    state: { type: 'string', enum: ['active', 'deferred'] },
    nextAttemptAt: nullable('string', { format: 'date-time' }),
  }),
  QueueActionResult: object({ mid: ref('Mid'), recipients: described('recipients acted on', int) }),
  UpdateResult: {
    ...object(
      {
        status: { type: 'string', enum: ['updated', 'unchanged', 'failed', 'no_feed'] },
        version: nullable('integer', { description: 'the active bundle version' }),
        ruleCount: int,
      },
      { error: { ...object({ code: str, message: str }), description: 'why the update failed' } },
    ),
  },
  Alert: object(
    {
      id: int,
      at: described('epoch milliseconds', int),
      class: { type: 'string', enum: ['outbreak', 'quarantine', 'antivirus', 'system'] },
      severity: { type: 'string', enum: ['info', 'warning', 'critical'] },
      key: described('stable key used for repeat suppression', str),
      title: str,
      text: str,
      suppressed: bool,
      deliveries: object({
        email: { type: 'string', enum: ['sent', 'skipped', 'failed'] },
        webhooks: arrayOf(
          object({ url: str, status: { type: 'string', enum: ['sent', 'failed'] } }, { httpStatus: int, error: str }),
        ),
      }),
    },
    { data: freeObject('class-specific details') },
  ),
};

const parameters: Record<string, Parameter> = {
  mid: { name: 'mid', in: 'path', required: true, description: 'message ID (MID)', schema: ref('Mid') },
  quarantine: {
    name: 'name',
    in: 'path',
    required: true,
    description: quarantineNameDescription,
    schema: ref('QuarantineName'),
  },
  reportUntil: {
    name: 'until',
    in: 'query',
    description: 'end of the period, exclusive (default: now)',
    schema: ref('Time'),
  },
  top: { name: 'top', in: 'query', description: 'rows per table (default 20, at most 1000)', schema: int },
};

const errorResponse = (description: string): Response => ({ description, content: json(ref('Error')) });
const responses: Record<string, Response> = {
  BadRequest: errorResponse('Bad request'),
  Unauthorized: errorResponse('`unauthorized`: the bearer token is missing or wrong'),
  NotFound: errorResponse('Not found'),
  InternalError: errorResponse('`internal_error`'),
};

const query = (name: string, description: string, schema: Schema): Parameter => ({
  name,
  in: 'query',
  description,
  schema,
});
const p = (name: string): Ref => ({ $ref: `#/components/parameters/${name}` });

interface OpSpec {
  id: string;
  tag: string;
  summary: string;
  description?: string;
  public?: boolean;
  params?: Array<Parameter | Ref>;
  body?: { schema: Schema; description?: string; required?: boolean };
  /** the 200 response: JSON with this schema, or `content` for other media types */
  ok?: Schema;
  okDescription?: string;
  content?: MediaTypes;
  /** error codes by status, besides 401 (unless public) and 500 */
  errors?: { 400?: string[]; 404?: string[] };
}

function op(s: OpSpec): Operation {
  const codes = (list: string[]) => list.map((c) => `\`${c}\``).join(', ');
  const responses: Record<string, Response | Ref> = {
    '200': { description: s.okDescription ?? 'OK', content: s.content ?? json(s.ok ?? {}) },
  };
  if (s.errors?.[400])
    responses['400'] = { $ref: '#/components/responses/BadRequest', description: codes(s.errors[400]) };
  if (!s.public) responses['401'] = { $ref: '#/components/responses/Unauthorized' };
  if (s.errors?.[404])
    responses['404'] = { $ref: '#/components/responses/NotFound', description: codes(s.errors[404]) };
  responses['500'] = { $ref: '#/components/responses/InternalError' };
  return {
    operationId: s.id,
    tags: [s.tag],
    summary: s.summary,
    ...(s.description ? { description: s.description } : {}),
    ...(s.public ? { security: [] } : {}),
    ...(s.params?.length ? { parameters: s.params } : {}),
    ...(s.body
      ? {
          requestBody: {
            required: s.body.required ?? true,
            ...(s.body.description ? { description: s.body.description } : {}),
            content: json(s.body.schema),
          },
        }
      : {}),
    responses,
  };
}

const tags = [
  { name: 'System', description: 'Health, metrics, gateway status and the scanning pipeline' },
  { name: 'Documentation', description: 'This document and its HTML rendering (no token needed)' },
  { name: 'Tracking', description: 'Message tracking: search, and one record with every event' },
  { name: 'Queue', description: 'Messages not yet delivered' },
  { name: 'Outbreak Filters', description: 'Outbreak rules, the rule feed and the Outbreak Filters settings' },
  {
    name: 'Quarantines',
    description: `The system quarantines \`outbreak\` and \`virus\` and the policy quarantines. Bulk actions take a QuarantineFilter (${filterFields}, or \`all: true\`).`,
  },
  { name: 'Reports', description: 'Web interaction tracking and Outbreak Filters reports' },
  { name: 'Alerts', description: 'Alerts raised by the gateway, newest first' },
];

const trackingParams: Parameter[] = [
  query('sender', 'envelope sender', str),
  query('recipient', 'an envelope recipient', str),
  query('subject', 'subject contains', str),
  query('messageId', 'Message-ID, with or without <>', str),
  query('mid', 'this MID', ref('Mid')),
  query('ip', 'sending IP address', str),
  query('sha256', 'an attachment with this SHA-256', str),
  query('attachment', 'an attachment with this name (case-insensitive)', str),
  query('urlDomain', 'a URL in the message with this domain', str),
  query('status', 'message status (see TrackingRecord.status)', str),
  query('level', 'Outbreak Filters threat level at least', level),
  query('rule', 'an outbreak or adaptive rule id that matched', str),
  query('since', 'received at or after', ref('Time')),
  query('until', 'received before', ref('Time')),
  query('limit', 'at most this many records (default 100)', { type: 'integer', minimum: 1, maximum: 1000 }),
  query('before', 'paging: only records received before this MID', ref('Mid')),
];

const quarantineListParams: Array<Parameter | Ref> = [
  p('quarantine'),
  query('rule', 'an outbreak or adaptive rule id (or virus name) that matched', str),
  query('level', 'threat level at least', level),
  query('sender', 'envelope sender', str),
  query('recipient', 'an envelope recipient', str),
  query('since', 'entered the quarantine at or after', ref('Time')),
  query('until', 'entered the quarantine before', ref('Time')),
  query('mids', 'these MIDs (comma list)', { type: 'string', pattern: '^\\d+(,\\d+)*$' }),
  query('limit', 'at most this many messages (default 1000)', { type: 'integer', minimum: 1, maximum: 10_000 }),
];

const bulkErrors = {
  400: ['invalid_body', 'invalid_json', 'invalid_parameter', 'unknown_parameter', 'filter_required', 'too_many_mids'],
  413: ['body_too_large'],
  415: ['unsupported_media_type'],
  404: ['quarantine_not_found'],
};
const withFilter = (extra: Record<string, Schema>): Schema => ({ allOf: [ref('QuarantineFilter'), object(extra)] });

function bulk(action: string, summary: string, description: string, body: Schema, extraErrors: string[] = []): OpSpec {
  return {
    id: `${action}QuarantinedMessages`,
    tag: 'Quarantines',
    summary,
    description,
    params: [p('quarantine')],
    body: { schema: body },
    ok: ref('ActionResult'),
    okDescription: `\`{action: "${action}", count, mids, notFound}\``,
    errors: { ...bulkErrors, 400: [...bulkErrors[400], ...extraErrors] },
  };
}

const operations: Record<string, OpSpec> = {
  'GET /health': {
    id: 'getHealth',
    tag: 'System',
    summary: 'Liveness',
    public: true,
    ok: object({ status: { const: 'ok' }, uptimeSeconds: int }),
  },
  'GET /metrics': {
    id: 'getMetrics',
    tag: 'System',
    summary: 'Prometheus metrics',
    okDescription: 'Prometheus text exposition format',
    content: { 'text/plain': { schema: str } },
  },
  'GET /api/v1/openapi.json': {
    id: 'getOpenApiDocument',
    tag: 'Documentation',
    summary: 'This OpenAPI document',
    public: true,
    ok: freeObject('OpenAPI 3.1 document'),
  },
  'GET /api/docs': {
    id: 'getApiDocs',
    tag: 'Documentation',
    summary: 'This document as a web page',
    public: true,
    okDescription: 'HTML page (no scripts)',
    content: { 'text/html': { schema: str } },
  },
  'GET /api/v1/status': {
    id: 'getStatus',
    tag: 'System',
    summary: 'Listeners, queue counts, anti-virus, next MID, memory',
    ok: object({
      hostname: str,
      uptimeSeconds: int,
      listeners: arrayOf(object({ name: str, direction: str, address: described('host:port', str) })),
      queue: object({ active: int, deferred: int }),
      antivirus: object({
        enabled: bool,
        mode: described(
          'configured: antivirus.clamd names a clamd; auto: probed at start (clamd: auto); off: no clamd configured',
          { type: 'string', enum: ['configured', 'auto', 'off'] },
        ),
        clamd: described('the clamd in use: socket path or host:port', nullable('string')),
        probed: arrayOf(str, 'with clamd: auto, the sockets probed at start'),
        answering: described('whether clamd answered the last check (null when off)', nullable('boolean')),
        signatureVersion: nullable('integer'),
        summary: described('one line, as printed at start: `anti-virus: off (no clamd at …)`', str),
      }),
      nextMid: ref('Mid'),
      dataDir: str,
      memory: freeObject('process memory, held message bytes, parse workers and store writer heaps'),
    }),
  },
  'GET /api/v1/pipeline': {
    id: 'getPipeline',
    tag: 'System',
    summary: 'Scanning stages in order',
    ok: object({
      stages: arrayOf(
        object({
          name: str,
          description: str,
          timeoutMs: int,
          failureMode: { type: 'string', enum: ['tempfail', 'skip', 'quarantine'] },
          settings: freeObject('stage settings'),
        }),
      ),
      text: described('the pipeline as `breakwater pipeline show` prints it', str),
    }),
  },
  'GET /api/v1/tracking/messages': {
    id: 'searchMessages',
    tag: 'Tracking',
    summary: 'Search tracking records, newest first',
    description: 'Every filter is optional; they combine with AND. Unknown parameters are refused.',
    params: trackingParams,
    ok: object({ messages: arrayOf(ref('TrackingRecord')) }),
    errors: { 400: ['invalid_parameter', 'unknown_parameter'] },
  },
  'GET /api/v1/tracking/messages/{mid}': {
    id: 'getMessage',
    tag: 'Tracking',
    summary: 'One tracking record with every event and click',
    params: [p('mid')],
    ok: ref('TrackingRecord'),
    errors: { 400: ['invalid_parameter'], 404: ['message_not_found'] },
  },
  'GET /api/v1/queue': {
    id: 'listQueue',
    tag: 'Queue',
    summary: 'Messages not yet delivered (in the pipeline, queued or deferred)',
    ok: object({ messages: arrayOf(ref('QueueEntry')) }),
  },
  'POST /api/v1/queue/{mid}/retry': {
    id: 'retryQueuedMessage',
    tag: 'Queue',
    summary: 'Retry deferred recipients now',
    params: [p('mid')],
    ok: ref('QueueActionResult'),
    errors: { 400: ['invalid_parameter'], 404: ['message_not_queued'] },
  },
  'DELETE /api/v1/queue/{mid}': {
    id: 'deleteQueuedMessage',
    tag: 'Queue',
    summary: 'Delete deferred recipients (no bounce)',
    description: 'Only recipients waiting for a retry are deleted; one in flight finishes its attempt.',
    params: [p('mid')],
    ok: ref('QueueActionResult'),
    errors: { 400: ['invalid_parameter'], 404: ['message_not_queued'] },
  },
  'GET /api/v1/outbreak/status': {
    id: 'getOutbreakStatus',
    tag: 'Outbreak Filters',
    summary: 'Settings, rule version, last update/check/error, quarantine usage',
    ok: object({
      settings: freeObject('the global `outbreakFilters` settings'),
      policies: object({
        incoming: arrayOf(object({ name: str, outbreakFilters: freeObject('per-policy settings') })),
        outgoing: arrayOf(object({ name: str, outbreakFilters: freeObject('per-policy settings') })),
      }),
      outbreakRules: object({
        version: nullable('integer'),
        published: nullable('string'),
        rules: described('rule count', int),
      }),
      adaptiveRules: object({ enabled: bool }),
      feed: { type: ['object', 'null'], description: '`{url}` or `{dir}`; null without a feed' },
      lastUpdate: nullable('string', { format: 'date-time' }),
      lastCheck: nullable('string', { format: 'date-time' }),
      lastError: nullable('string'),
      quarantine: ref('QuarantineUsage'),
    }),
  },
  'POST /api/v1/outbreak/update': {
    id: 'updateOutbreakRules',
    tag: 'Outbreak Filters',
    summary: 'Fetch the rule feed now',
    description: 'A failed update is a 200 with `status: failed`; the active rules stay.',
    ok: ref('UpdateResult'),
  },
  'POST /api/v1/outbreak/flush': {
    id: 'flushOutbreakRules',
    tag: 'Outbreak Filters',
    summary: 'Clear the cached outbreak rules',
    body: { schema: object({ confirm: { const: true } }) },
    ok: object({ flushed: { const: true }, removedVersion: nullable('integer') }),
    errors: { 400: ['confirmation_required'] },
  },
  'GET /api/v1/outbreak/rules': {
    id: 'listOutbreakRules',
    tag: 'Outbreak Filters',
    summary: 'Active outbreak rules and the adaptive rule catalogue',
    ok: object({
      version: nullable('integer'),
      rules: arrayOf(
        object({ id: str, level, category: str, description: str, published: str, expires: nullable('string') }),
      ),
      adaptive: arrayOf(
        object({ id: str, level, category: str, type: str, description: str }),
        'empty when adaptive rules are off',
      ),
    }),
  },
  'GET /api/v1/quarantines': {
    id: 'listQuarantines',
    tag: 'Quarantines',
    summary: 'Quarantines with message counts and settings; total usage',
    ok: object({
      quarantines: arrayOf(ref('Quarantine')),
      usage: { allOf: [ref('QuarantineUsage'), { required: ['maxSize', 'percent'] }] },
    }),
  },
  'GET /api/v1/quarantines/{name}/messages': {
    id: 'listQuarantinedMessages',
    tag: 'Quarantines',
    summary: 'Held messages, oldest first',
    params: quarantineListParams,
    ok: object({ messages: arrayOf(ref('QuarantineMessage')) }),
    errors: { 400: ['invalid_parameter', 'unknown_parameter'], 404: ['quarantine_not_found'] },
  },
  'GET /api/v1/quarantines/{name}/messages/{mid}': {
    id: 'getQuarantinedMessage',
    tag: 'Quarantines',
    summary: 'One held message with its tracking record',
    params: [p('quarantine'), p('mid')],
    ok: {
      allOf: [ref('QuarantineMessage'), object({ tracking: { anyOf: [ref('TrackingRecord'), { type: 'null' }] } })],
    },
    errors: { 400: ['invalid_parameter'], 404: ['quarantine_not_found', 'message_not_quarantined'] },
  },
  'GET /api/v1/quarantines/{name}/rules': {
    id: 'listQuarantineRules',
    tag: 'Quarantines',
    summary: 'Manage by rule: held messages per rule',
    description: 'Per outbreak rule (outbreak) or virus name (virus and policy quarantines).',
    params: [p('quarantine')],
    ok: object({ rules: arrayOf(object({ ruleId: str, description: str, messages: int, totalSize: int })) }),
    errors: { 404: ['quarantine_not_found'] },
  },
  'POST /api/v1/quarantines/{name}/release': bulk(
    'release',
    'Release messages',
    'Released messages are rescanned with the current rules, then delivered.',
    ref('QuarantineFilter'),
  ),
  'POST /api/v1/quarantines/{name}/delete': bulk(
    'delete',
    'Delete messages',
    'The messages are deleted (tracking status `deleted`).',
    ref('QuarantineFilter'),
  ),
  'POST /api/v1/quarantines/{name}/delay': bulk(
    'delay',
    'Move the scheduled exit later',
    'The filter plus `extend`.',
    withFilter({
      extend: {
        type: 'string',
        pattern: '^\\d{1,12}(ms|s|m|h|d)$',
        description:
          'a duration from 1s to 3650d, such as `4h` or `2d`; no scheduled exit moves past ten years from now',
      },
    }),
  ),
  'POST /api/v1/quarantines/{name}/move': bulk(
    'move',
    'Move messages to another quarantine',
    'The filter plus `to`, the target quarantine.',
    withFilter({ to: { ...ref('QuarantineName'), description: 'the target quarantine' } }),
    ['invalid_target'],
  ),
  'POST /api/v1/quarantines/{name}/copy': bulk(
    'copy',
    'Send a copy of each message',
    'The filter plus `to`. Each held message is sent, attached as `message/rfc822`, to the addresses; the messages stay held.',
    withFilter({
      to: {
        description: '1 to 20 e-mail addresses (or one address as a string)',
        anyOf: [
          { type: 'array', items: { type: 'string', format: 'email' }, minItems: 1, maxItems: 20 },
          { type: 'string', format: 'email' },
        ],
      },
    }),
  ),
  'GET /api/v1/reports/web-interaction': {
    id: 'getWebInteractionReport',
    tag: 'Reports',
    summary: 'Clicks on rewritten links',
    description:
      'Totals, clicks per URL, and the users who clicked malicious links (or continued past a warning). Counts are null over an empty period.',
    params: [
      query('since', 'start of the period (default: 30 days before until)', ref('Time')),
      p('reportUntil'),
      p('top'),
    ],
    ok: object({
      since: time,
      until: time,
      totals: object({
        clicks: int,
        allowed: nullable('integer'),
        blocked: nullable('integer'),
        unknown: nullable('integer'),
        warned: nullable('integer'),
      }),
      urls: arrayOf(
        object({
          url: str,
          domain: nullable('string'),
          allowed: int,
          blocked: int,
          unknown: int,
          warned: int,
          clicks: int,
          messages: int,
        }),
      ),
      topMaliciousClickers: arrayOf(object({ recipient: str, clicks: int, urls: int })),
    }),
    errors: { 400: ['invalid_parameter'] },
  },
  'GET /api/v1/reports/outbreak': {
    id: 'getOutbreakReport',
    tag: 'Reports',
    summary: 'Messages by threat level, by category and by rule',
    params: [
      query('since', 'start of the period (default: 7 days before until)', ref('Time')),
      p('reportUntil'),
      p('top'),
    ],
    ok: object({
      since: time,
      until: time,
      byLevel: arrayOf(object({ level, messages: int })),
      byCategory: arrayOf(object({ category: nullable('string'), messages: int })),
      topRules: arrayOf(
        object({
          ruleId: str,
          category: nullable('string'),
          type: nullable('string'),
          description: nullable('string'),
          adaptive: bool,
          level,
          messages: int,
        }),
      ),
      quarantine: ref('QuarantineUsage'),
    }),
    errors: { 400: ['invalid_parameter'] },
  },
  'GET /api/v1/alerts': {
    id: 'listAlerts',
    tag: 'Alerts',
    summary: 'Recent alerts, newest first',
    params: [
      query('limit', 'at most this many (default 50, at most 1000)', int),
      query('class', 'only this class', { type: 'string', enum: ['outbreak', 'quarantine', 'antivirus', 'system'] }),
    ],
    ok: object({ alerts: arrayOf(ref('Alert')) }),
    errors: { 400: ['invalid_parameter'] },
  },
};

/** The admin API described as OpenAPI 3.1; `version` is the gateway's (package.json). */
export function openApiDocument(version: string): OpenApiDocument {
  const paths: OpenApiDocument['paths'] = {};
  for (const [key, spec] of Object.entries(operations)) {
    const [method, path] = key.split(' ');
    (paths[path] ??= {})[method.toLowerCase()] = op(spec);
  }
  return JSON.parse(
    JSON.stringify({
      openapi: '3.1.1',
      info: {
        title: 'Breakwater admin API',
        version,
        description:
          'JSON over HTTP. Every route needs `Authorization: Bearer <token>` (created at first start in `dataDir/admin.token`) except `/health`, this document and `/api/docs`. Errors are `{"error": {"code", "message"}}` with a stable code (schema Error).',
        license: { name: 'AGPL-3.0-or-later', identifier: 'AGPL-3.0-or-later' },
      },
      security: [{ bearerAuth: [] }],
      tags,
      paths,
      components: {
        securitySchemes: {
          bearerAuth: {
            type: 'http',
            scheme: 'bearer',
            description: 'The admin token from `dataDir/admin.token`',
          },
        },
        schemas,
        parameters,
        responses,
      },
    }),
  ) as OpenApiDocument;
}
