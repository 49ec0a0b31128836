// Outbreak rules published by the hub (DESIGN §4.2, §11.5; issue 14): analysts draft rules, an operator
// publishes, edits (raising or lowering the level) or retires them; every publication is a new bundle
// version signed with the hub's Ed25519 key (dataDir/outbreak-rules.key, made at first start), in the format
// gateways already verify. Gateways learn the key at registration and hold a long poll open on their
// device channel: a publication answers it at once (push), and the poll's own cadence is the fallback.
// Lowering or retiring a rule publishes a bundle without it, and gateways release held mail early (§4.5).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { generateKeyPair, InvalidBundleError, publicKeyOf, signBundle } from '../outbreak/bundle.ts';
import { parseBundle, type Rule } from '../outbreak/rules.ts';
import type { HubStore } from './store.ts';

const SCHEMA = `
create table if not exists hub_rules (
  id text primary key,
  seq integer not null unique,
  level integer not null,
  category text not null,
  description text not null,
  condition text not null,
  status text not null,
  created_by text not null,
  created_at integer not null,
  published_by text,
  published_at integer,
  expires_at integer,
  updated_at integer not null
);
create table if not exists hub_bundles (
  version integer primary key,
  published_at integer not null,
  published_by text not null,
  rules integer not null,
  text text not null
);
`;

export const RULE_STATUSES = ['draft', 'published', 'retired', 'rejected'] as const;
export type HubRuleStatus = (typeof RULE_STATUSES)[number];

export interface HubRule {
  id: string;
  level: number;
  category: Rule['category'];
  description: string;
  condition: Rule['condition'];
  status: HubRuleStatus;
  createdBy: string;
  createdAt: string;
  publishedBy: string | null;
  publishedAt: string | null;
  expiresAt: string | null;
}

export interface PublishedBundle {
  version: number;
  publishedAt: string;
  publishedBy: string;
  rules: number;
}

interface Row {
  id: string;
  seq: number;
  level: number;
  category: Rule['category'];
  description: string;
  condition: string;
  status: HubRuleStatus;
  created_by: string;
  created_at: number;
  published_by: string | null;
  published_at: number | null;
  expires_at: number | null;
}

export class RuleError extends Error {
  readonly code: 'rule_not_found' | 'invalid_rule' | 'rule_not_draft';
  constructor(code: RuleError['code'], message: string) {
    super(message);
    this.code = code;
  }
}

export const RULES_KEY_FILE = 'outbreak-rules.key';

export class HubRules {
  private readonly store: HubStore;
  private readonly privateKey: string;
  readonly publicKey: string;
  /** gateways' long polls, answered by the next publication */
  private readonly waiters = new Set<(version: number) => void>();
  /** told the published rules after every publication (retro-remediation looks at them) */
  private readonly publishedListeners: Array<(rules: HubRule[]) => void> = [];

  constructor(store: HubStore, dataDir: string) {
    this.store = store;
    store.db.exec(SCHEMA);
    const file = path.join(dataDir, RULES_KEY_FILE);
    if (!existsSync(file)) writeFileSync(file, generateKeyPair().privateKey + '\n', { mode: 0o600, flag: 'wx' });
    this.privateKey = readFileSync(file, 'utf8').trim();
    this.publicKey = publicKeyOf(this.privateKey);
  }

  /** A new rule, as a draft: checked as gateways will check it (every error at once). */
  draft(
    input: {
      level: number;
      category: Rule['category'];
      description: string;
      condition: unknown;
      expires?: number | null;
    },
    by: string,
  ): HubRule {
    const now = Date.now();
    const seq = (this.store.stmt('select coalesce(max(seq), 0) + 1 n from hub_rules').get() as { n: number }).n;
    const id = `OUTBREAK_${String(seq).padStart(7, '0')}`;
    this.check({ id, ...input, published: new Date(now).toISOString() });
    this.store.run(
      `insert into hub_rules(id, seq, level, category, description, condition, status, created_by, created_at, expires_at, updated_at)
       values (?, ?, ?, ?, ?, ?, 'draft', ?, ?, ?, ?)`,
      id,
      seq,
      input.level,
      input.category,
      input.description,
      JSON.stringify(input.condition),
      by,
      now,
      input.expires ?? null,
      now,
    );
    return this.get(id)!;
  }

  /** Changes a rule; a published one is published again at once (a lowered level releases held mail). */
  edit(
    id: string,
    change: { level?: number; description?: string; condition?: unknown; expires?: number | null },
    by: string,
  ): { rule: HubRule; bundle: PublishedBundle | null } {
    const r = this.row(id);
    if (!r) throw new RuleError('rule_not_found', `no rule ${id}`);
    const next = {
      id,
      level: change.level ?? r.level,
      category: r.category,
      description: change.description ?? r.description,
      condition: change.condition ?? JSON.parse(r.condition),
      expires: change.expires === undefined ? r.expires_at : change.expires,
      published: new Date().toISOString(),
    };
    this.check(next);
    this.store.run(
      'update hub_rules set level = ?, description = ?, condition = ?, expires_at = ?, updated_at = ? where id = ?',
      next.level,
      next.description,
      JSON.stringify(next.condition),
      next.expires,
      Date.now(),
      id,
    );
    const bundle = r.status === 'published' ? this.publishBundle(by) : null;
    return { rule: this.get(id)!, bundle };
  }

  /** Publishes drafts (and every rule already published) as the next bundle version. */
  publish(ids: string[], by: string): { rules: HubRule[]; bundle: PublishedBundle } {
    for (const id of ids) {
      const r = this.row(id);
      if (!r) throw new RuleError('rule_not_found', `no rule ${id}`);
      if (r.status !== 'draft' && r.status !== 'published')
        throw new RuleError('rule_not_draft', `${id} is ${r.status}: only drafts are published`);
    }
    const now = Date.now();
    for (const id of ids)
      this.store.run(
        "update hub_rules set status = 'published', published_by = coalesce(published_by, ?), published_at = coalesce(published_at, ?), updated_at = ? where id = ?",
        by,
        now,
        now,
        id,
      );
    return { rules: ids.map((id) => this.get(id)!), bundle: this.publishBundle(by) };
  }

  /** Retires a published rule (gateways release what it held, §4.5) or rejects a draft. */
  retire(id: string, by: string): { rule: HubRule; bundle: PublishedBundle | null } {
    const r = this.row(id);
    if (!r) throw new RuleError('rule_not_found', `no rule ${id}`);
    const status = r.status === 'draft' ? 'rejected' : 'retired';
    this.store.run('update hub_rules set status = ?, updated_at = ? where id = ?', status, Date.now(), id);
    return { rule: this.get(id)!, bundle: r.status === 'published' ? this.publishBundle(by) : null };
  }

  list(status?: HubRuleStatus): HubRule[] {
    const rows = (status
      ? this.store.stmt('select * from hub_rules where status = ? order by seq desc').all(status)
      : this.store.stmt('select * from hub_rules order by seq desc').all()) as unknown as Row[];
    return rows.map(toRule);
  }

  get(id: string): HubRule | null {
    const r = this.row(id);
    return r ? toRule(r) : null;
  }

  /** The latest signed bundle: its version and text (what gateways fetch). */
  latest(): { version: number; text: string } | null {
    return (
      (this.store.stmt('select version, text from hub_bundles order by version desc limit 1').get() as
        { version: number; text: string } | undefined) ?? null
    );
  }

  bundles(limit = 50): PublishedBundle[] {
    return (
      this.store
        .stmt('select version, published_at, published_by, rules from hub_bundles order by version desc limit ?')
        .all(limit) as Array<{ version: number; published_at: number; published_by: string; rules: number }>
    ).map((b) => ({
      version: b.version,
      publishedAt: new Date(b.published_at).toISOString(),
      publishedBy: b.published_by,
      rules: b.rules,
    }));
  }

  /**
   * A gateway's long poll: answers at once when a version newer than `since` exists, else at the next
   * publication or after `waitMs` (whichever first), with the latest version.
   */
  waitForVersion(since: number, waitMs: number, signal: AbortSignal): Promise<number> {
    const now = this.latest()?.version ?? 0;
    if (now > since || waitMs <= 0) return Promise.resolve(now);
    return new Promise((resolve) => {
      const done = (v: number): void => {
        clearTimeout(timer);
        this.waiters.delete(done);
        signal.removeEventListener('abort', abort);
        resolve(v);
      };
      const abort = (): void => done(this.latest()?.version ?? 0);
      const timer = setTimeout(abort, waitMs);
      signal.addEventListener('abort', abort, { once: true });
      this.waiters.add(done);
    });
  }

  /** `fn` is told the published rules after each publication, once the bundle is stored (never throws here). */
  onPublished(fn: (rules: HubRule[]) => void): () => void {
    this.publishedListeners.push(fn);
    return () => {
      const i = this.publishedListeners.indexOf(fn);
      if (i >= 0) this.publishedListeners.splice(i, 1);
    };
  }

  /** Answers every open poll (the hub is stopping). */
  close(): void {
    const v = this.latest()?.version ?? 0;
    for (const w of [...this.waiters]) w(v);
  }

  private publishBundle(by: string): PublishedBundle {
    const now = Date.now();
    const version = (this.latest()?.version ?? 0) + 1;
    const published = new Date(now).toISOString();
    const rules = this.list('published')
      .filter((r) => !r.expiresAt || Date.parse(r.expiresAt) > now)
      .reverse()
      .map((r) => ({
        id: r.id,
        level: r.level,
        category: r.category,
        description: r.description,
        published: r.publishedAt ?? published,
        ...(r.expiresAt ? { expires: r.expiresAt } : {}),
        condition: r.condition,
      }));
    let text: string;
    try {
      text = JSON.stringify(signBundle({ version, published, publisher: 'Breakwater hub', rules }, this.privateKey));
    } catch (err) {
      if (err instanceof InvalidBundleError) throw new RuleError('invalid_rule', err.message);
      throw err;
    }
    this.store.run(
      'insert into hub_bundles(version, published_at, published_by, rules, text) values (?, ?, ?, ?, ?)',
      version,
      now,
      by,
      rules.length,
      text,
    );
    for (const w of [...this.waiters]) w(version);
    if (this.publishedListeners.length) {
      const current = this.list('published').filter((r) => !r.expiresAt || Date.parse(r.expiresAt) > now);
      for (const fn of this.publishedListeners) fn(current);
    }
    return { version, publishedAt: published, publishedBy: by, rules: rules.length };
  }

  private check(r: {
    id: string;
    level: number;
    category: string;
    description: string;
    condition: unknown;
    expires?: number | null;
    published: string;
  }): void {
    const rule = {
      id: r.id,
      level: r.level,
      category: r.category,
      description: r.description,
      published: r.published,
      ...(r.expires ? { expires: new Date(r.expires).toISOString() } : {}),
      condition: r.condition,
    };
    const parsed = parseBundle({ version: 1, published: r.published, rules: [rule] });
    if ('errors' in parsed)
      throw new RuleError('invalid_rule', parsed.errors.map((e) => e.replace(/^rules\[0\]\./, '')).join('; '));
  }

  private row(id: string): Row | undefined {
    return this.store.stmt('select * from hub_rules where id = ?').get(id) as unknown as Row | undefined;
  }
}

function toRule(r: Row): HubRule {
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  return {
    id: r.id,
    level: r.level,
    category: r.category,
    description: r.description,
    condition: JSON.parse(r.condition) as Rule['condition'],
    status: r.status,
    createdBy: r.created_by,
    createdAt: iso(r.created_at)!,
    publishedBy: r.published_by,
    publishedAt: iso(r.published_at),
    expiresAt: iso(r.expires_at),
  };
}
