// A recording session: what the collector knew about the host when it started.

export type TraceMode = 'tracepoint' | 'kprobe' | 'replay';

export interface ProbeStatus {
  /** Script name under bpf/ (e.g. 'tracepoint/madvise'). */
  script: string;
  attached: boolean;
  /** Why it was left out or what failed. */
  reason?: string;
}

/** How a session ended: stopped normally, by a signal, bpftrace failing repeatedly, or the collector died (found at the next start). */
export type SessionEndReason = 'clean' | 'signal' | 'bpftrace-gave-up' | 'crashed';

export interface SessionInfo {
  id: number;
  host: string;
  kernel: string;
  bpftraceVersion: string;
  mode: TraceMode;
  startedWallMs: number;
  endedWallMs: number | null;
  probes: ProbeStatus[];
  lostEvents: number;
  /** null while recording (or in files written before schema version 2). */
  endReason?: SessionEndReason | null;
  /** The signal, why bpftrace gave up, or "found at the next start; last event …". */
  endDetail?: string | null;
  /** CLOCK_MONOTONIC ns of the last event written. */
  lastEventNs?: number | null;
  /**
   * Events lost per printed kind (the main bpftrace program's in-kernel count of each printf minus the lines that
   * arrived; collector/capture-loss.ts). Absent before the first count or in older files.
   */
  lostByKind?: Readonly<Record<string, number>> | null;
}
