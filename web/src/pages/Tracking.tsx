// Message tracking: every §8 search field, paged results, and one message's timeline of events.
import { useState, type FormEvent } from 'react';
import { query } from '../api.ts';
import { useLoad, fmtTime } from '../load.ts';
import { Observable } from '../Observable.tsx';

const FIELDS: Array<[string, string]> = [
  ['sender', 'Envelope sender'],
  ['recipient', 'Recipient'],
  ['subject', 'Subject contains'],
  ['messageId', 'Message-ID'],
  ['mid', 'MID'],
  ['ip', 'Sender IP'],
  ['senderDomain', 'Sender domain'],
  ['fromAddress', 'Header From'],
  ['attachment', 'Attachment name'],
  ['sha256', 'Attachment SHA-256'],
  ['urlDomain', 'URL domain'],
  ['url', 'URL'],
  ['status', 'Status'],
  ['level', 'Threat level at least'],
  ['rule', 'Rule id'],
  ['auth', 'Sender auth (dmarc=fail)'],
  ['spamAction', 'rspamd action'],
  ['spamScore', 'rspamd score at least'],
  ['since', 'Received since'],
  ['until', 'Received until'],
];

export function Tracking({ mid }: { mid: string | null }) {
  const [form, setForm] = useState<Record<string, string>>(() => {
    const p = new URLSearchParams(location.hash.split('?')[1] ?? '');
    return Object.fromEntries(FIELDS.map(([k]) => [k, p.get(k) ?? '']));
  });
  const [search, setSearch] = useState<Record<string, string>>(form);
  const [before, setBefore] = useState<number | null>(null);
  const path = `/api/v1/tracking/messages${query({ ...search, limit: 50, before: before ?? undefined })}`;
  const list = useLoad<any>(mid ? null : path);

  if (mid) return <Timeline mid={mid} />;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setBefore(null);
    setSearch({ ...form });
  };
  const rows: any[] = list.data?.messages ?? [];
  return (
    <>
      <form className="search" onSubmit={submit} aria-label="Search messages">
        {FIELDS.map(([k, label]) => (
          <label key={k}>
            {label}
            <input name={k} value={form[k]} onChange={(e) => setForm({ ...form, [k]: e.target.value })} />
          </label>
        ))}
        <button type="submit">Search</button>
      </form>
      {list.error && <p className="error">{list.error}</p>}
      <table>
        <thead>
          <tr>
            <th>MID</th>
            <th>Received</th>
            <th>Sender</th>
            <th>Recipients</th>
            <th>Subject</th>
            <th>Status</th>
            <th>Level</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((m) => (
            <tr key={m.mid}>
              <td>
                <a href={`#/tracking/${m.mid}`}>{m.mid}</a>
              </td>
              <td>{fmtTime(m.receivedAt)}</td>
              <td>
                <Observable type="email" value={m.sender} />
              </td>
              <td>{m.recipients.map((r: any) => r.address).join(', ')}</td>
              <td className="subject">{m.subject ?? ''}</td>
              <td>{m.status}</td>
              <td>{m.threatLevel ?? '–'}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {rows.length === 50 && (
        <button type="button" onClick={() => setBefore(rows[rows.length - 1].mid)}>
          Older
        </button>
      )}
    </>
  );
}

function Timeline({ mid }: { mid: string }) {
  const r = useLoad<any>(`/api/v1/tracking/messages/${encodeURIComponent(mid)}`);
  if (r.error) return <p className="error">{r.error}</p>;
  if (!r.data) return <p>Loading…</p>;
  const m = r.data;
  const ingress = lastEvent(m.events, 'ingress.accepted');
  const auth = lastEvent(m.events, 'auth.checked');
  const spam = lastEvent(m.events, 'antispam.scanned');
  return (
    <article className="message">
      <p>
        <a href="#/tracking">← back to the search</a>
      </p>
      <h2>
        MID {m.mid}: {m.subject ?? '(no subject)'}
      </h2>
      <dl>
        <dt>From (envelope)</dt>
        <dd>
          <Observable type="email" value={m.sender} />
        </dd>
        <dt>Header From</dt>
        <dd>{m.headerFrom ?? '–'}</dd>
        <dt>Recipients</dt>
        <dd>
          {m.recipients.map((x: any) => (
            <div key={x.rid}>
              <Observable type="email" value={x.address} /> — {x.status}
              {x.lastReply ? ` (${x.lastReply})` : ''}
              {x.tls ? <span className="tls"> · TLS: {x.tls}</span> : null}
            </div>
          ))}
        </dd>
        <dt>Sender IP</dt>
        <dd>
          <Observable type="ip" value={m.senderIp} /> {m.rdns ? `(${m.rdns})` : ''}
        </dd>
        <dt>Connection</dt>
        <dd>
          {ingress
            ? [
                `listener ${ingress.listener}`,
                ingress.senderGroup ? `sender group ${ingress.senderGroup}` : null,
                ingress.reputation?.length ? `listed by ${ingress.reputation.join(', ')}` : null,
                `TLS ${ingress.tls ?? 'none'}`,
                ingress.directory?.length ? `recipient directory: ${ingress.directory.join('; ')}` : null,
              ]
                .filter(Boolean)
                .join(' · ')
            : '–'}
        </dd>
        <dt>Sender authentication</dt>
        <dd>
          {auth
            ? `spf=${auth.spf} · dkim=${auth.dkim.length ? auth.dkim.map((d: any) => `${d.result}${d.domain ? ` (${d.domain})` : ''}`).join(', ') : 'none'} · dmarc=${auth.dmarc}${auth.dmarcPolicy ? ` (p=${auth.dmarcPolicy})` : ''} · arc=${auth.arc}${auth.action !== 'none' ? ` · action ${auth.action}` : ''}${auth.dmarcOverride ? ` · DMARC failure overridden: ${auth.dmarcOverride}` : ''}${auth.recordedFrom !== undefined ? ` · as checked on arrival (MID ${auth.recordedFrom})` : ''}`
            : 'not checked'}
        </dd>
        <dt>Anti-spam</dt>
        <dd>
          {spam
            ? `rspamd ${spam.action}, score ${spam.score} / ${spam.requiredScore}${spam.symbols.length ? ` (${spam.symbols.map((x: any) => x.name).join(', ')})` : ''}${spam.skipped ? ` · ${spam.skipped}` : ''}`
            : 'not scanned'}
        </dd>
        <dt>Message-ID</dt>
        <dd>{m.messageId ?? '–'}</dd>
        <dt>Status</dt>
        <dd>
          {m.status}, threat level {m.threatLevel ?? '–'}
        </dd>
        <dt>Attachments</dt>
        <dd>
          {m.attachments.length
            ? m.attachments.map((a: any) => (
                <div key={a.sha256 + a.name}>
                  {a.name} ({a.trueType ?? 'unknown type'}, {a.size} bytes){' '}
                  <Observable type="sha256" value={a.sha256} />
                </div>
              ))
            : '–'}
        </dd>
        <dt>URLs</dt>
        <dd>
          {m.urls.length
            ? m.urls.map((u: string) => (
                <div key={u}>
                  <Observable type="url" value={u} />
                </div>
              ))
            : '–'}
        </dd>
      </dl>
      <h3>Timeline</h3>
      <ol className="timeline">
        {m.events.map((e: any, i: number) => (
          <li key={i}>
            <time>{fmtTime(e.at)}</time> <strong>{e.type}</strong> <code>{summary(e)}</code>
          </li>
        ))}
      </ol>
    </article>
  );
}

/** The last event of a type in a message's timeline (a rescan records it again), or undefined. */
function lastEvent(events: any[], type: string): any {
  return events.filter((e) => e.type === type).at(-1);
}

function summary(e: Record<string, unknown>): string {
  const { at: _at, type: _type, ...rest } = e;
  return JSON.stringify(rest).slice(0, 300);
}
