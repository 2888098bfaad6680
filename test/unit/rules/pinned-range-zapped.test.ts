// pinned-range-zapped: one per zapping syscall per pin, at the first zapped pinned page, only on success;
// confirmed when pagemap right away no longer shows the pinned pfn.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MADV, MREMAP_FIXED, MREMAP_MAYMOVE } from '../../../schema/kernel.ts';
import { BUF, Harness, PAGE } from '../pipeline/harness.ts';

const hex = (n: number) => '0x' + n.toString(16);

describe('pinned-range-zapped', () => {
  test('DONTNEED wider than the pin: one anomaly at the first pinned page, the pinned length, confirmed', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.pagemap.unmap(100, BUF + PAGE, 2);
    h.feed(h.ev.madvise(100, BUF - 2 * PAGE, 8 * PAGE, MADV.DONTNEED)); // starts before the pin, ends after it
    h.pastTeardown();
    const z = h.sink.of('pinned-range-zapped');
    assert.equal(z.length, 1);
    assert.equal(z[0].addr, BUF, 'first zapped pinned page');
    assert.equal(z[0].len, 4 * PAGE);
    assert.equal(z[0].confirmed, true, 'pages 1-2 are gone from pagemap');
    assert.equal(z[0].pfn, 0x1000);
    assert.equal(z[0].severity, 'high');
    assert.ok(h.sink.reads.some((r) => r.reason === 'MADV_DONTNEED'), 'the confirming reads are published');
  });

  test('the same pinned page zapped in a loop: one finding, a different page: another', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.pagemap.unmap(100, BUF + PAGE, 2);
    for (let i = 0; i < 50; i++) h.feed(h.ev.madvise(100, BUF + PAGE, PAGE, MADV.DONTNEED));
    h.feed(h.ev.madvise(100, BUF + 2 * PAGE, PAGE, MADV.DONTNEED));
    h.pastTeardown();
    assert.deepEqual(h.sink.summary(100), [`pinned-range-zapped @${hex(BUF + PAGE)} confirmed`, `pinned-range-zapped @${hex(BUF + 2 * PAGE)} confirmed`].sort());
  });

  test('zap in the middle of the pin: addr is that page', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.pagemap.unmap(100, BUF + 2 * PAGE);
    h.feed(h.ev.madvise(100, BUF + 2 * PAGE, PAGE, MADV.DONTNEED));
    h.pastTeardown();
    assert.deepEqual(h.sink.summary(100), [`pinned-range-zapped @${hex(BUF + 2 * PAGE)} confirmed`]);
  });

  test('munmap, mmap(MAP_FIXED) and mremap shrink each fire; the pagemap still showing the page means not confirmed', () => {
    const h = new Harness().anonBuffer(100, BUF, 8, 0x1000);
    h.registerRing(100, 5, [[BUF, 8 * PAGE]]);
    h.feed(h.ev.munmap(100, BUF + 7 * PAGE, PAGE));
    h.feed(h.ev.mmapFixed(100, BUF + 6 * PAGE, PAGE));
    h.feed(h.ev.mremap(100, BUF, 6 * PAGE, 5 * PAGE, 0, BUF));
    h.pastTeardown();
    const z = h.sink.of('pinned-range-zapped');
    assert.deepEqual(z.map((a) => a.addr), [BUF + 7 * PAGE, BUF + 6 * PAGE, BUF + 5 * PAGE]);
    assert.ok(z.every((a) => a.confirmed === false));
    assert.match(z[2].summary, /mremap shrink/);
  });

  test('two pins on the range: one anomaly each', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.registerRing(100, 6, [[BUF + 2 * PAGE, 2 * PAGE]]);
    h.feed(h.ev.madvise(100, BUF, 4 * PAGE, MADV.DONTNEED));
    h.pastTeardown();
    assert.deepEqual(h.sink.of('pinned-range-zapped').map((a) => a.addr), [BUF, BUF + 2 * PAGE]);
  });

  test('silent: failed syscalls, other processes, unpinned ranges, non-zapping advice', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.feed(
      h.ev.madvise(100, BUF, PAGE, MADV.DONTNEED, -22),
      h.ev.munmap(100, BUF, PAGE, -22),
      h.ev.mremap(100, BUF, 4 * PAGE, 4 * PAGE, MREMAP_MAYMOVE, -12),
      h.ev.madvise(101, BUF, PAGE, MADV.DONTNEED),
      h.ev.madvise(100, BUF + 4 * PAGE, PAGE, MADV.DONTNEED),
      h.ev.madvise(100, BUF, PAGE, MADV.HUGEPAGE),
      h.ev.madvise(100, BUF, PAGE, MADV.DONTFORK),
    );
    assert.deepEqual(h.sink.anomalies, []);
  });

  test('mremap moving the buffer is not a zap: the pinned pages follow, silent, pin intact at its new address', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    const DST = BUF + 0x1000_0000;
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.pagemap.unmap(100, BUF, 4).map(100, DST, 0x1000, 4);
    h.feed(h.ev.mremap(100, BUF, 4 * PAGE, 4 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, DST, DST));
    h.feed(h.ev.mremap(100, DST + 2 * PAGE, 2 * PAGE, 2 * PAGE, MREMAP_MAYMOVE, DST + 0x100000));
    assert.deepEqual(h.sink.anomalies, []);
    assert.equal(h.c.pins()[0].state, 'intact', 'moved, not zapped');
  });

  test('MADV_PAGEOUT / MADV_FREE that left the pinned pages mapped (reclaim skips pinned pages): silent', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.feed(h.ev.madvise(100, BUF, 4 * PAGE, MADV.PAGEOUT), h.ev.madvise(100, BUF, 4 * PAGE, MADV.FREE));
    assert.deepEqual(h.sink.anomalies, []);
    assert.equal(h.c.pins()[0].state, 'intact');
  });

  test('MADV_PAGEOUT that did swap a referenced page out: confirmed, and the page is marked zapped', () => {
    const h = new Harness();
    h.maps.add(100, BUF, BUF + 2 * PAGE);
    h.pagemap.map(100, BUF, 0x1000, 2);
    h.feed(h.ev.iovec(100, 4, 0, BUF, 2 * PAGE, { source: 'vmsplice' }), h.ev.pinResult(100, 4, 1, 2 * PAGE, { source: 'vmsplice' }));
    h.pagemap.swapOut(100, BUF + PAGE);
    h.feed(h.ev.madvise(100, BUF, 2 * PAGE, MADV.PAGEOUT));
    const z = h.sink.of('pinned-range-zapped');
    assert.equal(z.length, 1);
    assert.equal(z[0].addr, BUF, 'first page of the advised pinned range');
    assert.equal(z[0].confirmed, true);
    const pin = h.c.pins()[0];
    assert.equal(pin.state, 'zapped');
  });

  test('silent: a zap that ran inside the registering syscall (may predate the pin)', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    const iov = h.ev.iovec(100, 5, 0, BUF, 4 * PAGE);
    h.feed(iov);
    h.time.set(h.time.nowNs() + 10_000);
    h.feed(h.ev.pinResult(100, 5, 1, 0));
    const z = h.ev.madvise(100, BUF, PAGE, MADV.DONTNEED);
    z.tsNs = iov.tsNs + 5000;
    h.feed(z);
    assert.equal(h.sink.of('pinned-range-zapped').length, 0);
  });
});
