// The end-user quarantine: a recipient's own held messages (#/my-quarantine). Reached from a digest link
// (the token is in the URL's fragment, so it never reaches a server log; it is exchanged for a session
// cookie at once and removed from the address bar and history), or by signing in with the mailbox
// password, or by asking for a link. Nothing acts on a GET: every release, delete or allow-list is a
// button press, so link checkers that open the digest's links change nothing.
import { useCallback, useEffect, useState, type FormEvent } from 'react';
import { api, ApiFailure, setCsrf, whenSignedOut } from '../api.ts';
import { fmtBytes, fmtTime, useLoad } from '../load.ts';
import { MessageContent } from '../MessageContent.tsx';

interface EndUserSession {
  enabled: boolean;
  signedIn: boolean;
  address: string | null;
  csrfToken: string | null;
  methods: { imap: boolean; requestLink: boolean };
}

interface Held {
  mid: number;
  quarantine: string;
  sender: string;
  subject: string | null;
  receivedAt: string;
  heldUntil: string | null;
  size: number;
  reason: string;
  canRelease: boolean;
}

const SESSION = '/api/v1/enduser/session';

function fragmentParams(): URLSearchParams {
  return new URLSearchParams(location.hash.split('?')[1] ?? '');
}

const message = (e: unknown) => (e instanceof ApiFailure ? e.message : 'the gateway did not answer');

export function MyQuarantine() {
  const [session, setSession] = useState<EndUserSession | null>(null);
  const [error, setError] = useState<string | null>(null);
  const signedIn = useCallback((s: EndUserSession) => {
    setCsrf(s.csrfToken);
    setSession(s);
  }, []);

  useEffect(() => {
    const token = fragmentParams().get('t');
    const mid = fragmentParams().get('mid');
    // the token leaves the address bar (and the history) before anything else happens
    if (token) history.replaceState(null, '', `#/my-quarantine${mid ? `?mid=${mid}` : ''}`);
    whenSignedOut(() => setSession((s) => (s ? { ...s, signedIn: false, address: null } : s)));
    const start = token
      ? api<EndUserSession>('POST', SESSION, { token }).catch(async (e) => {
          setError(message(e));
          return api<EndUserSession>('GET', SESSION);
        })
      : api<EndUserSession>('GET', SESSION);
    start.then(signedIn, (e) => setError(message(e)));
  }, [signedIn]);

  if (!session) return error ? <p className="error">{error}</p> : <p className="loading">Loading…</p>;
  if (!session.enabled)
    return (
      <main className="enduser">
        <h1>Quarantine</h1>
        <p>The end-user quarantine is not available on this gateway.</p>
      </main>
    );
  if (!session.signedIn) return <EndUserSignIn session={session} onSignedIn={signedIn} notice={error} />;
  const signOut = async () => {
    await api('DELETE', SESSION).catch(() => {});
    setCsrf(null);
    setSession({ ...session, signedIn: false, address: null, csrfToken: null });
  };
  return (
    <div className="shell enduser">
      <header>
        <span className="brand">Breakwater quarantine</span>
        <span className="who">
          {session.address}
          <button type="button" onClick={signOut}>
            Sign out
          </button>
        </span>
      </header>
      <main>
        <h1>Messages held for you</h1>
        <HeldMessages />
      </main>
    </div>
  );
}

function HeldMessages() {
  const list = useLoad<{ messages: Held[]; allowList: string[] }>('/api/v1/enduser/messages');
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [open, setOpen] = useState<string | null>(() => {
    const mid = fragmentParams().get('mid');
    return mid ? `mid:${mid}` : null;
  });
  const [status, setStatus] = useState<string | null>(null);
  const rows = list.data?.messages ?? [];
  const key = (m: Held) => `${m.quarantine}/${m.mid}`;
  const chosen = rows.filter((m) => selected.has(key(m)));
  const toggle = (k: string) => {
    const s = new Set(selected);
    if (s.has(k)) s.delete(k);
    else s.add(k);
    setSelected(s);
  };
  const act = async (action: 'release' | 'delete', allow: boolean) => {
    if (action === 'delete' && !confirm(`Delete ${chosen.length} message(s)? They cannot be brought back.`)) return;
    try {
      const body = { messages: chosen.map((m) => ({ quarantine: m.quarantine, mid: m.mid })) };
      const r = await api<{ results: Array<{ status: string }> }>('POST', `/api/v1/enduser/messages/${action}`, body);
      if (allow)
        for (const s of new Set(chosen.map((m) => m.sender).filter(Boolean)))
          await api('POST', '/api/v1/enduser/senders', { sender: s });
      const done = r.results.filter((x) => x.status === 'released' || x.status === 'deleted').length;
      setStatus(
        `${action === 'release' ? 'Released' : 'Deleted'} ${done} of ${r.results.length} message(s)` +
          (allow ? '; their senders are on your allow list' : '') +
          (done < r.results.length ? ' (the others were already gone or may not be released)' : ''),
      );
      setSelected(new Set());
      list.reload();
    } catch (e) {
      setStatus(message(e));
    }
  };
  const allowSender = async (sender: string) => {
    try {
      await api('POST', '/api/v1/enduser/senders', { sender });
      setStatus(`${sender} is on your allow list: their mail is no longer held here for you`);
      list.reload();
    } catch (e) {
      setStatus(message(e));
    }
  };
  const removeSender = async (sender: string) => {
    try {
      await api('DELETE', `/api/v1/enduser/senders/${encodeURIComponent(sender)}`);
      setStatus(`${sender} is off your allow list`);
      list.reload();
    } catch (e) {
      setStatus(message(e));
    }
  };
  if (list.error) return <p className="error">{list.error}</p>;
  if (!list.data) return <p>Loading…</p>;
  const canRelease = chosen.length > 0 && chosen.every((m) => m.canRelease);
  return (
    <>
      <p className="muted">
        These messages were held before they reached your mailbox. Release what you expected (it is checked again for
        viruses and threats first), delete the rest.
      </p>
      <div className="actions" role="group" aria-label="Actions on the selected messages">
        <button type="button" disabled={!canRelease} onClick={() => act('release', false)}>
          Release
        </button>
        <button type="button" disabled={!canRelease} onClick={() => act('release', true)}>
          Release and allow sender
        </button>
        <button type="button" disabled={!chosen.length} onClick={() => act('delete', false)}>
          Delete
        </button>
        <span className="muted">{chosen.length} selected</span>
      </div>
      {status && (
        <p role="status" className="result">
          {status}
        </p>
      )}
      {rows.length === 0 ? (
        <p>No messages are held for you.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>
                <input
                  type="checkbox"
                  aria-label="Select all"
                  checked={chosen.length === rows.length}
                  onChange={(e) => setSelected(e.target.checked ? new Set(rows.map(key)) : new Set())}
                />
              </th>
              <th>Received</th>
              <th>From</th>
              <th>Subject</th>
              <th>Size</th>
              <th>Held until</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((m) => (
              <tr key={key(m)} data-mid={m.mid}>
                <td>
                  <input
                    type="checkbox"
                    aria-label={`Select the message from ${m.sender}`}
                    checked={selected.has(key(m))}
                    onChange={() => toggle(key(m))}
                  />
                </td>
                <td>{fmtTime(m.receivedAt)}</td>
                <td>
                  {m.sender || '(no sender)'}{' '}
                  {m.sender && !list.data!.allowList.includes(m.sender) && (
                    <button type="button" className="link" onClick={() => allowSender(m.sender)}>
                      allow
                    </button>
                  )}
                </td>
                <td className="subject">
                  <button
                    type="button"
                    className="link"
                    aria-expanded={open === key(m) || open === `mid:${m.mid}`}
                    onClick={() => setOpen(open === key(m) ? null : key(m))}
                  >
                    {m.subject || '(no subject)'}
                  </button>
                  {!m.canRelease && <div className="muted">can be deleted, not released</div>}
                </td>
                <td>{fmtBytes(m.size)}</td>
                <td>{fmtTime(m.heldUntil)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {rows
        .filter((m) => open === key(m) || open === `mid:${m.mid}`)
        .map((m) => (
          <section key={key(m)} aria-label="Message">
            <h2>{m.subject || '(no subject)'}</h2>
            <p className="muted">Held because: {m.reason}</p>
            <MessageContent
              path={`/api/v1/enduser/messages/${encodeURIComponent(m.quarantine)}/${m.mid}/content`}
              attachments
            />
          </section>
        ))}
      <h2>Allow list</h2>
      {list.data.allowList.length === 0 ? (
        <p className="muted">No senders. Mail from an allowed sender is not held here for you (viruses still are).</p>
      ) : (
        <ul>
          {list.data.allowList.map((s) => (
            <li key={s}>
              {s}{' '}
              <button type="button" className="link" onClick={() => removeSender(s)}>
                remove
              </button>
            </li>
          ))}
        </ul>
      )}
    </>
  );
}

function EndUserSignIn({
  session,
  onSignedIn,
  notice,
}: {
  session: EndUserSession;
  onSignedIn: (s: EndUserSession) => void;
  notice: string | null;
}) {
  const [user, setUser] = useState('');
  const [password, setPassword] = useState('');
  const [address, setAddress] = useState('');
  const [status, setStatus] = useState<string | null>(notice);
  const [busy, setBusy] = useState(false);
  const run = async (e: FormEvent, fn: () => Promise<void>) => {
    e.preventDefault();
    setBusy(true);
    try {
      await fn();
    } catch (err) {
      setStatus(message(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main className="enduser">
      <h1>Your quarantine</h1>
      <p>
        Open the link in your latest quarantine digest{session.methods.imap ? ', or sign in with your mailbox' : ''}.
      </p>
      {status && (
        <p role="alert" className="error">
          {status}
        </p>
      )}
      {session.methods.imap && (
        <form
          className="login"
          aria-label="Sign in with your mailbox"
          onSubmit={(e) => run(e, async () => onSignedIn(await api('POST', SESSION, { user, password })))}
        >
          <label>
            E-mail address
            <input
              name="user"
              autoComplete="username"
              value={user}
              onChange={(e) => setUser(e.target.value)}
              required
            />
          </label>
          <label>
            Mailbox password
            <input
              name="password"
              type="password"
              autoComplete="current-password"
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              required
            />
          </label>
          <button type="submit" disabled={busy}>
            Sign in
          </button>
        </form>
      )}
      {session.methods.requestLink && (
        <form
          className="login"
          aria-label="Ask for a link"
          onSubmit={(e) =>
            run(e, async () => {
              const r = await api<{ message: string }>('POST', '/api/v1/enduser/link', { address });
              setStatus(r.message);
            })
          }
        >
          <label>
            Mail me a link at
            <input
              name="address"
              type="email"
              autoComplete="email"
              value={address}
              onChange={(e) => setAddress(e.target.value)}
              required
            />
          </label>
          <button type="submit" disabled={busy}>
            Send the link
          </button>
        </form>
      )}
    </main>
  );
}
