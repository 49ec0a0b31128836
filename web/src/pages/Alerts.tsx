import { useLoad, fmtTime } from '../load.ts';

export function Alerts() {
  const r = useLoad<any>('/api/v1/alerts?limit=200');
  if (r.error) return <p className="error">{r.error}</p>;
  return (
    <table>
      <thead>
        <tr>
          <th>When</th>
          <th>Severity</th>
          <th>Class</th>
          <th>Alert</th>
        </tr>
      </thead>
      <tbody>
        {(r.data?.alerts ?? []).map((a: any) => (
          <tr key={a.id} className={`sev-${a.severity}`}>
            <td>{fmtTime(a.at)}</td>
            <td>{a.severity}</td>
            <td>{a.class}</td>
            <td>
              <strong>{a.title}</strong>
              <div className="muted pre">{a.text}</div>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
