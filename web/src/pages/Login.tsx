import { useState, type FormEvent } from 'react';
import { api, ApiFailure, type Session } from '../api.ts';

export function Login({ onSignedIn }: { onSignedIn: (s: Session) => void }) {
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      onSignedIn(await api<Session>('POST', '/api/v1/session', { name, password }));
    } catch (err) {
      setError(err instanceof ApiFailure ? err.message : 'the gateway did not answer');
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="login" onSubmit={submit} aria-label="Sign in">
      <h1>Breakwater</h1>
      <label>
        User name
        <input
          name="name"
          autoComplete="username"
          value={name}
          onChange={(e) => setName(e.target.value)}
          required
          autoFocus
        />
      </label>
      <label>
        Password
        <input
          name="password"
          type="password"
          autoComplete="current-password"
          value={password}
          onChange={(e) => setPassword(e.target.value)}
          required
        />
      </label>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      <button type="submit" disabled={busy}>
        Sign in
      </button>
    </form>
  );
}
