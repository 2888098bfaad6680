// The browser's view of one data source, fed by socket.io: session, status, pins, event rates, the host clock
// and every anomaly (deduplicated by seq). On every (re)connect it sends 'resume'(lastSeq), so anomalies missed
// while disconnected arrive once. Updates are batched to one render per 60 ms however fast messages come.
import { io, type Socket } from 'socket.io-client';
import type { Anomaly } from '../../../schema/anomalies.ts';
import type { Incident } from '../../../schema/incidents.ts';
import type { PinSummary } from '../../../schema/pins.ts';
import type { EventRates } from '../../../schema/protocol.ts';
import type { SessionInfo } from '../../../schema/session.ts';
import type { ClockTick, CollectorStatus, SourceInfo, WebClientToServer, WebServerToClient } from '../../shared/wire.ts';

export type WebSocketClient = Socket<WebServerToClient, WebClientToServer>;

export interface LiveSnapshot {
  connected: boolean;
  /** Connected at least once (before that the page shows "connecting", not "disconnected"). */
  everConnected: boolean;
  source: SourceInfo | null;
  session: SessionInfo | null;
  status: CollectorStatus | null;
  /** Newest first. */
  anomalies: Anomaly[];
  lastSeq: number;
  /** Latest state of each incident, newest first. */
  incidents: Incident[];
  pins: PinSummary[];
  /** Oldest first, at most MAX_RATES. */
  rates: EventRates[];
  clock: ClockTick | null;
  /** performance.now() when `clock` arrived, to run the clock forward between ticks. */
  clockAtMs: number;
}

const MAX_ANOMALIES = 10_000;
const MAX_RATES = 600;
const MAX_INCIDENTS = 2_000;
const FLUSH_MS = 60;

export const EMPTY_SNAPSHOT: LiveSnapshot = {
  connected: false,
  everConnected: false,
  source: null,
  session: null,
  status: null,
  anomalies: [],
  lastSeq: 0,
  incidents: [],
  pins: [],
  rates: [],
  clock: null,
  clockAtMs: 0,
};

export class LiveStore {
  readonly socket: WebSocketClient;
  private snap: LiveSnapshot = EMPTY_SNAPSHOT;
  private readonly listeners = new Set<() => void>();
  private readonly anomalyListeners = new Set<(a: Anomaly) => void>();
  private readonly incidentListeners = new Set<(i: Incident, before: Incident | undefined) => void>();
  private readonly incidentMap = new Map<number, Incident>();
  private incidentsDirty = false;
  private readonly seen = new Set<number>();
  private pendingAnomalies: Anomaly[] = [];
  private patch: Partial<LiveSnapshot> = {};
  private pendingRates: EventRates[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;

  constructor(src: string) {
    this.socket = io({ query: src && src !== 'main' ? { src } : {}, transports: ['websocket', 'polling'] });
    const s = this.socket;
    s.on('connect', () => {
      this.set({ connected: true, everConnected: true });
      // Ask for everything after the last anomaly we hold: nothing missed, nothing twice.
      const pendingMax = this.pendingAnomalies.reduce((m, a) => Math.max(m, a.seq), 0);
      s.emit('resume', Math.max(this.snap.lastSeq, pendingMax));
    });
    s.on('disconnect', (reason) => {
      this.set({ connected: false });
      // socket.io does not reconnect after a server-side disconnect (a server shutting down, a slow client cut
      // off): try again like after any other drop, so a restarted server gets its pages back.
      if (reason === 'io server disconnect' && !this.closed) setTimeout(() => !this.closed && s.connect(), 1000);
    });
    s.on('source', (source) => this.set({ source }));
    s.on('session', (session) => this.set({ session }));
    s.on('status', (status) => this.set({ status }));
    s.on('pins', (pins) => this.set({ pins }));
    s.on('clock', (clock) => this.set({ clock, clockAtMs: performance.now() }));
    s.on('rates', (r) => {
      this.pendingRates.push(r);
      this.schedule();
    });
    s.on('incident', (i) => {
      const before = this.incidentMap.get(i.id);
      if (before && before.updatedWallMs > i.updatedWallMs) return;
      this.incidentMap.set(i.id, i);
      if (this.incidentMap.size > MAX_INCIDENTS) this.incidentMap.delete(Math.min(...this.incidentMap.keys()));
      this.incidentsDirty = true;
      for (const fn of this.incidentListeners) fn(i, before);
      this.schedule();
    });
    s.on('ratesHistory', (list) => {
      this.pendingRates.push(...list);
      this.schedule();
    });
    const take = (a: Anomaly) => {
      if (this.seen.has(a.seq)) return;
      this.seen.add(a.seq);
      this.pendingAnomalies.push(a);
      for (const fn of this.anomalyListeners) fn(a);
    };
    s.on('anomaly', (a) => {
      take(a);
      this.schedule();
    });
    s.on('anomalies', (page) => {
      for (const a of page) take(a);
      this.schedule();
    });
  }

  private set(p: Partial<LiveSnapshot>): void {
    Object.assign(this.patch, p);
    this.schedule();
  }

  private schedule(): void {
    if (this.timer === null) this.timer = setTimeout(() => this.flush(), FLUSH_MS);
  }

  private flush(): void {
    this.timer = null;
    const next: LiveSnapshot = { ...this.snap, ...this.patch };
    this.patch = {};
    if (this.pendingAnomalies.length) {
      const fresh = this.pendingAnomalies.sort((a, b) => b.seq - a.seq);
      this.pendingAnomalies = [];
      const merged = fresh[fresh.length - 1]!.seq > (next.anomalies[0]?.seq ?? -1) ? fresh.concat(next.anomalies) : fresh.concat(next.anomalies).sort((a, b) => b.seq - a.seq);
      if (merged.length > MAX_ANOMALIES) {
        for (const a of merged.splice(MAX_ANOMALIES)) this.seen.delete(a.seq);
      }
      next.anomalies = merged;
      next.lastSeq = Math.max(next.lastSeq, merged[0]!.seq);
    }
    if (this.incidentsDirty) {
      this.incidentsDirty = false;
      next.incidents = [...this.incidentMap.values()].sort((a, b) => b.id - a.id);
    }
    if (this.pendingRates.length) {
      const rates = next.rates.concat(this.pendingRates);
      this.pendingRates = [];
      next.rates = rates.length > MAX_RATES ? rates.slice(rates.length - MAX_RATES) : rates;
    }
    this.snap = next;
    for (const fn of this.listeners) fn();
  }

  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };

  getSnapshot = (): LiveSnapshot => this.snap;

  /** Called for every new anomaly as it arrives (before batching), e.g. for browser notifications. */
  onAnomaly(fn: (a: Anomaly) => void): () => void {
    this.anomalyListeners.add(fn);
    return () => this.anomalyListeners.delete(fn);
  }

  /** Called for every incident state as it arrives, with the state held before (undefined: new to this page). */
  onIncident(fn: (i: Incident, before: Incident | undefined) => void): () => void {
    this.incidentListeners.add(fn);
    return () => this.incidentListeners.delete(fn);
  }

  close(): void {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.incidentListeners.clear();
    this.socket.close();
    this.listeners.clear();
    this.anomalyListeners.clear();
  }
}

/** The host's CLOCK_MONOTONIC "now" from the last tick, run forward by the browser's clock (live) or fixed (replay). */
export function hostNowNs(s: LiveSnapshot, live: boolean): number | null {
  if (!s.clock) return null;
  return live ? s.clock.nowNs + (performance.now() - s.clockAtMs) * 1e6 : s.clock.nowNs;
}
