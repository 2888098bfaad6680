// What the collector publishes (collector/publish) and the web subscribes to over socket.io.
import type { Anomaly } from './anomalies.ts';
import type { SequencedEvent } from './events.ts';
import type { Incident } from './incidents.ts';
import type { PinSummary } from './pins.ts';
import type { SessionInfo } from './session.ts';
import type { CollectorStatus } from './status.ts';

export interface EventRates {
  /** Wall-clock ms at the end of the 1 s bucket. */
  wallMs: number;
  counts: Partial<Record<SequencedEvent['kind'], number>>;
}

export interface ServerToClient {
  /** Sent on connect and whenever it changes. */
  session: (s: SessionInfo) => void;
  /** Live anomalies, in seq order. */
  anomaly: (a: Anomaly) => void;
  /** An incident's latest state (after the anomalies it groups): opened, updated with a finding, or closed. */
  incident: (i: Incident) => void;
  /** A page of what a `resume` asked for, oldest first (pages arrive in order, before the live ones). */
  anomalies: (page: Anomaly[]) => void;
  /** Pins table snapshot (throttled, ≤ 2/s). */
  pins: (p: PinSummary[]) => void;
  /** Event counts per kind, once a second. */
  rates: (r: EventRates) => void;
  /** The kept per-second counts (up to 10 minutes), once on connect, oldest first. */
  ratesHistory: (r: EventRates[]) => void;
  /** Collector status banner (capture impossible, bpftrace died, …). */
  status: (s: CollectorStatus) => void;
}

export interface ClientToServer {
  /** Ask for every anomaly with seq > afterSeq (reconnect). */
  resume: (afterSeq: number) => void;
}
