// Users (admins): add with a role (a generated password is shown once), change role, new password, remove.
import { useState, type FormEvent } from 'react';
import { api, ApiFailure } from '../api.ts';
import { useLoad, fmtTime } from '../load.ts';

const ROLES = ['admin', 'operator', 'analyst', 'helpdesk'] as const;

export function Users({ self }: { self: string }) {
  const list = useLoad<any>('/api/v1/users');
  const [name, setName] = useState('');
  const [role, setRole] = useState<string>('helpdesk');
  const [note, setNote] = useState<string | null>(null);
  const run = async (f: () => Promise<string>) => {
    try {
      setNote(await f());
      list.reload();
    } catch (e) {
      setNote(e instanceof ApiFailure ? `${e.message} (${e.code})` : String(e));
    }
  };
  const add = (e: FormEvent) => {
    e.preventDefault();
    void run(async () => {
      const r = await api<any>('POST', '/api/v1/users', { name, role });
      setName('');
      return `added ${r.user.name} (${r.user.role}); password, shown once: ${r.password}`;
    });
  };
  return (
    <>
      <form className="inline" onSubmit={add} aria-label="Add a user">
        <label>
          Name
          <input name="name" value={name} onChange={(e) => setName(e.target.value)} required />
        </label>
        <label>
          Role
          <select name="role" value={role} onChange={(e) => setRole(e.target.value)}>
            {ROLES.map((r) => (
              <option key={r}>{r}</option>
            ))}
          </select>
        </label>
        <button type="submit">Add user</button>
      </form>
      {note && <p role="status">{note}</p>}
      {list.error && <p className="error">{list.error}</p>}
      <table>
        <thead>
          <tr>
            <th>User</th>
            <th>Role</th>
            <th>Last sign-in</th>
            <th>Locked until</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(list.data?.users ?? []).map((u: any) => (
            <tr key={u.name}>
              <td>{u.name}</td>
              <td>
                <select
                  aria-label={`role of ${u.name}`}
                  value={u.role}
                  onChange={(e) =>
                    run(async () => {
                      await api('PATCH', `/api/v1/users/${encodeURIComponent(u.name)}`, { role: e.target.value });
                      return `${u.name} is now ${e.target.value}`;
                    })
                  }
                >
                  {ROLES.map((r) => (
                    <option key={r}>{r}</option>
                  ))}
                </select>
              </td>
              <td>{fmtTime(u.lastLogin)}</td>
              <td>{u.lockedUntil ? fmtTime(u.lockedUntil) : '–'}</td>
              <td>
                <button
                  type="button"
                  onClick={() =>
                    run(async () => {
                      // 15 random bytes, base64url: 20 characters, as the server generates them
                      const pw = crypto.getRandomValues(new Uint8Array(15));
                      const text = btoa(String.fromCharCode(...pw))
                        .replace(/\+/g, '-')
                        .replace(/\//g, '_');
                      await api('PATCH', `/api/v1/users/${encodeURIComponent(u.name)}`, { password: text });
                      return `new password for ${u.name}, shown once: ${text}`;
                    })
                  }
                >
                  New password
                </button>
                {u.name !== self && (
                  <button
                    type="button"
                    onClick={() =>
                      confirm(`Remove ${u.name}?`) &&
                      run(async () => {
                        await api('DELETE', `/api/v1/users/${encodeURIComponent(u.name)}`);
                        return `removed ${u.name}`;
                      })
                    }
                  >
                    Remove
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
