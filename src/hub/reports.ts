// Reports across gateways (DESIGN §8, §11.7; issue 14): the mail flow and Outbreak Filters figures of a
// period, per gateway and in total, from the summaries the gateways stream — how mail ended (delivered,
// quarantined, bounced, …) over time, threats by level, the rules that matched most, and the senders of
// the most threats. Each figure is one grouped query over the period's range of the received-time index.
import type { HubStore } from './store.ts';

export interface HubReport {
  since: string;
  until: string;
  bucketSeconds: number;
  total: { messages: number; statuses: Record<string, number>; threats: number };
  gateways: Array<{
    deviceId: string;
    name: string;
    messages: number;
    statuses: Record<string, number>;
    threats: number;
  }>;
  buckets: Array<{ at: string; statuses: Record<string, number> }>;
  threatLevels: Array<{ level: number; messages: number }>;
  topRules: Array<{ rule: string; messages: number; gateways: number }>;
  topThreatSenders: Array<{ sender: string; messages: number; gateways: number }>;
}

/** Buckets of a period: an hour up to two days, a day beyond. */
export function bucketMs(spanMs: number): number {
  return spanMs <= 2 * 86_400_000 ? 3_600_000 : 86_400_000;
}

export function hubReport(
  store: HubStore,
  o: { since: number; until: number; top: number; names: Map<string, string> },
): HubReport {
  const range = [o.since, o.until] as const;
  const bucket = bucketMs(o.until - o.since);
  const byDevice = store
    .stmt(
      `select device_id, data ->> '$.status' status, count(*) n,
              sum(coalesce(data ->> '$.threatLevel', 0) >= 3) threats
       from messages where received_at >= ? and received_at < ? group by 1, 2`,
    )
    .all(...range) as Array<{ device_id: string; status: string; n: number; threats: number }>;
  const gateways = new Map<string, HubReport['gateways'][number]>();
  const total: HubReport['total'] = { messages: 0, statuses: {}, threats: 0 };
  for (const r of byDevice) {
    const g = gateways.get(r.device_id) ?? {
      deviceId: r.device_id,
      name: o.names.get(r.device_id) ?? r.device_id,
      messages: 0,
      statuses: {},
      threats: 0,
    };
    g.messages += r.n;
    g.statuses[r.status] = (g.statuses[r.status] ?? 0) + r.n;
    g.threats += r.threats;
    gateways.set(r.device_id, g);
    total.messages += r.n;
    total.statuses[r.status] = (total.statuses[r.status] ?? 0) + r.n;
    total.threats += r.threats;
  }
  const series = store
    .stmt(
      // the bucket is written into the query as an integer: a bound number divides as a real
      `select (received_at / ${bucket}) * ${bucket} at, data ->> '$.status' status, count(*) n
       from messages where received_at >= ? and received_at < ? group by 1, 2 order by 1`,
    )
    .all(...range) as Array<{ at: number; status: string; n: number }>;
  const buckets = new Map<number, Record<string, number>>();
  for (let t = Math.floor(o.since / bucket) * bucket; t < o.until; t += bucket) buckets.set(t, {});
  for (const r of series) {
    const b = buckets.get(r.at) ?? {};
    b[r.status] = r.n;
    buckets.set(r.at, b);
  }
  const levels = store
    .stmt(
      `select coalesce(data ->> '$.threatLevel', 0) level, count(*) n
       from messages where received_at >= ? and received_at < ? group by 1 order by 1`,
    )
    .all(...range) as Array<{ level: number; n: number }>;
  const rules = store
    .stmt(
      `select r.value rule, count(*) n, count(distinct m.device_id) g
       from messages m, json_each(m.data, '$.rules') r
       where m.received_at >= ? and m.received_at < ? group by 1 order by 2 desc limit ?`,
    )
    .all(...range, o.top) as Array<{ rule: string; n: number; g: number }>;
  const senders = store
    .stmt(
      `select lower(data ->> '$.sender') sender, count(*) n, count(distinct device_id) g
       from messages where received_at >= ? and received_at < ? and coalesce(data ->> '$.threatLevel', 0) >= 3
       group by 1 order by 2 desc limit ?`,
    )
    .all(...range, o.top) as Array<{ sender: string; n: number; g: number }>;
  return {
    since: new Date(o.since).toISOString(),
    until: new Date(o.until).toISOString(),
    bucketSeconds: bucket / 1000,
    total,
    gateways: [...gateways.values()].sort((a, b) => b.messages - a.messages || a.name.localeCompare(b.name)),
    buckets: [...buckets.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([at, statuses]) => ({ at: new Date(at).toISOString(), statuses })),
    threatLevels: levels.map((l) => ({ level: Number(l.level), messages: l.n })),
    topRules: rules.map((r) => ({ rule: r.rule, messages: r.n, gateways: r.g })),
    topThreatSenders: senders.map((s) => ({ sender: s.sender, messages: s.n, gateways: s.g })),
  };
}
