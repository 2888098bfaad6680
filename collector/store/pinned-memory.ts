// Pinned memory in SQLite: VmPin / VmLck per process against what pinwatch enumerated (schema/reliability.ts).
import type Database from 'better-sqlite3';
import type { PinnedMemory } from '../../schema/reliability.ts';
import { hasTable } from './meta.ts';

export function writePinnedMemory(db: Database.Database, sessionId: number, m: PinnedMemory): void {
  db.prepare(`INSERT INTO pinned_memory (session_id, ts_ns, pid, comm, vm_pin_pages, vm_lck_pages, explained_pages) VALUES (?,?,?,?,?,?,?)`)
    .run(sessionId, m.tsNs, m.pid, m.comm, m.vmPinPages, m.vmLckPages, m.explainedPages);
}

/** The latest pinned-memory row per process (of one session, or of all). */
export function readPinnedMemory(db: Database.Database, sessionId?: number): (PinnedMemory & { sessionId: number })[] {
  if (!hasTable(db, 'pinned_memory')) return [];
  const where = sessionId === undefined ? '' : 'WHERE session_id = ?';
  const rows = db.prepare(
    `SELECT * FROM pinned_memory WHERE id IN (SELECT max(id) FROM pinned_memory ${where} GROUP BY session_id, pid) ORDER BY pid`,
  ).all(...(sessionId === undefined ? [] : [sessionId])) as {
    session_id: number; ts_ns: number; pid: number; comm: string; vm_pin_pages: number; vm_lck_pages: number; explained_pages: number;
  }[];
  return rows.map((r) => ({
    sessionId: r.session_id, tsNs: r.ts_ns, pid: r.pid, comm: r.comm, vmPinPages: r.vm_pin_pages, vmLckPages: r.vm_lck_pages, explainedPages: r.explained_pages,
  }));
}
