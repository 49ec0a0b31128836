// Shared zod pieces of the admin API's route schemas (DESIGN §9): the schemas validate requests, type the
// handlers and generate the OpenAPI document (src/api/docs.ts). Request parsers keep the hand-made rules
// they replace: digits only for integers, Date.parse for times, trimmed MIDs, a comma list for `mids`.
import { z } from 'zod';

const INT = /^\d{1,15}$/;

/** A string of digits becomes a number; anything else is left for the integer schema to refuse. */
function digits(v: unknown): unknown {
  return typeof v === 'string' && INT.test(v) ? Number(v) : v;
}

/** A non-negative integer from a query string, a path or a JSON body (number or digit string). */
export function intInput(name: string, min = 0, max = Number.MAX_SAFE_INTEGER): z.ZodType<number> {
  const range =
    max === Number.MAX_SAFE_INTEGER ? `${name} must be a non-negative integer` : `${name} must be ${min}–${max}`;
  return z.preprocess(
    digits,
    z
      .int({ error: `${name} must be a non-negative integer` })
      .min(min, { error: range })
      .max(max, { error: range }),
  ) as unknown as z.ZodType<number>;
}

/** A time in a query string: epoch milliseconds (digits) or anything Date.parse reads (ISO 8601). */
export function timeInput(name: string) {
  const error = `${name} must be an ISO 8601 time or epoch milliseconds`;
  return z
    .string({ error })
    .refine((s) => INT.test(s) || Number.isFinite(Date.parse(s)), { error })
    .transform((s) => (INT.test(s) ? Number(s) : Date.parse(s)))
    .describe('ISO 8601 time (e.g. `2025-06-01T12:00:00Z`) or epoch milliseconds');
}

/** A non-empty string parameter. */
export function text(name: string) {
  return z
    .string({ error: `${name} must be a non-empty string` })
    .min(1, { error: `${name} must be a non-empty string` });
}

export const threatLevel = z.int().min(0).max(5);

/** A message ID in a path. */
export const midParam = z.object({ mid: intInput('mid').describe('message ID (MID)') });

export const quarantineNamePattern = /^[a-z0-9][a-z0-9_-]{0,63}$/;
export const quarantineNameDescription =
  '`outbreak`, `virus` or the name of a configured policy quarantine (`quarantine.policy[].name`)';

/** Stable error codes (`error.code`) and when they are returned. */
// The daily reports' routes (TLS reports, DMARC aggregate reports): a policy domain, a UTC day, a limit.
const REPORT_DAY = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/;
const REPORT_DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.?$/i;

const reportDay = z
  .string({ error: 'day must be a UTC date such as 2026-01-15' })
  .regex(REPORT_DAY, { error: 'day must be a UTC date such as 2026-01-15' })
  .describe('UTC day, YYYY-MM-DD (default: today)');

export function reportDomainParams(description: string) {
  return z.object({
    domain: z
      .string({ error: 'domain must be a domain name' })
      .regex(REPORT_DOMAIN, { error: 'domain must be a domain name' })
      .describe(description),
  });
}

export const reportDayQuery = z.looseObject({ day: reportDay.optional() });

/** `order`: how the list is sorted ("most sessions first") */
export function reportListQuery(order: string) {
  return z.looseObject({
    day: reportDay.optional(),
    limit: intInput('limit').optional().describe(`at most this many domains, ${order} (default 100; at most 10,000)`),
  });
}

/** Whether and how a report went out; `status` says which statuses there are. */
export function reportDelivery(status: string) {
  return z
    .object({
      status: z.string().describe(status),
      detail: z.string(),
      at: z.int().min(0).describe('epoch milliseconds'),
    })
    .nullable()
    .describe('null: not sent (yet)');
}

export const errorCodes = {
  unauthorized: '401: no valid credentials: sign in, or send a valid bearer token',
  forbidden: "403: the caller's role may not do this (each operation lists its roles)",
  csrf_failed: "403: a signed-in browser's state-changing request without its session's CSRF token (x-csrf-token)",
  invalid_credentials: '401: wrong user name or password',
  account_locked: '429: too many failed logins: the account is locked for a while (an admin can set a new password)',
  too_many_attempts:
    '429: too many attempts from this address (failed sign-ins, sign-in links asked for): wait, then try again',
  user_exists: '409: a user with that name exists',
  user_not_found: '404: no user with that name',
  invalid_role: '400: the role is not admin, operator, analyst or helpdesk',
  invalid_name: '400: a user name is 1–64 lower-case letters, digits, ".", "_", "@", "-"',
  weak_password: '400: a password has 10 to 1024 characters',
  wrong_password: '400: the current password given to change it is wrong',
  last_admin: '409: the last admin cannot be removed or lose the role',
  token_not_found: '404: no API token with that id',
  invalid_config:
    '400: a configuration to save or apply has errors (the message lists each with its path; POST /config/check answers them as a list)',
  restart_unavailable:
    '409: the gateway runs embedded in another program (not `breakwater start`): it cannot apply a configuration by itself',
  not_found: '404: no such route',
  invalid_parameter: '400: a parameter or body field has the wrong type or is out of range',
  unknown_parameter: '400: a query parameter or filter field the route does not know',
  invalid_body: '400: the body is not a JSON object',
  invalid_json: '400: the body is not valid JSON, or empty while content-type says JSON',
  body_too_large: '413: the body is larger than 1 MiB',
  unsupported_media_type: '415: a body that is not application/json',
  too_many_mids: '400: more than 10,000 MIDs in one request (select by rule, level or time instead)',
  invalid_request: '400: the request failed schema validation in a way no other code describes',
  bad_request: '4xx: a request error without a code of its own',
  message_not_found: '404: no tracking record with that MID',
  message_not_queued: '404: the MID is not in the delivery queue',
  quarantine_not_found: '404: no quarantine with that name',
  message_not_quarantined: '404: the MID is not held in that quarantine',
  filter_required: '400: a bulk quarantine action without a filter or `all: true`',
  confirmation_required: '400: a destructive action without `{"confirm": true}`',
  invalid_target: '400: the `to` of a move is not another existing quarantine',
  invalid_token: '400: a registration token is not 32 hexadecimal characters (or, on the hub, not one it issued)',
  cloud_disabled: '409: cloud services are disabled (`breakwater cloud enable`)',
  cloud_already_registered: '409: already registered: deregister first (also to change region)',
  cloud_in_progress: '409: a registration is already in progress',
  cloud_not_registered: '409: the gateway is not registered with a hub',
  cloud_hub_unreachable: '502: the hub could not be reached (deregister: retry or `force`)',
  telemetry_off: '409: telemetry is off (`cloud.telemetry`) or the gateway is not registered',
  message_required: '400: a remediation without `mids` or `messageIds`',
  forward_address_required: '400: forward or forward-and-delete without `forwardTo` and no `remediation.forwardTo`',
  enduser_disabled: '404: the end-user quarantine is off (endUserQuarantine.enabled), or links on request are',
  invalid_link: '400: an end-user link that is not one this gateway signed',
  expired_link: '400: an end-user link past its lifetime (endUserQuarantine.linkLifetime): ask for a new one',
  login_unavailable: '502: end-user sign-in with a password is not set up, or the IMAP server could not be asked',
  sender_not_found: '404: the sender is not on the allow list',
  // the hub's (gateways registering and streaming, response actions)
  block_not_found: '404: (hub) no block list entry with that id',
  casebook_not_found: '404: (hub) no casebook with that id',
  watch_not_found: '404: (hub) no watch with that id',
  ticket_not_found: '404: (hub) no ticket with that id',
  tickets_off: '409: (hub) no ticket webhook is configured (tickets.url)',
  rule_not_found: '404: (hub) no outbreak rule with that id, or no bundle published yet',
  invalid_rule: '400: (hub) the rule would be refused by gateways (the message lists every error)',
  rule_not_draft: '409: (hub) only drafts (and published rules) are published',
  not_pending: '409: (hub) the request was already approved, refused or removed',
  approval_by_requester: '403: (hub) a request is approved by a second user, never by its requester',
  device_not_registered: '401: (hub) the device is unknown or was deregistered',
  device_not_found: '404: (hub) no registered device with that id',
  action_not_found: '404: (hub) no response action with that id for this gateway',
  proposal_not_found: '404: (hub) no retro-remediation proposal with that id',
  query_not_found: '404: (hub) the live query is over (answered too late) or was not asked of this gateway',
  expired_token: '400: (hub) the registration token has expired (they last tokenLifetime, 1 hour)',
  token_used: '400: (hub) the registration token was already used (one use each)',
  wrong_region: '400: (hub) the registration token is for another region',
  region_not_served: '400: (hub) this hub does not serve that region (hub config `regions`)',
  internal_error: '500: unexpected error (details in the mail log)',
} as const satisfies Record<string, string>;

export type ErrorCode = keyof typeof errorCodes;

export const errorSchema = z
  .object({
    error: z.object({
      code: z.enum(Object.keys(errorCodes) as [ErrorCode, ...ErrorCode[]]).describe(
        Object.entries(errorCodes)
          .map(([code, when]) => `- \`${code}\` — ${when}`)
          .join('\n'),
      ),
      message: z.string().describe('for people; not stable'),
    }),
  })
  .meta({
    id: 'Error',
    description: 'Every 4xx/5xx response. `error.code` is stable: no other code is ever returned.',
  });

const json = (schema: z.ZodType, description: string) => ({ description, content: { 'application/json': { schema } } });
const codeList = (codes: readonly ErrorCode[]) => codes.map((c) => `\`${c}\``).join(', ');

export interface ResponseSpec {
  /** the 200 answer */
  ok: z.ZodType;
  okDescription?: string;
  /** no token needed */
  public?: boolean;
  /** (hub) a registered gateway's call: its device JWT, no roles */
  device?: boolean;
  /** the route reads a JSON body: 400 invalid_json, 413 and 415 are documented too */
  body?: boolean;
  /** error codes by status, besides 401 and 403 (unless public) and 500 */
  400?: ErrorCode[];
  /** a public route's own 401 codes */
  401?: ErrorCode[];
  /** a route's own 403 codes, besides forbidden and csrf_failed */
  403?: ErrorCode[];
  404?: ErrorCode[];
  409?: ErrorCode[];
  429?: ErrorCode[];
  502?: ErrorCode[];
}

/** The responses of a route: its success schema and every error status with the codes it can carry. */
export function responses(s: ResponseSpec) {
  const r: Record<string, ReturnType<typeof json>> = { 200: json(s.ok, s.okDescription ?? 'OK') };
  const bad = [...(s[400] ?? []), ...(s.body ? (['invalid_json'] as const) : [])];
  if (bad.length) r[400] = json(errorSchema, codeList(bad));
  if (s[401]) r[401] = json(errorSchema, codeList(s[401]));
  if (s.device) r[401] = json(errorSchema, '`unauthorized`, `device_not_registered`: no valid device JWT');
  else if (!s.public) {
    r[401] = json(errorSchema, '`unauthorized`: no valid credentials (bearer token or session cookie)');
    r[403] = json(
      errorSchema,
      "`forbidden` (the caller's role), `csrf_failed` (a session without its CSRF token)" +
        (s[403] ? `, ${codeList(s[403])}` : ''),
    );
  }
  if (s[404]) r[404] = json(errorSchema, codeList(s[404]));
  if (s[409]) r[409] = json(errorSchema, codeList(s[409]));
  if (s[429]) r[429] = json(errorSchema, codeList(s[429]));
  if (s[502]) r[502] = json(errorSchema, codeList(s[502]));
  if (s.body) {
    r[413] = json(errorSchema, '`body_too_large`: more than 1 MiB');
    r[415] = json(errorSchema, '`unsupported_media_type`: send application/json');
  }
  r[500] = json(errorSchema, '`internal_error`');
  return r;
}
