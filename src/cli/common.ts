// Shared pieces of the CLI: finding the config and the running gateway's admin API, output helpers.
import { existsSync, readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { rootCertificates } from 'node:tls';
import path from 'node:path';
import { Agent, fetch as undiciFetch } from 'undici';
import { adminCertFile } from '../api/admin-tls.ts';
import { loadConfigFile, type LoadedConfig } from '../config/load.ts';
import { readAdminToken } from '../api/token.ts';

export function configPath(opt?: string): string {
  const candidates = [opt, process.env.BREAKWATER_CONFIG, 'breakwater.yaml', 'examples/quickstart.yaml'];
  for (const c of candidates) if (c && (c === opt || existsSync(c))) return c;
  throw new CliError('no config file: pass --config FILE or set BREAKWATER_CONFIG');
}

export class CliError extends Error {}

export function load(opt?: string): LoadedConfig {
  return loadConfigFile(configPath(opt));
}

export function adminAddressFile(dataDir: string): string {
  return path.join(dataDir, 'admin.addr');
}

export async function api(opts: { config?: string }, method: string, urlPath: string, body?: unknown): Promise<any> {
  const loaded = load(opts.config);
  const token = readAdminToken(loaded.dataDir);
  if (!token) throw new CliError(`no admin token in ${loaded.dataDir}: has the gateway been started with this config?`);
  const addrFile = adminAddressFile(loaded.dataDir);
  const addr = existsSync(addrFile)
    ? readFileSync(addrFile, 'utf8').trim()
    : `${loaded.config.admin.host}:${loaded.config.admin.port}`;
  if (addr.startsWith('https://')) {
    const certFile = adminCertFile(loaded.config, loaded.dataDir);
    if (!certFile) throw new CliError(`${addrFile} says https but admin.tls is off in ${loaded.file}`);
    return callJson(addr, token, method, urlPath, body, "the gateway's admin API", pinnedTo(certFile));
  }
  return callJson(`http://${addr}`, token, method, urlPath, body, "the gateway's admin API");
}

/**
 * A connection that trusts exactly the gateway's certificate (self-signed or not): its chain is checked
 * against the system's roots plus the certificate itself, then its fingerprint must be the file's. The
 * name is not checked: the CLI reaches the API by address (127.0.0.1), the certificate names the host.
 */
function pinnedTo(certFile: string): Agent {
  const pem = readFileSync(certFile, 'utf8');
  const fingerprint = new X509Certificate(pem).fingerprint256;
  return new Agent({
    connect: {
      ca: [...rootCertificates, pem],
      checkServerIdentity: (_host, cert) =>
        cert.fingerprint256 === fingerprint
          ? undefined
          : new Error(`the admin API presented another certificate than ${certFile}`),
    },
  });
}

/** One JSON call with a bearer token; a refusal becomes a CliError with the API's stable code. */
export async function callJson(
  base: string,
  token: string,
  method: string,
  urlPath: string,
  body: unknown,
  what: string,
  dispatcher?: Agent,
): Promise<any> {
  let res: Response;
  try {
    const request = dispatcher ? (undiciFetch as unknown as typeof fetch) : fetch;
    res = await request(`${base}${urlPath}`, {
      ...(dispatcher ? ({ dispatcher } as object) : {}),
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
  } catch (err) {
    throw new CliError(`cannot reach ${what} at ${base}: ${(err as Error).cause ?? (err as Error).message}`);
  }
  const answer = (await res.json().catch(() => null)) as any;
  if (!res.ok)
    throw new CliError(answer?.error ? `${answer.error.code}: ${answer.error.message}` : `HTTP ${res.status}`);
  return answer;
}

export function print(json: boolean, value: unknown, text: () => string): void {
  process.stdout.write((json ? JSON.stringify(value, null, 2) : text()) + '\n');
}

export function table(rows: string[][]): string {
  if (!rows.length) return '';
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n');
}

/** `config check` of the gateway and of the hub: every error with its path, or the JSON of them. */
export function printConfigCheck(
  file: string,
  errors: Array<{ path: string; message: string }>,
  json: boolean | undefined,
): void {
  if (json) process.stdout.write(JSON.stringify({ valid: errors.length === 0, errors }, null, 2) + '\n');
  else if (errors.length === 0) process.stdout.write(`${file}: valid\n`);
  else {
    process.stdout.write(`${file}: ${errors.length} error(s)\n`);
    for (const e of errors) process.stdout.write(`  ${e.path || '(root)'}: ${e.message}\n`);
  }
  process.exitCode = errors.length ? 1 : 0;
}

const DAY = /^\d{4}-\d{2}-\d{2}$/;

/** The query string of a report route: `--day` (checked) and other parameters; '' when there are none. */
export function dayQuery(day: string | undefined, more: Record<string, string> = {}): string {
  if (day !== undefined && !DAY.test(day)) throw new CliError(`--day ${day}: a date is YYYY-MM-DD`);
  const q = new URLSearchParams({ ...more, ...(day ? { day } : {}) }).toString();
  return q ? `?${q}` : '';
}

/**
 * An error nothing caught is a bug: it is named in the process's own log (where operators look) with
 * its stack, and on stderr, before the process exits as Node would, with 70 (EX_SOFTWARE). Accepted mail
 * is safe on disk; a supervisor restarts the process.
 */
export function exitOnUncaughtError(program: string, writeLog: (line: string) => void): void {
  process.on('uncaughtException', (err) => {
    const what = err instanceof Error ? (err.stack ?? err.message) : String(err);
    writeLog(`stopping on an unexpected error (please report it): ${what}`);
    process.stderr.write(`${program}: stopping on an unexpected error: ${what}\n`);
    process.exit(70);
  });
}
