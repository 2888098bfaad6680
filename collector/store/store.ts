// The SQLite store as the collector uses it: a CollectorSink (writer.ts: batched transactions, sessions) over a
// file it owns (open.ts, lock.ts: one writer per file), with the read queries (queries.ts) on the same
// connection. Callers that only read open StoreQueries instead; Store.open(file, { readonly: true }) remains
// for callers that hold a Store either way.
import type { Anomaly, PagemapRead } from '../../schema/anomalies.ts';
import type { SequencedEvent } from '../../schema/events.ts';
import type { Incident } from '../../schema/incidents.ts';
import type { Pin, PinSummary } from '../../schema/pins.ts';
import type { EventRates } from '../../schema/protocol.ts';
import type { CaptureGap, PinnedMemory } from '../../schema/reliability.ts';
import type { SessionEndReason, SessionInfo } from '../../schema/session.ts';
import type { PinRunsPage } from '../../schema/stored.ts';
import type { CollectorSink, SessionStart } from '../contracts.ts';
import { closeCrashedSessions } from './crashed-sessions.ts';
import { toStoreError } from './errors.ts';
import type { IncidentFilter } from './incidents.ts';
import { openDatabase } from './open.ts';
import { StoreQueries, type AnomalyFilter, type EventFilter } from './queries.ts';
import type { TimelineEntry } from './timeline.ts';
import { StoreWriter, type NextSeqs, type StoreStats, type WriterOptions } from './writer.ts';

export interface StoreOptions extends WriterOptions {
  /** Open for reading only (replay, a second connection beside a live writer). The file must exist. */
  readonly?: boolean;
}

export class Store implements CollectorSink {
  readonly file: string;
  readonly readonly: boolean;
  /** The read side, on this store's connection. */
  readonly queries: StoreQueries;
  /** Sessions closed as crashed when this writer opened the file. */
  readonly recoveredSessions: number[] = [];
  private readonly writer: StoreWriter | null;

  private constructor(queries: StoreQueries, writer: StoreWriter | null) {
    this.file = queries.file;
    this.queries = queries;
    this.writer = writer;
    this.readonly = writer === null;
  }

  /**
   * Open (creating when missing, unless read-only) a pinwatch database. Throws StoreError (with a `fix`) when the
   * file is locked, not writable, not a database, or of another schema version.
   */
  static open(file: string, opts: StoreOptions = {}): Store {
    const readonly = opts.readonly === true;
    const { file: path, db } = openDatabase(file, readonly, opts.busyTimeoutMs ?? 5_000);
    const store = new Store(new StoreQueries(path, db), readonly ? null : new StoreWriter(path, db, opts));
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

  private get w(): StoreWriter {
    if (this.writer === null) throw new Error(`Store ${this.file} was opened read-only`);
    return this.writer;
  }

  /** The writer, for a sink method: a read-only store has no session to hand rows to. */
  private get sink(): StoreWriter {
    if (this.writer === null) throw new Error(`Store ${this.file} is read-only`);
    return this.writer;
  }

  // ------------------------------------------------------------------ session

  /** Start a recording session (a sessions row); events and anomalies handed over afterwards belong to it. */
  startSession(s: SessionStart): SessionInfo {
    return this.w.startSession(s);
  }

  /** Update the probe list of the current session (e.g. after the runner attached). */
  updateProbes(probes: SessionInfo['probes']): void {
    this.w.updateProbes(probes);
  }

  /**
   * Flush, then mark the current session ended, saying how. `lostEvents` defaults to the sum the sink's lost()
   * received.
   */
  endSession(lostEvents?: number, how: { reason: SessionEndReason; detail?: string } = { reason: 'clean' }): SessionInfo | null {
    const id = this.w.endSession(lostEvents, how);
    return id === null ? null : this.queries.session(id);
  }

  get currentSessionId(): number | null {
    return this.writer?.currentSessionId ?? null;
  }

  /** Next event seq, anomaly seq and pin id after everything already in the file (and queued). */
  nextSeqs(): NextSeqs {
    return this.w.nextSeqs(this.queries.lastIds());
  }

  // ------------------------------------------------------------------ CollectorSink (hot path: queue only)

  /** `kept` false: counted per second and kind (event_counts) instead of written as a row (kept-events.ts). */
  event(e: SequencedEvent, kept = true): void {
    this.sink.event(e, kept);
  }

  pin(p: Pin): void {
    this.sink.pin(p);
  }

  pagemapRead(r: PagemapRead, reason: string): void {
    this.sink.pagemapRead(r, reason);
  }

  /** Sink: queue an anomaly. Reader: `anomaly(seq)` returns the stored anomaly with that seq, or null. */
  anomaly(a: Anomaly): void;
  anomaly(seq: number): Anomaly | null;
  anomaly(a: Anomaly | number): Anomaly | null | void {
    if (typeof a === 'number') return this.queries.anomaly(a);
    this.sink.anomaly(a);
  }

  /** Sink: queue an incident (its latest state wins). */
  incident(i: Incident): void {
    this.sink.incident(i);
  }

  /** A capture gap opened or closed (the same object is handed over again when it ends). */
  gap(g: CaptureGap): void {
    this.sink.gap(g);
  }

  /** Sink: queue a VmPin / VmLck reading. Reader: the latest reading per process (see schema/reliability.ts). */
  pinnedMemory(sessionId?: number): (PinnedMemory & { sessionId: number })[];
  pinnedMemory(m: PinnedMemory): void;
  pinnedMemory(a?: number | PinnedMemory): (PinnedMemory & { sessionId: number })[] | void {
    if (typeof a === 'object') return this.sink.pinnedMemory(a);
    return this.queries.pinnedMemory(a);
  }

  /** Events lost per printed kind (collector/capture-loss.ts), the session's latest. */
  lostByKind(byKind: Readonly<Record<string, number>>): void {
    this.writer?.lostByKind(byKind);
  }

  lost(count: number): void {
    this.writer?.lost(count);
  }

  // ------------------------------------------------------------------ writing

  /** Rows waiting to be written. */
  get queued(): number {
    return this.writer?.queued ?? 0;
  }

  stats(): StoreStats {
    return this.writer?.stats() ?? { queued: 0, flushes: 0, rowsWritten: 0, failedFlushes: 0, lastFlushMs: 0, dropped: 0 };
  }

  /**
   * Write everything queued now, in one transaction, waiting up to busyTimeoutMs for another writer.
   * Throws StoreError('locked', …) when the lock is not released in time: the rows stay queued (call again).
   */
  flush(): void {
    this.writer?.flush();
  }

  /** Flush and close. Throws (leaving the store open, rows queued) when the final flush fails; call again to retry. */
  close(): void {
    this.writer?.close();
    this.queries.close();
  }

  get isClosed(): boolean {
    return this.queries.isClosed;
  }

  // ------------------------------------------------------------------ reading (queries.ts)

  sessions(): SessionInfo[] {
    return this.queries.sessions();
  }

  session(id: number): SessionInfo | null {
    return this.queries.session(id);
  }

  /** Capture gaps (bpftrace not capturing), of one session or all, in time order; a writer includes unwritten ones. */
  gaps(sessionId?: number): (CaptureGap & { sessionId: number })[] {
    return [...this.queries.gaps(sessionId), ...(this.writer?.unwrittenGaps(sessionId) ?? [])];
  }

  anomalies(f: AnomalyFilter = {}): Anomaly[] {
    return this.queries.anomalies(f);
  }

  anomalyBySeq(seq: number): Anomaly | null {
    return this.queries.anomaly(seq);
  }

  incidents(f: IncidentFilter = {}): Incident[] {
    return this.queries.incidents(f);
  }

  pins(sessionId?: number): PinSummary[] {
    return this.queries.pins(sessionId);
  }

  pinDetail(id: number): Pin | null {
    return this.queries.pinDetail(id);
  }

  pinRuns(pinId: number, offset?: number, limit?: number): PinRunsPage | null {
    return this.queries.pinRuns(pinId, offset, limit);
  }

  eventsBySeq(seqs: readonly number[]): SequencedEvent[] {
    return this.queries.eventsBySeq(seqs);
  }

  events(f: EventFilter = {}): SequencedEvent[] {
    return this.queries.events(f);
  }

  pagemapReads(pid: number, addr: number): { read: PagemapRead; reason: string }[] {
    return this.queries.pagemapReads(pid, addr);
  }

  pageTimeline(pid: number, addr: number): TimelineEntry[] {
    return this.queries.pageTimeline(pid, addr);
  }

  eventRates(sinceWallMs: number): EventRates[] {
    return this.queries.eventRates(sinceWallMs);
  }

  clockOffset(sessionId: number): number | null {
    return this.queries.clockOffset(sessionId);
  }
}
