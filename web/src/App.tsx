// The shell: sign-in, then a navigation by role and one page at a time (the page is the URL's hash, so
// links and the back button work without the server knowing the routes).
import { useCallback, useEffect, useState } from 'react';
import { api, setSession, whenSignedOut, type Session } from './api.ts';
import { pagesFor, TITLES, type Page } from './roles.ts';
import { ErrorBoundary } from './ErrorBoundary.tsx';
import { setHubUrl } from './hub-link.ts';
import { Login } from './pages/Login.tsx';
import { Dashboard } from './pages/Dashboard.tsx';
import { Tracking } from './pages/Tracking.tsx';
import { Quarantines } from './pages/Quarantines.tsx';
import { Outbreak } from './pages/Outbreak.tsx';
import { Alerts } from './pages/Alerts.tsx';
import { Users } from './pages/Users.tsx';
import { Settings } from './pages/Settings.tsx';
import { Reports } from './pages/Reports.tsx';
import { Audit } from './pages/Audit.tsx';
import { MyQuarantine } from './pages/MyQuarantine.tsx';
import { Cloud } from './pages/Cloud.tsx';
import { Devices } from './pages/hub/Devices.tsx';
import { Investigate } from './pages/hub/Investigate.tsx';
import { Casebooks } from './pages/hub/Casebooks.tsx';
import { Watchlist } from './pages/hub/Watchlist.tsx';
import { HubReports } from './pages/hub/HubReports.tsx';
import { Search } from './pages/hub/Search.tsx';
import { Actions } from './pages/hub/Actions.tsx';
import { BlockList } from './pages/hub/BlockList.tsx';
import { Rules } from './pages/hub/Rules.tsx';
import { Tokens } from './pages/hub/Tokens.tsx';

function pageFromHash(pages: Page[]): { page: Page; arg: string | null } {
  const [name, arg] = location.hash.replace(/^#\/?/, '').split('?')[0].split('/');
  const page = (pages as string[]).includes(name) ? (name as Page) : pages[0];
  return { page, arg: arg ? decodeURIComponent(arg) : null };
}

/** Recipients' own page (digest links open it): no administrator session, a shell of its own. */
export function App() {
  return location.hash.startsWith('#/my-quarantine') ? <MyQuarantine /> : <AdminApp />;
}

function AdminApp() {
  const [session, setS] = useState<Session | null | undefined>(undefined);
  const [hash, setHash] = useState(location.hash);

  const signedIn = useCallback((s: Session | null) => {
    setSession(s);
    setS(s);
    // on a registered gateway, observables pivot to the hub's search too
    if (s && s.product === 'gateway' && s.role !== 'helpdesk')
      api<{ status: string; hubUrl: string | null }>('GET', '/api/v1/cloud').then(
        (c) => setHubUrl(c.status === 'registered' ? c.hubUrl : null),
        () => setHubUrl(null),
      );
  }, []);

  useEffect(() => {
    whenSignedOut(() => signedIn(null));
    // answers signedIn: false rather than 401 when there is no session
    api<Session & { signedIn: boolean }>('GET', '/api/v1/session').then(
      (s) => signedIn(s.signedIn ? s : null),
      () => signedIn(null),
    );
    const update = () => setHash(location.hash);
    window.addEventListener('hashchange', update);
    return () => window.removeEventListener('hashchange', update);
  }, [signedIn]);

  if (session === undefined) return <p className="loading">Loading…</p>;
  if (session === null) return <Login onSignedIn={signedIn} />;

  const pages = pagesFor(session.role, session.product);
  // the page is derived from the hash for this role: a role never renders (and loads) a page it lacks
  const route = pageFromHash(pages);
  const signOut = async () => {
    await api('DELETE', '/api/v1/session').catch(() => {});
    signedIn(null);
  };
  return (
    <div className="shell">
      <header>
        <span className="brand">Breakwater{session.product === 'hub' ? ' hub' : ''}</span>
        <nav aria-label="Pages">
          {pages.map((p) => (
            <a key={p} href={`#/${p}`} aria-current={route.page === p ? 'page' : undefined}>
              {TITLES[p]}
            </a>
          ))}
        </nav>
        <span className="who">
          {session.user} ({session.role})
          <button type="button" onClick={signOut}>
            Sign out
          </button>
        </span>
      </header>
      <main>
        {!route.page && <p>The {session.role} role has nothing to see here.</p>}
        {route.page && <h1>{TITLES[route.page]}</h1>}
        <ErrorBoundary key={hash}>
          {route.page === 'dashboard' && <Dashboard />}
          {route.page === 'tracking' && <Tracking key={hash} mid={route.arg} />}
          {route.page === 'quarantines' && <Quarantines session={session} name={route.arg} />}
          {route.page === 'outbreak' && <Outbreak role={session.role} />}
          {route.page === 'reports' && <Reports />}
          {route.page === 'alerts' && <Alerts />}
          {route.page === 'settings' && <Settings />}
          {route.page === 'users' && <Users self={session.user} />}
          {route.page === 'audit' && <Audit />}
          {route.page === 'cloud' && <Cloud role={session.role} />}
          {route.page === 'investigate' && <Investigate />}
          {route.page === 'casebooks' && <Casebooks id={route.arg} />}
          {route.page === 'watchlist' && <Watchlist session={session} />}
          {route.page === 'hubreports' && <HubReports />}
          {route.page === 'devices' && <Devices session={session} />}
          {route.page === 'search' && <Search key={hash} />}
          {route.page === 'actions' && <Actions session={session} />}
          {route.page === 'blocklist' && <BlockList session={session} />}
          {route.page === 'rules' && <Rules session={session} />}
          {route.page === 'tokens' && <Tokens />}
        </ErrorBoundary>
      </main>
    </div>
  );
}
