// Mail flow over the last hour / day / week, threats by level, quarantine usage, queue, rules, open alerts.
import { useMemo, useState } from 'react';
import { useLoad, fmtTime, fmtBytes } from '../load.ts';
import { BarChart, TimeChart } from '../Chart.tsx';

const RANGES = { hour: 3600_000, day: 86_400_000, week: 7 * 86_400_000 } as const;
const FLOW = ['accepted', 'delivered', 'quarantined', 'bounced', 'dropped'] as const;

interface MailFlow {
  bucketSeconds: number;
  buckets: Array<{ at: string } & Record<(typeof FLOW)[number], number>>;
}

export function Dashboard() {
  const [range, setRange] = useState<keyof typeof RANGES>('day');
  // rounded to the minute, so the charts do not refetch on every render
  const since = useMemo(
    () => new Date(Math.floor((Date.now() - RANGES[range]) / 60_000) * 60_000).toISOString(),
    [range],
  );
  const flow = useLoad<MailFlow>(`/api/v1/reports/mail-flow?since=${encodeURIComponent(since)}`);
  const report = useLoad<any>(`/api/v1/reports/outbreak?since=${encodeURIComponent(since)}`);
  const status = useLoad<any>('/api/v1/status');
  const outbreak = useLoad<any>('/api/v1/outbreak/status');
  const alerts = useLoad<any>('/api/v1/alerts?limit=5');
  const quarantines = useLoad<any>('/api/v1/quarantines');

  const x = useMemo(() => (flow.data?.buckets ?? []).map((b) => Date.parse(b.at) / 1000), [flow.data]);
  const series = useMemo(
    () => FLOW.map((k) => ({ label: k, values: (flow.data?.buckets ?? []).map((b) => b[k]) })),
    [flow.data],
  );
  const levels = useMemo(() => {
    const by = new Map<number, number>((report.data?.byLevel ?? []).map((l: any) => [l.level, l.messages]));
    return [0, 1, 2, 3, 4, 5].map((l) => by.get(l) ?? 0);
  }, [report.data]);
  const usage = quarantines.data?.usage;

  return (
    <div className="dashboard">
      <div role="group" aria-label="Time range" className="ranges">
        {(Object.keys(RANGES) as Array<keyof typeof RANGES>).map((r) => (
          <button key={r} type="button" aria-pressed={range === r} onClick={() => setRange(r)}>
            last {r}
          </button>
        ))}
      </div>
      {flow.error && <p className="error">{flow.error}</p>}
      <section className="cards">
        <div className="card">
          <h2>Queue</h2>
          <p className="big">{status.data ? status.data.queue.active + status.data.queue.deferred : '…'}</p>
          <p>{status.data ? `${status.data.queue.deferred} deferred` : ''}</p>
        </div>
        <div className="card">
          <h2>Quarantines</h2>
          <p className="big">{usage ? `${usage.percent.toFixed(1)} %` : '…'}</p>
          {usage && (
            <>
              <meter min={0} max={100} low={75} high={95} value={usage.percent} aria-label="quarantine usage" />
              <p>
                {usage.messages} messages, {fmtBytes(usage.bytes)} of {fmtBytes(usage.maxSize)}
              </p>
            </>
          )}
        </div>
        <div className="card">
          <h2>Outbreak rules</h2>
          <p className="big">{outbreak.data ? (outbreak.data.outbreakRules.version ?? 'none') : '…'}</p>
          <p>
            {outbreak.data
              ? `${outbreak.data.outbreakRules.rules} rules, updated ${fmtTime(outbreak.data.lastUpdate)}`
              : ''}
          </p>
        </div>
        <div className="card">
          <h2>Open alerts</h2>
          <ul className="alerts">
            {(alerts.data?.alerts ?? []).map((a: any) => (
              <li key={a.id} className={`sev-${a.severity}`}>
                {a.title}
              </li>
            ))}
          </ul>
        </div>
      </section>
      {/* data-ready: both charts have their data (the benchmark's first-paint mark) */}
      <section className="charts" data-ready={flow.data && report.data ? 'yes' : undefined}>
        <TimeChart title={`Mail flow, last ${range}`} x={x} series={series} />
        <BarChart title="Threats by level" labels={['0', '1', '2', '3', '4', '5']} values={levels} />
      </section>
    </div>
  );
}
