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

  // 6.1, QEMU's VFIO map of its BIOS (read-only, never written before): every page pinned the shared zero page.
  // QEMU's ROM load then COWs those pages, and its heap's own zero pages elsewhere.
  const ZERO = 0x30310;
  const zeroPinned = (release: string) => {
    const h = new Harness({ config: { zeroPfn: ZERO, kernelRelease: release } });
    h.maps.add(100, BUF, BUF + 4 * PAGE, '', false);
    for (let i = 0; i < 4; i++) h.pagemap.map(100, BUF + i * PAGE, ZERO, 1);
    h.feed(h.ev.vfio(100, 'map', 8, BUF, 0xfffc0000, 4 * PAGE, 1));
    return h;
  };

  test('the shared zero page pinned (R/O long-term pin before 6.2): a COW elsewhere is nobody\'s, in the pin one finding per pin', () => {
    const h = zeroPinned('6.1.0-27-amd64');
    h.feed(h.ev.wpPage(100, 0x5624f247b000, ZERO, 0x1ff7a)); // qemu's heap: its own zero page
    assert.deepEqual(h.sink.of('cow-on-pinned-page'), [], 'the zero pfn names no pin');
    for (let i = 0; i < 3; i++) {
      h.pagemap.map(100, BUF + i * PAGE, 0x1ffcf + i, 1);
      h.feed(h.ev.wpPage(100, BUF + i * PAGE, ZERO, 0x1ffcf + i));
    }
    h.c.verifyNow();
    h.c.close(); // repeats counted on the first anomaly go out
    const c = h.sink.of('cow-on-pinned-page');
    assert.equal(new Set(c.map((a) => a.seq)).size, 1, 'one finding');
    const last = c[c.length - 1];
    assert.equal(last.addr, BUF);
    assert.equal(last.len, 4 * PAGE);
    assert.equal(last.count, 3, 'one count a page copied');
    assert.match(last.summary, /shared zero page \(pfn 0x30310\).*84209e87c696/);
    const d = h.sink.of('pin-pte-divergence');
    assert.equal(new Set(d.map((a) => a.seq)).size, 1, 'one divergence finding for the pin');
    assert.equal(d[d.length - 1].addr, BUF);
    assert.equal(d[d.length - 1].count, 3);
    assert.equal(d[d.length - 1].confirmed, true);
    assert.match(d[d.length - 1].summary, /before 6\.2 \(commit 84209e87c696/);
  });
});

