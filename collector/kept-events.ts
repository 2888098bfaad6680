// Which events the store keeps as rows, and which it only counts (per second and kind, table event_counts).
//
// Kept: every event of a process that holds a pin or a pin fd (before or after the event: the pin_result that
// creates a pin, the exit or close that releases one), every event that touched a pin (the model recorded
// effects: zaps, moves, faults in pinned pages, forks of pinned memory) or raised an anomaly, and every event of
// a kind that is not process-local memory churn (pin and GUP calls, khugepaged/KSM/reclaim/migration, the
// kprobe set's pfn-level events, lost-event marks). Counted: the rest — madvise/munmap/mmap/mremap, faults,
// forks, exits, closes of processes that pin nothing: on a busy host almost all of the stream, and nothing a
// pin's timeline, an anomaly or an incident cites. A process's events from before it pinned are counted too.
import type { EventKind } from '../schema/events.ts';
import type { ModelEffects } from './model/effects.ts';
import type { ShadowModel } from './model/shadow-model.ts';

/** Process-local kinds that are only counted when the process pins nothing and the event touched no pin. */
export const COUNTABLE_KINDS: ReadonlySet<EventKind> = new Set<EventKind>([
  'madvise', 'munmap', 'mremap', 'mmap_fixed', 'shmdt', 'fault', 'fork', 'exit', 'exec', 'close', 'mmap_backing', 'mmap_forget',
]);

/** Does the process hold a pin or a pin fd (an io_uring ring, a vfio/iommufd/rdma handle) in the model? */
export function holdsPins(model: ShadowModel, pid: number): boolean {
  const p = model.process(pid);
  return p !== undefined && (p.pins.size !== 0 || p.handles.size !== 0);
}

/**
 * Did the event touch a pin? Any effect the model recorded except the bare exit of a process (every exit sets
 * `exitedPid`; one whose process held pins releases or orphans them, which are effects of their own).
 */
export function touchedPin(fx: ModelEffects): boolean {
  return (
    fx.dirty &&
    (fx.zaps.length !== 0 || fx.moves.length !== 0 || fx.touched.length !== 0 || fx.pfnHits.length !== 0 || fx.created.length !== 0 ||
      fx.released.length !== 0 || fx.orphaned.length !== 0 || fx.registration !== null || fx.admissions.length !== 0)
  );
}

/**
 * Keep the event as a row (true) or count it (false). `heldBefore`/`heldAfter`: the process held a pin or pin
 * fd before / after the model applied it; `touchedPin`: the model recorded effects; `raised`: it raised an
 * anomaly.
 */
export function keepEvent(kind: EventKind, heldBefore: boolean, heldAfter: boolean, touchedPin: boolean, raised: boolean): boolean {
  return heldBefore || heldAfter || touchedPin || raised || !COUNTABLE_KINDS.has(kind);
}
