// Reports (DESIGN §8): mail flow, Outbreak Filters (threats by level, category and rule, quarantine usage)
// and web interaction tracking (clicks per URL, users who clicked malicious links), over a chosen period,
// each with charts and a CSV export of its tables.
import { useMemo, useState } from 'react';
import { useLoad } from '../load.ts';
import { BarChart, TimeChart } from '../Chart.tsx';
import { toCsv } from '../csv.ts';

const DAY = 86_400_000;

function Csv({ name, rows }: { name: string; rows: Array<Record<string, unknown>> }) {
  const href = useMemo(() => `data:text/csv;charset=utf-8,${encodeURIComponent(toCsv(rows))}`, [rows]);
  return (
    <a className="csv" href={href} download={`${name}.csv`} aria-disabled={!rows.length}>
      CSV
    </a>
  );
}

export function Table({ name, rows }: { name: string; rows: Array<Record<string, unknown>> }) {
  if (!rows.length) return <p className="muted">Nothing in this period.</p>;
  const cols = Object.keys(rows[0]);
  return (
    <>
      <Csv name={name} rows={rows} />
      <table aria-label={name}>
        <thead>
          <tr>
            {cols.map((c) => (
              <th key={c}>{c}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((r, i) => (
            <tr key={i}>
              {cols.map((c) => (
                <td key={c} className="subject">
                  {r[c] === null || r[c] === undefined ? '–' : String(r[c])}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

export function Reports() {
  const [days, setDays] = useState(7);
  const range = useMemo(() => {
    const until = Math.ceil(Date.now() / 60_000) * 60_000;
    return `since=${new Date(until - days * DAY).toISOString()}&until=${new Date(until).toISOString()}`;
  }, [days]);
  const flow = useLoad<any>(`/api/v1/reports/mail-flow?${range}`);
  const outbreak = useLoad<any>(`/api/v1/reports/outbreak?${range}&top=50`);
  const web = useLoad<any>(`/api/v1/reports/web-interaction?${range}&top=50`);
  const x = useMemo(() => (flow.data?.buckets ?? []).map((b: any) => Date.parse(b.at) / 1000), [flow.data]);
  const series = useMemo(
    () =>
      ['accepted', 'delivered', 'quarantined', 'bounced', 'dropped'].map((k) => ({
        label: k,
        values: (flow.data?.buckets ?? []).map((b: any) => b[k]),
      })),
    [flow.data],
  );
  const levels = useMemo(() => {
    const by = new Map<number, number>((outbreak.data?.byLevel ?? []).map((l: any) => [l.level, l.messages]));
    return [0, 1, 2, 3, 4, 5].map((l) => by.get(l) ?? 0);
  }, [outbreak.data]);
  const errors = [flow.error, outbreak.error, web.error].filter(Boolean);
  return (
    <div className="reports">
      <label>
        Period{' '}
        <select value={days} onChange={(e) => setDays(Number(e.target.value))} aria-label="period">
          <option value={1}>last day</option>
          <option value={7}>last 7 days</option>
          <option value={30}>last 30 days</option>
          <option value={90}>last 90 days</option>
        </select>
      </label>
      {errors.map((e) => (
        <p key={e} className="error">
          {e}
        </p>
      ))}
      <section>
        <h2>Mail flow</h2>
        <TimeChart title={`Mail flow, last ${days} day(s)`} x={x} series={series} />
        <Csv name="mail-flow" rows={flow.data?.buckets ?? []} />
      </section>
      <section>
        <h2>Outbreak Filters</h2>
        <BarChart title="Messages by threat level" labels={['0', '1', '2', '3', '4', '5']} values={levels} />
        <h3>By category</h3>
        <Table name="outbreak-by-category" rows={outbreak.data?.byCategory ?? []} />
        <h3>Top rules</h3>
        <Table name="outbreak-top-rules" rows={outbreak.data?.topRules ?? []} />
      </section>
      <section>
        <h2>Web interaction tracking</h2>
        <p>
          {web.data?.totals
            ? `${web.data.totals.clicks} clicks: ${web.data.totals.allowed ?? 0} allowed, ${web.data.totals.warned ?? 0} warned, ${web.data.totals.blocked ?? 0} blocked`
            : ''}
        </p>
        <h3>Clicked URLs</h3>
        <Table name="web-interaction-urls" rows={web.data?.urls ?? []} />
        <h3>Users who clicked malicious links</h3>
        <Table name="web-interaction-users" rows={web.data?.topMaliciousClickers ?? []} />
      </section>
    </div>
  );
}
