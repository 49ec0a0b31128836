// The store's writer thread: applies batches of statements in one transaction each, off the event loop.
import { parentPort, workerData } from 'node:worker_threads';
import { DatabaseSync, type StatementSync, type SQLInputValue } from 'node:sqlite';

export interface WriteBatch {
  id: number;
  ops: Array<[string, SQLInputValue[]]>;
}

export interface WriteAck {
  id: number;
  errors: string[];
}

const db = new DatabaseSync(workerData.file as string);
db.exec('pragma journal_mode = wal; pragma synchronous = normal; pragma busy_timeout = 5000;');
const statements = new Map<string, StatementSync>();

parentPort!.on('message', (batch: WriteBatch) => {
  const errors: string[] = [];
  db.exec('begin');
  for (const [sql, params] of batch.ops) {
    try {
      let s = statements.get(sql);
      if (!s) statements.set(sql, (s = db.prepare(sql)));
      s.run(...params);
    } catch (err) {
      // One bad row must not lose the batch: report it and carry on with the rest.
      errors.push(`${(err as Error).message} in: ${sql.slice(0, 80)}`);
    }
  }
  try {
    db.exec('commit');
  } catch (err) {
    errors.push(`commit failed: ${(err as Error).message}`);
    try {
      db.exec('rollback');
    } catch {
      /* already rolled back */
    }
  }
  parentPort!.postMessage({ id: batch.id, errors } satisfies WriteAck);
});
