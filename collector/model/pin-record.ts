// The shadow model's view of one pin (a registered DMA buffer): per-page state as runs (page-runs.ts: a
// contiguous 64 GiB pin is a handful of runs, a fragmented one falls back to typed arrays), plus "extents"
// mapping page ranges to their CURRENT user address (mremap moves pages; the pin and its pfns stay). Nothing
// outside indexes the page state: it goes through the methods below. Converted to the schema's Pin (as runs,
// O(runs)) only when published.
import type { PinSource } from '../../schema/events.ts';
import { PAGE_SIZE } from '../../schema/kernel.ts';
import { RunBuilder } from '../../schema/pin-runs.ts';
import type { Pin, PinOrigin, PinState, PinSummary } from '../../schema/pins.ts';
import { PageRuns } from './page-runs.ts';

// Page flag bits (PinRecord.flagsAt).
/** pinnedPfn was read after an event that may already have moved the page: divergence only `inferred`. */
export const PG_LATE = 1;
/** The PTE was removed since the pin (any zap: DONTNEED, FREE, PAGEOUT, REMOVE, munmap, MAP_FIXED, mremap shrink). */
export const PG_ZAPPED = 2;
/** A zap after which the next fault maps a DIFFERENT page (anon/private, hole punch, mapping removed). */
export const PG_HARD_ZAP = 4;
/** A write fault hit the page after a hard zap: the events alone imply divergence. */
export const PG_WRITE_AFTER_ZAP = 8;
/** The mapping itself is gone (munmap / mmap MAP_FIXED over it / mremap shrink). */
export const PG_UNMAPPED = 16;
/** The verifier saw (or inferred) divergence on this page. */
export const PG_DIVERGED = 32;
/** pinnedPfn came from GUP's own pages array (kprobe mode): exact, whatever pagemap showed later. */
export const PG_GUP_EXACT = 64;

/** A run of pin pages and the user address where its first page is mapped now. */
export interface Extent {
  pin: PinRecord;
  page: number;
  count: number;
  va: number;
}

/** Notable things that happened to some pages of the pin: evidence for anomalies (capped). */
export interface HistoryEntry {
  seq: number;
  tsNs: number;
  note: string;
  firstPage: number;
  count: number;
}
const HISTORY_CAP = 32;

/**
 * Pages tracked per pin at most (1 TiB of 4 KiB pages: runs cost per run, not per page). A bigger registration
 * is tracked over its first MAX_PIN_PAGES pages; `truncated` says so.
 */
export const MAX_PIN_PAGES = 2 ** 28;
/** Runs a published pin carries at most; pages past them are counted in Pin.omittedPages. */
export const MAX_PUBLISHED_RUNS = 2 ** 18;
/** Highest user address on x86-64 with 5-level paging (2^57). */
export const MAX_USER_ADDR = 2 ** 57;

/** A user range worth modelling: finite, non-negative, non-empty, below the top of user space. */
export function validUserRange(addr: number, len: number): boolean {
  return Number.isFinite(addr) && Number.isFinite(len) && addr >= 0 && len > 0 && addr + len <= MAX_USER_ADDR;
}

/** What holds a pin: an io_uring ring fd, a VFIO container fd, a pipe fd (vmsplice). Shared by fork children. */
export class HandleRecord {
  /** Pins by slot (ring), iova (container) or running number (pipe). */
  readonly pins = new Map<number, PinRecord>();
  /** Processes holding the fd (owner plus fork children that inherited it). */
  readonly holders: number[];
  nextKey = 0;
  constructor(
    readonly kind: 'ring' | 'container' | 'pipe' | 'other',
    readonly fd: number,
    readonly ownerPid: number,
  ) {
    this.holders = [ownerPid];
  }
}

export interface PinInit {
  id: number;
  pid: number;
  comm: string;
  source: PinSource;
  handleText: string;
  addr: number;
  len: number;
  writable: boolean;
  longterm: boolean;
  backing: string;
  mapShared: boolean;
  sharedFile: boolean;
  createdNs: number;
  raceFromNs: number;
  createdSeq: number;
  handle: HandleRecord | null;
  key: number;
  /** 'discovered': found already pinned at start (pinned pfns read from pagemap then, not from the pinning call). */
  origin?: PinOrigin;
}

export class PinRecord {
  readonly id: number;
  readonly pid: number;
  readonly comm: string;
  readonly source: PinSource;
  readonly handleText: string;
  readonly addr: number;
  readonly len: number;
  readonly writable: boolean;
  readonly longterm: boolean;
  // The next three are set again when the verifier's maps read at registration is admitted (ShadowModel.admit).
  backing: string;
  /** The mapping was MAP_SHARED (a DONTNEED then refault maps the same page-cache page). */
  mapShared: boolean;
  /** Shared mapping of a regular file (seed 003 hazard). */
  sharedFile: boolean;
  /** Page-aligned address of page 0 at pin time. */
  readonly firstVa: number;
  readonly nPages: number;
  /** Longer than MAX_PIN_PAGES: only the first MAX_PIN_PAGES pages are tracked. */
  readonly truncated: boolean;
  /** ts of the registering syscall's exit (pin_result / vfio_dma). */
  readonly createdNs: number;
  /** Events at or after this ts may have run between GUP and our pagemap snapshot (syscall entry when known). */
  readonly raceFromNs: number;
  /** CLOCK_MONOTONIC when the pagemap snapshot finished; events before it could have moved pages first. */
  snapshotNs = 0;
  readonly createdSeq: number;
  readonly handle: HandleRecord | null;
  /** Key inside the handle (slot / iova / running number). */
  readonly key: number;

  readonly origin: PinOrigin;
  releasedNs: number | null = null;
  releaseReason: string | null = null;
  /** The owning process exited but the pin lives on (another process still holds the fd). */
  orphaned = false;
  /** pfn the device holds, per page (runs of step 1; NaN unknown). Set by admit (pin-time snapshot) and GUP. */
  private readonly pinned: PageRuns;
  /** pfn pagemap last showed per page (NaN: not present); null while every page shows its pinned pfn. */
  private current: PageRuns | null = null;
  /** PG_* bits per page (runs of step 0). */
  private readonly pageFlags: PageRuns;
  extents: Extent[];
  moved = false;
  /**
   * Why the fault watcher traces this pin's regions, or null while no fault can show anything about it: on a
   * kernel with early COW of pinned pages at fork (5.9+), a pinned page leaves the page table only through a
   * zap or remap, which arrive as events; a fault matters after a hard zap (the refault maps a new page) or
   * after a fork that shares the pages (FOLL_GET references, or any pin before 5.9: the parent's write COWs).
   */
  watchFaults: string | null = null;
  /** The pages whose faults matter (first, count), or null for all of them (a fork arms the whole pin). */
  faultPages: Array<[number, number]> | null = null;
  history: HistoryEntry[] = [];
  zappedPages = 0;
  divergedPages = 0;

  constructor(init: PinInit) {
    this.id = init.id;
    this.pid = init.pid;
    this.comm = init.comm;
    this.source = init.source;
    this.handleText = init.handleText;
    this.origin = init.origin ?? 'event';
    this.addr = init.addr;
    this.len = init.len;
    this.writable = init.writable;
    this.longterm = init.longterm;
    this.backing = init.backing;
    this.mapShared = init.mapShared;
    this.sharedFile = init.sharedFile;
    this.createdNs = init.createdNs;
    this.raceFromNs = init.raceFromNs;
    this.createdSeq = init.createdSeq;
    this.handle = init.handle;
    this.key = init.key;
    this.firstVa = init.addr - (init.addr % PAGE_SIZE);
    const end = init.addr + Math.max(init.len, 1);
    const pages = Math.ceil((end - this.firstVa) / PAGE_SIZE);
    this.truncated = pages > MAX_PIN_PAGES;
    this.nPages = Math.min(pages, MAX_PIN_PAGES);
    this.pinned = new PageRuns(this.nPages, 1, NaN);
    this.pageFlags = new PageRuns(this.nPages, 0, 0);
    this.extents = [{ pin: this, page: 0, count: this.nPages, va: this.firstVa }];
  }

  get live(): boolean {
    return this.releasedNs === null;
  }

  get state(): PinState {
    if (this.releasedNs !== null) return 'released';
    if (this.divergedPages > 0) return 'diverged';
    if (this.zappedPages > 0) return 'zapped';
    return 'intact';
  }

  /** Current user address of page i (follows mremap moves). */
  vaOf(page: number): number {
    if (!this.moved) return this.firstVa + page * PAGE_SIZE;
    for (const x of this.extents) {
      if (page >= x.page && page < x.page + x.count) return x.va + (page - x.page) * PAGE_SIZE;
    }
    return this.firstVa + page * PAGE_SIZE;
  }

  /** Pin-time address of page i. */
  pinVaOf(page: number): number {
    return this.firstVa + page * PAGE_SIZE;
  }

  /** Page index currently mapped at `va`, or -1. */
  pageAt(va: number): number {
    for (const x of this.extents) {
      const end = x.va + x.count * PAGE_SIZE;
      if (va >= x.va && va < end) return x.page + Math.floor((va - x.va) / PAGE_SIZE);
    }
    return -1;
  }

  /** Index of the page whose pinned pfn is `pfn`, or -1 (per run; a native scan of a fragmented pin's array). */
  pageOfPfn(pfn: number): number {
    return this.pinned.indexOf(pfn);
  }

  // ------------------------------------------------------------------ page state

  /** The pinned pfns as runs (the pfn index registers them; read-only for callers). */
  get pinnedPfns(): PageRuns {
    return this.pinned;
  }

  pinnedPfnAt(page: number): number {
    return this.pinned.at(page);
  }

  currentPfnAt(page: number): number {
    return (this.current ?? this.pinned).at(page);
  }

  /** pagemap shows pfn at page now; true when that changed. */
  setCurrentPfn(page: number, pfn: number): boolean {
    const prev = this.currentPfnAt(page);
    if (prev === pfn || (prev !== prev && pfn !== pfn)) return false;
    this.currentRuns().set(page, pfn);
    return true;
  }

  /** pagemap shows pfn, pfn+1, … (or NaN throughout) at pages [page, page+count) now; true when any changed. */
  setCurrentRange(page: number, count: number, pfn: number): boolean {
    if (count <= 0) return false;
    const cur = this.current ?? this.pinned;
    const end = cur.runEnd(page, page + count);
    const first = cur.at(page);
    if (end === page + count && (first === pfn || (first !== first && pfn !== pfn))) return false;
    this.currentRuns().setRange(page, count, pfn);
    return true;
  }

  /** pagemap shows pfns[0..n) at pages [page, page+n) now (one bulk update); true (callers call it on a change). */
  setCurrentValues(page: number, pfns: Float64Array, n: number): boolean {
    this.currentRuns().setValues(page, pfns, Math.min(n, this.nPages - page));
    return true;
  }

  /** Every page shows its pinned pfn again (after the pin-time snapshot). */
  resetCurrent(): void {
    this.current = null;
  }

  /** From now on current pfns are kept apart from the pinned ones (before the pinned ones change: GUP's exact pfns). */
  keepCurrent(): void {
    this.currentRuns();
  }

  /** Replace the pinned pfns with a snapshot (pagemap right after the pin; taken over, not copied; null: unreadable, all unknown). */
  setPinnedPfns(snapshot: PageRuns | null): void {
    if (snapshot !== null && snapshot.length === this.nPages) this.pinned.adopt(snapshot);
    else {
      const load = this.pinned.load();
      snapshot?.forEachRun((page, count, v) => load.run(page, count, v), 0, Math.min(this.nPages, snapshot.length));
      load.finish();
    }
    this.current = null;
  }

  /** GUP's own pages array says page holds pfn (kprobe mode): exact, not late. Returns whether it was exact before. */
  setExactPfn(page: number, pfn: number): boolean {
    const before = (this.pageFlags.at(page) & PG_GUP_EXACT) !== 0;
    this.pinned.set(page, pfn);
    this.pageFlags.orRange(page, 1, PG_GUP_EXACT, PG_LATE);
    return before;
  }

  flagsAt(page: number): number {
    return this.pageFlags.at(page);
  }

  setFlag(page: number, bit: number): boolean {
    return this.setFlagRange(page, 1, bit) !== 0;
  }

  /** Set a flag bit on pages [page, page+count) (per run); returns how many pages newly got it. */
  setFlagRange(page: number, count: number, bit: number): number {
    const s = Math.max(0, page);
    const n = Math.min(page + count, this.nPages) - s;
    if (n <= 0) return 0;
    const added = this.pageFlags.orRange(s, n, bit);
    if (bit === PG_ZAPPED) this.zappedPages += added;
    if (bit === PG_DIVERGED) this.divergedPages += added;
    return added;
  }

  /**
   * End (exclusive, ≤ limit) of the stretch from page where pinned pfns, current pfns and flags are each
   * uniform (pfns advance by one page, flags equal): callers work per stretch, not per page.
   */
  uniformEnd(page: number, limit: number = this.nPages): number {
    let e = this.pinned.runEnd(page, limit);
    if (this.current !== null) e = this.current.runEnd(page, e);
    return this.pageFlags.runEnd(page, e);
  }

  /**
   * Pages from `page` (at most n) whose read pfns[offset..] are their pinned pfn (known), while no current pfn
   * differs from a pinned one and the flags stay those of `page`: a quiet stretch of the sweep, found in one loop
   * however fragmented the pin (0 for a pin kept as runs, or whose current pfns are kept apart: the
   * stretch-by-stretch check decides, as cheaply there).
   */
  unchangedFrom(page: number, pfns: Float64Array, offset: number, n: number): number {
    if (this.current !== null) return 0;
    return this.pinned.matchFrom(page, pfns, offset, this.pageFlags.runEnd(page, page + n) - page);
  }

  /** Bytes of per-page state this pin holds (runs or dense arrays). */
  pageStateBytes(): number {
    return this.pinned.bytes + (this.current?.bytes ?? 0) + this.pageFlags.bytes;
  }

  /** Runs of the per-page state (pinned, current when it differs, flags): its publish and verify cost. */
  get stateRuns(): number {
    const n = (r: PageRuns | null): number => (r === null ? 0 : r.isDense ? r.length : r.runCount);
    return n(this.pinned) + n(this.current) + n(this.pageFlags);
  }

  private currentRuns(): PageRuns {
    if (this.current === null) this.current = this.pinned.clone();
    return this.current;
  }

  note(seq: number, tsNs: number, note: string, firstPage: number, count: number): void {
    if (this.history.length >= HISTORY_CAP) this.history.splice(1, 1); // keep the first (often the cause)
    this.history.push({ seq, tsNs, note, firstPage, count });
  }

  /** History entries that concern page i. */
  historyOf(page: number): HistoryEntry[] {
    return this.history.filter((h) => page >= h.firstPage && page < h.firstPage + h.count);
  }

  /** The schema's Pin: O(runs), at most MAX_PUBLISHED_RUNS runs (the rest counted in omittedPages). */
  toPin(maxRuns = MAX_PUBLISHED_RUNS): Pin {
    const runs = new RunBuilder(maxRuns);
    let i = 0;
    let x = 0; // extent holding page i (extents are in page order)
    while (i < this.nPages) {
      if (runs.runs.length >= maxRuns) {
        runs.omittedPages += this.nPages - i;
        break;
      }
      let end = this.uniformEnd(i);
      let mapped: number | undefined;
      if (this.moved) {
        while (x < this.extents.length && this.extents[x].page + this.extents[x].count <= i) x++;
        const ext = this.extents[x];
        if (ext !== undefined && ext.page <= i) {
          end = Math.min(end, ext.page + ext.count);
          const va = ext.va + (i - ext.page) * PAGE_SIZE;
          if (va !== this.pinVaOf(i)) mapped = va;
        } else if (ext !== undefined) end = Math.min(end, ext.page);
      }
      runs.pushRun(i, end - i, nullIfNaN(this.pinned.at(i)), nullIfNaN(this.currentPfnAt(i)), (this.pageFlags.at(i) & PG_LATE) !== 0, mapped);
      i = end;
    }
    const pin: Pin = { ...this.header(), runs: runs.runs };
    if (runs.omittedPages > 0) pin.omittedPages = runs.omittedPages;
    return pin;
  }

  toSummary(): PinSummary {
    return { ...this.header(), divergedPages: this.divergedPages };
  }

  private header(): Omit<Pin, 'runs' | 'omittedPages'> {
    return {
      id: this.id,
      pid: this.pid,
      comm: this.comm,
      source: this.source,
      handle: this.handleText,
      addr: this.addr,
      len: this.len,
      writable: this.writable,
      longterm: this.longterm,
      backing: this.backing,
      createdNs: this.createdNs,
      releasedNs: this.releasedNs,
      state: this.state,
      pageCount: this.nPages,
      ...(this.origin === 'discovered' ? { origin: this.origin } : {}),
    };
  }
}

function nullIfNaN(n: number): number | null {
  return Number.isNaN(n) ? null : n;
}
