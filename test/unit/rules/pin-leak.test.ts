// pin-leak: a pin outlives its mapping (munmap / MAP_FIXED / mremap shrink), its process (another process
// still holds the fd), or pinMaxAgeS. Once per pin and reason.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MADV, MREMAP_FIXED, MREMAP_MAYMOVE } from '../../../schema/kernel.ts';
import { BUF, Harness, PAGE } from '../pipeline/harness.ts';

const hex = (n: number) => '0x' + n.toString(16);

describe('pin-leak', () => {
  test('the uring-munmap scenario: munmap of the 2nd page while registered', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.tick(300);
    h.pagemap.unmap(100, BUF + PAGE);
    h.feed(h.ev.munmap(100, BUF + PAGE, PAGE));
    h.tick(1500);
    h.feed(h.ev.pinResult(100, 5, 0, 0, { opcode: 1 }), h.ev.exit(100));
    h.c.verifyNow();
    const gone = hex(BUF + PAGE);
    assert.deepEqual(h.sink.summary(100), [`pin-leak @${gone}`, `pinned-range-zapped @${gone} confirmed`]);
    const l = h.sink.of('pin-leak')[0];
    assert.equal(l.severity, 'warning');
    assert.equal(l.pfn, 0x1001);
    assert.equal(l.len, PAGE);
  });

  test('once per pin; mmap(MAP_FIXED) and mremap shrink count as unmapping', () => {
    const h = new Harness().anonBuffer(100, BUF, 8, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE], [BUF + 4 * PAGE, 4 * PAGE]]);
    h.feed(h.ev.mmapFixed(100, BUF + 2 * PAGE, PAGE), h.ev.munmap(100, BUF + 3 * PAGE, PAGE));
    h.feed(h.ev.mremap(100, BUF + 4 * PAGE, 4 * PAGE, 2 * PAGE, 0, BUF + 4 * PAGE));
    h.pastTeardown();
    assert.deepEqual(h.sink.of('pin-leak').map((a) => a.addr), [BUF + 2 * PAGE, BUF + 6 * PAGE]);
  });

  test('the owner exits while its fork child still holds the ring fd', () => {
    const h = new Harness().anonBuffer(100, BUF, 2, 0x1000);
    h.feed(h.ev.madvise(100, BUF, 2 * PAGE, MADV.DONTFORK));
    h.registerRing(100, 5, [[BUF, 2 * PAGE]]);
    h.feed(h.ev.fork(100, 101), h.ev.exit(100));
    const l = h.sink.of('pin-leak');
    assert.equal(l.length, 1);
    assert.equal(l[0].pid, 100);
    assert.equal(l[0].addr, BUF);
    assert.match(l[0].summary, /pid 101 still holds fd 5/);
    assert.equal(h.c.pins().length, 1);
    h.feed(h.ev.exit(101));
    assert.equal(h.c.pins().length, 0);
    assert.equal(h.sink.of('pin-leak').length, 1);
  });

  test('owner found gone by pagemap before the stream shows its exit: judged when the exit arrives', () => {
    // seen on 6.12 under TCG: the periodic read failed while the child's exit, the unregister and the
    // owner's exit were still in flight; they release the pin, so nothing leaked
    const lagging = new Harness({ config: { verifyIntervalMs: 500 } }).anonBuffer(100, BUF, 2, 0x1000);
    lagging.feed(lagging.ev.madvise(100, BUF, 2 * PAGE, MADV.DONTFORK));
    lagging.registerRing(100, 5, [[BUF, 2 * PAGE]]);
    lagging.feed(lagging.ev.fork(100, 101));
    lagging.pagemap.kill(100);
    lagging.tick(500);
    lagging.feed(lagging.ev.exit(101), lagging.ev.pinResult(100, 5, 0, 0, { opcode: 1 }), lagging.ev.exit(100));
    lagging.tick(10_000);
    assert.deepEqual(lagging.sink.of('pin-leak'), []);

    // a real orphan: the stream's exit of the owner confirms it
    const real = new Harness({ config: { verifyIntervalMs: 500 } }).anonBuffer(100, BUF, 2, 0x1000);
    real.registerRing(100, 5, [[BUF, 2 * PAGE]]);
    real.feed(real.ev.fork(100, 101));
    real.pagemap.kill(100);
    real.tick(500);
    assert.equal(real.sink.of('pin-leak').length, 0);
    real.feed(real.ev.exit(100));
    assert.equal(real.sink.of('pin-leak').length, 1);
    assert.match(real.sink.of('pin-leak')[0].summary, /pid 101 still holds fd 5/);

    // the owner's exit event was lost: reported after the grace period
    const lost = new Harness({ config: { verifyIntervalMs: 500 } }).anonBuffer(100, BUF, 2, 0x1000);
    lost.registerRing(100, 5, [[BUF, 2 * PAGE]]);
    lost.feed(lost.ev.fork(100, 101));
    lost.pagemap.kill(100);
    lost.tick(500);
    lost.tick(2000);
    assert.equal(lost.sink.of('pin-leak').length, 0);
    lost.tick(4000);
    assert.equal(lost.sink.of('pin-leak').length, 1);
  });

  test('older than pinMaxAgeS: once; 0 disables', () => {
    const h = new Harness({ config: { pinMaxAgeS: 2, verifyIntervalMs: 500 } }).anonBuffer(100, BUF, 1, 0x1000);
    h.registerRing(100, 5, [[BUF, PAGE]]);
    h.tick(1500);
    assert.equal(h.sink.of('pin-leak').length, 0);
    h.tick(1000);
    assert.equal(h.sink.of('pin-leak').length, 1);
    assert.match(h.sink.of('pin-leak')[0].summary, /pinned for 3 s/);
    h.tick(5000);
    assert.equal(h.sink.of('pin-leak').length, 1);
    const off = new Harness({ config: { verifyIntervalMs: 500 } }).anonBuffer(100, BUF, 1, 0x1000);
    off.registerRing(100, 5, [[BUF, PAGE]]);
    off.tick(600_000);
    assert.equal(off.sink.of('pin-leak').length, 0);
  });

  test('silent: DONTNEED, an mremap move, a clean unregister, exit with no other holder', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    const DST = BUF + 0x1000_0000;
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.feed(h.ev.madvise(100, BUF, PAGE, MADV.DONTNEED));
    h.feed(h.ev.mremap(100, BUF, 4 * PAGE, 4 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, DST, DST));
    h.feed(h.ev.pinResult(100, 5, 0, 0, { opcode: 1 }));
    h.registerRing(100, 6, [[DST, PAGE]]);
    h.feed(h.ev.exit(100));
    assert.equal(h.sink.of('pin-leak').length, 0);
  });
});
