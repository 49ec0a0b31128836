// `antivirus.clamd: auto` (the quick start): at start, probe the local clamd sockets and scan with the
// first that answers, or run without anti-virus and say so plainly. The probe runs once, before the
// gateway is built, so the rest of the code only ever sees a concrete clamd target or none.
import { realpathSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/schema.ts';
import { ClamdClient, type ClamdTarget } from './clamd.ts';

/** What the gateway does about anti-virus, for the start banner, the mail log and `status`. */
export interface AntivirusState {
  enabled: boolean;
  /** configured: a clamd target in the config; auto: probed at start; off: no clamd configured */
  mode: 'configured' | 'auto' | 'off';
  /** the clamd in use (null when off) */
  clamd: ClamdTarget | null;
  /** with auto: the sockets that were probed */
  probed: string[];
  /** one line: `anti-virus: clamd at /run/clamav/clamd.ctl` / `anti-virus: off (…)` */
  summary: string;
}

/** The configured clamd target; null when unset or still `auto` (not probed). */
export function clamdTarget(config: Config): ClamdTarget | null {
  const c = config.antivirus.clamd;
  return c && c !== 'auto' ? c : null;
}

export function describeTarget(t: ClamdTarget): string {
  return 'socket' in t ? t.socket : `${t.host}:${t.port}`;
}

/** `p` with its deepest existing ancestor resolved through symbolic links. */
function canonical(p: string): string {
  const abs = path.resolve(p);
  let dir = abs;
  for (;;) {
    try {
      return path.join(realpathSync(dir), path.relative(dir, abs));
    } catch {
      const up = path.dirname(dir);
      if (up === dir) return abs;
      dir = up;
    }
  }
}

/** The probe paths, without aliases of the same file (/var/run is usually a link to /run). */
function distinctPaths(paths: readonly string[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const p of paths) {
    const key = canonical(p);
    if (!seen.has(key)) {
      seen.add(key);
      out.push(p);
    }
  }
  return out;
}

/** The first socket where clamd answers PING within timeoutMs, or null. */
export async function probeClamd(sockets: readonly string[], timeoutMs = 2000): Promise<string | null> {
  for (const socket of sockets) {
    const client = new ClamdClient({ target: { socket }, timeoutMs, maxStreamBytes: 1, maxConnections: 1 });
    try {
      if (await client.ping()) return socket;
    } catch {
      // not there, refused, not clamd: try the next
    } finally {
      await client.close();
    }
  }
  return null;
}

/** The state a config describes without probing (`auto` not resolved counts as off). */
export function antivirusState(config: Config): AntivirusState {
  const target = clamdTarget(config);
  if (target)
    return {
      enabled: true,
      mode: 'configured',
      clamd: target,
      probed: [],
      summary: `anti-virus: clamd at ${describeTarget(target)}`,
    };
  if (config.antivirus.clamd === 'auto')
    return {
      enabled: false,
      mode: 'auto',
      clamd: null,
      probed: [],
      summary: 'anti-virus: off (clamd: auto was not probed)',
    };
  return {
    enabled: false,
    mode: 'off',
    clamd: null,
    probed: [],
    summary: 'anti-virus: off (antivirus.clamd is not set)',
  };
}

/**
 * Resolves `clamd: auto`: a copy of the config with `antivirus.clamd` set to the socket that answered,
 * or unset when none did, and the resulting state. Other configs come back unchanged. Never throws:
 * a missing clamd means no anti-virus, not a failed start.
 */
export async function resolveAntivirus(config: Config): Promise<{ config: Config; state: AntivirusState }> {
  if (config.antivirus.clamd !== 'auto') return { config, state: antivirusState(config) };
  const probed = distinctPaths(config.antivirus.autoSockets);
  const socket = await probeClamd(probed);
  const resolved: Config = {
    ...config,
    antivirus: { ...config.antivirus, clamd: socket ? { socket } : undefined },
  };
  const state: AntivirusState = socket
    ? {
        enabled: true,
        mode: 'auto',
        clamd: { socket },
        probed,
        summary: `anti-virus: clamd at ${socket} (found by clamd: auto)`,
      }
    : {
        enabled: false,
        mode: 'auto',
        clamd: null,
        probed,
        summary: `anti-virus: off (no clamd at ${probed.join(' or ')})`,
      };
  return { config: resolved, state };
}
