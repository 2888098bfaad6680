// A recording session: what the collector knew about the host when it started.

export type TraceMode = 'tracepoint' | 'kprobe' | 'replay';

export interface ProbeStatus {
  /** Script name under bpf/ (e.g. 'tracepoint/madvise'). */
  script: string;
  attached: boolean;
  /** Why it was left out or what failed. */
  reason?: string;
}

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
}
