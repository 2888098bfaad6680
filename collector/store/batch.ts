// The statements of one write transaction: multi-row event INSERTs, upserts of anomalies, pins (only the runs
// of pages that changed since the pin was last written) and incidents, pagemap reads, session counters. The writer
// (writer.ts) decides what goes into a transaction; this file only turns rows into statements.
import type Database from 'better-sqlite3';
import type { Anomaly, PagemapRead } from '../../schema/anomalies.ts';
import type { SequencedEvent } from '../../schema/events.ts';
import type { PinRun } from '../../schema/pin-runs.ts';
import type { Pin } from '../../schema/pins.ts';
import type { EventCounts } from './event-counts.ts';
import { IncidentWriter } from './incidents.ts';
import { META_MAX_LEN } from './meta.ts';
import { eventAddr, eventLen, payloadJson } from './rows.ts';

const EVENT_COLS = 10;
/** Rows per multi-row INSERT: one native call binds this many events. */
const EVENT_CHUNK = 64;
const READ_COLS = 9;
/** Pagemap reads per multi-row INSERT (a pin's first read is one row per page). */
const READ_CHUNK = 64;

/** A pin's runs as last committed (NaN = null / absent), to write only the runs that changed: ~41 bytes a run. */
interface WrittenRuns {
  n: number;
  page: Float64Array;
  count: Float64Array;
  pinned: Float64Array;
  current: Float64Array;
  mapped: Float64Array;
  late: Uint8Array;
}

function writtenRuns(capacity: number): WrittenRuns {
  return {
    n: 0,
    page: new Float64Array(capacity),
    count: new Float64Array(capacity),
    pinned: new Float64Array(capacity),
    current: new Float64Array(capacity),
    mapped: new Float64Array(capacity),
    late: new Uint8Array(capacity),
  };
}

/** Run i of `w` has the values of `r` (its page is already known to match). */
function sameAsWritten(w: WrittenRuns, i: number, r: PinRun): boolean {
  return (
    w.count[i] === r.count && w.late[i] === (r.snapshotLate ? 1 : 0) && sameNullable(w.pinned[i], r.pinnedPfn) &&
    sameNullable(w.current[i], r.currentPfn) && sameNullable(w.mapped[i], r.mappedAddr ?? null)
  );
}

function sameNullable(w: number, v: number | null): boolean {
  return v === null ? Number.isNaN(w) : w === v;
}

export function finiteOrNull(v: number | null | undefined): number | null {
  return v === null || v === undefined || !Number.isFinite(v) ? null : v;
}

export class BatchStatements {
  readonly incidents: IncidentWriter;
  private readonly eventMany: Database.Statement;
  private readonly eventOne: Database.Statement;
  private readonly anomalyStmt: Database.Statement;
  private readonly readStmt: Database.Statement;
  private readonly readMany: Database.Statement;
  private readonly countStmt: Database.Statement;
  private readonly readArgs: unknown[] = new Array(READ_COLS * READ_CHUNK);
  private readonly pinStmt: Database.Statement;
  private readonly runUpsert: Database.Statement;
  private readonly runDelete: Database.Statement;
  private readonly runsDelete: Database.Statement;
  private readonly lostStmt: Database.Statement;
  private readonly lostByKindStmt: Database.Statement;
  private readonly lastEventStmt: Database.Statement;
  private readonly metaStmt: Database.Statement;
  private readonly args: unknown[] = new Array(EVENT_COLS * EVENT_CHUNK);
  private readonly written = new Map<number, WrittenRuns>();

  constructor(db: Database.Database) {
    const values = `(${new Array(EVENT_COLS).fill('?').join(',')})`;
    const eventSql = `INSERT INTO events (seq, session_id, ts_ns, kind, pid, tid, comm, addr, len, payload) VALUES `;
    this.eventMany = db.prepare(eventSql + new Array(EVENT_CHUNK).fill(values).join(','));
    this.eventOne = db.prepare(eventSql + values);
    this.anomalyStmt = db.prepare(
      `INSERT INTO anomalies (seq, session_id, rule, severity, pid, comm, addr, len, pfn, new_pfn, confirmed, low_confidence,
         ts_ns, wall_ms, pin_id, summary, evidence, count, last_ts_ns) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
       ON CONFLICT(seq) DO UPDATE SET rule=excluded.rule, severity=excluded.severity, pid=excluded.pid, comm=excluded.comm,
         addr=excluded.addr, len=excluded.len, pfn=excluded.pfn, new_pfn=excluded.new_pfn, confirmed=excluded.confirmed,
         low_confidence=excluded.low_confidence, ts_ns=excluded.ts_ns, wall_ms=excluded.wall_ms, pin_id=excluded.pin_id,
         summary=excluded.summary, evidence=excluded.evidence, count=excluded.count, last_ts_ns=excluded.last_ts_ns`,
    );
    const readSql = `INSERT INTO pagemap_reads (session_id, ts_ns, pid, addr, present, swapped, pfn, error, reason) VALUES `;
    const readValues = `(${new Array(READ_COLS).fill('?').join(',')})`;
    this.readStmt = db.prepare(readSql + readValues);
    this.readMany = db.prepare(readSql + new Array(READ_CHUNK).fill(readValues).join(','));
    this.countStmt = db.prepare(
      `INSERT INTO event_counts (session_id, sec, kind, n) VALUES (?,?,?,?) ON CONFLICT(session_id, sec, kind) DO UPDATE SET n = n + excluded.n`,
    );
    this.pinStmt = db.prepare(
      `INSERT INTO pins (id, session_id, pid, comm, source, handle, addr, len, pages, writable, longterm, backing, created_ns,
         released_ns, state, origin) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
       ON CONFLICT(id) DO UPDATE SET pid=excluded.pid, comm=excluded.comm, source=excluded.source, handle=excluded.handle,
         addr=excluded.addr, len=excluded.len, pages=excluded.pages, writable=excluded.writable, longterm=excluded.longterm,
         backing=excluded.backing, created_ns=excluded.created_ns, released_ns=excluded.released_ns, state=excluded.state,
         origin=excluded.origin`,
    );
    this.runUpsert = db.prepare(
      `INSERT INTO pin_page_runs (pin_id, page, count, pinned_pfn, current_pfn, snapshot_late, mapped_addr) VALUES (?,?,?,?,?,?,?)
       ON CONFLICT(pin_id, page) DO UPDATE SET count=excluded.count, pinned_pfn=excluded.pinned_pfn,
         current_pfn=excluded.current_pfn, snapshot_late=excluded.snapshot_late, mapped_addr=excluded.mapped_addr`,
    );
    this.runDelete = db.prepare(`DELETE FROM pin_page_runs WHERE pin_id = ? AND page = ?`);
    this.runsDelete = db.prepare(`DELETE FROM pin_page_runs WHERE pin_id = ?`);
    this.lostStmt = db.prepare(`UPDATE sessions SET lost_events = ? WHERE id = ?`);
    this.lostByKindStmt = db.prepare(`UPDATE sessions SET lost_by_kind = ? WHERE id = ?`);
    this.lastEventStmt = db.prepare(`UPDATE sessions SET last_event_ns = ? WHERE id = ?`);
    this.metaStmt = db.prepare(`INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)`);
    this.incidents = new IncidentWriter(db);
  }

  anomaly(sid: number, a: Anomaly): void {
    this.anomalyStmt.run(
      a.seq, sid, a.rule, a.severity, a.pid, a.comm, a.addr, a.len, a.pfn, a.newPfn, a.confirmed ? 1 : 0, a.lowConfidence ? 1 : 0,
      a.tsNs, a.wallMs, a.pinId, a.summary, JSON.stringify(a.evidence), a.count ?? 1, a.lastTsNs ?? null,
    );
  }

  /** The first `n` events; returns the largest len among them (0 when none has one). */
  events(sid: number, evs: readonly SequencedEvent[], n: number): number {
    const args = this.args;
    let batchMaxLen = 0;
    let i = 0;
    for (; i + EVENT_CHUNK <= n; i += EVENT_CHUNK) {
      let j = 0;
      for (let k = i; k < i + EVENT_CHUNK; k++) {
        const e = evs[k];
        args[j++] = e.seq;
        args[j++] = sid;
        args[j++] = e.tsNs;
        args[j++] = e.kind;
        args[j++] = e.pid;
        args[j++] = e.tid;
        args[j++] = e.comm;
        args[j++] = eventAddr(e);
        const len = eventLen(e);
        if (len !== null && len > batchMaxLen) batchMaxLen = len;
        args[j++] = len;
        args[j++] = payloadJson(e);
      }
      this.eventMany.run(args);
    }
    for (; i < n; i++) {
      const e = evs[i];
      const len = eventLen(e);
      if (len !== null && len > batchMaxLen) batchMaxLen = len;
      this.eventOne.run(e.seq, sid, e.tsNs, e.kind, e.pid, e.tid, e.comm, eventAddr(e), len, payloadJson(e));
    }
    return batchMaxLen;
  }

  maxLen(len: number): void {
    this.metaStmt.run(META_MAX_LEN, String(len));
  }

  read(sid: number, x: PagemapRead, reason: string): void {
    this.readStmt.run(sid, x.tsNs, x.pid, x.addr, x.present ? 1 : 0, x.swapped ? 1 : 0, finiteOrNull(x.pfn), x.error ?? null, reason);
  }

  /** The first `n` reads (with their reasons), READ_CHUNK rows per statement. */
  reads(sid: number, xs: readonly PagemapRead[], reasons: readonly string[], n: number): void {
    const args = this.readArgs;
    let i = 0;
    for (; i + READ_CHUNK <= n; i += READ_CHUNK) {
      let j = 0;
      for (let k = i; k < i + READ_CHUNK; k++) {
        const x = xs[k];
        args[j++] = sid;
        args[j++] = x.tsNs;
        args[j++] = x.pid;
        args[j++] = x.addr;
        args[j++] = x.present ? 1 : 0;
        args[j++] = x.swapped ? 1 : 0;
        args[j++] = finiteOrNull(x.pfn);
        args[j++] = x.error ?? null;
        args[j++] = reasons[k];
      }
      this.readMany.run(args);
    }
    for (; i < n; i++) this.read(sid, xs[i], reasons[i]);
  }

  /** Events counted instead of stored (added to what the file has for that second and kind); returns rows. */
  counts(sid: number, c: EventCounts): number {
    let rows = 0;
    c.forEach((sec, kind, n) => {
      this.countStmt.run(sid, sec, kind, n);
      rows++;
    });
    return rows;
  }

  lostByKind(sid: number, json: string): void {
    this.lostByKindStmt.run(json, sid);
  }

  lost(sid: number, total: number): void {
    this.lostStmt.run(total, sid);
  }

  lastEvent(sid: number, ns: number): void {
    this.lastEventStmt.run(ns, sid);
  }

  /**
   * Upsert the pin row and the runs that changed since the last committed write of this pin: a run whose first
   * page and values are unchanged is skipped, a run that starts at a page no run starts at any more is deleted
   * (a merge of two page-ordered lists). A pin not written by this connection yet has its old rows, if any,
   * deleted first. Returns rows written.
   */
  pin(sid: number, p: Pin): number {
    this.pinStmt.run(
      p.id, sid, p.pid, p.comm, p.source, p.handle, p.addr, p.len, p.pageCount, p.writable ? 1 : 0, p.longterm ? 1 : 0, p.backing,
      p.createdNs, p.releasedNs, p.state, p.origin ?? 'event',
    );
    const runs = p.runs;
    const prev = this.written.get(p.id);
    let rows = 1;
    if (!prev) {
      this.runsDelete.run(p.id);
      for (const r of runs) this.upsertRun(p.id, r);
      return rows + runs.length;
    }
    let i = 0;
    let j = 0;
    while (j < runs.length || i < prev.n) {
      const r = j < runs.length ? runs[j] : undefined;
      if (i < prev.n && (r === undefined || prev.page[i] < r.page)) {
        this.runDelete.run(p.id, prev.page[i++]);
        rows++;
        continue;
      }
      const r2 = r as PinRun;
      if (i < prev.n && prev.page[i] === r2.page) {
        if (!sameAsWritten(prev, i, r2)) (this.upsertRun(p.id, r2), rows++);
        i++;
      } else (this.upsertRun(p.id, r2), rows++);
      j++;
    }
    return rows;
  }

  private upsertRun(pinId: number, r: PinRun): void {
    this.runUpsert.run(pinId, r.page, r.count, finiteOrNull(r.pinnedPfn), finiteOrNull(r.currentPfn), r.snapshotLate ? 1 : 0, finiteOrNull(r.mappedAddr));
  }

  /** After COMMIT: remember the runs written (a rolled-back transaction leaves them to be written again). */
  committedPins(pins: Iterable<Pin>): void {
    for (const p of pins) {
      if (p.state === 'released') {
        this.written.delete(p.id); // a released pin does not change again
        continue;
      }
      const runs = p.runs;
      let w = this.written.get(p.id);
      if (!w || w.page.length < runs.length) {
        w = writtenRuns(Math.max(4, runs.length));
        this.written.set(p.id, w);
      }
      for (let i = 0; i < runs.length; i++) {
        const r = runs[i];
        w.page[i] = r.page;
        w.count[i] = r.count;
        w.pinned[i] = r.pinnedPfn ?? NaN;
        w.current[i] = r.currentPfn ?? NaN;
        w.mapped[i] = r.mappedAddr ?? NaN;
        w.late[i] = r.snapshotLate ? 1 : 0;
      }
      w.n = runs.length;
    }
  }
}
