// Capture gaps in SQLite (windows in which a bpftrace process was not capturing; schema/reliability.ts).
import type Database from 'better-sqlite3';
import type { CaptureGap } from '../../schema/reliability.ts';
import { hasTable } from './meta.ts';

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
