// The DMA buffer registry's shape: a pin is one registered range (an io_uring buffer slot, a
// VFIO DMA mapping, a vmsplice iovec), with the pfn of every page as read right after it was pinned, held as
// runs of pages (schema/pin-runs.ts: one run per stretch of physically contiguous, equally flagged pages).
import type { PinSource } from './events.ts';
import type { PinRun } from './pin-runs.ts';

export type PinState = 'intact' | 'zapped' | 'diverged' | 'released';

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
}

/** What the UI and the store need of a pin without its per-page array. */
export type PinSummary = Omit<Pin, 'runs' | 'omittedPages'> & { divergedPages: number };

/** Still registered: not released (a released pin keeps its row and summary a while). */
export function isLivePin(p: Pick<Pin, 'releasedNs' | 'state'>): boolean {
  return p.releasedNs === null && p.state !== 'released';
}
