// This installation's identity: a UUID made at first use and kept in the database, which the hub
// registration and the report IDs of DMARC and TLS reports share (two gateways may share a hostname).
import { randomUUID } from 'node:crypto';
import type { Store } from './db.ts';

export interface Installation {
  uuid: string;
  /** ISO time of the first use */
  date: string;
}

// Kept in memory per store: a meta write reaches the database a moment later (writer thread), and a
// second caller meanwhile must not make another UUID.
const known = new WeakMap<MetaStore, Installation>();

type MetaStore = Pick<Store, 'getMeta' | 'setMeta'>;

export function installation(store: MetaStore): Installation {
  let found = known.get(store);
  if (!found) {
    const uuid = store.getMeta('installation.uuid');
    const date = store.getMeta('installation.date');
    found = { uuid: uuid ?? randomUUID(), date: date ?? new Date().toISOString() };
    if (!uuid) store.setMeta('installation.uuid', found.uuid);
    if (!date) store.setMeta('installation.date', found.date);
    known.set(store, found);
  }
  return found;
}

/** A short form of the UUID for report IDs: 12 hex digits, enough to tell a site's gateways apart. */
export function installationTag(store: MetaStore): string {
  return installation(store).uuid.replace(/-/g, '').slice(0, 12);
}
