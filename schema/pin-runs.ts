// A pin's pages published as runs: guest RAM behind a VFIO map or a 1 GiB io_uring buffer is mostly THP- or
// hugetlb-backed, so its pfns climb by one page after page. A run is a maximal stretch of pages whose pinned
// pfn, current pfn and mapped address all advance by one page and whose flags are equal: a 64 GiB THP-backed
// pin is ~32k runs (one per 2 MiB folio, fewer where folios are physically adjacent), not 16M page rows.
import { PAGE_SIZE } from './kernel.ts';

export interface PinRun {
  /** Index of the run's first page in the pin (page 0 = the pin's page-aligned start address). */
  page: number;
  /** Pages in the run (≥ 1). */
  count: number;
  /** pfn the device holds for the first page (page k of the run: pinnedPfn + k); null when unknown. */
  pinnedPfn: number | null;
  /** pfn pagemap last showed for the first page (page k: currentPfn + k); null when not present. */
  currentPfn: number | null;
  /** pinnedPfn was read after an event that may already have moved the pages (see verify/). */
  snapshotLate: boolean;
  /** Where the first page is mapped now when mremap moved it away from its pin-time address (page k: + k pages). */
  mappedAddr?: number;
}

/** Fewest fields that decide whether page `page` continues `run` (`run` ends right before it). */
function continues(run: PinRun, pinnedPfn: number | null, currentPfn: number | null, late: boolean, mappedAddr: number | undefined): boolean {
  const k = run.count;
  if (run.snapshotLate !== late) return false;
  if ((run.pinnedPfn === null) !== (pinnedPfn === null)) return false;
  if (run.pinnedPfn !== null && run.pinnedPfn + k !== pinnedPfn) return false;
  if ((run.currentPfn === null) !== (currentPfn === null)) return false;
  if (run.currentPfn !== null && run.currentPfn + k !== currentPfn) return false;
  if ((run.mappedAddr === undefined) !== (mappedAddr === undefined)) return false;
  if (run.mappedAddr !== undefined && run.mappedAddr + k * PAGE_SIZE !== mappedAddr) return false;
  return true;
}

/**
 * Builds a pin's runs in page order from pages or from runs already known to be uniform (the model stores
 * pages as runs, so a publish costs O(runs), not O(pages)). Adjacent input that continues the last run is
 * merged into it, so the output is the same whichever way it was fed.
 */
export class RunBuilder {
  readonly runs: PinRun[] = [];
  /** Stop growing after this many runs; pages past it are counted in `omittedPages` (a publish must stay bounded). */
  omittedPages = 0;
  constructor(private readonly maxRuns = Number.POSITIVE_INFINITY) {}

  /** One page. */
  push(page: number, pinnedPfn: number | null, currentPfn: number | null, late: boolean, mappedAddr?: number): void {
    this.pushRun(page, 1, pinnedPfn, currentPfn, late, mappedAddr);
  }

  /** `count` pages starting at `page` whose pfns and address advance by one page each. */
  pushRun(page: number, count: number, pinnedPfn: number | null, currentPfn: number | null, late: boolean, mappedAddr?: number): void {
    if (count <= 0) return;
    const last = this.runs.length > 0 ? this.runs[this.runs.length - 1] : undefined;
    if (last !== undefined && last.page + last.count === page && continues(last, pinnedPfn, currentPfn, late, mappedAddr)) {
      last.count += count;
      return;
    }
    if (this.runs.length >= this.maxRuns) {
      this.omittedPages += count;
      return;
    }
    const run: PinRun = { page, count, pinnedPfn, currentPfn, snapshotLate: late };
    if (mappedAddr !== undefined) run.mappedAddr = mappedAddr;
    this.runs.push(run);
  }
}

/** One page of a run, expanded (for views and checks that think per page). */
export interface RunPage {
  page: number;
  pinnedPfn: number | null;
  currentPfn: number | null;
  snapshotLate: boolean;
  mappedAddr?: number;
}

/** The pages of `runs`, one by one (callers bound `runs`; a run of 16M pages yields 16M pages). */
export function* pagesOfRuns(runs: readonly PinRun[]): Generator<RunPage> {
  for (const r of runs) {
    for (let k = 0; k < r.count; k++) {
      const p: RunPage = {
        page: r.page + k,
        pinnedPfn: r.pinnedPfn === null ? null : r.pinnedPfn + k,
        currentPfn: r.currentPfn === null ? null : r.currentPfn + k,
        snapshotLate: r.snapshotLate,
      };
      if (r.mappedAddr !== undefined) p.mappedAddr = r.mappedAddr + k * PAGE_SIZE;
      yield p;
    }
  }
}

/** The run holding page `page`, or undefined (binary search: runs are in page order). */
export function runAt(runs: readonly PinRun[], page: number): PinRun | undefined {
  let lo = 0;
  let hi = runs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const r = runs[mid];
    if (page < r.page) hi = mid - 1;
    else if (page >= r.page + r.count) lo = mid + 1;
    else return r;
  }
  return undefined;
}

/** The page run `runAt` finds, expanded to page `page` (undefined when no run holds it). */
export function pageAt(runs: readonly PinRun[], page: number): RunPage | undefined {
  const r = runAt(runs, page);
  if (r === undefined) return undefined;
  const k = page - r.page;
  const p: RunPage = {
    page,
    pinnedPfn: r.pinnedPfn === null ? null : r.pinnedPfn + k,
    currentPfn: r.currentPfn === null ? null : r.currentPfn + k,
    snapshotLate: r.snapshotLate,
  };
  if (r.mappedAddr !== undefined) p.mappedAddr = r.mappedAddr + k * PAGE_SIZE;
  return p;
}

/** The page-aligned pin-time address of page `page` of a pin starting at `pinAddr`. */
export function pinPageAddr(pinAddr: number, page: number): number {
  return pinAddr - (pinAddr % PAGE_SIZE) + page * PAGE_SIZE;
}

/** The index of the page holding `addr` in a pin starting at `pinAddr` (negative / past the end: not in it). */
export function pinPageIndex(pinAddr: number, addr: number): number {
  return Math.floor((addr - (pinAddr - (pinAddr % PAGE_SIZE))) / PAGE_SIZE);
}

/** Both pfns known and different: every page of the run is diverged (they advance together). */
export function runDiverged(r: PinRun): boolean {
  return r.pinnedPfn !== null && r.currentPfn !== null && r.pinnedPfn !== r.currentPfn;
}

/** Pages whose current pfn is known and differs from the pinned one (the count the model keeps). */
export function divergedPagesOf(runs: readonly PinRun[]): number {
  let n = 0;
  for (const r of runs) if (runDiverged(r)) n += r.count;
  return n;
}

/**
 * What a run's pages show, as the pin view names it: `same` (the PTE maps the pinned pfn), `diverged` (it maps
 * another pfn), `not-present` (nothing mapped: zapped or not yet faulted back), `unknown` (the pinned pfn was
 * never read). `movedTo` is where mremap moved the pages (absent: still at their pin-time address).
 */
export type RunState = 'same' | 'diverged' | 'not-present' | 'unknown';

export function runState(r: PinRun): RunState {
  if (r.pinnedPfn === null) return r.currentPfn === null ? 'not-present' : 'unknown';
  if (r.currentPfn === null) return 'not-present';
  return r.pinnedPfn === r.currentPfn ? 'same' : 'diverged';
}

/** Two runs with the same pages and the same values (the store writes a run again only when this is false). */
export function sameRun(a: PinRun, b: PinRun): boolean {
  return (
    a.page === b.page && a.count === b.count && a.pinnedPfn === b.pinnedPfn && a.currentPfn === b.currentPfn &&
    a.snapshotLate === b.snapshotLate && a.mappedAddr === b.mappedAddr
  );
}
