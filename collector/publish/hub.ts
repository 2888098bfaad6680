// The publish hub: a CollectorSink that turns the collector's output into what live consumers need —
// events re-emitted, the last N anomalies kept for reconnecting clients (resume by seq, no duplicates), the
// latest state per pin, per-second event counts per kind, the session and a status banner. The web attaches
// socket.io and /metrics to it; `pinwatch record` prints anomalies from it.
//
// Events: 'event'(SequencedEvent), 'pin'(Pin), 'pagemapRead'(PagemapRead, reason), 'anomaly'(Anomaly),
// 'incident'(Incident, change), 'lost'(count), 'rates'(EventRates) once a second while started,
// 'session'(SessionInfo), 'status'(HubStatus), 'gap'(CaptureGap: opened, then again when it closed),
// 'pinnedMemory'(PinnedMemory). A repeated finding re-sends its anomaly (same seq, higher count): the ring keeps
// one entry per seq.
// Hot path: event() is one counter increment, plus an emit only when someone listens to 'event'.
import { EventEmitter } from 'node:events';
import type { Anomaly, PagemapRead } from '../../schema/anomalies.ts';
import { EVENT_KINDS } from '../../schema/event-kinds.ts';
import type { EventKind, SequencedEvent } from '../../schema/events.ts';
import type { Incident, IncidentChange } from '../../schema/incidents.ts';
import { isLivePin, type Pin, type PinSummary } from '../../schema/pins.ts';
import type { EventRates } from '../../schema/protocol.ts';
import type { CaptureGap, PinnedMemory } from '../../schema/reliability.ts';
import type { SessionInfo } from '../../schema/session.ts';
import type { CollectorSink } from '../contracts.ts';
import type { CollectorStatus } from '../../schema/status.ts';
import { divergedPagesOf } from '../../schema/pin-runs.ts';
import type { VerifySweep } from '../../schema/metrics.ts';

export type HubStatus = CollectorStatus;

export interface HubOptions {
  /** Anomalies kept for anomaliesAfter() (default 10,000). */
  maxAnomalies?: number;
  /** Incidents kept for incidents() (default 2,000, newest). */
  maxIncidents?: number;
  /** Seconds of per-second rates kept (default 600 = 10 minutes). */
  rateWindowS?: number;
  /** Released pins stay in pins() this long (default 5 minutes). */
  releasedPinRetentionMs?: number;
  /** At most this many released pins are kept (oldest release dropped first; default 1,000). */
  maxReleasedPins?: number;
  /** Wall clock in ms (tests). */
  now?: () => number;
}

export interface HubTotals {
  events: number;
  anomalies: number;
  incidents: number;
  lost: number;
  byKind: Partial<Record<EventKind, number>>;
}

/** A pin without its runs: the table row the UI shows. divergedPages counts pages whose current pfn ≠ pinned pfn. */
export function summarizePin(p: Pin): PinSummary {
  const { runs, omittedPages: _o, ...rest } = p;
  const own = (p as Pin & { divergedPages?: number }).divergedPages;
  return { ...rest, divergedPages: typeof own === 'number' ? own : divergedPagesOf(runs) };
}

type KindCounts = Record<EventKind, number>;

function zeroCounts(): KindCounts {
  const c = {} as KindCounts;
  for (const k of EVENT_KINDS) c[k] = 0;
  return c;
}

export class Hub extends EventEmitter implements CollectorSink {
  private readonly maxAnomalies: number;
  private readonly maxIncidents: number;
  /** Incident id → latest state (insertion order = opening order). */
  private readonly incidentMap = new Map<number, Incident>();
  private readonly rateWindow: number;
  private readonly pinRetentionMs: number;
  private readonly maxReleased: number;
  private readonly now: () => number;

  private eventListeners = 0;
  private readListeners = 0;
  private pinListeners = 0;
  private rateListeners = 0;
  private started = false;
  private timer: NodeJS.Timeout | null = null;

  private current: KindCounts = zeroCounts();
  private readonly totalByKind: KindCounts = zeroCounts();
  private readonly rateRing: EventRates[] = [];
  private readonly recent: Anomaly[] = [];
  private readonly pinMap = new Map<number, PinSummary>();
  /** Released pin id → wall ms of the release (insertion order = release order). */
  private readonly released = new Map<number, number>();
  private counters = { events: 0, anomalies: 0, incidents: 0, lost: 0 };
  private sessionInfo: SessionInfo | null = null;
  private readonly gapList: CaptureGap[] = [];
  private readonly pinnedByPid = new Map<number, PinnedMemory>();
  private statusInfo: HubStatus | null = null;
  private sweepInfo: VerifySweep | null = null;
  private capture = { up: false, gaps: 0, lastEventWallMs: null as number | null };

  constructor(opts: HubOptions = {}) {
    super();
    this.maxAnomalies = opts.maxAnomalies ?? 10_000;
    this.maxIncidents = opts.maxIncidents ?? 2_000;
    this.rateWindow = opts.rateWindowS ?? 600;
    this.pinRetentionMs = opts.releasedPinRetentionMs ?? 5 * 60_000;
    this.maxReleased = opts.maxReleasedPins ?? 1_000;
    this.now = opts.now ?? Date.now;
    this.setMaxListeners(100); // one listener per connected dashboard client
    // Track listeners so the hot path can skip emit() and the rates timer runs only when wanted.
    this.on('newListener', (name: string | symbol) => this.countListener(name, 1));
    this.on('removeListener', (name: string | symbol) => this.countListener(name, -1));
  }

  private countListener(name: string | symbol, d: number): void {
    if (name === 'event') this.eventListeners += d;
    else if (name === 'pagemapRead') this.readListeners += d;
    else if (name === 'pin') this.pinListeners += d;
    else if (name === 'rates') {
      this.rateListeners += d;
      this.updateTimer();
    }
  }

  // ---------------------------------------------------------------- CollectorSink

  event(e: SequencedEvent): void {
    this.current[e.kind]++;
    this.counters.events++;
    if (this.eventListeners !== 0) this.emit('event', e);
  }

  pin(p: Pin): void {
    const s = summarizePin(p);
    this.pinMap.set(p.id, s);
    if (!isLivePin(s)) {
      if (!this.released.has(p.id)) {
        this.released.set(p.id, this.now());
        this.pruneReleased();
      }
    } else this.released.delete(p.id);
    if (this.pinListeners !== 0) this.emit('pin', p);
  }

  pagemapRead(r: PagemapRead, reason: string): void {
    if (this.readListeners !== 0) this.emit('pagemapRead', r, reason);
  }

  anomaly(a: Anomaly): void {
    const ring = this.recent;
    const last = ring.length ? ring[ring.length - 1].seq : -Infinity;
    if (a.seq > last) {
      ring.push(a);
      this.counters.anomalies++;
    } else {
      // Out of order or repeated seq (a repeat count update): keep the ring sorted and free of duplicates.
      const i = lowerBound(ring, a.seq);
      if (i < ring.length && ring[i].seq === a.seq) ring[i] = a;
      else {
        ring.splice(i, 0, a);
        this.counters.anomalies++;
      }
    }
    if (ring.length > this.maxAnomalies) ring.splice(0, ring.length - this.maxAnomalies);
    this.emit('anomaly', a);
  }

  incident(i: Incident, change: IncidentChange): void {
    if (change === 'opened') this.counters.incidents++;
    this.incidentMap.set(i.id, i);
    if (this.incidentMap.size > this.maxIncidents) this.incidentMap.delete(this.incidentMap.keys().next().value!);
    this.emit('incident', i, change);
  }

  lost(count: number): void {
    this.counters.lost += count;
    this.emit('lost', count);
  }

  gap(g: CaptureGap): void {
    if (!this.gapList.includes(g)) {
      this.gapList.push(g);
      if (this.gapList.length > 1000) this.gapList.shift();
    }
    this.emit('gap', { ...g });
  }

  pinnedMemory(m: PinnedMemory): void {
    this.pinnedByPid.set(m.pid, m);
    this.emit('pinnedMemory', m);
  }

  // ---------------------------------------------------------------- queries

  /** Kept anomalies with seq > afterSeq, in seq order (what a reconnecting client missed). */
  anomaliesAfter(afterSeq: number): Anomaly[] {
    const i = lowerBound(this.recent, afterSeq + 1e-9);
    return this.recent.slice(i);
  }

  /** Kept incidents (latest state), oldest first. */
  incidents(): Incident[] {
    return [...this.incidentMap.values()];
  }

  /** Seq of the newest anomaly kept (0 when none). */
  lastAnomalySeq(): number {
    return this.recent.length ? this.recent[this.recent.length - 1].seq : 0;
  }

  /** Latest state of every live pin and of recently released ones, by id. */
  pins(): PinSummary[] {
    this.pruneReleased();
    return [...this.pinMap.values()].sort((a, b) => a.id - b.id);
  }

  /** Capture gaps of this collector (open ones have endNs null), oldest first. */
  gaps(): CaptureGap[] {
    return this.gapList.map((g) => ({ ...g }));
  }

  /** Latest VmPin / VmLck per process seen at discovery. */
  pinnedMemoryList(): PinnedMemory[] {
    return [...this.pinnedByPid.values()].sort((a, b) => a.pid - b.pid);
  }

  /** Closed 1 s buckets of the last rateWindowS seconds, oldest first. */
  rates(): EventRates[] {
    return this.rateRing.slice();
  }

  /** Counts since the hub was created (for /metrics counters). */
  totals(): HubTotals {
    const byKind: Partial<Record<EventKind, number>> = {};
    for (const k of EVENT_KINDS) {
      const n = this.totalByKind[k] + this.current[k];
      if (n) byKind[k] = n;
    }
    return { ...this.counters, byKind };
  }

  setSession(s: SessionInfo | null): void {
    this.sessionInfo = s;
    if (s) this.emit('session', s);
  }

  session(): SessionInfo | null {
    return this.sessionInfo;
  }

  setStatus(s: HubStatus): void {
    this.statusInfo = { ...s };
    this.emit('status', this.statusInfo);
  }

  status(): HubStatus | null {
    return this.statusInfo;
  }

  /** The verifier's sweep figures (CollectorSink). */
  verifySweep(s: VerifySweep): void {
    this.sweepInfo = s;
  }

  /** The last sweep figures; null before the first periodic pass. */
  verifySweepState(): VerifySweep | null {
    return this.sweepInfo;
  }

  /** bpftrace is capturing (true) or not (false); each fall from capturing to not is one capture gap. */
  setCapture(up: boolean): void {
    if (this.capture.up && !up) this.capture.gaps++;
    this.capture.up = up;
  }

  /** Whether bpftrace captures, gaps so far, and when the last event arrived (to the second: the rates tick). */
  captureState(): { up: boolean; gaps: number; lastEventWallMs: number | null } {
    return { ...this.capture };
  }

  // ---------------------------------------------------------------- rates timer

  /** Emit 'rates' every second (also automatic while someone listens to 'rates'). */
  start(): void {
    this.started = true;
    this.updateTimer();
  }

  stop(): void {
    this.started = false;
    this.updateTimer();
  }

  /** Close the current 1 s bucket (the timer calls this every second): record it and emit 'rates'. */
  tick(nowMs: number = this.now()): EventRates {
    const cur = this.current;
    const counts: Partial<Record<EventKind, number>> = {};
    for (const k of EVENT_KINDS) {
      const n = cur[k];
      if (n !== 0) {
        this.capture.lastEventWallMs = nowMs;
        counts[k] = n;
        this.totalByKind[k] += n;
        cur[k] = 0;
      }
    }
    const r: EventRates = { wallMs: nowMs, counts };
    this.rateRing.push(r);
    if (this.rateRing.length > this.rateWindow) this.rateRing.splice(0, this.rateRing.length - this.rateWindow);
    this.pruneReleased();
    this.emit('rates', r);
    return r;
  }

  private updateTimer(): void {
    const want = this.started || this.rateListeners > 0;
    if (want && this.timer === null) {
      this.timer = setInterval(() => this.tick(), 1000);
      this.timer.unref();
    } else if (!want && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  private pruneReleased(): void {
    if (this.released.size === 0) return;
    const cutoff = this.now() - this.pinRetentionMs;
    for (const [id, at] of this.released) {
      if (at > cutoff && this.released.size <= this.maxReleased) break; // insertion order: the rest are newer
      this.released.delete(id);
      this.pinMap.delete(id);
    }
  }
}

/** First index whose seq >= seq (anomalies sorted by seq). */
function lowerBound(a: Anomaly[], seq: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid].seq < seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
