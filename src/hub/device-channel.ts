// The push side of the device channel (issue 14; DESIGN §11): each registered gateway keeps one
// server-sent-event stream open to the hub (`GET /api/v1/device/events`), and the hub tells it at once
// when something is waiting for it — a rule publication, a response action, a block list change — or asks
// it a live question (the messages it holds for some observables, during an investigation). Events only
// say "fetch now": the gateway fetches over the same routes its polls use, so a gateway without the stream
// (a proxy that buffers, an older version) still gets everything by polling, only later.
import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { MessageSummary } from '../xdr/summary.ts';

/** every stream ends after this long: the gateway reconnects with a fresh token (and the hub sees it is alive) */
export const STREAM_LIFETIME_MS = 10 * 60_000;
/** a comment line this often keeps proxies and NAT from closing an idle stream */
const HEARTBEAT_MS = 15_000;
/**
 * Streams one device may hold at once. A gateway holds one; two lets its reconnect overlap a stream
 * the hub has not seen die yet (a half-open connection). Beyond that a new stream replaces the oldest,
 * so that a device (or a stolen device secret) cannot hold open connections, timers and memory without end.
 */
export const MAX_STREAMS_PER_DEVICE = 2;

export type DeviceEventName = 'rules' | 'actions' | 'blocklist' | 'query';

interface Stream {
  res: ServerResponse;
  heartbeat: NodeJS.Timeout;
  end: NodeJS.Timeout;
}

export interface LiveAnswer {
  deviceId: string;
  summaries: MessageSummary[];
}

interface PendingQuery {
  devices: Set<string>;
  answers: LiveAnswer[];
  done: () => void;
}

export class DeviceChannel {
  private readonly streams = new Map<string, Set<Stream>>();
  private readonly queries = new Map<string, PendingQuery>();

  /** Gateways with a stream open now. */
  connected(): string[] {
    return [...this.streams.keys()];
  }

  isConnected(deviceId: string): boolean {
    return this.streams.has(deviceId);
  }

  /** Takes over a response as the device's event stream; `hello` tells it what to fetch first. */
  open(deviceId: string, res: ServerResponse, hello: Record<string, unknown>): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      // nginx and similar proxies buffer responses unless told not to
      'x-accel-buffering': 'no',
      connection: 'keep-alive',
    });
    res.flushHeaders();
    const stream: Stream = {
      res,
      heartbeat: setInterval(() => res.write(': ping\n\n'), HEARTBEAT_MS),
      end: setTimeout(() => res.end(), STREAM_LIFETIME_MS),
    };
    stream.heartbeat.unref();
    stream.end.unref();
    let set = this.streams.get(deviceId);
    if (!set) this.streams.set(deviceId, (set = new Set()));
    set.add(stream);
    res.on('close', () => this.drop(deviceId, set, stream));
    // a Set keeps insertion order: the first is the oldest (never the new one, the set keeps it)
    for (const old of set) {
      if (set.size <= MAX_STREAMS_PER_DEVICE) break;
      this.drop(deviceId, set, old);
      if (!old.res.writableEnded) old.res.end(': replaced by a newer stream of this device\n\n');
    }
    write(res, 'hello', hello);
  }

  /** Forgets a stream that ended or was replaced (once; the close event of a replaced one comes later). */
  private drop(deviceId: string, set: Set<Stream>, stream: Stream): void {
    if (!set.delete(stream)) return;
    clearInterval(stream.heartbeat);
    clearTimeout(stream.end);
    if (set.size) return;
    if (this.streams.get(deviceId) === set) this.streams.delete(deviceId);
    // a gateway that hung up (its last stream) answers no live query any more
    for (const q of this.queries.values()) if (q.devices.delete(deviceId) && !q.devices.size) q.done();
  }

  /** Tells one gateway; false when it has no stream open (it polls). */
  send(deviceId: string, event: DeviceEventName, data: unknown): boolean {
    const set = this.streams.get(deviceId);
    if (!set) return false;
    for (const s of set) write(s.res, event, data);
    return true;
  }

  broadcast(event: DeviceEventName, data: unknown): number {
    for (const id of this.streams.keys()) this.send(id, event, data);
    return this.streams.size;
  }

  /**
   * Asks every connected gateway for the messages it holds for these observables and waits up to
   * `timeoutMs` for their answers (whatever arrived by then; the others are named as missing).
   */
  async query(
    observables: Array<{ type: string; value: string }>,
    limit: number,
    timeoutMs: number,
  ): Promise<{ asked: string[]; answers: LiveAnswer[] }> {
    const asked = this.connected();
    if (!asked.length || !observables.length) return { asked, answers: [] };
    const id = randomUUID();
    let done!: () => void;
    const finished = new Promise<void>((resolve) => (done = resolve));
    const q: PendingQuery = { devices: new Set(asked), answers: [], done };
    this.queries.set(id, q);
    for (const d of asked) this.send(d, 'query', { id, observables, limit });
    const timer = setTimeout(done, timeoutMs);
    timer.unref();
    try {
      await finished;
    } finally {
      clearTimeout(timer);
      this.queries.delete(id);
    }
    return { asked, answers: q.answers };
  }

  /** A gateway's answer to a live query; false when the query is over or was not asked of it. */
  answer(deviceId: string, id: string, summaries: MessageSummary[]): boolean {
    const q = this.queries.get(id);
    if (!q || !q.devices.has(deviceId)) return false;
    q.devices.delete(deviceId);
    q.answers.push({ deviceId, summaries });
    if (!q.devices.size) q.done();
    return true;
  }

  /** Ends a device's streams (it was removed): it is told nothing more, and answers no live query. */
  disconnect(deviceId: string): void {
    const set = this.streams.get(deviceId);
    if (!set) return;
    for (const s of [...set]) {
      this.drop(deviceId, set, s);
      if (!s.res.writableEnded) s.res.end(': device removed\n\n');
    }
  }

  /** Ends every stream (the hub is stopping) and every live query. */
  close(): void {
    for (const set of this.streams.values()) for (const s of set) s.res.end();
    for (const q of this.queries.values()) q.done();
  }
}

function write(res: ServerResponse, event: string, data: unknown): void {
  if (!res.writableEnded) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}
