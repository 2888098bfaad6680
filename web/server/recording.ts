// Read-only queries over a pinwatch SQLite recording (layout: schema/tables.ts), for the dashboard's API:
// live (a second connection beside the collector's store, WAL lets both work) and replay alike.
// Everything the pages show that is not pushed over socket.io comes from here. What touches a page (the
// timeline) and the clock offset come from collector/store's own read queries, so the CLI and the web agree;
// the aggregates only the dashboard needs are plain SQL here.
import Database from 'better-sqlite3';
import { Store, isStoreError } from '../../collector/store/index.ts';
import {
  anomalyFromRow,
  parseJsonOr,
  pinSummaryFromRow,
  sessionFromRow,
  type AnomalyRow,
  type EventRow,
  type PinRow,
  type SessionRow,
} from '../../collector/store/rows.ts';
import type { Anomaly } from '../../schema/anomalies.ts';
import type { Incident } from '../../schema/incidents.ts';
import { eventPayload, type EventKind, type SequencedEvent } from '../../schema/events.ts';
import type { EventRates } from '../../schema/protocol.ts';
import type { PinPage, PinSummary } from '../../schema/pins.ts';
import type { SessionInfo } from '../../schema/session.ts';
import { PAGE_SIZE } from '../../schema/kernel.ts';
import type {
  RuleSeverityCount,
  StoredEvent,
  StoredPagemapRead,
  TimelineData,
  TimelinePageRef,
  TimelinePin,
} from '../shared/wire.ts';

const REQUIRED_TABLES = ['sessions', 'events', 'pins', 'pin_pages', 'pagemap_reads', 'anomalies'];

export class RecordingError extends Error {}

function eventFromRow(r: EventRow): StoredEvent {
  return {
    seq: r.seq,
    tsNs: r.ts_ns,
    kind: r.kind as EventKind,
    pid: r.pid,
    tid: r.tid,
    comm: r.comm,
    addr: r.addr,
    len: r.len,
    payload: parseJsonOr<Record<string, unknown>>(r.payload, {}),
  };
}

/** A store event (fields flat) as the dashboard's StoredEvent (kind-specific fields under payload). */
function storedFromSequenced(e: SequencedEvent, match?: string): StoredEvent {
  const payload = eventPayload(e);
  const addr = typeof payload.addr === 'number' ? payload.addr : typeof payload.vaddr === 'number' ? payload.vaddr : null;
  const len = typeof payload.len === 'number' ? payload.len : typeof payload.oldLen === 'number' ? payload.oldLen : null;
  const out: StoredEvent = { seq: e.seq, tsNs: e.tsNs, kind: e.kind, pid: e.pid, tid: e.tid, comm: e.comm, addr, len, payload };
  if (match) out.match = match;
  return out;
}

const PIN_COLUMNS = `p.id, p.session_id, p.pid, p.comm, p.source, p.handle, p.addr, p.len, p.pages, p.writable, p.longterm, p.backing,
  p.created_ns, p.released_ns, p.state,
  (SELECT count(*) FROM pin_pages pp WHERE pp.pin_id = p.id AND pp.pinned_pfn IS NOT NULL
     AND pp.current_pfn IS NOT NULL AND pp.current_pfn != pp.pinned_pfn) AS diverged_pages`;
const EVENT_COLUMNS = 'seq, session_id, ts_ns, kind, pid, tid, comm, addr, len, payload';

export class RecordingReader {
  readonly file: string;
  /** Non-fatal remarks about the file (schema version differs, …), shown as a status. */
  readonly warnings: string[] = [];
  private readonly db: Database.Database;
  private readonly store: Store;
  private readonly stmts = new Map<string, Database.Statement>();

  private constructor(file: string, db: Database.Database, store: Store) {
    this.file = file;
    this.db = db;
    this.store = store;
  }

  /** Opens a recording read-only; throws RecordingError when it is not a pinwatch recording. */
  static open(file: string): RecordingReader {
    let db: Database.Database;
    try {
      db = new Database(file, { readonly: true, fileMustExist: true });
    } catch (err) {
      throw new RecordingError(`cannot open ${file}: ${(err as Error).message} (fix: check the path of the recording)`);
    }
    try {
      const tables = new Set(
        (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((t) => t.name),
      );
      const missing = REQUIRED_TABLES.filter((t) => !tables.has(t));
      if (missing.length) {
        throw new RecordingError(`${file} is not a pinwatch recording (missing tables: ${missing.join(', ')}) (fix: pass a file written by pinwatch record or pinwatch serve --db)`);
      }
      // The store checks the schema version and says what to do when it differs.
      const store = Store.open(file, { readonly: true });
      return new RecordingReader(file, db, store);
    } catch (err) {
      db.close();
      if (err instanceof RecordingError) throw err;
      if (isStoreError(err)) throw new RecordingError(`${err.message} (${err.fix})`);
      throw new RecordingError(`cannot read ${file}: ${(err as Error).message} (fix: pass a file written by pinwatch record or pinwatch serve --db; a damaged copy may open with sqlite3's .recover)`);
    }
  }

  private stmt(sql: string): Database.Statement {
    let s = this.stmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.stmts.set(sql, s);
    }
    return s;
  }

  /** Incidents, oldest first (derived from the anomalies for files written before incidents were stored). */
  incidents(): Incident[] {
    return this.store.incidents();
  }

  close(): void {
    this.store.close();
    this.db.close();
  }

  /** A consistent copy of the whole database (the live store may be writing), for download. */
  async backupTo(dest: string): Promise<void> {
    await this.db.backup(dest);
  }

  sessions(): SessionInfo[] {
    // The store's view: a session whose collector died (never reopened for writing) reads as crashed.
    return this.store.sessions();
  }

  lastSession(): SessionInfo | null {
    const row = this.stmt('SELECT * FROM sessions ORDER BY id DESC LIMIT 1').get() as SessionRow | undefined;
    return row ? sessionFromRow(row) : null;
  }

  anomaliesAfter(afterSeq: number, limit = 10_000): Anomaly[] {
    // The newest `limit` after afterSeq, returned oldest first (the order the socket sends them in).
    const rows = this.stmt('SELECT * FROM anomalies WHERE seq > ? ORDER BY seq DESC LIMIT ?').all(afterSeq, limit) as AnomalyRow[];
    return rows.reverse().map(anomalyFromRow);
  }

  /** The oldest `limit` anomalies after afterSeq, oldest first: one page of a resume. */
  anomalyPage(afterSeq: number, limit: number): Anomaly[] {
    return (this.stmt('SELECT * FROM anomalies WHERE seq > ? ORDER BY seq LIMIT ?').all(afterSeq, limit) as AnomalyRow[]).map(anomalyFromRow);
  }

  anomaly(seq: number): Anomaly | null {
    const row = this.stmt('SELECT * FROM anomalies WHERE seq = ?').get(seq) as AnomalyRow | undefined;
    return row ? anomalyFromRow(row) : null;
  }

  anomalyCounts(): RuleSeverityCount[] {
    return this.stmt('SELECT rule, severity, count(*) AS count FROM anomalies GROUP BY rule, severity ORDER BY count DESC').all() as RuleSeverityCount[];
  }

  pins(): PinSummary[] {
    // The store's view: pins of a crashed session end at its last event instead of staying live forever.
    return this.store.pins();
  }

  pin(id: number): PinSummary | null {
    const row = this.stmt(`SELECT ${PIN_COLUMNS} FROM pins p WHERE p.id = ?`).get(id) as PinRow | undefined;
    return row ? pinSummaryFromRow(row) : null;
  }

  pinsLive(): number {
    return (this.stmt("SELECT count(*) AS n FROM pins WHERE released_ns IS NULL AND state != 'released'").get() as { n: number }).n;
  }

  pinPages(pinId: number): PinPage[] {
    const rows = this.stmt('SELECT addr, pinned_pfn, current_pfn, snapshot_late FROM pin_pages WHERE pin_id = ? ORDER BY page_index').all(pinId) as {
      addr: number;
      pinned_pfn: number | null;
      current_pfn: number | null;
      snapshot_late: number;
    }[];
    return rows.map((r) => ({ addr: r.addr, pinnedPfn: r.pinned_pfn, currentPfn: r.current_pfn, snapshotLate: r.snapshot_late === 1 }));
  }

  eventsBySeq(seqs: number[]): StoredEvent[] {
    if (seqs.length === 0) return [];
    const unique = [...new Set(seqs.filter((s) => Number.isSafeInteger(s)))].slice(0, 500);
    const rows = this.db
      .prepare(`SELECT ${EVENT_COLUMNS} FROM events WHERE seq IN (${unique.map(() => '?').join(',')}) ORDER BY seq`)
      .all(...unique) as EventRow[];
    return rows.map(eventFromRow);
  }

  eventCounts(): Partial<Record<EventKind, number>> {
    const out: Partial<Record<EventKind, number>> = {};
    for (const r of this.stmt('SELECT kind, count(*) AS n FROM events GROUP BY kind').all() as { kind: EventKind; n: number }[]) out[r.kind] = r.n;
    return out;
  }

  lostEvents(): number {
    const s = this.stmt('SELECT coalesce(sum(lost_events), 0) AS n FROM sessions').get() as { n: number };
    return s.n;
  }

  /** The last CLOCK_MONOTONIC timestamp the recording holds: "now" when replaying it. */
  lastTsNs(): number {
    // seq order is time order in the events table: the last row is the latest (no scan of ts_ns).
    const r = this.stmt(
      'SELECT max(t) AS t FROM (SELECT ts_ns AS t FROM (SELECT ts_ns FROM events ORDER BY seq DESC LIMIT 1) UNION ALL SELECT max(ts_ns) FROM pagemap_reads UNION ALL SELECT max(ts_ns) FROM anomalies)',
    ).get() as { t: number | null };
    return r.t ?? 0;
  }

  /** wall ms − CLOCK_MONOTONIC ms of the first session (the store records it when the session starts). */
  private monoToWallOffsetMs(): number | null {
    const s = this.stmt('SELECT id FROM sessions ORDER BY id LIMIT 1').get() as { id: number } | undefined;
    return s ? this.store.clockOffset(s.id) : null;
  }

  /** Event counts per kind in time buckets over the whole recording (≤ maxBuckets; 1 s when it fits). */
  rates(maxBuckets = 600): EventRates[] {
    const span = this.stmt('SELECT min(ts_ns) AS lo, max(ts_ns) AS hi FROM events').get() as { lo: number | null; hi: number | null };
    const offset = this.monoToWallOffsetMs();
    if (span.lo === null || span.hi === null || offset === null) return [];
    const bucketNs = Math.max(1e9, Math.ceil((span.hi - span.lo) / maxBuckets / 1e9) * 1e9);
    const rows = this.stmt(
      'SELECT CAST((ts_ns - ?) / ? AS INTEGER) AS b, kind, count(*) AS n FROM events GROUP BY b, kind ORDER BY b',
    ).all(span.lo, bucketNs) as { b: number; kind: EventKind; n: number }[];
    const buckets = new Map<number, EventRates>();
    for (const r of rows) {
      let bucket = buckets.get(r.b);
      if (!bucket) {
        bucket = { wallMs: Math.round(offset + (span.lo + (r.b + 1) * bucketNs) / 1e6), counts: {} };
        buckets.set(r.b, bucket);
      }
      // Per second, whatever the bucket width, so the chart's axis means the same in live and replay.
      bucket.counts[r.kind] = r.n / (bucketNs / 1e9);
    }
    // Empty seconds are real zeroes: fill them so the chart does not interpolate across gaps.
    const out: EventRates[] = [];
    const last = Math.max(...buckets.keys());
    for (let b = 0; b <= last; b++) {
      out.push(buckets.get(b) ?? { wallMs: Math.round(offset + (span.lo + (b + 1) * bucketNs) / 1e6), counts: {} });
    }
    return out;
  }

  /**
   * Pinned pages to offer on the timeline page: those with anomalies first, then diverged ones, newest pins first.
   * Counted in one pass over anomalies grouped by (pid, addr, len) and one over pin_pages — a correlated
   * subquery per page was quadratic (minutes on a recording with 16k anomalies, with the collector's loop blocked).
   */
  pinnedPages(limit = 200): TimelinePageRef[] {
    const perPage = new Map<string, number>();
    for (const g of this.stmt('SELECT pid, addr, max(len, 1) AS len, count(*) AS n FROM anomalies GROUP BY pid, addr, len').iterate() as Iterable<{
      pid: number;
      addr: number;
      len: number;
      n: number;
    }>) {
      const pages = Math.min(Math.ceil(g.len / PAGE_SIZE), 4096);
      for (let i = 0; i < pages; i++) {
        const key = `${g.pid}:${g.addr + i * PAGE_SIZE}`;
        perPage.set(key, (perPage.get(key) ?? 0) + g.n);
      }
    }
    const out: TimelinePageRef[] = [];
    for (const r of this.stmt(
      `SELECT p.pid, p.comm, pp.addr, p.id AS pinId, pp.pinned_pfn AS pinnedPfn, pp.current_pfn AS currentPfn
       FROM pin_pages pp JOIN pins p ON p.id = pp.pin_id`,
    ).iterate() as Iterable<Omit<TimelinePageRef, 'anomalies'>>) {
      out.push({ ...r, anomalies: perPage.get(`${r.pid}:${r.addr}`) ?? 0 });
    }
    const moved = (p: TimelinePageRef) => (p.pinnedPfn !== null && p.currentPfn !== p.pinnedPfn ? 1 : 0);
    out.sort((a, b) => b.anomalies - a.anomalies || moved(b) - moved(a) || b.pinId - a.pinId || a.addr - b.addr);
    return out.slice(0, limit);
  }

  /**
   * "Page, where are you": everything that touched page `addr` of `pid` — the store's page timeline (events whose
   * range covers it, the process's fork/exit, khugepaged/KSM events on its mm, events naming one of the page's
   * pfns, pagemap reads), plus the pins covering it, the anomalies on it and lost-event marks in the window.
   */
  timeline(pid: number, rawAddr: number, nowNs: number): TimelineData {
    const addr = Math.floor(rawAddr / PAGE_SIZE) * PAGE_SIZE;
    const end = addr + PAGE_SIZE;

    const pinRows = this.stmt(`SELECT ${PIN_COLUMNS} FROM pins p WHERE p.pid = ? AND p.addr < ? AND p.addr + p.len > ? ORDER BY p.id`).all(
      pid,
      end,
      addr,
    ) as PinRow[];
    const pins: TimelinePin[] = pinRows.map((r) => {
      const page = this.stmt('SELECT addr, pinned_pfn, current_pfn, snapshot_late FROM pin_pages WHERE pin_id = ? AND addr = ?').get(r.id, addr) as
        | { addr: number; pinned_pfn: number | null; current_pfn: number | null; snapshot_late: number }
        | undefined;
      return {
        ...pinSummaryFromRow(r),
        page: page ? { addr: page.addr, pinnedPfn: page.pinned_pfn, currentPfn: page.current_pfn, snapshotLate: page.snapshot_late === 1 } : null,
      };
    });

    const anomalies = (
      this.stmt('SELECT * FROM anomalies WHERE pid = ? AND addr < ? AND addr + max(len, 1) > ? ORDER BY seq').all(pid, end, addr) as AnomalyRow[]
    ).map(anomalyFromRow);

    // Events and pagemap reads of the page: the store's definition of "touched this page".
    const events: StoredEvent[] = [];
    const reads: StoredPagemapRead[] = [];
    let readId = 0;
    for (const entry of this.store.pageTimeline(pid, addr)) {
      if (entry.type === 'event') events.push(storedFromSequenced(entry.event, entry.match));
      else reads.push({ ...entry.read, id: ++readId, reason: entry.reason });
    }
    // Lost-event marks inside the page's window: the timeline may be missing something there.
    const times = events.map((e) => e.tsNs).concat(reads.map((r) => r.tsNs), pins.map((p) => p.createdNs));
    if (times.length) {
      const lo = Math.min(...times);
      const hi = Math.max(...times, ...pins.map((p) => p.releasedNs ?? 0));
      const seen = new Set(events.map((e) => e.seq));
      for (const r of this.stmt(`SELECT ${EVENT_COLUMNS} FROM events WHERE kind = 'lost' AND ts_ns BETWEEN ? AND ? LIMIT 200`).all(lo, hi) as EventRow[]) {
        if (!seen.has(r.seq)) events.push({ ...eventFromRow(r), match: 'lost' });
      }
    }
    events.sort((a, b) => a.tsNs - b.tsNs || a.seq - b.seq);
    const comm = pins[0]?.comm ?? anomalies[0]?.comm ?? events.find((e) => e.pid === pid)?.comm ?? '';
    return { pid, addr, comm, pins, events, reads, anomalies, nowNs };
  }
}
