// What /metrics reports, as one plain JSON snapshot: taken from the collector's hub (or from a recording) and
// turned into Prometheus metrics by collector/metrics/registry.ts at scrape time. A snapshot can cross a
// process boundary (collector and web in separate processes), so it holds data only.
import type { RuleId, Severity } from './anomalies.ts';
import type { EventKind, PinSource } from './events.ts';

export interface RuleSeverityCount {
  rule: RuleId;
  severity: Severity;
  count: number;
}

/** Live pins of one process from one source. */
export interface PinGroup {
  source: PinSource;
  pid: number;
  comm: string;
  pins: number;
  pages: number;
  bytes: number;
  /** Pages whose page table maps another pfn than the pinned one now. */
  divergentPages: number;
}

/** The verifier's background pagemap sweep over every live pin (collector/verify/sweep.ts). */
export interface VerifySweep {
  /** Share of one core the sweep may use (verifyCpuShare). */
  cpuShareBudget: number;
  /** Share of one core it used: over the last full sweep, or so far before the first one completed. */
  cpuShare: number;
  /** Wall time the last full sweep took (every live pinned page read once); null before the first. */
  fullSweepSeconds: number | null;
  fullSweeps: number;
  /** Pages the sweep read and checked since start. */
  pagesVerified: number;
  passes: number;
  lastPassMs: number;
  lastPassPages: number;
  /** Live pinned pages at the last pass. */
  livePages: number;
}

export interface MetricsSnapshot {
  /** Labels every metric carries. */
  host: string;
  kernel: string;
  /** live: a collector; replay: a recording served as it was. */
  source: 'live' | 'replay';
  mode: string;
  bpftraceVersion: string;
  /** bpftrace is attached and capturing; null for a recording (nothing captures: no series, no "down" alert). */
  bpftraceUp: boolean | null;
  /** Seconds since the last traced event; null before the first. */
  lastEventAgeSeconds: number | null;
  /** Times capture stopped while the collector ran (bpftrace died, was restarted). */
  captureGaps: number;
  lostEvents: number;
  /** Of those, per printed kind (the main program's in-kernel counts minus the lines that arrived). */
  lostByKind: Readonly<Record<string, number>>;
  eventsByKind: Partial<Record<EventKind, number>>;
  anomalies: RuleSeverityCount[];
  /** Incidents by their most severe rule and severity, counted once their findings settled. */
  incidents: RuleSeverityCount[];
  /** Incidents not closed yet (their pin still registered), by severity. */
  openIncidents: Partial<Record<Severity, number>>;
  pins: PinGroup[];
  probes: { script: string; attached: boolean }[];
  webhook: { sent: number; failed: number };
  /** The pagemap sweep (absent for a recording or before the first pass). */
  verifySweep?: VerifySweep;
}
