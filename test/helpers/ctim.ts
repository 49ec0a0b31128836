// Checks relay answers and CTIM entities against the JSON Schemas in src/xdr/ctim/schemas (Ajv, draft
// 2020-12, strict): every schema file is loaded, and each check names the entity or answer it expects.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';

const dir = path.resolve(import.meta.dirname, '../../src/xdr/ctim/schemas');
const BASE = 'https://breakwater.invalid/schemas/ctim/';

export type CtimSchema =
  | 'sighting'
  | 'judgement'
  | 'verdict'
  | 'relation'
  | 'target'
  | 'observable'
  | 'responses#/$defs/health'
  | 'responses#/$defs/observe'
  | 'responses#/$defs/deliberate'
  | 'responses#/$defs/refer'
  | 'responses#/$defs/respond'
  | 'responses#/$defs/trigger'
  | 'responses#/$defs/errors';

const ajv = new Ajv2020({ strict: true, allErrors: true });
for (const f of readdirSync(dir).filter((f) => f.endsWith('.json')))
  ajv.addSchema(JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as object);

/** The schema problems of a value ([] when it fits). */
export function ctimErrors(schema: CtimSchema, value: unknown): string[] {
  const [file, pointer] = schema.split('#');
  const check = ajv.getSchema(`${BASE}${file}.json${pointer ? `#${pointer}` : ''}`);
  if (!check) throw new Error(`no schema ${schema}`);
  return check(value)
    ? []
    : (check.errors ?? []).map((e) => `${schema}${e.instancePath}: ${e.message} ${JSON.stringify(e.params)}`);
}
