// fork-with-pins: one warning per pin not covered by MADV_DONTFORK / MADV_WIPEONFORK, at the pin start.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MADV } from '../../../schema/kernel.ts';
import { BUF, Harness, PAGE } from '../pipeline/harness.ts';

describe('fork-with-pins', () => {
  test('fork with an unprotected pinned buffer: warning at the pin start, parent pid', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.feed(h.ev.fork(100, 101));
    const f = h.sink.of('fork-with-pins');
    assert.equal(f.length, 1);
    assert.equal(f[0].pid, 100);
    assert.equal(f[0].addr, BUF);
    assert.equal(f[0].severity, 'warning');
    assert.equal(f[0].len, 4 * PAGE);
    assert.match(f[0].summary, /child 101/);
    // The child writes and exits; the parent keeps its pages (>= 5.9): nothing else.
    h.feed(h.ev.exit(101));
    h.tick(20);
    h.c.verifyNow();
    assert.deepEqual(h.sink.summary(), [`fork-with-pins @0x${BUF.toString(16)}`]);
  });

  test('silent: the range was MADV_DONTFORK before the pin (the right way)', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    h.feed(h.ev.madvise(100, BUF, 4 * PAGE, MADV.DONTFORK));
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.feed(h.ev.fork(100, 101), h.ev.exit(101));
    h.c.verifyNow();
    assert.deepEqual(h.sink.anomalies, []);
  });

  test('silent: DONTFORK + WIPEONFORK together cover it', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    h.feed(h.ev.madvise(100, BUF, 2 * PAGE, MADV.DONTFORK), h.ev.madvise(100, BUF + 2 * PAGE, 2 * PAGE, MADV.WIPEONFORK));
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.feed(h.ev.fork(100, 101));
    assert.equal(h.sink.of('fork-with-pins').length, 0);
  });

  test('partly protected, or protection undone by MADV_DOFORK: fires; only the exposed pin is reported', () => {
    const h = new Harness().anonBuffer(100, BUF, 8, 0x1000);
    h.feed(h.ev.madvise(100, BUF, 7 * PAGE, MADV.DONTFORK));
    h.registerRing(100, 5, [[BUF, 4 * PAGE], [BUF + 4 * PAGE, 4 * PAGE]]);
    h.feed(h.ev.fork(100, 101));
    assert.deepEqual(h.sink.of('fork-with-pins').map((a) => a.addr), [BUF + 4 * PAGE]);
    h.feed(h.ev.madvise(100, BUF, PAGE, MADV.DOFORK), h.ev.fork(100, 102));
    assert.deepEqual(h.sink.of('fork-with-pins').map((a) => a.addr), [BUF + 4 * PAGE, BUF, BUF + 4 * PAGE]);
  });

  test('silent: no pins, a CLONE_VM clone, a fork that ran before the pin, a released pin', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    h.feed(h.ev.fork(100, 101));
    const early = h.ev.fork(100, 102);
    h.time.set(h.time.nowNs() + 1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.feed(early); // reordered: ran before the registration
    h.feed(h.ev.fork(100, 103, 0x100 | 0x10000 | 0x800));
    h.feed(h.ev.pinResult(100, 5, 0, 0, { opcode: 1 }), h.ev.fork(100, 104));
    assert.deepEqual(h.sink.anomalies, []);
  });
});
