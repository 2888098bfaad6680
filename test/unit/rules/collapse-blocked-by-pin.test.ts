// collapse-blocked-by-pin: scan_pmd / collapse_isolate not_suitable_page_count (14 on 6.18) on a range holding a live pin.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MADV, SCAN_NOT_SUITABLE_PAGE_COUNT } from '../../../schema/kernel.ts';
import { BUF, Harness, MiB2, PAGE } from '../pipeline/harness.ts';

describe('collapse-blocked-by-pin', () => {
  test('MADV_COLLAPSE on a pinned anon range: status 14 on the pinned pfn, info at that page, once per region', () => {
    const h = new Harness({ config: { kernelRelease: '6.18.0' } }).anonBuffer(100, BUF, 4, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.feed(h.ev.scanPmd(100, 0x1002, SCAN_NOT_SUITABLE_PAGE_COUNT), h.ev.madvise(100, BUF - (BUF % MiB2), MiB2, MADV.COLLAPSE, -11));
    const c = h.sink.of('collapse-blocked-by-pin');
    assert.equal(c.length, 1);
    assert.equal(c[0].severity, 'info');
    assert.equal(c[0].addr, BUF + 2 * PAGE);
    assert.equal(c[0].pfn, 0x1002);
    assert.match(c[0].summary, /not_suitable_page_count/);
    h.feed(h.ev.collapseIsolate(55, 0x1001, SCAN_NOT_SUITABLE_PAGE_COUNT));
    assert.equal(h.sink.of('collapse-blocked-by-pin').length, 1, 'same pin, same region');
  });

  test('pfn not a pinned one: the range from the same thread\'s MADV_COLLAPSE, addr = range start', () => {
    const h = new Harness({ config: { kernelRelease: '6.18.0' } }).anonBuffer(100, BUF, 4, 0x1000);
    h.pagemap.hidePfns = true; // pinned pfns unknown
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.feed(h.ev.scanPmd(100, 0x1002, SCAN_NOT_SUITABLE_PAGE_COUNT));
    assert.equal(h.sink.anomalies.length, 0);
    h.feed(h.ev.madvise(100, BUF - (BUF % MiB2), MiB2, MADV.COLLAPSE, -11));
    assert.deepEqual(h.sink.of('collapse-blocked-by-pin').map((a) => a.addr), [BUF - (BUF % MiB2)]);
  });

  test('numbered as on the running kernel: 15 on 6.1-6.17 (SCAN_PAGE_RO still there), 12 before 6.1', () => {
    for (const [release, code, other] of [['6.12.117+deb12-amd64', 15, 14], ['6.1.0-56-amd64', 15, 14], ['5.10.0-46-amd64', 12, 14]] as const) {
      const h = new Harness({ config: { kernelRelease: release } }).anonBuffer(100, BUF, 4, 0x1000);
      h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
      h.feed(h.ev.scanPmd(100, 0x1001, other));
      assert.equal(h.sink.anomalies.length, 0, `${release}: ${other} is not page_count`);
      h.feed(h.ev.scanPmd(100, 0x1002, code));
      const c = h.sink.of('collapse-blocked-by-pin');
      assert.equal(c.length, 1, release);
      assert.match(c[0].summary, /not_suitable_page_count/);
    }
  });

  test('silent: other statuses, a process without pins, a collapse range without the pin', () => {
    const h = new Harness({ config: { kernelRelease: '6.18.0' } }).anonBuffer(100, BUF, 4, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.feed(
      h.ev.scanPmd(100, 0x1002, 3),
      h.ev.scanPmd(200, 0x5555, SCAN_NOT_SUITABLE_PAGE_COUNT),
      h.ev.madvise(200, BUF, MiB2, MADV.COLLAPSE, -11),
      h.ev.scanPmd(100, 0x7777, SCAN_NOT_SUITABLE_PAGE_COUNT),
      h.ev.madvise(100, BUF + 8 * MiB2, MiB2, MADV.COLLAPSE, -11),
    );
    assert.deepEqual(h.sink.anomalies, []);
  });
});
