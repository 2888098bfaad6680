// Incidents: what a user is told. One event on one pin (or one process) often breaks several rules at once —
// mmap(MAP_FIXED) over a pinned page gives pinned-range-zapped, pin-leak and pin-pte-divergence — and a user
// wants one line that says what happened, with those anomalies underneath as its evidence.
// Grouping: collector/incidents/. Stored in the incidents + incident_anomalies tables (schema/tables.ts).
import type { RuleId, Severity } from './anomalies.ts';

export interface Incident {
  /** Collector-wide number, in order of opening. */
  id: number;
  /** The highest severity among its anomalies. */
  severity: Severity;
  /** "MAP_FIXED replaced 1 pinned page of io_uring buffer 0 (ring fd 5) — device writes are lost: confirmed" */
  title: string;
  /** What the triggering event did ("MAP_FIXED replaced"); null when a periodic pagemap check found it. */
  cause: string | null;
  /** Seq of the triggering event, when known. */
  causeSeq: number | null;
  pid: number;
  comm: string;
  /** The pin it is about; null for process-wide incidents (fork with pins, …). */
  pinId: number | null;
  /** "io_uring buffer 0 (ring fd 5)", or "process app (pid 100)". */
  subject: string;
  /** Pages affected (largest range among its anomalies). */
  pages: number;
  /** Any of its anomalies confirmed against pagemap. */
  confirmed: boolean;
  /** CLOCK_MONOTONIC ns of the triggering event. */
  tsNs: number;
  openedWallMs: number;
  updatedWallMs: number;
  /** Wall ms when its pin was released or its process went away; null while open. */
  closedWallMs: number | null;
  /** Distinct rules of its anomalies, most severe first. */
  rules: RuleId[];
  /** Its anomalies (the evidence rows), in seq order. */
  anomalySeqs: number[];
}

/** What changed when an incident is handed to the sinks. */
export type IncidentChange = 'opened' | 'updated' | 'closed';
