// A verdict must hold at the moment of its read (verify/settle.ts). The mm/cow.c pattern: a pin is released
// (pipe closed / buffer unregistered), the next test re-mmaps the same address 1-3 ms later, and only then does
// a pagemap read of the old pin come back — before the stream has delivered the release. Without settling
// the read "confirms" a divergence against a page that was never pinned.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MADV } from '../../../schema/kernel.ts';
import { BUF, Harness, PAGE } from '../pipeline/harness.ts';

const SETTLE = { readSettleMs: 250 };

describe('read settling (stale pagemap reads)', () => {
  test('pin released + range re-mmapped before the stream shows it: the stale read raises nothing', () => {
    const h = new Harness({ config: SETTLE }).anonBuffer(100, BUF, 4, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.tick(5);
    // The kernel: unregister at t, munmap, then the next test maps a fresh page at the same address (t+2 ms).
    const unregister = h.ev.pinResult(100, 5, 0, 0, { opcode: 1 });
    h.time.set(h.time.nowNs() + 1_000_000);
    const munmap = h.ev.munmap(100, BUF, 4 * PAGE);
    h.time.set(h.time.nowNs() + 2_000_000);
    h.pagemap.unmap(100, BUF, 4).map(100, BUF, 0x9000, 4);
    // The collector, behind: its periodic pass reads the (still live, in its view) pin now.
    h.tick(500);
    assert.equal(h.sink.reads.filter((r) => r.reason === 'timer').length > 0, true, 'the stale read happened');
    h.feed(unregister, munmap);
    h.tick(300);
    h.c.verifyNow();
    assert.deepEqual(h.sink.summary(100), []);
    assert.equal(h.c.verifier.settleStats.dropped, 4);
  });

  test('exit before the stream shows it: a read after the pid was reused by nothing still raises nothing', () => {
    const h = new Harness({ config: SETTLE }).anonBuffer(100, BUF, 1, 0x1000);
    h.registerRing(100, 5, [[BUF, PAGE]]);
    const exit = h.ev.exit(100);
    h.pagemap.map(100, BUF, 0x2000); // whatever pagemap shows after the kernel's exit and a new mapping
    h.tick(500);
    h.feed(exit);
    h.tick(300);
    assert.deepEqual(h.sink.summary(100), []);
  });

  test('exec before the stream shows it: pagemap now describes the new program; the read raises nothing', () => {
    const h = new Harness({ config: SETTLE }).anonBuffer(100, BUF, 1, 0x1000);
    h.registerRing(100, 5, [[BUF, PAGE]]);
    const exec = { kind: 'exec' as const, tsNs: h.time.nowNs(), pid: 100, tid: 100, comm: 'sh' };
    h.pagemap.map(100, BUF, 0x3000); // the new program's page at the same address
    h.tick(500);
    h.feed(exec);
    h.tick(300);
    assert.deepEqual(h.sink.summary(100), []);
    assert.equal(h.c.pins().length, 0, 'exec ended the pin');
  });

  test('a real divergence still confirms: the pin lives when the stream passes the read', () => {
    const h = new Harness({ config: SETTLE }).anonBuffer(100, BUF, 2, 0x1000);
    h.registerRing(100, 5, [[BUF, 2 * PAGE]]);
    h.tick(5);
    h.pagemap.unmap(100, BUF);
    h.feed(h.ev.madvise(100, BUF, PAGE, MADV.DONTNEED));
    h.pagemap.map(100, BUF, 0x7000);
    h.feed(h.ev.fault(100, BUF, true));
    h.tick(20); // the read: held until the stream passes it
    assert.equal(h.sink.of('pin-pte-divergence').length, 0);
    h.tick(5);
    h.feed(h.ev.madvise(100, BUF + 64 * PAGE, PAGE, MADV.DONTNEED)); // any later event: the stream passed the read
    const d = h.sink.of('pin-pte-divergence');
    assert.equal(d.length, 1);
    assert.equal(d[0].confirmed, true);
    assert.equal(d[0].newPfn, 0x7000);
  });

  test('with no later event the verdict is delivered after the hold', () => {
    const h = new Harness({ config: SETTLE }).anonBuffer(100, BUF, 1, 0x1000);
    h.registerRing(100, 5, [[BUF, PAGE]]);
    h.pagemap.map(100, BUF, 0x5000);
    h.tick(500); // periodic read: held
    assert.equal(h.sink.of('pin-pte-divergence').length, 0);
    h.tick(250);
    assert.equal(h.sink.of('pin-pte-divergence').length, 1);
  });

  test('a zap between the read and the stream catching up: the verdict is dropped and the page read again', () => {
    const h = new Harness({ config: SETTLE }).anonBuffer(100, BUF, 1, 0x1000);
    h.registerRing(100, 5, [[BUF, PAGE]]);
    h.tick(5);
    const zap = h.ev.madvise(100, BUF, PAGE, MADV.DONTNEED); // ran in the kernel before the read
    h.pagemap.map(100, BUF, 0x5000);
    h.tick(495); // periodic read: held
    h.feed(zap); // the zap arrives: the held verdict is void, a re-read is scheduled
    const reads = h.sink.reads.length;
    h.tick(20);
    assert.ok(h.sink.reads.length > reads, 're-read');
    h.tick(300);
    assert.equal(h.sink.of('pin-pte-divergence').length, 1, 'the re-read (pin still live) confirms');
  });
});
