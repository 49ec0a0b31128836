// Outbreak Filters: status, the published rules (id, level, description, since), update now (admins).
import { useState } from 'react';
import { api, ApiFailure, type Session } from '../api.ts';
import { useLoad, fmtTime } from '../load.ts';

export function Outbreak({ role }: { role: Session['role'] }) {
  const status = useLoad<any>('/api/v1/outbreak/status');
  const rules = useLoad<any>('/api/v1/outbreak/rules');
  const [note, setNote] = useState<string | null>(null);
  const update = async () => {
    try {
      const r = await api<any>('POST', '/api/v1/outbreak/update', {});
      setNote(`update: ${JSON.stringify(r).slice(0, 200)}`);
      status.reload();
      rules.reload();
    } catch (e) {
      setNote(e instanceof ApiFailure ? `${e.message} (${e.code})` : String(e));
    }
  };
  const s = status.data;
  return (
    <>
      {status.error && <p className="error">{status.error}</p>}
      {s && (
        <dl>
          <dt>Rule version</dt>
          <dd>
            {s.outbreakRules.version ?? 'none'} ({s.outbreakRules.rules} rules, published{' '}
            {fmtTime(s.outbreakRules.published)})
          </dd>
          <dt>Adaptive rules</dt>
          <dd>{s.adaptiveRules.enabled ? 'on' : 'off'}</dd>
          <dt>Feed</dt>
          <dd>{s.feed ? (s.feed.url ?? s.feed.dir) : 'none'}</dd>
          <dt>Last update / check</dt>
          <dd>
            {fmtTime(s.lastUpdate)} / {fmtTime(s.lastCheck)} {s.lastError ? `— ${s.lastError}` : ''}
          </dd>
        </dl>
      )}
      {role === 'admin' && (
        <button type="button" onClick={update}>
          Update now
        </button>
      )}
      {note && <p role="status">{note}</p>}
      <table>
        <thead>
          <tr>
            <th>Rule</th>
            <th>Level</th>
            <th>Category</th>
            <th>Description</th>
            <th>Since</th>
          </tr>
        </thead>
        <tbody>
          {(rules.data?.rules ?? []).map((r: any) => (
            <tr key={r.id}>
              <td>
                <a href={`#/tracking?rule=${encodeURIComponent(r.id)}`}>{r.id}</a>
              </td>
              <td>{r.level}</td>
              <td>{r.category}</td>
              <td>{r.description}</td>
              <td>{fmtTime(r.published)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
