// Casebooks: investigations saved with a title and notes. Opening one investigates its observables again
// (what every gateway has seen up to now); it can be edited, deleted, or exported as a STIX 2.1 bundle.
import { useState } from 'react';
import { api, ApiFailure } from '../../api.ts';
import { fmtTime, useLoad } from '../../load.ts';
import { InvestigationView } from './Investigate.tsx';

export function Casebooks({ id }: { id: string | null }) {
  if (id) return <CasebookView id={id} />;
  return <CasebookList />;
}

function CasebookList() {
  const r = useLoad<{ casebooks: any[] }>('/api/v1/casebooks');
  if (r.error) return <p className="error">{r.error}</p>;
  if (!r.data) return <p>Loading…</p>;
  if (!r.data.casebooks.length) return <p>No casebooks yet: investigate something, then save it as a casebook.</p>;
  return (
    <table aria-label="casebooks">
      <thead>
        <tr>
          <th>Casebook</th>
          <th>Observables</th>
          <th>Changed</th>
          <th>By</th>
        </tr>
      </thead>
      <tbody>
        {r.data.casebooks.map((c) => (
          <tr key={c.id}>
            <td>
              <a href={`#/casebooks/${c.id}`}>{c.title}</a>
            </td>
            <td>{c.observables.length}</td>
            <td>{fmtTime(c.updatedAt)}</td>
            <td>{c.updatedBy}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function CasebookView({ id }: { id: string }) {
  const r = useLoad<{ casebook: any; investigation: any }>(`/api/v1/casebooks/${encodeURIComponent(id)}`);
  const [notes, setNotes] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  if (r.error) return <p className="error">{r.error}</p>;
  if (!r.data) return <p>Loading…</p>;
  const c = r.data.casebook;
  const saveNotes = async () => {
    try {
      await api('PATCH', `/api/v1/casebooks/${c.id}`, { notes: notes ?? c.notes });
      setStatus('notes saved');
      r.reload();
    } catch (e) {
      setStatus(e instanceof ApiFailure ? `${e.message} (${e.code})` : String(e));
    }
  };
  const remove = async () => {
    if (!confirm(`Delete the casebook “${c.title}”?`)) return;
    await api('DELETE', `/api/v1/casebooks/${c.id}`);
    location.hash = '#/casebooks';
  };
  return (
    <>
      <h2>{c.title}</h2>
      <p className="muted">
        by {c.createdBy} {fmtTime(c.createdAt)}; changed by {c.updatedBy} {fmtTime(c.updatedAt)}
      </p>
      <label className="notes">
        Notes
        <textarea rows={4} value={notes ?? c.notes} onChange={(e) => setNotes(e.target.value)} />
      </label>
      <div className="actions" role="group" aria-label="Casebook">
        <button type="button" onClick={saveNotes}>
          Save notes
        </button>
        <a href={`/api/v1/casebooks/${c.id}/stix`} download={`casebook-${c.id}.stix.json`}>
          Export as STIX 2.1
        </a>
        <button type="button" onClick={remove}>
          Delete
        </button>
      </div>
      {status && <p role="status">{status}</p>}
      <InvestigationView
        result={r.data.investigation}
        onPick={(node) => {
          location.hash = `#/investigate?${new URLSearchParams({ q: node.replace(/^([a-z_]+):/, '$1: ') })}`;
        }}
      />
    </>
  );
}
