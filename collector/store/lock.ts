// One writer per file: a meta row names the live writer ({pid, host, sinceMs}); a second writer is refused
// with a StoreError saying who holds it, and a row left by a process that died is taken over.
import type Database from 'better-sqlite3';
import { hostname } from 'node:os';
import { StoreError } from './errors.ts';
import { META_WRITER, metaValue, setMeta } from './meta.ts';

/** Files this process has open for writing. */
const openWriters = new Set<string>();

type Writer = { pid?: number; host?: string; sinceMs?: number };

function parseWriter(text: string): Writer | null {
  try {
    const w = JSON.parse(text) as Writer;
    return w && typeof w === 'object' ? w : null;
  } catch {
    return null;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Become the file's only writer: refuse when another live process on this host (or another Store in this
 * process) writes it; take over a row left by a process that died. Also proves the file is writable.
 */
export function claimWriter(db: Database.Database, file: string): void {
  const me = { pid: process.pid, host: hostname(), sinceMs: Date.now() };
  db.transaction(() => {
    const row = metaValue(db, META_WRITER);
    const other = row !== null ? parseWriter(row) : null;
    const busy =
      (other?.pid === process.pid && openWriters.has(file)) ||
      (other !== null && typeof other.pid === 'number' && other.pid !== process.pid && other.host === me.host && processAlive(other.pid));
    if (busy) {
      const since = other?.sinceMs ? `, since ${new Date(other.sinceMs).toISOString()}` : '';
      throw new StoreError(
        'locked',
        file,
        `database ${file} is being written by another pinwatch (pid ${other!.pid}${since})`,
        'stop that process (pinwatch record / pinwatch serve) or pass a different --db file; to watch it, open it read-only (pinwatch serve --replay)',
      );
    }
    setMeta(db, META_WRITER, JSON.stringify(me));
  }).immediate();
  openWriters.add(file);
}

/** Give the file up (the row is left alone when another process has taken it over). */
export function releaseWriter(db: Database.Database, file: string): void {
  openWriters.delete(file);
  const row = metaValue(db, META_WRITER);
  if (row === null) return;
  const w = JSON.parse(row) as { pid?: number };
  if (w.pid === process.pid) db.prepare(`DELETE FROM meta WHERE key = ?`).run(META_WRITER);
}

/** Is the process the writer row names still alive on this host? (false: no writer, or it died) */
export function writerAlive(db: Database.Database): boolean {
  const row = metaValue(db, META_WRITER);
  if (row === null) return false;
  const w = parseWriter(row);
  return w !== null && typeof w.pid === 'number' && w.host === hostname() && processAlive(w.pid);
}
