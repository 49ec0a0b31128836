// Response actions from the hub (hub/actions.ts): while registered, the gateway keeps one long poll open
// to the hub (`GET /api/v1/device/actions?wait=20`), carries out each action it receives through the
// same responder as its own relay's /respond/trigger (mailbox remediation: remediation/responder.ts),
// and posts the result back. Outbound only, so a gateway behind NAT or a firewall still answers.
// `cloud.actions: false` stops taking actions (the hub then reports them as not answered).
import type { Config } from '../config/schema.ts';
import type { CloudService } from './cloud.ts';
import type { RelayResponder } from './relay.ts';
import { HubPoller } from './hub-poller.ts';

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

export class HubActions extends HubPoller {
  private readonly deps: HubActionsDeps;
  private readonly counts = { carriedOut: 0, failed: 0 };

  constructor(deps: HubActionsDeps) {
    super('hub actions', (l) => deps.log.warning(l));
    this.deps = deps;
  }

  get applies(): boolean {
    const { cloud, config } = this.deps;
    return cloud.enabled && config.cloud.actions && !!cloud.credentials();
  }

  health(): HubActionsHealth {
    return { running: this.active, ...this.counts, lastError: this.lastError };
  }

  protected async round(signal: AbortSignal): Promise<void> {
    const res = await this.deps.cloud.call(
      'GET',
      `/api/v1/device/actions?wait=${this.pollWait(POLL_WAIT_S)}`,
      undefined,
      (POLL_WAIT_S + 15) * 1000,
      signal,
    );
    if (!res.ok) throw new Error(`the hub answered the action poll with HTTP ${res.status}`);
    const body = (await res.json()) as { actions?: ActionFromHub[] };
    for (const a of Array.isArray(body.actions) ? body.actions : []) await this.carryOut(a);
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
    if (result.ok) this.counts.carriedOut++;
    else this.counts.failed++;
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
