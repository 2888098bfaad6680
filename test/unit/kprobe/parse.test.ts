// Unit tests of the kprobe-mode line parsers (collector/parse/kprobe.ts), with lines in the exact
// shape the bpf/kprobe scripts print (taken from the scripts' example headers and guest runs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kprobeParsers, resetKprobeParserState } from '../../../collector/parse/kprobe.ts';
import type { ParseSink } from '../../../collector/contracts.ts';
import type { TraceEvent } from '../../../schema/events.ts';

function collect(lines: string[]): { events: TraceEvent[]; malformed: string[] } {
  const events: TraceEvent[] = [];
  const malformed: string[] = [];
  const sink: ParseSink = {
    event: (e) => events.push(e),
    lost: () => {},
    ready: () => {},
    malformed: (_l, why) => malformed.push(why),
  };
  resetKprobeParserState();
  for (const line of lines) {
    const fields = line.split('\t');
    const p = kprobeParsers[fields[0]];
    assert.ok(p, `no parser for ${fields[0]}`);
    p(fields, sink, line);
  }
  return { events, malformed };
}

test('gup collects the pfns printed before it on the same thread', () => {
  const { events, malformed } = collect([
    'gup_pfn\t102\t412\t413\t0\t1193046\t1\tfixture',
    'gup_pfn\t100\t900\t900\t0\t5\t1\tother', // another thread's return in flight
    'gup_pfn\t102\t412\t413\t1\t1201111\t1\tfixture',
    'gup\t102\t412\t413\tpin_user_pages\t140372116787200\t2\t65537\t2\tio_uring\tfixture',
  ]);
  assert.deepEqual(malformed, []);
  assert.equal(events.length, 1);
  assert.deepEqual(events[0], {
    kind: 'gup', tsNs: 102, pid: 412, tid: 413, comm: 'fixture', fn: 'pin_user_pages', addr: 140372116787200,
    nrPages: 2, gupFlags: 65537, ret: 2, pfns: [1193046, 1201111], source: 'io_uring',
  });
});

test('gup_pfn with a count expands a contiguous range (vfio_pin_pages_remote)', () => {
  const { events } = collect([
    'gup_pfn\t2\t7\t7\t0\t4096\t3\tqemu',
    'gup\t2\t7\t7\tvfio_pin_pages_remote\t8192\t3\t0\t3\tvfio\tqemu',
  ]);
  assert.deepEqual((events[0] as { pfns: number[] }).pfns, [4096, 4097, 4098]);
});

test('a failed gup carries -errno and no pfns; a stale buffer does not leak into the next call', () => {
  const { events } = collect([
    'gup_pfn\t2\t7\t7\t0\t4096\t1\tx',
    'gup\t2\t7\t7\tpin_user_pages_fast\t8192\t1\t257\t-14\tio_uring\tx',
    'gup\t3\t7\t7\tget_user_pages_fast\t8192\t1\t0\t1\tvmsplice\tx',
  ]);
  assert.equal(events.length, 2);
  assert.deepEqual([(events[0] as { ret: number }).ret, (events[0] as { pfns: number[] }).pfns], [-14, []]);
  assert.deepEqual((events[1] as { pfns: number[] }).pfns, []);
});

// 5.10 under TCG (VFIO pins one page per call): the perf buffer dropped the gup lines of two calls and the
// pfn lines of the third; that third gup line took the first call's pfn (0x256a0 for the page at 0x256a2).
test('a gup line takes only the pfn lines of its own call (same timestamp), up to the first dropped one', () => {
  const { events } = collect([
    'gup_pfn\t10\t7\t7\t0\t153248\t1\tqemu', // call 1: its gup line dropped
    'gup\t30\t7\t7\tpin_user_pages_remote\t8192\t1\t65537\t1\tvfio\tqemu', // call 3: its pfn line dropped
    'gup_pfn\t40\t7\t7\t0\t4096\t1\tqemu',
    'gup_pfn\t40\t7\t7\t2\t4098\t1\tqemu', // index 1 dropped
    'gup\t40\t7\t7\tpin_user_pages_remote\t12288\t3\t65537\t3\tvfio\tqemu',
  ]);
  assert.deepEqual(events.map((e) => (e as { pfns: number[] }).pfns), [[], [4096]]);
});

test('wp_page copy / reuse / unshare and an unknown outcome', () => {
  const { events, malformed } = collect([
    'wp_page\t5\t412\t412\t140372116787200\tcopy\t1193046\t1201111\tfixture',
    'wp_page\t6\t412\t412\t140372116787200\treuse\t1193046\t0\tfixture',
    'wp_page\t7\t412\t412\t140372116787200\tunshare\t1193046\t0\tfixture',
    'wp_page\t8\t412\t412\t140372116787200\tsteal\t1\t0\tfixture',
  ]);
  assert.deepEqual(events.map((e) => (e as { outcome: string }).outcome), ['copy', 'reuse', 'unshare']);
  assert.deepEqual(events[0], {
    kind: 'wp_page', tsNs: 5, pid: 412, tid: 412, comm: 'fixture', addr: 140372116787200, outcome: 'copy', oldPfn: 1193046, newPfn: 1201111,
  });
  assert.equal(malformed.length, 1);
  assert.match(malformed[0], /wp_page: unknown outcome/);
});

test('unmap, mkclean, split_pmd, mmu_invalidate, anon_rmap_move, unpin', () => {
  const { events, malformed } = collect([
    'unmap\t9\t412\t412\t1193046\t0xffff8881234a5600\t140372116787200\tfixture',
    'mkclean\t10\t88\t88\t1193046\t0xffff8881234a5600\t140372116787200\tkworker/u4:1',
    'split_pmd\t11\t412\t412\t0xffff8881234a5600\t140372115738624\tfixture',
    'mmu_invalidate\t12\t412\t412\t0xffff8881234a5600\t140372115738624\t140372115742720\t3\tqemu-system-x86',
    'anon_rmap_move\t13\t412\t412\t1193046\t140372116787200\t9\tfixture',
    'unpin\t14\t412\t412\tunpin_user_pages\t1193046\t1\tfixture',
  ]);
  assert.deepEqual(malformed, []);
  assert.deepEqual(events.map((e) => e.kind), ['unmap', 'mkclean', 'split_pmd', 'mmu_invalidate', 'anon_rmap_move', 'unpin']);
  assert.deepEqual(events[0], { kind: 'unmap', tsNs: 9, pid: 412, tid: 412, comm: 'fixture', pfn: 1193046, mm: '0xffff8881234a5600', addr: 140372116787200 });
  assert.equal(events[1].comm, 'kworker/u4:1');
  assert.deepEqual(events[3], { kind: 'mmu_invalidate', tsNs: 12, pid: 412, tid: 412, comm: 'qemu-system-x86', mm: '0xffff8881234a5600', start: 140372115738624, end: 140372115742720, event: 3 });
  assert.equal((events[4] as { order: number }).order, 9);
  assert.deepEqual(events[5], { kind: 'unpin', tsNs: 14, pid: 412, tid: 412, comm: 'fixture', fn: 'unpin_user_pages', pfn: 1193046, npages: 1 });
});

test('kcollapse_file becomes a collapse_file event', () => {
  const { events } = collect(['kcollapse_file\t15\t412\t412\t0xffff8881234a5600\t0\t0\t140372115738624\t1\t512\t1\tmemfd:pw\tfixture']);
  assert.deepEqual(events[0], {
    kind: 'collapse_file', tsNs: 15, pid: 412, tid: 412, comm: 'fixture', mm: '0xffff8881234a5600', hpfn: 0, index: 0,
    addr: 140372115738624, isShmem: true, nr: 512, result: 1, filename: 'memfd:pw',
  });
});

test('comm containing a tab is re-joined; malformed numbers and pointers are reported, not thrown', () => {
  const { events, malformed } = collect([
    'unmap\t9\t412\t412\t1193046\t0xffff8881234a5600\t4096\tweird\tname',
    'unmap\t9\t412\t412\tNaN\t0xffff8881234a5600\t4096\tx',
    'unmap\t9\t412\t412\t1\tffff8881\t4096\tx',
    'split_pmd\t11\t412\t412\t0xffff88',
    'gup\t1\t2\t3\tpin_user_pages\t1\t1\t1\t1\tmystery\tx',
  ]);
  assert.equal(events.length, 1);
  assert.equal(events[0].comm, 'weird\tname');
  assert.equal(malformed.length, 4);
  assert.match(malformed[0], /pfn not an integer/);
  assert.match(malformed[1], /mm not a hex pointer/);
  assert.match(malformed[2], /split_pmd: (missing|addr)/);
  assert.match(malformed[3], /unknown caller/);
});

test('every example line in the bpf/kprobe headers parses', async () => {
  const { loadKprobeScripts } = await import('../../../collector/kprobe/scripts.ts');
  const lines = loadKprobeScripts().flatMap((s) => s.header.examples);
  assert.ok(lines.length >= 10);
  const { events, malformed } = collect(lines);
  assert.deepEqual(malformed, []);
  assert.ok(events.length >= 8);
});

test('mmu_invalidate_end carries its start timestamp; copy_page_range the parent vma and the child mm', () => {
  const { events, malformed } = collect([
    'mmu_invalidate_end\t91239001\t412\t412\t0xffff8881234a5600\t140372115738624\t140372115742720\t3\t91234567\tqemu-system-x86',
    'mmu_invalidate_end\t91239002\t412\t412\t0xffff8881234a5600\t4096\t8192\t0\t0\tksmd',
    'copy_page_range\t91234567\t412\t412\t0xffff8881234a5600\t0xffff888123ab9a00\t140372115738624\t140372115755008\t1048691\t1\tfixture',
    'copy_page_range\t91234568\t412\t412\t0xffff8881234a5600\t0xffff888123ab9a00\t94000000000000\t94000000004096\t1050739\t0\tmy prog',
  ]);
  assert.deepEqual(malformed, []);
  assert.deepEqual(events[0], {
    kind: 'mmu_invalidate_end', tsNs: 91239001, pid: 412, tid: 412, comm: 'qemu-system-x86', mm: '0xffff8881234a5600',
    start: 140372115738624, end: 140372115742720, event: 3, startTsNs: 91234567,
  });
  assert.equal((events[1] as { startTsNs: number }).startTsNs, 0);
  assert.deepEqual(events[2], {
    kind: 'copy_page_range', tsNs: 91234567, pid: 412, tid: 412, comm: 'fixture', mm: '0xffff8881234a5600', childMm: '0xffff888123ab9a00',
    start: 140372115738624, end: 140372115755008, vmFlags: 1048691, anon: true,
  });
  assert.equal((events[3] as { anon: boolean }).anon, false);
  assert.equal(events[3].comm, 'my prog');
});

test('copy_page_range: an empty range, a bad child mm or a missing field is malformed', () => {
  const { events, malformed } = collect([
    'copy_page_range\t1\t412\t412\t0xffff8881234a5600\t0xffff888123ab9a00\t8192\t4096\t1\t1\tx',
    'copy_page_range\t1\t412\t412\t0xffff8881234a5600\t0\t4096\t8192\t1\t1\tx',
    'copy_page_range\t1\t412\t412\t0xffff8881234a5600\t0xffff888123ab9a00\t4096\t8192\t1',
    'mmu_invalidate_end\t1\t412\t412\t0xffff8881234a5600\t4096\t8192\t3\tx',
  ]);
  assert.deepEqual(events, []);
  assert.equal(malformed.length, 4);
  assert.match(malformed[0], /copy_page_range: empty range/);
  assert.match(malformed[1], /childMm not a hex pointer/);
  assert.match(malformed[2], /copy_page_range: (missing|anon)/);
  assert.match(malformed[3], /mmu_invalidate_end: (missing|startTsNs)/);
});

test('a whole-address-space invalidation (end = ULONG_MAX, seen on 5.10) is clamped to the address limit, not rejected; 5-level (la57) stack addresses are accepted', () => {
  const { events, malformed } = collect([
    'mmu_invalidate\t41672674730\t258\t258\t0xffff962b02096640\t0\t18446744073709551615\t0\tpw-workload',
    'mmu_invalidate_end\t41673314850\t258\t258\t0xffff962b02096640\t0\t18446744073709551615\t0\t41672674730\tpw-workload',
    'gup\t59467856370\t271\t271\tget_user_pages_remote\t72057594037923817\t1\t1\t1\t0\tbash',
  ]);
  assert.deepEqual(malformed, []);
  assert.deepEqual(events.slice(0, 2).map((e) => [e.kind, (e as { start: number }).start, (e as { end: number }).end]), [
    ['mmu_invalidate', 0, 2 ** 57],
    ['mmu_invalidate_end', 0, 2 ** 57],
  ]);
  // 0xffffffffffefe9 (a 6.1 la57 guest's stack): exact to 8 bytes, on the same page.
  const gup = events[2] as { kind: string; addr: number };
  assert.equal(gup.kind, 'gup');
  assert.equal(Math.floor(gup.addr / 4096), Math.floor(72057594037923817 / 4096));
});
