// Starts a hub (`breakwater hub start`): its store, admin token and API. Nothing else is required.
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { ensureAdminToken } from '../api/token.ts';
import { escapeControls } from '../tracking/escape.ts';
import type { LoadedHubConfig } from './config.ts';
import { buildHubApi } from './server.ts';
import { HubStore } from './store.ts';
import { HubRules } from './rules.ts';
import { UserService } from '../users/service.ts';
import { AuditLog } from '../users/audit.ts';
import { userPolicy } from '../users/policy.ts';
import { announceFirstAdmin } from '../users/first-admin.ts';

export interface RunningHub {
  store: HubStore;
  rules: HubRules;
  users: UserService;
  api: FastifyInstance;
  port: number;
  url: string;
  token: string;
  /** writes a line to dataDir/hub.log (synchronously) */
  log(line: string): void;
  stop(): Promise<void>;
}

/** The file where a running hub writes its address (the CLI reads it, like the gateway's admin.addr). */
export function hubAddressFile(dataDir: string): string {
  return path.join(dataDir, 'hub.addr');
}

export async function runHub(
  loaded: LoadedHubConfig,
  options: { announce?: (line: string) => void } = {},
): Promise<RunningHub> {
  const { config, dataDir } = loaded;
  mkdirSync(dataDir, { recursive: true });
  const store = new HubStore(dataDir);
  const { token, created } = ensureAdminToken(dataDir);
  const logFile = path.join(dataDir, 'hub.log');
  const log = (line: string): void => {
    try {
      appendFileSync(logFile, `${new Date().toISOString()} ${escapeControls(line)}\n`);
    } catch {
      // the log is for people: a full disk never stops the hub
    }
  };
  const users = new UserService(store, userPolicy(config));
  const audit = new AuditLog(store);
  const rules = new HubRules(store, dataDir);
  const api = await buildHubApi({
    config,
    store,
    rules,
    users,
    audit,
    adminToken: token,
    startedAt: Date.now(),
    log,
  });
  await api.listen({ host: config.listen.host, port: config.listen.port });
  const addr = api.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.listen.port;
  const host = config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host;
  const url = `http://${host}:${port}`;
  writeFileSync(hubAddressFile(dataDir), `${url}\n`);
  log(`hub listening on ${url}, regions ${config.regions.join(', ')}`);
  if (created && options.announce)
    options.announce(`Hub admin token (shown once, stored in ${dataDir}/admin.token): ${token}`);
  // The first user of the hub's web UI, at first start: printed once, like the token.
  await announceFirstAdmin(
    users,
    audit,
    options.announce,
    (name, password) =>
      `First hub web UI user (shown once): ${name} / ${password} — open ${url}/ui/ (change it with \`breakwater hub users passwd ${name}\`)`,
  );
  return {
    store,
    rules,
    users,
    api,
    port,
    url,
    token,
    log,
    async stop() {
      await api.close();
      store.close();
    },
  };
}
