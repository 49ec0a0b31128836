// Which SQLite errors mean "the disk cannot take this now" (retry later) rather than "this write is wrong".

/** SQLITE_FULL (13), SQLITE_IOERR (10, extended codes in the high bits), SQLITE_CANTOPEN (14) during writes */
export function isSqliteStorageError(err: unknown): boolean {
  const e = err as { errcode?: unknown; message?: unknown };
  if (typeof e?.errcode === 'number' && [10, 13, 14].includes(e.errcode & 0xff)) return true;
  return typeof e?.message === 'string' && /database or disk is full|disk I\/O error/.test(e.message);
}
