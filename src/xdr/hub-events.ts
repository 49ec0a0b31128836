// The gateway's end of the device channel's push side (hub/device-channel.ts): while registered (and
// `cloud.push` is on), one server-sent-event stream to the hub (`GET /api/v1/device/events`). Events say
// what to fetch now — `rules`, `actions`, `blocklist` — and the services that fetch them (hub-rules.ts,
// hub-actions.ts, hub-blocklist.ts) stop long polling while the stream is up, keeping a slow poll to
// reconcile; when it drops they long poll again. A `query` event is a live question from an investigation
// on the hub: the messages this gateway's tracking holds for some observables, answered over HTTP.
import type { Config } from '../config/schema.ts';
import type { CloudService } from './cloud.ts';
import { HubPoller } from './hub-poller.ts';
import type { MessageSummary } from './summary.ts';

/** the hub ends each stream after 10 minutes; a stream silent for longer than this is dead */
const STREAM_TIMEOUT_MS = 11 * 60_000;
/** the hub writes at least a heartbeat every 15 s: a stream silent for this long is a dead connection */
const IDLE_MS = 45_000;
/** the most a live answer carries (the hub's limit) */
const MAX_ANSWER = 1000;

export interface HubEventHandlers {
  rules(version: number): void;
  actions(): void;
  blocklist(): void;
  /** the messages held for these observables, newest first, at most `limit` per observable */
  query(observables: Array<{ type: string; value: string }>, limit: number): MessageSummary[];
  /** the stream came up or went down: the pollers change their cadence */
  connectedChanged(connected: boolean): void;
}

export interface HubEventsHealth {
  running: boolean;
  connected: boolean;
  events: number;
  liveQueries: number;
  lastError: string | null;
}

export class HubEvents extends HubPoller {
  private readonly deps: {
    config: Config;
    cloud: CloudService;
    handlers: HubEventHandlers;
    log: { info(line: string): void; warning(line: string): void };
  };
  private connected_ = false;
  private readonly counts = { events: 0, liveQueries: 0 };

  constructor(deps: HubEvents['deps']) {
    super('hub events', (l) => deps.log.warning(l));
    this.deps = deps;
  }

  get applies(): boolean {
    const { cloud, config } = this.deps;
    return cloud.enabled && config.cloud.push && !!cloud.credentials();
  }

  /** The stream is open now (the pollers only reconcile). */
  get connected(): boolean {
    return this.connected_;
  }

  health(): HubEventsHealth {
    return { running: this.active, connected: this.connected_, ...this.counts, lastError: this.lastError };
  }

  /** One stream, read until the hub ends it (a clean end is a round; the loop reconnects at once). */
  protected async round(signal: AbortSignal): Promise<void> {
    // A half-open connection (a NAT that forgot it) sends nothing, not even heartbeats: it is given up
    // after IDLE_MS and the loop reconnects at once, instead of pushing nothing for minutes.
    const idle = new AbortController();
    let idleTimer = setTimeout(() => idle.abort(), IDLE_MS);
    const both = AbortSignal.any([signal, idle.signal]);
    try {
      const res = await this.deps.cloud.call('GET', '/api/v1/device/events', undefined, STREAM_TIMEOUT_MS, both);
      if (!res.ok || !res.body) throw new Error(`the hub answered the event stream with HTTP ${res.status}`);
      if (!(res.headers.get('content-type') ?? '').startsWith('text/event-stream'))
        throw new Error('the hub does not push events (no text/event-stream): polling only');
      const decoder = new TextDecoder();
      let buffer = '';
      for await (const chunk of res.body) {
        clearTimeout(idleTimer);
        idleTimer = setTimeout(() => idle.abort(), IDLE_MS);
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        // events end with a blank line (the hub writes \n only)
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          this.dispatch(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
        if (buffer.length > 1_000_000) throw new Error('an event from the hub exceeds 1 MB');
      }
    } finally {
      clearTimeout(idleTimer);
      this.setConnected(false);
    }
  }

  private setConnected(on: boolean): void {
    if (this.connected_ === on) return;
    this.connected_ = on;
    this.deps.handlers.connectedChanged(on);
  }

  private dispatch(block: string): void {
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue; // a heartbeat
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
    }
    if (!data.length) return;
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(data.join('\n')) as Record<string, unknown>;
    } catch {
      this.deps.log.warning(`hub events: an unreadable ${event} event was ignored`);
      return;
    }
    this.counts.events++;
    const h = this.deps.handlers;
    switch (event) {
      case 'hello':
        // what the polls would have found: fetch what is newer, then the pollers only reconcile
        this.setConnected(true);
        h.rules(Number(body.rules) || 0);
        h.blocklist();
        if (Number(body.actions) > 0) h.actions();
        break;
      case 'rules':
        h.rules(Number(body.version) || 0);
        break;
      case 'actions':
        h.actions();
        break;
      case 'blocklist':
        h.blocklist();
        break;
      case 'query':
        void this.answer(body);
        break;
      default:
      // an event a newer hub sends: ignored
    }
  }

  private async answer(body: Record<string, unknown>): Promise<void> {
    const id = typeof body.id === 'string' ? body.id : null;
    const observables = Array.isArray(body.observables)
      ? (body.observables as Array<{ type?: unknown; value?: unknown }>)
          .filter((o) => typeof o.type === 'string' && typeof o.value === 'string')
          .map((o) => ({ type: o.type as string, value: o.value as string }))
      : [];
    if (!id) return;
    const limit = Math.min(Math.max(Number(body.limit) || 100, 1), MAX_ANSWER);
    // no sharing with the hub (cloud.xdr off): an empty answer, so the hub does not wait for this gateway
    const summaries = this.deps.config.cloud.xdr
      ? this.deps.handlers.query(observables, limit).slice(0, MAX_ANSWER)
      : [];
    this.counts.liveQueries++;
    try {
      const res = await this.deps.cloud.call('POST', `/api/v1/device/queries/${encodeURIComponent(id)}`, { summaries });
      // 404: answered too late (the investigation went on without it)
      if (!res.ok && res.status !== 404) this.deps.log.warning(`hub events: live answer refused: HTTP ${res.status}`);
    } catch (err) {
      this.deps.log.warning(`hub events: live answer not sent: ${(err as Error).message}`);
    }
  }
}
