// Incidents in SQLite: upsert of an incident and its anomaly links (inside the store's batch transaction), and
// the read query. Files written before incidents were stored (schema 1) have no such tables: their incidents
// are derived from their anomalies with the same grouper the live collector runs, so replay shows them too.
import type Database from 'better-sqlite3';
import type { Anomaly, RuleId, Severity } from '../../schema/anomalies.ts';
import type { PinSource } from '../../schema/events.ts';
import type { Incident } from '../../schema/incidents.ts';
import { IncidentGrouper } from '../incidents/grouper.ts';
import { hasTable } from './meta.ts';
import { anomalyFromRow, eventFromRow, type AnomalyRow, type EventRow } from './rows.ts';

export interface IncidentRow {
  id: number;
  session_id: number;
  severity: string;
  title: string;
  cause: string | null;
  cause_seq: number | null;
  pid: number;
  comm: string;
  pin_id: number | null;
  subject: string;
  pages: number;
  confirmed: number;
  ts_ns: number;
  opened_ms: number;
  updated_ms: number;
  closed_ms: number | null;
  /** Comma-separated anomaly seqs (GROUP_CONCAT). */
  seqs: string | null;
}

export interface IncidentFilter {
  /** Only incidents with id > afterId. */
  afterId?: number;
  /** Only incidents still open (pin not released). */
  open?: boolean;
  /** Default 10,000, newest kept. */
  limit?: number;
}

export class IncidentWriter {
  private readonly upsert: Database.Statement;
  private readonly link: Database.Statement;

  constructor(db: Database.Database) {
    this.upsert = db.prepare(
      `INSERT INTO incidents (id, session_id, severity, title, cause, cause_seq, pid, comm, pin_id, subject, pages, confirmed, ts_ns,
         opened_ms, updated_ms, closed_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
       ON CONFLICT(id) DO UPDATE SET severity=excluded.severity, title=excluded.title, cause=excluded.cause,
         cause_seq=excluded.cause_seq, pages=excluded.pages, confirmed=excluded.confirmed, updated_ms=excluded.updated_ms,
         closed_ms=excluded.closed_ms`,
    );
    this.link = db.prepare(`INSERT OR IGNORE INTO incident_anomalies (anomaly_seq, incident_id) VALUES (?, ?)`);
  }

  /** Rows written. */
  write(sid: number, i: Incident): number {
    this.upsert.run(
      i.id, sid, i.severity, i.title, i.cause, i.causeSeq, i.pid, i.comm, i.pinId, i.subject, i.pages, i.confirmed ? 1 : 0, i.tsNs,
      i.openedWallMs, i.updatedWallMs, i.closedWallMs,
    );
    for (const seq of i.anomalySeqs) this.link.run(seq, i.id);
    return 1 + i.anomalySeqs.length;
  }
}

export function incidentFromRow(r: IncidentRow, anomaliesBySeq: Map<number, Anomaly>): Incident {
  const seqs = r.seqs ? r.seqs.split(',').map(Number).sort((a, b) => a - b) : [];
  const anomalies = seqs.map((s) => anomaliesBySeq.get(s)).filter((a): a is Anomaly => a !== undefined);
  return {
    id: r.id,
    severity: r.severity as Severity,
    title: r.title,
    cause: r.cause,
    causeSeq: r.cause_seq,
    pid: r.pid,
    comm: r.comm,
    pinId: r.pin_id,
    subject: r.subject,
    pages: r.pages,
    confirmed: r.confirmed !== 0,
    tsNs: r.ts_ns,
    openedWallMs: r.opened_ms,
    updatedWallMs: r.updated_ms,
    closedWallMs: r.closed_ms,
    rules: rulesBySeverity(anomalies),
    anomalySeqs: seqs,
  };
}

const SEV_RANK: Record<string, number> = { critical: 0, high: 1, warning: 2, info: 3 };
/** Distinct rules of the anomalies, most severe first. */
function rulesBySeverity(anomalies: Anomaly[]): RuleId[] {
  const worst = new Map<RuleId, number>();
  for (const a of anomalies) worst.set(a.rule, Math.min(worst.get(a.rule) ?? 9, SEV_RANK[a.severity] ?? 9));
  return [...worst.keys()].sort((x, y) => worst.get(x)! - worst.get(y)!);
}

/** Incidents of a file, oldest first (stored ones, or derived from the anomalies of a schema-1 file). */
export function readIncidents(db: Database.Database, f: IncidentFilter = {}): Incident[] {
  const all = hasTable(db, 'incidents') ? storedIncidents(db, f) : deriveIncidents(db);
  let out = all;
  if (f.afterId !== undefined) out = out.filter((i) => i.id > f.afterId!);
  if (f.open !== undefined) out = out.filter((i) => (i.closedWallMs === null) === f.open);
  const limit = f.limit ?? 10_000;
  return out.length > limit ? out.slice(out.length - limit) : out;
}

function storedIncidents(db: Database.Database, f: IncidentFilter): Incident[] {
  const rows = db
    .prepare(
      `SELECT i.*, (SELECT GROUP_CONCAT(anomaly_seq) FROM incident_anomalies l WHERE l.incident_id = i.id) AS seqs
       FROM incidents i WHERE i.id > ? ORDER BY i.id`,
    )
    .all(f.afterId ?? 0) as IncidentRow[];
  const anomalies = new Map<number, Anomaly>();
  for (const r of db.prepare(`SELECT a.* FROM anomalies a JOIN incident_anomalies l ON l.anomaly_seq = a.seq WHERE l.incident_id > ?`).all(f.afterId ?? 0) as AnomalyRow[]) {
    anomalies.set(r.seq, anomalyFromRow(r));
  }
  return rows.map((r) => incidentFromRow(r, anomalies));
}

/** Run the live grouper over a file's anomalies, with the file's pins and events as context. */
export function deriveIncidents(db: Database.Database): Incident[] {
  const pins = new Map<number, { source: PinSource; handle: string; writable: boolean; releasedNs: number | null }>();
  for (const p of db.prepare(`SELECT id, source, handle, writable, released_ns FROM pins`).all() as {
    id: number; source: PinSource; handle: string; writable: number; released_ns: number | null;
  }[]) {
    pins.set(p.id, { source: p.source, handle: p.handle, writable: p.writable !== 0, releasedNs: p.released_ns });
  }
  const eventStmt = db.prepare(`SELECT * FROM events WHERE seq = ?`);
  let wall = 0;
  const grouper = new IncidentGrouper({
    pin: (id) => pins.get(id) ?? null,
    event: (seq) => {
      const r = eventStmt.get(seq) as EventRow | undefined;
      return r ? eventFromRow(r) : null;
    },
    wallMs: () => wall,
  });
  const byId = new Map<number, Incident>();
  const anomalies = (db.prepare(`SELECT * FROM anomalies ORDER BY seq`).all() as AnomalyRow[]).map(anomalyFromRow);
  for (const a of anomalies) {
    wall = a.wallMs;
    const { incident } = grouper.add(a);
    byId.set(incident.id, incident);
  }
  // A released pin, or the exit of the process, closed its incidents (the file does not say when in wall
  // time: the last finding's).
  const exited = db.prepare(`SELECT 1 FROM events WHERE kind = 'exit' AND pid = ? AND seq > ? LIMIT 1`);
  for (const i of byId.values()) {
    const closed = i.pinId !== null ? pins.get(i.pinId)?.releasedNs != null : exited.get(i.pid, i.causeSeq ?? 0) !== undefined;
    if (closed) i.closedWallMs = i.updatedWallMs;
  }
  return [...byId.values()].sort((x, y) => x.id - y.id);
}

/** A writer upgrading a schema-1 file: store the incidents its anomalies make, so numbering and replay continue. */
export function backfillIncidents(db: Database.Database): void {
  const writer = new IncidentWriter(db);
  const sessionOf = db.prepare(`SELECT session_id AS s FROM anomalies WHERE seq = ?`);
  for (const i of deriveIncidents(db)) writer.write((sessionOf.get(i.anomalySeqs[0]) as { s: number }).s, i);
}
