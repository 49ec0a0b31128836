// Click-time protection as the gateway runs it (DESIGN §4.6): the click-time service with its signing
// key, the verdict for a URL at click time (allow/block lists, then current outbreak and adaptive
// rules), what a rewritten link carries about its URL, and every click announced on the event bus
// (web interaction tracking).
import net from 'node:net';
import path from 'node:path';
import type { Config } from '../config/schema.ts';
import { parseDuration } from '../config/schema.ts';
import { ensureSecretKey } from '../store/secret-key.ts';
import type { EventBus } from '../tracking/bus.ts';
import type { OutbreakEngine } from '../outbreak/engine.ts';
import { urlHost } from '../mime/urls.ts';
import { ClickTimeService, type ClickRecord, type UrlVerdict } from './server.ts';

export interface ClickProtectionDeps {
  config: Config;
  dataDir: string;
  engine: Pick<OutbreakEngine, 'scoreUrl' | 'urlThreat'>;
  events: Pick<EventBus, 'emit'>;
  log: { info(line: string): void; warning(line: string): void };
}

export class ClickProtection {
  private readonly deps: ClickProtectionDeps;
  /** the running service (null until started, or when clickTime.enabled is off) */
  service: ClickTimeService | null = null;

  constructor(deps: ClickProtectionDeps) {
    this.deps = deps;
  }

  /** Starts the service; returns its port. */
  async start(): Promise<number> {
    const c = this.deps.config.clickTime;
    const keyFile = path.join(this.deps.dataDir, 'clicktime.key');
    const key = ensureSecretKey(keyFile);
    // Port 0 (tests): find the port first, since the links must name it.
    const port0 = c.port === 0 ? await freeTcpPort(c.host) : c.port;
    const service = new ClickTimeService({
      host: c.host,
      port: port0,
      baseUrl: c.baseUrl ?? `http://${c.host.includes(':') ? `[${c.host}]` : c.host}:${port0}`,
      keys: [key],
      branding: c.branding,
      verdictTimeoutMs: parseDuration(c.verdictTimeout),
      linkLifetimeSeconds: Math.round(parseDuration(c.linkLifetime) / 1000),
      verdict: (url) => this.verdict(url),
      warnLevel: c.warnLevel,
      blockLevel: c.blockLevel,
      onClick: (r) => this.recordClick(r),
    });
    const port = await service.listen();
    this.service = service;
    this.deps.log.info(`click-time service on ${c.host}:${port}`);
    return port;
  }

  async stop(): Promise<void> {
    await this.service?.close();
  }

  /** The level and strongest rules that match a URL now (for a rewritten link's token); undefined for none. */
  urlThreatNow(url: string): { level: number; ruleIds: string[] } | undefined {
    try {
      return this.deps.engine.urlThreat(url);
    } catch (err) {
      this.deps.log.warning(`click-time: URL rules failed at rewrite time: ${(err as Error).message}`);
      return undefined;
    }
  }

  /**
   * Verdict for a URL at click time: allow/block lists, then current outbreak and adaptive rules. The
   * click-time service combines it with what the link's token carries (src/clicktime/verdict.ts).
   */
  verdict(url: string): UrlVerdict {
    const c = this.deps.config.clickTime;
    if (listMatches(c.allowList, url))
      return { verdict: 'clean', ruleIds: [], reason: 'allow list', source: 'allow_list' };
    if (listMatches(c.blockList, url))
      return { verdict: 'malicious', ruleIds: [], reason: 'block list', source: 'block_list' };
    const hits = this.deps.engine.scoreUrl(url);
    const level = Math.max(0, ...hits.map((h) => h.level));
    const ids = hits.filter((h) => h.level === level && level > 0).map((h) => h.id);
    if (level >= c.blockLevel)
      return { verdict: 'malicious', ruleIds: ids, reason: `level ${level}`, source: 'url_rules' };
    if (level >= c.warnLevel)
      return { verdict: 'suspicious', ruleIds: ids, reason: `level ${level}`, source: 'url_rules' };
    return { verdict: 'clean', ruleIds: [], reason: 'no rule matched', source: 'url_rules' };
  }

  private recordClick(r: ClickRecord): void {
    if (!this.deps.config.outbreakFilters.webInteractionTracking) return;
    this.deps.events.emit(r.mid, {
      type: 'click',
      recipient: r.recipient,
      url: r.url,
      verdict: r.verdict,
      action: r.action,
      ruleIds: r.ruleIds,
      source: r.source,
      reason: r.reason,
    });
  }
}

function freeTcpPort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Allow/block list entries: a domain (matching its subdomains too) or a URL prefix. */
function listMatches(list: readonly string[], url: string): boolean {
  if (!list.length) return false;
  let host: string | null = null;
  try {
    host = urlHost(url);
  } catch {
    host = null;
  }
  for (const entry of list) {
    const e = entry.toLowerCase();
    if (e.includes('/')) {
      if (url.toLowerCase().startsWith(e)) return true;
    } else if (host && (host === e || host.endsWith('.' + e.replace(/^\./, '')))) return true;
  }
  return false;
}
