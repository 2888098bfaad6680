// pfn → pin ids, for events that name a physical page (KSM, reclaim, migration, khugepaged, kprobe unpin and
// rmap walks). Pins register their pinned pfns as runs (PageRuns), and the index keeps them at the size of
// their runs, not of their pages:
//   - long runs (≥ LONG_RUN pages: THP/hugetlb-backed guest RAM) as spans [first, end) bucketed per 1 GiB of
//     pfn space (a span over several GiB is listed in each bucket it covers);
//   - short runs and single pages (fragmented memory) as a count per pfn in chunks of 2^16 pfns (u16 counts,
//     2 bytes a pfn of the chunk) with the pins present in the chunk (Map pinId → pages).
// A contiguous 64 GiB pin costs a few hundred spans; a fully fragmented one ~2 bytes a page where the pages fill
// their chunks (at most 128 KiB per chunk touched). A lookup is exact for spans, and for chunks it names the
// pins holding some page of that chunk when that pfn's count is non-zero: the caller asks each pin for the page
// (PinRecord.pageOfPfn), which drops any false candidate.
// The shared zero page is never indexed (`excluded`): it is every untouched anonymous page of every process, so
// an event naming it (a COW of an unrelated zero page) says nothing about a pin holding it.
import type { PageRuns } from './page-runs.ts';

/** Runs of at least this many pages are kept as spans. */
export const LONG_RUN = 16;
/** pfns per span bucket: 1 GiB of 4 KiB pages. */
const BUCKET_SHIFT = 18;
const BUCKET = 2 ** BUCKET_SHIFT;
/** pfns per count chunk. */
const CHUNK_SHIFT = 16;
const CHUNK = 2 ** CHUNK_SHIFT;

interface Span {
  first: number;
  end: number;
  pinId: number;
}

interface Chunk {
  counts: Uint16Array;
  /** Pages of each pin in this chunk. */
  pins: Map<number, number>;
}

const EMPTY: number[] = [];

export class PfnIndex {
  private readonly buckets = new Map<number, Span[]>();
  private readonly chunks = new Map<number, Chunk>();
  private spanCount = 0;
  private pageCount = 0;

  /** @param excluded a pfn never indexed (the shared zero page), null: none. */
  constructor(private readonly excluded: number | null = null) {}

  /** Pinned pages indexed (each page once per pin holding it). */
  get size(): number {
    return this.pageCount;
  }

  /** Spans and chunks held (for tests and the memory figure). */
  get shape(): { spans: number; buckets: number; chunks: number; bytes: number } {
    let bytes = 0;
    for (const list of this.buckets.values()) bytes += 64 + list.length * 48;
    for (const c of this.chunks.values()) bytes += c.counts.byteLength + 64 + c.pins.size * 32;
    return { spans: this.spanCount, buckets: this.buckets.size, chunks: this.chunks.size, bytes };
  }

  /** Index the known pfns of `pfns` (a pin's pinned pfns, step 1) for pinId. */
  addPin(pinId: number, pfns: PageRuns): void {
    // Short runs of one pin come in clusters per chunk: count them in the chunk at once (no Map update a page).
    let key = -1;
    let c: Chunk | undefined;
    let pending = 0;
    const flush = (): void => {
      if (c !== undefined && pending !== 0) c.pins.set(pinId, (c.pins.get(pinId) ?? 0) + pending);
      pending = 0;
    };
    pfns.forEachRun((_page, count, first) => {
      if (!(first >= 0)) return;
      if (count >= LONG_RUN) return this.addRun(first, count, pinId);
      for (let k = 0; k < count; k++) {
        const pfn = first + k;
        if (pfn === this.excluded) continue;
        this.pageCount++;
        const kk = Math.floor(pfn / CHUNK);
        if (kk !== key) {
          flush();
          key = kk;
          c = this.chunks.get(kk);
          if (c === undefined) this.chunks.set(kk, (c = { counts: new Uint16Array(CHUNK), pins: new Map() }));
        }
        c!.counts[pfn - kk * CHUNK]++;
        pending++;
      }
    });
    flush();
  }

  /** Forget what addPin(pinId, pfns) indexed (pfns unchanged since). */
  removePin(pinId: number, pfns: PageRuns): void {
    pfns.forEachRun((_page, count, first) => this.removeRun(first, count, pinId));
  }

  /** pfns [first, first+count) are pinned by pinId (NaN: unknown, skipped). */
  addRun(first: number, count: number, pinId: number): void {
    if (!(first >= 0) || count <= 0) return;
    if (this.splitAtExcluded(first, count, (f, n) => this.addRun(f, n, pinId))) return;
    this.pageCount += count;
    if (count >= LONG_RUN) {
      const end = first + count;
      for (let b = Math.floor(first / BUCKET); b * BUCKET < end; b++) {
        let list = this.buckets.get(b);
        if (list === undefined) this.buckets.set(b, (list = []));
        list.push({ first, end, pinId });
      }
      this.spanCount++;
      return;
    }
    for (let k = 0; k < count; k++) {
      const pfn = first + k;
      const key = Math.floor(pfn / CHUNK);
      let c = this.chunks.get(key);
      if (c === undefined) this.chunks.set(key, (c = { counts: new Uint16Array(CHUNK), pins: new Map() }));
      c.counts[pfn - key * CHUNK]++;
      c.pins.set(pinId, (c.pins.get(pinId) ?? 0) + 1);
    }
  }

  removeRun(first: number, count: number, pinId: number): void {
    if (!(first >= 0) || count <= 0) return;
    if (this.splitAtExcluded(first, count, (f, n) => this.removeRun(f, n, pinId))) return;
    if (count >= LONG_RUN) {
      const end = first + count;
      let found = false;
      for (let b = Math.floor(first / BUCKET); b * BUCKET < end; b++) {
        const list = this.buckets.get(b);
        if (list === undefined) continue;
        const i = list.findIndex((s) => s.first === first && s.end === end && s.pinId === pinId);
        if (i < 0) continue;
        found = true;
        list.splice(i, 1);
        if (list.length === 0) this.buckets.delete(b);
      }
      if (found) {
        this.spanCount--;
        this.pageCount -= count;
      }
      return;
    }
    for (let k = 0; k < count; k++) {
      const pfn = first + k;
      const key = Math.floor(pfn / CHUNK);
      const c = this.chunks.get(key);
      const n = c?.pins.get(pinId);
      if (c === undefined || n === undefined || c.counts[pfn - key * CHUNK] === 0) continue;
      c.counts[pfn - key * CHUNK]--;
      this.pageCount--;
      if (n > 1) c.pins.set(pinId, n - 1);
      else {
        c.pins.delete(pinId);
        if (c.pins.size === 0) this.chunks.delete(key);
      }
    }
  }

  /** A run over the excluded pfn: `each` of the parts around it instead (the same split on add and remove). */
  private splitAtExcluded(first: number, count: number, each: (first: number, count: number) => void): boolean {
    const z = this.excluded;
    if (z === null || z < first || z >= first + count) return false;
    if (z > first) each(first, z - first);
    if (first + count > z + 1) each(z + 1, first + count - z - 1);
    return true;
  }

  /** Some pin may hold pfn (exact for spans; chunk counts are per pfn, so exact too). */
  has(pfn: number): boolean {
    if (!(pfn >= 0)) return false;
    const c = this.chunks.get(Math.floor(pfn / CHUNK));
    if (c !== undefined && c.counts[pfn % CHUNK] !== 0) return true;
    const list = this.buckets.get(Math.floor(pfn / BUCKET));
    if (list !== undefined) for (const s of list) if (pfn >= s.first && pfn < s.end) return true;
    return false;
  }

  /**
   * Pin ids that may hold pfn (a shared empty array when none: allocation only on a hit). Span hits are exact;
   * chunk hits name every pin with a page in the chunk when some pin holds pfn (confirm with pageOfPfn).
   */
  lookup(pfn: number): number[] {
    if (!(pfn >= 0)) return EMPTY;
    let out: number[] | null = null;
    const list = this.buckets.get(Math.floor(pfn / BUCKET));
    if (list !== undefined) {
      for (const s of list) if (pfn >= s.first && pfn < s.end && !(out ??= []).includes(s.pinId)) out.push(s.pinId);
    }
    const c = this.chunks.get(Math.floor(pfn / CHUNK));
    if (c !== undefined && c.counts[pfn % CHUNK] !== 0) {
      for (const id of c.pins.keys()) if (!(out ??= []).includes(id)) out.push(id);
    }
    return out ?? EMPTY;
  }
}
