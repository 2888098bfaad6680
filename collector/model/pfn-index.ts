// pfn → pin ids, for events that name a physical page (KSM, reclaim, migration, khugepaged, kprobe unpin and
// rmap walks). Pins register their pinned pfns as runs (PageRuns), and the index keeps them at the size of
// their runs, not of their pages:
//   - long runs (≥ LONG_RUN pages: THP/hugetlb-backed guest RAM) as spans [first, end) bucketed per 1 GiB of
//     pfn space (a span over several GiB is listed in each bucket it covers);
//   - short runs and single pages (fragmented memory) as a bit per pfn in chunks of 2^16 pfns (8 KiB a chunk)
//     with the pins present in the chunk (Map pinId → pages); a chunk where some pfn is held twice (two pins
//     over the same memory: two VFIO containers mapping one guest's RAM, or a pin holding a page twice) adds
//     u16 counts per pfn (128 KiB).
// A contiguous 64 GiB pin costs a few hundred spans; a fully fragmented one ~1 bit a pfn of the chunks it
// touches (16 MiB for 2^27 pfns where counts everywhere would cost 256 MiB — and a fresh 64 GiB pin registers
// in a fraction of the time, faulting in 16 MiB, not 256). A lookup is exact for spans, and for chunks it names
// the pins holding some page of that chunk when that pfn's bit is set: the caller asks each pin for the page
// (PinRecord.pageOfPfn), which drops any false candidate.
// The shared zero page is never indexed (`excluded`): it is every untouched anonymous page of every process, so
// an event naming it (a COW of an unrelated zero page) says nothing about a pin holding it.
import type { PageRuns } from './page-runs.ts';

/** Runs of at least this many pages are kept as spans. */
export const LONG_RUN = 16;
/** pfns per span bucket: 1 GiB of 4 KiB pages. */
const BUCKET_SHIFT = 18;
const BUCKET = 2 ** BUCKET_SHIFT;
/** pfns per bitmap chunk. */
const CHUNK_SHIFT = 16;
const CHUNK = 2 ** CHUNK_SHIFT;
const CHUNK_WORDS = CHUNK / 32;
/** Chunk keys of u32 pfns. */
const KEYS = 2 ** (32 - CHUNK_SHIFT);
/** pfns of a fragmented pin grouped by chunk at a time (bulk): up to ~6 MiB of buffers, kept for the next pin. */
const BLOCK = 2 ** 20;

interface Span {
  first: number;
  end: number;
  pinId: number;
}

interface Chunk {
  /** Bit (pfn mod CHUNK): some pin holds the pfn. */
  bits: Uint32Array;
  /** Holds per pfn, once some pfn of the chunk is held twice (null while every bit stands for one hold). */
  counts: Uint16Array | null;
  /** Pages of each pin in this chunk. */
  pins: Map<number, number>;
}

const EMPTY: number[] = [];

export class PfnIndex {
  private readonly buckets = new Map<number, Span[]>();
  private readonly chunks = new Map<number, Chunk>();
  /** bulk()'s buffers (allocated by the first fragmented pin). */
  private block: Uint32Array | null = null;
  private low: Uint16Array | null = null;
  private offsets: Uint32Array | null = null;
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
    for (const c of this.chunks.values()) bytes += c.bits.byteLength + (c.counts?.byteLength ?? 0) + 64 + c.pins.size * 32;
    return { spans: this.spanCount, buckets: this.buckets.size, chunks: this.chunks.size, bytes };
  }

  /** Index the known pfns of `pfns` (a pin's pinned pfns, step 1) for pinId. */
  addPin(pinId: number, pfns: PageRuns): void {
    const dense = pfns.denseView();
    if (dense !== null && dense.values instanceof Uint32Array) return this.bulk(pinId, dense.values, dense.nan, true);
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
          c = this.chunkFor(kk);
        }
        hold(c!, pfn - kk * CHUNK);
        pending++;
      }
    });
    flush();
  }

  /** Forget what addPin(pinId, pfns) indexed (pfns unchanged since). */
  removePin(pinId: number, pfns: PageRuns): void {
    const dense = pfns.denseView();
    if (dense !== null && dense.values instanceof Uint32Array) return this.bulk(pinId, dense.values, dense.nan, false);
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
      const c = this.chunkFor(key);
      hold(c, pfn - key * CHUNK);
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
      if (c === undefined || n === undefined || !drop(c, pfn - key * CHUNK)) continue;
      this.pageCount--;
      if (n > 1) c.pins.set(pinId, n - 1);
      else this.leave(c, key, pinId);
    }
  }

  /**
   * addPin / removePin of a fragmented pin's dense u32 pfns, the same entries as run by run but without a call or
   * a Map lookup a page: 16M pages scattered over the pfn space touch their chunks in random order (a cache and
   * TLB miss a page: seconds for a 64 GiB pin). Instead the short runs' pfns are taken BLOCK at a time and grouped
   * by chunk (a counting sort of their low 16 bits), then each chunk's bits are set from its group; a block's
   * buffers and the bitmap one group touches stay in cache. Long runs are spans, as in addRun.
   */
  private bulk(pinId: number, d: Uint32Array, nan: number, add: boolean): void {
    const n = d.length;
    // A fully fragmented pin (the worst case, and the common dense one) has no long run: found in one scan, its
    // pages are sorted straight from the array, BLOCK at a time.
    let run = 1;
    let long = false;
    for (let k = 1; k < n && !long; k++) {
      if (d[k] === d[k - 1] + 1) long = ++run >= LONG_RUN;
      else run = 1;
    }
    if (!long) {
      for (let w = 0; w < n; w += BLOCK) this.applyBlock(pinId, d, w, Math.min(n, w + BLOCK), nan, add);
      return;
    }
    const block = (this.block ??= new Uint32Array(BLOCK));
    let m = 0;
    for (let s = 0; s < n; ) {
      const first = d[s];
      let e = s + 1;
      if (first === nan) while (e < n && d[e] === nan) e++;
      else while (e < n && d[e] === first + (e - s)) e++;
      if (first !== nan && e - s >= LONG_RUN) {
        if (add) this.addRun(first, e - s, pinId);
        else this.removeRun(first, e - s, pinId);
      } else if (first !== nan) {
        for (let k = s; k < e; k++) {
          block[m++] = d[k];
          if (m === BLOCK) m = this.applyBlock(pinId, block, 0, m, nan, add);
        }
      }
      s = e;
    }
    if (m > 0) this.applyBlock(pinId, block, 0, m, nan, add);
  }

  /** The pfns src[from, to) (`nan` and the excluded pfn skipped) sorted by chunk, then set one chunk at a time; returns 0 (an empty block). */
  private applyBlock(pinId: number, src: Uint32Array, from: number, to: number, nan: number, add: boolean): number {
    const offsets = (this.offsets ??= new Uint32Array(KEYS + 1)).fill(0);
    const low = (this.low ??= new Uint16Array(BLOCK));
    const z = this.excluded ?? nan; // the shared zero page is never indexed
    for (let j = from; j < to; j++) if (src[j] !== nan && src[j] !== z) offsets[(src[j] >>> CHUNK_SHIFT) + 1]++;
    for (let k = 1; k <= KEYS; k++) offsets[k] += offsets[k - 1];
    for (let j = from; j < to; j++) {
      const pfn = src[j];
      if (pfn !== nan && pfn !== z) low[offsets[pfn >>> CHUNK_SHIFT]++] = pfn & (CHUNK - 1);
    }
    // offsets[k] is now the end of group k (and the start of group k + 1).
    for (let key = 0, start = 0; key < KEYS; key++) {
      const end = offsets[key];
      if (start === end) continue;
      if (add) this.addToChunk(key, pinId, low, start, end);
      else this.removeFromChunk(key, pinId, low, start, end);
      start = end;
    }
    return 0;
  }

  private addToChunk(key: number, pinId: number, low: Uint16Array, from: number, to: number): void {
    const c = this.chunkFor(key);
    const bits = c.bits;
    for (let j = from; j < to; j++) {
      const o = low[j];
      const m = 1 << (o & 31);
      if (c.counts === null && (bits[o >>> 5] & m) === 0) bits[o >>> 5] |= m;
      else hold(c, o);
    }
    c.pins.set(pinId, (c.pins.get(pinId) ?? 0) + (to - from));
    this.pageCount += to - from;
  }

  /** As removeRun page by page: a pfn no pin holds, or a pin no longer in the chunk, is skipped. */
  private removeFromChunk(key: number, pinId: number, low: Uint16Array, from: number, to: number): void {
    const c = this.chunks.get(key);
    let left = c?.pins.get(pinId);
    if (c === undefined || left === undefined) return;
    for (let j = from; j < to && left > 0; j++) {
      if (!drop(c, low[j])) continue;
      left--;
      this.pageCount--;
    }
    if (left > 0) c.pins.set(pinId, left);
    else this.leave(c, key, pinId);
  }

  private chunkFor(key: number): Chunk {
    let c = this.chunks.get(key);
    if (c === undefined) this.chunks.set(key, (c = { bits: new Uint32Array(CHUNK_WORDS), counts: null, pins: new Map() }));
    return c;
  }

  /** pinId has no page left in chunk `key`: the chunk goes with its last pin. */
  private leave(c: Chunk, key: number, pinId: number): void {
    c.pins.delete(pinId);
    if (c.pins.size === 0) this.chunks.delete(key);
  }

  /** A run over the excluded pfn: `each` of the parts around it instead (the same split on add and remove). */
  private splitAtExcluded(first: number, count: number, each: (first: number, count: number) => void): boolean {
    const z = this.excluded;
    if (z === null || z < first || z >= first + count) return false;
    if (z > first) each(first, z - first);
    if (first + count > z + 1) each(z + 1, first + count - z - 1);
    return true;
  }

  /** Some pin holds pfn (exact: spans by range, chunks by a bit per pfn). */
  has(pfn: number): boolean {
    if (!(pfn >= 0)) return false;
    const c = this.chunks.get(Math.floor(pfn / CHUNK));
    if (c !== undefined && bitAt(c, pfn)) return true;
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
    if (c !== undefined && bitAt(c, pfn)) {
      for (const id of c.pins.keys()) if (!(out ??= []).includes(id)) out.push(id);
    }
    return out ?? EMPTY;
  }
}

/** The pfn at offset o of chunk c is held once more (a second hold gives the chunk its counts). */
function hold(c: Chunk, o: number): void {
  const w = o >>> 5;
  const m = 1 << (o & 31);
  if (c.counts === null) {
    if ((c.bits[w] & m) === 0) {
      c.bits[w] |= m;
      return;
    }
    const counts = (c.counts = new Uint16Array(CHUNK));
    for (let i = 0; i < CHUNK_WORDS; i++) {
      for (let bits = c.bits[i]; bits !== 0; bits &= bits - 1) counts[i * 32 + 31 - Math.clz32(bits & -bits)] = 1;
    }
  }
  c.counts[o]++;
  c.bits[w] |= m;
}

/** The pfn at offset o of chunk c is held once less; false when no pin held it. */
function drop(c: Chunk, o: number): boolean {
  const w = o >>> 5;
  const m = 1 << (o & 31);
  if ((c.bits[w] & m) === 0) return false;
  if (c.counts === null || --c.counts[o] === 0) c.bits[w] &= ~m;
  return true;
}

function bitAt(c: Chunk, pfn: number): boolean {
  const o = pfn % CHUNK;
  return (c.bits[o >>> 5] & (1 << (o & 31))) !== 0;
}
