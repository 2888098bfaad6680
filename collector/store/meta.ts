// The meta table's keys (key/value rows beside the recording) and reading one of them.
import type Database from 'better-sqlite3';

export const META_VERSION = 'schema_version';
/** The largest events.len written, so pageTimeline bounds its index range scan from below. */
export const META_MAX_LEN = 'events.max_len';
/** The live writer ({pid, host, sinceMs}): one writer per file, or seqs would collide. */
export const META_WRITER = 'writer';
/** wall ms − CLOCK_MONOTONIC ms of a session, recorded when it starts. */
export const clockKey = (sessionId: number): string => `session.${sessionId}.wall_minus_mono_ms`;

export function hasTable(db: Database.Database, name: string): boolean {
  return db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`).get(name) !== undefined;
}

export function metaValue(db: Database.Database, key: string): string | null {
  const row = db.prepare(`SELECT value FROM meta WHERE key = ?`).get(key) as { value: string } | undefined;
  return row ? row.value : null;
}

export function setMeta(db: Database.Database, key: string, value: string): void {
  db.prepare(`INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)`).run(key, value);
}

/** The session's clock offset as recorded (null: the file does not say). */
export function recordedClockOffset(db: Database.Database, sessionId: number): number | null {
  const v = metaValue(db, clockKey(sessionId));
  return v === null ? null : Number(v);
}
