// Data sources behind the dashboard: the live collector (mirrored over the collector link plus a read-only view of the SQLite
// file its store writes) or a recording replayed read-only. Pages and sockets talk to a DataSource and never
// care which one it is; a recording opened from the browser becomes one more source next to the main one.
import { EventEmitter } from 'node:events';
import { existsSync, rmSync } from 'node:fs';
import { basename } from 'node:path';
import type { VerifySweep } from '../../schema/metrics.ts';
import type { Anomaly } from '../../schema/anomalies.ts';
import type { EventKind } from '../../schema/events.ts';
import type { Incident } from '../../schema/incidents.ts';
import type { PinSummary } from '../../schema/pins.ts';
import type { EventRates } from '../../schema/protocol.ts';
import type { SessionInfo } from '../../schema/session.ts';
import type { CollectorStatus } from '../../schema/status.ts';
import type { StoreQueries } from '../../collector/store/index.ts';
import type { CollectorLink } from './collector-link.ts';
import type { ClockTick, SourceInfo } from '../shared/wire.ts';
import { RecordingError, openRecording } from './recording.ts';

/**
 * Emits 'anomaly'(Anomaly), 'incident'(Incident, IncidentChange) after the anomalies it groups, 'pins'(PinSummary[])
 * at most twice a second, 'rates'(EventRates), 'session'(SessionInfo), 'status'(CollectorStatus), 'resync'() (live:
 * the collector link reconnected; sockets catch up).
 */
export interface DataSource extends EventEmitter {
  readonly id: string;
  info(): SourceInfo;
  session(): SessionInfo | null;
  status(): CollectorStatus;
  pins(): PinSummary[];
  rates(): EventRates[];
  anomaliesAfter(seq: number): Anomaly[];
  /**
   * At most `limit` anomalies with seq > afterSeq, oldest first: one page of a browser's resume. Live: from SQLite
   * for what this process no longer keeps in memory, then from memory (the newest may not be written yet).
   */
  anomalyPage(afterSeq: number, limit: number): Anomaly[];
  anomaly(seq: number): Anomaly | null;
  /** Incidents (latest state), oldest first. */
  incidents(): Incident[];
  /** The SQLite view (read-only), or null while live capture has not created the file. */
  reader(): StoreQueries | null;
  /**
   * Events by kind: live, counted as they arrive since this server started (never a scan of a growing table on
   * the collector's event loop); replay, counted once from the file.
   */
  eventCounts(): Partial<Record<EventKind, number>>;
  /** Lost events reported by bpftrace (live: since start; replay: as recorded). */
  lostEvents(): number;
  /** Live capture: bpftrace up, capture gaps, when the last event arrived. Null for a recording. */
  capture(): { up: boolean; gaps: number; lastEventWallMs: number | null } | null;
  /** The live collector's pagemap sweep figures; null for a recording or before the first pass. */
  verifySweep(): VerifySweep | null;
  now(): ClockTick;
  close(): Promise<void>;
}

function monotonicNowNs(): number {
  // process.hrtime is CLOCK_MONOTONIC on Linux: the clock bpftrace's nsecs and the events use.
  return Number(process.hrtime.bigint());
}

export class LiveSource extends EventEmitter implements DataSource {
  readonly id: string;
  private readonly link: CollectorLink;
  private readonly file: string;
  private view: StoreQueries | null = null;
  private readonly forward: [string, (...args: unknown[]) => void][];

  constructor(id: string, link: CollectorLink, file: string) {
    super();
    this.id = id;
    this.link = link;
    this.file = file;
    // The link already throttles pins (≤ 2/s) and keeps the rest; re-emit as the DataSource events.
    this.forward = ['anomaly', 'incident', 'rates', 'session', 'status', 'pins', 'resync'].map((name) => [name, (...a: unknown[]) => this.emit(name, ...a)]);
    for (const [name, fn] of this.forward) link.on(name, fn);
  }

  info(): SourceInfo {
    return { id: this.id, kind: 'live', name: basename(this.file), file: existsSync(this.file) ? this.file : null };
  }

  session(): SessionInfo | null {
    return this.link.session() ?? null;
  }

  status(): CollectorStatus {
    return this.link.status() ?? { level: 'warning', message: 'live capture not started' };
  }

  /** Live capture runs (scenarios started now would be observed). */
  capturing(): boolean {
    return this.link.capturing();
  }

  pins(): PinSummary[] {
    return this.link.pins();
  }

  rates(): EventRates[] {
    return this.link.rates();
  }

  anomaliesAfter(seq: number): Anomaly[] {
    return this.link.anomaliesAfter(seq);
  }

  anomalyPage(afterSeq: number, limit: number): Anomaly[] {
    const firstKept = this.link.firstKeptSeq();
    if (afterSeq + 1 < firstKept) {
      const older = this.reader()?.anomalies({ afterSeq, limit }).filter((a) => a.seq < firstKept) ?? [];
      if (older.length) return older;
    }
    return this.link.anomaliesAfter(afterSeq, limit);
  }

  anomaly(seq: number): Anomaly | null {
    // The store may batch its writes: an anomaly just published can be missing from SQLite for a moment.
    return this.reader()?.anomaly(seq) ?? this.link.anomaliesAfter(seq - 1, 1).find((a) => a.seq === seq) ?? null;
  }

  incidents(): Incident[] {
    return this.link.incidents();
  }

  reader(): StoreQueries | null {
    if (!this.view && existsSync(this.file)) {
      try {
        this.view = openRecording(this.file);
      } catch (err) {
        // The store creates its tables on start; until then the file is not a recording yet.
        if (!(err instanceof RecordingError)) throw err;
      }
    }
    return this.view;
  }

  now(): ClockTick {
    return { nowNs: monotonicNowNs(), wallMs: Date.now() };
  }

  eventCounts(): Partial<Record<EventKind, number>> {
    return this.link.totals().byKind;
  }

  lostEvents(): number {
    return Math.max(this.link.totals().lost, this.session()?.lostEvents ?? 0);
  }

  capture(): { up: boolean; gaps: number; lastEventWallMs: number | null } {
    return this.link.captureState();
  }

  verifySweep(): VerifySweep | null {
    return this.link.verifySweep();
  }

  async close(): Promise<void> {
    for (const [name, fn] of this.forward) this.link.off(name, fn);
    this.view?.close();
    this.view = null;
  }
}

export class ReplaySource extends EventEmitter implements DataSource {
  readonly id: string;
  private readonly view: StoreQueries;
  private readonly label: string;
  private readonly cachedRates: EventRates[];
  private readonly cachedCounts: Partial<Record<EventKind, number>>;
  private readonly endNs: number;
  private readonly cachedIncidents: Incident[];

  private readonly owned: boolean;
  private readonly file: string;

  /** owned: the file is this source's (an upload) and is deleted on close. */
  constructor(id: string, file: string, label = basename(file), owned = false) {
    super();
    this.id = id;
    this.owned = owned;
    this.file = file;
    this.view = openRecording(file);
    this.label = label;
    // A recording does not change: aggregate it once.
    this.cachedRates = this.view.rates();
    this.cachedCounts = this.view.eventCounts();
    this.endNs = this.view.lastTsNs();
    this.cachedIncidents = this.view.incidents();
  }

  eventCounts(): Partial<Record<EventKind, number>> {
    return this.cachedCounts;
  }

  lostEvents(): number {
    return this.view.lostEvents();
  }

  capture(): null {
    return null;
  }

  verifySweep(): null {
    return null;
  }

  info(): SourceInfo {
    return { id: this.id, kind: 'replay', name: this.label, file: this.file };
  }

  session(): SessionInfo | null {
    return this.view.lastSession();
  }

  status(): CollectorStatus {
    const s = this.view.lastSession();
    const what = s ? `recorded on ${s.host}, kernel ${s.kernel}, ${s.mode} mode` : 'no session in the file';
    return { level: 'ok', message: `Replay of ${this.label} (${what}); read-only, no live capture` };
  }

  pins(): PinSummary[] {
    return this.view.pins();
  }

  rates(): EventRates[] {
    return this.cachedRates;
  }

  anomaliesAfter(seq: number): Anomaly[] {
    // The newest 10,000 after seq, oldest first (the order the socket sends them in).
    return this.view.anomalies({ afterSeq: seq, order: 'desc' }).reverse();
  }

  anomalyPage(afterSeq: number, limit: number): Anomaly[] {
    return this.view.anomalies({ afterSeq, limit });
  }

  anomaly(seq: number): Anomaly | null {
    return this.view.anomaly(seq);
  }

  incidents(): Incident[] {
    return this.cachedIncidents;
  }

  reader(): StoreQueries {
    return this.view;
  }

  now(): ClockTick {
    const s = this.view.lastSession();
    return { nowNs: this.endNs, wallMs: s?.endedWallMs ?? s?.startedWallMs ?? 0 };
  }

  async close(): Promise<void> {
    this.view.close();
    if (this.owned) rmSync(this.file, { force: true });
  }
}

/** The main source plus recordings opened from the browser (bounded: the oldest opened one is closed first). */
export class SourceRegistry {
  private readonly sources = new Map<string, DataSource>();
  private nextId = 1;
  private readonly maxOpened: number;

  constructor(maxOpened = 6) {
    this.maxOpened = maxOpened;
  }

  setMain(source: DataSource): void {
    this.sources.set('main', source);
  }

  get(id: string | null | undefined): DataSource | undefined {
    return this.sources.get(id || 'main');
  }

  list(): SourceInfo[] {
    return [...this.sources.values()].map((s) => s.info());
  }

  /** Opens a recording as a new replay source (or returns the one already open on that file). */
  async openReplay(file: string, label?: string, opts: { owned?: boolean } = {}): Promise<DataSource> {
    for (const s of this.sources.values()) if (s.info().kind === 'replay' && s.info().file === file) return s;
    const id = `r${this.nextId++}`;
    const source = new ReplaySource(id, file, label, opts.owned ?? false);
    const opened = [...this.sources.keys()].filter((k) => k !== 'main');
    if (opened.length >= this.maxOpened) {
      const oldest = this.sources.get(opened[0]!)!;
      this.sources.delete(opened[0]!);
      await oldest.close();
    }
    this.sources.set(id, source);
    return source;
  }

  async closeAll(): Promise<void> {
    const all = [...this.sources.values()];
    this.sources.clear();
    await Promise.all(all.map((s) => s.close()));
  }
}
