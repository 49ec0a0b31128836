// Generates docs/config-reference.md from the config schema (the one source of truth).
// `--check` fails when the committed file is stale (part of `npm run check`).
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { configSchema } from '../src/config/schema.ts';

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

const rows: string[] = [];

function typeOf(s: JsonSchema): string {
  if (s.enum) return s.enum.map((e) => JSON.stringify(e)).join(' \\| ');
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.anyOf) return [...new Set(s.anyOf.map(typeOf))].join(' or ');
  if (s.type === 'array') return `list of ${s.items ? typeOf(s.items) : 'any'}`;
  if (s.type === 'object' && s.additionalProperties && typeof s.additionalProperties === 'object' && !s.properties)
    return `map of ${typeOf(s.additionalProperties)}`;
  return Array.isArray(s.type) ? s.type.join(' or ') : (s.type ?? 'any');
}

function walk(s: JsonSchema, prefix: string, required: boolean): void {
  if (prefix) {
    const def = s.default !== undefined ? `\`${JSON.stringify(s.default)}\`` : required ? '**required**' : '';
    rows.push(`| \`${prefix}\` | ${typeOf(s)} | ${def} | ${(s.description ?? '').replace(/\|/g, '\\|')} |`);
  }
  if (s.properties) {
    for (const [k, v] of Object.entries(s.properties))
      walk(v, prefix ? `${prefix}.${k}` : k, s.required?.includes(k) ?? false);
  }
  if (s.type === 'array' && s.items?.properties)
    walk({ ...s.items, description: undefined, default: undefined }, `${prefix}[]`, false);
}

const schema = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
walk(schema, '', true);
const out = [
  '# Configuration reference',
  '',
  'Generated from `src/config/schema.ts` by `npm run docs:config`; do not edit by hand.',
  'Durations are written like `500ms`, `30s`, `5m`, `4h`, `5d`; sizes like `10MiB` or a number of bytes.',
  'Relative paths are relative to the config file. Check a file with `breakwater config check FILE`.',
  '',
  '| key | type | default | description |',
  '|---|---|---|---|',
  ...rows.filter((r, i, a) => a.indexOf(r) === i),
  '',
].join('\n');

const file = path.resolve(import.meta.dirname, '../docs/config-reference.md');
if (process.argv.includes('--check')) {
  if (!existsSync(file) || readFileSync(file, 'utf8') !== out) {
    process.stderr.write('docs/config-reference.md is stale: run `npm run docs:config`\n');
    process.exit(1);
  }
} else {
  writeFileSync(file, out);
  process.stdout.write(`wrote ${file} (${rows.length} keys)\n`);
}
