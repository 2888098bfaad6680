// unmap-of-pinned-page: an rmap unmap (kprobe), reclaim writing out a pinned pfn, or a migration entry at
// a pinned address of the owner. The anomaly names the pin owner even when kswapd is the event's pid.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BUF, Harness, PAGE } from '../pipeline/harness.ts';

describe('unmap-of-pinned-page', () => {
  test('try_to_unmap_one on a pinned anon pfn before 5.19, from kswapd: reported for the owner at the page', () => {
    const h = new Harness({ config: { kernelRelease: '5.10.0-46-amd64' } }).anonBuffer(100, BUF, 4, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.feed(h.ev.rmap('unmap', 77, 0x1003, '0xffff888000000064', BUF + 3 * PAGE));
    const u = h.sink.of('unmap-of-pinned-page');
    assert.equal(u.length, 1);
    assert.equal(u[0].pid, 100);
    assert.equal(u[0].comm, 'app');
    assert.equal(u[0].addr, BUF + 3 * PAGE);
    assert.equal(u[0].pfn, 0x1003);
    assert.equal(u[0].severity, 'high');
  });

  test('5.19+ keeps PageAnonExclusive in the swap PTE: an rmap unmap of a pinned anon page is silent', () => {
    const h = new Harness({ config: { kernelRelease: '6.12.117+deb12-amd64' } }).anonBuffer(100, BUF, 4, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.feed(h.ev.rmap('unmap', 77, 0x1003, '0xffff888000000064', BUF + 3 * PAGE));
    assert.deepEqual(h.sink.of('unmap-of-pinned-page'), []);
  });

  test('reclaim writing a pinned anon pfn out before 5.19 (tracepoint mode)', () => {
    const h = new Harness({ config: { kernelRelease: '5.10.0-46-amd64' } }).anonBuffer(100, BUF, 4, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.feed(h.ev.writeback(77, 0x1001));
    assert.deepEqual(h.sink.of('unmap-of-pinned-page').map((a) => a.addr), [BUF + PAGE]);
  });

  test('5.19+: swap writeback of a pinned anon page is silent too (it faults back as the same page)', () => {
    const h = new Harness({ config: { kernelRelease: '6.1.0-57-amd64' } }).anonBuffer(100, BUF, 4, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.feed(h.ev.writeback(77, 0x1001));
    assert.deepEqual(h.sink.of('unmap-of-pinned-page'), []);
  });

  test('a migration entry at a pinned address of the owner', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.feed(h.ev.migrate(100, BUF + 2 * PAGE, 'set'));
    assert.deepEqual(h.sink.of('unmap-of-pinned-page').map((a) => a.addr), [BUF + 2 * PAGE]);
  });

  test('silent: unpinned pfns, another process\'s migration, migration entry removal, released pins', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.feed(
      h.ev.rmap('unmap', 77, 0x9999, '0x1', BUF),
      h.ev.writeback(77, 0x8888),
      h.ev.migrate(101, BUF, 'set'),
      h.ev.migrate(100, BUF, 'remove'),
      h.ev.close(100, 5),
      h.ev.writeback(77, 0x1000),
    );
    assert.deepEqual(h.sink.anomalies, []);
  });
});
