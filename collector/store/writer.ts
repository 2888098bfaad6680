// The write side of the store: queues what the collector hands over and writes it in batched transactions
// (every flushIntervalMs or maxBatchRows, whichever comes first); session rows; where the next Collector continues.
//
// Durability contract: anything handed over is in the database after flush() / close(); a flush that fails
// (locked database, disk full) keeps every queued row and retries, so nothing acknowledged is dropped. A process
// exit ('exit' event) flushes synchronously too, for callers that forget close().
import type Database from 'better-sqlite3';
import type { Anomaly, PagemapRead } from '../../schema/anomalies.ts';
import type { SequencedEvent } from '../../schema/events.ts';
import type { Incident } from '../../schema/incidents.ts';
import type { Pin } from '../../schema/pins.ts';
import type { CaptureGap, PinnedMemory } from '../../schema/reliability.ts';
import type { SessionEndReason, SessionInfo } from '../../schema/session.ts';
import type { SessionStart } from '../contracts.ts';
import { BatchStatements } from './batch.ts';
import { EventCounts } from './event-counts.ts';
import { StoreError, toStoreError } from './errors.ts';
import { writeGap } from './gaps.ts';
import { releaseWriter } from './lock.ts';
import { META_MAX_LEN, clockKey, metaValue, setMeta } from './meta.ts';
import { writePinnedMemory } from './pinned-memory.ts';
import type { LastIds } from './queries.ts';

export interface WriterOptions {
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

/** Where the next Collector on this database continues (CollectorOptions field names). */
export interface NextSeqs {
  firstEventSeq: number;
  firstAnomalySeq: number;
  firstPinId: number;
  firstIncidentId: number;
}

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

/** CLOCK_MONOTONIC in ms (process.hrtime is CLOCK_MONOTONIC on Linux: the clock of bpftrace's nsecs). */
function monoMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export class StoreWriter {
  private readonly opts: Required<Omit<WriterOptions, 'onError' | 'onRecovered'>> & Pick<WriterOptions, 'onError' | 'onRecovered'>;
  private readonly w: BatchStatements;
  private readonly batch: Database.Transaction<() => number>;
  private sessionId: number | null = null;
  private closed = false;

  // queues (the hot path only pushes)
  private eventQ: SequencedEvent[] = [];
  private anomaliesQ: Anomaly[] = [];
  private reads: PagemapRead[] = [];
  private readReasons: string[] = [];
  private pinsQ = new Map<number, Pin>();
  private incidentsQ = new Map<number, Incident>();
  private readonly gapsQ = new Set<CaptureGap>();
  private pinnedQ: PinnedMemory[] = [];
  /** Events counted instead of stored, per second and kind, until the next commit. */
  private readonly counts = new EventCounts();
  private lostTotal = 0;
  private lostWritten = 0;
  private lostByKindJson: string | null = null; // sessions.lost_by_kind: the latest, and what the file holds
  private lostByKindWritten: string | null = null;
  /** Largest events.len in the file (meta events.max_len); -1 until read. */
  private maxLen = -1;
  private pendingMaxLen = 0;
  /** How many queued events / pagemap reads the running transaction writes (a prefix of each queue). */
  private eventsInBatch = 0;
  private readsInBatch = 0;
  /** Largest event ts handed over in this session (sessions.last_event_ns). */
  private lastEventNs = -1;
  private lastEventWritten = -1;
  /** Rows per transaction now: all of them normally, recoveryBatchRows after a failure until the queue drains. */
  private batchLimit = Infinity;

  private timer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private failing = false;
  private retryMs = 0;
  private readonly exitHook: () => void;
  private readonly stat: StoreStats = { queued: 0, flushes: 0, rowsWritten: 0, failedFlushes: 0, lastFlushMs: 0, dropped: 0 };

  /** `db` is a writer connection that owns the file (open.ts); the writer closes it. */
  constructor(
    readonly file: string,
    private readonly db: Database.Database,
    opts: WriterOptions,
  ) {
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
    this.w = new BatchStatements(db);
    this.batch = db.transaction(() => this.writeQueued());
    this.exitHook = () => {
      try {
        this.close();
      } catch (err) {
        process.stderr.write(`pinwatch: could not write the last rows to ${this.file}: ${(err as Error).message}\n`);
      }
    };
    process.on('exit', this.exitHook);
  }

  // ------------------------------------------------------------------ session

  startSession(s: SessionStart): SessionInfo {
    this.assertOpen();
    const started = Date.now();
    const offset = started - monoMs();
    const id = this.retryingWrite('starting a session', () =>
      this.db.transaction(() => {
        const r = this.db
          .prepare(`INSERT INTO sessions (host, kernel, bpftrace_version, mode, started_ms, probes_json, lost_events) VALUES (?,?,?,?,?,?,0)`)
          .run(s.host, s.kernel, s.bpftraceVersion, s.mode, started, JSON.stringify(s.probes));
        const sid = Number(r.lastInsertRowid);
        setMeta(this.db, clockKey(sid), String(offset));
        return sid;
      }).immediate(),
    );
    this.sessionId = id;
    this.lostTotal = 0;
    this.lostWritten = 0;
    this.lostByKindJson = this.lostByKindWritten = null;
    this.lastEventNs = -1;
    this.lastEventWritten = -1;
    return { id, host: s.host, kernel: s.kernel, bpftraceVersion: s.bpftraceVersion, mode: s.mode, startedWallMs: started, endedWallMs: null, probes: s.probes, lostEvents: 0 };
  }

  updateProbes(probes: SessionInfo['probes']): void {
    this.assertOpen();
    const id = this.requireSession();
    this.retryingWrite('updating the session', () => this.db.prepare(`UPDATE sessions SET probes_json = ? WHERE id = ?`).run(JSON.stringify(probes), id));
  }

  /** Returns the id of the session it ended (null: none was open). */
  endSession(lostEvents: number | undefined, how: { reason: SessionEndReason; detail?: string }): number | null {
    this.assertOpen();
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
    return id;
  }

  get currentSessionId(): number | null {
    return this.sessionId;
  }

  /** What continues after `stored` (the file's last ids) and everything queued. */
  nextSeqs(stored: LastIds): NextSeqs {
    let { event: ev, anomaly: an, pin, incident: inc } = stored;
    for (const e of this.eventQ) if (e.seq > ev) ev = e.seq;
    for (const a of this.anomaliesQ) if (a.seq > an) an = a.seq;
    for (const id of this.pinsQ.keys()) if (id > pin) pin = id;
    for (const id of this.incidentsQ.keys()) if (id > inc) inc = id;
    return { firstEventSeq: ev + 1, firstAnomalySeq: an + 1, firstPinId: pin + 1, firstIncidentId: inc + 1 };
  }

  // ------------------------------------------------------------------ queueing (hot path: push only)

  /** `kept` false: only counted (per second and kind, event_counts), never dropped: a count costs no queue. */
  event(e: SequencedEvent, kept = true): void {
    if (this.sessionId === null) this.noSession();
    if (e.tsNs > this.lastEventNs) this.lastEventNs = e.tsNs;
    if (!kept) {
      this.counts.add(e.tsNs, e.kind);
      if (this.timer === null) this.armTimer(this.opts.flushIntervalMs);
      return;
    }
    if (this.eventQ.length >= this.opts.maxQueuedRows) {
      this.stat.dropped++;
      return;
    }
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

  anomaly(a: Anomaly): void {
    if (this.sessionId === null) this.noSession();
    this.anomaliesQ.push(a);
    if (this.timer === null) this.armTimer(this.opts.flushIntervalMs);
  }

  /** Its latest state wins. */
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

  /** Gaps handed over but not written yet (the live view includes them). */
  unwrittenGaps(sessionId?: number): (CaptureGap & { sessionId: number })[] {
    const out: (CaptureGap & { sessionId: number })[] = [];
    for (const g of this.gapsQ) if (g.id === 0 && (sessionId === undefined || sessionId === this.sessionId)) out.push({ ...g, sessionId: this.sessionId ?? -1 });
    return out;
  }

  pinnedMemory(m: PinnedMemory): void {
    if (this.sessionId === null) this.noSession();
    this.pinnedQ.push(m);
    if (this.timer === null) this.armTimer(this.opts.flushIntervalMs);
  }

  lost(count: number): void {
    this.lostTotal += count;
    if (this.timer === null && this.sessionId !== null) this.armTimer(this.opts.flushIntervalMs);
  }

  /** The session's events lost per printed kind so far (replaces the last; written with the next batch). */
  lostByKind(byKind: Readonly<Record<string, number>>): void {
    this.lostByKindJson = JSON.stringify(byKind);
    if (this.timer === null && this.sessionId !== null) this.armTimer(this.opts.flushIntervalMs);
  }

  // ------------------------------------------------------------------ writing

  get queued(): number {
    return (
      this.eventQ.length + this.anomaliesQ.length + this.reads.length + this.pinsQ.size + this.incidentsQ.size +
      this.gapsQ.size + this.pinnedQ.length + this.counts.size
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
    if (this.closed) return;
    this.cancelTimers();
    this.batchLimit = Infinity;
    this.writeNow(this.opts.busyTimeoutMs);
  }

  /** Flush, give up the file and close the connection. Throws (leaving it open, rows queued) when the final flush fails. */
  close(): void {
    if (this.closed) return;
    this.flush();
    process.off('exit', this.exitHook);
    try {
      releaseWriter(this.db, this.file);
    } catch {
      // best effort: a stale writer row is taken over by the next writer (its pid is gone)
    }
    try {
      // Fold the WAL back into the file so a copied .db is complete (best effort: a reader may hold it).
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // another connection is reading; the WAL is folded in when the last connection closes
    }
    this.cancelTimers();
    this.closed = true;
    this.db.close();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private noSession(): never {
    throw new Error('Store: call startSession() before handing rows to the store');
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`Store ${this.file} is closed`);
  }

  private requireSession(): number {
    if (this.sessionId === null) this.noSession();
    return this.sessionId;
  }

  private armTimer(ms: number): void {
    if (this.closed) return;
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
    if (this.queued === 0 && ((this.lostTotal === this.lostWritten && this.lostByKindJson === this.lostByKindWritten) || this.sessionId === null)) return;
    this.eventsInBatch = Math.min(this.eventQ.length, this.batchLimit);
    this.readsInBatch = Math.min(this.reads.length, this.batchLimit);
    const t0 = performance.now();
    this.db.pragma(`busy_timeout = ${busyMs}`);
    let rows: number;
    try {
      rows = this.batch.immediate();
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
    const w = this.w;
    const sid = this.sessionId ?? this.requireSessionForWrite();
    let rows = 0;

    // Anomalies, pins and gaps first: with little space left, the verdicts are what must land.
    for (const a of this.anomaliesQ) w.anomaly(sid, a);
    rows += this.anomaliesQ.length;
    for (const p of this.pinsQ.values()) rows += w.pin(sid, p);
    for (const g of this.gapsQ) g.id = writeGap(this.db, sid, g);
    for (const m of this.pinnedQ) writePinnedMemory(this.db, sid, m);
    rows += this.gapsQ.size + this.pinnedQ.length;
    for (const inc of this.incidentsQ.values()) rows += w.incidents.write(sid, inc);

    const batchMaxLen = w.events(sid, this.eventQ, this.eventsInBatch);
    rows += this.eventsInBatch;
    if (batchMaxLen > this.storedMaxLen()) {
      w.maxLen(batchMaxLen);
      this.pendingMaxLen = batchMaxLen;
    }

    w.reads(sid, this.reads, this.readReasons, this.readsInBatch);
    rows += this.readsInBatch;
    rows += w.counts(sid, this.counts);

    if (this.lostTotal !== this.lostWritten && this.sessionId !== null) w.lost(sid, this.lostTotal);
    if (this.lostByKindJson !== this.lostByKindWritten && this.sessionId !== null) w.lostByKind(sid, this.lostByKindJson!);
    if (this.lastEventNs !== this.lastEventWritten && this.sessionId !== null) w.lastEvent(sid, this.lastEventNs);
    return rows;
  }

  private requireSessionForWrite(): number {
    if (this.queued === 0) return -1; // only a lost count left over from an ended session: nothing to write
    throw new Error('Store: rows queued without a session');
  }

  /** After COMMIT: record what was written, clear the queues. */
  private afterWrite(): void {
    this.w.committedPins(this.pinsQ.values());
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
    this.counts.clear();
    this.pinsQ.clear();
    this.incidentsQ.clear();
    this.gapsQ.clear();
    this.pinnedQ.length = 0;
    this.lostWritten = this.lostTotal;
    this.lostByKindWritten = this.lostByKindJson;
    this.lastEventWritten = this.lastEventNs;
    if (this.pendingMaxLen > this.maxLen) this.maxLen = this.pendingMaxLen;
  }

  /** Largest events.len in the file (0 when none; unbounded for files written before the meta row existed). */
  private storedMaxLen(): number {
    if (this.maxLen < 0) {
      const v = metaValue(this.db, META_MAX_LEN);
      const hasEvents = this.db.prepare(`SELECT 1 FROM events LIMIT 1`).get() !== undefined;
      // A file with events but no row was written by an older store: bound unknown.
      this.maxLen = v !== null ? Number(v) : hasEvents ? Number.MAX_SAFE_INTEGER : 0;
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
}
