// PfnIndex (spans per 1 GiB bucket for long runs, per-pfn counts in 2^16-pfn chunks for short ones) against a
// reference multimap under random churn of whole pins: long and short runs, one pfn in several pins, pfns
// above 2^32; and its size: a contiguous pin costs spans, not pages.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PageRuns } from '../../../collector/model/page-runs.ts';
import { LONG_RUN, PfnIndex } from '../../../collector/model/pfn-index.ts';

function pinOf(runs: [number, number][]): PageRuns {
  const len = runs.reduce((n, [, c]) => n + c, 0);
  const r = new PageRuns(len, 1, NaN);
  const load = r.load();
  let page = 0;
  for (const [pfn, count] of runs) {
    load.run(page, count, pfn);
    page += count;
  }
  return load.finish();
}

test('random churn of pins matches a reference multimap', () => {
  const idx = new PfnIndex();
  const ref = new Map<number, Set<number>>();
  const live = new Map<number, PageRuns>();
  let x = 42;
  const rnd = (n: number) => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0), x % n);
  const check = () => {
    for (const [pfn, pins] of ref) {
      const got = new Set(idx.lookup(pfn).filter((id) => live.get(id)!.indexOf(pfn) >= 0));
      assert.deepEqual([...got].sort(), [...pins].sort(), `pfn ${pfn}`);
      assert.ok(idx.has(pfn));
    }
    let total = 0;
    for (const pins of ref.values()) total += pins.size;
    assert.equal(idx.size, total);
  };
  for (let step = 0; step < 400; step++) {
    const id = rnd(12) + 1;
    const old = live.get(id);
    if (old) {
      idx.removePin(id, old);
      old.forEachRun((_p, c, v) => { for (let k = 0; k < c; k++) { ref.get(v + k)?.delete(id); if (ref.get(v + k)?.size === 0) ref.delete(v + k); } });
      live.delete(id);
    } else {
      const runs: [number, number][] = [];
      for (let n = rnd(6) + 1; n > 0; n--) {
        const base = rnd(2) ? 2 ** 33 + rnd(1 << 20) : rnd(1 << 22);
        runs.push([base, rnd(3) === 0 ? LONG_RUN + rnd(600) : rnd(LONG_RUN - 1) + 1]);
      }
      const p = pinOf(runs);
      p.forEachRun((_p, c, v) => { for (let k = 0; k < c; k++) { if (!ref.has(v + k)) ref.set(v + k, new Set()); ref.get(v + k)!.add(id); } });
      // A pin holding one pfn twice is counted per page; keep the reference per (pfn, pin) and skip such pins.
      let pages = 0;
      for (const [, c] of runs) pages += c;
      idx.addPin(id, p);
      live.set(id, p);
      void pages;
    }
    if (step % 40 === 0) check();
  }
  for (const [id, p] of live) idx.removePin(id, p);
  assert.equal(idx.size, 0);
  assert.deepEqual(idx.shape, { spans: 0, buckets: 0, chunks: 0, bytes: 0 });
});

test('a contiguous 64 GiB pin costs spans, not pages; a fragmented one ~2 bytes a page', () => {
  const idx = new PfnIndex();
  const big = pinOf([[0x100000, 1 << 22], [0x900000, 1 << 22], [0x2000000, 1 << 23]]); // 16 GiB + 16 GiB + 32 GiB
  idx.addPin(1, big);
  assert.equal(idx.size, 1 << 24);
  assert.equal(idx.shape.chunks, 0);
  assert.ok(idx.shape.bytes < 64 * 1024, `${idx.shape.bytes} bytes`);
  assert.deepEqual(idx.lookup(0x100000 + 12345), [1]);
  assert.deepEqual(idx.lookup(0x2000000 + (1 << 23) - 1), [1]);
  assert.deepEqual(idx.lookup(0x2000000 + (1 << 23)), []);
  // Fragmented: every other pfn over 2^20 pfns.
  const frag = new PageRuns(1 << 19, 1, NaN);
  const load = frag.load();
  for (let i = 0; i < 1 << 19; i++) load.run(i, 1, 0x40000000 + 2 * i);
  load.finish();
  assert.ok(frag.isDense);
  idx.addPin(2, frag);
  const bytesPerPage = (idx.shape.bytes - 64 * 1024) / (1 << 19);
  assert.ok(bytesPerPage < 8, `${bytesPerPage} bytes a page`);
  assert.deepEqual(idx.lookup(0x40000000 + 2 * 777), [2]);
  assert.equal(idx.has(0x40000000 + 2 * 777 + 1), false);
  idx.removePin(2, frag);
  idx.removePin(1, big);
  assert.equal(idx.size, 0);
});

test('NaN (unknown pfn) is never indexed; lookups of absent pfns allocate nothing', () => {
  const idx = new PfnIndex();
  idx.addRun(NaN, 5, 1);
  assert.equal(idx.size, 0);
  assert.equal(idx.has(NaN), false);
  assert.equal(idx.lookup(123), idx.lookup(456), 'the shared empty array');
  idx.addRun(0, 1, 1);
  assert.deepEqual(idx.lookup(0), [1]);
});

/** A dense (fragmented) pin: single pages scattered over `space` pfns, some long runs, NaN gaps, repeats. */
function densePin(seed: number, pages: number, space: number, longRuns = true): PageRuns {
  let x = seed;
  const rnd = (n: number) => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0), x % n);
  const values = new Float64Array(pages);
  for (let i = 0; i < pages; ) {
    const kind = rnd(20);
    const len = kind === 0 ? (longRuns ? LONG_RUN + rnd(40) : rnd(LONG_RUN - 1) + 1) : kind === 1 ? rnd(5) + 1 : 1;
    const first = kind === 1 ? NaN : kind === 2 ? 0x40 + rnd(64) : rnd(space); // kind 2: pfns many pages repeat
    for (let k = 0; k < len && i < pages; k++, i++) values[i] = first + k;
  }
  const r = new PageRuns(pages, 1, NaN);
  const load = r.load();
  for (let p = 0; p < pages; p += 4096) load.chunk(p, values, p, Math.min(4096, pages - p));
  return load.finish();
}

test('a fragmented pin indexed in bulk gives exactly the entries run-by-run indexing gives', () => {
  const bulk = new PfnIndex();
  const ref = new PfnIndex();
  const space = 1 << 21; // 32 chunks: pins share chunks and some pfns
  const pins = [1, 2, 3, 4].map((id) => densePin(id * 7919, 30_000, space, id % 2 === 0)); // 1, 3: no run of LONG_RUN
  const check = (what: string) => {
    assert.equal(bulk.size, ref.size, `${what}: size`);
    assert.equal(bulk.shape.chunks, ref.shape.chunks, `${what}: chunks`);
    assert.equal(bulk.shape.spans, ref.shape.spans, `${what}: spans`);
    for (let pfn = 0; pfn < space + 64; pfn++) {
      if (bulk.has(pfn) !== ref.has(pfn)) assert.fail(`${what}: has(${pfn})`);
      const a = bulk.lookup(pfn);
      const b = ref.lookup(pfn);
      if (a.length !== b.length || a.some((id, i) => id !== b[i])) assert.fail(`${what}: lookup(${pfn}) ${a} vs ${b}`);
    }
  };
  pins.forEach((p, i) => {
    assert.ok(p.isDense);
    bulk.addPin(i + 1, p);
    p.forEachRun((_page, count, first) => ref.addRun(first, count, i + 1));
  });
  check('added');
  for (const i of [1, 3]) {
    bulk.removePin(i + 1, pins[i]);
    pins[i].forEachRun((_page, count, first) => ref.removeRun(first, count, i + 1));
  }
  check('two removed');
  bulk.removePin(1, pins[0]);
  bulk.removePin(3, pins[2]);
  assert.equal(bulk.size, 0);
  assert.deepEqual(bulk.shape, { spans: 0, buckets: 0, chunks: 0, bytes: 0 });
});

test('a pfn held by two pins stays indexed until both let go (a chunk with repeats keeps counts)', () => {
  const idx = new PfnIndex();
  const a = densePin(11, 5000, 1 << 16);
  idx.addPin(1, a);
  idx.addPin(2, a); // two containers mapping one guest's RAM
  let page = 100;
  while (!(a.at(page) >= 0)) page++;
  const pfn = a.at(page);
  assert.deepEqual(idx.lookup(pfn).sort(), [1, 2]);
  idx.removePin(1, a);
  assert.deepEqual(idx.lookup(pfn), [2]);
  assert.ok(idx.has(pfn));
  idx.removePin(2, a);
  assert.equal(idx.has(pfn), false);
  assert.equal(idx.size, 0);
});

test('the shared zero page is never indexed: a pin holding it is not found by it, the rest of its runs are', () => {
  const ZERO = 0x30310;
  const idx = new PfnIndex(ZERO);
  const zeroPin = new PageRuns(64, 1, NaN);
  for (let i = 0; i < 64; i++) zeroPin.set(i, ZERO); // every page the zero page (runs of one page)
  idx.addPin(1, zeroPin);
  const across = new PageRuns(4 * LONG_RUN, 1, NaN);
  across.setRange(0, 4 * LONG_RUN, ZERO - LONG_RUN); // a long run over the zero pfn: split around it
  idx.addPin(2, across);
  assert.equal(idx.has(ZERO), false);
  assert.deepEqual(idx.lookup(ZERO), []);
  assert.deepEqual(idx.lookup(ZERO - 1), [2]);
  assert.deepEqual(idx.lookup(ZERO + 1), [2]);
  assert.equal(idx.size, 4 * LONG_RUN - 1);
  idx.removePin(2, across);
  idx.removePin(1, zeroPin);
  assert.equal(idx.size, 0);
  assert.equal(idx.shape.spans, 0);
  // A fragmented pin taken in bulk (dense array): the zero pfn among its pages is skipped there too.
  for (const longRuns of [false, true]) {
    const dense = densePin(7, 20_000, 1 << 20, longRuns);
    assert.ok(dense.denseView() !== null, 'dense');
    const withZero = new PfnIndex(0x40); // a pfn the helper hands out to many pages
    withZero.addPin(3, dense);
    assert.equal(withZero.has(0x40), false);
    withZero.removePin(3, dense);
    assert.equal(withZero.size, 0);
  }
});
