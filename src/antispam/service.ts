// The anti-spam service: the rspamd client the stage uses, and rspamd's health as the stage sees it.
// A failed scan (down, slow, an HTTP error, an answer that is not rspamd's) is one alert per outage and
// a mail log warning; the first answer after it is an info alert. What happens to the message is the
// stage's failure mode (pipeline/stages/rspamd.ts), never decided here.
import type { Config } from '../config/schema.ts';
import { parseDuration } from '../config/schema.ts';
import type { AlertInput } from '../alerts/alerts.ts';
import { RspamdClient, type RspamdFailure } from './rspamd.ts';

export interface AntispamServiceDeps {
  config: Config;
  raiseAlert: (a: AlertInput) => void;
  log: { info(line: string): void; warning(line: string): void };
  /** scan the copies waiting for a retry now (failure mode tempfail: rspamd answers again) */
  rescanWaiting?: () => number;
  /** while rspamd fails, how often /ping asks whether it is back (ms; default 5000) */
  probeIntervalMs?: number;
}

export class AntispamService {
  readonly client: RspamdClient;
  private readonly deps: AntispamServiceDeps;
  private down: { since: number; reason: RspamdFailure; error: string; failures: number } | null = null;
  private probe: NodeJS.Timeout | null = null;
  private stopped = false;

  /** null when no rspamd URL is configured (the stage is not in the pipeline) */
  static create(deps: AntispamServiceDeps): AntispamService | null {
    return deps.config.antispam.rspamd.url ? new AntispamService(deps) : null;
  }

  private constructor(deps: AntispamServiceDeps) {
    this.deps = deps;
    const r = deps.config.antispam.rspamd;
    this.client = new RspamdClient({
      url: r.url!,
      timeoutMs: parseDuration(r.timeout),
      maxConnections: r.maxConnections,
      password: r.password,
      settingsId: r.settingsId,
    });
    deps.log.info(`anti-spam: rspamd at ${this.client.url} (timeout ${r.timeout}, failure mode ${r.failureMode})`);
  }

  get failureMode(): 'skip' | 'tempfail' {
    return this.deps.config.antispam.rspamd.failureMode;
  }

  /** A scan failed: alert once per outage (repeats within it are counted, not raised). */
  failed(reason: RspamdFailure, error: string): void {
    if (this.down) {
      this.down.failures++;
      return;
    }
    this.down = { since: Date.now(), reason, error, failures: 1 };
    const mode = this.failureMode;
    const consequence =
      mode === 'skip'
        ? 'Messages are delivered without its opinion (each one says so in tracking) until it answers again.'
        : 'Messages wait and are scanned again until it answers.';
    this.deps.log.warning(`anti-spam: rspamd ${reason}: ${error}; failure mode ${mode}`);
    this.probeLater();
    this.deps.raiseAlert({
      class: 'system',
      severity: mode === 'skip' ? 'warning' : 'critical',
      key: 'antispam.rspamd_down',
      title: `rspamd does not answer (${reason}): ${mode === 'skip' ? 'mail is not spam-checked' : 'mail waits'}`,
      text: `The rspamd stage failed (${error}). ${consequence}`,
      data: { reason, error, failureMode: mode, url: this.client.url },
    });
  }

  /** A scan worked: after an outage, say so once. */
  answered(): void {
    if (!this.down) return;
    const { since, failures } = this.down;
    this.down = null;
    // mail that waited for it (failure mode tempfail) is scanned now, not at its retry time
    const n = this.failureMode === 'tempfail' ? (this.deps.rescanWaiting?.() ?? 0) : 0;
    this.deps.log.info(
      `anti-spam: rspamd answers again after ${failures} failed scan(s)${n ? `; ${n} waiting message(s) rescanned` : ''}`,
    );
    this.deps.raiseAlert({
      class: 'system',
      severity: 'info',
      key: 'antispam.rspamd_up',
      title: 'rspamd answers again',
      text: `rspamd answers again; ${failures} scan(s) failed since ${new Date(since).toISOString()} (failure mode ${this.failureMode}).`,
      data: { failures, since },
    });
  }

  status(): { url: string; failureMode: string; state: 'ok' | 'failing'; since: number | null; error: string | null } {
    return {
      url: this.client.url,
      failureMode: this.failureMode,
      state: this.down ? 'failing' : 'ok',
      since: this.down?.since ?? null,
      error: this.down?.error ?? null,
    };
  }

  /** While rspamd fails, /ping tells when it is back (the next scan would too, but none may come). */
  private probeLater(): void {
    if (this.probe || this.stopped) return;
    this.probe = setTimeout(() => {
      void this.client.ping().then((ok) => {
        this.probe = null;
        if (ok) this.answered();
        else if (this.down) this.probeLater();
      });
    }, this.deps.probeIntervalMs ?? 5000);
    this.probe.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.probe) clearTimeout(this.probe);
    this.client.close();
  }
}
