// The gateway as the `breakwater start` process runs it, able to apply a changed configuration without
// the process ending: `POST /api/v1/config/apply` (the web UI's "Apply now", `breakwater config apply`)
// or SIGHUP (`systemctl reload`) re-reads the file and, when it is valid, stops every service and starts
// them again on it. An invalid file changes nothing. Accepted mail is on disk and resumes like after any
// restart; SMTP clients in a session at that moment are disconnected and retry. Listeners configured
// with port 0 keep the port they had, so nobody has to look for the gateway again.
import { writeFileSync } from 'node:fs';
import type { Config } from '../config/schema.ts';
import { loadConfigFile, type LoadedConfig } from '../config/load.ts';
import { runGateway, type RunningGateway } from './run.ts';

export interface GatewayProcessOptions {
  /** where the process tells what it does (stdout for the CLI) */
  announce: (line: string) => void;
  /** where the admin API's address is written for the CLI (dataDir/admin.addr) */
  addressFile: (dataDir: string) => string;
}

/** How an apply went: its answer, and what GET /config says of the last one. */
export interface LastApply {
  /** epoch ms */
  at: number;
  why: string;
  applied: boolean;
  message: string;
}

export class GatewayProcess {
  private running!: RunningGateway;
  private loaded: LoadedConfig;
  private readonly options: GatewayProcessOptions;
  /** one apply at a time; a request meanwhile waits for it and then applies the file as it is then */
  private applying: Promise<LastApply | null> = Promise.resolve(null);
  private last: LastApply | null = null;

  private constructor(loaded: LoadedConfig, options: GatewayProcessOptions) {
    this.loaded = loaded;
    this.options = options;
  }

  static async start(loaded: LoadedConfig, options: GatewayProcessOptions): Promise<GatewayProcess> {
    const p = new GatewayProcess(loaded, options);
    p.running = await p.run(loaded);
    return p;
  }

  get current(): RunningGateway {
    return this.running;
  }

  /** Re-reads the config file and, when it is valid, restarts every service on it (see the top). */
  apply(why: string): Promise<LastApply> {
    const done = this.applying.then(() => this.applyNow(why));
    this.applying = done;
    return done;
  }

  stop(): Promise<void> {
    return this.applying.then(() => this.running.stop());
  }

  private async applyNow(why: string): Promise<LastApply> {
    let next: LoadedConfig;
    try {
      next = loadConfigFile(this.loaded.file);
    } catch (err) {
      const message = (err as Error).message;
      this.running.gateway.mailLog.warning(`configuration not applied (${why}): ${message.replace(/\n\s*/g, '; ')}`);
      return (this.last = { at: Date.now(), why, applied: false, message });
    }
    const previous = this.loaded;
    const ports = this.boundPorts();
    this.running.gateway.mailLog.info(`configuration: applying ${next.file} (${why}): restarting the services`);
    await this.running.stop();
    try {
      // set first: the API of the services started next answers GET /config with it
      this.last = { at: Date.now(), why, applied: true, message: `${next.file} applied` };
      this.running = await this.run(keepPorts(next, ports));
      this.loaded = next;
      this.running.gateway.mailLog.info(`configuration: ${next.file} applied (${why})`);
      return this.last;
    } catch (err) {
      // e.g. a new port another program holds: the previous configuration comes back, on its ports
      const message = `configuration ${next.file} could not start (${(err as Error).message}); the previous one runs again`;
      this.options.announce(message);
      const failed: LastApply = (this.last = { at: Date.now(), why, applied: false, message });
      this.running = await this.run(keepPorts(previous, ports));
      this.running.gateway.mailLog.warning(message);
      return failed;
    }
  }

  private async run(loaded: LoadedConfig): Promise<RunningGateway> {
    const { announce } = this.options;
    const running = await runGateway(loaded, {
      announce,
      apply: (why) => this.apply(why),
      lastApply: () => this.last,
    });
    writeFileSync(
      this.options.addressFile(loaded.dataDir),
      `${running.adminScheme === 'https' ? 'https://' : ''}${loaded.config.admin.host}:${running.adminPort}\n`,
    );
    for (const [name, port] of running.gateway.ports)
      announce(name === 'clickTime' ? `click-time service on port ${port}` : `listener ${name} on port ${port}`);
    announce(`admin API on http://${loaded.config.admin.host}:${running.adminPort}`);
    announce(running.gateway.antivirus.summary);
    return running;
  }

  /** the ports this run bound, by listener name ('clickTime', and 'admin' for the admin API) */
  private boundPorts(): Map<string, number> {
    const ports = new Map(this.running.gateway.ports);
    ports.set('admin', this.running.adminPort);
    return ports;
  }
}

/** The configuration with each port 0 (any free port) replaced by the one the previous run bound. */
function keepPorts(loaded: LoadedConfig, bound: Map<string, number>): LoadedConfig {
  const config: Config = structuredClone(loaded.config);
  for (const l of config.listeners) if (l.port === 0 && bound.has(l.name)) l.port = bound.get(l.name)!;
  if (config.admin.port === 0 && bound.has('admin')) config.admin.port = bound.get('admin')!;
  if (config.clickTime.port === 0 && bound.has('clickTime')) config.clickTime.port = bound.get('clickTime')!;
  return { ...loaded, config };
}
