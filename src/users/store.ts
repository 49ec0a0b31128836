// What users, sessions and the audit log need of a database: the gateway's store (writes through its
// group commit) or the hub's (writes at once). Both keep these tables next to their own.
import type { Store } from '../store/db.ts';

export type UserStore = Pick<Store, 'db' | 'run' | 'stmt' | 'committed'>;
