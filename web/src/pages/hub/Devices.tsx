// The hub's gateways: status, last contact, region, version, messages streamed and the last telemetry
// report. Administrators can deregister one from the hub side (its next call is refused).
import { useState } from 'react';
import { api, ApiFailure, type Session } from '../../api.ts';
import { fmtTime, useLoad } from '../../load.ts';

/** A gateway is online when it called within the last few minutes (it streams or polls every few seconds). */
const ONLINE_MS = 5 * 60_000;

export function Devices({ session }: { session: Session }) {
  const r = useLoad<{ devices: any[] }>('/api/v1/devices');
  const [status, setStatus] = useState<string | null>(null);
  const remove = async (d: any) => {
    if (!confirm(`Deregister ${d.name}? It has to register again with a new token.`)) return;
    try {
      await api('DELETE', `/api/v1/devices/${encodeURIComponent(d.id)}`);
      setStatus(`${d.name} deregistered`);
      r.reload();
    } catch (e) {
      setStatus(e instanceof ApiFailure ? `${e.message} (${e.code})` : String(e));
    }
  };
  if (r.error) return <p className="error">{r.error}</p>;
  if (!r.data) return <p>Loading…</p>;
  const devices = r.data.devices;
  const online = (d: any) =>
    d.status === 'registered' && d.lastContact && Date.now() - Date.parse(d.lastContact) < ONLINE_MS;
  return (
    <>
      <p>
        {devices.filter((d) => d.status === 'registered').length} registered, {devices.filter(online).length} online
      </p>
      {status && (
        <p role="status" className="result">
          {status}
        </p>
      )}
      {devices.length === 0 ? (
        <p>No gateway has registered yet: create a registration token, then run `breakwater cloud register TOKEN`.</p>
      ) : (
        <table aria-label="devices">
          <thead>
            <tr>
              <th>Gateway</th>
              <th>State</th>
              <th>Region</th>
              <th>Version</th>
              <th>Last contact</th>
              <th>Messages</th>
              <th>Telemetry</th>
              {session.role === 'admin' && <th />}
            </tr>
          </thead>
          <tbody>
            {devices.map((d) => (
              <tr key={d.id}>
                <td>
                  {d.name}
                  <div className="muted">
                    {d.hostname ?? ''} · {d.id}
                  </div>
                </td>
                <td>{d.status === 'removed' ? 'removed' : online(d) ? 'online' : 'offline'}</td>
                <td>{d.region}</td>
                <td>{d.version ?? '–'}</td>
                <td>{fmtTime(d.lastContact)}</td>
                <td>{d.messages}</td>
                <td>
                  {d.telemetry ? (
                    <details>
                      <summary>{fmtTime(d.telemetryAt)}</summary>
                      <pre className="pre">{JSON.stringify(d.telemetry, null, 2)}</pre>
                    </details>
                  ) : (
                    <span className="muted">none (opt-in)</span>
                  )}
                </td>
                {session.role === 'admin' && (
                  <td>
                    {d.status === 'registered' && (
                      <button type="button" onClick={() => remove(d)}>
                        Deregister
                      </button>
                    )}
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}
