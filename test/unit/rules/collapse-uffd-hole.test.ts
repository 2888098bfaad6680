// collapse-uffd-hole: collapse_file on shmem under a MISSING userfaultfd registration of the process:
// info when refused, high when it succeeds; silent once unregistered, for WP-only registrations, non-shmem.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MADV, SCAN_EXCEED_NONE_PTE, SCAN_SUCCEEDED, UFFDIO_REGISTER_MODE_WP } from '../../../schema/kernel.ts';
import { BUF, Harness, MiB2 } from '../pipeline/harness.ts';

const RANGE = BUF - (BUF % MiB2) + MiB2; // 2 MiB aligned

describe('collapse-uffd-hole', () => {
  test('the shmem-uffd-collapse scenario: refused under the uffd (info), then collapses after unregister (silent)', () => {
    const h = new Harness();
    h.feed(h.ev.uffd(300, 'register', 8, RANGE, MiB2, 1));
    h.feed(h.ev.collapseFile(300, RANGE, SCAN_EXCEED_NONE_PTE), h.ev.madvise(300, RANGE, MiB2, MADV.COLLAPSE, -16));
    h.feed(h.ev.collapseFile(300, RANGE, SCAN_EXCEED_NONE_PTE)); // a retry: same verdict, not repeated
    let c = h.sink.of('collapse-uffd-hole');
    assert.equal(c.length, 1);
    assert.equal(c[0].severity, 'info');
    assert.equal(c[0].addr, RANGE);
    assert.equal(c[0].pid, 300);
    assert.equal(c[0].len, MiB2);
    assert.match(c[0].summary, /exceed_none_pte/);
    assert.ok(c[0].evidence.some((x) => x.type === 'event' && x.note.startsWith('UFFDIO_REGISTER')));
    h.feed(h.ev.uffd(300, 'unregister', 8, RANGE, MiB2, 0));
    h.feed(h.ev.collapseFile(300, RANGE, SCAN_SUCCEEDED), h.ev.madvise(300, RANGE, MiB2, MADV.COLLAPSE, 0));
    c = h.sink.of('collapse-uffd-hole');
    assert.equal(c.length, 1);
  });

  test('a collapse that succeeds under the registration (pre-6.4): high', () => {
    const h = new Harness();
    h.feed(h.ev.uffd(300, 'register', 8, RANGE, 2 * MiB2, 1));
    h.feed(h.ev.collapseFile(300, RANGE + MiB2 + 0x3000, SCAN_SUCCEEDED, { hpfn: 0x40000 }));
    const c = h.sink.of('collapse-uffd-hole');
    assert.equal(c.length, 1);
    assert.equal(c[0].severity, 'high');
    assert.equal(c[0].addr, RANGE + MiB2);
    assert.equal(c[0].pfn, 0x40000);
  });

  test('MADV_COLLAPSE\'s success code 10 (pte_mapped_hugepage) under the registration: high', () => {
    const h = new Harness();
    h.feed(h.ev.uffd(300, 'register', 8, RANGE, MiB2, 1));
    h.feed(h.ev.collapseFile(300, RANGE, 10), h.ev.madvise(300, RANGE, MiB2, MADV.COLLAPSE, 0));
    assert.deepEqual(h.sink.of('collapse-uffd-hole').map((a) => a.severity), ['high']);
  });

  test('no usable address in the tracepoint: the same thread\'s MADV_COLLAPSE gives the range', () => {
    const h = new Harness();
    h.feed(h.ev.uffd(300, 'register', 8, RANGE + MiB2, MiB2, 1));
    h.feed(h.ev.collapseFile(300, 0, SCAN_EXCEED_NONE_PTE));
    assert.equal(h.sink.of('collapse-uffd-hole').length, 0, 'waiting for the madvise');
    h.feed(h.ev.madvise(300, RANGE, 2 * MiB2, MADV.COLLAPSE, -16));
    assert.deepEqual(h.sink.of('collapse-uffd-hole').map((a) => a.addr), [RANGE + MiB2]);
  });

  test('khugepaged: attributed through the mm pointer a registration reported', () => {
    const h = new Harness().anonBuffer(300, BUF, 1, 0x1000);
    h.registerRing(300, 5, [[BUF, 4096]]); // gives mm 0xffff88800000012c for pid 300
    h.feed(h.ev.uffd(300, 'register', 8, RANGE, MiB2, 1));
    h.feed(h.ev.collapseFile(55, RANGE, SCAN_EXCEED_NONE_PTE, { mm: '0xffff88800000012c', comm: 'khugepaged' }));
    const c = h.sink.of('collapse-uffd-hole');
    assert.equal(c.length, 1);
    assert.equal(c[0].pid, 300);
  });

  test('silent: WP-only registration, a non-shmem file, another range, another process', () => {
    const h = new Harness();
    h.feed(h.ev.uffd(300, 'register', 8, RANGE, MiB2, UFFDIO_REGISTER_MODE_WP));
    h.feed(h.ev.uffd(301, 'register', 8, RANGE, MiB2, 1));
    h.feed(
      h.ev.collapseFile(300, RANGE, SCAN_EXCEED_NONE_PTE),
      h.ev.madvise(300, RANGE, MiB2, MADV.COLLAPSE, -16),
      h.ev.collapseFile(301, RANGE, SCAN_SUCCEEDED, { isShmem: false }),
      h.ev.collapseFile(301, RANGE + 4 * MiB2, SCAN_SUCCEEDED),
      h.ev.collapseFile(302, RANGE, SCAN_SUCCEEDED),
    );
    assert.deepEqual(h.sink.anomalies, []);
  });
});
