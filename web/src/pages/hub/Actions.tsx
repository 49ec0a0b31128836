// Response actions the hub sent to gateways (mailbox remediation): who asked, what, which gateway, and
// how each ended. Actions awaiting a second user's approval (hub approvals.remediate) are approved or
// refused here by operators and admins — never by the one who asked. Above them, retro-remediation
// proposals: delivered mail a newly published rule matches, approved or dismissed as a whole.
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
  return (
    <>
      {status && (
        <p role="status" className="result">
          {status}
        </p>
      )}
      <RetroProposals canDecide={canDecide} onDecided={(s) => (setStatus(s), r.reload())} />
      <h2>Actions</h2>
      {!r.data.actions.length && <p>No response action has been sent to a gateway yet.</p>}
      <table aria-label="response actions" hidden={!r.data.actions.length}>
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

/** Delivered mail newly published rules match: one decision per proposal (every message of it). */
function RetroProposals({ canDecide, onDecided }: { canDecide: boolean; onDecided: (status: string) => void }) {
  const r = useLoad<{ proposals: any[] }>('/api/v1/retro?limit=50');
  const decide = async (id: string, verb: 'approve' | 'dismiss') => {
    try {
      const out = await api<any>('POST', `/api/v1/retro/${id}/${verb}`);
      const p = verb === 'approve' ? out.proposal : out;
      onDecided(`retro-remediation for ${p.ruleId}: ${p.status} (${p.messages.length} messages)`);
      r.reload();
    } catch (e) {
      onDecided(e instanceof ApiFailure ? `${e.message} (${e.code})` : String(e));
    }
  };
  if (r.error) return <p className="error">{r.error}</p>;
  const open = (r.data?.proposals ?? []).filter((p) => p.status !== 'none');
  if (!open.length) return null;
  return (
    <section aria-label="retro-remediation proposals">
      <h2>Retro-remediation</h2>
      <p>
        Mail delivered before a rule was published that the rule matches. Nothing leaves the mailboxes until approved.
      </p>
      <table>
        <thead>
          <tr>
            <th>Proposed</th>
            <th>Rule</th>
            <th>Action</th>
            <th>Messages</th>
            <th>State</th>
          </tr>
        </thead>
        <tbody>
          {open.map((p) => (
            <tr key={p.id} data-status={p.status} data-rule={p.ruleId}>
              <td>{fmtTime(p.createdAt)}</td>
              <td>
                {p.ruleId} (level {p.ruleLevel})
              </td>
              <td>{p.action}</td>
              <td>
                <details>
                  <summary>
                    {p.messages.length} on {new Set(p.messages.map((m: any) => m.deviceId)).size} gateway(s)
                  </summary>
                  <ul>
                    {p.messages.map((m: any) => (
                      <li key={m.actionId}>
                        {fmtTime(m.receivedAt)} {m.sender} → {m.recipients.join(', ')}: {m.subject ?? '(no subject)'}
                      </li>
                    ))}
                  </ul>
                </details>
                {p.note && <div className="muted">{p.note}</div>}
              </td>
              <td>
                {p.status.replace('_', ' ')}
                {p.decidedBy ? ` by ${p.decidedBy}` : ''}
                {p.status === 'proposed' && canDecide && (
                  <div>
                    <button type="button" onClick={() => decide(p.id, 'approve')}>
                      Approve
                    </button>{' '}
                    <button type="button" onClick={() => decide(p.id, 'dismiss')}>
                      Dismiss
                    </button>
                  </div>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
