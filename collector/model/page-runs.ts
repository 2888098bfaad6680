// One value per page of a pin, stored as runs: guest RAM behind a VFIO map or a 1 GiB io_uring buffer is mostly
// THP/hugetlb-backed, so its pfns climb by one page after page (runs with step 1: page k of a run holds
// first + k) and its flags are the same over long stretches (runs with step 0). A 64 GiB pin in four 16 GiB
// extents is four runs, not 16M array slots. Where pages differ too much (more runs than a third of the pages)
// the sequence falls back to a dense typed array: u8 for flags, u32 for pfns (f64 once a pfn needs more bits).
//
// NaN is a value ("unknown" / "not present"); a stretch of NaN is one run whatever the step. Callers loop per
// run, not per page: runEnd(i) is the end of the uniform stretch holding page i, forEachRun walks them all.

/** A run-mode sequence with more runs than length / DENSE_RATIO goes dense. */
const DENSE_RATIO = 3;
/** Below this many runs a sequence never goes dense (tiny pins stay cheap either way). */
const MIN_DENSE_RUNS = 8;
/** u32 dense pfn arrays encode NaN as this. */
const U32_NAN = 0xffffffff;

export type Dense = Uint8Array | Uint32Array | Float64Array;

function same(a: number, b: number): boolean {
  return a === b || (a !== a && b !== b); // NaN equals NaN here
}

export class PageRuns {
  /** Run starts (page index, ascending, starts[0] = 0) and the value of each run's first page; null when dense. */
  private starts: number[] | null = [0];
  private vals: number[] | null;
  private dense: Dense | null = null;
  /** Index of the run the last lookup found (sequential access is the common case). */
  private hint = 0;

  /**
   * @param length pages
   * @param step 1: pfns (page k of a run = first + k); 0: flags (equal over a run)
   * @param fill the value of every page at first
   */
  constructor(
    readonly length: number,
    readonly step: 0 | 1,
    fill: number,
  ) {
    this.vals = [fill];
    if (length === 0) this.starts = [];
  }

  /** A copy (cheap in run mode: O(runs)). */
  clone(): PageRuns {
    const c = new PageRuns(this.length, this.step, NaN);
    c.starts = this.starts ? this.starts.slice() : null;
    c.vals = this.vals ? this.vals.slice() : null;
    c.dense = this.dense ? (this.dense.slice() as Dense) : null;
    return c;
  }

  /** Runs in run mode; in dense mode the number of uniform stretches is not kept (-1). */
  get runCount(): number {
    return this.starts ? this.starts.length : -1;
  }

  get isDense(): boolean {
    return this.dense !== null;
  }

  /** Bytes this sequence holds (estimate: 16 bytes a run in run mode, the typed array when dense). */
  get bytes(): number {
    return this.dense ? this.dense.byteLength : (this.starts?.length ?? 0) * 16;
  }

  /** Value of page i. */
  at(i: number): number {
    const d = this.dense;
    if (d !== null) return this.denseAt(d, i);
    const r = this.find(i);
    return this.vals![r] + this.step * (i - this.starts![r]);
  }

  /** Set page i to v. */
  set(i: number, v: number): void {
    if (this.dense !== null) return this.denseSet(i, v);
    this.replace(i, 1, [i], [v]);
  }

  /** Set pages [i, i+n) to v, v+step, … (`step` defaults to this sequence's; another step is written page by page). */
  setRange(i: number, n: number, v: number, step: number = this.step): void {
    if (n <= 0) return;
    if (step !== this.step && v === v) {
      for (let k = 0; k < n; k++) this.set(i + k, v + step * k);
      return;
    }
    if (this.dense !== null) {
      for (let k = 0; k < n; k++) this.denseSet(i + k, v + this.step * k);
      return;
    }
    this.replace(i, n, [i], [v]);
  }

  /** Pages [i, i+n) take values[0..n) (folded into runs: one replace, however many runs the values make). */
  setValues(i: number, values: Float64Array, n: number): void {
    if (n <= 0) return;
    if (this.dense !== null) {
      for (let k = 0; k < n; k++) this.denseSet(i + k, values[k]);
      return;
    }
    const ns: number[] = [];
    const nv: number[] = [];
    for (let s = 0; s < n; ) {
      const first = values[s];
      let e = s + 1;
      if (first !== first) while (e < n && values[e] !== values[e]) e++;
      else while (e < n && values[e] === first + this.step * (e - s)) e++;
      ns.push(i + s);
      nv.push(first);
      s = e;
    }
    this.replace(i, n, ns, nv);
  }

  /**
   * OR `bits` into pages [i, i+n) and clear `clear` (flags). Returns how many pages lacked some of `bits` before
   * (for a single bit: how many pages it newly set).
   */
  orRange(i: number, n: number, bits: number, clear = 0): number {
    if (n <= 0) return 0;
    const end = i + n;
    let changed = 0;
    let dirty = false;
    const d = this.dense;
    if (d !== null) {
      for (let k = i; k < end; k++) {
        const old = d[k];
        if ((old & bits) !== bits) changed++;
        d[k] = (old & ~clear) | bits;
      }
      return changed;
    }
    const starts = this.starts!;
    const vals = this.vals!;
    // Runs overlapping [i, end), rewritten in one replace (step 0: a run's value is its pages' value). Looked
    // at first without allocating: a fault on a pinned page sets a flag its run mostly has already.
    const r0 = this.find(i);
    let r = r0;
    for (; r < starts.length && starts[r] < end; r++) {
      const s = Math.max(starts[r], i);
      const e = Math.min(r + 1 < starts.length ? starts[r + 1] : this.length, end);
      const old = vals[r] + this.step * (s - starts[r]);
      if ((old & bits) !== bits) changed += e - s;
      if (((old & ~clear) | bits) !== old) dirty = true;
    }
    if (!dirty) return changed;
    const ns: number[] = [], nv: number[] = [];
    for (r = r0; r < starts.length && starts[r] < end; r++) {
      const s = Math.max(starts[r], i);
      const old = vals[r] + this.step * (s - starts[r]);
      ns.push(s);
      nv.push((old & ~clear) | bits);
    }
    this.replace(i, n, ns, nv);
    return changed;
  }

  /** Index of the first page whose value is v, or -1 (per run in run mode; a native scan when dense). */
  indexOf(v: number): number {
    if (v !== v) return -1;
    const d = this.dense;
    if (d !== null) {
      if (d instanceof Uint32Array && (v >= U32_NAN || v < 0 || !Number.isInteger(v))) return -1;
      return d.indexOf(v);
    }
    const starts = this.starts!;
    const vals = this.vals!;
    for (let r = 0; r < starts.length; r++) {
      const first = vals[r];
      if (this.step === 0) {
        if (first === v) return starts[r];
        continue;
      }
      const len = (r + 1 < starts.length ? starts[r + 1] : this.length) - starts[r];
      if (v >= first && v < first + len) return starts[r] + (v - first);
    }
    return -1;
  }

  /** End (exclusive) of the uniform stretch holding page i (values advance by `step` over it), at most `limit`. */
  runEnd(i: number, limit: number = this.length): number {
    const d = this.dense;
    if (d !== null) {
      let prev = this.denseAt(d, i);
      let j = i + 1;
      for (; j < limit; j++) {
        const v = this.denseAt(d, j);
        if (!same(v, prev + this.step)) break;
        prev = v;
      }
      return j;
    }
    const r = this.find(i);
    const e = r + 1 < this.starts!.length ? this.starts![r + 1] : this.length;
    return Math.min(e, limit);
  }

  /** Each maximal-as-stored uniform stretch in page order: (first page, pages, value of its first page). */
  forEachRun(fn: (page: number, count: number, value: number) => void, from = 0, to: number = this.length): void {
    const d = this.dense;
    if (d !== null) {
      // One pass over the array (a fragmented pin: every page may be its own run).
      const nan = d instanceof Uint32Array ? U32_NAN : NaN;
      const step = this.step;
      let s = from;
      while (s < to) {
        const first = d[s];
        let e = s + 1;
        if (first === nan || first !== first) while (e < to && (d[e] === nan || d[e] !== d[e])) e++;
        else while (e < to && d[e] === first + step * (e - s)) e++;
        fn(s, e - s, first === nan ? NaN : first);
        s = e;
      }
      return;
    }
    let i = from;
    while (i < to) {
      const e = this.runEnd(i, to);
      fn(i, e - i, this.at(i));
      i = e;
    }
  }

  /** Take over `other`'s contents (same length; `other` must not be used afterwards). */
  adopt(other: PageRuns): void {
    if (other.length !== this.length || other.step !== this.step) throw new Error('PageRuns.adopt: shape differs');
    this.starts = other.starts;
    this.vals = other.vals;
    this.dense = other.dense;
    this.hint = 0;
  }

  /** Switch to the dense array now (a loader that sees fragmented input skips building runs first). */
  makeDense(): void {
    if (this.dense === null) this.toDense();
  }

  /** Dense mode: pages [i, i+n) take values[offset..] as they are. */
  writeDense(i: number, values: Float64Array, offset: number, n: number): void {
    const d = this.dense!;
    if (d instanceof Float64Array) {
      d.set(values.subarray(offset, offset + n), i);
      return;
    }
    if (d instanceof Uint32Array) {
      // One tight loop (a 64 GiB fragmented pin is 16M pages): no call a page; widen only on a value u32 cannot hold.
      for (let k = 0; k < n; k++) {
        const v = values[offset + k];
        if (v !== v) d[i + k] = U32_NAN;
        else if (v >= 0 && v < U32_NAN && Math.floor(v) === v) d[i + k] = v;
        else {
          this.denseSet(i + k, v);
          this.writeDense(i + k + 1, values, offset + k + 1, n - k - 1);
          return;
        }
      }
      return;
    }
    for (let k = 0; k < n; k++) this.denseSet(i + k, values[offset + k]);
  }

  /** Dense mode: how many pages from i (at most n) hold exactly values[offset..] (known values only); 0 in run mode. */
  matchFrom(i: number, values: Float64Array, offset: number, n: number): number {
    const d = this.dense;
    if (d === null) return 0;
    const nan = d instanceof Uint32Array ? U32_NAN : NaN; // NaN never equals anything
    let k = 0;
    while (k < n && d[i + k] === values[offset + k] && d[i + k] !== nan) k++;
    return k;
  }

  /**
   * Dense mode: the array itself and the value standing for NaN in it (read-only for callers: the pfn index
   * builds a fragmented pin's entries from it in a few tight passes); null in run mode.
   */
  denseView(): { values: Dense; nan: number } | null {
    const d = this.dense;
    return d === null ? null : { values: d, nan: d instanceof Uint32Array ? U32_NAN : NaN };
  }

  /** Replace the contents with what a loader appended (page order). */
  load(): PageLoader {
    return new PageLoader(this);
  }

  /** Drop everything and become one run of `v` (values v, v+step, …). */
  reset(v: number): void {
    this.dense = null;
    this.starts = this.length === 0 ? [] : [0];
    this.vals = [v];
    this.hint = 0;
  }

  /** Loader's entry: append (page, count, first value) after everything written so far. */
  appendRun(page: number, count: number, v: number): void {
    if (count <= 0) return;
    const d = this.dense;
    if (d !== null) {
      for (let k = 0; k < count; k++) this.denseSet(page + k, v + this.step * k);
      return;
    }
    const starts = this.starts!;
    const vals = this.vals!;
    let last = starts.length - 1;
    if (last >= 0 && starts[last] === page) {
      // The loader's open run starts here: it takes this value (and may continue the run before it).
      starts.pop();
      vals.pop();
      last--;
    }
    if (last >= 0 && same(vals[last] + this.step * (page - starts[last]), v)) return; // continues the last run
    starts.push(page);
    vals.push(v);
    this.maybeDense();
  }

  // ------------------------------------------------------------------ run mode

  /** Index of the run holding page i. */
  private find(i: number): number {
    const starts = this.starts!;
    const h = this.hint;
    if (h < starts.length && starts[h] <= i && (h + 1 === starts.length || starts[h + 1] > i)) return h;
    if (h + 1 < starts.length && starts[h + 1] <= i && (h + 2 === starts.length || starts[h + 2] > i)) return (this.hint = h + 1);
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (starts[mid] <= i) lo = mid;
      else hi = mid - 1;
    }
    return (this.hint = lo);
  }

  /** Replace pages [i, i+n) with the runs (ns[k], nv[k]) (ns[0] = i, ascending, inside the range); coalesce. */
  private replace(i: number, n: number, ns: number[], nv: number[]): void {
    const starts = this.starts!;
    const vals = this.vals!;
    const step = this.step;
    const j = Math.min(i + n, this.length);
    const a = this.find(i);
    const b = this.find(j - 1);
    const from = starts[a] < i ? a + 1 : a;
    const bEnd = b + 1 < starts.length ? starts[b + 1] : this.length;
    // Old runs [lo, hi] are replaced by `ms/mv`: the run before (kept as is), the new runs, what is left of run b
    // after j, the run after (kept as is); neighbours are included so that the result is coalesced in one go.
    const lo = from > 0 ? from - 1 : 0;
    const hi = b + 1 < starts.length ? b + 1 : b;
    const ms: number[] = [];
    const mv: number[] = [];
    const push = (s: number, v: number): void => {
      const k = ms.length - 1;
      if (k >= 0 && same(mv[k] + step * (s - ms[k]), v)) return;
      ms.push(s);
      mv.push(v);
    };
    if (from > 0) push(starts[from - 1], vals[from - 1]);
    for (let k = 0; k < ns.length; k++) push(ns[k], nv[k]);
    if (j < bEnd) push(j, vals[b] + step * (j - starts[b]));
    if (b + 1 < starts.length) push(starts[b + 1], vals[b + 1]);
    const del = hi + 1 - lo;
    if (ms.length + del < 4096) {
      starts.splice(lo, del, ...ms);
      vals.splice(lo, del, ...mv);
    } else {
      this.starts = starts.slice(0, lo).concat(ms, starts.slice(hi + 1));
      this.vals = vals.slice(0, lo).concat(mv, vals.slice(hi + 1));
    }
    this.hint = lo;
    this.maybeDense();
  }

  private maybeDense(): void {
    const runs = this.starts!.length;
    if (runs <= MIN_DENSE_RUNS || runs * DENSE_RATIO <= this.length) return;
    this.toDense();
  }

  private toDense(): void {
    const runs = this.starts!.length;
    const starts = this.starts!;
    const vals = this.vals!;
    let d: Dense;
    if (this.step === 0) d = new Uint8Array(this.length);
    else {
      let fits = true;
      for (let r = 0; r < runs && fits; r++) {
        const v = vals[r];
        const last = v + ((r + 1 < runs ? starts[r + 1] : this.length) - 1 - starts[r]);
        if (v === v && (!Number.isInteger(v) || v < 0 || last >= U32_NAN)) fits = false;
      }
      d = fits ? new Uint32Array(this.length) : new Float64Array(this.length);
    }
    this.dense = d;
    this.starts = null;
    this.vals = null;
    for (let r = 0; r < runs; r++) {
      const e = r + 1 < runs ? starts[r + 1] : this.length;
      const v = vals[r];
      if (this.step === 0 || v !== v) {
        this.fillDense(starts[r], e, v);
        continue;
      }
      for (let k = starts[r]; k < e; k++) this.denseSet(k, v + (k - starts[r]));
    }
  }

  // ------------------------------------------------------------------ dense mode

  private denseAt(d: Dense, i: number): number {
    const v = d[i];
    if (d instanceof Uint32Array && v === U32_NAN) return NaN;
    return v;
  }

  private fillDense(s: number, e: number, v: number): void {
    const d = this.dense!;
    if (d instanceof Uint32Array) d.fill(v !== v ? U32_NAN : v, s, e);
    else d.fill(v, s, e);
  }

  private denseSet(i: number, v: number): void {
    let d = this.dense!;
    if (d instanceof Uint32Array) {
      if (v !== v) {
        d[i] = U32_NAN;
        return;
      }
      if (!Number.isInteger(v) || v < 0 || v >= U32_NAN) {
        const f = new Float64Array(this.length);
        for (let k = 0; k < d.length; k++) f[k] = d[k] === U32_NAN ? NaN : d[k];
        this.dense = d = f;
      }
    }
    d[i] = v;
  }
}

/** Runs in values[offset, offset+n) (values advance by `step` within a run; NaN runs). */
function countRuns(values: Float64Array, offset: number, n: number, step: number): number {
  let runs = 1;
  for (let k = offset + 1; k < offset + n; k++) {
    const prev = values[k - 1];
    const v = values[k];
    if (!(v === prev + step || (v !== v && prev !== prev))) runs++;
  }
  return runs;
}

/**
 * Fills a PageRuns in page order from a reader that works in chunks (the pin-time pagemap snapshot): each chunk's
 * pages are folded into runs as they come, so a 64 GiB pin never needs a 16M-entry buffer.
 */
export class PageLoader {
  private next = 0;
  constructor(private readonly target: PageRuns) {
    target.reset(NaN);
  }

  /** Pages [page, page+count) hold value, value+step, … (page must not go backwards). */
  run(page: number, count: number, value: number): void {
    if (page < this.next || count <= 0) {
      if (count > 0) this.target.setRange(page, count, value);
      return;
    }
    if (page > this.next) this.target.appendRun(this.next, page - this.next, NaN);
    this.target.appendRun(page, count, value);
    this.next = page + count;
  }

  /** `n` values from `values[offset..]` for pages [page, page+n), folded into runs. */
  chunk(page: number, values: Float64Array, offset: number, n: number): void {
    const step = this.target.step;
    const t = this.target;
    if (page === this.next && n >= 64 && (t.isDense || countRuns(values, offset, n, step) * DENSE_RATIO > n)) {
      // Fragmented input: straight into the dense array, no runs built first.
      t.makeDense();
      t.writeDense(page, values, offset, n);
      this.next = page + n;
      return;
    }
    let s = 0;
    while (s < n) {
      const first = values[offset + s];
      let e = s + 1;
      if (first !== first) while (e < n && values[offset + e] !== values[offset + e]) e++;
      else while (e < n && values[offset + e] === first + step * (e - s)) e++;
      this.run(page + s, e - s, first);
      s = e;
    }
  }

  /** Pages not loaded at the end stay unknown (NaN). */
  finish(): PageRuns {
    if (this.next < this.target.length) this.target.appendRun(this.next, this.target.length - this.next, NaN);
    return this.target;
  }
}
