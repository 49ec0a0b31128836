// The store's writer thread: applies batches of statements in one transaction each, off the event loop.
// A batch that fails because the disk is full (SQLITE_FULL) or failing (SQLITE_IOERR) is rolled back
// and retried, whole and in order, until it commits: queue state and tracking are never silently lost
// to a full disk. Later batches wait behind it.
import { parentPort, workerData } from 'node:worker_threads';
import { DatabaseSync, type StatementSync, type SQLInputValue } from 'node:sqlite';
import { isSqliteStorageError } from './errors.ts';

export interface WriteBatch {
  id: number;
  ops: Array<[string, SQLInputValue[]]>;
}

export interface WriteAck {
  id: number;
  errors: string[];
  /** set instead of an ack while the batch waits for the disk: the error that stopped it */
  storageError?: { code: string; message: string };
}

const RETRY_MS = 1000;

{
  const db = new DatabaseSync(workerData.file as string);
  db.exec('pragma journal_mode = wal; pragma synchronous = normal; pragma busy_timeout = 5000;');
  const statements = new Map<string, StatementSync>();
  const queue: WriteBatch[] = [];
  let busy = false;

  const rollback = (): void => {
    try {
      db.exec('rollback');
    } catch {
      /* already rolled back */
    }
  };

  /** Applies one batch; throws a storage error (after rolling back) so the caller retries it. */
  const apply = (batch: WriteBatch): string[] => {
    const errors: string[] = [];
    db.exec('begin');
    for (const [sql, params] of batch.ops) {
      try {
        let s = statements.get(sql);
        if (!s) statements.set(sql, (s = db.prepare(sql)));
        s.run(...params);
      } catch (err) {
        if (isSqliteStorageError(err)) {
          rollback();
          throw err;
        }
        // One bad row must not lose the batch: report it and carry on with the rest.
        errors.push(`${(err as Error).message} in: ${sql.slice(0, 80)}`);
      }
    }
    try {
      db.exec('commit');
    } catch (err) {
      rollback();
      if (isSqliteStorageError(err)) throw err;
      errors.push(`commit failed: ${(err as Error).message}`);
    }
    return errors;
  };

  const drain = (): void => {
    if (busy) return;
    busy = true;
    while (queue.length) {
      const batch = queue[0];
      let errors: string[];
      try {
        errors = apply(batch);
      } catch (err) {
        const e = err as { errcode?: number; message: string };
        parentPort!.postMessage({
          id: batch.id,
          errors: [],
          storageError: { code: e.errcode === 13 ? 'SQLITE_FULL' : 'SQLITE_IOERR', message: e.message },
        } satisfies WriteAck);
        setTimeout(() => {
          busy = false;
          drain();
        }, RETRY_MS);
        return;
      }
      queue.shift();
      parentPort!.postMessage({ id: batch.id, errors } satisfies WriteAck);
    }
    busy = false;
  };

  parentPort!.on('message', (batch: WriteBatch) => {
    queue.push(batch);
    drain();
  });
}
