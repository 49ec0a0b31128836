// Casebooks (DESIGN §11.4; issue 14): an investigation saved with its title, notes and observables, so an
// analyst can come back to it, hand it over, or share it as a STIX 2.1 bundle (src/hub/stix.ts). The
// findings themselves are not frozen: opening a casebook investigates its observables again, so it shows
// what every gateway has seen up to now.
import { randomUUID } from 'node:crypto';
import type { ParsedObservable } from './parse-observables.ts';
import type { HubStore } from './store.ts';

const SCHEMA = `
create table if not exists casebooks (
  id text primary key,
  title text not null,
  notes text not null,
  observables text not null,
  created_by text not null,
  created_at integer not null,
  updated_by text not null,
  updated_at integer not null
);
create index if not exists casebooks_updated on casebooks(updated_at);
`;

export interface Casebook {
  id: string;
  title: string;
  notes: string;
  observables: ParsedObservable[];
  createdBy: string;
  createdAt: string;
  updatedBy: string;
  updatedAt: string;
}

interface Row {
  id: string;
  title: string;
  notes: string;
  observables: string;
  created_by: string;
  created_at: number;
  updated_by: string;
  updated_at: number;
}

export class Casebooks {
  private readonly store: HubStore;

  constructor(store: HubStore) {
    this.store = store;
    store.db.exec(SCHEMA);
  }

  create(input: { title: string; notes: string; observables: ParsedObservable[] }, by: string): Casebook {
    const id = randomUUID();
    const now = Date.now();
    this.store.run(
      'insert into casebooks(id, title, notes, observables, created_by, created_at, updated_by, updated_at) values (?, ?, ?, ?, ?, ?, ?, ?)',
      id,
      input.title,
      input.notes,
      JSON.stringify(dedupe(input.observables)),
      by,
      now,
      by,
      now,
    );
    return this.get(id)!;
  }

  update(
    id: string,
    change: { title?: string; notes?: string; observables?: ParsedObservable[] },
    by: string,
  ): Casebook | null {
    const c = this.get(id);
    if (!c) return null;
    this.store.run(
      'update casebooks set title = ?, notes = ?, observables = ?, updated_by = ?, updated_at = ? where id = ?',
      change.title ?? c.title,
      change.notes ?? c.notes,
      JSON.stringify(dedupe(change.observables ?? c.observables)),
      by,
      Date.now(),
      id,
    );
    return this.get(id);
  }

  remove(id: string): boolean {
    if (!this.get(id)) return false;
    this.store.run('delete from casebooks where id = ?', id);
    return true;
  }

  get(id: string): Casebook | null {
    const r = this.store.stmt('select * from casebooks where id = ?').get(id) as unknown as Row | undefined;
    return r ? toCasebook(r) : null;
  }

  list(limit = 200): Casebook[] {
    return (
      this.store.stmt('select * from casebooks order by updated_at desc limit ?').all(limit) as unknown as Row[]
    ).map(toCasebook);
  }
}

function dedupe(list: ParsedObservable[]): ParsedObservable[] {
  const seen = new Map(list.map((o) => [`${o.type}\u0000${o.value}`, o]));
  return [...seen.values()];
}

function toCasebook(r: Row): Casebook {
  return {
    id: r.id,
    title: r.title,
    notes: r.notes,
    observables: JSON.parse(r.observables) as ParsedObservable[],
    createdBy: r.created_by,
    createdAt: new Date(r.created_at).toISOString(),
    updatedBy: r.updated_by,
    updatedAt: new Date(r.updated_at).toISOString(),
  };
}
