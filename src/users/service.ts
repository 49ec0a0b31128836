// Users of the admin API and web UI (DESIGN §9): accounts with a role and an argon2id password,
// sessions for browser login (the id in an HttpOnly cookie, a CSRF token per session), personal API
// tokens carrying the user's role, and lockout after repeated failed logins. Kept in the gateway's
// database: account changes and sign-ins are written on the reading connection (rare, and read back at
// once by the next request); last-use times go through the store's group commit (every minute of use).
// Session ids and API tokens are stored as SHA-256 hashes: a copy of the database logs nobody in.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { DatabaseSync } from 'node:sqlite';
import type { UserStore } from './store.ts';
import { hashPassword, verifyPassword } from './passwords.ts';
import { isRole, type Role } from './roles.ts';

const SCHEMA = `
create table if not exists users (
  name text primary key,
  role text not null,
  password_hash text not null,
  created_at integer not null,
  updated_at integer not null,
  failed_logins integer not null default 0,
  locked_until integer,
  last_login integer
);
create table if not exists user_sessions (
  id_hash text primary key,
  user text not null,
  csrf text not null,
  created_at integer not null,
  last_seen integer not null,
  ip text not null
);
create index if not exists user_sessions_user on user_sessions(user);
create table if not exists user_tokens (
  id text primary key,
  token_hash text not null unique,
  user text not null,
  label text not null,
  created_at integer not null,
  last_used integer,
  expires_at integer
);
`;

export interface UserInfo {
  name: string;
  role: Role;
  createdAt: string;
  updatedAt: string;
  lastLogin: string | null;
  lockedUntil: string | null;
}

export interface SessionInfo {
  user: string;
  role: Role;
  csrfToken: string;
  createdAt: string;
  expiresAt: string;
}

export interface TokenInfo {
  id: string;
  user: string;
  label: string;
  createdAt: string;
  lastUsed: string | null;
  expiresAt: string | null;
}

export interface UserPolicy {
  /** a session unused this long ends (ms) */
  idleTimeoutMs: number;
  /** a session ends this long after login, used or not (ms) */
  maxAgeMs: number;
  /** failed logins in a row before the account locks */
  maxFailures: number;
  /** how long a locked account stays locked (ms) */
  lockoutMs: number;
}

/** A refusal with a stable code (the API maps it to its error answer). */
export class UserError extends Error {
  readonly code:
    | 'user_exists'
    | 'user_not_found'
    | 'invalid_role'
    | 'weak_password'
    | 'invalid_name'
    | 'invalid_credentials'
    | 'account_locked'
    | 'last_admin'
    | 'token_not_found';
  constructor(code: UserError['code'], message: string) {
    super(message);
    this.code = code;
  }
}

const NAME = /^[a-z0-9][a-z0-9._@-]{0,63}$/;
const MIN_PASSWORD = 10;
const MAX_PASSWORD = 1024;
/** a session's last-seen time is written at most this often */
const TOUCH_EVERY_MS = 60_000;

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');
const iso = (ms: number | null | undefined): string | null => (ms ? new Date(ms).toISOString() : null);

interface UserRow {
  name: string;
  role: string;
  password_hash: string;
  created_at: number;
  updated_at: number;
  failed_logins: number;
  locked_until: number | null;
  last_login: number | null;
}

/** A password a person can type and no one can guess: 20 characters of base64url (120 bits). */
export function generatePassword(): string {
  return randomBytes(15).toString('base64url');
}

export class UserService {
  private readonly store: UserStore;
  private readonly db: DatabaseSync;
  private readonly policy: UserPolicy;
  /** a verification against a hash of nothing, so an unknown name takes as long as a wrong password */
  private dummyHash: Promise<string> | null = null;

  constructor(store: UserStore, policy: UserPolicy) {
    this.store = store;
    this.db = store.db;
    this.policy = policy;
    this.db.exec(SCHEMA);
  }

  // ---- accounts ----

  count(): number {
    return (this.db.prepare('select count(*) n from users').get() as { n: number }).n;
  }

  list(): UserInfo[] {
    return (this.db.prepare('select * from users order by name').all() as unknown as UserRow[]).map(info);
  }

  get(name: string): UserInfo | null {
    const r = this.row(name);
    return r ? info(r) : null;
  }

  async add(name: string, role: string, password: string): Promise<UserInfo> {
    const n = checkName(name);
    if (!isRole(role)) throw new UserError('invalid_role', `role must be one of admin, operator, analyst, helpdesk`);
    checkPassword(password);
    if (this.row(n)) throw new UserError('user_exists', `user ${n} exists`);
    const now = Date.now();
    const hash = await hashPassword(password);
    try {
      this.db
        .prepare('insert into users(name, role, password_hash, created_at, updated_at) values (?, ?, ?, ?, ?)')
        .run(n, role, hash, now, now);
    } catch {
      throw new UserError('user_exists', `user ${n} exists`);
    }
    return this.get(n)!;
  }

  /** Changes a role; the last admin cannot stop being one. */
  setRole(name: string, role: string): UserInfo {
    const r = this.mustRow(name);
    if (!isRole(role)) throw new UserError('invalid_role', `role must be one of admin, operator, analyst, helpdesk`);
    if (r.role === 'admin' && role !== 'admin' && this.admins() === 1)
      throw new UserError('last_admin', `${r.name} is the last admin: make another user admin first`);
    this.db.prepare('update users set role = ?, updated_at = ? where name = ?').run(role, Date.now(), r.name);
    return this.get(r.name)!;
  }

  /** A new password ends the user's sessions and lifts a lockout. */
  async setPassword(name: string, password: string): Promise<UserInfo> {
    const r = this.mustRow(name);
    checkPassword(password);
    const hash = await hashPassword(password);
    this.db
      .prepare(
        'update users set password_hash = ?, updated_at = ?, failed_logins = 0, locked_until = null where name = ?',
      )
      .run(hash, Date.now(), r.name);
    this.db.prepare('delete from user_sessions where user = ?').run(r.name);
    return this.get(r.name)!;
  }

  /** Removes a user with their sessions and tokens; the last admin stays. */
  remove(name: string): void {
    const r = this.mustRow(name);
    if (r.role === 'admin' && this.admins() === 1)
      throw new UserError('last_admin', `${r.name} is the last admin: make another user admin first`);
    this.db.prepare('delete from user_sessions where user = ?').run(r.name);
    this.db.prepare('delete from user_tokens where user = ?').run(r.name);
    this.db.prepare('delete from users where name = ?').run(r.name);
  }

  /** The first admin, at first start: null when users exist already. */
  async ensureFirstAdmin(): Promise<{ name: string; password: string } | null> {
    if (this.count() > 0) return null;
    const password = generatePassword();
    await this.add('admin', 'admin', password);
    return { name: 'admin', password };
  }

  // ---- login and sessions ----

  /**
   * Checks a password. A wrong one counts towards the lockout; at maxFailures in a row the account
   * locks for the lockout time (a correct password does not open it early). Unknown names take as long
   * as wrong passwords and say the same.
   */
  async login(name: string, password: string, ip: string): Promise<{ sessionId: string; session: SessionInfo }> {
    const n = String(name ?? '')
      .trim()
      .toLowerCase();
    const r = NAME.test(n) ? this.row(n) : undefined;
    const now = Date.now();
    if (r?.locked_until && r.locked_until > now) throw lockedError(r.locked_until, now);
    const ok = r
      ? await verifyPassword(r.password_hash, String(password ?? ''))
      : (await verifyPassword(await this.dummy(), String(password ?? '')), false);
    if (!r || !ok) {
      if (r) {
        const failures = r.failed_logins + 1;
        const lock = failures >= this.policy.maxFailures ? now + this.policy.lockoutMs : null;
        this.db
          .prepare('update users set failed_logins = ?, locked_until = ? where name = ?')
          .run(lock ? 0 : failures, lock, r.name);
        if (lock) throw lockedError(lock, now);
      }
      throw new UserError('invalid_credentials', 'wrong user name or password');
    }
    this.db
      .prepare('update users set failed_logins = 0, locked_until = null, last_login = ? where name = ?')
      .run(now, r.name);
    const sessionId = randomBytes(32).toString('base64url');
    const csrf = randomBytes(24).toString('base64url');
    this.db
      .prepare('insert into user_sessions(id_hash, user, csrf, created_at, last_seen, ip) values (?, ?, ?, ?, ?, ?)')
      .run(sha256(sessionId), r.name, csrf, now, now, ip.slice(0, 100));
    this.db
      .prepare('delete from user_sessions where created_at < ? or last_seen < ?')
      .run(now - this.policy.maxAgeMs, now - this.policy.idleTimeoutMs);
    return { sessionId, session: this.sessionInfo(r, csrf, now, now) };
  }

  /** Whether a password is the user's (no lockout bookkeeping: for changing one's own password). */
  async verify(name: string, password: string): Promise<boolean> {
    const r = this.row(name);
    return r ? verifyPassword(r.password_hash, password) : false;
  }

  /** The session of a cookie; null when unknown or expired (idle or past its maximum age). */
  session(sessionId: string): SessionInfo | null {
    if (typeof sessionId !== 'string' || sessionId.length < 20 || sessionId.length > 100) return null;
    const s = this.db
      .prepare(
        'select s.id_hash, s.csrf, s.created_at, s.last_seen, u.* from user_sessions s join users u on u.name = s.user where s.id_hash = ?',
      )
      .get(sha256(sessionId)) as (UserRow & { id_hash: string; csrf: string; last_seen: number }) | undefined;
    if (!s || !isRole(s.role)) return null;
    const now = Date.now();
    if (now - s.created_at > this.policy.maxAgeMs || now - s.last_seen > this.policy.idleTimeoutMs) {
      this.db.prepare('delete from user_sessions where id_hash = ?').run(s.id_hash);
      return null;
    }
    if (now - s.last_seen > TOUCH_EVERY_MS)
      this.store.run('update user_sessions set last_seen = ? where id_hash = ?', now, s.id_hash);
    return this.sessionInfo(s, s.csrf, s.created_at, Math.max(now, s.last_seen));
  }

  logout(sessionId: string): void {
    this.db.prepare('delete from user_sessions where id_hash = ?').run(sha256(sessionId));
  }

  /** Whether a request's CSRF token is its session's (constant time). */
  csrfMatches(session: SessionInfo, token: string | undefined): boolean {
    if (typeof token !== 'string') return false;
    const a = Buffer.from(session.csrfToken);
    const b = Buffer.from(token);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  // ---- personal API tokens ----

  /** A new token for a user, shown once; it carries the user's role (as it is when used). */
  createToken(name: string, label: string, expiresAt: number | null): { token: string; info: TokenInfo } {
    const r = this.mustRow(name);
    const id = randomBytes(6).toString('hex');
    const token = `bwt_${randomBytes(32).toString('base64url')}`;
    const now = Date.now();
    this.db
      .prepare('insert into user_tokens(id, token_hash, user, label, created_at, expires_at) values (?, ?, ?, ?, ?, ?)')
      .run(id, sha256(token), r.name, label.slice(0, 100), now, expiresAt);
    return { token, info: this.tokenInfo(id)! };
  }

  tokens(name?: string): TokenInfo[] {
    const rows = this.db
      .prepare('select id from user_tokens where (?1 is null or user = ?1) order by created_at')
      .all(name ?? null) as Array<{ id: string }>;
    return rows.map((r) => this.tokenInfo(r.id)!);
  }

  revokeToken(id: string): void {
    const r = this.db.prepare('delete from user_tokens where id = ?').run(id);
    if (Number(r.changes) !== 1) throw new UserError('token_not_found', `no token ${id}`);
  }

  /** The user a bearer token belongs to; null for an unknown, expired or orphaned token. */
  authenticateToken(token: string): { user: string; role: Role; tokenId: string } | null {
    if (typeof token !== 'string' || !token.startsWith('bwt_') || token.length > 100) return null;
    const t = this.db
      .prepare(
        'select t.id, t.expires_at, t.last_used, u.name, u.role from user_tokens t join users u on u.name = t.user where t.token_hash = ?',
      )
      .get(sha256(token)) as
      { id: string; expires_at: number | null; last_used: number | null; name: string; role: string } | undefined;
    const now = Date.now();
    if (!t || !isRole(t.role) || (t.expires_at !== null && t.expires_at <= now)) return null;
    if (!t.last_used || now - t.last_used > TOUCH_EVERY_MS)
      this.store.run('update user_tokens set last_used = ? where id = ?', now, t.id);
    return { user: t.name, role: t.role, tokenId: t.id };
  }

  // ---- helpers ----

  private dummy(): Promise<string> {
    this.dummyHash ??= hashPassword(generatePassword());
    return this.dummyHash;
  }

  private admins(): number {
    return (this.db.prepare("select count(*) n from users where role = 'admin'").get() as { n: number }).n;
  }

  private row(name: string): UserRow | undefined {
    return this.db.prepare('select * from users where name = ?').get(String(name).toLowerCase()) as UserRow | undefined;
  }

  private mustRow(name: string): UserRow {
    const r = this.row(name);
    if (!r) throw new UserError('user_not_found', `no user ${name}`);
    return r;
  }

  private sessionInfo(u: UserRow, csrf: string, createdAt: number, lastSeen: number): SessionInfo {
    return {
      user: u.name,
      role: u.role as Role,
      csrfToken: csrf,
      createdAt: new Date(createdAt).toISOString(),
      expiresAt: new Date(
        Math.min(createdAt + this.policy.maxAgeMs, lastSeen + this.policy.idleTimeoutMs),
      ).toISOString(),
    };
  }

  private tokenInfo(id: string): TokenInfo | null {
    const t = this.db.prepare('select * from user_tokens where id = ?').get(id) as
      | {
          id: string;
          user: string;
          label: string;
          created_at: number;
          last_used: number | null;
          expires_at: number | null;
        }
      | undefined;
    return t
      ? {
          id: t.id,
          user: t.user,
          label: t.label,
          createdAt: iso(t.created_at)!,
          lastUsed: iso(t.last_used),
          expiresAt: iso(t.expires_at),
        }
      : null;
  }
}

function info(r: UserRow): UserInfo {
  return {
    name: r.name,
    role: r.role as Role,
    createdAt: iso(r.created_at)!,
    updatedAt: iso(r.updated_at)!,
    lastLogin: iso(r.last_login),
    lockedUntil: r.locked_until && r.locked_until > Date.now() ? iso(r.locked_until) : null,
  };
}

function checkName(name: string): string {
  const n = String(name ?? '')
    .trim()
    .toLowerCase();
  if (!NAME.test(n))
    throw new UserError(
      'invalid_name',
      'a user name is 1–64 characters: lower-case letters, digits, ".", "_", "@", "-", starting with a letter or digit',
    );
  return n;
}

function checkPassword(password: string): void {
  if (typeof password !== 'string' || password.length < MIN_PASSWORD || password.length > MAX_PASSWORD)
    throw new UserError('weak_password', `a password has ${MIN_PASSWORD} to ${MAX_PASSWORD} characters`);
}

function lockedError(until: number, now: number): UserError {
  const minutes = Math.max(1, Math.ceil((until - now) / 60_000));
  return new UserError(
    'account_locked',
    `too many failed logins: the account is locked until ${new Date(until).toISOString()} (${minutes} minute${minutes === 1 ? '' : 's'}); an admin can lift it by setting a new password`,
  );
}
