// PageRuns against a plain array under random edits (set, setRange, orRange, setValues) in run and dense mode,
// the dense fallback, pfn → page lookups, and the loader folding chunks into runs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PageRuns } from '../../../collector/model/page-runs.ts';

const same = (a: number, b: number) => a === b || (Number.isNaN(a) && Number.isNaN(b));

function assertMatches(r: PageRuns, ref: number[], what: string): void {
  for (let i = 0; i < ref.length; i++) assert.ok(same(r.at(i), ref[i]), `${what}: page ${i}: ${r.at(i)} != ${ref[i]}`);
  // runs cover the pages exactly and agree with at()
  let next = 0;
  r.forEachRun((page, count, v) => {
    assert.equal(page, next);
    for (let k = 0; k < count; k++) assert.ok(same(ref[page + k], r.step === 0 ? v : v + k), `${what}: run at ${page}`);
    next = page + count;
  });
  assert.equal(next, ref.length);
}

for (const step of [0, 1] as const) {
  test(`random edits match a reference array (step ${step})`, () => {
    let x = 7 + step;
    const rnd = (n: number) => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0), x % n);
    for (let round = 0; round < 20; round++) {
      const len = 1 + rnd(400);
      const fill = step === 1 ? NaN : 0;
      const r = new PageRuns(len, step, fill);
      const ref = new Array<number>(len).fill(fill);
      const val = () => (step === 0 ? rnd(8) : rnd(5) === 0 ? NaN : rnd(50) * 1000);
      for (let op = 0; op < 300; op++) {
        const i = rnd(len);
        const n = 1 + rnd(Math.min(len - i, rnd(4) === 0 ? len : 8));
        switch (rnd(4)) {
          case 0: {
            const v = val();
            r.set(i, v);
            ref[i] = v;
            break;
          }
          case 1: {
            const v = val();
            r.setRange(i, n, v);
            for (let k = 0; k < n; k++) ref[i + k] = Number.isNaN(v) ? NaN : v + step * k;
            break;
          }
          case 2: {
            if (step !== 0) break;
            const bits = 1 << rnd(4);
            const before = ref.slice(i, i + n).filter((f) => (f & bits) === 0).length;
            assert.equal(r.orRange(i, n, bits), before);
            for (let k = 0; k < n; k++) ref[i + k] |= bits;
            break;
          }
          default: {
            const vs = new Float64Array(n);
            const base = val();
            for (let k = 0; k < n; k++) vs[k] = rnd(3) === 0 ? val() : Number.isNaN(base) ? NaN : base + step * k;
            r.setValues(i, vs, n);
            for (let k = 0; k < n; k++) ref[i + k] = vs[k];
          }
        }
      }
      assertMatches(r, ref, `round ${round} (len ${len}, ${r.isDense ? 'dense' : `${r.runCount} runs`})`);
    }
  });
}

test('a contiguous pin is one run; splitting one page out of it makes three', () => {
  const r = new PageRuns(1 << 24, 1, NaN);
  r.setRange(0, 1 << 24, 0x100000);
  assert.equal(r.runCount, 1);
  assert.equal(r.at(12345), 0x100000 + 12345);
  assert.equal(r.runEnd(5), 1 << 24);
  r.set(1000, 0x9999);
  assert.equal(r.runCount, 3);
  assert.equal(r.runEnd(0), 1000);
  assert.equal(r.runEnd(1000), 1001);
  assert.equal(r.at(1001), 0x100000 + 1001);
  r.set(1000, 0x100000 + 1000); // back: the runs merge again
  assert.equal(r.runCount, 1);
  assert.ok(r.bytes < 64);
});

test('indexOf finds the page holding a pfn, per run and when dense', () => {
  const r = new PageRuns(1000, 1, NaN);
  r.setRange(0, 500, 0x5000);
  r.setRange(500, 500, 0x1000);
  assert.equal(r.indexOf(0x5000 + 499), 499);
  assert.equal(r.indexOf(0x1000 + 3), 503);
  assert.equal(r.indexOf(0x5000 + 500), -1);
  assert.equal(r.indexOf(NaN), -1);
  for (let i = 0; i < 1000; i += 2) r.set(i, 0x90000 + 7 * i); // every other page alone: dense
  assert.ok(r.isDense);
  assert.equal(r.indexOf(0x90000 + 7 * 20), 20);
  assert.equal(r.indexOf(0x1000 + 3), 503);
});

test('dense fallback: more runs than a third of the pages; pfns above 2^32 widen the array', () => {
  const r = new PageRuns(300, 1, NaN);
  for (let i = 0; i < 300; i += 6) r.set(i, 10 * i);
  assert.equal(r.isDense, false);
  assert.equal(r.runCount, 100);
  r.set(1, 5);
  assert.ok(r.isDense);
  assert.equal(r.bytes, 300 * 4, 'u32 while pfns fit');
  assert.ok(Number.isNaN(r.at(2)));
  r.set(7, 2 ** 40 + 1);
  assert.equal(r.at(7), 2 ** 40 + 1);
  assert.equal(r.bytes, 300 * 8);
  assert.equal(r.at(6), 60);
  assert.ok(Number.isNaN(r.at(2)));
  const flags = new PageRuns(30, 0, 0);
  for (let i = 0; i < 30; i += 2) flags.orRange(i, 1, 4);
  assert.ok(flags.isDense);
  assert.equal(flags.bytes, 30);
  assert.equal(flags.runEnd(0), 1);
});

test('the loader folds chunks into runs, gaps and the tail unknown', () => {
  const r = new PageRuns(2000, 1, 0);
  const load = r.load();
  const a = new Float64Array(1000);
  for (let i = 0; i < 1000; i++) a[i] = i < 512 ? 0x200 + i : i < 600 ? NaN : 0x8000 + i;
  load.chunk(0, a, 0, 1000);
  load.chunk(1000, a, 0, 500);
  load.finish();
  assert.equal(r.runCount, 5);
  assert.equal(r.at(511), 0x200 + 511);
  assert.ok(Number.isNaN(r.at(599)));
  assert.equal(r.at(999), 0x8000 + 999);
  assert.equal(r.at(1000), 0x200);
  assert.ok(Number.isNaN(r.at(1999)));
});

test('a fragmented chunk written in bulk holds exactly what a page-by-page fill holds (NaN, widening past 2^32)', () => {
  const n = 5000;
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = i % 97 === 0 ? NaN : ((i * 40503) % 65521) + (i % 3 === 0 ? 0 : 1_000_000);
  values[4000] = 2 ** 33 + 5; // widens the u32 array mid-chunk
  const bulk = new PageRuns(n, 1, NaN);
  const load = bulk.load();
  load.chunk(0, values, 0, 3000); // fragmented: straight into the dense array
  load.chunk(3000, values, 3000, n - 3000);
  load.finish();
  assert.ok(bulk.isDense);
  const byPage = new PageRuns(n, 1, NaN);
  for (let i = 0; i < n; i++) byPage.set(i, values[i]);
  assert.ok(byPage.isDense);
  for (let i = 0; i < n; i++) assert.ok(Object.is(bulk.at(i), byPage.at(i)) || (Number.isNaN(bulk.at(i)) && Number.isNaN(byPage.at(i))), `page ${i}`);
  assert.equal(bulk.bytes, n * 8, 'widened to f64 by the pfn above 2^32');
  assert.deepEqual(bulk.denseView()?.nan, NaN);
});
