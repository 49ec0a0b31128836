// The configuration through the API (DESIGN §9, issue 13): read it (secrets masked), its JSON Schema for
// generated forms, check a proposed document (every error with its path, and what would change), and
// save it with the previous file kept as a backup. The web UI's settings page and `breakwater config`
// use these; a saved config takes effect at the next start.
import { z } from 'zod';
import type { Gateway } from '../gateway/gateway.ts';
import type { LastApply } from '../gateway/process.ts';
import { checkConfigFile, type ConfigError } from '../config/load.ts';
import { ConfigEditor } from '../config/editor.ts';
import { ApiError } from './errors.ts';
import { responses } from './schemas/common.ts';
import type { Api } from './validation.ts';

const change = z.object({
  path: z.string().describe('dotted path of the setting'),
  before: z.unknown(),
  after: z.unknown().describe('null: removed (the default applies)'),
});
const checkResult = z
  .object({
    valid: z.boolean(),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).describe('every error, with its path'),
    changes: z.array(change).describe('what differs from the file, secrets masked'),
  })
  .meta({ id: 'ConfigCheck' });
const documentBody = z
  .object({
    document: z
      .record(z.string(), z.unknown())
      .describe('the whole configuration document, as GET /config answers it (masked secrets stay as they are)'),
  })
  .strict();

/** 400 invalid_config naming every error with its path. */
function invalidConfig(errors: ConfigError[]): ApiError {
  const each = errors.map((e) => `${e.path || '(root)'}: ${e.message}`).join('; ');
  return new ApiError(400, 'invalid_config', `${errors.length} error(s): ${each}`);
}

export function registerConfigRoutes(
  api: Api,
  gw: Gateway,
  apply: ((why: string) => Promise<LastApply>) | null,
  lastApply: () => LastApply | null,
): void {
  const editor = new ConfigEditor(gw.configFile, gw.configSource);

  api.get(
    '/config',
    {
      schema: {
        operationId: 'getConfig',
        tags: ['Settings'],
        summary: 'The configuration file’s document (secrets masked) and where it is',
        response: responses({
          ok: z.object({
            file: z.string(),
            document: z.record(z.string(), z.unknown()),
            restartPending: z
              .boolean()
              .describe(
                'the file differs from the configuration running: POST /config/apply (or a restart) applies it',
              ),
            lastApply: z
              .object({
                at: z.number().describe('epoch ms'),
                why: z.string().describe('admin API or SIGHUP'),
                applied: z.boolean(),
                message: z.string().describe('why not, when not applied'),
              })
              .nullable()
              .describe('the last apply since the process started; null: none'),
          }),
        }),
      },
    },
    async () => ({
      file: editor.file,
      document: editor.document() as Record<string, unknown>,
      restartPending: editor.changedSinceStart(),
      lastApply: lastApply(),
    }),
  );

  api.get(
    '/config/schema',
    {
      schema: {
        operationId: 'getConfigSchema',
        tags: ['Settings'],
        summary: 'JSON Schema of the configuration: every key with its type, default and description',
        response: responses({ ok: z.record(z.string(), z.unknown()) }),
      },
    },
    async () => editor.schema() as Record<string, unknown>,
  );

  api.post(
    '/config/check',
    {
      schema: {
        operationId: 'checkConfig',
        tags: ['Settings'],
        summary: 'Validate a proposed configuration: every error with its path, and what would change',
        body: documentBody,
        response: responses({
          ok: checkResult,
          body: true,
          400: ['invalid_body', 'invalid_parameter', 'unknown_parameter'],
        }),
      },
    },
    async (req) => editor.check(req.body.document),
  );

  api.put(
    '/config',
    {
      schema: {
        operationId: 'saveConfig',
        tags: ['Settings'],
        summary: 'Save the configuration (the previous file is kept as a backup); it applies at the next start',
        body: documentBody,
        response: responses({
          ok: checkResult.extend({
            backup: z.string().nullable().describe('the previous file, kept as <file>.bak-<time>'),
            restartRequired: z.boolean(),
          }),
          body: true,
          400: ['invalid_body', 'invalid_parameter', 'unknown_parameter', 'invalid_config'],
        }),
      },
    },
    async (req) => {
      const r = editor.save(req.body.document);
      if (!r.valid) throw invalidConfig(r.errors);
      return { ...r, restartRequired: r.changes.length > 0 };
    },
  );

  api.post(
    '/config/apply',
    {
      schema: {
        operationId: 'applyConfig',
        tags: ['Settings'],
        summary:
          'Apply the saved configuration now: the gateway restarts its services in this process (accepted mail resumes; SMTP sessions in progress end and their clients retry)',
        body: z.object({}).strict().describe('empty: the file as saved is applied'),
        response: responses({
          ok: z.object({
            applying: z.literal(true),
            changes: z.array(change).describe('what differs from the configuration running now, secrets masked'),
          }),
          okDescription:
            'accepted: the services restart once this answer is sent; GET /config says restartPending: false after',
          body: true,
          400: ['invalid_body', 'unknown_parameter', 'invalid_config'],
          409: ['restart_unavailable'],
        }),
      },
    },
    async (_req, reply) => {
      if (!apply)
        throw new ApiError(
          409,
          'restart_unavailable',
          'this gateway runs embedded in another program, not as `breakwater start`: restart that program',
        );
      // checked before anything stops: an invalid file leaves the running gateway as it is
      const { errors } = checkConfigFile(editor.file);
      if (errors.length) throw invalidConfig(errors);
      const changes = editor.pendingChanges();
      // after this answer has left: stopping the API waits for requests in flight, this one included
      reply.raw.once('finish', () => void apply('admin API'));
      return { applying: true as const, changes };
    },
  );
}
