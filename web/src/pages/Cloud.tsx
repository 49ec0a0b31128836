// Cloud services: the gateway's registration with the threat-response hub — status, region, hub,
// last contact, why it failed — and, for administrators, register with a token, deregister, turn cloud
// services on or off, send telemetry now.
import { useState, type FormEvent } from 'react';
import { api, ApiFailure, type Session } from '../api.ts';
import { fmtTime, useLoad } from '../load.ts';

export function Cloud({ role }: { role: Session['role'] }) {
  const r = useLoad<any>('/api/v1/cloud');
  const [token, setToken] = useState('');
  const [region, setRegion] = useState('');
  const [force, setForce] = useState(false);
  const [result, setResult] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const run = async (what: string, fn: () => Promise<any>) => {
    setBusy(true);
    setResult(null);
    try {
      const s = await fn();
      setResult(`${what}: ${s?.status ?? 'done'}${s?.reason ? ` (${s.reason})` : ''}`);
      r.reload();
    } catch (e) {
      setResult(e instanceof ApiFailure ? `${what}: ${e.message} (${e.code})` : String(e));
    } finally {
      setBusy(false);
    }
  };
  if (r.error) return <p className="error">{r.error}</p>;
  if (!r.data) return <p>Loading…</p>;
  const s = r.data;
  const admin = role === 'admin';
  const register = (e: FormEvent) => {
    e.preventDefault();
    void run('register', () =>
      api('POST', '/api/v1/cloud/register', { token: token.trim(), ...(region ? { region } : {}) }),
    );
  };
  return (
    <>
      <table aria-label="registration">
        <tbody>
          <tr>
            <th>Status</th>
            <td data-status={s.status}>{s.status}</td>
          </tr>
          <tr>
            <th>Region</th>
            <td>{s.region ?? '–'}</td>
          </tr>
          <tr>
            <th>Hub</th>
            <td>
              {s.hubUrl ?? '–'}{' '}
              {s.status === 'registered' && s.hubUrl && (
                <a href={`${s.hubUrl.replace(/\/+$/, '')}/ui/`} target="_blank" rel="noopener noreferrer">
                  open the hub
                </a>
              )}
            </td>
          </tr>
          <tr>
            <th>Device id</th>
            <td>{s.deviceId ?? '–'}</td>
          </tr>
          <tr>
            <th>Last contact</th>
            <td>{fmtTime(s.lastContact)}</td>
          </tr>
          {s.reason && (
            <tr>
              <th>Note</th>
              <td className="error">{s.reason}</td>
            </tr>
          )}
        </tbody>
      </table>
      {result && (
        <p role="status" className="result">
          {result}
        </p>
      )}
      {admin && (
        <>
          {s.status !== 'registered' && (
            <form className="inline" onSubmit={register} aria-label="Register with a hub">
              <label>
                Registration token
                <input
                  value={token}
                  onChange={(e) => setToken(e.target.value)}
                  pattern="[0-9a-fA-F]{32}"
                  title="32 hexadecimal characters, from the hub"
                  required
                />
              </label>
              <label>
                Region or hub URL
                <input value={region} onChange={(e) => setRegion(e.target.value)} placeholder="cloud.region" />
              </label>
              <button type="submit" disabled={busy}>
                Register
              </button>
            </form>
          )}
          <div className="actions" role="group" aria-label="Cloud services">
            {s.status === 'registered' && (
              <>
                <button
                  type="button"
                  disabled={busy}
                  onClick={() => run('deregister', () => api('POST', '/api/v1/cloud/deregister', { force }))}
                >
                  Deregister
                </button>
                <label>
                  <input type="checkbox" checked={force} onChange={(e) => setForce(e.target.checked)} /> even if the hub
                  cannot be told
                </label>
                <button
                  type="button"
                  disabled={busy}
                  onClick={() => run('telemetry', () => api('POST', '/api/v1/cloud/telemetry', {}))}
                >
                  Send telemetry now
                </button>
              </>
            )}
            {s.status === 'disabled' ? (
              <button
                type="button"
                disabled={busy}
                onClick={() => run('enable', () => api('POST', '/api/v1/cloud/enable', {}))}
              >
                Turn cloud services on
              </button>
            ) : (
              <button
                type="button"
                disabled={busy}
                onClick={() => run('disable', () => api('POST', '/api/v1/cloud/disable', {}))}
              >
                Turn cloud services off
              </button>
            )}
          </div>
        </>
      )}
    </>
  );
}
