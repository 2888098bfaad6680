// What a pin source promises, and so what counts as a hazard on it (docs/sources.md). Each source plug-in
// (io-uring.ts, vfio.ts, rdma.ts, vmsplice.ts, gup.ts, o-direct.ts) carries one; the rules ask
// promiseOf(pin.source) instead of assuming every pin is a long-term DMA pin.
import type { Severity } from '../../../schema/anomalies.ts';
import type { PinSource } from '../../../schema/events.ts';
import type { ZapHit } from '../effects.ts';
import type { PinRecord } from '../pin-record.ts';

/** A source's judgement of one thing that happened to its pin: a severity (null: legal, say nothing) and why. */
export interface Verdict {
  severity: Severity | null;
  why: string;
}

export interface SourcePromise {
  source: PinSource;
  /** One line a user reads: what the holder of this pin relies on. */
  promise: string;
  /**
   * The application (or reclaim, for advisory zaps) removed or replaced the mapping of pinned pages.
   * `teardown` says whether a release shortly after, with no I/O in between, makes it harmless (teardown.ts).
   */
  zap(z: Pick<ZapHit, 'how' | 'unmapped' | 'advisory'>): Verdict & { teardown: boolean };
  /** pagemap shows another page than the pinned one at a pinned address (flags: the page's PG_* bits). */
  divergence(pin: PinRecord, flags: number): Verdict;
  /** The pin outlives the mapping of its pages. */
  unmappedLeak: Verdict;
  /** fork() while the pin lives, on this kernel release. */
  fork(kernelRelease: string): Verdict;
  /** A holder that should let go soon but has not (pin-leak by age, independent of --pin-max-age). */
  longHold?: { afterS: number; verdict: Verdict };
}

/** Kernel release as major * 1000 + minor (0 when unparsable: treated as old). */
export function kernelVersion(release: string): number {
  const m = /^(\d+)\.(\d+)/.exec(release);
  return m ? Number(m[1]) * 1000 + Number(m[2]) : 0;
}

/**
 * The promise of a long-term device pin (FOLL_LONGTERM | FOLL_WRITE): the device reads and writes the pinned
 * pages until the pin is released, so the mapping must stay put. io_uring, VFIO, RDMA and unknown GUP callers
 * share it; they differ in name, in whether a submission can be observed (teardown) and in their text.
 */
export function deviceDmaPromise(source: PinSource, promise: string, teardown: boolean): SourcePromise {
  return {
    source,
    promise,
    zap: (z) => ({
      severity: 'high',
      why: `${z.how} removed the mapping of pages the device still reads and writes`,
      teardown: teardown && !z.advisory,
    }),
    divergence: () => ({ severity: 'critical', why: 'the device and the process see different pages' }),
    unmappedLeak: { severity: 'warning', why: 'the pinned pages are no longer mapped by anyone' },
    fork: (rel) =>
      kernelVersion(rel) >= 5009
        ? { severity: 'warning', why: 'since 5.9 fork copies pinned anon pages into the child at once (correct, but costs memory and time)' }
        : { severity: 'warning', why: 'before 5.9 the parent\'s next write may copy its pinned page away from the device' },
  };
}
