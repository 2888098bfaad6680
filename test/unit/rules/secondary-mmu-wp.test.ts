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
    // no range_end seen (not probed, or lost): raised from the start alone once END_WAIT_NS has passed
    assert.deepEqual(h.sink.of('secondary-mmu-wp').map((a) => a.addr), [BUF]);
    h.tick(1500);
    assert.deepEqual(h.sink.of('secondary-mmu-wp').map((a) => a.addr), [BUF, BUF + 2 * PAGE]);
  });

  test('kprobe mmu-notifier: the write-protect is raised at its range_end, with the start..end window as evidence', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    const start = h.ev.mmuInvalidate(77, MM, BUF + PAGE, BUF + 2 * PAGE, 3);
    const end = (tid: number, startTsNs: number) => ({
      kind: 'mmu_invalidate_end' as const, tsNs: h.time.nowNs(), pid: 77, tid, comm: 'app', mm: MM, start: BUF + PAGE, end: BUF + 2 * PAGE, event: 3, startTsNs,
    });
    h.feed(start);
    h.time.set(h.time.nowNs() + 12_500);
    h.feed(end(78, start.tsNs), end(77, start.tsNs - 1)); // another thread's end; an end of another start
    assert.equal(h.sink.of('secondary-mmu-wp').length, 0);
    h.feed(end(77, start.tsNs));
    const s = h.sink.of('secondary-mmu-wp');
    assert.equal(s.length, 1);
    assert.equal(s[0].addr, BUF + PAGE);
    assert.equal(s[0].tsNs, start.tsNs, 'dated at the start of the window');
    const cited = s[0].evidence.flatMap((x) => (x.type === 'event' ? [[h.sink.events.find((e) => e.seq === x.seq)?.kind, x.note]] : []));
    assert.deepEqual(cited.map((c) => c[0]), ['mmu_invalidate', 'mmu_invalidate_end', 'pin_result']);
    assert.match(cited[1][1]!, /range_end 12\.5 µs later/);
    h.tick(1500); // nothing left parked
    assert.equal(h.sink.of('secondary-mmu-wp').length, 1);
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
