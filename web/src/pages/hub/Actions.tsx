// Response actions the hub sent to gateways (mailbox remediation): who asked, what, which gateway,
// and how each ended.
import { fmtTime, useLoad } from '../../load.ts';

export function Actions() {
  const r = useLoad<{ actions: any[] }>('/api/v1/actions?limit=200');
  if (r.error) return <p className="error">{r.error}</p>;
  if (!r.data) return <p>Loading…</p>;
  if (!r.data.actions.length) return <p>No response action has been sent to a gateway yet.</p>;
  return (
    <table aria-label="response actions">
      <thead>
        <tr>
          <th>Asked</th>
          <th>By</th>
          <th>Action</th>
          <th>Observable</th>
          <th>Gateway</th>
          <th>State</th>
          <th>Result</th>
        </tr>
      </thead>
      <tbody>
        {r.data.actions.map((a) => (
          <tr key={a.id}>
            <td>{fmtTime(a.createdAt)}</td>
            <td>{a.requestedBy}</td>
            <td>{a.action}</td>
            <td>
              {a.observable.type}: {a.observable.value}
            </td>
            <td>{a.deviceId}</td>
            <td>{a.status}</td>
            <td className="pre">{a.detail ?? ''}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
