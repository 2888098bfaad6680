// The read side of a pinwatch recording: every query the CLI, the exporters and the dashboard make, on one
// connection — the writer's own (Store) or a read-only one beside a live writer (WAL lets both work) or on a
// replayed file. Rows come back in the schema's types (schema/stored.ts for what only a recording has).
import type Database from 'better-sqlite3';
import type { Anomaly, PagemapRead, RuleId, Severity } from '../../schema/anomalies.ts';
import type { EventKind, SequencedEvent } from '../../schema/events.ts';
import { pinPageIndex } from '../../schema/pin-runs.ts';
import type { Incident } from '../../schema/incidents.ts';
import type { RuleSeverityCount } from '../../schema/metrics.ts';
import type { Pin, PinSummary } from '../../schema/pins.ts';
import type { EventRates } from '../../schema/protocol.ts';
import { gapOverlaps, type CaptureGap, type PinnedMemory } from '../../schema/reliability.ts';
import type { SessionInfo } from '../../schema/session.ts';
import { PIN_RUNS_PAGE_MAX, type PinRunsPage, type StoredEvent, type TimelineData, type TimelinePageRef, type TimelinePin } from '../../schema/stored.ts';
import { PAGE_SIZE } from '../../schema/kernel.ts';
import { orphanedOpenSessions } from './crashed-sessions.ts';
import { readGaps } from './gaps.ts';
import { readIncidents, type IncidentFilter } from './incidents.ts';
import { writerAlive } from './lock.ts';
import { openDatabase } from './open.ts';
import { countRuns, ensureRunsReadable, readPage, readRuns } from './page-runs.ts';
import { readPinnedMemory } from './pinned-memory.ts';
import { clockOffset, eventRatesSince, hasCounts, recordingRates } from './rates.ts';
import {
  PIN_SELECT, anomalyFromRow, eventFromRow, pagemapReadFromRow, pinSummaryFromRow, sessionFromRow, storedEventFromRow,
  type AnomalyRow, type EventRow, type PagemapRow, type PinRow, type SessionRow,
} from './rows.ts';
import { Statements } from './statements.ts';
import { pageEvents, pageTimeline, pagemapReadsOfPage, pinnedPages, type TimelineEntry } from './timeline.ts';

export interface AnomalyFilter {
  /** Only anomalies with seq > afterSeq. */
  afterSeq?: number;
  rule?: RuleId;
  severity?: Severity;
  pid?: number;
  comm?: string;
  confirmed?: boolean;
  sessionId?: number;
  /** Default 10,000; Infinity: all. */
  limit?: number;
  /** Default 'asc' (seq order). */
  order?: 'asc' | 'desc';
}

export interface EventFilter {
  afterSeq?: number;
  pid?: number;
  kind?: EventKind;
  sessionId?: number;
  /** Default 10,000. */
  limit?: number;
  order?: 'asc' | 'desc';
}

/** SQLite reads a negative LIMIT as none. */
function sqlLimit(limit: number | undefined): number {
  const n = limit ?? 10_000;
  return Number.isFinite(n) ? n : -1;
}

/** SELECT of a seq-ordered table: seq > afterSeq and `column = value` for each value given. */
function filtered(
  table: string,
  f: { afterSeq?: number; order?: 'asc' | 'desc'; limit?: number },
  equal: Record<string, unknown>,
): { sql: string; args: unknown[] } {
  const where: string[] = [];
  const args: unknown[] = [];
  if (f.afterSeq !== undefined) (where.push('seq > ?'), args.push(f.afterSeq));
  for (const [column, value] of Object.entries(equal)) if (value !== undefined) (where.push(`${column} = ?`), args.push(value));
  args.push(sqlLimit(f.limit));
  const sql = `SELECT * FROM ${table}${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY seq ${f.order === 'desc' ? 'DESC' : 'ASC'} LIMIT ?`;
  return { sql, args };
}

/** The largest seq / id of each numbered table (0 when empty). */
export interface LastIds {
  event: number;
  anomaly: number;
  pin: number;
  incident: number;
}

export class StoreQueries {
  private readonly q: Statements;
  private closed = false;
  private runsChecked = false;

  /** Queries on an open connection (the writer's, or a read-only one; read-only views repair crashed sessions on the fly). */
  constructor(
    readonly file: string,
    private readonly db: Database.Database,
  ) {
    this.q = new Statements(db);
  }

  /** Open a recording read-only (it must exist). Throws StoreError (with a fix) when it is not one this version reads. */
  static open(file: string, busyTimeoutMs?: number): StoreQueries {
    const opened = openDatabase(file, true, busyTimeoutMs);
    return new StoreQueries(opened.file, opened.db);
  }

  /** Close the connection (a writer's Store closes its own). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.q.clear();
    if (this.db.open) this.db.close();
  }

  get isClosed(): boolean {
    return this.closed || !this.db.open;
  }

  /** A consistent copy of the whole database (a live writer may be writing), e.g. for download. */
  async backupTo(dest: string): Promise<void> {
    await this.db.backup(dest);
  }

  // ------------------------------------------------------------------ sessions

  /** Sessions, oldest first; a read-only view shows a session whose collector died (file never reopened) as crashed. */
  sessions(): SessionInfo[] {
    return this.recordedSessionRows().map((r) => this.sessionView(r));
  }

  session(id: number): SessionInfo | null {
    const r = this.q.get(`SELECT * FROM sessions WHERE id = ?`).get(id) as SessionRow | undefined;
    return r ? this.sessionView(r) : null;
  }

  /** Sessions exactly as the file records them, oldest first. */
  recordedSessions(): SessionInfo[] {
    return this.recordedSessionRows().map(sessionFromRow);
  }

  /** The newest session as recorded (null: none). */
  lastSession(): SessionInfo | null {
    const row = this.q.get('SELECT * FROM sessions ORDER BY id DESC LIMIT 1').get() as SessionRow | undefined;
    return row ? sessionFromRow(row) : null;
  }

  private recordedSessionRows(): SessionRow[] {
    return this.q.get(`SELECT * FROM sessions ORDER BY id`).all() as SessionRow[];
  }

  /**
   * Sessions a dead collector left open, as a reader sees them (a writer repairs them when it opens the file):
   * session id → its last event's ts. Empty for a writer, or while the file's writer is alive.
   */
  private crashedView(): Map<number, number | null> {
    if (!this.db.readonly) return new Map();
    return orphanedOpenSessions(this.db, writerAlive(this.db));
  }

  private sessionView(r: SessionRow): SessionInfo {
    const s = sessionFromRow(r);
    if (s.endedWallMs !== null || !this.db.readonly) return s;
    const crashed = this.crashedView();
    if (!crashed.has(s.id)) return s;
    const last = crashed.get(s.id) ?? null;
    const off = this.clockOffset(s.id);
    return {
      ...s,
      endedWallMs: last !== null && off !== null ? Math.round(off + last / 1e6) : s.startedWallMs,
      endReason: 'crashed',
      endDetail: 'the collector stopped without ending the session',
      lastEventNs: last,
    };
  }

  lastIds(): LastIds {
    const max = (sql: string) => ((this.q.get(sql).get() as { m: number | null }).m ?? 0);
    return {
      event: max(`SELECT max(seq) AS m FROM events`),
      anomaly: max(`SELECT max(seq) AS m FROM anomalies`),
      pin: max(`SELECT max(id) AS m FROM pins`),
      incident: max(`SELECT max(id) AS m FROM incidents`),
    };
  }

  /** Lost events bpftrace reported, over all sessions. */
  lostEvents(): number {
    return (this.q.get('SELECT coalesce(sum(lost_events), 0) AS n FROM sessions').get() as { n: number }).n;
  }

  /** Capture gaps (bpftrace not capturing), of one session or all, in time order. */
  gaps(sessionId?: number): (CaptureGap & { sessionId: number })[] {
    return readGaps(this.db, sessionId);
  }

  /** The latest VmPin / VmLck reading per process (see schema/reliability.ts). */
  pinnedMemory(sessionId?: number): (PinnedMemory & { sessionId: number })[] {
    return readPinnedMemory(this.db, sessionId);
  }

  // ------------------------------------------------------------------ anomalies and incidents

  anomalies(f: AnomalyFilter = {}): Anomaly[] {
    const confirmed = f.confirmed === undefined ? undefined : f.confirmed ? 1 : 0;
    const { sql, args } = filtered('anomalies', f, {
      rule: f.rule, severity: f.severity, pid: f.pid, comm: f.comm, confirmed, session_id: f.sessionId,
    });
    return (this.q.get(sql).all(...args) as AnomalyRow[]).map(anomalyFromRow);
  }

  /** The stored anomaly with that seq, or null. */
  anomaly(seq: number): Anomaly | null {
    const r = this.q.get(`SELECT * FROM anomalies WHERE seq = ?`).get(seq) as AnomalyRow | undefined;
    return r ? anomalyFromRow(r) : null;
  }

  /** Anomalies per (rule, severity), most frequent first. */
  anomalyCounts(): RuleSeverityCount[] {
    return this.q.get('SELECT rule, severity, count(*) AS count FROM anomalies GROUP BY rule, severity ORDER BY count DESC').all() as RuleSeverityCount[];
  }

  /** Incidents, oldest first (derived from the anomalies for files written before incidents were stored). */
  incidents(f: IncidentFilter = {}): Incident[] {
    return readIncidents(this.db, f);
  }

  // ------------------------------------------------------------------ pins

  /** Every pin (latest state), with page counts; `divergedPages` counts pages whose current pfn differs from the pinned one. */
  pins(sessionId?: number): PinSummary[] {
    this.runsReadable();
    const sql = `${PIN_SELECT} ${sessionId !== undefined ? 'WHERE p.session_id = ?' : ''} ORDER BY p.id`;
    const rows = (sessionId !== undefined ? this.q.get(sql).all(sessionId) : this.q.get(sql).all()) as PinRow[];
    const crashed = this.crashedView();
    return rows.map((r) => this.pinView(r, crashed));
  }

  /** One pin's summary, or null. */
  pin(id: number): PinSummary | null {
    this.runsReadable();
    const r = this.q.get(`${PIN_SELECT} WHERE p.id = ?`).get(id) as PinRow | undefined;
    return r ? this.pinView(r, this.crashedView()) : null;
  }

  /** A dead collector's pins are not live: they end, as far as the recording knows, at its last event. */
  private pinView(r: PinRow, crashed: Map<number, number | null>): PinSummary {
    const p = pinSummaryFromRow(r);
    if (p.releasedNs === null && crashed.has(r.session_id)) return { ...p, releasedNs: crashed.get(r.session_id) ?? p.createdNs, state: 'released' as const };
    return p;
  }

  /** An older file read-only has pin_pages, not runs: this connection builds them once (page-runs.ts). */
  private runsReadable(): void {
    if (this.runsChecked) return;
    ensureRunsReadable(this.db);
    this.runsChecked = true;
  }

  /** One pin with all its runs, or null. */
  pinDetail(id: number): Pin | null {
    this.runsReadable();
    const r = this.q.get(`SELECT p.*, 0 AS diverged_pages FROM pins p WHERE id = ?`).get(id) as PinRow | undefined;
    return r ? this.pinWithRuns(r) : null;
  }

  private pinWithRuns(r: PinRow): Pin {
    const { divergedPages: _d, ...pin } = pinSummaryFromRow(r);
    return { ...pin, runs: readRuns(this.q, r.id) };
  }

  /** A slice of one pin's runs in page order (`limit` capped at PIN_RUNS_PAGE_MAX), or null when there is no such pin. */
  pinRuns(pinId: number, offset = 0, limit = PIN_RUNS_PAGE_MAX): PinRunsPage | null {
    this.runsReadable();
    const pin = this.q.get(`SELECT pages FROM pins WHERE id = ?`).get(pinId) as { pages: number } | undefined;
    if (!pin) return null;
    const from = Math.max(0, Math.floor(offset));
    const n = Math.min(Math.max(1, Math.floor(limit)), PIN_RUNS_PAGE_MAX);
    return { pinId, pageCount: pin.pages, totalRuns: countRuns(this.q, pinId), offset: from, runs: readRuns(this.q, pinId, from, n) };
  }

  /** Every pin with its runs, in id order, as recorded (for export). */
  *eachPin(): Generator<Pin> {
    this.runsReadable();
    for (const r of this.db.prepare(`SELECT p.*, 0 AS diverged_pages FROM pins p ORDER BY id`).all() as PinRow[]) yield this.pinWithRuns(r);
  }

  // ------------------------------------------------------------------ events and pagemap reads

  /** The events with these seqs, in seq order (unknown seqs are skipped). */
  eventsBySeq(seqs: readonly number[]): SequencedEvent[] {
    const out: SequencedEvent[] = [];
    const s = this.q.get(`SELECT * FROM events WHERE seq = ?`);
    for (const seq of [...new Set(seqs)].sort((a, b) => a - b)) {
      const r = s.get(seq) as EventRow | undefined;
      if (r) out.push(eventFromRow(r));
    }
    return out;
  }

  /** The same as rows to show (at most 500 distinct seqs; unknown or unsafe ones skipped), in seq order. */
  storedEvents(seqs: readonly number[]): StoredEvent[] {
    const unique = [...new Set(seqs.filter((s) => Number.isSafeInteger(s)))].slice(0, 500);
    if (unique.length === 0) return [];
    const rows = this.db.prepare(`SELECT * FROM events WHERE seq IN (${unique.map(() => '?').join(',')}) ORDER BY seq`).all(...unique) as EventRow[];
    return rows.map((r) => storedEventFromRow(r));
  }

  events(f: EventFilter = {}): SequencedEvent[] {
    const { sql, args } = filtered('events', f, { pid: f.pid, kind: f.kind, session_id: f.sessionId });
    return (this.q.get(sql).all(...args) as EventRow[]).map(eventFromRow);
  }

  /** Every event in seq order, iterated (constant memory on a multi-GB recording). */
  *eachEvent(): Generator<SequencedEvent> {
    for (const r of this.db.prepare(`SELECT * FROM events ORDER BY seq`).iterate() as Iterable<EventRow>) yield eventFromRow(r);
  }

  /** Events per kind over the whole file. */
  eventCounts(): Partial<Record<EventKind, number>> {
    const out: Partial<Record<EventKind, number>> = {};
    for (const r of this.q.get('SELECT kind, count(*) AS n FROM events GROUP BY kind').all() as { kind: EventKind; n: number }[]) out[r.kind] = r.n;
    // Events counted instead of stored (collector/kept-events.ts) are events all the same.
    if (hasCounts(this.q)) {
      for (const r of this.q.get('SELECT kind, sum(n) AS n FROM event_counts GROUP BY kind').all() as { kind: EventKind; n: number }[]) {
        out[r.kind] = (out[r.kind] ?? 0) + r.n;
      }
    }
    return out;
  }

  /** The last CLOCK_MONOTONIC timestamp the recording holds: "now" when replaying it. */
  lastTsNs(): number {
    // seq order is time order in the events table: the last row is the latest (no scan of ts_ns).
    const r = this.q.get(
      'SELECT max(t) AS t FROM (SELECT ts_ns AS t FROM (SELECT ts_ns FROM events ORDER BY seq DESC LIMIT 1) UNION ALL SELECT max(ts_ns) FROM pagemap_reads UNION ALL SELECT max(ts_ns) FROM anomalies)',
    ).get() as { t: number | null };
    return r.t ?? 0;
  }

  /** Pagemap reads of one page of a process, in time order. */
  pagemapReads(pid: number, addr: number): { read: PagemapRead; reason: string }[] {
    return pagemapReadsOfPage(this.q, pid, addr);
  }

  /** Every pagemap read in id order, iterated. */
  *eachPagemapRead(): Generator<{ id: number; reason: string; read: PagemapRead }> {
    for (const r of this.db.prepare(`SELECT * FROM pagemap_reads ORDER BY id`).iterate() as Iterable<PagemapRow>) {
      yield { id: r.id, reason: r.reason, read: pagemapReadFromRow(r) };
    }
  }

  // ------------------------------------------------------------------ time

  /** wall ms − CLOCK_MONOTONIC ms for a session (recorded at startSession; estimated for files that lack it). */
  clockOffset(sessionId: number): number | null {
    return clockOffset(this.q, sessionId);
  }

  /** Events per kind per wall-clock second since `sinceWallMs` (1 s buckets; wallMs is the end of the bucket). */
  eventRates(sinceWallMs: number): EventRates[] {
    return eventRatesSince(this.q, this.sessions(), sinceWallMs);
  }

  /** Event counts per kind (per second) in time buckets over the whole recording (≤ maxBuckets; 1 s when it fits). */
  rates(maxBuckets = 600): EventRates[] {
    const first = this.q.get('SELECT id FROM sessions ORDER BY id LIMIT 1').get() as { id: number } | undefined;
    return recordingRates(this.q, first ? this.clockOffset(first.id) : null, maxBuckets);
  }

  // ------------------------------------------------------------------ one page

  /**
   * Everything that touched one page of a process, in time order: events whose [addr, addr+len) covers it
   * (pin_iovec, madvise, munmap, mremap old or new range, fault, …), the process's fork/exit, khugepaged events
   * of the process (its pid, or its mm pointer from pin_result), events naming a pfn the page had (pinned,
   * read by pagemap, wp_page, gup), the pin_result of a covering pin_iovec, and the pagemap reads of the page.
   */
  pageTimeline(pid: number, addr: number): TimelineEntry[] {
    this.runsReadable();
    return pageTimeline(this.q, pid, addr);
  }

  /**
   * "Page, where are you", as the dashboard draws it: the page timeline plus the pins covering the page (with
   * its row), the anomalies on it and lost-event marks in its window.
   */
  timeline(pid: number, rawAddr: number, nowNs: number): TimelineData {
    const addr = Math.floor(rawAddr / PAGE_SIZE) * PAGE_SIZE;
    const end = addr + PAGE_SIZE;
    this.runsReadable();
    const crashed = this.crashedView();
    const pinRows = this.q.get(`${PIN_SELECT} WHERE p.pid = ? AND p.addr < ? AND p.addr + p.len > ? ORDER BY p.id`).all(pid, end, addr) as PinRow[];
    const pins: TimelinePin[] = pinRows.map((r) => ({ ...this.pinView(r, crashed), page: readPage(this.q, r.id, pinPageIndex(r.addr, addr)) ?? null }));
    const anomalies = (
      this.q.get('SELECT * FROM anomalies WHERE pid = ? AND addr < ? AND addr + max(len, 1) > ? ORDER BY seq').all(pid, end, addr) as AnomalyRow[]
    ).map(anomalyFromRow);
    const { events, reads } = pageEvents(this.q, pid, addr, {
      lo: pins.map((p) => p.createdNs),
      hi: pins.map((p) => p.releasedNs ?? 0),
    });
    const comm = pins[0]?.comm ?? anomalies[0]?.comm ?? events.find((e) => e.pid === pid)?.comm ?? '';
    // Gaps inside the pins' lifetimes: the page may have changed there with no event to show for it.
    const from = Math.min(...pins.map((p) => p.createdNs));
    const to = pins.some((p) => p.releasedNs === null) ? Infinity : Math.max(...pins.map((p) => p.releasedNs ?? 0));
    const gaps = pins.length ? this.gaps().filter((g) => gapOverlaps(g, from, to)).map(({ sessionId: _, ...g }) => g) : [];
    return { pid, addr, comm, pins, events, reads, anomalies, gaps, nowNs };
  }

  /** Pinned pages to offer on the timeline page: those with anomalies first, then diverged ones, newest pins first. */
  pinnedPages(limit = 200): TimelinePageRef[] {
    this.runsReadable();
    return pinnedPages(this.q, limit);
  }
}
