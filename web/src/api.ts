// Calls to the admin API with the session cookie (same origin) and, on changes, the session's CSRF token.
// Errors carry the API's stable code; a 401 means the session ended.
export interface Session {
  user: string;
  role: 'admin' | 'operator' | 'analyst' | 'helpdesk';
  via: string;
  csrfToken: string | null;
  expiresAt: string | null;
  /** which product answered: the app shows a gateway's pages or the hub's */
  product: 'gateway' | 'hub';
}

export class ApiFailure extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let csrf: string | null = null;
let onSignedOut: () => void = () => {};

export function setSession(s: Session | null): void {
  csrf = s?.csrfToken ?? null;
}

/** The end-user quarantine's session has a CSRF token of its own. */
export function setCsrf(token: string | null): void {
  csrf = token;
}

export function whenSignedOut(fn: () => void): void {
  onSignedOut = fn;
}

export async function api<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['x-csrf-token'] = csrf;
  const res = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const json = text ? JSON.parse(text) : null;
  if (!res.ok) {
    const e = json?.error ?? { code: 'http_' + res.status, message: res.statusText };
    if (res.status === 401 && !/^\/api\/v1\/(enduser\/)?session$/.test(path)) onSignedOut();
    throw new ApiFailure(res.status, e.code, e.message);
  }
  return json as T;
}

/** Query string from the set fields of an object. */
export function query(o: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(o)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}
