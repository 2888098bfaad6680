// pin-pte-divergence: confirmed from pagemap, inferred from events, once per (pin, page); silent when the
// pages follow an mremap, when a shared mapping refaults its own page, and on a clean registration.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MADV, MREMAP_FIXED, MREMAP_MAYMOVE } from '../../../schema/kernel.ts';
import { BUF, Harness, PAGE } from '../pipeline/harness.ts';
import { pageAt } from '../../../schema/pin-runs.ts';

describe('pin-pte-divergence', () => {
  test('DONTNEED + write on a registered anon buffer: confirmed at the zapped page, once', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x125bc0);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.tick(300);
    h.pagemap.unmap(100, BUF + PAGE); // the kernel zapped it before we saw the event
    h.feed(h.ev.madvise(100, BUF + PAGE, PAGE, MADV.DONTNEED));
    h.pagemap.map(100, BUF + PAGE, 0x11fca8); // the process wrote: a fresh page
    h.feed(h.ev.fault(100, BUF + PAGE + 8, true));
    h.tick(20);
    const d = h.sink.of('pin-pte-divergence');
    assert.equal(d.length, 1);
    assert.equal(d[0].addr, BUF + PAGE);
    assert.equal(d[0].pid, 100);
    assert.equal(d[0].confirmed, true);
    assert.equal(d[0].pfn, 0x125bc1);
    assert.equal(d[0].newPfn, 0x11fca8);
    assert.equal(d[0].severity, 'critical');
    assert.equal(d[0].len, PAGE);
    assert.ok(d[0].pinId !== null);
    const kinds = d[0].evidence.map((x) => (x.type === 'event' ? `event:${h.sink.events.find((e) => e.seq === x.seq)?.kind}` : 'pagemap'));
    assert.deepEqual(kinds, ['event:pin_result', 'pagemap', 'event:madvise', 'event:fault', 'pagemap']);
    // More reads, more faults: still one.
    h.feed(h.ev.fault(100, BUF + PAGE, true, true));
    h.tick(3100); // past the teardown window on a silent stream (rules/sources/teardown.ts)
    h.c.verifyNow();
    assert.equal(h.sink.of('pin-pte-divergence').length, 1);
    assert.deepEqual(h.sink.summary(100), [`pin-pte-divergence @0x${(BUF + PAGE).toString(16)} confirmed`, `pinned-range-zapped @0x${(BUF + PAGE).toString(16)} confirmed`]);
  });

  test('the periodic pass alone finds a divergence no event announced', () => {
    const h = new Harness({ config: { verifyIntervalMs: 500 } }).anonBuffer(100, BUF, 2, 0x1000);
    h.registerRing(100, 5, [[BUF, 2 * PAGE]]);
    h.pagemap.map(100, BUF, 0x5000); // e.g. a lost event
    h.tick(500);
    const d = h.sink.of('pin-pte-divergence');
    assert.equal(d.length, 1);
    assert.equal(d[0].confirmed, true);
  });

  test('zap + write then exit before the read: inferred', () => {
    const h = new Harness().anonBuffer(100, BUF, 2, 0x1000);
    h.registerRing(100, 5, [[BUF, 2 * PAGE]]);
    h.feed(h.ev.madvise(100, BUF, PAGE, MADV.DONTNEED), h.ev.fault(100, BUF, true));
    h.pagemap.kill(100);
    h.feed(h.ev.exit(100));
    const d = h.sink.of('pin-pte-divergence');
    assert.equal(d.length, 1);
    assert.equal(d[0].confirmed, false);
    assert.equal(d[0].addr, BUF);
    assert.equal(d[0].newPfn, null);
    assert.match(d[0].summary, /inferred/);
  });

  test('a late pin-time snapshot: the difference is only inferred', () => {
    const h = new Harness().anonBuffer(100, BUF, 2, 0x1000);
    h.feed(h.ev.iovec(100, 5, 0, BUF, 2 * PAGE));
    h.time.set(h.time.nowNs() + 1000);
    const result = h.ev.pinResult(100, 5, 1, 0);
    h.time.set(result.tsNs + 3_000_000); // we read pagemap 3 ms late
    h.feed(result);
    const zap = h.ev.madvise(100, BUF, PAGE, MADV.DONTNEED);
    zap.tsNs = result.tsNs + 1_000_000; // ran before our read
    h.feed(zap);
    h.pagemap.map(100, BUF, 0x7000);
    h.tick(20);
    const d = h.sink.of('pin-pte-divergence');
    assert.equal(d.length, 1);
    assert.equal(d[0].confirmed, false);
  });

  test('silent: mremap moves the buffer, the pinned pages follow', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    const DST = BUF + 0x1000_0000;
    h.maps.add(100, DST, DST + 4 * PAGE);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.tick(300);
    h.pagemap.unmap(100, BUF, 4).map(100, DST, 0x1000, 4);
    h.feed(h.ev.mremap(100, BUF, 4 * PAGE, 4 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, DST, DST));
    h.feed(h.ev.fault(100, DST, true, true));
    h.tick(20);
    h.c.verifyNow();
    assert.deepEqual(h.sink.of('pin-pte-divergence'), []);
    assert.deepEqual(h.sink.summary(), [], 'a move is neither a zap nor a divergence');
    const pin = h.c.pins()[0];
    assert.equal(pageAt(pin.runs, 0)?.mappedAddr, DST);
    assert.equal(pin.state, 'intact');
  });

  test('silent: DONTNEED on a shared memfd refaults the same page-cache page', () => {
    const h = new Harness();
    h.maps.add(100, BUF, BUF + 4 * PAGE, '/memfd:buf (deleted)', true);
    h.pagemap.map(100, BUF, 0x1000, 4);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.pagemap.unmap(100, BUF);
    h.feed(h.ev.madvise(100, BUF, PAGE, MADV.DONTNEED));
    h.pagemap.map(100, BUF, 0x1000);
    h.feed(h.ev.fault(100, BUF, true));
    h.pastTeardown();
    assert.equal(h.sink.of('pin-pte-divergence').length, 0);
    assert.equal(h.sink.of('pinned-range-zapped').length, 1, 'the PTE was removed all the same');
  });

  test('silent: a clean registration, use and unregister', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.tick(1000);
    h.feed(h.ev.pinResult(100, 5, 0, 0, { opcode: 1 }), h.ev.exit(100));
    h.c.verifyNow();
    assert.deepEqual(h.sink.anomalies, []);
  });
});
