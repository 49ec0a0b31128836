// The hub's block list: senders and domains blocked on every gateway. Operators and admins request a
// block (pending a second user's approval when the hub requires it), approve or refuse others'
// requests, and unblock; analysts read it.
import { useState, type FormEvent } from 'react';
import { api, ApiFailure, type Session } from '../../api.ts';
import { fmtTime, useLoad } from '../../load.ts';

export function BlockList({ session }: { session: Session }) {
  const r = useLoad<{ entries: any[] }>('/api/v1/blocklist');
  const [form, setForm] = useState({ kind: 'sender', value: '', direction: 'incoming', reason: '', expires: '' });
  const [status, setStatus] = useState<string | null>(null);
  const canAct = session.role === 'admin' || session.role === 'operator';
  const run = async (what: string, fn: () => Promise<any>) => {
    try {
      const e = await fn();
      setStatus(`${what}: ${e.value} is ${e.status}`);
      r.reload();
    } catch (err) {
      setStatus(err instanceof ApiFailure ? `${what}: ${err.message} (${err.code})` : String(err));
    }
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void run('block', () =>
      api('POST', '/api/v1/blocklist', { ...form, expires: form.expires || undefined }).then((x) => {
        setForm({ ...form, value: '', reason: '' });
        return x;
      }),
    );
  };
  return (
    <>
      {canAct && (
        <form className="inline" onSubmit={submit} aria-label="Block on every gateway">
          <label>
            Block
            <select value={form.kind} onChange={(e) => setForm({ ...form, kind: e.target.value })}>
              <option value="sender">sender</option>
              <option value="domain">domain</option>
            </select>
          </label>
          <label>
            Address or domain
            <input value={form.value} onChange={(e) => setForm({ ...form, value: e.target.value })} required />
          </label>
          <label>
            Mail
            <select value={form.direction} onChange={(e) => setForm({ ...form, direction: e.target.value })}>
              <option value="incoming">incoming</option>
              <option value="outgoing">outgoing</option>
              <option value="both">both</option>
            </select>
          </label>
          <label>
            Reason
            <input value={form.reason} onChange={(e) => setForm({ ...form, reason: e.target.value })} required />
          </label>
          <label>
            Expires after
            <input
              value={form.expires}
              placeholder="never (or 7d, 12h)"
              onChange={(e) => setForm({ ...form, expires: e.target.value })}
            />
          </label>
          <button type="submit">Block</button>
        </form>
      )}
      {status && (
        <p role="status" className="result">
          {status}
        </p>
      )}
      {r.error && <p className="error">{r.error}</p>}
      {r.data && (
        <table aria-label="block list">
          <thead>
            <tr>
              <th>Blocked</th>
              <th>Mail</th>
              <th>Reason</th>
              <th>Requested</th>
              <th>Expires</th>
              <th>State</th>
              {canAct && <th />}
            </tr>
          </thead>
          <tbody>
            {r.data.entries.map((e) => (
              <tr key={e.id} data-status={e.status}>
                <td>
                  <span className="muted">{e.kind}</span> {e.value}
                </td>
                <td>{e.direction}</td>
                <td>{e.reason}</td>
                <td>
                  {fmtTime(e.createdAt)} <span className="muted">by {e.requestedBy}</span>
                </td>
                <td>{e.expiresAt ? fmtTime(e.expiresAt) : 'never'}</td>
                <td>
                  {e.status}
                  {e.decidedBy && <div className="muted">by {e.decidedBy}</div>}
                </td>
                {canAct && (
                  <td>
                    {e.status === 'pending' && e.requestedBy !== session.user && (
                      <>
                        <button
                          type="button"
                          onClick={() => run('approve', () => api('POST', `/api/v1/blocklist/${e.id}/approve`))}
                        >
                          Approve
                        </button>{' '}
                        <button
                          type="button"
                          onClick={() => run('refuse', () => api('POST', `/api/v1/blocklist/${e.id}/refuse`))}
                        >
                          Refuse
                        </button>
                      </>
                    )}
                    {(e.status === 'active' || e.status === 'pending') && (
                      <button
                        type="button"
                        onClick={() => run('unblock', () => api('DELETE', `/api/v1/blocklist/${e.id}`))}
                      >
                        {e.status === 'pending' ? 'Withdraw' : 'Unblock'}
                      </button>
                    )}
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}
