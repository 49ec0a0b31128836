// Investigate on the hub (DESIGN §11.3): paste anything — an alert, header lines, a list — and the hub
// finds the observables in it and answers, across every gateway, where each was seen, what the gateways
// judged, the messages, and who is connected to whom. Any node or value investigates further.
import { lazy, Suspense, useCallback, useEffect, useState, type FormEvent } from 'react';
import { api, ApiFailure } from '../../api.ts';
import { fmtTime } from '../../load.ts';

const Graph = lazy(() => import('./Graph.tsx').then((m) => ({ default: m.Graph })));

function fromHash(): string {
  return new URLSearchParams(location.hash.split('?')[1] ?? '').get('q') ?? '';
}

export function Investigate() {
  const [text, setText] = useState(fromHash);
  const [result, setResult] = useState<any>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const run = useCallback(async (q: string) => {
    if (!q.trim()) return;
    setBusy(true);
    setError(null);
    try {
      setResult(await api('POST', '/api/v1/investigate', { text: q }));
    } catch (e) {
      setError(e instanceof ApiFailure ? `${e.message} (${e.code})` : String(e));
    } finally {
      setBusy(false);
    }
  }, []);
  useEffect(() => {
    const q = fromHash();
    if (q) void run(q);
  }, [run]);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    history.replaceState(null, '', `#/investigate?${new URLSearchParams({ q: text })}`);
    void run(text);
  };
  /** a node or value to investigate next: `type:value` */
  const pick = useCallback(
    (id: string) => {
      const q = id.replace(/^([a-z_]+):/, '$1: ');
      setText(q);
      history.replaceState(null, '', `#/investigate?${new URLSearchParams({ q })}`);
      void run(q);
    },
    [run],
  );
  return (
    <>
      <form className="investigate" onSubmit={submit} aria-label="Investigate">
        <label>
          Observables, or any text to find them in (addresses, IPs, domains, URLs, SHA-256, Message-IDs, “MID 123”,
          “Subject: …”, or `type: value` lines)
          <textarea rows={5} value={text} onChange={(e) => setText(e.target.value)} required />
        </label>
        <button type="submit" disabled={busy}>
          {busy ? 'Investigating…' : 'Investigate'}
        </button>
      </form>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      {result && (
        <>
          <InvestigationView result={result} onPick={pick} />
          <SaveCasebook text={text} />
        </>
      )}
    </>
  );
}

/** An investigation's findings, graph and messages; `onPick` investigates a node or value next. */
export function InvestigationView({ result, onPick }: { result: any; onPick: (id: string) => void }) {
  const pick = onPick;
  return (
    <>
      {result.errors.length > 0 && (
        <ul aria-label="not investigated" className="error">
          {result.errors.map((e: any, i: number) => (
            <li key={i}>
              {e.input}: {e.error}
            </li>
          ))}
        </ul>
      )}
      {result.live && result.live.asked.length > 0 && (
        <p className="muted" aria-label="live answers">
          Asked live: {result.live.answered.map((a: any) => `${a.name} (${a.messages})`).join(', ') || 'none answered'}
          {result.live.missing.length > 0 && `; no answer in time from ${result.live.missing.length} gateway(s)`}
        </p>
      )}
      <table aria-label="observables">
        <thead>
          <tr>
            <th>Observable</th>
            <th>Judgement</th>
            <th>Messages</th>
            <th>Gateways</th>
            <th>First seen</th>
            <th>Last seen</th>
            <th>As sender / recipient / content</th>
            <th>Rules</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {result.observables.map((o: any) => (
            <tr key={`${o.type}:${o.value}`} data-judgement={o.judgement}>
              <td>
                <span className="muted">{o.type}</span> {o.value}
              </td>
              <td
                className={
                  o.judgement === 'malicious' ? 'sev-critical' : o.judgement === 'suspicious' ? 'sev-warning' : ''
                }
              >
                {o.judgement}
              </td>
              <td>{o.sightings.count}</td>
              <td>{o.sightings.gateways.map((g: any) => `${g.name} (${g.count})`).join(', ') || '–'}</td>
              <td>{fmtTime(o.sightings.firstSeen)}</td>
              <td>{fmtTime(o.sightings.lastSeen)}</td>
              <td>
                {o.roles.sender} / {o.roles.recipient} / {o.roles.content}
              </td>
              <td>{o.rules.slice(0, 3).join(', ')}</td>
              <td>
                <WatchButton type={o.type} value={o.value} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {result.graph.nodes.length > 0 && (
        <>
          <h2>Relationships</h2>
          <Suspense fallback={<p>Drawing the graph…</p>}>
            <Graph data={result.graph} onPick={pick} />
          </Suspense>
          <details>
            <summary>Every node ({result.graph.nodes.length}): investigate one</summary>
            <ul className="node-list">
              {result.graph.nodes.map((n: any) => (
                <li key={n.id}>
                  <button type="button" className="link" onClick={() => pick(n.id)}>
                    {n.id}
                  </button>{' '}
                  <span className="muted">
                    {n.messages} message(s){n.maxThreatLevel ? `, level ${n.maxThreatLevel}` : ''}
                  </span>
                </li>
              ))}
            </ul>
          </details>
        </>
      )}
      <h2>
        Messages ({result.messages.length}
        {result.truncated ? ', the newest of each' : ''})
      </h2>
      <table aria-label="investigated messages">
        <thead>
          <tr>
            <th>Gateway</th>
            <th>MID</th>
            <th>Received</th>
            <th>From</th>
            <th>To</th>
            <th>Subject</th>
            <th>Status</th>
            <th>Level</th>
          </tr>
        </thead>
        <tbody>
          {result.messages.slice(0, 300).map(({ gateway, deviceId, summary: s }: any) => (
            <tr key={`${deviceId}/${s.mid}`}>
              <td>{gateway}</td>
              <td>{s.mid}</td>
              <td>{fmtTime(s.receivedAt)}</td>
              <td>
                <button type="button" className="link" onClick={() => pick(`email:${s.sender}`)}>
                  {s.sender}
                </button>
              </td>
              <td>{s.recipients.map((r: any) => r.address).join(', ')}</td>
              <td className="subject">{s.subject ?? '(no subject)'}</td>
              <td>{s.status}</td>
              <td>{s.threatLevel ?? '–'}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

/** Watch an observable: every new message that carries it is a hit (and a ticket, when tickets are on). */
function WatchButton({ type, value }: { type: string; value: string }) {
  const [state, setState] = useState<string | null>(null);
  const watch = async () => {
    try {
      const t = await api<{ enabled: boolean }>('GET', '/api/v1/tickets');
      await api('POST', '/api/v1/watches', { observable: { type, value }, ticket: t.enabled });
      setState('watched');
    } catch (e) {
      setState(e instanceof ApiFailure ? e.message : 'failed');
    }
  };
  return state ? (
    <span className="muted">{state}</span>
  ) : (
    <button type="button" className="link" onClick={watch} aria-label={`watch ${type} ${value}`}>
      watch
    </button>
  );
}

/** Saves what was investigated as a casebook (title and notes). */
function SaveCasebook({ text }: { text: string }) {
  const [title, setTitle] = useState('');
  const [notes, setNotes] = useState('');
  const [saved, setSaved] = useState<string | null>(null);
  const save = async (e: FormEvent) => {
    e.preventDefault();
    try {
      const c = await api<{ id: string; title: string }>('POST', '/api/v1/casebooks', { title, notes, text });
      setSaved(`saved as casebook “${c.title}”`);
      location.hash = `#/casebooks/${c.id}`;
    } catch (err) {
      setSaved(err instanceof ApiFailure ? `${err.message} (${err.code})` : String(err));
    }
  };
  return (
    <form className="inline" onSubmit={save} aria-label="Save as a casebook">
      <label>
        Casebook title
        <input value={title} onChange={(e) => setTitle(e.target.value)} required />
      </label>
      <label>
        Notes
        <input value={notes} onChange={(e) => setNotes(e.target.value)} />
      </label>
      <button type="submit">Save as casebook</button>
      {saved && <span role="status">{saved}</span>}
    </form>
  );
}
