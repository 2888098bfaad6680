// Store failures a user can act on: each names the database file and says what to do. The CLI prints
// `message` and `fix` (never a stack trace); background flushes report them through StoreOptions.onError.

export type StoreErrorCode = 'locked' | 'not-writable' | 'not-found' | 'not-a-database' | 'schema-version' | 'disk-full' | 'io';

export class StoreError extends Error {
  readonly code: StoreErrorCode;
  readonly file: string;
  /** What the user can do about it, one sentence. */
  readonly fix: string;
  /** The SQLite error code behind it (SQLITE_BUSY, …), when there is one. */
  readonly sqliteCode?: string;

  constructor(code: StoreErrorCode, file: string, message: string, fix: string, sqliteCode?: string) {
    super(message);
    this.name = 'StoreError';
    this.code = code;
    this.file = file;
    this.fix = fix;
    this.sqliteCode = sqliteCode;
  }
}

export function isStoreError(err: unknown): err is StoreError {
  return err instanceof StoreError;
}

/** Turn a better-sqlite3 / fs error into a StoreError naming `file`; other errors are returned unchanged. */
export function toStoreError(err: unknown, file: string, doing: string): unknown {
  if (err instanceof StoreError) return err;
  const code = (err as { code?: unknown })?.code;
  const text = (err as Error)?.message ?? String(err);
  if (typeof code !== 'string') return err;
  if (code === 'SQLITE_BUSY' || code.startsWith('SQLITE_BUSY_') || code === 'SQLITE_LOCKED' || code.startsWith('SQLITE_LOCKED_')) {
    return new StoreError(
      'locked',
      file,
      `database ${file} is locked by another writer (${doing}: ${text})`,
      'stop the other process writing this file (another `pinwatch record` or `pinwatch serve`?) or pass a different --db file; queued rows are kept and retried',
      code,
    );
  }
  if (code === 'SQLITE_READONLY' || code.startsWith('SQLITE_READONLY_') || code === 'EACCES' || code === 'EROFS' || code === 'SQLITE_PERM') {
    return new StoreError(
      'not-writable',
      file,
      `cannot write database ${file} (${doing}: ${text})`,
      'make the file and its directory writable by this user (pinwatch runs as root for capture), or pass a different --db path',
      code,
    );
  }
  if (code === 'SQLITE_CANTOPEN' || code.startsWith('SQLITE_CANTOPEN_') || code === 'ENOENT') {
    return new StoreError(
      'not-found',
      file,
      `cannot open database ${file} (${doing}: ${text})`,
      'check that the path exists (the directory must exist; a replay file must exist) and is accessible',
      code,
    );
  }
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT' || code.startsWith('SQLITE_CORRUPT_')) {
    return new StoreError(
      'not-a-database',
      file,
      `${file} is not a usable SQLite database (${text})`,
      'pass a different --db path (pinwatch creates the file when it does not exist)',
      code,
    );
  }
  if (code === 'SQLITE_FULL' || code === 'ENOSPC') {
    return new StoreError('disk-full', file, `disk full while writing ${file} (${doing})`, 'free disk space or record to another filesystem', code);
  }
  if (code.startsWith('SQLITE_IOERR')) {
    return new StoreError('io', file, `I/O error on ${file} (${doing}: ${text})`, 'check the disk and the filesystem holding the file', code);
  }
  return err;
}
