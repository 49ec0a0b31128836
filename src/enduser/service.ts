// The end-user quarantine (DESIGN §9, issue 13): a recipient sees their own incoming held messages in
// the policy quarantines an administrator opened to them (`quarantine.policy[].endUsers`), never the
// virus or Outbreak quarantine and never a message also held in one of those (or in any quarantine
// closed to them); releases (where allowed),
// deletes, and allow-lists senders. Identity is a recipient address, proven by a signed link (digest or
// requested) or an IMAP sign-in; sessions are separate from administrators' (their own cookie and
// table) and carry no role. Every action is audited by the routes (src/api/enduser-routes.ts).
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import path from 'node:path';
import type { Config } from '../config/schema.ts';
import { parseDuration } from '../config/schema.ts';
import type { Store } from '../store/db.ts';
import { ensureSecretKey } from '../store/secret-key.ts';
import type { QuarantineEntry, QuarantineIndex } from '../quarantine/quarantine.ts';
import type { QuarantineService } from '../quarantine/service.ts';

const SCHEMA = `
create table if not exists enduser_sessions (
  id_hash text primary key,
  address text not null,
  csrf text not null,
  via text not null,
  created_at integer not null,
  last_seen integer not null
);
create table if not exists enduser_senders (
  recipient text not null,
  sender text not null,
  created_at integer not null,
  primary key (recipient, sender)
) without rowid;
create table if not exists enduser_digests (
  address text primary key,
  sent_at integer not null
) without rowid;
`;

/** However often it is used, an end-user session ends this long after sign-in. */
const SESSION_MAX_AGE_MS = 12 * 3_600_000;
const LINK_CONTEXT = 'breakwater-enduser-v1\0';
const ADDRESS = /^[^\s@<>"]{1,64}@[A-Za-z0-9.-]{1,190}$/;

export type EndUserAccess = 'view' | 'release';

export interface EndUserSession {
  address: string;
  csrfToken: string;
  via: 'link' | 'imap';
  createdAt: string;
  expiresAt: string;
}

export interface EndUserMessage {
  mid: number;
  quarantine: string;
  sender: string;
  subject: string | null;
  receivedAt: number;
  /** when it was held (digests list what was held since the last one) */
  enteredAt: number;
  exitAt: number;
  size: number;
  reason: string;
  canRelease: boolean;
}

/** A normalised address, or null when it is not one. */
export function endUserAddress(s: unknown): string | null {
  const a = String(s ?? '')
    .trim()
    .toLowerCase();
  return ADDRESS.test(a) ? a : null;
}

export class EndUserService {
  private readonly store: Store;
  private readonly config: Config;
  private readonly index: QuarantineIndex;
  private readonly quarantines: QuarantineService;
  private readonly key: Buffer;
  /** recipient → senders they allow-listed: read on every scanned message, so kept in memory */
  private readonly allowLists = new Map<string, Set<string>>();

  constructor(deps: {
    config: Config;
    dataDir: string;
    store: Store;
    index: QuarantineIndex;
    quarantines: QuarantineService;
  }) {
    this.store = deps.store;
    this.config = deps.config;
    this.index = deps.index;
    this.quarantines = deps.quarantines;
    this.store.db.exec(SCHEMA);
    this.key = ensureSecretKey(path.join(deps.dataDir, 'enduser.key'));
    for (const r of this.store.db.prepare('select recipient, sender from enduser_senders').all() as Array<{
      recipient: string;
      sender: string;
    }>)
      this.allowListOf(r.recipient, true).add(r.sender);
  }

  get enabled(): boolean {
    return this.config.endUserQuarantine.enabled;
  }

  /** What end users may do in a quarantine; null: it is not theirs to see. */
  access(quarantine: string): EndUserAccess | null {
    const q = this.config.quarantine.policy.find((p) => p.name === quarantine);
    return q && q.endUsers !== 'none' ? q.endUsers : null;
  }

  /** Quarantines open to end users. */
  openQuarantines(): string[] {
    return this.config.quarantine.policy.filter((p) => p.endUsers !== 'none').map((p) => p.name);
  }

  // ---- links ---------------------------------------------------------------------------------------

  /** A signed link token: the address and an expiry (unix seconds), HMAC-SHA256 with dataDir/enduser.key. */
  signLink(
    address: string,
    expiresAt = Date.now() + parseDuration(this.config.endUserQuarantine.linkLifetime),
  ): string {
    const body = Buffer.from(JSON.stringify({ a: address, e: Math.floor(expiresAt / 1000) })).toString('base64url');
    return `${body}.${this.tag(body)}`;
  }

  /** The address a link token signs in, or why not. */
  verifyLink(token: string): { address: string } | { error: 'invalid_link' | 'expired_link' } {
    const m = /^([A-Za-z0-9_-]{1,800})\.([A-Za-z0-9_-]{43})$/.exec(token);
    if (!m) return { error: 'invalid_link' };
    const want = Buffer.from(this.tag(m[1]), 'base64url');
    const got = Buffer.from(m[2], 'base64url');
    if (got.length !== want.length || !timingSafeEqual(got, want)) return { error: 'invalid_link' };
    let body: { a?: unknown; e?: unknown };
    try {
      body = JSON.parse(Buffer.from(m[1], 'base64url').toString('utf8')) as typeof body;
    } catch {
      return { error: 'invalid_link' };
    }
    const address = endUserAddress(body.a);
    if (!address || typeof body.e !== 'number') return { error: 'invalid_link' };
    if (body.e * 1000 < Date.now()) return { error: 'expired_link' };
    return { address };
  }

  private tag(body: string): string {
    return createHmac('sha256', this.key)
      .update(LINK_CONTEXT + body)
      .digest('base64url');
  }

  /** The web UI address a link opens (the end-user page reads the token from the fragment, never sent). */
  linkUrl(baseUrl: string, token: string, mid?: number): string {
    return `${baseUrl.replace(/\/+$/, '')}/ui/#/my-quarantine?t=${token}${mid ? `&mid=${mid}` : ''}`;
  }

  // ---- sessions ------------------------------------------------------------------------------------

  async startSession(address: string, via: 'link' | 'imap'): Promise<{ sessionId: string; session: EndUserSession }> {
    const sessionId = randomBytes(32).toString('base64url');
    const csrf = randomBytes(24).toString('base64url');
    const now = Date.now();
    this.store.run(
      'insert into enduser_sessions(id_hash, address, csrf, via, created_at, last_seen) values (?, ?, ?, ?, ?, ?)',
      hash(sessionId),
      address,
      csrf,
      via,
      now,
      now,
    );
    // expired sessions go with each new one
    this.store.run(
      'delete from enduser_sessions where last_seen < ? or created_at < ?',
      now - this.idleMs(),
      now - SESSION_MAX_AGE_MS,
    );
    // the next request (on the reading connection) must find it
    await this.store.committed();
    return { sessionId, session: this.sessionInfo(address, csrf, via, now) };
  }

  session(sessionId: string): EndUserSession | null {
    const r = this.store
      .stmt('select address, csrf, via, created_at, last_seen from enduser_sessions where id_hash = ?')
      .get(hash(sessionId)) as
      { address: string; csrf: string; via: 'link' | 'imap'; created_at: number; last_seen: number } | undefined;
    const now = Date.now();
    if (!r || now - r.last_seen > this.idleMs() || now - r.created_at > SESSION_MAX_AGE_MS) return null;
    if (now - r.last_seen > 60_000)
      this.store.run('update enduser_sessions set last_seen = ? where id_hash = ?', now, hash(sessionId));
    return this.sessionInfo(r.address, r.csrf, r.via, r.created_at);
  }

  async endSession(sessionId: string): Promise<void> {
    this.store.run('delete from enduser_sessions where id_hash = ?', hash(sessionId));
    await this.store.committed();
  }

  csrfMatches(session: EndUserSession, token: string | undefined): boolean {
    if (!token) return false;
    const a = Buffer.from(session.csrfToken);
    const b = Buffer.from(token);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  private idleMs(): number {
    return parseDuration(this.config.endUserQuarantine.sessionTimeout);
  }

  private sessionInfo(address: string, csrf: string, via: 'link' | 'imap', createdAt: number): EndUserSession {
    return {
      address,
      csrfToken: csrf,
      via,
      createdAt: new Date(createdAt).toISOString(),
      expiresAt: new Date(createdAt + SESSION_MAX_AGE_MS).toISOString(),
    };
  }

  // ---- held messages -------------------------------------------------------------------------------

  /**
   * A recipient's held messages, oldest first: incoming, in quarantines open to end users, not viral,
   * and held nowhere else (a message also in the virus or Outbreak quarantine is the administrators').
   */
  async messages(address: string, since?: number): Promise<EndUserMessage[]> {
    const open = new Set(this.openQuarantines());
    if (!open.size) return [];
    await this.store.committed();
    return this.index
      .list({ recipient: address, limit: 10_000, ...(since !== undefined ? { since } : {}) })
      .filter((e) => this.visible(e, open))
      .map((e) => ({
        mid: e.mid,
        quarantine: e.quarantine,
        sender: e.sender,
        subject: e.subject,
        receivedAt: e.copy.env.receivedAt,
        enteredAt: e.enteredAt,
        exitAt: e.exitAt,
        size: e.size,
        reason: e.reason,
        canRelease: this.access(e.quarantine) === 'release',
      }));
  }

  /** One of the recipient's held messages, or null (not held, not theirs, not open to them). */
  async held(address: string, quarantine: string, mid: number): Promise<QuarantineEntry | null> {
    await this.store.committed();
    const e = this.index.get(mid, quarantine);
    if (!e || !this.visible(e, new Set(this.openQuarantines()))) return null;
    return e.copy.recipients.some((r) => r.address.toLowerCase() === address) ? e : null;
  }

  private visible(e: QuarantineEntry, open: Set<string>): boolean {
    return (
      open.has(e.quarantine) &&
      e.copy.env.direction === 'incoming' &&
      this.index.memberships(e.mid).every((q) => open.has(q))
    );
  }

  /** Release for this recipient alone (others still wait on it); null when not theirs or not allowed. */
  async release(
    address: string,
    quarantine: string,
    mid: number,
  ): Promise<{ mid: number } | 'not_found' | 'not_allowed' | 'busy'> {
    const e = await this.held(address, quarantine, mid);
    if (!e) return 'not_found';
    if (this.access(quarantine) !== 'release') return 'not_allowed';
    return (await this.quarantines.releaseFor(e, address, `enduser:${address}`)) || 'busy';
  }

  async delete(address: string, quarantine: string, mid: number): Promise<'deleted' | 'not_found' | 'busy'> {
    const e = await this.held(address, quarantine, mid);
    if (!e) return 'not_found';
    return (await this.quarantines.deleteFor(e, address, `enduser:${address}`)) ? 'deleted' : 'busy';
  }

  // ---- allow list ----------------------------------------------------------------------------------

  allowList(recipient: string): string[] {
    return [...(this.allowLists.get(recipient) ?? [])].sort();
  }

  async allowSender(recipient: string, sender: string): Promise<void> {
    this.allowListOf(recipient, true).add(sender);
    this.store.run(
      'insert or ignore into enduser_senders(recipient, sender, created_at) values (?, ?, ?)',
      recipient,
      sender,
      Date.now(),
    );
    await this.store.committed();
  }

  async removeSender(recipient: string, sender: string): Promise<boolean> {
    const had = this.allowLists.get(recipient)?.delete(sender) ?? false;
    this.store.run('delete from enduser_senders where recipient = ? and sender = ?', recipient, sender);
    await this.store.committed();
    return had;
  }

  /**
   * The policy layer's question: did every recipient of this copy allow-list the sender (by address, or
   * by "@domain")? Only quarantines open to end users are skipped for it (policy/decide.ts).
   */
  allowListed(sender: string, recipients: readonly string[]): boolean {
    if (!this.enabled || !this.allowLists.size || !recipients.length) return false;
    const s = sender.toLowerCase();
    const domain = s.slice(s.lastIndexOf('@'));
    return recipients.every((r) => {
      const list = this.allowLists.get(r.toLowerCase());
      return !!list && (list.has(s) || list.has(domain));
    });
  }

  private allowListOf(recipient: string, create: boolean): Set<string> {
    let list = this.allowLists.get(recipient);
    if (!list && create) this.allowLists.set(recipient, (list = new Set()));
    return list ?? new Set();
  }

  // ---- digests -------------------------------------------------------------------------------------

  /** Recipients with messages held for them since their last digest, and those messages. */
  async digestsDue(max: number): Promise<Array<{ address: string; messages: EndUserMessage[]; total: number }>> {
    const open = this.openQuarantines();
    if (!open.length) return [];
    await this.store.committed();
    const last = new Map(
      (
        this.store.db.prepare('select address, sent_at from enduser_digests').all() as Array<{
          address: string;
          sent_at: number;
        }>
      ).map((r) => [r.address, r.sent_at]),
    );
    const addresses = this.store.db
      .prepare(
        `select distinct x.address from quarantine_recipients x where x.quarantine in (${open.map(() => '?').join(',')})`,
      )
      .all(...open) as Array<{ address: string }>;
    const due: Array<{ address: string; messages: EndUserMessage[]; total: number }> = [];
    for (const { address } of addresses) {
      const all = await this.messages(address);
      const since = last.get(address) ?? 0;
      const fresh = all.filter((m) => m.enteredAt >= since);
      if (fresh.length) due.push({ address, messages: fresh.slice(-max), total: all.length });
    }
    return due;
  }

  digestSent(address: string, at: number): void {
    this.store.run('insert or replace into enduser_digests(address, sent_at) values (?, ?)', address, at);
  }
}

function hash(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}
