// PfnIndex (open addressing on typed arrays) against a reference Map under random churn: adds, removes,
// duplicates (one pfn in several pins), pfns above 2^32, growth and shrinking.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PfnIndex } from '../../../collector/model/pin-record.ts';

test('random churn matches a reference multimap', () => {
  const idx = new PfnIndex(16);
  const ref = new Map<number, Set<number>>();
  let x = 42;
  const rnd = (n: number) => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0), x % n);
  const pfnOf = (k: number) => (k % 3 === 0 ? 2 ** 33 + k * 4097 : k * 7919); // some above 2^32
  for (let step = 0; step < 60_000; step++) {
    const pfn = pfnOf(rnd(5000));
    const pin = rnd(4);
    if (rnd(3) < 2) {
      idx.add(pfn, pin);
      if (!ref.has(pfn)) ref.set(pfn, new Set());
      ref.get(pfn)!.add(pin);
    } else {
      idx.remove(pfn, pin);
      ref.get(pfn)?.delete(pin);
      if (ref.get(pfn)?.size === 0) ref.delete(pfn);
    }
    if (step % 997 === 0) {
      let total = 0;
      for (const [k, pins] of ref) {
        total += pins.size;
        assert.deepEqual(idx.lookup(k).sort(), [...pins].sort(), `pfn ${k} at step ${step}`);
        assert.ok(idx.has(k));
      }
      assert.equal(idx.size, total);
    }
  }
  for (const [k, pins] of ref) for (const p of pins) idx.remove(k, p);
  assert.equal(idx.size, 0);
  assert.equal(idx.capacity, 16, 'shrinks back when emptied');
  assert.deepEqual(idx.lookup(pfnOf(3)), []);
});

test('NaN (unknown pfn) is never indexed; lookups of absent pfns allocate nothing', () => {
  const idx = new PfnIndex();
  idx.add(NaN, 1);
  assert.equal(idx.size, 0);
  assert.equal(idx.has(NaN), false);
  assert.equal(idx.lookup(123), idx.lookup(456), 'the shared empty array');
  idx.add(0, 1);
  assert.deepEqual(idx.lookup(0), [1]);
});
