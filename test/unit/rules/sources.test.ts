// Per-source promises (rules/sources/) and teardown (rules/sources/teardown.ts): vmsplice is a pipe
// reference, not a DMA pin; an io_uring buffer unmapped and released right after with no I/O is teardown (info),
// with I/O submitted in between or still pinned later it is the hazard (high); shmdt unmaps like munmap.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { TraceEvent } from '../../../schema/events.ts';
import { MADV } from '../../../schema/kernel.ts';
import { BUF, Harness, PAGE } from '../pipeline/harness.ts';

function vmsplice(h: Harness, pid: number, fd: number, addr: number, len: number): void {
  h.feed(h.ev.iovec(pid, fd, 0, addr, len, { source: 'vmsplice' }), h.ev.pinResult(pid, fd, 1, len, { source: 'vmsplice' }));
}

function uringEnter(h: Harness, pid: number, fd: number): TraceEvent {
  return { kind: 'uring_enter', tsNs: h.time.nowNs(), pid, tid: pid, comm: 'app', fd, toSubmit: 1, flags: 0 };
}

describe('vmsplice: a pipe reference, not a DMA pin', () => {
  test('munmap, DONTNEED and a new page at the address after vmsplice (mm/cow.c): silent', () => {
    const h = new Harness().anonBuffer(100, BUF, 2, 0x1000);
    vmsplice(h, 100, 9, BUF, 2 * PAGE);
    h.pagemap.unmap(100, BUF);
    h.feed(h.ev.madvise(100, BUF, PAGE, MADV.DONTNEED));
    h.pagemap.map(100, BUF, 0x7000);
    h.feed(h.ev.fault(100, BUF, true));
    h.feed(h.ev.munmap(100, BUF, 2 * PAGE));
    h.pastTeardown();
    h.feed(h.ev.close(100, 9));
    h.c.verifyNow();
    assert.deepEqual(h.sink.summary(100), []);
  });

  test('fork while a pipe references vmspliced pages: info on 5.19+, warning before', () => {
    for (const [kernelRelease, severity] of [['6.18.0', 'info'], ['5.10.0', 'warning']] as const) {
      const h = new Harness({ config: { kernelRelease } }).anonBuffer(100, BUF, 1, 0x1000);
      vmsplice(h, 100, 9, BUF, PAGE);
      h.feed(h.ev.fork(100, 101));
      const f = h.sink.of('fork-with-pins');
      assert.equal(f.length, 1);
      assert.equal(f[0].severity, severity);
      assert.match(f[0].summary, /CVE-2020-29374/);
    }
  });

  test('a pipe still open 5 minutes after vmsplice: pin-leak info, once', () => {
    const h = new Harness().anonBuffer(100, BUF, 1, 0x1000);
    vmsplice(h, 100, 9, BUF, PAGE);
    h.tick(299_000);
    assert.equal(h.sink.of('pin-leak').length, 0);
    h.tick(2000);
    h.tick(2000);
    const l = h.sink.of('pin-leak');
    assert.deepEqual(l.map((a) => a.severity), ['info']);
    assert.match(l[0].summary, /pipe fd 9 held 30\d s after vmsplice/);
  });

  test('a page the kernel replaced without the application asking stays critical (seed 002)', () => {
    const h = new Harness().anonBuffer(100, BUF, 1, 0x1000);
    vmsplice(h, 100, 9, BUF, PAGE);
    h.pagemap.map(100, BUF, 0x7000);
    h.c.verifyNow();
    const d = h.sink.of('pin-pte-divergence');
    assert.equal(d.length, 1);
    assert.equal(d[0].severity, 'critical');
  });
});

describe('io_uring teardown vs hazard', () => {
  test('munmap, then unregister 3 ms later with no submission: info, with its reason; no pin-leak', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.tick(10);
    h.pagemap.unmap(100, BUF, 4);
    h.feed(h.ev.munmap(100, BUF, 4 * PAGE));
    assert.equal(h.sink.anomalies.length, 0, 'held for the evidence');
    h.time.set(h.time.nowNs() + 3_000_000);
    h.feed(h.ev.pinResult(100, 5, 0, 0, { opcode: 1 }));
    h.pastTeardown();
    const z = h.sink.of('pinned-range-zapped');
    assert.equal(z.length, 1);
    assert.equal(z[0].severity, 'info');
    assert.match(z[0].summary, /teardown: released \(unregistered.*\) 3\.0 ms after the zap with no I\/O submitted on ring fd 5/);
    assert.deepEqual(h.sink.of('pin-leak'), []);
  });

  test('munmap, then exit: teardown (info)', () => {
    const h = new Harness().anonBuffer(100, BUF, 2, 0x1000);
    h.registerRing(100, 5, [[BUF, 2 * PAGE]]);
    h.feed(h.ev.munmap(100, BUF, 2 * PAGE));
    h.time.set(h.time.nowNs() + 20_000_000);
    h.feed(h.ev.exit(100));
    assert.deepEqual(h.sink.anomalies.map((a) => `${a.rule} ${a.severity}`), ['pinned-range-zapped info']);
  });

  test('a submission on the ring after the zap: high at once, saying so', () => {
    const h = new Harness().anonBuffer(100, BUF, 2, 0x1000);
    h.registerRing(100, 5, [[BUF, 2 * PAGE]]);
    h.feed(h.ev.munmap(100, BUF, 2 * PAGE));
    h.time.set(h.time.nowNs() + 1_000_000);
    h.feed(uringEnter(h, 100, 5));
    const z = h.sink.of('pinned-range-zapped');
    assert.equal(z.length, 1);
    assert.equal(z[0].severity, 'high');
    assert.match(z[0].summary, /io_uring_enter submitted 1 SQE\(s\) on ring fd 5 1\.0 ms after the zap/);
    assert.equal(h.sink.of('pin-leak').length, 1);
    h.feed(h.ev.exit(100));
    assert.equal(h.sink.of('pinned-range-zapped').length, 1);
  });

  test('a submission on another ring does not count', () => {
    const h = new Harness().anonBuffer(100, BUF, 2, 0x1000);
    h.registerRing(100, 5, [[BUF, 2 * PAGE]]);
    h.feed(h.ev.munmap(100, BUF, 2 * PAGE), uringEnter(h, 100, 6), h.ev.exit(100));
    assert.deepEqual(h.sink.anomalies.map((a) => a.severity), ['info']);
  });

  test('still pinned after the window: high (the uring-munmap reproducer)', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.feed(h.ev.munmap(100, BUF + PAGE, PAGE));
    h.tick(1500);
    h.feed(h.ev.pinResult(100, 5, 0, 0, { opcode: 1 }), h.ev.exit(100));
    assert.deepEqual(h.sink.anomalies.map((a) => `${a.rule} ${a.severity}`).sort(), ['pin-leak warning', 'pinned-range-zapped high']);
    assert.match(h.sink.of('pinned-range-zapped')[0].summary, /still pinned 1500 ms after the zap \(released only then: unregistered/);
  });

  test('the process found gone by pagemap before its exit arrives: judged by the exit\'s time', () => {
    const h = new Harness({ config: { verifyIntervalMs: 500 } }).anonBuffer(100, BUF, 2, 0x1000);
    h.registerRing(100, 5, [[BUF, 2 * PAGE]]);
    const munmap = h.ev.munmap(100, BUF, 2 * PAGE);
    h.feed(munmap);
    h.pagemap.kill(100);
    h.tick(500); // the periodic read finds the process gone: a synthetic release, 500 ms after the zap
    assert.equal(h.sink.anomalies.length, 0);
    const exit = h.ev.exit(100);
    exit.tsNs = munmap.tsNs + 1_000_000; // the stream lagged: the exit ran 1 ms after the munmap
    h.feed(exit);
    assert.deepEqual(h.sink.anomalies.map((a) => `${a.rule} ${a.severity}`), ['pinned-range-zapped info']);
    assert.match(h.sink.anomalies[0].summary, /the process exited 1\.0 ms after the zap/);
  });

  test('submissions not traced (uring_enter.bt left out): never judged teardown', () => {
    const h = new Harness({ config: { submissionsTraced: false } }).anonBuffer(100, BUF, 2, 0x1000);
    h.registerRing(100, 5, [[BUF, 2 * PAGE]]);
    h.feed(h.ev.munmap(100, BUF, 2 * PAGE), h.ev.exit(100));
    assert.deepEqual(h.sink.of('pinned-range-zapped').map((a) => a.severity), ['high']);
  });

  test('a SQPOLL ring submits without io_uring_enter: never judged teardown', () => {
    const h = new Harness().anonBuffer(100, BUF, 2, 0x1000);
    h.feed({ kind: 'uring_sqpoll', tsNs: h.time.nowNs(), pid: 100, tid: 100, comm: 'app', fd: 5 });
    h.registerRing(100, 5, [[BUF, 2 * PAGE]]);
    h.feed(h.ev.munmap(100, BUF, 2 * PAGE), h.ev.exit(100));
    assert.deepEqual(h.sink.of('pinned-range-zapped').map((a) => a.severity), ['high']);
  });
});

describe('shmdt', () => {
  const shmdt = (h: Harness, pid: number, addr: number, len: number): TraceEvent =>
    ({ kind: 'shmdt', tsNs: h.time.nowNs(), pid, tid: pid, comm: 'app', addr, len, ret: 0 });

  test('detaching a registered SysV shm segment unmaps the pinned range (size from shm.bt)', () => {
    const h = new Harness();
    h.maps.add(100, BUF, BUF + 4 * PAGE, '/SYSV00000000 (deleted)', true);
    h.pagemap.map(100, BUF, 0x1000, 4);
    h.registerRing(100, 5, [[BUF, 2 * PAGE], [BUF + 2 * PAGE, 2 * PAGE]]);
    h.pagemap.unmap(100, BUF, 4);
    h.feed(shmdt(h, 100, BUF, 4 * PAGE));
    h.pastTeardown();
    assert.deepEqual(h.sink.of('pinned-range-zapped').map((a) => a.addr), [BUF, BUF + 2 * PAGE]);
    assert.match(h.sink.of('pinned-range-zapped')[0].summary, /^shmdt removed/);
  });

  test('size unknown (attached before the capture): the shared pins from the address are taken', () => {
    const h = new Harness();
    h.maps.add(100, BUF, BUF + 4 * PAGE, '/SYSV00000000 (deleted)', true);
    h.pagemap.map(100, BUF, 0x1000, 4);
    h.registerRing(100, 5, [[BUF + PAGE, PAGE], [BUF + 3 * PAGE, PAGE]]);
    h.feed(shmdt(h, 100, BUF, 0));
    h.time.set(h.time.nowNs() + 2_000_000);
    h.feed(h.ev.exit(100));
    assert.deepEqual(h.sink.of('pinned-range-zapped').map((a) => `${a.addr - BUF} ${a.severity}`), [`${PAGE} info`, `${3 * PAGE} info`]);
  });
});
