// What the collector knows about its own blind spots: windows in which a bpftrace process was not capturing
// (capture gaps), and pinned memory that the enumerated pins do not explain (VmPin / VmLck of /proc/PID/status).

/** Which bpftrace process the gap is about. */
export type CaptureProcess = 'main' | 'faults';

export interface CaptureGap {
  /** capture_gaps.id once stored; 0 before. */
  id: number;
  process: CaptureProcess;
  /** Why capture stopped: "bpftrace exited (SIGKILL)", "gave up after 5 failures in 60 s: …". */
  cause: string;
  /** CLOCK_MONOTONIC ns when the process was found dead. */
  startNs: number;
  /** CLOCK_MONOTONIC ns when the replacement had every probe attached; null while the gap is open. */
  endNs: number | null;
  startWallMs: number;
  endWallMs: number | null;
  /** Events bpftrace reported lost around it; null: unknown (nothing was watching). */
  eventsLost: number | null;
}

/** One process's pinned and locked memory as the kernel accounts it, against what pinwatch enumerated. */
export interface PinnedMemory {
  tsNs: number;
  pid: number;
  comm: string;
  /** VmPin (mm->pinned_vm: io_uring buffers, RDMA MRs, …) in 4 KiB pages. */
  vmPinPages: number;
  /** VmLck (mm->locked_vm: mlock, VFIO type1 DMA maps, …) in 4 KiB pages. */
  vmLckPages: number;
  /** Pages of the pins pinwatch enumerated for this process (io_uring buffers from fdinfo, traced pins). */
  explainedPages: number;
}

/** "N pages pinned by pid P, source unknown" when VmPin exceeds what pinwatch can list. */
export function unexplainedPinnedPages(m: PinnedMemory): number {
  return Math.max(0, m.vmPinPages - m.explainedPages);
}

/** Does [from, to] overlap gap g (an open gap extends to infinity)? */
export function gapOverlaps(g: CaptureGap, from: number, to: number): boolean {
  return g.startNs <= to && (g.endNs === null || g.endNs >= from);
}

/** The latest gap that [from, to] overlaps, or null. */
export function overlapsGap(gaps: readonly CaptureGap[], from: number, to: number): CaptureGap | null {
  for (let i = gaps.length - 1; i >= 0; i--) if (gapOverlaps(gaps[i], from, to)) return gaps[i];
  return null;
}

/** A process whose kernel-accounted pinned memory (VmPin) exceeds the pins pinwatch can name. */
export interface UnattributedPinned extends PinnedMemory {
  /** Pages of this process's pins that are live now (traced since discovery, or discovered). */
  livePinPages: number;
  /** VmPin − max(explained at discovery, live pins now): "N pages pinned by pid P, source unknown". */
  unexplainedPages: number;
}

/**
 * The latest VmPin/VmLck row per process, less what pinwatch can name: the pins it enumerated at discovery, or
 * the pins it has traced since (an event that explains them). Processes fully explained are left out.
 */
export function unattributedPinned(rows: readonly PinnedMemory[], livePinPagesByPid: ReadonlyMap<number, number>): UnattributedPinned[] {
  const out: UnattributedPinned[] = [];
  for (const m of rows) {
    const livePinPages = livePinPagesByPid.get(m.pid) ?? 0;
    const unexplainedPages = Math.max(0, m.vmPinPages - Math.max(m.explainedPages, livePinPages));
    if (unexplainedPages > 0) out.push({ ...m, livePinPages, unexplainedPages });
  }
  return out.sort((a, b) => b.unexplainedPages - a.unexplainedPages || a.pid - b.pid);
}
