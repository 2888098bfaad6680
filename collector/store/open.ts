// Opening a pinwatch database: path checks with a fix for each failure, the schema version check, and for a
// writer WAL, pragmas, the DDL, an in-place upgrade of an older file and the writer lock.
import Database from 'better-sqlite3';
import { accessSync, constants, existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { DDL, OLDEST_READABLE_SCHEMA_VERSION, SCHEMA_VERSION } from '../../schema/tables.ts';
import { StoreError, toStoreError } from './errors.ts';
import { claimWriter } from './lock.ts';
import { META_VERSION, hasTable, metaValue } from './meta.ts';
import { fileSchemaVersion, upgradeSchema } from './upgrade.ts';

export interface OpenedDatabase {
  /** The resolved path. */
  file: string;
  db: Database.Database;
}

/**
 * Open (creating when missing, unless read-only) a pinwatch database; a writer becomes the file's only writer.
 * Throws StoreError (with a `fix`) when the file is locked, not writable, not a database, or of another schema version.
 */
export function openDatabase(file: string, readonly: boolean, busyTimeoutMs = 5_000): OpenedDatabase {
  const path = resolve(file);
  if (readonly && !existsSync(path)) {
    throw new StoreError('not-found', path, `database ${path} does not exist`, 'check the path of the recording');
  }
  if (!existsSync(dirname(path))) {
    throw new StoreError('not-found', path, `cannot create database ${path}: directory ${dirname(path)} does not exist`, 'create the directory or pass a different --db path');
  }
  if (!readonly) {
    // The WAL and its index are files beside the database: a writer needs the directory writable, not just the file.
    try {
      accessSync(dirname(path), constants.W_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'EACCES';
      throw new StoreError(
        'not-writable',
        path,
        `cannot write database ${path}: directory ${dirname(path)} is not writable (${code === 'EROFS' ? 'read-only filesystem' : code})`,
        'pass a --db path on a writable filesystem (e.g. /var/lib/pinwatch), or make the directory writable; to view an existing recording use pinwatch serve --replay',
        code,
      );
    }
  }
  let db: Database.Database;
  try {
    db = new Database(path, { readonly, fileMustExist: readonly, timeout: busyTimeoutMs });
  } catch (err) {
    throw toStoreError(err, path, 'opening');
  }
  try {
    db.pragma(`busy_timeout = ${busyTimeoutMs}`);
    if (!readonly) {
      prepareWriter(db, path);
      claimWriter(db, path);
    } else checkVersion(db, path, false);
  } catch (err) {
    db.close();
    throw toStoreError(err, path, 'opening');
  }
  return { file: path, db };
}

/** WAL, pragmas, DDL, schema version: a writer connection ready for batches. */
function prepareWriter(db: Database.Database, file: string): void {
  checkVersion(db, file, true);
  const mode = db.pragma('journal_mode = WAL', { simple: true });
  if (String(mode).toLowerCase() !== 'wal') {
    throw new StoreError('io', file, `cannot switch ${file} to WAL journaling (got ${mode})`, 'put the database on a local filesystem');
  }
  db.pragma('synchronous = NORMAL');
  // Index pages of a hot address set are rewritten by every batch: a larger cache and fewer checkpoints
  // mean each page is written to the WAL and into the file less often.
  db.pragma('cache_size = -65536');
  db.pragma('wal_autocheckpoint = 8192');
  db.pragma('journal_size_limit = 67108864');
  db.pragma('temp_store = MEMORY');
  const tables = (db.prepare(`SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name IN ('sessions','events','pins','pin_page_runs','pagemap_reads','anomalies')`).get() as { n: number }).n;
  if (!hasTable(db, 'meta') || tables < 6) {
    db.transaction(() => {
      db.exec(DDL);
      db.prepare(`INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)`).run(META_VERSION, String(SCHEMA_VERSION));
    }).immediate();
  }
  checkVersion(db, file, false);
  if (fileSchemaVersion(db) < SCHEMA_VERSION) upgradeSchema(db);
}

/**
 * Refuse a database of a schema version this pinwatch cannot read, or a non-empty SQLite file that is not
 * pinwatch's. Returns the file's version (null: empty or being created).
 */
function checkVersion(db: Database.Database, file: string, allowEmpty: boolean): number | null {
  const objects = (db.prepare(`SELECT count(*) AS n FROM sqlite_master`).get() as { n: number }).n;
  if (objects === 0 && allowEmpty) return null;
  if (!hasTable(db, 'meta')) {
    throw new StoreError(
      'not-a-database',
      file,
      objects === 0 ? `${file} is an empty database, not a pinwatch recording` : `${file} is a SQLite database but not a pinwatch one (no meta table)`,
      'pass a different --db path (pinwatch creates a new file when it does not exist)',
    );
  }
  const value = metaValue(db, META_VERSION);
  if (value === null) {
    if (allowEmpty) return null; // created by a writer that died before writing the version: the DDL is idempotent
    throw new StoreError('not-a-database', file, `${file} has no pinwatch schema version`, 'pass a different --db path');
  }
  const version = Number(value);
  if (!(version >= OLDEST_READABLE_SCHEMA_VERSION && version <= SCHEMA_VERSION)) {
    throw new StoreError(
      'schema-version',
      file,
      `${file} uses pinwatch schema version ${value}; this pinwatch reads and writes versions ${OLDEST_READABLE_SCHEMA_VERSION} to ${SCHEMA_VERSION}`,
      version > SCHEMA_VERSION
        ? 'open it with the newer pinwatch that wrote it, or record into a new file'
        : 'record into a new file (--db NEW.db); old recordings open with the pinwatch version that wrote them',
    );
  }
  return version;
}
