// The SQLite store: a CollectorSink that queues what the collector produces and writes it in batched
// transactions (every flushIntervalMs or maxBatchRows, whichever comes first), plus the read queries the
// web, the CLI and the tests use. One writer per file (WAL lets readers — the dashboard, a replay — work beside it).
//
// Durability contract: anything handed to the sink is in the database after flush() / close(); a flush that
// fails (locked database) keeps every queued row and retries, so nothing acknowledged is dropped. A process
// exit ('exit' event) flushes synchronously too, for callers that forget close().
import Database from 'better-sqlite3';
import { accessSync, constants, existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, resolve } from 'node:path';
import type { Anomaly, PagemapRead, RuleId, Severity } from '../../schema/anomalies.ts';
import type { EventKind, SequencedEvent } from '../../schema/events.ts';
import { PAGE_SIZE } from '../../schema/kernel.ts';
import type { Pin, PinPage, PinSummary } from '../../schema/pins.ts';
import type { EventRates } from '../../schema/protocol.ts';
import type { SessionInfo } from '../../schema/session.ts';
import type { Incident } from '../../schema/incidents.ts';
import type { CaptureGap, PinnedMemory } from '../../schema/reliability.ts';
import type { SessionEndReason } from '../../schema/session.ts';
import { DDL, OLDEST_READABLE_SCHEMA_VERSION, SCHEMA_VERSION } from '../../schema/tables.ts';
import type { CollectorSink, SessionStart } from '../contracts.ts';
import { StoreError, toStoreError } from './errors.ts';
import { IncidentWriter, backfillIncidents, readIncidents, type IncidentFilter } from './incidents.ts';
import {
  anomalyFromRow, eventAddr, eventFromRow, eventLen, MM_KINDS, PFN_KINDS, pagemapReadFromRow, payloadJson, pinPageFromRow, pinSummaryFromRow,
  sessionFromRow,
  type AnomalyRow, type EventRow, type PagemapRow, type PinPageRow, type PinRow, type SessionRow,
} from './rows.ts';
import {
  closeCrashedSessions, fileSchemaVersion, orphanedOpenSessions, readGaps, readPinnedMemory, upgradeSchema, writeGap, writePinnedMemory,
} from './reliability.ts';

export interface StoreOptions {
  /** Open for reading only (replay, a second connection beside a live writer). The file must exist. */
  readonly?: boolean;
  /** Write queued rows at most this long after they were handed over (ms). Default 50. */
  flushIntervalMs?: number;
  /** Write as soon as this many rows are queued. Default 20,000. */
  maxBatchRows?: number;
  /**
   * At most this many events (and as many pagemap reads) wait in memory while writes fail (disk full, locked):
   * beyond, new ones are dropped and counted (stats().dropped). Anomalies, pins and gaps are always kept.
   * Default 200,000 (~60 MB).
   */
  maxQueuedRows?: number;
  /** While recovering from failed writes, rows per transaction (small batches: space may be scarce). Default 1,000. */
  recoveryBatchRows?: number;
  /** How long an explicit flush()/close() waits for another writer's lock (ms). Default 5,000. */
  busyTimeoutMs?: number;
  /** How long a background flush waits for a lock before retrying later (ms). Default 200. */
  backgroundBusyTimeoutMs?: number;
  /** A background flush failed (rows stay queued and are retried); called once per failure streak. */
  onError?: (err: StoreError | Error) => void;
  /** The background flush succeeded again after failing. */
  onRecovered?: () => void;
}

export interface AnomalyFilter {
  /** Only anomalies with seq > afterSeq. */
  afterSeq?: number;
  rule?: RuleId;
  severity?: Severity;
  pid?: number;
  comm?: string;
  confirmed?: boolean;
  sessionId?: number;
  /** Default 10,000. */
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

/** Where the next Collector on this database continues (CollectorOptions field names). */
export interface NextSeqs {
  firstEventSeq: number;
  firstAnomalySeq: number;
  firstPinId: number;
  firstIncidentId: number;
}

/** How a timeline event relates to the page: its address range covers it, it concerns the whole process
 * (fork, exit), it names the process's mm (khugepaged), it names a pfn the page had, or it is the result of a
 * pinning call that covered it. */
export type TimelineMatch = 'range' | 'process' | 'mm' | 'pfn' | 'result';

export type TimelineEntry =
  | { type: 'event'; tsNs: number; match: TimelineMatch; event: SequencedEvent }
  | { type: 'pagemap'; tsNs: number; read: PagemapRead; reason: string };

export interface StoreStats {
  /** Rows waiting for the next flush. */
  queued: number;
  flushes: number;
  /** Rows written since open. */
  rowsWritten: number;
  failedFlushes: number;
  lastFlushMs: number;
  /** Events and pagemap reads dropped because the queue was full while writes failed. */
  dropped: number;
}

const EVENT_COLS = 10;
/** Rows per multi-row INSERT: one native call binds this many events. */
const EVENT_CHUNK = 64;
/** Index granularity of events by address (schema/tables.ts: events_pid_gib). */
const GIB = 2 ** 30;
const PROCESS_KINDS = ['fork', 'exit'];
const COLLAPSE_KINDS = ['collapse_file', 'scan_file', 'scan_pmd', 'collapse_isolate'];
const META_VERSION = 'schema_version';
/** meta row: the largest events.len written, so pageTimeline bounds its index range scan from below. */
const META_MAX_LEN = 'events.max_len';
/** meta row naming the live writer ({pid, host, sinceMs}): one writer per file, or seqs would collide. */
const META_WRITER = 'writer';
/** Files this process has open for writing. */
const openWriters = new Set<string>();
const clockKey = (sessionId: number) => `session.${sessionId}.wall_minus_mono_ms`;

function sqlList(values: readonly string[]): string {
  return values.map((v) => `'${v}'`).join(',');
}

/** CLOCK_MONOTONIC in ms (process.hrtime is CLOCK_MONOTONIC on Linux: the clock of bpftrace's nsecs). */
function monoMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Written state of a pin's pages, to write only pages that changed (NaN = null). */
interface WrittenPages {
  addr: Float64Array;
  pinned: Float64Array;
  current: Float64Array;
  late: Uint8Array;
}

export class Store implements CollectorSink {
  readonly file: string;
  readonly readonly: boolean;

  private readonly db: Database.Database;
  private readonly opts: Required<Omit<StoreOptions, 'onError' | 'onRecovered' | 'readonly'>> & Pick<StoreOptions, 'onError' | 'onRecovered'>;
  /** Sessions closed as crashed when this writer opened the file. */
  readonly recoveredSessions: number[] = [];
  private sessionId: number | null = null;
  private closed = false;

  // queues (the hot path only pushes)
  private eventQ: SequencedEvent[] = [];
  private anomaliesQ: Anomaly[] = [];
  private reads: PagemapRead[] = [];
  private readReasons: string[] = [];
  private pinsQ = new Map<number, Pin>();
  private incidentsQ = new Map<number, Incident>();
  private lostTotal = 0;
  private lostWritten = 0;
  /** Largest events.len in the file (meta events.max_len); -1 until read. */
  private maxLen = -1;
  private readonly written = new Map<number, WrittenPages>();
  private pendingMaxLen = 0;
  /** How many queued events / pagemap reads the running transaction writes (a prefix of each queue). */
  private eventsInBatch = 0;
  private readsInBatch = 0;

  private timer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private failing = false;
  private retryMs = 0;
  private readonly exitHook: () => void;
  private readonly stmtCache = new Map<string, Database.Statement>();
  private readonly stat: StoreStats = { queued: 0, flushes: 0, rowsWritten: 0, failedFlushes: 0, lastFlushMs: 0, dropped: 0 };
  private readonly gapsQ = new Set<CaptureGap>();
  private pinnedQ: PinnedMemory[] = [];
  /** Largest event ts handed over in this session (sessions.last_event_ns). */
  private lastEventNs = -1;
  private lastEventWritten = -1;
  /** Rows per transaction now: all of them normally, recoveryBatchRows after a failure until the queue drains. */
  private batchLimit = Infinity;

  // write statements (null when read-only)
  private readonly w: {
    eventMany: Database.Statement;
    eventOne: Database.Statement;
    anomaly: Database.Statement;
    read: Database.Statement;
    pin: Database.Statement;
    page: Database.Statement;
    lost: Database.Statement;
    lastEvent: Database.Statement;
    meta: Database.Statement;
    incidents: IncidentWriter;
    args: unknown[];
    batch: Database.Transaction<() => number>;
  } | null = null;

  private constructor(file: string, db: Database.Database, readonly: boolean, opts: StoreOptions) {
    this.file = file;
    this.db = db;
    this.readonly = readonly;
    this.opts = {
      flushIntervalMs: opts.flushIntervalMs ?? 50,
      maxBatchRows: opts.maxBatchRows ?? 20_000,
      maxQueuedRows: opts.maxQueuedRows ?? 200_000,
      recoveryBatchRows: opts.recoveryBatchRows ?? 1_000,
      busyTimeoutMs: opts.busyTimeoutMs ?? 5_000,
      backgroundBusyTimeoutMs: opts.backgroundBusyTimeoutMs ?? 200,
      onError: opts.onError,
      onRecovered: opts.onRecovered,
    };
    if (!readonly) {
      const values = `(${new Array(EVENT_COLS).fill('?').join(',')})`;
      const eventSql = `INSERT INTO events (seq, session_id, ts_ns, kind, pid, tid, comm, addr, len, payload) VALUES `;
      this.w = {
        eventMany: db.prepare(eventSql + new Array(EVENT_CHUNK).fill(values).join(',')),
        eventOne: db.prepare(eventSql + values),
        anomaly: db.prepare(
          `INSERT INTO anomalies (seq, session_id, rule, severity, pid, comm, addr, len, pfn, new_pfn, confirmed, low_confidence,
             ts_ns, wall_ms, pin_id, summary, evidence, count, last_ts_ns) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
           ON CONFLICT(seq) DO UPDATE SET rule=excluded.rule, severity=excluded.severity, pid=excluded.pid, comm=excluded.comm,
             addr=excluded.addr, len=excluded.len, pfn=excluded.pfn, new_pfn=excluded.new_pfn, confirmed=excluded.confirmed,
             low_confidence=excluded.low_confidence, ts_ns=excluded.ts_ns, wall_ms=excluded.wall_ms, pin_id=excluded.pin_id,
             summary=excluded.summary, evidence=excluded.evidence, count=excluded.count, last_ts_ns=excluded.last_ts_ns`,
        ),
        read: db.prepare(
          `INSERT INTO pagemap_reads (session_id, ts_ns, pid, addr, present, swapped, pfn, error, reason) VALUES (?,?,?,?,?,?,?,?,?)`,
        ),
        pin: db.prepare(
          `INSERT INTO pins (id, session_id, pid, comm, source, handle, addr, len, pages, writable, longterm, backing, created_ns,
             released_ns, state, origin) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
           ON CONFLICT(id) DO UPDATE SET pid=excluded.pid, comm=excluded.comm, source=excluded.source, handle=excluded.handle,
             addr=excluded.addr, len=excluded.len, pages=excluded.pages, writable=excluded.writable, longterm=excluded.longterm,
             backing=excluded.backing, created_ns=excluded.created_ns, released_ns=excluded.released_ns, state=excluded.state,
             origin=excluded.origin`,
        ),
        page: db.prepare(
          `INSERT INTO pin_pages (pin_id, page_index, addr, pinned_pfn, current_pfn, snapshot_late) VALUES (?,?,?,?,?,?)
           ON CONFLICT(pin_id, page_index) DO UPDATE SET addr=excluded.addr, pinned_pfn=excluded.pinned_pfn,
             current_pfn=excluded.current_pfn, snapshot_late=excluded.snapshot_late`,
        ),
        lost: db.prepare(`UPDATE sessions SET lost_events = ? WHERE id = ?`),
        lastEvent: db.prepare(`UPDATE sessions SET last_event_ns = ? WHERE id = ?`),
        meta: db.prepare(`INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)`),
        incidents: new IncidentWriter(db),
        args: new Array(EVENT_COLS * EVENT_CHUNK),
        batch: db.transaction(() => this.writeQueued()),
      };
    }
    this.exitHook = () => {
      try {
        this.close();
      } catch (err) {
        process.stderr.write(`pinwatch: could not write the last rows to ${this.file}: ${(err as Error).message}\n`);
      }
    };
    if (!readonly) process.on('exit', this.exitHook);
  }

  /**
   * Open (creating when missing, unless read-only) a pinwatch database. Throws StoreError (with a `fix`) when the
   * file is locked, not writable, not a database, or of another schema version.
   */
  static open(file: string, opts: StoreOptions = {}): Store {
    const path = resolve(file);
    const readonly = opts.readonly === true;
    const busy = opts.busyTimeoutMs ?? 5_000;
    if (readonly && !existsSync(path)) {
      throw new StoreError('not-found', path, `database ${path} does not exist`, 'check the path of the recording');
    }
    if (!existsSync(dirname(path))) {
      throw new StoreError('not-found', path, `cannot create database ${path}: directory ${dirname(path)} does not exist`, 'create the directory or pass a different --db path');
    }
    if (!readonly) {
      // The WAL and its index are files beside the database: a writer needs the directory writable, not just the file.
      try {
        accessSync(dirname(path), constants.W_OK);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? 'EACCES';
        throw new StoreError(
          'not-writable',
          path,
          `cannot write database ${path}: directory ${dirname(path)} is not writable (${code === 'EROFS' ? 'read-only filesystem' : code})`,
          'pass a --db path on a writable filesystem (e.g. /var/lib/pinwatch), or make the directory writable; to view an existing recording use pinwatch serve --replay',
          code,
        );
      }
    }
    let db: Database.Database;
    try {
      db = new Database(path, { readonly, fileMustExist: readonly, timeout: busy });
    } catch (err) {
      throw toStoreError(err, path, 'opening');
    }
    try {
      db.pragma(`busy_timeout = ${busy}`);
      if (!readonly) {
        prepareWriter(db, path);
        claimWriter(db, path);
      } else checkVersion(db, path, false);
    } catch (err) {
      db.close();
      throw toStoreError(err, path, 'opening');
    }
    if (!readonly) openWriters.add(path);
    const store = new Store(path, db, readonly, opts);
    if (!readonly) {
      try {
        store.recoveredSessions.push(...closeCrashedSessions(db));
      } catch (err) {
        store.close();
        throw toStoreError(err, path, 'closing sessions of a collector that died');
      }
    }
    return store;
  }

  // ------------------------------------------------------------------ session

  /** Start a recording session (a sessions row); events and anomalies handed over afterwards belong to it. */
  startSession(s: SessionStart): SessionInfo {
    this.assertWritable();
    const started = Date.now();
    const offset = started - monoMs();
    const id = this.retryingWrite('starting a session', () =>
      this.db.transaction(() => {
        const r = this.db
          .prepare(`INSERT INTO sessions (host, kernel, bpftrace_version, mode, started_ms, probes_json, lost_events) VALUES (?,?,?,?,?,?,0)`)
          .run(s.host, s.kernel, s.bpftraceVersion, s.mode, started, JSON.stringify(s.probes));
        const sid = Number(r.lastInsertRowid);
        this.db.prepare(`INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)`).run(clockKey(sid), String(offset));
        return sid;
      }).immediate(),
    );
    this.sessionId = id;
    this.lostTotal = 0;
    this.lostWritten = 0;
    this.lastEventNs = -1;
    this.lastEventWritten = -1;
    return { id, host: s.host, kernel: s.kernel, bpftraceVersion: s.bpftraceVersion, mode: s.mode, startedWallMs: started, endedWallMs: null, probes: s.probes, lostEvents: 0 };
  }

  /** Update the probe list of the current session (e.g. after the runner attached). */
  updateProbes(probes: SessionInfo['probes']): void {
    this.assertWritable();
    const id = this.requireSession();
    this.retryingWrite('updating the session', () => this.db.prepare(`UPDATE sessions SET probes_json = ? WHERE id = ?`).run(JSON.stringify(probes), id));
  }

  /**
   * Flush, then mark the current session ended, saying how. `lostEvents` defaults to the sum the sink's lost()
   * received.
   */
  endSession(lostEvents?: number, how: { reason: SessionEndReason; detail?: string } = { reason: 'clean' }): SessionInfo | null {
    this.assertWritable();
    if (this.sessionId === null) return null;
    this.flush();
    const id = this.sessionId;
    const lost = lostEvents ?? this.lostTotal;
    const dropped = this.stat.dropped ? `${how.detail ? '; ' : ''}${this.stat.dropped} events/pagemap reads dropped while the database could not be written` : '';
    this.retryingWrite('ending the session', () =>
      this.db.prepare(`UPDATE sessions SET ended_ms = ?, lost_events = ?, end_reason = ?, end_detail = ?, last_event_ns = ? WHERE id = ?`)
        .run(Date.now(), lost, how.reason, (how.detail ?? '') + dropped || null, this.lastEventNs >= 0 ? this.lastEventNs : null, id),
    );
    this.sessionId = null;
    const row = this.db.prepare(`SELECT * FROM sessions WHERE id = ?`).get(id) as SessionRow | undefined;
    return row ? sessionFromRow(row) : null;
  }

  get currentSessionId(): number | null {
    return this.sessionId;
  }

  /** Next event seq, anomaly seq and pin id after everything already in the file (and queued). */
  nextSeqs(): NextSeqs {
    const q = (sql: string) => ((this.db.prepare(sql).get() as { m: number | null }).m ?? 0);
    let ev = q(`SELECT max(seq) AS m FROM events`);
    let an = q(`SELECT max(seq) AS m FROM anomalies`);
    let pin = q(`SELECT max(id) AS m FROM pins`);
    let inc = q(`SELECT max(id) AS m FROM incidents`);
    for (const e of this.eventQ) if (e.seq > ev) ev = e.seq;
    for (const a of this.anomaliesQ) if (a.seq > an) an = a.seq;
    for (const id of this.pinsQ.keys()) if (id > pin) pin = id;
    for (const id of this.incidentsQ.keys()) if (id > inc) inc = id;
    return { firstEventSeq: ev + 1, firstAnomalySeq: an + 1, firstPinId: pin + 1, firstIncidentId: inc + 1 };
  }

  // ------------------------------------------------------------------ CollectorSink (hot path: queue only)

  event(e: SequencedEvent): void {
    if (this.sessionId === null) this.noSession();
    if (this.eventQ.length >= this.opts.maxQueuedRows) {
      this.stat.dropped++;
      return;
    }
    if (e.tsNs > this.lastEventNs) this.lastEventNs = e.tsNs;
    const n = this.eventQ.push(e);
    if (n >= this.opts.maxBatchRows) this.flushSoon();
    else if (this.timer === null) this.armTimer(this.opts.flushIntervalMs);
  }

  pin(p: Pin): void {
    if (this.sessionId === null) this.noSession();
    this.pinsQ.set(p.id, p);
    if (this.timer === null) this.armTimer(this.opts.flushIntervalMs);
  }

  pagemapRead(r: PagemapRead, reason: string): void {
    if (this.sessionId === null) this.noSession();
    if (this.reads.length >= this.opts.maxQueuedRows) {
      this.stat.dropped++;
      return;
    }
    this.reads.push(r);
    const n = this.readReasons.push(reason);
    if (n >= this.opts.maxBatchRows) this.flushSoon();
    else if (this.timer === null) this.armTimer(this.opts.flushIntervalMs);
  }

  /** Sink: queue an anomaly. Reader: `anomaly(seq)` returns the stored anomaly with that seq, or null. */
  anomaly(a: Anomaly): void;
  anomaly(seq: number): Anomaly | null;
  anomaly(a: Anomaly | number): Anomaly | null | void {
    if (typeof a === 'number') return this.anomalyBySeq(a);
    if (this.sessionId === null) this.noSession();
    this.anomaliesQ.push(a);
    if (this.timer === null) this.armTimer(this.opts.flushIntervalMs);
  }

  /** Sink: queue an incident (its latest state wins). */
  incident(i: Incident): void {
    if (this.sessionId === null) this.noSession();
    this.incidentsQ.set(i.id, i);
    if (this.timer === null) this.armTimer(this.opts.flushIntervalMs);
  }

  /** A capture gap opened or closed (the same object is handed over again when it ends). */
  gap(g: CaptureGap): void {
    if (this.sessionId === null) this.noSession();
    this.gapsQ.add(g);
    if (this.timer === null) this.armTimer(this.opts.flushIntervalMs);
  }

  private queuePinnedMemory(m: PinnedMemory): void {
    if (this.sessionId === null) this.noSession();
    this.pinnedQ.push(m);
    if (this.timer === null) this.armTimer(this.opts.flushIntervalMs);
  }

  lost(count: number): void {
    this.lostTotal += count;
    if (this.timer === null && !this.readonly && this.sessionId !== null) this.armTimer(this.opts.flushIntervalMs);
  }

  // ------------------------------------------------------------------ writing

  /** Rows waiting to be written. */
  get queued(): number {
    return (
      this.eventQ.length + this.anomaliesQ.length + this.reads.length + this.pinsQ.size + this.incidentsQ.size +
      this.gapsQ.size + this.pinnedQ.length
    );
  }

  stats(): StoreStats {
    return { ...this.stat, queued: this.queued };
  }

  /**
   * Write everything queued now, in one transaction, waiting up to busyTimeoutMs for another writer.
   * Throws StoreError('locked', …) when the lock is not released in time: the rows stay queued (call again).
   */
  flush(): void {
    if (this.readonly || this.closed) return;
    this.cancelTimers();
    this.batchLimit = Infinity;
    this.writeNow(this.opts.busyTimeoutMs);
  }

  /** Flush and close. Throws (leaving the store open, rows queued) when the final flush fails; call again to retry. */
  close(): void {
    if (this.closed) return;
    if (!this.readonly) {
      this.flush();
      process.off('exit', this.exitHook);
      try {
        releaseWriter(this.db);
      } catch {
        // best effort: a stale writer row is taken over by the next writer (its pid is gone)
      }
      openWriters.delete(this.file);
      try {
        // Fold the WAL back into the file so a copied .db is complete (best effort: a reader may hold it).
        this.db.pragma('wal_checkpoint(TRUNCATE)');
      } catch {
        // another connection is reading; the WAL is folded in when the last connection closes
      }
    }
    this.cancelTimers();
    this.closed = true;
    this.stmtCache.clear();
    this.db.close();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private noSession(): never {
    throw new Error(this.readonly ? `Store ${this.file} is read-only` : 'Store: call startSession() before handing rows to the store');
  }

  private assertWritable(): void {
    if (this.closed) throw new Error(`Store ${this.file} is closed`);
    if (this.readonly) throw new Error(`Store ${this.file} was opened read-only`);
  }

  private requireSession(): number {
    if (this.sessionId === null) this.noSession();
    return this.sessionId;
  }

  private armTimer(ms: number): void {
    if (this.readonly || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.backgroundFlush();
    }, ms);
    this.timer.unref();
  }

  private flushSoon(): void {
    if (this.immediate !== null || this.failing) return;
    // Not inline: the event that filled the batch is mid-ingest in the collector; flush right after this I/O callback.
    this.immediate = setImmediate(() => {
      this.immediate = null;
      this.backgroundFlush();
    });
  }

  private cancelTimers(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.immediate !== null) clearImmediate(this.immediate);
    this.timer = null;
    this.immediate = null;
  }

  private backgroundFlush(): void {
    if (this.closed) return;
    this.cancelTimers();
    try {
      this.writeNow(this.opts.backgroundBusyTimeoutMs);
      if (this.failing) {
        this.failing = false;
        this.retryMs = 0;
        this.opts.onRecovered?.();
      }
      // Draining a backlog in small batches: go on right away until it is written, then back to whole batches.
      if (this.batchLimit !== Infinity) {
        if (this.eventQ.length + this.reads.length > 0) this.flushSoon();
        else this.batchLimit = Infinity;
      }
    } catch (err) {
      // Space or the lock may come back a little at a time: retry with small transactions.
      this.batchLimit = this.opts.recoveryBatchRows;
      this.stat.failedFlushes++;
      if (!this.failing) {
        this.failing = true;
        if (this.opts.onError) this.opts.onError(err as Error);
        else process.stderr.write(`pinwatch: ${(err as Error).message}${err instanceof StoreError ? `\n  fix: ${err.fix}` : ''}\n`);
      }
      // Retry with backoff; rows stay queued.
      this.retryMs = Math.min(Math.max(this.retryMs * 2, this.opts.flushIntervalMs), 2_000);
      this.armTimer(this.retryMs);
    }
  }

  private writeNow(busyMs: number): void {
    if (this.queued === 0 && (this.lostTotal === this.lostWritten || this.sessionId === null)) return;
    this.eventsInBatch = Math.min(this.eventQ.length, this.batchLimit);
    this.readsInBatch = Math.min(this.reads.length, this.batchLimit);
    const w = this.w!;
    const t0 = performance.now();
    this.db.pragma(`busy_timeout = ${busyMs}`);
    let rows: number;
    try {
      rows = w.batch.immediate();
    } catch (err) {
      throw toStoreError(err, this.file, 'writing queued rows');
    }
    this.afterWrite();
    this.stat.flushes++;
    this.stat.rowsWritten += rows;
    this.stat.lastFlushMs = performance.now() - t0;
  }

  /** Inside the transaction: write every queue. Queues are cleared only after COMMIT (afterWrite). */
  private writeQueued(): number {
    const w = this.w!;
    const sid = this.sessionId ?? this.requireSessionForWrite();
    let rows = 0;

    // Anomalies, pins and gaps first: with little space left, the verdicts are what must land.
    for (const a of this.anomaliesQ) {
      w.anomaly.run(
        a.seq, sid, a.rule, a.severity, a.pid, a.comm, a.addr, a.len, a.pfn, a.newPfn, a.confirmed ? 1 : 0, a.lowConfidence ? 1 : 0,
        a.tsNs, a.wallMs, a.pinId, a.summary, JSON.stringify(a.evidence), a.count ?? 1, a.lastTsNs ?? null,
      );
    }
    rows += this.anomaliesQ.length;
    for (const p of this.pinsQ.values()) rows += this.writePin(sid, p);
    for (const g of this.gapsQ) g.id = writeGap(this.db, sid, g);
    for (const m of this.pinnedQ) writePinnedMemory(this.db, sid, m);
    rows += this.gapsQ.size + this.pinnedQ.length;
    for (const inc of this.incidentsQ.values()) rows += w.incidents.write(sid, inc);

    const evs = this.eventQ;
    const n = this.eventsInBatch;
    const args = w.args;
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
      w.eventMany.run(args);
    }
    for (; i < n; i++) {
      const e = evs[i];
      const len = eventLen(e);
      if (len !== null && len > batchMaxLen) batchMaxLen = len;
      w.eventOne.run(e.seq, sid, e.tsNs, e.kind, e.pid, e.tid, e.comm, eventAddr(e), len, payloadJson(e));
    }
    rows += n;
    if (batchMaxLen > this.storedMaxLen()) {
      w.meta.run(META_MAX_LEN, String(batchMaxLen));
      this.pendingMaxLen = batchMaxLen;
    }

    const reads = this.reads;
    const reasons = this.readReasons;
    for (let r = 0; r < this.readsInBatch; r++) {
      const x = reads[r];
      w.read.run(sid, x.tsNs, x.pid, x.addr, x.present ? 1 : 0, x.swapped ? 1 : 0, finiteOrNull(x.pfn), x.error ?? null, reasons[r]);
    }
    rows += this.readsInBatch;

    if (this.lostTotal !== this.lostWritten && this.sessionId !== null) w.lost.run(this.lostTotal, sid);
    if (this.lastEventNs !== this.lastEventWritten && this.sessionId !== null) w.lastEvent.run(this.lastEventNs, sid);
    return rows;
  }

  private requireSessionForWrite(): number {
    if (this.queued === 0) return -1; // only a lost count left over from an ended session: nothing to write
    throw new Error('Store: rows queued without a session');
  }

  /** Upsert the pin row and the pages that changed since the last write of this pin. */
  private writePin(sid: number, p: Pin): number {
    const w = this.w!;
    const pages = p.pages;
    w.pin.run(
      p.id, sid, p.pid, p.comm, p.source, p.handle, p.addr, p.len, pages.length, p.writable ? 1 : 0, p.longterm ? 1 : 0, p.backing,
      p.createdNs, p.releasedNs, p.state, p.origin ?? 'event',
    );
    let prev = this.written.get(p.id);
    if (!prev || prev.addr.length !== pages.length) {
      prev = {
        addr: new Float64Array(pages.length).fill(NaN),
        pinned: new Float64Array(pages.length).fill(NaN),
        current: new Float64Array(pages.length).fill(NaN),
        late: new Uint8Array(pages.length).fill(2), // 2: never written
      };
      this.written.set(p.id, prev);
    }
    let rows = 1;
    for (let i = 0; i < pages.length; i++) {
      const pg = pages[i];
      const pinned = pg.pinnedPfn ?? NaN;
      const current = pg.currentPfn ?? NaN;
      const late = pg.snapshotLate ? 1 : 0;
      if (prev.late[i] === late && prev.addr[i] === pg.addr && sameNum(prev.pinned[i], pinned) && sameNum(prev.current[i], current)) continue;
      w.page.run(p.id, i, pg.addr, finiteOrNull(pg.pinnedPfn), finiteOrNull(pg.currentPfn), late);
      rows++;
    }
    return rows;
  }

  /** After COMMIT: record what was written, clear the queues. */
  private afterWrite(): void {
    for (const p of this.pinsQ.values()) {
      const prev = this.written.get(p.id);
      if (p.state === 'released') {
        this.written.delete(p.id); // a released pin does not change again
        continue;
      }
      if (!prev) continue;
      const pages = p.pages;
      for (let i = 0; i < pages.length; i++) {
        const pg = pages[i];
        prev.addr[i] = pg.addr;
        prev.pinned[i] = pg.pinnedPfn ?? NaN;
        prev.current[i] = pg.currentPfn ?? NaN;
        prev.late[i] = pg.snapshotLate ? 1 : 0;
      }
    }
    if (this.eventsInBatch === this.eventQ.length) this.eventQ.length = 0;
    else this.eventQ.splice(0, this.eventsInBatch);
    if (this.readsInBatch === this.reads.length) {
      this.reads.length = 0;
      this.readReasons.length = 0;
    } else {
      this.reads.splice(0, this.readsInBatch);
      this.readReasons.splice(0, this.readsInBatch);
    }
    this.anomaliesQ.length = 0;
    this.pinsQ.clear();
    this.incidentsQ.clear();
    this.gapsQ.clear();
    this.pinnedQ.length = 0;
    this.lostWritten = this.lostTotal;
    this.lastEventWritten = this.lastEventNs;
    if (this.pendingMaxLen > this.maxLen) this.maxLen = this.pendingMaxLen;
  }

  /** Largest events.len in the file (0 when none; null for files written before the meta row existed). */
  private storedMaxLen(): number {
    if (this.maxLen < 0) {
      const r = this.db.prepare(`SELECT value FROM meta WHERE key = ?`).get(META_MAX_LEN) as { value: string } | undefined;
      const hasEvents = this.db.prepare(`SELECT 1 FROM events LIMIT 1`).get() !== undefined;
      // A file with events but no row was written by an older store: bound unknown.
      this.maxLen = r ? Number(r.value) : hasEvents ? Number.MAX_SAFE_INTEGER : 0;
    }
    return this.maxLen;
  }

  /** A small write outside the batch (session rows): wait for the lock, then a StoreError. */
  private retryingWrite<T>(doing: string, fn: () => T): T {
    this.db.pragma(`busy_timeout = ${this.opts.busyTimeoutMs}`);
    try {
      return fn();
    } catch (err) {
      throw toStoreError(err, this.file, doing);
    }
  }

  // ------------------------------------------------------------------ reading

  private stmt(sql: string): Database.Statement {
    let s = this.stmtCache.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.stmtCache.set(sql, s);
    }
    return s;
  }

  sessions(): SessionInfo[] {
    return (this.stmt(`SELECT * FROM sessions ORDER BY id`).all() as SessionRow[]).map((r) => this.sessionView(r));
  }

  session(id: number): SessionInfo | null {
    const r = this.stmt(`SELECT * FROM sessions WHERE id = ?`).get(id) as SessionRow | undefined;
    return r ? this.sessionView(r) : null;
  }

  /** Capture gaps (bpftrace not capturing), of one session or all, in time order. */
  gaps(sessionId?: number): (CaptureGap & { sessionId: number })[] {
    const out = readGaps(this.db, sessionId);
    // Not yet written: the live view includes them.
    for (const g of this.gapsQ) if (g.id === 0 && (sessionId === undefined || sessionId === this.sessionId)) out.push({ ...g, sessionId: this.sessionId ?? -1 });
    return out;
  }

  /** The latest VmPin / VmLck reading per process (see schema/reliability.ts). */
  pinnedMemory(sessionId?: number): (PinnedMemory & { sessionId: number })[];
  pinnedMemory(m: PinnedMemory): void;
  pinnedMemory(a?: number | PinnedMemory): (PinnedMemory & { sessionId: number })[] | void {
    if (typeof a === 'object') return this.queuePinnedMemory(a);
    return readPinnedMemory(this.db, a);
  }

  /**
   * Sessions a dead collector left open, as a reader sees them (a writer repairs them when it opens the file):
   * session id → its last event's ts. Empty for a writer, or while the file's writer is alive.
   */
  private crashedView(): Map<number, number | null> {
    if (!this.readonly) return new Map();
    const row = this.stmt(`SELECT value FROM meta WHERE key = ?`).get(META_WRITER) as { value: string } | undefined;
    let alive = false;
    if (row) {
      const w = parseWriter(row.value);
      alive = w !== null && typeof w.pid === 'number' && w.host === hostname() && processAlive(w.pid);
    }
    return orphanedOpenSessions(this.db, alive);
  }

  private sessionView(r: SessionRow): SessionInfo {
    const s = sessionFromRow(r);
    if (s.endedWallMs !== null || !this.readonly) return s;
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

  anomalies(f: AnomalyFilter = {}): Anomaly[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (f.afterSeq !== undefined) (where.push('seq > ?'), args.push(f.afterSeq));
    if (f.rule !== undefined) (where.push('rule = ?'), args.push(f.rule));
    if (f.severity !== undefined) (where.push('severity = ?'), args.push(f.severity));
    if (f.pid !== undefined) (where.push('pid = ?'), args.push(f.pid));
    if (f.comm !== undefined) (where.push('comm = ?'), args.push(f.comm));
    if (f.confirmed !== undefined) (where.push('confirmed = ?'), args.push(f.confirmed ? 1 : 0));
    if (f.sessionId !== undefined) (where.push('session_id = ?'), args.push(f.sessionId));
    const sql =
      `SELECT * FROM anomalies${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ` +
      `ORDER BY seq ${f.order === 'desc' ? 'DESC' : 'ASC'} LIMIT ?`;
    args.push(f.limit ?? 10_000);
    return (this.stmt(sql).all(...args) as AnomalyRow[]).map(anomalyFromRow);
  }

  /** Incidents, oldest first (derived from the anomalies for files written before incidents were stored). */
  incidents(f: IncidentFilter = {}): Incident[] {
    return readIncidents(this.db, f);
  }

  anomalyBySeq(seq: number): Anomaly | null {
    const r = this.stmt(`SELECT * FROM anomalies WHERE seq = ?`).get(seq) as AnomalyRow | undefined;
    return r ? anomalyFromRow(r) : null;
  }

  /** Every pin (latest state), with page counts; `divergedPages` counts pages whose current pfn differs from the pinned one. */
  pins(sessionId?: number): PinSummary[] {
    const sql = `SELECT p.*, (SELECT count(*) FROM pin_pages pp WHERE pp.pin_id = p.id AND pp.pinned_pfn IS NOT NULL
        AND pp.current_pfn IS NOT NULL AND pp.current_pfn != pp.pinned_pfn) AS diverged_pages
      FROM pins p ${sessionId !== undefined ? 'WHERE p.session_id = ?' : ''} ORDER BY p.id`;
    const rows = (sessionId !== undefined ? this.stmt(sql).all(sessionId) : this.stmt(sql).all()) as PinRow[];
    const crashed = this.crashedView();
    return rows.map((r) => {
      const p = pinSummaryFromRow(r);
      // A dead collector's pins are not live: they end, as far as the recording knows, at its last event.
      if (p.releasedNs === null && crashed.has(r.session_id)) return { ...p, releasedNs: crashed.get(r.session_id) ?? p.createdNs, state: 'released' as const };
      return p;
    });
  }

  /** One pin with its pages, or null. */
  pinDetail(id: number): Pin | null {
    const r = this.stmt(`SELECT p.*, 0 AS diverged_pages FROM pins p WHERE id = ?`).get(id) as PinRow | undefined;
    if (!r) return null;
    const { pageCount: _n, divergedPages: _d, ...rest } = pinSummaryFromRow(r);
    return { ...rest, pages: this.pinPages(id) };
  }

  pinPages(pinId: number): PinPage[] {
    return (this.stmt(`SELECT * FROM pin_pages WHERE pin_id = ? ORDER BY page_index`).all(pinId) as PinPageRow[]).map(pinPageFromRow);
  }

  /** The events with these seqs, in seq order (unknown seqs are skipped). */
  eventsBySeq(seqs: readonly number[]): SequencedEvent[] {
    const out: SequencedEvent[] = [];
    const s = this.stmt(`SELECT * FROM events WHERE seq = ?`);
    for (const seq of [...new Set(seqs)].sort((a, b) => a - b)) {
      const r = s.get(seq) as EventRow | undefined;
      if (r) out.push(eventFromRow(r));
    }
    return out;
  }

  events(f: EventFilter = {}): SequencedEvent[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (f.afterSeq !== undefined) (where.push('seq > ?'), args.push(f.afterSeq));
    if (f.pid !== undefined) (where.push('pid = ?'), args.push(f.pid));
    if (f.kind !== undefined) (where.push('kind = ?'), args.push(f.kind));
    if (f.sessionId !== undefined) (where.push('session_id = ?'), args.push(f.sessionId));
    const sql =
      `SELECT * FROM events${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ` +
      `ORDER BY seq ${f.order === 'desc' ? 'DESC' : 'ASC'} LIMIT ?`;
    args.push(f.limit ?? 10_000);
    return (this.stmt(sql).all(...args) as EventRow[]).map(eventFromRow);
  }

  /** Pagemap reads of one page of a process, in time order. */
  pagemapReads(pid: number, addr: number): { read: PagemapRead; reason: string }[] {
    const page = pageOf(addr);
    const rows = this.stmt(`SELECT * FROM pagemap_reads WHERE pid = ? AND addr = ? ORDER BY ts_ns, id`).all(pid, page) as PagemapRow[];
    return rows.map((r) => ({ read: pagemapReadFromRow(r), reason: r.reason }));
  }

  /**
   * Everything that touched one page of a process, in time order: events whose [addr, addr+len) covers it
   * (pin_iovec, madvise, munmap, mremap old or new range, fault, …), the process's fork/exit, khugepaged events
   * of the process (its pid, or its mm pointer from pin_result), events naming a pfn the page had (pinned,
   * read by pagemap, wp_page, gup), the pin_result of a covering pin_iovec, and the pagemap reads of the page.
   */
  pageTimeline(pid: number, addr: number): TimelineEntry[] {
    const page = pageOf(addr);
    const pageEnd = page + PAGE_SIZE;
    const byseq = new Map<number, { match: TimelineMatch; row: EventRow }>();
    const add = (rows: EventRow[], match: TimelineMatch) => {
      for (const r of rows) if (!byseq.has(r.seq)) byseq.set(r.seq, { match, row: r });
    };

    // An event covering the page starts at most max(len) bytes below it: a bounded range scan of the index on
    // (pid, addr >> 30) (or of (pid, addr) in files written before it).
    const lowest = Math.max(0, page - (this.readonly ? this.readMaxLen() : this.storedMaxLen()));
    add(
      this.stmt(
        `SELECT * FROM events WHERE pid = ? AND (addr >> 30) BETWEEN ? AND ? AND addr >= ? AND addr < ? ` +
          `AND addr + coalesce(len, 1) > ? AND kind != 'mremap'`,
      ).all(pid, Math.floor(lowest / GIB), Math.floor((pageEnd - 1) / GIB), lowest, pageEnd, page) as EventRow[],
      'range',
    );
    // mremap covers its old range (addr/len columns) and its new one (ret, newLen in the payload).
    for (const r of this.stmt(`SELECT * FROM events WHERE pid = ? AND kind = 'mremap'`).all(pid) as EventRow[]) {
      const p = JSON.parse(r.payload) as { oldLen: number; newLen: number; ret: number };
      const oldHit = r.addr !== null && r.addr < pageEnd && r.addr + p.oldLen > page;
      const newHit = p.ret > 0 && p.ret < pageEnd && p.ret + p.newLen > page;
      if (oldHit || newHit) add([r], 'range');
    }
    add(this.stmt(`SELECT * FROM events WHERE pid = ? AND kind IN (${sqlList(PROCESS_KINDS)})`).all(pid) as EventRow[], 'process');
    add(this.stmt(`SELECT * FROM events WHERE pid = ? AND kind IN (${sqlList(COLLAPSE_KINDS)})`).all(pid) as EventRow[], 'process');

    // The process's mm pointers (pin_result carries them) find khugepaged/KSM events run by other threads.
    const mms = (
      this.stmt(`SELECT DISTINCT json_extract(payload, '$.mm') AS mm FROM events WHERE pid = ? AND kind = 'pin_result'`).all(pid) as {
        mm: string | null;
      }[]
    )
      .map((r) => r.mm)
      .filter((m): m is string => typeof m === 'string' && m !== '' && m !== '0x0' && m !== '0');
    if (mms.length) {
      const rows = this.db
        .prepare(`SELECT * FROM events WHERE kind IN (${sqlList(MM_KINDS)}) AND json_extract(payload, '$.mm') IN (${mms.map(() => '?').join(',')})`)
        .all(...mms) as EventRow[];
      add(rows, 'mm');
    }

    // The pin_result that answered each covering pin_iovec (same thread, next result).
    for (const { row } of [...byseq.values()]) {
      if (row.kind !== 'pin_iovec') continue;
      const res = this.stmt(`SELECT * FROM events WHERE pid = ? AND tid = ? AND kind = 'pin_result' AND seq > ? ORDER BY seq LIMIT 1`).get(
        pid, row.tid, row.seq,
      ) as EventRow | undefined;
      if (res) add([res], 'result');
    }

    const reads = this.pagemapReads(pid, page);
    // pfns this page had: pagemap, the pin table, wp_page old/new, gup's per-page pfns.
    const pfns = new Set<number>();
    for (const { read } of reads) if (read.pfn !== null && read.pfn > 0) pfns.add(read.pfn);
    for (const r of this.stmt(
      `SELECT pp.pinned_pfn AS a, pp.current_pfn AS b FROM pin_pages pp JOIN pins p ON p.id = pp.pin_id WHERE p.pid = ? AND pp.addr = ?`,
    ).all(pid, page) as { a: number | null; b: number | null }[]) {
      if (r.a) pfns.add(r.a);
      if (r.b) pfns.add(r.b);
    }
    for (const { row } of byseq.values()) {
      if (row.kind === 'wp_page') {
        const p = JSON.parse(row.payload) as { oldPfn?: number; newPfn?: number };
        if (p.oldPfn) pfns.add(p.oldPfn);
        if (p.newPfn) pfns.add(p.newPfn);
      } else if (row.kind === 'gup' && row.addr !== null) {
        const p = JSON.parse(row.payload) as { pfns?: number[] };
        const idx = Math.floor((page - pageOf(row.addr)) / PAGE_SIZE);
        const pfn = p.pfns?.[idx];
        if (pfn) pfns.add(pfn);
      }
    }
    if (pfns.size) {
      const list = [...pfns];
      const rows: EventRow[] = [];
      for (let i = 0; i < list.length; i += 500) {
        const part = list.slice(i, i + 500);
        const marks = part.map(() => '?').join(',');
        rows.push(
          ...(this.db
            .prepare(
              `SELECT * FROM events WHERE kind IN (${sqlList(PFN_KINDS)}) AND (json_extract(payload, '$.pfn') IN (${marks})
                 OR json_extract(payload, '$.ksmPfn') IN (${marks}))`,
            )
            .all(...part, ...part) as EventRow[]),
        );
      }
      add(rows, 'pfn');
    }

    const out: TimelineEntry[] = [];
    for (const { match, row } of byseq.values()) out.push({ type: 'event', tsNs: row.ts_ns, match, event: eventFromRow(row) });
    for (const { read, reason } of reads) out.push({ type: 'pagemap', tsNs: read.tsNs, read, reason });
    out.sort((a, b) => a.tsNs - b.tsNs || orderKey(a) - orderKey(b));
    return out;
  }

  /** A reader's view of the largest events.len (re-read each call: a live writer may have raised it). */
  private readMaxLen(): number {
    const r = this.stmt(`SELECT value FROM meta WHERE key = ?`).get(META_MAX_LEN) as { value: string } | undefined;
    if (r) return Number(r.value);
    return this.stmt(`SELECT 1 FROM events LIMIT 1`).get() !== undefined ? Number.MAX_SAFE_INTEGER : 0;
  }

  /**
   * Events per kind per wall-clock second since `sinceWallMs` (1 s buckets; wallMs is the end of the bucket),
   * from the stored CLOCK_MONOTONIC timestamps and each session's clock offset.
   */
  eventRates(sinceWallMs: number): EventRates[] {
    const buckets = new Map<number, Partial<Record<EventKind, number>>>();
    for (const s of this.sessions()) {
      if (s.endedWallMs !== null && s.endedWallMs < sinceWallMs) continue;
      const offset = this.clockOffset(s.id);
      if (offset === null) continue;
      const minTs = (sinceWallMs - offset) * 1e6;
      const from = this.firstSeqAtOrAfter(s.id, minTs);
      if (from === null) continue;
      const rows = this.stmt(
        `SELECT kind, CAST((ts_ns / 1000000.0 + ?) / 1000 AS INTEGER) AS sec, count(*) AS n FROM events
         WHERE seq >= ? AND session_id = ? AND ts_ns >= ? GROUP BY sec, kind`,
      ).all(offset, from, s.id, minTs) as { kind: EventKind; sec: number; n: number }[];
      for (const r of rows) {
        const end = (r.sec + 1) * 1000;
        let c = buckets.get(end);
        if (!c) buckets.set(end, (c = {}));
        c[r.kind] = (c[r.kind] ?? 0) + r.n;
      }
    }
    return [...buckets.entries()].sort((a, b) => a[0] - b[0]).map(([wallMs, counts]) => ({ wallMs, counts }));
  }

  /** wall ms − CLOCK_MONOTONIC ms for a session (recorded at startSession; estimated for files that lack it). */
  clockOffset(sessionId: number): number | null {
    const m = this.stmt(`SELECT value FROM meta WHERE key = ?`).get(clockKey(sessionId)) as { value: string } | undefined;
    if (m) return Number(m.value);
    const r = this.stmt(`SELECT s.started_ms AS w, (SELECT min(ts_ns) FROM events WHERE session_id = s.id) AS t FROM sessions s WHERE s.id = ?`).get(
      sessionId,
    ) as { w: number; t: number | null } | undefined;
    if (!r || r.t === null) return null;
    return r.w - r.t / 1e6;
  }

  /** First seq of a session with ts_ns >= minTs (binary search over the seq primary key: seq order is time order). */
  private firstSeqAtOrAfter(sessionId: number, minTs: number): number | null {
    const range = this.stmt(`SELECT min(seq) AS lo, max(seq) AS hi FROM events WHERE session_id = ?`).get(sessionId) as {
      lo: number | null;
      hi: number | null;
    };
    if (range.lo === null || range.hi === null) return null;
    const at = this.stmt(`SELECT ts_ns FROM events WHERE seq >= ? ORDER BY seq LIMIT 1`);
    let lo = range.lo;
    let hi = range.hi;
    if ((at.get(hi) as { ts_ns: number }).ts_ns < minTs) return null;
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      const r = at.get(mid) as { ts_ns: number } | undefined;
      if (r && r.ts_ns >= minTs) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

function pageOf(addr: number): number {
  return addr - (addr % PAGE_SIZE);
}

function orderKey(e: TimelineEntry): number {
  return e.type === 'event' ? e.event.seq : Number.MAX_SAFE_INTEGER;
}

function sameNum(a: number, b: number): boolean {
  return a === b || (Number.isNaN(a) && Number.isNaN(b));
}

function finiteOrNull(v: number | null | undefined): number | null {
  return v === null || v === undefined || !Number.isFinite(v) ? null : v;
}

/** WAL, pragmas, DDL, schema version: a writer connection ready for batches. */
function prepareWriter(db: Database.Database, file: string): void {
  checkVersion(db, file, true);
  const mode = db.pragma('journal_mode = WAL', { simple: true });
  if (String(mode).toLowerCase() !== 'wal') {
    throw new StoreError('io', file, `cannot switch ${file} to WAL journaling (got ${mode})`, 'put the database on a local filesystem');
  }
  db.pragma('synchronous = NORMAL');
  // Index pages of a hot address set are rewritten by every batch: a larger cache and fewer checkpoints
  // mean each page is written to the WAL and into the file less often.
  db.pragma('cache_size = -65536');
  db.pragma('wal_autocheckpoint = 8192');
  db.pragma('journal_size_limit = 67108864');
  db.pragma('temp_store = MEMORY');
  const hasMeta = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'`).get() !== undefined;
  const tables = (db.prepare(`SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name IN ('sessions','events','pins','pin_pages','pagemap_reads','anomalies')`).get() as { n: number }).n;
  if (!hasMeta || tables < 6) {
    db.transaction(() => {
      db.exec(DDL);
      db.prepare(`INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)`).run(META_VERSION, String(SCHEMA_VERSION));
    }).immediate();
  }
  checkVersion(db, file, false);
  if (fileSchemaVersion(db) < SCHEMA_VERSION) upgradeSchema(db);
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
function claimWriter(db: Database.Database, file: string): void {
  const me = { pid: process.pid, host: hostname(), sinceMs: Date.now() };
  db.transaction(() => {
    const row = db.prepare(`SELECT value FROM meta WHERE key = ?`).get(META_WRITER) as { value: string } | undefined;
    const other = row ? parseWriter(row.value) : null;
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
    db.prepare(`INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)`).run(META_WRITER, JSON.stringify(me));
  }).immediate();
}

type Writer = { pid?: number; host?: string; sinceMs?: number };
function parseWriter(text: string): Writer | null {
  try {
    const w = JSON.parse(text) as Writer;
    return w && typeof w === 'object' ? w : null;
  } catch {
    return null;
  }
}

function releaseWriter(db: Database.Database): void {
  const row = db.prepare(`SELECT value FROM meta WHERE key = ?`).get(META_WRITER) as { value: string } | undefined;
  if (!row) return;
  const w = JSON.parse(row.value) as { pid?: number };
  if (w.pid === process.pid) db.prepare(`DELETE FROM meta WHERE key = ?`).run(META_WRITER);
}

/**
 * Refuse a database of a schema version this pinwatch cannot read, or a non-empty SQLite file that is not
 * pinwatch's. Returns the file's version (null: empty or being created).
 */
function checkVersion(db: Database.Database, file: string, allowEmpty: boolean): number | null {
  const objects = (db.prepare(`SELECT count(*) AS n FROM sqlite_master`).get() as { n: number }).n;
  if (objects === 0 && allowEmpty) return null;
  const hasMeta = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'`).get() !== undefined;
  if (!hasMeta) {
    throw new StoreError(
      'not-a-database',
      file,
      objects === 0 ? `${file} is an empty database, not a pinwatch recording` : `${file} is a SQLite database but not a pinwatch one (no meta table)`,
      'pass a different --db path (pinwatch creates a new file when it does not exist)',
    );
  }
  const row = db.prepare(`SELECT value FROM meta WHERE key = ?`).get(META_VERSION) as { value: string } | undefined;
  if (!row) {
    if (allowEmpty) return null; // created by a writer that died before writing the version: the DDL is idempotent
    throw new StoreError('not-a-database', file, `${file} has no pinwatch schema version`, 'pass a different --db path');
  }
  const version = Number(row.value);
  if (!(version >= OLDEST_READABLE_SCHEMA_VERSION && version <= SCHEMA_VERSION)) {
    throw new StoreError(
      'schema-version',
      file,
      `${file} uses pinwatch schema version ${row.value}; this pinwatch reads and writes versions ${OLDEST_READABLE_SCHEMA_VERSION} to ${SCHEMA_VERSION}`,
      version > SCHEMA_VERSION
        ? 'open it with the newer pinwatch that wrote it, or record into a new file'
        : 'record into a new file (--db NEW.db); old recordings open with the pinwatch version that wrote them',
    );
  }
  return version;
}
