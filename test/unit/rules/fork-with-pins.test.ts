// fork-with-pins: one warning per pin not covered by MADV_DONTFORK / MADV_WIPEONFORK, at the pin start.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { TraceEvent } from '../../../schema/events.ts';
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
    h.c.verifyNow(); // a repeat is re-sent at most once a second, at the latest on the next tick
    // The same finding again (pin 2 exposed by another fork) is counted on its first anomaly, not a new row.
    const bySeq = new Map(h.sink.of('fork-with-pins').map((a) => [a.seq, a]));
    assert.deepEqual([...bySeq.values()].map((a) => [a.addr, a.count ?? 1]), [[BUF + 4 * PAGE, 2], [BUF, 1]]);
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

  // kprobe mode: copy_page_range (one per inherited vma, in the forking thread, before its fork event)
  const copy = (h: Harness, pid: number, start: number, end: number, o: { tid?: number; anon?: boolean } = {}): TraceEvent => ({
    kind: 'copy_page_range', tsNs: h.time.nowNs(), pid, tid: o.tid ?? pid, comm: 'app', mm: '0xffff888000000064',
    childMm: '0xffff888000000aa0', start, end, vmFlags: 0x100073, anon: o.anon ?? true,
  });

  test('kprobe mode: the copy_page_range of the vma holding the pin is evidence, with the child pid from the fork', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.feed(
      copy(h, 100, 0x5555_0000_0000, 0x5555_0002_1000), // the heap: not pinned, not cited
      copy(h, 100, BUF - 16 * PAGE, BUF + 16 * PAGE),
      copy(h, 100, BUF, BUF + PAGE, { tid: 105 }), // another thread's fork in progress
      h.ev.fork(100, 101),
    );
    const f = h.sink.of('fork-with-pins');
    assert.equal(f.length, 1);
    const cited = f[0].evidence.flatMap((x) => (x.type === 'event' ? [h.sink.events.find((e) => e.seq === x.seq)!] : []));
    assert.deepEqual(cited.map((e) => e.kind), ['fork', 'copy_page_range', 'pin_result']);
    const c = cited[1] as Extract<TraceEvent, { kind: 'copy_page_range' }>;
    assert.equal(c.start, BUF - 16 * PAGE);
    assert.equal(c.tid, 100);
    const note = f[0].evidence.find((x) => x.type === 'event' && x.seq === h.sink.events.find((e) => e === c)?.seq);
    assert.match(note!.note, /child 101 \(mm 0xffff888000000aa0\) got the parent's vma 0x7f1234550000–0x7f1234570000 \(32 pages, anonymous/);
    // the copies were used up by that fork, and a copy of it that comes late (another CPU's buffer) is
    // not taken for the next fork's: the next one cites none
    h.feed({ ...copy(h, 100, BUF, BUF + 4 * PAGE), tsNs: f[0].tsNs - 10 });
    h.feed(h.ev.fork(100, 102));
    h.c.verifyNow();
    // The second fork is the same finding: counted on the first anomaly, whose evidence stays the first fork's.
    const all = h.sink.of('fork-with-pins');
    assert.deepEqual([...new Set(all.map((a) => a.seq))], [f[0].seq]);
    assert.equal(all[all.length - 1].count, 2);
    assert.equal(all[all.length - 1].evidence.filter((x) => x.type === 'event' && h.sink.events.find((e) => e.seq === x.seq)?.kind === 'copy_page_range').length, 1);
  });

  test('kprobe mode: copies of a process without pins are not kept; a stale copy (failed fork) is not cited', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    h.feed(copy(h, 100, BUF, BUF + 4 * PAGE)); // before the pin: nothing to keep
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.feed(copy(h, 100, BUF, BUF + 4 * PAGE)); // a fork that failed after copying (no fork event) ...
    h.tick(15_000);
    h.feed(copy(h, 100, 0x5555_0000_0000, 0x5555_0002_1000), h.ev.fork(100, 101)); // ... then a fork 15 s later
    const f = h.sink.of('fork-with-pins');
    assert.equal(f.length, 1);
    assert.equal(f[0].evidence.filter((x) => x.type === 'event' && h.sink.events.find((e) => e.seq === x.seq)?.kind === 'copy_page_range').length, 0);
  });
});
