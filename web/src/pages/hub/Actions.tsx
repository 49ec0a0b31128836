// Response actions the hub sent to gateways (mailbox remediation): who asked, what, which gateway, and
// how each ended. Actions awaiting a second user's approval (hub approvals.remediate) are approved or
// refused here by operators and admins — never by the one who asked.
import { useState } from 'react';
import { api, ApiFailure, type Session } from '../../api.ts';
import { fmtTime, useLoad } from '../../load.ts';

export function Actions({ session }: { session: Session }) {
  const r = useLoad<{ actions: any[] }>('/api/v1/actions?limit=200');
  const [status, setStatus] = useState<string | null>(null);
  const canDecide = session.role === 'admin' || session.role === 'operator';
  const decide = async (id: string, verb: 'approve' | 'refuse') => {
    try {
      const a = await api<any>('POST', `/api/v1/actions/${id}/${verb}`);
      setStatus(`${a.action} of ${a.observable.value}: ${a.status}`);
      r.reload();
    } catch (e) {
      setStatus(e instanceof ApiFailure ? `${e.message} (${e.code})` : String(e));
    }
  };
  if (r.error) return <p className="error">{r.error}</p>;
  if (!r.data) return <p>Loading…</p>;
  if (!r.data.actions.length) return <p>No response action has been sent to a gateway yet.</p>;
  return (
    <>
      {status && (
        <p role="status" className="result">
          {status}
        </p>
      )}
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
            <tr key={a.id} data-status={a.status}>
              <td>{fmtTime(a.createdAt)}</td>
              <td>{a.requestedBy}</td>
              <td>{a.action}</td>
              <td>
                {a.observable.type}: {a.observable.value}
              </td>
              <td>{a.deviceId}</td>
              <td>
                {a.status.replace('_', ' ')}
                {a.status === 'awaiting_approval' && canDecide && a.requestedBy !== session.user && (
                  <div>
                    <button type="button" onClick={() => decide(a.id, 'approve')}>
                      Approve
                    </button>{' '}
                    <button type="button" onClick={() => decide(a.id, 'refuse')}>
                      Refuse
                    </button>
                  </div>
                )}
              </td>
              <td className="pre">{a.detail ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
