// Watched observables (every new message that carries one is a hit, and a ticket when asked) and the
// tickets the hub opened through the webhook, with how each ended. With approvals.watch / approvals.ticket
// they wait for a second operator or admin, who approves or refuses them here (never their requester).
import { useState, type FormEvent } from 'react';
import { api, ApiFailure, type Session } from '../../api.ts';
import { fmtTime, useLoad } from '../../load.ts';

/** Approve / refuse buttons for a request awaiting a second user (not shown to its requester). */
function Decide({
  session,
  requester,
  route,
  run,
}: {
  session: Session;
  requester: string;
  route: string;
  run: (what: string, fn: () => Promise<unknown>) => Promise<void>;
}) {
  const mine = requester === session.user || requester === `watch:${session.user}`;
  if (mine || (session.role !== 'admin' && session.role !== 'operator')) return null;
  return (
    <div>
      <button type="button" onClick={() => run('approved', () => api('POST', `${route}/approve`))}>
        Approve
      </button>{' '}
      <button type="button" onClick={() => run('refused', () => api('POST', `${route}/refuse`))}>
        Refuse
      </button>
    </div>
  );
}

export function Watchlist({ session }: { session: Session }) {
  const w = useLoad<{ watches: any[] }>('/api/v1/watches');
  const t = useLoad<{ enabled: boolean; tickets: any[] }>('/api/v1/tickets');
  const [title, setTitle] = useState('');
  const [text, setText] = useState('');
  const [status, setStatus] = useState<string | null>(null);
  const run = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
      setStatus(what);
      w.reload();
      t.reload();
    } catch (e) {
      setStatus(e instanceof ApiFailure ? `${e.message} (${e.code})` : String(e));
    }
  };
  const open = (e: FormEvent) => {
    e.preventDefault();
    void run('ticket queued', () => api('POST', '/api/v1/tickets', { title, text }));
  };
  return (
    <>
      {status && (
        <p role="status" className="result">
          {status}
        </p>
      )}
      <h2>Watched observables</h2>
      {w.data && w.data.watches.length === 0 && <p>Nothing watched: use “watch” on an investigation.</p>}
      {w.data && w.data.watches.length > 0 && (
        <table aria-label="watches">
          <thead>
            <tr>
              <th>Observable</th>
              <th>Hits</th>
              <th>Last hit</th>
              <th>Ticket</th>
              <th>Since</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {w.data.watches.map((x) => (
              <tr key={x.id}>
                <td>
                  <span className="muted">{x.type}</span> {x.value}
                  {x.note && <div className="muted">{x.note}</div>}
                </td>
                <td>
                  {x.status === 'active' ? x.hits : x.status.replace('_', ' ')}
                  {x.status === 'awaiting_approval' && (
                    <Decide session={session} requester={x.createdBy} route={`/api/v1/watches/${x.id}`} run={run} />
                  )}
                </td>
                <td>{fmtTime(x.lastHitAt)}</td>
                <td>{x.ticket ? 'yes' : 'no'}</td>
                <td>
                  {fmtTime(x.createdAt)} <span className="muted">by {x.createdBy}</span>
                </td>
                <td>
                  <button
                    type="button"
                    onClick={() => run('no longer watched', () => api('DELETE', `/api/v1/watches/${x.id}`))}
                  >
                    Stop watching
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h2>Tickets</h2>
      {t.data && !t.data.enabled && (
        <p className="muted">No ticket webhook is configured (tickets.url in the hub config).</p>
      )}
      {t.data?.enabled && (
        <form className="inline" onSubmit={open} aria-label="Open a ticket">
          <label>
            Title
            <input value={title} onChange={(e) => setTitle(e.target.value)} required />
          </label>
          <label>
            Text
            <input value={text} onChange={(e) => setText(e.target.value)} />
          </label>
          <button type="submit">Open a ticket</button>
        </form>
      )}
      {t.data && t.data.tickets.length > 0 && (
        <table aria-label="tickets">
          <thead>
            <tr>
              <th>Ticket</th>
              <th>State</th>
              <th>Attempts</th>
              <th>Reference</th>
              <th>Opened</th>
            </tr>
          </thead>
          <tbody>
            {t.data.tickets.map((x) => (
              <tr key={x.id}>
                <td>{x.title}</td>
                <td>
                  {x.status.replace('_', ' ')}
                  {x.lastError && <div className="error">{x.lastError}</div>}
                  {x.status === 'awaiting_approval' && (
                    <Decide session={session} requester={x.createdBy} route={`/api/v1/tickets/${x.id}`} run={run} />
                  )}
                </td>
                <td>{x.attempts}</td>
                <td>{x.reference ?? '–'}</td>
                <td>
                  {fmtTime(x.createdAt)} <span className="muted">by {x.createdBy}</span>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}
