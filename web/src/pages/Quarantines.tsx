// Quarantines: usage of each, the messages of one with filters, multi-select release / delete (and for
// operators delay / move), the by-rule view, and one held message's details (text only: nothing from a
// held message is rendered as markup).
import { useState } from 'react';
import { api, ApiFailure, query, type Session } from '../api.ts';
import { useLoad, fmtTime, fmtBytes } from '../load.ts';
import { canActOnQuarantine } from '../roles.ts';
import { MessageContent } from '../MessageContent.tsx';

export function Quarantines({ session, name }: { session: Session; name: string | null }) {
  const list = useLoad<any>('/api/v1/quarantines');
  if (name) return <Held session={session} name={name} />;
  if (list.error) return <p className="error">{list.error}</p>;
  if (!list.data) return <p>Loading…</p>;
  const u = list.data.usage;
  return (
    <>
      <p>
        All quarantines: {u.messages} messages, {fmtBytes(u.bytes)} of {fmtBytes(u.maxSize)} ({u.percent.toFixed(1)} %)
        <meter min={0} max={100} low={75} high={95} value={u.percent} aria-label="usage of all quarantines" />
      </p>
      <table>
        <thead>
          <tr>
            <th>Quarantine</th>
            <th>Kind</th>
            <th>Messages</th>
            <th>Size</th>
            <th>Default action</th>
            <th>Retention</th>
          </tr>
        </thead>
        <tbody>
          {list.data.quarantines.map((q: any) => (
            <tr key={q.name}>
              <td>
                <a href={`#/quarantines/${encodeURIComponent(q.name)}`}>{q.name}</a>
                <div className="muted">{q.description}</div>
              </td>
              <td>{q.kind}</td>
              <td>{q.messages}</td>
              <td>{fmtBytes(q.bytes)}</td>
              <td>{q.defaultAction}</td>
              <td>{q.retention}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

function Held({ session, name }: { session: Session; name: string }) {
  const [filter, setFilter] = useState({ sender: '', recipient: '', rule: '', level: '' });
  const [applied, setApplied] = useState(filter);
  const [selected, setSelected] = useState<Set<number>>(new Set());
  const [result, setResult] = useState<string | null>(null);
  const [open, setOpen] = useState<number | null>(null);
  const base = `/api/v1/quarantines/${encodeURIComponent(name)}`;
  const msgs = useLoad<any>(`${base}/messages${query({ ...applied, limit: 200 })}`);
  const rules = useLoad<any>(`${base}/rules`);
  const act = async (action: 'release' | 'delete') => {
    if (action === 'delete' && !confirm(`Delete ${selected.size} message(s) for good?`)) return;
    try {
      const r = await api<any>('POST', `${base}/${action}`, { mids: [...selected] });
      setResult(`${action}: ${r.count} message(s)${r.notFound?.length ? `, not found: ${r.notFound.join(', ')}` : ''}`);
      setSelected(new Set());
      msgs.reload();
    } catch (e) {
      setResult(e instanceof ApiFailure ? `${e.message} (${e.code})` : String(e));
    }
  };
  const rows: any[] = msgs.data?.messages ?? [];
  const toggle = (mid: number) => {
    const s = new Set(selected);
    if (s.has(mid)) s.delete(mid);
    else s.add(mid);
    setSelected(s);
  };
  return (
    <>
      <p>
        <a href="#/quarantines">← all quarantines</a>
      </p>
      <h2>{name}</h2>
      <form
        className="search"
        aria-label="Filter held messages"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied({ ...filter });
        }}
      >
        {(['sender', 'recipient', 'rule', 'level'] as const).map((k) => (
          <label key={k}>
            {k}
            <input name={k} value={filter[k]} onChange={(e) => setFilter({ ...filter, [k]: e.target.value })} />
          </label>
        ))}
        <button type="submit">Filter</button>
      </form>
      {rules.data?.rules?.length > 0 && (
        <details>
          <summary>By rule</summary>
          <ul>
            {rules.data.rules.map((r: any) => (
              <li key={r.ruleId}>
                <button type="button" className="link" onClick={() => setApplied({ ...filter, rule: r.ruleId })}>
                  {r.ruleId}
                </button>{' '}
                — {r.description} ({r.messages})
              </li>
            ))}
          </ul>
        </details>
      )}
      {canActOnQuarantine(session.role) && (
        <div className="actions" role="toolbar" aria-label="Actions on the selected messages">
          <button type="button" disabled={!selected.size} onClick={() => act('release')}>
            Release {selected.size || ''}
          </button>
          <button type="button" disabled={!selected.size} onClick={() => act('delete')}>
            Delete {selected.size || ''}
          </button>
        </div>
      )}
      {result && <p role="status">{result}</p>}
      {msgs.error && <p className="error">{msgs.error}</p>}
      <table>
        <thead>
          <tr>
            <th>
              <input
                type="checkbox"
                aria-label="select all"
                checked={rows.length > 0 && selected.size === rows.length}
                onChange={(e) => setSelected(e.target.checked ? new Set(rows.map((m) => m.mid)) : new Set())}
              />
            </th>
            <th>MID</th>
            <th>Entered</th>
            <th>Exit</th>
            <th>Sender</th>
            <th>Subject</th>
            <th>Level</th>
            <th>Why</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((m) => (
            <tr key={m.mid}>
              <td>
                <input
                  type="checkbox"
                  aria-label={`select ${m.mid}`}
                  checked={selected.has(m.mid)}
                  onChange={() => toggle(m.mid)}
                />
              </td>
              <td>
                <button type="button" className="link" onClick={() => setOpen(open === m.mid ? null : m.mid)}>
                  {m.mid}
                </button>
              </td>
              <td>{fmtTime(m.enteredAt)}</td>
              <td>{fmtTime(m.scheduledExit)}</td>
              <td>{m.sender}</td>
              <td className="subject">{m.subject ?? ''}</td>
              <td>{m.level}</td>
              <td>{m.ruleIds.join(', ') || m.reason}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {open !== null && <HeldMessage base={base} mid={open} />}
    </>
  );
}

function HeldMessage({ base, mid }: { base: string; mid: number }) {
  const r = useLoad<any>(`${base}/messages/${mid}`);
  if (r.error) return <p className="error">{r.error}</p>;
  if (!r.data) return null;
  const m = r.data;
  const t = m.tracking;
  return (
    <section className="held" aria-label={`held message ${mid}`}>
      <h3>MID {mid}</h3>
      <dl>
        <dt>Subject</dt>
        <dd>{m.subject ?? '(none)'}</dd>
        <dt>Sender</dt>
        <dd>{m.sender}</dd>
        <dt>Recipients</dt>
        <dd>{m.recipients.join(', ')}</dd>
        <dt>Reason</dt>
        <dd>{m.reason}</dd>
        <dt>Attachments (never opened here)</dt>
        <dd>
          {t?.attachments?.length
            ? t.attachments.map((a: any) => (
                <div key={a.sha256 + a.name}>
                  {a.name} — {a.trueType ?? 'unknown type'}, {a.size} bytes, sha256 {a.sha256}
                </div>
              ))
            : '–'}
        </dd>
        <dt>URLs</dt>
        <dd>{t?.urls?.length ? t.urls.map((u: string) => <div key={u}>{u}</div>) : '–'}</dd>
      </dl>
      <MessageContent path={`${base}/messages/${mid}/content`} />
      <a href={`#/tracking/${mid}`}>Open in message tracking</a>
    </section>
  );
}
