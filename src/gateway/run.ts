// Starts a whole gateway (SMTP listeners, delivery, admin API) from a loaded config.
import type { FastifyInstance } from 'fastify';
import type { LoadedConfig } from '../config/load.ts';
import { Gateway, type GatewayOptions } from './gateway.ts';
import { buildApi } from '../api/server.ts';
import { ensureAdminToken } from '../api/token.ts';
import { adminTls } from '../api/admin-tls.ts';
import { resolveAntivirus } from '../antivirus/auto.ts';
import { announceFirstAdmin } from '../users/first-admin.ts';
import type { LastApply } from './process.ts';

export interface RunningGateway {
  gateway: Gateway;
  api: FastifyInstance;
  adminPort: number;
  /** http or https */
  adminScheme: 'http' | 'https';
  token: string;
  stop(): Promise<void>;
}

export interface RunGatewayOptions extends GatewayOptions {
  /** applies the configuration file now (gateway/process.ts); unset: the admin API answers 409 */
  apply?: (why: string) => Promise<LastApply>;
  /** how the last apply went (GET /config) */
  lastApply?: () => LastApply | null;
}

export async function runGateway(loaded: LoadedConfig, runOptions: RunGatewayOptions = {}): Promise<RunningGateway> {
  const { apply, lastApply, ...options } = runOptions;
  // `antivirus.clamd: auto` is probed once, here, so the gateway is built with a clamd or without one.
  const av = options.antivirus ? null : await resolveAntivirus(loaded.config);
  const gateway = new Gateway(
    av ? { ...loaded, config: av.config } : loaded,
    av ? { ...options, antivirus: av.state } : options,
  );
  const { token, created } = ensureAdminToken(loaded.dataDir);
  let api: FastifyInstance | null = null;
  let https: ReturnType<typeof adminTls> = null;
  try {
    await gateway.start();
    https = adminTls(gateway.config, loaded.dataDir, (l) => gateway.mailLog.warning(l));
    api = await buildApi(gateway, token, {
      ...(https ? { https } : {}),
      ...(apply ? { apply } : {}),
      ...(lastApply ? { lastApply } : {}),
    });
    await api.listen({ host: loaded.config.admin.host, port: loaded.config.admin.port });
  } catch (err) {
    // (a port in use, say) nothing of this start may stay running: a caller may start another
    await api?.close().catch(() => {});
    await gateway.stop().catch(() => {});
    throw err;
  }
  const addr = api.server.address();
  const adminPort = typeof addr === 'object' && addr ? addr.port : loaded.config.admin.port;
  const host = loaded.config.admin.host;
  gateway.adminUrl = `${https ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${adminPort}`;
  gateway.mailLog.info(`admin API on ${gateway.adminUrl}`);
  if (created && options.announce) {
    options.announce(`Admin API token (shown once, stored in ${loaded.dataDir}/admin.token): ${token}`);
  }
  // The first user, at first start: printed once, like the token (`breakwater users passwd admin` changes it).
  await announceFirstAdmin(
    gateway.users,
    gateway.audit,
    options.announce,
    (name, password) =>
      `First web UI user (shown once): ${name} / ${password} — change it with \`breakwater users passwd ${name}\``,
  );
  // Tests and the CLI find the admin port here when the config asks for port 0.
  gateway.store.setMeta('admin_port', String(adminPort));
  return {
    gateway,
    api,
    adminPort,
    adminScheme: https ? 'https' : 'http',
    token,
    async stop() {
      await api.close();
      await gateway.stop();
    },
  };
}
