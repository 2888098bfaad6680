// Sessions whose collector died (kill -9, power loss): the next writer marks them crashed at their last event
// (their pins no longer live, their open gaps ended there); a reader of a file nobody reopened sees them so.
import type Database from 'better-sqlite3';
import { recordedClockOffset } from './meta.ts';

/** Last event of a session: CLOCK_MONOTONIC ns and the wall ms it corresponds to. */
function lastEvent(db: Database.Database, sessionId: number): { ns: number | null; wallMs: number | null } {
  const r = db.prepare(`SELECT max(ts_ns) AS t FROM events WHERE session_id = ?`).get(sessionId) as { t: number | null };
  const ns = r.t;
  const off = recordedClockOffset(db, sessionId);
  return { ns, wallMs: ns !== null && off !== null ? Math.round(off + ns / 1e6) : null };
}

/**
 * Sessions left open by a collector that died: called by the next writer once it owns the file. Each is marked
 * crashed, ended at its last event; its pins are released there (they are not live any more as far as this
 * recording knows) and its open gaps end there too.
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
