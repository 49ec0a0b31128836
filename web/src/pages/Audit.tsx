// The audit log (admins): who changed what, when, from where; searchable.
import { useState, type FormEvent } from 'react';
import { query } from '../api.ts';
import { useLoad, fmtTime } from '../load.ts';

export function Audit() {
  const [form, setForm] = useState({ user: '', action: '', text: '' });
  const [applied, setApplied] = useState(form);
  const r = useLoad<any>(`/api/v1/audit${query({ ...applied, limit: 200 })}`);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setApplied({ ...form });
  };
  return (
    <>
      <form className="search" onSubmit={submit} aria-label="Search the audit log">
        {(['user', 'action', 'text'] as const).map((k) => (
          <label key={k}>
            {k}
            <input name={k} value={form[k]} onChange={(e) => setForm({ ...form, [k]: e.target.value })} />
          </label>
        ))}
        <button type="submit">Search</button>
      </form>
      {r.error && <p className="error">{r.error}</p>}
      <table>
        <thead>
          <tr>
            <th>When</th>
            <th>Who</th>
            <th>Action</th>
            <th>Target</th>
            <th>Status</th>
            <th>From</th>
          </tr>
        </thead>
        <tbody>
          {(r.data?.entries ?? []).map((e: any) => (
            <tr key={e.id}>
              <td>{fmtTime(e.at)}</td>
              <td>
                {e.user} {e.role ? `(${e.role})` : ''}
              </td>
              <td>{e.action}</td>
              <td>
                {e.target}
                {e.detail ? <div className="muted pre">{JSON.stringify(e.detail)}</div> : null}
              </td>
              <td>{e.status}</td>
              <td>{e.ip}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
