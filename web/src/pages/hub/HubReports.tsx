// Reports across every gateway (DESIGN §8, §11.7): how mail ended over time, per gateway and in total,
// threats by level, the rules that matched most and the senders of the most threats, for a chosen
// period; each table with a CSV export.
import { useMemo, useState } from 'react';
import { useLoad } from '../../load.ts';
import { BarChart, TimeChart } from '../../Chart.tsx';
import { Table } from '../Reports.tsx';

const DAY = 86_400_000;
const STATUSES = ['delivered', 'quarantined', 'bounced', 'deleted', 'dropped'];

export function HubReports() {
  const [days, setDays] = useState(7);
  const range = useMemo(() => {
    const until = Math.ceil(Date.now() / 60_000) * 60_000;
    return `since=${new Date(until - days * DAY).toISOString()}&until=${new Date(until).toISOString()}`;
  }, [days]);
  const r = useLoad<any>(`/api/v1/reports?${range}&top=20`);
  const x = useMemo(() => (r.data?.buckets ?? []).map((b: any) => Date.parse(b.at) / 1000), [r.data]);
  const series = useMemo(
    () => STATUSES.map((s) => ({ label: s, values: (r.data?.buckets ?? []).map((b: any) => b.statuses[s] ?? 0) })),
    [r.data],
  );
  return (
    <>
      <div className="ranges" role="group" aria-label="Period">
        {[1, 7, 30, 90].map((d) => (
          <button key={d} type="button" aria-pressed={days === d} onClick={() => setDays(d)}>
            {d === 1 ? 'last day' : `last ${d} days`}
          </button>
        ))}
      </div>
      {r.error && <p className="error">{r.error}</p>}
      {r.data && (
        <>
          <p>
            {r.data.total.messages} messages on {r.data.gateways.length} gateway(s), {r.data.total.threats} at threat
            level 3 or more
          </p>
          <div className="charts">
            <TimeChart title="Mail flow, every gateway" x={x} series={series} />
            <BarChart
              title="Messages by threat level"
              labels={r.data.threatLevels.map((l: any) => `level ${l.level}`)}
              values={r.data.threatLevels.map((l: any) => l.messages)}
            />
          </div>
          <h2>Per gateway</h2>
          <Table
            name="hub-gateways"
            rows={r.data.gateways.map((g: any) => ({
              gateway: g.name,
              messages: g.messages,
              threats: g.threats,
              ...Object.fromEntries(STATUSES.map((s) => [s, g.statuses[s] ?? 0])),
            }))}
          />
          <h2>Top rules</h2>
          <Table name="hub-top-rules" rows={r.data.topRules} />
          <h2>Senders of the most threats</h2>
          <Table name="hub-threat-senders" rows={r.data.topThreatSenders} />
        </>
      )}
    </>
  );
}
