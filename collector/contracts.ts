// The interfaces at the seams of the collector's stream (runner → parse → Collector → sinks such as store and
// publish), so each side is written against an interface, not the other's class, and tests can put a fake on
// either side. Not the only types shared between folders: stages also import each other's modules directly.
import { release } from 'node:os';
import type { VerifySweep } from '../schema/metrics.ts';
import type { Anomaly, PagemapRead } from '../schema/anomalies.ts';
import type { SequencedEvent, TraceEvent } from '../schema/events.ts';
import type { Incident, IncidentChange } from '../schema/incidents.ts';
import type { Pin } from '../schema/pins.ts';
import type { CaptureGap, PinnedMemory } from '../schema/reliability.ts';
import type { ProbeStatus, SessionInfo, TraceMode } from '../schema/session.ts';

// ---- parse (collector/parse) ----

/** Receives what one bpftrace output line meant. Callbacks, not return objects: the hot path allocates only the event. */
export interface ParseSink {
  event(e: TraceEvent): void;
  /** bpftrace lost_events record. */
  lost(count: number): void;
  /** A script's BEGIN marker: all probes of that bpftrace process are attached. */
  ready(tag: string): void;
  /** A line that is not valid output: kept, counted, never fatal. */
  malformed(line: string, reason: string): void;
  /** Text bpftrace printed that is not an event (warnings in 0.17 go to stdout). */
  message?(text: string): void;
  /** A countSent program's cumulative in-kernel count of event lines per printed kind (SENT_MAP, once a second). */
  sent?(counts: Readonly<Record<string, number>>): void;
}

/** The map countSent programs keep (runner/program.ts): `{"type": "map", "data": {"@pw_sent": {"madvise": 12}}}`. */
export const SENT_MAP = 'pw_sent';

// ---- runner (collector/runner) ----

/**
 * What a freshly started bpftrace must know to filter in the kernel as the last one did (runner/program.ts
 * watchSeedScript writes it into a BEGIN block; Collector.watchSeed builds it from the model).
 */
export interface WatchSeed {
  /** Processes holding pins (@pw_watch = 2): their zaps, remaps, forks and exits are printed. */
  pids: readonly number[];
  /** Their pin fds (@pw_watchfd): close() of those is printed. */
  fds: readonly (readonly [pid: number, fd: number])[];
  /** Span of each process's captured shared-file/hugetlb mappings (@pw_bspan): unmaps over it are printed. */
  backingSpans?: readonly (readonly [pid: number, lo: number, hi: number])[];
  /** Span and count of each process's DONTFORK/WIPEONFORK ranges (@pw_fspan, @pw_fkn; @pw_watch >= 1). */
  forkAdviceSpans?: readonly (readonly [pid: number, lo: number, hi: number, ranges: number])[];
}

/** One bpftrace script file under bpf/ and whether the running kernel can attach it. */
export interface ScriptSpec {
  /** Path relative to bpf/, without .bt: 'tracepoint/madvise'. */
  name: string;
  file: string;
  mode: 'tracepoint' | 'kprobe';
  /** Probes the script needs: 'tracepoint:syscalls:sys_enter_madvise', 'kprobe:do_wp_page'. */
  probes: string[];
}

/** A pinned 2 MiB region the in-kernel fault filter must let through. */
export interface FaultRegion {
  pid: number;
  /** addr >> 21 */
  region: number;
}

// ---- pagemap (collector/verify) ----

export interface PagemapReader {
  /** Read `count` consecutive pages from `addr` (page-aligned) of `pid`. Synchronous: one pread. */
  read(pid: number, addr: number, count: number): PagemapRead[];
}

// ---- Collector (collector/pipeline.ts): model + rules + verifier ----

/** Where the collector's results go. The store and the publish hub both implement it. */
export interface CollectorSink {
  /**
   * Every event, after the rules ran on it. `kept` false: the event is of a process that holds no pin or pin
   * fd, touched no pin and raised nothing (kept-events.ts) — the store counts it instead of writing a row;
   * absent: kept.
   */
  event(e: SequencedEvent, kept?: boolean): void;
  /** A pin created or changed (state, current pfns, release). */
  pin(p: Pin): void;
  pagemapRead(r: PagemapRead, reason: string): void;
  anomaly(a: Anomaly): void;
  /** The incident an anomaly opened or joined (right after that anomaly), or one that closed. */
  incident?(i: Incident, change: IncidentChange): void;
  lost(count: number): void;
  /** A capture gap opened (endNs null) or closed: the same object is handed over both times. */
  gap?(g: CaptureGap): void;
  /** VmPin / VmLck of a process, read at discovery. */
  pinnedMemory?(m: PinnedMemory): void;
  /** The background pagemap sweep's figures, after each periodic pass (verify/sweep.ts). */
  verifySweep?(s: VerifySweep): void;
}

export interface CollectorConfig {
  /** Re-read pagemap of live pins this often (ms). */
  verifyIntervalMs: number;
  /**
   * Share of one core the background pagemap sweep of live pins may use (0.05 = 5 %): each periodic pass reads
   * for at most verifyCpuShare × verifyIntervalMs and the next one goes on where it stopped (verify/sweep.ts).
   */
  verifyCpuShare: number;
  /** After an event that may move pinned pages, read pagemap after this delay (ms). */
  verifyDelayMs: number;
  /**
   * A verdict resting on what a pagemap read showed waits until the event stream has passed the read (or this
   * long without events), and is dropped if the pin was released or its range changed meanwhile
   * (verify/settle.ts). 0 delivers at once.
   */
  readSettleMs: number;
  /** pin-leak: a pin older than this (s) is reported once; 0 disables the age check. */
  pinMaxAgeS: number;
  /** An anomaly within this many ns of lost events is marked low confidence. */
  lostWindowNs: number;
  /**
   * io_uring submissions after a zap are traced (bpf/tracepoint/uring_enter.bt attached): without them a zap
   * followed by a quick release cannot be told from a hazard and is never judged teardown (rules/sources/teardown.ts).
   */
  submissionsTraced: boolean;
  /** Release of the traced kernel (os.release() unless replaying or testing): rules that depend on kernel fixes read it. */
  kernelRelease: string;
  /** Which pins the fault watcher traces: 'armed' (only where a fault can show something) or 'all-pins' (model/state.ts). */
  faultWatch: 'armed' | 'all-pins';
  /** pfn of the kernel's shared zero page (verify/zero-pfn.ts, learned at start), null when not known. */
  zeroPfn: number | null;
}

export const DEFAULT_COLLECTOR_CONFIG: CollectorConfig = {
  verifyIntervalMs: 500,
  verifyCpuShare: 0.05,
  verifyDelayMs: 20,
  readSettleMs: 250,
  submissionsTraced: true,
  pinMaxAgeS: 0,
  lostWindowNs: 1_000_000_000,
  kernelRelease: release(),
  faultWatch: 'armed',
  zeroPfn: null,
};

// ---- session (store) ----

export interface SessionStart {
  host: string;
  kernel: string;
  bpftraceVersion: string;
  mode: TraceMode;
  probes: ProbeStatus[];
}

export type { SessionInfo };
