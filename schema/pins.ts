// The DMA buffer registry's shape: a pin is one registered range (an io_uring buffer slot, a
// VFIO DMA mapping, a vmsplice iovec), with the pfn of every page as read right after it was pinned.
import type { PinSource } from './events.ts';
import type { PinRun } from './pin-runs.ts';

export type PinState = 'intact' | 'zapped' | 'diverged' | 'released';

export interface PinPage {
  /** Page-aligned user virtual address of this page at pin time. */
  addr: number;
  /** pfn the device holds, from pagemap right after the pin (or from GUP in kprobe mode); null if unknown. */
  pinnedPfn: number | null;
  /** Latest pfn pagemap showed at this address; null when not present. */
  currentPfn: number | null;
  /** true when pinnedPfn was read after an event that may already have moved the page (see verify/). */
  snapshotLate: boolean;
  /** Where the page is mapped now when mremap moved it away from `addr` (absent when unmoved). */
  mappedAddr?: number;
}

/** event: pinwatch saw the pinning call; discovered: found already pinned at start (pfns read from pagemap then). */
export type PinOrigin = 'event' | 'discovered';

export interface Pin {
  id: number;
  pid: number;
  comm: string;
  source: PinSource;
  /** Human handle: "ring fd 5 slot 0", "container fd 7 iova 0x100000", "pipe fd 4". */
  handle: string;
  addr: number;
  len: number;
  /** Writable and long-term (FOLL_WRITE | FOLL_LONGTERM) as the source implies or GUP said. */
  writable: boolean;
  longterm: boolean;
  /** The mapping behind it: 'anon', 'shmem', 'file:<path>' (from /proc/PID/maps at pin time). */
  backing: string;
  createdNs: number;
  releasedNs: number | null;
  state: PinState;
  /** Absent: 'event'. */
  origin?: PinOrigin;
  /** Pages in the pin (tracked ones: see MAX_PIN_PAGES in the model). */
  pageCount: number;
  /** The pages as runs (schema/pin-runs.ts): O(runs), however large the pin. */
  runs: PinRun[];
  /** Pages past the publish cap on runs (a pin fragmented into more runs than a message may carry); absent: 0. */
  omittedPages?: number;
  /** Per page; being replaced by `runs` (consumers move over, then this goes). */
  pages: PinPage[];
}

/** What the UI and the store need of a pin without its per-page array. */
export type PinSummary = Omit<Pin, 'pages' | 'runs' | 'omittedPages'> & { divergedPages: number };
