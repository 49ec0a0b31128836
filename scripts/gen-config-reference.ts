// Generates docs/config-reference.md from the gateway's config schema and docs/hub-config-reference.md
// from the hub's (each the one source of truth for its product).
// `--check` fails when a committed file is stale (part of `npm run check`).
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { configSchema } from '../src/config/schema.ts';
import { hubConfigSchema } from '../src/hub/config.ts';

type JsonSchema = {
  type?: string | string[];
  description?: string;
  default?: unknown;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  enum?: unknown[];
  anyOf?: JsonSchema[];
  additionalProperties?: JsonSchema | boolean;
  minimum?: number;
  maximum?: number;
  pattern?: string;
  const?: unknown;
};

function typeOf(s: JsonSchema): string {
  if (s.enum) return s.enum.map((e) => JSON.stringify(e)).join(' \\| ');
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.anyOf) return [...new Set(s.anyOf.map(typeOf))].join(' or ');
  if (s.type === 'array') return `list of ${s.items ? typeOf(s.items) : 'any'}`;
  if (s.type === 'object' && s.additionalProperties && typeof s.additionalProperties === 'object' && !s.properties)
    return `map of ${typeOf(s.additionalProperties)}`;
  return Array.isArray(s.type) ? s.type.join(' or ') : (s.type ?? 'any');
}

function walk(rows: string[], s: JsonSchema, prefix: string, required: boolean): void {
  if (prefix) {
    const def = s.default !== undefined ? `\`${JSON.stringify(s.default)}\`` : required ? '**required**' : '';
    rows.push(`| \`${prefix}\` | ${typeOf(s)} | ${def} | ${(s.description ?? '').replace(/\|/g, '\\|')} |`);
  }
  if (s.properties) {
    for (const [k, v] of Object.entries(s.properties))
      walk(rows, v, prefix ? `${prefix}.${k}` : k, s.required?.includes(k) ?? false);
  }
  if (s.type === 'array' && s.items?.properties)
    walk(rows, { ...s.items, description: undefined, default: undefined }, `${prefix}[]`, false);
}

let stale = false;

function generate(o: { schema: z.ZodType; file: string; title: string; source: string; check: string }): void {
  const rows: string[] = [];
  walk(rows, z.toJSONSchema(o.schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema, '', true);
  const out = [
    `# ${o.title}`,
    '',
    `Generated from \`${o.source}\` by \`npm run docs:config\`; do not edit by hand.`,
    'Durations are written like `500ms`, `30s`, `5m`, `4h`, `5d`; sizes like `10MiB` or a number of bytes.',
    `Relative paths are relative to the config file. Check a file with \`${o.check}\`.`,
    '',
    '| key | type | default | description |',
    '|---|---|---|---|',
    ...rows.filter((r, i, a) => a.indexOf(r) === i),
    '',
  ].join('\n');
  const file = path.resolve(import.meta.dirname, '../docs', o.file);
  if (process.argv.includes('--check')) {
    if (!existsSync(file) || readFileSync(file, 'utf8') !== out) {
      process.stderr.write(`docs/${o.file} is stale: run \`npm run docs:config\`\n`);
      stale = true;
    }
  } else {
    writeFileSync(file, out);
    process.stdout.write(`wrote ${file} (${rows.length} keys)\n`);
  }
}

generate({
  schema: configSchema,
  file: 'config-reference.md',
  title: 'Configuration reference',
  source: 'src/config/schema.ts',
  check: 'breakwater config check FILE',
});
generate({
  schema: hubConfigSchema,
  file: 'hub-config-reference.md',
  title: 'Hub configuration reference',
  source: 'src/hub/config.ts',
  check: 'breakwater hub config check FILE',
});
if (stale) process.exit(1);
