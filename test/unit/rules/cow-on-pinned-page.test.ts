// cow-on-pinned-page (kprobe mode): do_wp_page copying a page the faulting process has pinned.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BUF, Harness, PAGE } from '../pipeline/harness.ts';

describe('cow-on-pinned-page', () => {
  test('the owner copies its pinned page: critical, old and new pfn', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.feed(h.ev.wpPage(100, BUF + 2 * PAGE + 40, 0x1002, 0x9000));
    const c = h.sink.of('cow-on-pinned-page');
    assert.equal(c.length, 1);
    assert.equal(c[0].addr, BUF + 2 * PAGE);
    assert.equal(c[0].pfn, 0x1002);
    assert.equal(c[0].newPfn, 0x9000);
    assert.equal(c[0].severity, 'critical');
    assert.equal(c[0].confirmed, false);
  });

  test('pinned pfn unknown (pfns hidden): matched by address', () => {
    const h = new Harness().anonBuffer(100, BUF, 1, 0x1000);
    h.pagemap.hidePfns = true;
    h.registerRing(100, 5, [[BUF, PAGE]]);
    h.feed(h.ev.wpPage(100, BUF, 0x1000, 0x9000, 'unshare'));
    assert.equal(h.sink.of('cow-on-pinned-page').length, 1);
  });

  test('silent: reuse, a fork child copying the shared page, a copy of a page that is not the pinned one', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.feed(h.ev.fork(100, 101));
    h.feed(
      h.ev.wpPage(100, BUF, 0x1000, 0x1000, 'reuse'),
      h.ev.wpPage(101, BUF, 0x1000, 0x9000),
      h.ev.wpPage(100, BUF + PAGE, 0x5555, 0x9001),
      h.ev.wpPage(100, BUF + 9 * PAGE, 0x5556, 0x9002),
    );
    assert.equal(h.sink.of('cow-on-pinned-page').length, 0);
  });
});
