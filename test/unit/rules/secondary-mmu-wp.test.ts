// secondary-mmu-wp: KSM / page_mkclean / mmu-notifier write-protection of a pinned page (or of a page of an
// mm with a secondary MMU).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BUF, Harness, PAGE } from '../pipeline/harness.ts';

const MM = '0xffff888000000064'; // pid 100's mm as the harness reports it

describe('secondary-mmu-wp', () => {
  test('tracepoint ksm_merge on a pinned pfn: warning for the owner, once per page', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.feed(h.ev.ksm(40, 0x1001, -14, MM), h.ev.ksm(40, 0x1001, -14, MM));
    const s = h.sink.of('secondary-mmu-wp');
    assert.equal(s.length, 1);
    assert.equal(s[0].pid, 100);
    assert.equal(s[0].addr, BUF + PAGE);
    assert.equal(s[0].severity, 'warning');
    assert.match(s[0].summary, /backed off/);
  });

  test('kprobe page_mkclean_one on a pinned pfn; mmu-notifier PROTECTION_PAGE over a pinned range', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.feed(h.ev.rmap('mkclean', 77, 0x1000, MM, BUF));
    h.feed(h.ev.mmuInvalidate(77, MM, BUF + 2 * PAGE, BUF + 3 * PAGE, 3));
    assert.deepEqual(h.sink.of('secondary-mmu-wp').map((a) => a.addr), [BUF, BUF + 2 * PAGE]);
  });

  test('an mm with a secondary MMU: KSM merging any of its pages is reported once per region', () => {
    const h = new Harness().anonBuffer(100, BUF, 1, 0x1000);
    h.registerRing(100, 5, [[BUF, PAGE]]);
    h.feed(h.ev.mmuInvalidate(100, MM, BUF + 0x100000, BUF + 0x101000, 0)); // any notifier call: the mm has one
    h.feed(h.ev.rmap('mkclean', 77, 0x5000, MM, BUF + 0x4000_0000));
    h.feed(h.ev.rmap('mkclean', 77, 0x5001, MM, BUF + 0x4000_1000));
    const s = h.sink.of('secondary-mmu-wp');
    assert.equal(s.length, 1);
    assert.equal(s[0].pid, 100);
    assert.equal(s[0].addr, BUF + 0x4000_0000);
  });

  test('silent: unpinned pfns, UNMAP notifications, a refused merge of a page nobody pins', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.feed(
      h.ev.ksm(40, 0x9999, 0, '0x1'),
      h.ev.rmap('mkclean', 77, 0x9999, '0x1', BUF),
      h.ev.mmuInvalidate(77, MM, BUF, BUF + PAGE, 0),
      h.ev.mmuInvalidate(77, MM, BUF + 8 * PAGE, BUF + 9 * PAGE, 3),
    );
    assert.deepEqual(h.sink.anomalies, []);
  });
});
