// The shadow model's view of one pin (a registered DMA buffer): per-page state in typed arrays so 1M
// pinned pages cost ~17 bytes each, plus "extents" mapping page ranges to their CURRENT user address
// (mremap moves pages; the pin and its pfns stay). Converted to the schema's Pin only when published.
import type { PinSource } from '../../schema/events.ts';
import { PAGE_SIZE } from '../../schema/kernel.ts';
import { RunBuilder } from '../../schema/pin-runs.ts';
import type { Pin, PinOrigin, PinState, PinSummary } from '../../schema/pins.ts';

// Page flag bits (PinRecord.flags).
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
 * Pages tracked per pin at most (16 GiB of 4 KiB pages, ~72 MB of arrays). A bigger registration (a VFIO map
 * of a large guest) is tracked over its first MAX_PIN_PAGES pages; `truncated` says so.
 */
export const MAX_PIN_PAGES = 1 << 22;
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
  readonly pinnedPfn: Float64Array;
  readonly currentPfn: Float64Array;
  readonly flags: Uint8Array;
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
    this.pinnedPfn = new Float64Array(this.nPages).fill(NaN);
    this.currentPfn = new Float64Array(this.nPages).fill(NaN);
    this.flags = new Uint8Array(this.nPages);
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

  /** Index of the page whose pinned pfn is `pfn`, or -1. Linear: only called on pfn-index hits. */
  pageOfPfn(pfn: number): number {
    const a = this.pinnedPfn;
    for (let i = 0; i < a.length; i++) if (a[i] === pfn) return i;
    return -1;
  }

  setFlag(page: number, bit: number): boolean {
    const before = this.flags[page];
    if (before & bit) return false;
    this.flags[page] = before | bit;
    if (bit === PG_ZAPPED) this.zappedPages++;
    if (bit === PG_DIVERGED) this.divergedPages++;
    return true;
  }

  note(seq: number, tsNs: number, note: string, firstPage: number, count: number): void {
    if (this.history.length >= HISTORY_CAP) this.history.splice(1, 1); // keep the first (often the cause)
    this.history.push({ seq, tsNs, note, firstPage, count });
  }

  /** History entries that concern page i. */
  historyOf(page: number): HistoryEntry[] {
    return this.history.filter((h) => page >= h.firstPage && page < h.firstPage + h.count);
  }

  toPin(): Pin {
    const runs = new RunBuilder();
    for (let i = 0; i < this.nPages; i++) {
      const va = this.moved ? this.vaOf(i) : this.pinVaOf(i);
      runs.push(i, nullIfNaN(this.pinnedPfn[i]), nullIfNaN(this.currentPfn[i]), (this.flags[i] & PG_LATE) !== 0, va !== this.pinVaOf(i) ? va : undefined);
    }
    return { ...this.header(), runs: runs.runs };
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

/**
 * pfn -> pin ids, for events that name a physical page (KSM, reclaim, khugepaged, kprobe rmap walks).
 * Open addressing with linear probing on typed arrays (12 bytes a slot, load <= 1/2, no allocation per
 * entry): 1M pinned pages cost ~24 MB and no GC pressure. A pfn pinned by several pins has one entry per
 * pin. Deletion shifts the following entries back (no tombstones).
 */
export class PfnIndex {
  private keys: Float64Array;
  private vals: Int32Array;
  private mask: number;
  private count = 0;
  private readonly minCapacity: number;

  constructor(capacity = 1024) {
    this.minCapacity = capacity;
    this.keys = new Float64Array(capacity).fill(-1);
    this.vals = new Int32Array(capacity);
    this.mask = capacity - 1;
  }

  get size(): number {
    return this.count;
  }

  get capacity(): number {
    return this.keys.length;
  }

  add(pfn: number, pinId: number): void {
    if (!(pfn >= 0)) return; // NaN: unknown pfn
    if ((this.count + 1) * 2 > this.keys.length) this.rehash(this.keys.length * 2);
    const keys = this.keys;
    let i = this.home(pfn);
    while (keys[i] !== -1) {
      if (keys[i] === pfn && this.vals[i] === pinId) return;
      i = (i + 1) & this.mask;
    }
    keys[i] = pfn;
    this.vals[i] = pinId;
    this.count++;
  }

  remove(pfn: number, pinId: number): void {
    if (!(pfn >= 0)) return;
    const keys = this.keys;
    let i = this.home(pfn);
    while (keys[i] !== -1) {
      if (keys[i] === pfn && this.vals[i] === pinId) {
        this.deleteAt(i);
        if (this.count * 8 < keys.length && keys.length > this.minCapacity) this.rehash(keys.length / 2);
        return;
      }
      i = (i + 1) & this.mask;
    }
  }

  has(pfn: number): boolean {
    if (!(pfn >= 0)) return false;
    const keys = this.keys;
    let i = this.home(pfn);
    while (keys[i] !== -1) {
      if (keys[i] === pfn) return true;
      i = (i + 1) & this.mask;
    }
    return false;
  }

  /** Pin ids holding pfn (a shared empty array when none: allocation only on a hit). */
  lookup(pfn: number): number[] {
    if (!(pfn >= 0)) return EMPTY;
    const keys = this.keys;
    let out: number[] | null = null;
    let i = this.home(pfn);
    while (keys[i] !== -1) {
      if (keys[i] === pfn) (out ??= []).push(this.vals[i]);
      i = (i + 1) & this.mask;
    }
    return out ?? EMPTY;
  }

  private home(pfn: number): number {
    const lo = pfn >>> 0; // ToUint32: the low 32 bits, also above 2^32
    const hi = (pfn / 4294967296) >>> 0;
    return (Math.imul(lo ^ Math.imul(hi, 0x85ebca6b), 0x9e3779b1) >>> 0) & this.mask;
  }

  private deleteAt(i: number): void {
    const keys = this.keys;
    const vals = this.vals;
    const mask = this.mask;
    let hole = i;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      if (keys[j] === -1) break;
      const k = this.home(keys[j]);
      // Entry j may stay if its home lies cyclically in (hole, j]; otherwise it moves into the hole.
      const stays = hole <= j ? hole < k && k <= j : hole < k || k <= j;
      if (stays) continue;
      keys[hole] = keys[j];
      vals[hole] = vals[j];
      hole = j;
    }
    keys[hole] = -1;
    this.count--;
  }

  private rehash(capacity: number): void {
    const oldKeys = this.keys;
    const oldVals = this.vals;
    this.keys = new Float64Array(capacity).fill(-1);
    this.vals = new Int32Array(capacity);
    this.mask = capacity - 1;
    this.count = 0;
    for (let i = 0; i < oldKeys.length; i++) {
      const k = oldKeys[i];
      if (k === -1) continue;
      let j = this.home(k);
      while (this.keys[j] !== -1) j = (j + 1) & this.mask;
      this.keys[j] = k;
      this.vals[j] = oldVals[i];
      this.count++;
    }
  }
}
const EMPTY: number[] = [];
