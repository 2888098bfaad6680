// The store's reliability tables and repairs: capture gaps, pinned memory (VmPin/VmLck), upgrading an older
// file in place, and sessions whose collector died (found at the next start: marked crashed at their last
// event, their pins no longer live). Kept beside store.ts: the same database, separate concerns.
import type Database from 'better-sqlite3';
import type { CaptureGap, PinnedMemory } from '../../schema/reliability.ts';
import { DDL, MIGRATIONS, SCHEMA_VERSION } from '../../schema/tables.ts';
import { backfillIncidents } from './incidents.ts';

const META_VERSION = 'schema_version';
const clockKey = (sessionId: number) => `session.${sessionId}.wall_minus_mono_ms`;

function hasTable(db: Database.Database, name: string): boolean {
  return db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`).get(name) !== undefined;
}

function columns(db: Database.Database, table: string): Set<string> {
  return new Set((db.prepare(`SELECT name FROM pragma_table_info(?)`).all(table) as { name: string }[]).map((r) => r.name));
}

/** Bring an older pinwatch file to SCHEMA_VERSION: new tables, new columns (additive only). */
export function upgradeSchema(db: Database.Database): void {
  db.transaction(() => {
    const from = fileSchemaVersion(db);
    db.exec(DDL);
    for (const m of MIGRATIONS) if (!columns(db, m.table).has(m.column)) db.exec(m.ddl);
    if (from < 2) backfillIncidents(db);
    db.prepare(`INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)`).run(META_VERSION, String(SCHEMA_VERSION));
  }).immediate();
}

/** The schema version the file says it has (0 when it says none). */
export function fileSchemaVersion(db: Database.Database): number {
  if (!hasTable(db, 'meta')) return 0;
  const row = db.prepare(`SELECT value FROM meta WHERE key = ?`).get(META_VERSION) as { value: string } | undefined;
  return row ? Number(row.value) : 0;
}

function clockOffset(db: Database.Database, sessionId: number): number | null {
  const m = db.prepare(`SELECT value FROM meta WHERE key = ?`).get(clockKey(sessionId)) as { value: string } | undefined;
  return m ? Number(m.value) : null;
}

/** Last event of a session: CLOCK_MONOTONIC ns and the wall ms it corresponds to. */
function lastEvent(db: Database.Database, sessionId: number): { ns: number | null; wallMs: number | null } {
  const r = db.prepare(`SELECT max(ts_ns) AS t FROM events WHERE session_id = ?`).get(sessionId) as { t: number | null };
  const ns = r.t;
  const off = clockOffset(db, sessionId);
  return { ns, wallMs: ns !== null && off !== null ? Math.round(off + ns / 1e6) : null };
}

/**
 * Sessions left open by a collector that died (kill -9, power loss): called by the next writer once it owns the
 * file. Each is marked crashed, ended at its last event; its pins are released there (they are not live any more
 * as far as this recording knows) and its open gaps end there too.
 */
export function closeCrashedSessions(db: Database.Database): number[] {
  const open = db.prepare(`SELECT id, started_ms FROM sessions WHERE ended_ms IS NULL`).all() as { id: number; started_ms: number }[];
  const fixed: number[] = [];
  for (const s of open) {
    const last = lastEvent(db, s.id);
    const endMs = last.wallMs ?? s.started_ms;
    const detail = `the collector stopped without ending the session (found at the next start, ${new Date().toISOString()}); ` +
      (last.wallMs !== null ? `last event at ${new Date(last.wallMs).toISOString()}` : 'no event was written');
    db.transaction(() => {
      db.prepare(`UPDATE sessions SET ended_ms = ?, end_reason = 'crashed', end_detail = ?, last_event_ns = coalesce(?, last_event_ns) WHERE id = ?`)
        .run(endMs, detail, last.ns, s.id);
      db.prepare(`UPDATE pins SET released_ns = coalesce(?, created_ns), state = 'released' WHERE session_id = ? AND released_ns IS NULL`)
        .run(last.ns, s.id);
      db.prepare(`UPDATE capture_gaps SET ended_ns = coalesce(ended_ns, ?), ended_ms = coalesce(ended_ms, ?) WHERE session_id = ?`)
        .run(last.ns, endMs, s.id);
    }).immediate();
    fixed.push(s.id);
  }
  return fixed;
}

export interface GapRow {
  id: number;
  session_id: number;
  process: string;
  cause: string;
  started_ns: number;
  ended_ns: number | null;
  started_ms: number;
  ended_ms: number | null;
  events_lost: number | null;
}

export function gapFromRow(r: GapRow): CaptureGap & { sessionId: number } {
  return {
    id: r.id, sessionId: r.session_id, process: r.process as CaptureGap['process'], cause: r.cause, startNs: r.started_ns, endNs: r.ended_ns,
    startWallMs: r.started_ms, endWallMs: r.ended_ms, eventsLost: r.events_lost,
  };
}

/** Insert or update (by id) a gap; returns its id. */
export function writeGap(db: Database.Database, sessionId: number, g: CaptureGap): number {
  if (g.id > 0) {
    db.prepare(`UPDATE capture_gaps SET cause = ?, ended_ns = ?, ended_ms = ?, events_lost = ? WHERE id = ?`).run(g.cause, g.endNs, g.endWallMs, g.eventsLost, g.id);
    return g.id;
  }
  const r = db.prepare(
    `INSERT INTO capture_gaps (session_id, process, cause, started_ns, ended_ns, started_ms, ended_ms, events_lost) VALUES (?,?,?,?,?,?,?,?)`,
  ).run(sessionId, g.process, g.cause, g.startNs, g.endNs, g.startWallMs, g.endWallMs, g.eventsLost);
  return Number(r.lastInsertRowid);
}

export function readGaps(db: Database.Database, sessionId?: number): (CaptureGap & { sessionId: number })[] {
  if (!hasTable(db, 'capture_gaps')) return [];
  const rows = (sessionId === undefined
    ? db.prepare(`SELECT * FROM capture_gaps ORDER BY started_ns, id`).all()
    : db.prepare(`SELECT * FROM capture_gaps WHERE session_id = ? ORDER BY started_ns, id`).all(sessionId)) as GapRow[];
  return rows.map(gapFromRow);
}

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

/**
 * For a reader (replay) of a file whose writer died and was never reopened: the open sessions, which are crashed
 * as far as the reader can tell, with their last event's time.
 */
export function orphanedOpenSessions(db: Database.Database, writerAlive: boolean): Map<number, number | null> {
  const out = new Map<number, number | null>();
  if (writerAlive) return out;
  for (const s of db.prepare(`SELECT id FROM sessions WHERE ended_ms IS NULL`).all() as { id: number }[]) out.set(s.id, lastEvent(db, s.id).ns);
  return out;
}
