// Registration tokens: one use each, for one region, valid for the hub's tokenLifetime. The token is
// shown once, when it is made; the list shows what became of each (never the token itself).
import { useState, type FormEvent } from 'react';
import { api, ApiFailure } from '../../api.ts';
import { fmtTime, useLoad } from '../../load.ts';

const REGIONS = ['nam', 'eu', 'apjc'];

export function Tokens() {
  const r = useLoad<{ tokens: any[] }>('/api/v1/tokens');
  const [region, setRegion] = useState('nam');
  const [made, setMade] = useState<{ token: string; region: string; expiresAt: string } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const create = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      setMade(await api('POST', '/api/v1/tokens', { region }));
      r.reload();
    } catch (err) {
      setError(err instanceof ApiFailure ? `${err.message} (${err.code})` : String(err));
    }
  };
  return (
    <>
      <form className="inline" onSubmit={create} aria-label="New registration token">
        <label>
          Region
          <select value={region} onChange={(e) => setRegion(e.target.value)}>
            {REGIONS.map((x) => (
              <option key={x}>{x}</option>
            ))}
          </select>
        </label>
        <button type="submit">Create a registration token</button>
      </form>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      {made && (
        <p role="status" className="result">
          Token for {made.region} (shown once, valid until {fmtTime(made.expiresAt)}): <code>{made.token}</code> — on
          the gateway: <code>breakwater cloud register {made.token}</code>
        </p>
      )}
      {r.error && <p className="error">{r.error}</p>}
      {r.data && (
        <table aria-label="tokens">
          <thead>
            <tr>
              <th>Id</th>
              <th>Region</th>
              <th>Created</th>
              <th>Valid until</th>
              <th>State</th>
              <th>Used by</th>
            </tr>
          </thead>
          <tbody>
            {r.data.tokens.map((t) => (
              <tr key={t.id}>
                <td>{t.id}</td>
                <td>{t.region}</td>
                <td>{fmtTime(t.createdAt)}</td>
                <td>{fmtTime(t.expiresAt)}</td>
                <td>{t.status}</td>
                <td>{t.deviceId ?? '–'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}
