// Fastify's validator and serializer compilers for the zod route schemas (DESIGN §9).
//
// Validation: a failed schema becomes one ApiError with a stable code. zod reports every issue at once;
// the code is that of the first issue in the order the hand-made checks ran before the API was
// schema-first (a body that is not an object, then unknown fields, then the fields in order), so a
// request gets the same code as before. A schema can change that order and the codes with withCodes().
//
// Serialization: JSON.stringify, exactly as without a schema: nothing is stripped and the hot listings
// pay nothing. With BREAKWATER_API_CHECK_RESPONSES=1 (set by the test helpers) every answer is first
// checked against its schema, and an answer with a field the schema does not know fails too: the
// document cannot drift from what the routes send.
import { isDeepStrictEqual } from 'node:util';
import type {
  FastifyBaseLogger,
  FastifyInstance,
  FastifySchemaCompiler,
  FastifySerializerCompiler,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { z } from 'zod';
import { ApiError } from './errors.ts';

type Issue = z.core.$ZodIssue;
type Part = 'body' | 'querystring' | 'params' | 'headers';

/** How one schema's issues map to stable codes. */
export interface CodeRules {
  /**
   * Checks in the order they are decided: a field name, `(type)` for a body that is not an object,
   * `(unknown)` for fields the schema does not know, or the `params.code` of a custom issue.
   * Checks not listed come after, in zod's order.
   */
  order?: readonly string[];
  /** the code of a check, where not the default (`invalid_body`, `unknown_parameter`, `invalid_parameter`) */
  codes?: Readonly<Record<string, string | ((issue: Issue) => string)>>;
  /** the message of a check, where not zod's */
  messages?: Readonly<Record<string, string>>;
}

const rulesOf = new WeakMap<object, CodeRules>();

/** Declares how a schema's failures map to codes (see CodeRules). */
export function withCodes<T extends z.ZodType>(schema: T, rules: CodeRules): T {
  rulesOf.set(schema, rules);
  return schema;
}

function checkOf(issue: Issue): string {
  if (issue.path.length === 0 && issue.code === 'invalid_type') return '(type)';
  if (issue.code === 'unrecognized_keys') return '(unknown)';
  if (issue.code === 'custom' && typeof issue.params?.code === 'string') return issue.params.code;
  return String(issue.path[0] ?? '');
}

function defaultCode(check: string, issue: Issue, part: Part): string {
  if (check === '(type)') return part === 'body' ? 'invalid_body' : 'invalid_parameter';
  if (check === '(unknown)') return 'unknown_parameter';
  if (issue.code === 'custom' && typeof issue.params?.code === 'string') return issue.params.code;
  return 'invalid_parameter';
}

/** The one error a failed request gets: the code and message of its first issue (see CodeRules). */
export function apiErrorFor(issues: readonly Issue[], part: Part, rules: CodeRules = {}): ApiError {
  const order = rules.order ?? ['(type)', '(unknown)'];
  const rank = (i: Issue) => {
    const at = order.indexOf(checkOf(i));
    return at < 0 ? order.length : at;
  };
  const first = issues.reduce((a, b) => (rank(b) < rank(a) ? b : a));
  const check = checkOf(first);
  const code = rules.codes?.[check] ?? defaultCode(check, first, part);
  const path = first.path.join('.');
  const message =
    rules.messages?.[check] ??
    (path && !first.message.startsWith(String(first.path[0])) ? `${path}: ${first.message}` : first.message);
  return new ApiError(400, typeof code === 'function' ? code(first) : code, message);
}

export const validatorCompiler: FastifySchemaCompiler<z.ZodType> = ({ schema, httpPart }) => {
  const rules = rulesOf.get(schema);
  return (data) => {
    const r = schema.safeParse(data);
    return r.success ? { value: r.data } : { error: apiErrorFor(r.error.issues, httpPart as Part, rules) };
  };
};

/** Whether answers are checked against their schemas (read when the routes are built). */
export function checkResponses(): boolean {
  return process.env.BREAKWATER_API_CHECK_RESPONSES === '1';
}

export const serializerCompiler: FastifySerializerCompiler<z.ZodType> = ({ schema, method, url, httpStatus }) => {
  if (!checkResponses()) return (data) => JSON.stringify(data);
  return (data) => {
    const text = JSON.stringify(data);
    const sent = JSON.parse(text) as unknown;
    const r = schema.safeParse(sent);
    const problem = !r.success
      ? JSON.stringify(r.error.issues.slice(0, 5))
      : !isDeepStrictEqual(r.data, sent)
        ? 'it holds fields the schema does not describe'
        : null;
    if (problem) throw new Error(`the ${httpStatus} answer of ${method} ${url} does not fit its schema: ${problem}`);
    return text;
  };
};

/** A Fastify instance whose routes are typed by their zod schemas. */
export type Api = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  ZodTypeProvider
>;

/**
 * A service function's answer that TypeScript knows only loosely (Record<string, unknown>), as the route
 * schema says it is: with BREAKWATER_API_CHECK_RESPONSES=1 the serializer checks that it is.
 */
export function answer<T extends z.ZodType>(_schema: T, value: unknown): z.output<T> {
  return value as z.output<T>;
}
