// Data sources behind the dashboard: the live collector (its publish Hub plus a read-only view of the SQLite
// file its store writes) or a recording replayed read-only. Pages and sockets talk to a DataSource and never
// care which one it is; a recording opened from the browser becomes one more source next to the main one.
import { EventEmitter } from 'node:events';
import { existsSync, rmSync } from 'node:fs';
import { basename } from 'node:path';
import type { Anomaly } from '../../schema/anomalies.ts';
import type { EventKind } from '../../schema/events.ts';
import type { PinSummary } from '../../schema/pins.ts';
import type { EventRates } from '../../schema/protocol.ts';
import type { SessionInfo } from '../../schema/session.ts';
import type { Hub } from '../../collector/publish/hub.ts';
import type { ClockTick, CollectorStatus, SourceInfo } from '../shared/wire.ts';
import { RecordingReader, RecordingError } from './recording.ts';

/**
 * Emits 'anomaly'(Anomaly), 'pins'(PinSummary[]) at most twice a second, 'rates'(EventRates),
 * 'session'(SessionInfo), 'status'(CollectorStatus), 'lost'(count).
 */
export interface DataSource extends EventEmitter {
  readonly id: string;
  info(): SourceInfo;
  session(): SessionInfo | null;
  status(): CollectorStatus;
  pins(): PinSummary[];
  rates(): EventRates[];
  anomaliesAfter(seq: number): Anomaly[];
  anomaly(seq: number): Anomaly | null;
  /** The SQLite view, or null while live capture has not created the file. */
  reader(): RecordingReader | null;
  /**
   * Events by kind: live, counted as they arrive since this server started (never a scan of a growing table on
   * the collector's event loop); replay, counted once from the file.
   */
  eventCounts(): Partial<Record<EventKind, number>>;
  /** Lost events reported by bpftrace (live: since start; replay: as recorded). */
  lostEvents(): number;
  now(): ClockTick;
  close(): Promise<void>;
}

const PINS_THROTTLE_MS = 500;

function monotonicNowNs(): number {
  // process.hrtime is CLOCK_MONOTONIC on Linux: the clock bpftrace's nsecs and the events use.
  return Number(process.hrtime.bigint());
}

export class LiveSource extends EventEmitter implements DataSource {
  readonly id: string;
  private readonly hub: Hub;
  private readonly file: string;
  private view: RecordingReader | null = null;
  private pinsDirty = false;
  private readonly pinsTimer: NodeJS.Timeout;
  private readonly forward: [string, (...args: unknown[]) => void][];

  constructor(id: string, hub: Hub, file: string) {
    super();
    this.id = id;
    this.hub = hub;
    this.file = file;
    this.forward = [
      ['anomaly', (a) => this.emit('anomaly', a as Anomaly)],
      ['rates', (r) => this.emit('rates', r as EventRates)],
      ['session', (s) => this.emit('session', s as SessionInfo)],
      ['status', (s) => this.emit('status', s as CollectorStatus)],
      // No 'event' listener: the hub skips its per-event emit when nobody listens; counts come from totals().
      ['lost', (n) => this.emit('lost', n as number)],
      ['pin', () => {
        this.pinsDirty = true;
      }],
    ];
    for (const [name, fn] of this.forward) hub.on(name, fn);
    this.pinsTimer = setInterval(() => {
      if (!this.pinsDirty) return;
      this.pinsDirty = false;
      this.emit('pins', this.hub.pins());
    }, PINS_THROTTLE_MS);
    this.pinsTimer.unref();
  }

  info(): SourceInfo {
    return { id: this.id, kind: 'live', name: basename(this.file), file: existsSync(this.file) ? this.file : null };
  }

  session(): SessionInfo | null {
    return this.hub.session() ?? null;
  }

  status(): CollectorStatus {
    return this.hub.status() ?? { level: 'warning', message: 'live capture not started' };
  }

  pins(): PinSummary[] {
    return this.hub.pins();
  }

  rates(): EventRates[] {
    return this.hub.rates();
  }

  anomaliesAfter(seq: number): Anomaly[] {
    return this.hub.anomaliesAfter(seq);
  }

  anomaly(seq: number): Anomaly | null {
    // The store may batch its writes: an anomaly the hub just published can be missing from SQLite for a moment.
    return this.reader()?.anomaly(seq) ?? this.hub.anomaliesAfter(seq - 1).find((a) => a.seq === seq) ?? null;
  }

  reader(): RecordingReader | null {
    if (!this.view && existsSync(this.file)) {
      try {
        this.view = RecordingReader.open(this.file);
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
    return this.hub.totals().byKind;
  }

  lostEvents(): number {
    return Math.max(this.hub.totals().lost, this.session()?.lostEvents ?? 0);
  }

  async close(): Promise<void> {
    clearInterval(this.pinsTimer);
    for (const [name, fn] of this.forward) this.hub.off(name, fn);
    this.view?.close();
    this.view = null;
  }
}

export class ReplaySource extends EventEmitter implements DataSource {
  readonly id: string;
  private readonly view: RecordingReader;
  private readonly label: string;
  private readonly cachedRates: EventRates[];
  private readonly cachedCounts: Partial<Record<EventKind, number>>;
  private readonly endNs: number;

  private readonly owned: boolean;

  /** owned: the file is this source's (an upload) and is deleted on close. */
  constructor(id: string, file: string, label = basename(file), owned = false) {
    super();
    this.id = id;
    this.owned = owned;
    this.view = RecordingReader.open(file);
    this.label = label;
    // A recording does not change: aggregate it once.
    this.cachedRates = this.view.rates();
    this.cachedCounts = this.view.eventCounts();
    this.endNs = this.view.lastTsNs();
  }

  eventCounts(): Partial<Record<EventKind, number>> {
    return this.cachedCounts;
  }

  lostEvents(): number {
    return this.view.lostEvents();
  }

  info(): SourceInfo {
    return { id: this.id, kind: 'replay', name: this.label, file: this.view.file };
  }

  session(): SessionInfo | null {
    return this.view.lastSession();
  }

  status(): CollectorStatus {
    const s = this.view.lastSession();
    const what = s ? `recorded on ${s.host}, kernel ${s.kernel}, ${s.mode} mode` : 'no session in the file';
    const warn = this.view.warnings.join('; ');
    return warn
      ? { level: 'warning', message: `Replay of ${this.label} (${what}): ${warn}` }
      : { level: 'ok', message: `Replay of ${this.label} (${what}); read-only, no live capture` };
  }

  pins(): PinSummary[] {
    return this.view.pins();
  }

  rates(): EventRates[] {
    return this.cachedRates;
  }

  anomaliesAfter(seq: number): Anomaly[] {
    return this.view.anomaliesAfter(seq);
  }

  anomaly(seq: number): Anomaly | null {
    return this.view.anomaly(seq);
  }

  reader(): RecordingReader {
    return this.view;
  }

  now(): ClockTick {
    const s = this.view.lastSession();
    return { nowNs: this.endNs, wallMs: s?.endedWallMs ?? s?.startedWallMs ?? 0 };
  }

  async close(): Promise<void> {
    this.view.close();
    if (this.owned) rmSync(this.view.file, { force: true });
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
