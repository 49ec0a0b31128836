// Response actions from the hub (hub/actions.ts): while registered, the gateway keeps one long poll open
// to the hub (`GET /api/v1/device/actions?wait=20`), carries out each action it receives through the
// same responder as its own relay's /respond/trigger (mailbox remediation: remediation/responder.ts),
// and posts the result back. Outbound only, so a gateway behind NAT or a firewall still answers.
// `cloud.actions: false` stops taking actions (the hub then reports them as not answered).
import type { Config } from '../config/schema.ts';
import type { CloudService } from './cloud.ts';
import type { RelayResponder } from './relay.ts';

export interface HubActionsDeps {
  config: Config;
  cloud: CloudService;
  responder: () => RelayResponder;
  log: { info(line: string): void; warning(line: string): void };
}

export interface HubActionsHealth {
  running: boolean;
  carriedOut: number;
  failed: number;
  lastError: string | null;
}

interface ActionFromHub {
  id: string;
  action: string;
  observable: { type: string; value: string };
  requestedBy: string;
}

/** how long the hub holds a poll open */
const POLL_WAIT_S = 20;
const MAX_BACKOFF_MS = 60_000;

export class HubActions {
  private readonly deps: HubActionsDeps;
  private stopped = true;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private poll: AbortController | null = null;
  private readonly health_ = { carriedOut: 0, failed: 0, lastError: null as string | null };

  constructor(deps: HubActionsDeps) {
    this.deps = deps;
  }

  private get active(): boolean {
    const { cloud, config } = this.deps;
    return !this.stopped && cloud.enabled && config.cloud.actions && !!cloud.credentials();
  }

  start(): void {
    this.stopped = false;
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.poll?.abort();
    this.wake?.();
    await this.loop;
    this.loop = null;
  }

  /** The registration changed: poll now (or stop polling). */
  poke(): void {
    this.poll?.abort();
    this.wake?.();
  }

  health(): HubActionsHealth {
    return { running: this.active, ...this.health_ };
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      t.unref();
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.wake = () => {
        this.wake = null;
        done();
      };
    });
  }

  private async run(): Promise<void> {
    let backoff = 0;
    while (!this.stopped) {
      if (!this.active) {
        await this.sleep(5_000);
        continue;
      }
      try {
        for (const a of await this.take()) await this.carryOut(a);
        backoff = 0;
        this.health_.lastError = null;
      } catch (err) {
        if (this.stopped) break;
        if ((err as Error).name === 'AbortError') continue; // poked: the registration changed
        this.health_.lastError = (err as Error).message;
        if (backoff === 0) this.deps.log.warning(`hub actions: ${(err as Error).message}; polling again`);
        backoff = Math.min(Math.max(backoff * 2, 1000), MAX_BACKOFF_MS);
        await this.sleep(backoff);
      }
    }
  }

  private async take(): Promise<ActionFromHub[]> {
    this.poll = new AbortController();
    try {
      const res = await this.deps.cloud.call(
        'GET',
        `/api/v1/device/actions?wait=${POLL_WAIT_S}`,
        undefined,
        (POLL_WAIT_S + 15) * 1000,
        this.poll.signal,
      );
      if (!res.ok) throw new Error(`the hub answered the action poll with HTTP ${res.status}`);
      const body = (await res.json()) as { actions?: ActionFromHub[] };
      return Array.isArray(body.actions) ? body.actions : [];
    } finally {
      this.poll = null;
    }
  }

  private async carryOut(a: ActionFromHub): Promise<void> {
    let result: { ok: boolean; detail?: unknown };
    try {
      result = await this.deps.responder().trigger(a.action, a.observable, `hub:${a.requestedBy}`);
    } catch (err) {
      result = { ok: false, detail: (err as Error).message };
    }
    const detail =
      typeof result.detail === 'string'
        ? result.detail
        : result.detail === undefined
          ? ''
          : JSON.stringify(result.detail);
    if (result.ok) this.health_.carriedOut++;
    else this.health_.failed++;
    this.deps.log.info(
      `hub action ${a.id}: ${a.action} ${a.observable.type} ${a.observable.value} for ${a.requestedBy}: ${result.ok ? 'done' : 'failed'}${detail ? ` (${detail})` : ''}`,
    );
    // The result is worth a few tries: an action whose result never arrives is offered again later
    // (and carried out twice: a second delete then fails with "message not found").
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await this.deps.cloud.call('POST', `/api/v1/device/actions/${encodeURIComponent(a.id)}`, {
          ok: result.ok,
          detail: detail.slice(0, 4000),
        });
        // 404: the hub forgot the action (its data was reset): nothing more to tell it
        if (res.ok || res.status === 404) return;
        throw new Error(`the hub refused the result of action ${a.id}: HTTP ${res.status}`);
      } catch (err) {
        if (attempt >= 3 || this.stopped) throw err;
        await new Promise((r) => setTimeout(r, attempt * 1000));
      }
    }
  }
}
