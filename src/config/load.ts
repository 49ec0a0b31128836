// Loading and validating the YAML config: every error at once, each with its path.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import type { z } from 'zod';
import { configSchema, type Config } from './schema.ts';

export interface ConfigError {
  /** dotted path such as "listeners[0].hat[1].match[0]"; "" for the whole document */
  path: string;
  message: string;
}

export class ConfigInvalidError extends Error {
  readonly code = 'config_invalid';
  readonly errors: ConfigError[];
  constructor(file: string, errors: ConfigError[]) {
    super(
      `${file}: ${errors.length} error(s)\n` + errors.map((e) => `  ${e.path || '(root)'}: ${e.message}`).join('\n'),
    );
    this.errors = errors;
  }
}

export function formatPath(p: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const seg of p) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += (out ? '.' : '') + String(seg);
  }
  return out;
}

/** Validates a parsed document; returns the config (with defaults) or every error. */
export function validateConfig(doc: unknown): { config: Config; errors: [] } | { config: null; errors: ConfigError[] } {
  const r = configSchema.safeParse(doc ?? {});
  if (r.success) return { config: r.data, errors: [] };
  return {
    config: null,
    errors: r.error.issues.map((i) => ({ path: formatPath(i.path), message: i.message })),
  };
}

export interface LoadedConfig {
  config: Config;
  file: string;
  /** absolute data directory */
  dataDir: string;
  /** the file's text this configuration was read from (unset when it was built in memory) */
  source?: string;
}

/** Reads a YAML file and validates it with `schema`: the value (with defaults) or every error at once. */
export function checkYamlFile<T extends z.ZodType>(
  file: string,
  schema: T,
): { value: z.output<T> | null; errors: ConfigError[] } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return { value: null, errors: [{ path: '', message: `cannot read ${file}: ${(err as Error).message}` }] };
  }
  const doc = YAML.parseDocument(text, { prettyErrors: true });
  if (doc.errors.length)
    return { value: null, errors: doc.errors.map((e) => ({ path: '', message: `YAML: ${e.message.split('\n')[0]}` })) };
  const r = schema.safeParse(doc.toJS() ?? {});
  if (r.success) return { value: r.data, errors: [] };
  return { value: null, errors: r.error.issues.map((i) => ({ path: formatPath(i.path), message: i.message })) };
}

export function checkConfigFile(file: string): { loaded: LoadedConfig | null; errors: ConfigError[] } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return { loaded: null, errors: [{ path: '', message: `cannot read ${file}: ${(err as Error).message}` }] };
  }
  const doc = YAML.parseDocument(text, { prettyErrors: true });
  if (doc.errors.length) {
    return {
      loaded: null,
      errors: doc.errors.map((e) => ({ path: '', message: `YAML: ${e.message.split('\n')[0]}` })),
    };
  }
  const v = validateConfig(doc.toJS());
  if (!v.config) return { loaded: null, errors: v.errors };
  const abs = path.resolve(file);
  return {
    loaded: { config: v.config, file: abs, dataDir: path.resolve(path.dirname(abs), v.config.dataDir), source: text },
    errors: [],
  };
}

export function loadConfigFile(file: string): LoadedConfig {
  const { loaded, errors } = checkConfigFile(file);
  if (!loaded) throw new ConfigInvalidError(file, errors);
  return loaded;
}
