// The shadow model, event kind by event kind: pins from registrations, zaps, mremap moves, fork
// inheritance, exit cleanup, the snapshot-race (late) logic, pfn lookups and the pinned fault regions.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { TraceEvent } from '../../../schema/events.ts';
import { IORING_REGISTER, MADV, MREMAP_DONTUNMAP, MREMAP_FIXED, MREMAP_MAYMOVE } from '../../../schema/kernel.ts';
import { ShadowModel, type ShadowModelOptions } from '../../../collector/model/shadow-model.ts';
import {
  PG_DIVERGED, PG_HARD_ZAP, PG_LATE, PG_UNMAPPED, PG_WRITE_AFTER_ZAP, PG_ZAPPED, type PinRecord,
} from '../../../collector/model/pin-record.ts';
import { PinTimeReader } from '../../../collector/verify/pin-time.ts';
import { FakeMapsReader, FakePagemapReader, FakeTime, modelApplier } from '../../support/fakes.ts';
import { BUF, EventBuilder, MiB2, PAGE } from '../pipeline/harness.ts';
import { pageAt, pinPageAddr } from '../../../schema/pin-runs.ts';

function setup(opts: ShadowModelOptions = {}) {
  const time = new FakeTime();
  const pagemap = new FakePagemapReader(time);
  const maps = new FakeMapsReader();
  const model = new ShadowModel({ follNumbering: '6.3', ...opts });
  // The verifier's pin-time reads (maps, pagemap), handed back as the Collector does after each event.
  const pinTime = new PinTimeReader({ pagemap, maps, clock: time });
  const ev = new EventBuilder(time);
  const apply = modelApplier(model, pinTime);
  const step = (ns = 1000) => time.set(time.nowNs() + ns);
  /** Register buffers on ring fd; returns the created pins. */
  const register = (pid: number, fd: number, bufs: [number, number][], ret = 0, opcode = 0, base = 0): PinRecord[] => {
    bufs.forEach(([a, l], i) => apply(ev.iovec(pid, fd, base + i, a, l, { opcode })));
    step();
    const fx = apply(ev.pinResult(pid, fd, bufs.length, ret, { opcode }));
    step();
    return [...fx.created];
  };
  const anon = (pid: number, addr: number, n: number, pfn0: number) => {
    maps.add(pid, addr, addr + n * PAGE);
    pagemap.map(pid, addr, pfn0, n);
  };
  return { time, pagemap, maps, model, ev, apply, step, register, anon };
}

const flagsOf = (pin: PinRecord, page: number) => pin.flagsAt(page);
const pinnedOf = (pin: PinRecord) => Array.from({ length: pin.nPages }, (_, i) => pin.pinnedPfnAt(i));

describe('io_uring registrations', () => {
  test('REGISTER_BUFFERS: one pin per iovec, pfns from pagemap, backing from maps, handle text', () => {
    const s = setup();
    s.anon(100, BUF, 4, 0x1000);
    s.anon(100, BUF + MiB2, 2, 0x2000);
    const pins = s.register(100, 5, [[BUF, 4 * PAGE], [BUF + MiB2, 2 * PAGE]]);
    assert.equal(pins.length, 2);
    const [a, b] = pins;
    assert.equal(a.handleText, 'ring fd 5 slot 0');
    assert.equal(b.handleText, 'ring fd 5 slot 1');
    assert.deepEqual(pinnedOf(a), [0x1000, 0x1001, 0x1002, 0x1003]);
    assert.deepEqual(pinnedOf(b), [0x2000, 0x2001]);
    assert.equal(a.backing, 'anon');
    assert.ok(a.writable && a.longterm);
    assert.equal(a.source, 'io_uring');
    assert.equal(s.model.livePinCount, 2);
    assert.equal(s.model.process(100)!.mm, '0xffff888000000064');
    assert.equal(s.model.pidForMm('0xffff888000000064'), 100);
    const pin = a.toPin();
    assert.equal(pinPageAddr(pin.addr, 1), BUF + PAGE);
    assert.equal(pageAt(pin.runs, 1)?.pinnedPfn, 0x1001);
    assert.equal(pageAt(pin.runs, 1)?.snapshotLate, false);
    assert.deepEqual(pin.runs, [{ page: 0, count: 4, pinnedPfn: 0x1000, currentPfn: 0x1000, snapshotLate: false }], 'one run: contiguous pfns');
    assert.equal(pin.state, 'intact');
  });

  test('an unaligned buffer covers every page it touches', () => {
    const s = setup();
    s.anon(100, BUF, 3, 0x1000);
    const [p] = s.register(100, 5, [[BUF + 100, 2 * PAGE]]);
    assert.equal(p.nPages, 3);
    assert.equal(p.firstVa, BUF);
  });

  test('a refused registration creates no pin but reports the buffers with their backing', () => {
    const s = setup();
    s.maps.add(100, BUF, BUF + 4 * PAGE, '/var/tmp/data', true);
    s.apply(s.ev.iovec(100, 5, 0, BUF, 4 * PAGE));
    const fx = s.apply(s.ev.pinResult(100, 5, 1, -14));
    assert.equal(fx.created.length, 0);
    assert.ok(fx.registration);
    assert.equal(fx.registration.ok, false);
    assert.equal(fx.registration.buffers[0].backing, 'file:/var/tmp/data');
    assert.equal(fx.registration.buffers[0].sharedFile, true);
    assert.equal(fx.registration.buffers[0].pin, null);
    assert.equal(s.model.livePinCount, 0);
  });

  test('BUFFERS_UPDATE replaces only the named slots; ret bounds how many', () => {
    const s = setup();
    s.anon(100, BUF, 16, 0x1000);
    const [p0, p1, p2] = s.register(100, 5, [[BUF, PAGE], [BUF + PAGE, PAGE], [BUF + 2 * PAGE, PAGE]]);
    s.apply(s.ev.iovec(100, 5, 1, BUF + 8 * PAGE, PAGE, { opcode: IORING_REGISTER.BUFFERS_UPDATE }));
    s.apply(s.ev.iovec(100, 5, 2, BUF + 9 * PAGE, PAGE, { opcode: IORING_REGISTER.BUFFERS_UPDATE }));
    s.step();
    const fx = s.apply(s.ev.pinResult(100, 5, 2, 1, { opcode: IORING_REGISTER.BUFFERS_UPDATE }));
    assert.equal(fx.created.length, 1, 'ret=1: only the first slot was updated');
    assert.equal(fx.created[0].handleText, 'ring fd 5 slot 1');
    assert.equal(fx.created[0].pinnedPfnAt(0), 0x1008);
    assert.deepEqual(fx.released.map((r) => r.pin), [p1]);
    assert.ok(p0.live && !p1.live && p2.live);
  });

  test('UNREGISTER_BUFFERS releases every pin of the ring (and only that ring)', () => {
    const s = setup();
    s.anon(100, BUF, 4, 0x1000);
    const [a] = s.register(100, 5, [[BUF, PAGE]]);
    const [b] = s.register(100, 6, [[BUF + PAGE, PAGE]]);
    s.step();
    const fx = s.apply(s.ev.pinResult(100, 5, 0, 0, { opcode: IORING_REGISTER.UNREGISTER_BUFFERS }));
    assert.deepEqual(fx.released.map((r) => r.pin.id), [a.id]);
    assert.match(fx.released[0].reason, /unregistered/);
    assert.equal(a.releasedNs, s.time.nowNs());
    assert.ok(b.live);
    assert.equal(a.toPin().state, 'released');
  });

  test('a second REGISTER_BUFFERS on the same ring replaces the table', () => {
    const s = setup();
    s.anon(100, BUF, 4, 0x1000);
    const [a] = s.register(100, 5, [[BUF, PAGE]]);
    const [b] = s.register(100, 5, [[BUF + PAGE, PAGE]]);
    assert.ok(!a.live && b.live);
  });

  test('close of the ring fd releases; close of another fd does not', () => {
    const s = setup();
    s.anon(100, BUF, 1, 0x1000);
    const [a] = s.register(100, 5, [[BUF, PAGE]]);
    assert.equal(s.apply(s.ev.close(100, 7)).released.length, 0);
    assert.ok(a.live);
    const fx = s.apply(s.ev.close(100, 5));
    assert.equal(fx.released[0].pin, a);
    assert.match(fx.released[0].reason, /fd 5 closed/);
  });

  test('pin_iovec of another thread or fd does not leak into a registration', () => {
    const s = setup();
    s.anon(100, BUF, 4, 0x1000);
    s.apply(s.ev.iovec(100, 9, 0, BUF + 3 * PAGE, PAGE, { tid: 101 }));
    s.apply(s.ev.iovec(100, 5, 0, BUF, PAGE));
    const fx = s.apply(s.ev.pinResult(100, 5, 1, 0));
    assert.equal(fx.created.length, 1);
    assert.equal(fx.created[0].addr, BUF);
  });
});

describe('vmsplice and vfio', () => {
  test('vmsplice: short-term, read-only, only the spliced bytes, lives until the pipe fd closes', () => {
    const s = setup();
    s.anon(100, BUF, 4, 0x1000);
    s.apply(s.ev.iovec(100, 4, 0, BUF, 2 * PAGE, { source: 'vmsplice' }));
    s.apply(s.ev.iovec(100, 4, 1, BUF + 2 * PAGE, 2 * PAGE, { source: 'vmsplice' }));
    const fx = s.apply(s.ev.pinResult(100, 4, 2, 3 * PAGE, { source: 'vmsplice' }));
    assert.equal(fx.created.length, 2);
    const [a, b] = fx.created;
    assert.equal(a.source, 'vmsplice');
    assert.equal(a.writable, false);
    assert.equal(a.longterm, false);
    assert.equal(a.handleText, 'pipe fd 4');
    assert.equal(b.len, PAGE, 'second iovec only partly spliced');
    s.apply(s.ev.iovec(100, 4, 0, BUF, PAGE, { source: 'vmsplice' }));
    assert.equal(s.apply(s.ev.pinResult(100, 4, 1, PAGE, { source: 'vmsplice' })).created.length, 1, 'vmsplice pins accumulate');
    assert.equal(s.model.livePinCount, 3);
    assert.equal(s.apply(s.ev.close(100, 4)).released.length, 3);
  });

  test('vfio map creates a container pin keyed by iova; unmap releases by iova range; UNMAP_ALL all', () => {
    const s = setup();
    s.anon(200, BUF, 8, 0x5000);
    const fx = s.apply(s.ev.vfio(200, 'map', 7, BUF, 0x100000, 4 * PAGE, 3));
    assert.equal(fx.created.length, 1);
    const a = fx.created[0];
    assert.equal(a.handleText, 'container fd 7 iova 0x100000+0x4000');
    assert.equal(a.source, 'vfio');
    assert.ok(a.writable && a.longterm);
    const b = s.apply(s.ev.vfio(200, 'map', 7, BUF + 4 * PAGE, 0x200000, 4 * PAGE, 1)).created[0];
    assert.equal(b.writable, false, 'READ-only mapping');
    assert.equal(s.apply(s.ev.vfio(200, 'unmap', 7, 0, 0x300000, PAGE, 0)).released.length, 0);
    assert.deepEqual(s.apply(s.ev.vfio(200, 'unmap', 7, 0, 0x100000, 4 * PAGE, 0)).released.map((r) => r.pin), [a]);
    const c = s.apply(s.ev.vfio(200, 'map', 7, BUF, 0x400000, PAGE, 3)).created[0];
    assert.deepEqual(s.apply(s.ev.vfio(200, 'unmap', 7, 0, 0, 0, 2)).released.map((r) => r.pin).sort((x, y) => x.id - y.id), [b, c]);
    assert.equal(s.apply(s.ev.vfio(200, 'map', 7, BUF, 0x500000, PAGE, 3, -22)).created.length, 0, 'failed map');
  });

  // QEMU at reset, as 5.10 under TCG delivered it: map [0, 32 MiB), unmap it, map 0+768K and 1M+31M. bpftrace's
  // per-CPU buffers delivered the newest map before the older unmap (exit timestamps order them: iommu->lock).
  /** The event built at time ns (set the fake clock, then build). */
  const at = (s: ReturnType<typeof setup>, ns: number, e: () => TraceEvent) => {
    s.time.set(ns);
    return e();
  };
  test('vfio: an unmap that arrives after a newer map releases only the pins made before it', () => {
    const s = setup();
    s.anon(200, BUF, 16, 0x5000);
    const first = s.apply(at(s, 1000, () => s.ev.vfio(200, 'map', 7, BUF, 0, 16 * PAGE, 3))).created[0];
    const newer = s.apply(at(s, 5000, () => s.ev.vfio(200, 'map', 7, BUF + 4 * PAGE, 4 * PAGE, 12 * PAGE, 3))).created[0];
    assert.equal(newer.key, 4 * PAGE);
    const un = s.apply(at(s, 3000, () => s.ev.vfio(200, 'unmap', 7, 0, 0, 16 * PAGE, 0)));
    assert.deepEqual(un.released.map((r) => r.pin), [first], 'the older unmap removed the first map only');
    assert.equal(first.releasedNs, 3000);
    assert.equal(newer.releasedNs, null, 'the newer map lives on');
    const low = s.apply(at(s, 4000, () => s.ev.vfio(200, 'map', 7, BUF, 0, 4 * PAGE, 3))).created[0];
    assert.ok(low, 'a map after the unmap, before the newer one: a pin');
    assert.deepEqual([...s.model.livePins()].map((p) => p.key).sort((a, b) => a - b), [0, 4 * PAGE]);
    assert.ok([...s.model.livePins()].every((p) => p.releasedNs === null || p.releasedNs >= p.createdNs));
  });

  test('vfio: a map older than a pin or an unmap already seen at its iovas was undone by then: no pin', () => {
    const s = setup();
    s.anon(200, BUF, 16, 0x5000);
    // the unmap and the map after it come first, the map they undid last
    s.apply(at(s, 3000, () => s.ev.vfio(200, 'unmap', 7, 0, 0, 16 * PAGE, 0)));
    const low = s.apply(at(s, 4000, () => s.ev.vfio(200, 'map', 7, BUF, 0, 4 * PAGE, 3))).created[0];
    const late = s.apply(at(s, 1000, () => s.ev.vfio(200, 'map', 7, BUF, 0, 16 * PAGE, 3)));
    assert.equal(late.created.length, 0, 'superseded by the newer pin at iova 0');
    assert.equal(late.released.length, 0, 'the newer pin stays');
    assert.equal(low.releasedNs, null);
    // no newer pin at its iovas, but an unmap seen after it: also undone
    const late2 = s.apply(at(s, 2000, () => s.ev.vfio(200, 'map', 7, BUF + 8 * PAGE, 8 * PAGE, 8 * PAGE, 3)));
    assert.equal(late2.created.length, 0, 'the unmap at 3000 covered iova 0x8000');
    assert.equal(late2.registration?.ok, true, 'still a registration that succeeded');
    assert.deepEqual([...s.model.livePins()], [low]);
  });

  test('vfio: gup lines of a map split across CPUs: later ones stay held for their call, older late ones are dropped', () => {
    const s = setup();
    s.anon(300, BUF, 8, 0x1000);
    const g = (ns: number, i: number, pfn: number) => at(s, ns, () => s.ev.gup(300, BUF + i * PAGE, [pfn], 0x101, 'pin_user_pages_remote', { source: 'vfio' }));
    // map A (exit 2000) pins pages 0-3; map B (exit 4000) pins pages 4-7. One gup of B arrives before A's line,
    // one gup of A after it.
    s.apply(g(1100, 0, 0x8000), g(1200, 1, 0x8001), g(1300, 2, 0x8002), g(3100, 4, 0x9004));
    const a = s.apply(at(s, 2000, () => s.ev.vfio(300, 'map', 7, BUF, 0, 4 * PAGE, 3))).created[0];
    s.apply(g(1400, 3, 0x7777), g(3200, 5, 0x9005), g(3300, 6, 0x9006), g(3400, 7, 0x9007));
    const b = s.apply(at(s, 4000, () => s.ev.vfio(300, 'map', 7, BUF + 4 * PAGE, 4 * PAGE, 4 * PAGE, 3))).created[0];
    assert.deepEqual(pinnedOf(a), [0x8000, 0x8001, 0x8002, 0x1003], "page 3's gup came after the map: pagemap's pfn");
    assert.deepEqual(pinnedOf(b), [0x9004, 0x9005, 0x9006, 0x9007], 'the gup that came early went to its own map');
  });
});

describe('zaps', () => {
  test('MADV_DONTNEED of an anon pinned page: zapped + hard, one hit at the page', () => {
    const s = setup();
    s.anon(100, BUF, 4, 0x1000);
    const [p] = s.register(100, 5, [[BUF, 4 * PAGE]]);
    const fx = s.apply(s.ev.madvise(100, BUF + PAGE, PAGE, MADV.DONTNEED));
    assert.equal(fx.zaps.length, 1);
    const z = fx.zaps[0];
    assert.equal(z.pin, p);
    assert.equal(z.firstPage, 1);
    assert.equal(z.count, 1);
    assert.equal(z.va, BUF + PAGE);
    assert.equal(z.how, 'MADV_DONTNEED');
    assert.equal(z.hard, true);
    assert.equal(z.unmapped, false);
    assert.equal(z.race, false);
    assert.equal(flagsOf(p, 1) & (PG_ZAPPED | PG_HARD_ZAP), PG_ZAPPED | PG_HARD_ZAP);
    assert.equal(flagsOf(p, 0), 0);
    assert.equal(p.state, 'zapped');
  });

  test('a failed madvise, another pid or another range touch nothing', () => {
    const s = setup();
    s.anon(100, BUF, 4, 0x1000);
    const [p] = s.register(100, 5, [[BUF, 4 * PAGE]]);
    assert.equal(s.apply(s.ev.madvise(100, BUF, PAGE, MADV.DONTNEED, -22)).zaps.length, 0);
    assert.equal(s.apply(s.ev.madvise(101, BUF, PAGE, MADV.DONTNEED)).zaps.length, 0);
    assert.equal(s.apply(s.ev.madvise(100, BUF + 4 * PAGE, PAGE, MADV.DONTNEED)).zaps.length, 0);
    assert.equal(s.apply(s.ev.madvise(100, BUF, 4 * PAGE, MADV.NORMAL)).zaps.length, 0);
    assert.equal(p.zappedPages, 0);
  });

  test('DONTNEED on a shared shmem mapping is a zap but not a hard one (the page cache keeps the page)', () => {
    const s = setup();
    s.maps.add(100, BUF, BUF + 4 * PAGE, '/memfd:buf (deleted)', true);
    s.pagemap.map(100, BUF, 0x1000, 4);
    const [p] = s.register(100, 5, [[BUF, 4 * PAGE]]);
    assert.equal(p.backing, 'shmem');
    const z = s.apply(s.ev.madvise(100, BUF, PAGE, MADV.DONTNEED)).zaps[0];
    assert.equal(z.hard, false);
    assert.equal(s.apply(s.ev.madvise(100, BUF + PAGE, PAGE, MADV.REMOVE)).zaps[0].hard, true, 'hole punch is hard');
  });

  test('FREE and PAGEOUT are advisory (not marked zapped until confirmed); DONTNEED_LOCKED is hard', () => {
    const s = setup();
    s.anon(100, BUF, 4, 0x1000);
    const [p] = s.register(100, 5, [[BUF, 4 * PAGE]]);
    const free = s.apply(s.ev.madvise(100, BUF, PAGE, MADV.FREE)).zaps[0];
    assert.equal(free.hard, false);
    assert.equal(free.advisory, true);
    assert.equal(s.apply(s.ev.madvise(100, BUF + PAGE, PAGE, MADV.PAGEOUT)).zaps[0].advisory, true);
    assert.equal(p.zappedPages, 0);
    s.model.markZapped(p, 1, 1);
    assert.equal(p.zappedPages, 1);
    assert.ok(s.model.changed.has(p));
    const locked = s.apply(s.ev.madvise(100, BUF + 2 * PAGE, PAGE, MADV.DONTNEED_LOCKED)).zaps[0];
    assert.equal(locked.hard, true);
    assert.equal(locked.advisory, false);
  });

  test('munmap in the middle: unmapped pages, hits sorted by address', () => {
    const s = setup();
    s.anon(100, BUF, 4, 0x1000);
    const [p] = s.register(100, 5, [[BUF, 4 * PAGE]]);
    const fx = s.apply(s.ev.munmap(100, BUF + PAGE, 2 * PAGE));
    assert.equal(fx.zaps.length, 1);
    assert.equal(fx.zaps[0].unmapped, true);
    assert.equal(fx.zaps[0].count, 2);
    assert.ok(flagsOf(p, 1) & PG_UNMAPPED && flagsOf(p, 2) & PG_UNMAPPED && !(flagsOf(p, 3) & PG_UNMAPPED));
    assert.ok(p.live, 'munmap does not release the pin');
  });

  test('mmap(MAP_FIXED) over a pinned range unmaps it', () => {
    const s = setup();
    s.anon(100, BUF, 4, 0x1000);
    s.register(100, 5, [[BUF, 4 * PAGE]]);
    const z = s.apply(s.ev.mmapFixed(100, BUF + 2 * PAGE, 4 * PAGE)).zaps[0];
    assert.equal(z.how, 'mmap(MAP_FIXED)');
    assert.equal(z.firstPage, 2);
    assert.equal(z.count, 2);
    assert.equal(s.apply(s.ev.mmapFixed(100, BUF, PAGE, -17)).zaps.length, 0, 'MAP_FIXED_NOREPLACE refused');
  });

  test('two pins over the same pages are both hit', () => {
    const s = setup();
    s.anon(100, BUF, 4, 0x1000);
    s.register(100, 5, [[BUF, 4 * PAGE]]);
    s.register(100, 6, [[BUF, 2 * PAGE]]);
    assert.equal(s.apply(s.ev.madvise(100, BUF, PAGE, MADV.DONTNEED)).zaps.length, 2);
  });

  test('a write fault after a hard zap marks the page; a read fault or an unzapped page does not', () => {
    const s = setup();
    s.anon(100, BUF, 4, 0x1000);
    const [p] = s.register(100, 5, [[BUF, 4 * PAGE]]);
    s.apply(s.ev.madvise(100, BUF + PAGE, PAGE, MADV.DONTNEED));
    let fx = s.apply(s.ev.fault(100, BUF + PAGE + 12, false));
    assert.equal(fx.touched.length, 1);
    assert.equal(flagsOf(p, 1) & PG_WRITE_AFTER_ZAP, 0);
    fx = s.apply(s.ev.fault(100, BUF + PAGE + 12, true));
    assert.equal(fx.touched[0].firstPage, 1);
    assert.ok(flagsOf(p, 1) & PG_WRITE_AFTER_ZAP);
    s.apply(s.ev.fault(100, BUF + 2 * PAGE, true, true));
    assert.equal(flagsOf(p, 2) & PG_WRITE_AFTER_ZAP, 0);
    assert.equal(s.apply(s.ev.fault(100, BUF + 9 * PAGE, true)).touched.length, 0, 'fault outside the pin');
  });
});

describe('mremap', () => {
  test('a whole move: pages follow, no zap, addresses and regions follow', () => {
    const s = setup({ faultWatch: 'all-pins' });
    const DST = BUF + 64 * MiB2;
    s.anon(100, BUF, 4, 0x1000);
    const [p] = s.register(100, 5, [[BUF, 4 * PAGE]]);
    const fx = s.apply(s.ev.mremap(100, BUF, 4 * PAGE, 4 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, DST, DST));
    assert.equal(fx.zaps.length, 0, 'the destination held no pin and the source moved, not zapped');
    assert.equal(fx.moves.length, 1);
    assert.equal(fx.moves[0].fromVa, BUF);
    assert.equal(fx.moves[0].va, DST);
    assert.equal(p.vaOf(2), DST + 2 * PAGE);
    assert.equal(p.pageAt(DST + 3 * PAGE), 3);
    assert.equal(p.pageAt(BUF), -1);
    assert.equal(p.zappedPages, 0);
    const pin = p.toPin();
    assert.equal(pinPageAddr(pin.addr, 0), BUF, 'pin-time address kept');
    assert.equal(pageAt(pin.runs, 0)?.mappedAddr, DST);
    assert.deepEqual(s.model.faultRegions(), [{ pid: 100, region: Math.floor(DST / MiB2) }]);
    // Zaps now hit the new address, not the old one.
    assert.equal(s.apply(s.ev.madvise(100, BUF, 4 * PAGE, MADV.DONTNEED)).zaps.length, 0);
    assert.equal(s.apply(s.ev.madvise(100, DST + PAGE, PAGE, MADV.DONTNEED)).zaps[0].firstPage, 1);
  });

  test('a partial move splits the pin; in-place grow changes nothing; shrink zaps the tail', () => {
    const s = setup();
    const DST = BUF + 8 * MiB2;
    s.anon(100, BUF, 8, 0x1000);
    const [p] = s.register(100, 5, [[BUF, 8 * PAGE]]);
    s.apply(s.ev.mremap(100, BUF + 2 * PAGE, 2 * PAGE, 2 * PAGE, MREMAP_MAYMOVE, DST));
    assert.equal(p.vaOf(1), BUF + PAGE);
    assert.equal(p.vaOf(2), DST);
    assert.equal(p.vaOf(3), DST + PAGE);
    assert.equal(p.vaOf(4), BUF + 4 * PAGE);
    assert.equal(p.extents.length, 3);
    assert.equal(s.apply(s.ev.mremap(100, BUF + 4 * PAGE, 4 * PAGE, 8 * PAGE, MREMAP_MAYMOVE, BUF + 4 * PAGE)).zaps.length, 0);
    const fx = s.apply(s.ev.mremap(100, BUF + 4 * PAGE, 4 * PAGE, PAGE, 0, BUF + 4 * PAGE));
    assert.equal(fx.zaps.length, 1);
    assert.equal(fx.zaps[0].how, 'mremap shrink');
    assert.equal(fx.zaps[0].firstPage, 5);
    assert.equal(fx.zaps[0].count, 3);
    assert.equal(fx.zaps[0].unmapped, true);
    assert.equal(s.apply(s.ev.mremap(100, BUF, PAGE, PAGE, MREMAP_MAYMOVE, -12)).moves.length, 0, 'failed mremap');
  });

  test('MREMAP_DONTUNMAP: pages move, the old range keeps DONTFORK; MREMAP_FIXED over a pin unmaps it', () => {
    const s = setup();
    const DST = BUF + 8 * MiB2;
    s.anon(100, BUF, 4, 0x1000);
    s.anon(100, DST, 4, 0x3000);
    s.apply(s.ev.madvise(100, BUF, 4 * PAGE, MADV.DONTFORK));
    const [p] = s.register(100, 5, [[BUF, 4 * PAGE]]);
    const [q] = s.register(100, 6, [[DST, 4 * PAGE]]);
    const fx = s.apply(s.ev.mremap(100, BUF, 4 * PAGE, 4 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, DST, DST));
    assert.equal(fx.zaps.length, 1);
    assert.equal(fx.zaps[0].pin, q);
    assert.equal(fx.zaps[0].how, 'mremap over');
    assert.equal(fx.moves[0].pin, p);
    const proc = s.model.process(100)!;
    assert.ok(proc.dontfork.covers(BUF, BUF + 4 * PAGE), 'old VMA stays with its flags');
    assert.ok(proc.dontfork.covers(DST, DST + 4 * PAGE), 'flags travel with the moved VMA');
  });
});

describe('fork and exit', () => {
  test('fork: child registered with ppid, inherits WIPEONFORK and the pin fds, not DONTFORK ranges or pins', () => {
    const s = setup();
    s.anon(100, BUF, 4, 0x1000);
    s.apply(s.ev.madvise(100, BUF, PAGE, MADV.DONTFORK));
    s.apply(s.ev.madvise(100, BUF + PAGE, PAGE, MADV.WIPEONFORK));
    const [p] = s.register(100, 5, [[BUF, 4 * PAGE]]);
    const fx = s.apply(s.ev.fork(100, 101));
    const child = s.model.process(101)!;
    assert.equal(child.ppid, 100);
    assert.ok(child.wipeonfork.covers(BUF + PAGE, BUF + 2 * PAGE));
    assert.equal(child.dontfork.size, 0, 'VM_DONTCOPY VMAs are not copied to the child');
    assert.equal(child.pins.size, 0, 'pins stay with the parent mm');
    assert.ok(child.handles.has(5));
    assert.deepEqual(p.handle!.holders, [100, 101]);
    assert.equal(fx.touched.length, 1, 'the parent pin is re-verified');
    assert.equal(fx.touched[0].reason, 'fork');
  });

  // 6.12 under TCG, uring-fork: the child's exit line (another CPU) came before the parent's fork line, so the child
  // stayed a holder of the ring fd and the parent's exit was judged a pin-leak.
  test('the child\'s exit arriving before its fork line: the child holds nothing; a later fork of that pid is a new child', () => {
    const s = setup();
    s.anon(100, BUF, 1, 0x1000);
    const [p] = s.register(100, 5, [[BUF, PAGE]]);
    const forkAt = s.time.nowNs();
    s.step(5000);
    s.apply(s.ev.exit(101));
    s.time.set(forkAt);
    s.apply(s.ev.fork(100, 101));
    assert.deepEqual(p.handle!.holders, [100]);
    assert.equal(s.model.process(101), undefined);
    assert.equal(s.apply(s.ev.exit(100)).released.length, 1, 'the parent\'s exit releases the pin');
    s.time.set(forkAt + 10_000);
    s.apply(s.ev.exit(102));
    s.time.set(forkAt + 20_000);
    s.apply(s.ev.fork(100, 102));
    assert.equal(s.model.process(102)?.ppid, 100, 'an exit older than the fork was an earlier process of that pid');
  });

  test('a CLONE_VM clone is not a fork', () => {
    const s = setup();
    s.anon(100, BUF, 1, 0x1000);
    s.register(100, 5, [[BUF, PAGE]]);
    assert.equal(s.apply(s.ev.fork(100, 101, 0x100 | 0x10000)).touched.length, 0);
    assert.equal(s.model.process(101), undefined);
  });

  test('DOFORK / KEEPONFORK undo the marks', () => {
    const s = setup();
    s.apply(s.ev.madvise(100, BUF, 4 * PAGE, MADV.DONTFORK));
    s.apply(s.ev.madvise(100, BUF, 4 * PAGE, MADV.WIPEONFORK));
    s.apply(s.ev.madvise(100, BUF + PAGE, PAGE, MADV.DOFORK));
    s.apply(s.ev.madvise(100, BUF, 4 * PAGE, MADV.KEEPONFORK));
    const proc = s.model.process(100)!;
    assert.ok(proc.dontfork.covers(BUF, BUF + PAGE));
    assert.ok(!proc.dontfork.covers(BUF, BUF + 2 * PAGE));
    assert.equal(proc.wipeonfork.size, 0);
    s.apply(s.ev.munmap(100, BUF, 4 * PAGE));
    assert.equal(proc.dontfork.size, 0, 'munmap drops the VMA and its flags');
  });

  test('exit releases pins, forgets the process and its mm', () => {
    const s = setup();
    s.anon(100, BUF, 2, 0x1000);
    const [p] = s.register(100, 5, [[BUF, 2 * PAGE]]);
    assert.equal(s.apply(s.ev.exit(100, 102)).released.length, 0, 'a thread exit is not the process');
    const fx = s.apply(s.ev.exit(100));
    assert.deepEqual(fx.released.map((r) => r.pin), [p]);
    assert.equal(fx.exitedPid, 100);
    assert.equal(s.model.process(100), undefined);
    assert.equal(s.model.pidForMm('0xffff888000000064'), undefined);
    assert.equal(s.model.livePinCount, 0);
    assert.deepEqual(s.model.lookupPfn(0x1000), []);
    assert.deepEqual(s.model.faultRegions(), []);
  });

  test('exit while a fork child holds the ring fd: the pin is orphaned until the child exits', () => {
    const s = setup();
    s.anon(100, BUF, 2, 0x1000);
    const [p] = s.register(100, 5, [[BUF, 2 * PAGE]]);
    s.apply(s.ev.fork(100, 101));
    const fx = s.apply(s.ev.exit(100));
    assert.deepEqual(fx.orphaned, [p]);
    assert.equal(fx.released.length, 0);
    assert.ok(p.live && p.orphaned);
    assert.deepEqual(s.model.faultRegions(), [], 'no fault filter for a dead owner');
    assert.deepEqual(s.apply(s.ev.exit(101)).released.map((r) => r.pin), [p]);
  });

  test('the child closing the inherited fd lets the parent exit release the pin', () => {
    const s = setup();
    s.anon(100, BUF, 1, 0x1000);
    const [p] = s.register(100, 5, [[BUF, PAGE]]);
    s.apply(s.ev.fork(100, 101));
    s.apply(s.ev.close(101, 5));
    assert.ok(p.live, 'the parent still holds it');
    assert.deepEqual(s.apply(s.ev.exit(100)).released.map((r) => r.pin), [p]);
  });

  test('processGone (lost exit) behaves like exit', () => {
    const s = setup();
    s.anon(100, BUF, 1, 0x1000);
    const [p] = s.register(100, 5, [[BUF, PAGE]]);
    assert.equal(s.model.processGone(100, s.time.nowNs()), true);
    assert.ok(!p.live);
    assert.equal(s.model.processGone(100, s.time.nowNs()), false);
  });
});

describe('snapshot race (late pins)', () => {
  test('an event that arrives after the pin but ran before the snapshot marks its pages late', () => {
    const s = setup();
    s.anon(100, BUF, 4, 0x1000);
    s.apply(s.ev.iovec(100, 5, 0, BUF, 4 * PAGE));
    s.step(1000);
    const result = s.ev.pinResult(100, 5, 1, 0);
    const tExit = result.tsNs;
    s.time.set(tExit + 5_000_000); // we read pagemap 5 ms after the syscall returned
    const p = s.apply(result).created[0];
    assert.equal(p.snapshotNs, tExit + 5_000_000);
    // A DONTNEED that ran 1 ms after the syscall (before our read) arrives now.
    const zap = s.ev.madvise(100, BUF + PAGE, PAGE, MADV.DONTNEED);
    zap.tsNs = tExit + 1_000_000;
    const fx = s.apply(zap);
    assert.equal(fx.zaps[0].race, false, 'after the syscall: a real zap');
    assert.ok(flagsOf(p, 1) & PG_LATE);
    assert.equal(flagsOf(p, 0) & PG_LATE, 0);
    assert.equal(pageAt(p.toPin().runs, 1)?.snapshotLate, true);
    // One that ran after our read is not late.
    const later = s.ev.madvise(100, BUF + 2 * PAGE, PAGE, MADV.DONTNEED);
    later.tsNs = tExit + 6_000_000;
    s.apply(later);
    assert.equal(flagsOf(p, 2) & PG_LATE, 0);
  });

  test('kprobe mode: pinned pfns from GUP itself are exact, so a zap before our pagemap read is not late', () => {
    const s = setup();
    s.anon(100, BUF, 2, 0x1000);
    s.apply(s.ev.iovec(100, 5, 0, BUF, 2 * PAGE));
    s.apply(s.ev.gup(100, BUF, [0x4000, 0x4001]));
    s.step(1000);
    const result = s.ev.pinResult(100, 5, 1, 0);
    const tExit = result.tsNs;
    s.time.set(tExit + 5_000_000);
    const p = s.apply(result).created[0];
    assert.equal(p.snapshotNs, p.createdNs, 'nothing can be late');
    const zap = s.ev.madvise(100, BUF + PAGE, PAGE, MADV.DONTNEED);
    zap.tsNs = tExit + 1_000_000;
    s.apply(zap);
    assert.equal(flagsOf(p, 1) & PG_LATE, 0);
    assert.deepEqual(pinnedOf(p), [0x4000, 0x4001]);
  });

  test('an event inside the registering syscall is a race hit; one before the syscall is ignored', () => {
    const s = setup();
    s.anon(100, BUF, 4, 0x1000);
    const iov = s.ev.iovec(100, 5, 0, BUF, 4 * PAGE);
    const tEntry = iov.tsNs;
    s.apply(iov);
    s.step(10_000);
    const p = s.apply(s.ev.pinResult(100, 5, 1, 0)).created[0];
    const inside = s.ev.madvise(100, BUF, PAGE, MADV.DONTNEED);
    inside.tsNs = tEntry + 5000;
    const fx = s.apply(inside);
    assert.equal(fx.zaps[0].race, true);
    assert.ok(flagsOf(p, 0) & PG_LATE);
    const before = s.ev.madvise(100, BUF + PAGE, PAGE, MADV.DONTNEED);
    before.tsNs = tEntry - 5000;
    assert.equal(s.apply(before).zaps.length, 0);
    assert.equal(flagsOf(p, 1), 0);
  });

  test('an mremap inside the registering syscall marks pages late but does not move the pin', () => {
    const s = setup();
    s.anon(100, BUF, 2, 0x1000);
    const iov = s.ev.iovec(100, 5, 0, BUF, 2 * PAGE);
    s.apply(iov);
    s.step(10_000);
    const p = s.apply(s.ev.pinResult(100, 5, 1, 0)).created[0];
    const mv = s.ev.mremap(100, BUF, 2 * PAGE, 2 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, BUF + MiB2, BUF + MiB2);
    mv.tsNs = iov.tsNs + 5000;
    const fx = s.apply(mv);
    assert.equal(fx.moves.length, 0);
    assert.equal(p.vaOf(0), BUF);
    assert.ok(flagsOf(p, 0) & PG_LATE && flagsOf(p, 1) & PG_LATE);
  });

  test('a zap seen BEFORE the pin_result (reordered stream) is replayed against the new pin', () => {
    const s = setup();
    s.anon(100, BUF, 4, 0x1000);
    const iov = s.ev.iovec(100, 5, 0, BUF, 4 * PAGE);
    s.apply(iov);
    s.step(1000);
    const result = s.ev.pinResult(100, 5, 1, 0);
    const zap = s.ev.madvise(100, BUF + 3 * PAGE, PAGE, MADV.DONTNEED);
    zap.tsNs = result.tsNs + 500; // ran after the syscall returned ...
    s.apply(zap); // ... but its CPU's buffer was drained first
    s.time.set(result.tsNs + 2_000_000);
    const fx = s.apply(result);
    const p = fx.created[0];
    assert.ok(flagsOf(p, 3) & PG_LATE);
    assert.ok(flagsOf(p, 3) & PG_ZAPPED);
    assert.equal(fx.zaps.length, 1, 'reported with the registration');
    assert.equal(fx.zaps[0].cause, zap);
    // Events from long before the syscall are not replayed.
    const s2 = setup();
    s2.anon(100, BUF, 4, 0x1000);
    s2.apply(s2.ev.madvise(100, BUF, PAGE, MADV.DONTNEED));
    s2.step(1000);
    const [p2] = s2.register(100, 5, [[BUF, 4 * PAGE]]);
    assert.equal(flagsOf(p2, 0), 0);
  });

  test('a failed pagemap snapshot leaves pfns unknown and nothing late', () => {
    const s = setup();
    s.maps.add(100, BUF, BUF + PAGE);
    s.pagemap.kill(100);
    const [p] = s.register(100, 5, [[BUF, PAGE]]);
    assert.ok(Number.isNaN(p.pinnedPfnAt(0)));
    assert.equal(p.snapshotNs, p.createdNs);
  });
});

describe('pfns, kprobe events, uffd, regions', () => {
  test('lookupPfn finds the pin and page; KSM and writeback on a pinned pfn are hits', () => {
    const s = setup();
    s.anon(100, BUF, 4, 0x1000);
    const [p] = s.register(100, 5, [[BUF, 4 * PAGE]]);
    assert.deepEqual(s.model.lookupPfn(0x1002).map((h) => [h.pin.id, h.page]), [[p.id, 2]]);
    assert.deepEqual(s.model.lookupPfn(0x9999), []);
    const fx = s.apply(s.ev.ksm(42, 0x1001, 0));
    assert.equal(fx.pfnHits.length, 1);
    assert.equal(fx.pfnHits[0].page, 1);
    assert.equal(fx.touched.length, 1);
    assert.equal(s.apply(s.ev.ksm(42, 0x1001, -14)).touched.length, 0, 'a refused merge moved nothing');
    assert.equal(s.apply(s.ev.writeback(42, 0x1003)).pfnHits[0].page, 3);
    assert.equal(s.apply(s.ev.writeback(42, 0x7777)).dirty, false);
  });

  test('two pins on one pfn: both found; releasing one keeps the other indexed', () => {
    const s = setup();
    s.anon(100, BUF, 1, 0x1000);
    const [a] = s.register(100, 5, [[BUF, PAGE]]);
    const [b] = s.register(100, 6, [[BUF, PAGE]]);
    assert.equal(s.model.lookupPfn(0x1000).length, 2);
    s.apply(s.ev.close(100, 5));
    assert.deepEqual(s.model.lookupPfn(0x1000).map((h) => h.pin), [b]);
    assert.ok(!a.live);
  });

  test('kprobe gup: a standalone long-term pin with exact pfns; unpin releases it; short-term pins ignored', () => {
    const s = setup();
    s.anon(300, BUF, 4, 0x1000); // pagemap says 0x1000.., GUP says otherwise: GUP wins
    const fx = s.apply(s.ev.gup(300, BUF, [0x8000, 0x8001], 0x100 | 0x1));
    const p = fx.created[0];
    assert.equal(p.source, 'gup');
    assert.deepEqual(pinnedOf(p), [0x8000, 0x8001]);
    assert.ok(p.writable && p.longterm);
    assert.equal(s.apply(s.ev.gup(300, BUF, [0x9000], 0x1, 'pin_user_pages_fast')).created.length, 0, 'no FOLL_LONGTERM');
    assert.equal(s.apply(s.ev.unpin(300, 0x8001)).released[0].pin, p);
  });

  test('kprobe gup made by VFIO (one call per page on 5.10) gives the MAP_DMA its exact pfns, no pin of its own', () => {
    const s = setup();
    s.anon(300, BUF, 4, 0x1000);
    const flags = 0x100 | 0x1; // FOLL_LONGTERM | FOLL_WRITE (6.3+ numbering)
    for (let i = 0; i < 4; i++) {
      const g = s.apply(s.ev.gup(300, BUF + i * PAGE, [0x8000 + i], flags, 'pin_user_pages_remote', { source: 'vfio' }));
      assert.equal(g.created.length, 0, 'held for the mapping');
    }
    const fx = s.apply(s.ev.vfio(300, 'map', 7, BUF, 0x200000, 4 * PAGE, 3));
    assert.equal(fx.created.length, 1);
    const p = fx.created[0];
    assert.equal(p.source, 'vfio');
    assert.deepEqual(pinnedOf(p), [0x8000, 0x8001, 0x8002, 0x8003]);
    assert.equal(p.snapshotNs, p.createdNs, 'every pfn from GUP: exact');
    assert.equal(s.model.livePinCount, 1);
    assert.equal(s.apply(s.ev.unpin(300, 0x8001)).released.length, 0, 'VFIO pins end at UNMAP_DMA, not per unpin');
  });

  test('kprobe gup made by ib_umem_get is an RDMA MR pin named by its address range; unpin releases it', () => {
    const s = setup();
    s.anon(300, BUF, 4, 0x1000);
    const fx = s.apply(s.ev.gup(300, BUF, [0x8000, 0x8001, 0x8002, 0x8003], 0x100 | 0x1, 'pin_user_pages_fast', { source: 'rdma' }));
    const p = fx.created[0];
    assert.equal(p.source, 'rdma');
    assert.equal(p.handleText, `MR 0x${BUF.toString(16)}+0x4000 (ib_umem_get)`);
    assert.ok(p.longterm && p.writable);
    assert.equal(s.apply(s.ev.unpin(300, 0x8002)).released[0].pin, p);
  });

  test('kprobe gup inside a registration gives the registration exact pfns', () => {
    const s = setup();
    s.anon(100, BUF, 2, 0x1000);
    s.apply(s.ev.iovec(100, 5, 0, BUF, 2 * PAGE));
    s.apply(s.ev.gup(100, BUF, [0x4000, 0x4001]));
    s.step();
    const fx = s.apply(s.ev.pinResult(100, 5, 1, 0));
    assert.equal(fx.created.length, 1, 'no separate gup pin');
    assert.deepEqual(pinnedOf(fx.created[0]), [0x4000, 0x4001]);
  });

  test('userfaultfd: register, unregister, close of the uffd fd', () => {
    const s = setup();
    s.apply(s.ev.uffd(100, 'register', 9, BUF, MiB2, 1));
    const proc = s.model.process(100)!;
    assert.equal(proc.uffd.at(BUF + PAGE)?.value.mode, 1);
    s.apply(s.ev.uffd(100, 'unregister', 9, BUF, PAGE, 0));
    assert.equal(proc.uffd.at(BUF), undefined);
    assert.ok(proc.uffd.at(BUF + PAGE));
    assert.equal(s.apply(s.ev.uffd(100, 'register', 9, BUF, PAGE, 1, -22)) && proc.uffd.at(BUF), undefined, 'failed register');
    s.apply(s.ev.close(100, 9));
    assert.equal(proc.uffd.size, 0);
  });

  test('fault regions (all-pins): each pinned 2 MiB region once, sorted, gone with the pins', () => {
    const s = setup({ faultWatch: 'all-pins' });
    const A = 0x7f00_0000_0000;
    s.anon(100, A + MiB2 - PAGE, 2, 0x1000); // straddles two regions
    s.anon(50, BUF, 1, 0x2000);
    s.register(100, 5, [[A + MiB2 - PAGE, 2 * PAGE]]);
    s.register(50, 5, [[BUF, PAGE]]);
    const r0 = Math.floor(A / MiB2);
    assert.deepEqual(s.model.faultRegions(), [
      { pid: 50, region: Math.floor(BUF / MiB2) },
      { pid: 100, region: r0 },
      { pid: 100, region: r0 + 1 },
    ]);
    s.apply(s.ev.exit(100));
    assert.deepEqual(s.model.faultRegions(), [{ pid: 50, region: Math.floor(BUF / MiB2) }]);
  });

  test('fault regions (armed): only the hard-zapped pages\' regions; a fork arms the whole pin where the parent can COW', () => {
    const A = 0x7f00_0000_0000;
    const r0 = Math.floor(A / MiB2);
    const s = setup({ kernelRelease: '6.18.0' });
    s.anon(100, A, 1024, 0x10000); // 4 MiB: two regions
    s.register(100, 5, [[A, 1024 * PAGE]]);
    assert.deepEqual(s.model.faultRegions(), [], 'intact pins: nothing a fault can show');
    s.apply(s.ev.fork(100, 101));
    assert.deepEqual(s.model.faultRegions(), [], '5.9+: FOLL_PIN pages are copied for the child at fork');
    s.apply(s.ev.madvise(100, A + MiB2 + PAGE, PAGE, MADV.FREE));
    assert.deepEqual(s.model.faultRegions(), [], 'MADV_FREE is advisory: the page stays until reclaim, which pins stop');
    s.apply(s.ev.madvise(100, A + MiB2 + PAGE, PAGE, MADV.DONTNEED));
    assert.deepEqual(s.model.faultRegions(), [{ pid: 100, region: r0 + 1 }], 'the zapped page\'s region only');
    const old = setup({ kernelRelease: '5.4.0' });
    old.anon(100, A, 1024, 0x10000);
    old.register(100, 5, [[A, 1024 * PAGE]]);
    old.apply(old.ev.fork(100, 101));
    assert.deepEqual(old.model.faultRegions(), [{ pid: 100, region: r0 }, { pid: 100, region: r0 + 1 }], 'before 5.9 the parent\'s write COWs');
    const splice = setup({ kernelRelease: '6.18.0' });
    splice.anon(100, A, 2, 0x10000);
    splice.apply(splice.ev.iovec(100, 4, 0, A, 2 * PAGE, { source: 'vmsplice' }));
    splice.apply(splice.ev.pinResult(100, 4, 1, 2 * PAGE, { source: 'vmsplice' }));
    assert.deepEqual(splice.model.faultRegions(), []);
    splice.apply(splice.ev.fork(100, 101));
    assert.deepEqual(splice.model.faultRegions(), [{ pid: 100, region: r0 }], 'vmsplice holds FOLL_GET references: shared at fork on every kernel');
  });

  test('pin state follows the worst page; its run reports current pfns', () => {
    const s = setup();
    s.anon(100, BUF, 2, 0x1000);
    const [p] = s.register(100, 5, [[BUF, 2 * PAGE]]);
    p.setCurrentPfn(1, 0x5555);
    p.setFlag(1, PG_DIVERGED);
    assert.equal(p.state, 'diverged');
    assert.equal(pageAt(p.toPin().runs, 1)?.currentPfn, 0x5555);
    assert.equal(p.toSummary().divergedPages, 1);
    assert.equal(p.toSummary().pageCount, 2);
  });

  test('odd input never throws', () => {
    const s = setup();
    const weird: TraceEvent[] = [
      s.ev.pinResult(1, 5, 3, 0),
      s.ev.pinResult(1, 5, 0, 0, { opcode: 1 }),
      s.ev.munmap(1, 0, 0),
      s.ev.mremap(1, 0, 0, 0, 0, 0),
      s.ev.fault(1, -1),
      s.ev.collapseFile(1, 0, 1),
      s.ev.exit(999),
      s.ev.close(999, 1),
      s.ev.unpin(1, NaN),
      s.ev.vfio(1, 'unmap', 3, 0, 0, 0, 0),
      { ...s.ev.lost(3) },
      { tsNs: 0, pid: 1, tid: 1, comm: '', kind: 'bogus' } as unknown as TraceEvent,
    ];
    for (const e of weird) assert.doesNotThrow(() => s.apply(e));
  });
});
