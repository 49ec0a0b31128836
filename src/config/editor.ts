// Editing the configuration from the API and the web UI (DESIGN §9, issue 13): the document as written
// (secrets masked), the JSON Schema the UI's forms are generated from (the same zod schema that
// validates, documents and gives defaults), a check that reports every error with its path and the
// difference from the file, and a save that keeps the previous file as a backup. A saved config takes
// effect at the next start of the gateway (most services read their settings once, when built).
import {
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import { configSchema } from './schema.ts';
import { validateConfig, type ConfigError } from './load.ts';

/** What a masked secret looks like in answers; sent back unchanged, it keeps the secret as it was. */
export const MASK = '********';
const SECRET_KEY = /pass(word)?$|secret|token$|privateKey|^key$|apiKey|jwtSecret/i;
/** backups kept next to the config file */
const KEEP_BACKUPS = 10;

export interface ConfigChange {
  path: string;
  before: unknown;
  after: unknown;
}

export interface ConfigCheck {
  valid: boolean;
  errors: ConfigError[];
  changes: ConfigChange[];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A copy with every secret-looking string value replaced by MASK. */
export function maskSecrets(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(maskSecrets);
  if (!isObject(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v))
    out[k] = SECRET_KEY.test(k) && typeof x === 'string' && x !== '' ? MASK : maskSecrets(x);
  return out;
}

/** The proposed document with every MASK put back to the current value at the same place. */
export function unmaskSecrets(proposed: unknown, current: unknown): unknown {
  if (proposed === MASK) return current;
  if (Array.isArray(proposed))
    return proposed.map((x, i) => unmaskSecrets(x, Array.isArray(current) ? current[i] : undefined));
  if (!isObject(proposed)) return proposed;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(proposed)) out[k] = unmaskSecrets(x, isObject(current) ? current[k] : undefined);
  return out;
}

interface RawChange {
  segments: string[];
  before: unknown;
  after: unknown;
}

/** Leaf-level differences between two documents (arrays compared whole), unmasked. */
function rawChanges(before: unknown, after: unknown, segments: string[] = []): RawChange[] {
  // a section added or removed whole is listed setting by setting
  if (before === undefined && isObject(after)) before = {};
  if (after === undefined && isObject(before)) after = {};
  if (isObject(before) && isObject(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return keys.flatMap((k) => rawChanges(before[k], after[k], [...segments, k]));
  }
  if (JSON.stringify(before) === JSON.stringify(after)) return [];
  return [{ segments, before, after }];
}

/** Leaf-level differences between two documents (arrays compared whole), secrets masked. */
export function diffDocuments(before: unknown, after: unknown): ConfigChange[] {
  return rawChanges(before, after).map((c) => {
    const secret = SECRET_KEY.test(c.segments.at(-1) ?? '');
    const show = (v: unknown) => (v === undefined ? null : secret ? MASK : maskSecrets(v));
    return { path: c.segments.join('.') || '(root)', before: show(c.before), after: show(c.after) };
  });
}

export class ConfigEditor {
  readonly file: string;
  /** the file as it was when the gateway started (built this editor) */
  private readonly atStart: string | null;

  /** `running`: the text the running configuration was read from (default: the file as it is now) */
  constructor(file: string, running?: string) {
    this.file = file;
    this.atStart = running ?? (existsSync(file) ? readFileSync(file, 'utf8') : null);
  }

  /** Whether the file differs from what the gateway runs on: applying it (or a restart) would change that. */
  changedSinceStart(): boolean {
    const now = existsSync(this.file) ? readFileSync(this.file, 'utf8') : null;
    return now !== this.atStart;
  }

  /** What the file changes from the configuration this gateway started with, secrets masked. */
  pendingChanges(): ConfigChange[] {
    const before = this.atStart === null ? {} : (YAML.parse(this.atStart) ?? {});
    return diffDocuments(before, this.read());
  }

  /** The document as written in the file (not the defaults), secrets masked. */
  document(): unknown {
    return maskSecrets(this.read());
  }

  /** JSON Schema of the configuration (input side: what may be written, with defaults and descriptions). */
  schema(): unknown {
    return z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' });
  }

  /** Validates a proposed document (masked secrets count as unchanged) and lists what would change. */
  check(proposed: unknown, current: unknown = this.read()): ConfigCheck {
    const doc = unmaskSecrets(proposed, current);
    const v = validateConfig(doc);
    return { valid: v.errors.length === 0, errors: v.errors, changes: diffDocuments(current, doc) };
  }

  /**
   * Saves a valid document: the current file is kept as `<file>.bak-<time>` (the newest ten), the new
   * one written to a temporary file, fsynced and renamed over the old one. Nothing is written when the
   * document is invalid.
   */
  save(proposed: unknown): ConfigCheck & { backup: string | null } {
    const old = existsSync(this.file) ? readFileSync(this.file) : null;
    const current = old ? (YAML.parse(old.toString('utf8')) ?? {}) : {};
    const check = this.check(proposed, current);
    if (!check.valid || check.changes.length === 0) return { ...check, backup: null };
    const doc = unmaskSecrets(proposed, current);
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const backup = `${this.file}.bak-${stamp}`;
    if (old) writeDurably(backup, old);
    // Only what changed is written into the file's YAML document: its comments and layout stay.
    const ydoc = YAML.parseDocument(old ? old.toString('utf8') : '');
    for (const c of rawChanges(current, doc)) {
      if (c.after === undefined) ydoc.deleteIn(c.segments);
      else if (c.segments.length === 0) ydoc.contents = ydoc.createNode(c.after) as typeof ydoc.contents;
      else ydoc.setIn(c.segments, c.after);
    }
    writeDurably(this.file, Buffer.from(ydoc.toString()));
    this.pruneBackups();
    return { ...check, backup: old ? backup : null };
  }

  private read(): unknown {
    if (!existsSync(this.file)) return {};
    return YAML.parse(readFileSync(this.file, 'utf8')) ?? {};
  }

  private pruneBackups(): void {
    const dir = path.dirname(this.file);
    const prefix = `${path.basename(this.file)}.bak-`;
    const backups = readdirSync(dir)
      .filter((f) => f.startsWith(prefix))
      .sort();
    for (const f of backups.slice(0, Math.max(0, backups.length - KEEP_BACKUPS))) unlinkSync(path.join(dir, f));
  }
}

function writeDurably(file: string, bytes: Buffer): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, bytes);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  const dirFd = openSync(path.dirname(file), 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}
