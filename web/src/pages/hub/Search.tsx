// Cross-gateway tracking search on the hub: an observable (address, IP, domain, subject, Message-ID,
// MID, hash, file name, URL) → every gateway's messages that carry it, newest first, with which gateway
// saw each. Any address, IP, hash or URL in the results is a new search (pivot).
import { useState, type FormEvent } from 'react';
import { query } from '../../api.ts';
import { fmtTime, useLoad } from '../../load.ts';

export const OBSERVABLE_TYPES: Record<string, string> = {
  email: 'E-mail address',
  domain: 'Domain',
  ip: 'IP address',
  email_subject: 'Subject',
  email_messageid: 'Message-ID',
  cisco_mid: 'MID',
  sha256: 'SHA-256',
  file_name: 'File name',
  url: 'URL',
};

function fromHash(): { type: string; value: string } {
  const q = new URLSearchParams(location.hash.split('?')[1] ?? '');
  const type = q.get('type') ?? 'email';
  return { type: type in OBSERVABLE_TYPES ? type : 'email', value: q.get('value') ?? '' };
}

function Pivot({ type, value }: { type: string; value: string }) {
  if (!value) return <>–</>;
  return (
    <a href={`#/search${query({ type, value })}`} title={`search every gateway for this ${OBSERVABLE_TYPES[type]}`}>
      {value}
    </a>
  );
}

export function Search() {
  const [form, setForm] = useState(fromHash);
  const applied = fromHash();
  const devices = useLoad<{ devices: any[] }>('/api/v1/devices');
  const r = useLoad<{ count: number; messages: any[] }>(
    applied.value ? `/api/v1/messages${query({ type: applied.type, value: applied.value, limit: 200 })}` : null,
  );
  const names = new Map<string, string>((devices.data?.devices ?? []).map((d) => [d.id, d.name]));
  const submit = (e: FormEvent) => {
    e.preventDefault();
    location.hash = `#/search${query(form)}`;
  };
  return (
    <>
      <form className="inline search" onSubmit={submit} aria-label="Search every gateway">
        <label>
          Observable
          <select value={form.type} onChange={(e) => setForm({ ...form, type: e.target.value })}>
            {Object.entries(OBSERVABLE_TYPES).map(([t, label]) => (
              <option key={t} value={t}>
                {label}
              </option>
            ))}
          </select>
        </label>
        <label>
          Value
          <input value={form.value} onChange={(e) => setForm({ ...form, value: e.target.value })} required />
        </label>
        <button type="submit">Search</button>
      </form>
      {r.error && <p className="error">{r.error}</p>}
      {applied.value && r.data && (
        <>
          <p role="status">
            {r.data.count} message(s) with {OBSERVABLE_TYPES[applied.type]} “{applied.value}” on{' '}
            {new Set(r.data.messages.map((m) => m.deviceId)).size} gateway(s)
          </p>
          <table aria-label="messages across gateways">
            <thead>
              <tr>
                <th>Gateway</th>
                <th>MID</th>
                <th>Received</th>
                <th>From</th>
                <th>To</th>
                <th>Subject</th>
                <th>Status</th>
                <th>Threat</th>
                <th>Attachments</th>
              </tr>
            </thead>
            <tbody>
              {r.data.messages.map(({ deviceId, summary: s }) => (
                <tr key={`${deviceId}/${s.mid}`}>
                  <td>{names.get(deviceId) ?? deviceId}</td>
                  <td>{s.mid}</td>
                  <td>{fmtTime(s.receivedAt)}</td>
                  <td>
                    <Pivot type="email" value={s.sender} />
                    <div className="muted">
                      <Pivot type="ip" value={s.senderIp} />
                    </div>
                  </td>
                  <td>
                    {s.recipients.slice(0, 5).map((x: any) => (
                      <div key={x.address}>
                        <Pivot type="email" value={x.address} /> <span className="muted">{x.status}</span>
                      </div>
                    ))}
                    {s.recipients.length > 5 && <div className="muted">and {s.recipients.length - 5} more</div>}
                  </td>
                  <td className="subject">{s.subject ?? '(no subject)'}</td>
                  <td>
                    {s.status}
                    {s.verdict ? <div className="muted">{s.verdict}</div> : null}
                  </td>
                  <td>{s.threatLevel ?? '–'}</td>
                  <td>
                    {s.attachments.map((a: any) => (
                      <div key={a.sha256 + a.name}>
                        {a.name} <span className="muted">{a.trueType ?? ''}</span>
                        <div className="muted">
                          <Pivot type="sha256" value={a.sha256} />
                        </div>
                      </div>
                    ))}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </>
  );
}
