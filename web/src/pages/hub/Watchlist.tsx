// Watched observables (every new message that carries one is a hit, and a ticket when asked) and the
// tickets the hub opened through the webhook, with how each ended.
import { useState, type FormEvent } from 'react';
import { api, ApiFailure } from '../../api.ts';
import { fmtTime, useLoad } from '../../load.ts';

export function Watchlist() {
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
                <td>{x.hits}</td>
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
                  {x.status}
                  {x.lastError && <div className="error">{x.lastError}</div>}
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
