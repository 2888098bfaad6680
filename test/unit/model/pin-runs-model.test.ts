// The shadow model keeps a pin's pages as runs (page-runs.ts): what events do to a run — split, move (mremap),
// partial zap, divergence of one page inside it — the dense fallback of a fragmented pin, what a publish carries
// (runs, O(runs)), and a 2^24-page (64 GiB) pin registered through model, pfn index and publish.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MADV, MREMAP_FIXED, MREMAP_MAYMOVE } from '../../../schema/kernel.ts';
import { ShadowModel } from '../../../collector/model/shadow-model.ts';
import { PG_HARD_ZAP, PG_UNMAPPED, PG_ZAPPED, type PinRecord } from '../../../collector/model/pin-record.ts';
import { PinTimeReader } from '../../../collector/verify/pin-time.ts';
import { PM_PRESENT, type PagemapBulkReader } from '../../../collector/verify/pagemap.ts';
import type { PagemapRead } from '../../../schema/anomalies.ts';
import { DEFAULT_COLLECTOR_CONFIG } from '../../../collector/contracts.ts';
import { Verifier } from '../../../collector/verify/verifier.ts';
import { FakeMapsReader, FakeTime, modelApplier } from '../../support/fakes.ts';
import { BUF, EventBuilder, PAGE } from '../pipeline/harness.ts';

/** pagemap by arithmetic: page k of BUF maps pfnOf(k) (no per-page entries: 2^24 pages are fine). */
class ArithPagemap implements PagemapBulkReader {
  constructor(public pfnOf: (page: number) => number) {}
  readInto(_pid: number, addr: number, count: number, pfnOut: Float64Array, stateOut: Uint8Array, offset: number): string | null {
    const first = (addr - BUF) / PAGE;
    for (let i = 0; i < count; i++) {
      pfnOut[offset + i] = this.pfnOf(first + i);
      stateOut[offset + i] = PM_PRESENT;
    }
    return null;
  }
  read(pid: number, addr: number, count: number): PagemapRead[] {
    return Array.from({ length: count }, (_, i) => ({ tsNs: 0, pid, addr: addr + i * PAGE, present: true, swapped: false, pfn: this.pfnOf((addr - BUF) / PAGE + i) }));
  }
}

function setup(pfnOf: (page: number) => number) {
  const time = new FakeTime();
  const pagemap = new ArithPagemap(pfnOf);
  const maps = new FakeMapsReader();
  const model = new ShadowModel({ follNumbering: '6.3' });
  const pinTime = new PinTimeReader({ pagemap, maps, clock: time });
  const ev = new EventBuilder(time);
  const apply = modelApplier(model, pinTime, () => time.set(time.nowNs() + 1000));
  const vfioPin = (pages: number): PinRecord => {
    maps.add(100, BUF, BUF + pages * PAGE);
    apply(ev.vfio(100, 'map', 9, BUF, 0, pages * PAGE));
    const pin = [...model.livePins()].at(-1)!;
    time.set(time.nowNs() + 1_000_000);
    return pin;
  };
  return { time, pagemap, maps, model, ev, apply, vfioPin };
}

const CONTIG = 0x100000;

describe('a pin as runs', () => {
  test('a THP-backed pin is one run; a zap in its middle splits the flags into three runs, pfns untouched', () => {
    const s = setup((k) => CONTIG + k);
    const pin = s.vfioPin(4096);
    assert.equal(pin.toPin().runs.length, 1);
    assert.equal(pin.uniformEnd(0), 4096);
    s.apply(s.ev.madvise(100, BUF + 1000 * PAGE, 24 * PAGE, MADV.DONTNEED));
    assert.equal(pin.zappedPages, 24);
    assert.equal(pin.flagsAt(999), 0);
    assert.equal(pin.flagsAt(1000) & (PG_ZAPPED | PG_HARD_ZAP), PG_ZAPPED | PG_HARD_ZAP);
    assert.equal(pin.flagsAt(1024), 0);
    assert.equal(pin.uniformEnd(0), 1000);
    assert.equal(pin.uniformEnd(1000), 1024);
    assert.equal(pin.pinnedPfnAt(1010), CONTIG + 1010);
    assert.ok(pin.pageStateBytes() < 256, `${pin.pageStateBytes()} bytes for 4096 pages`);
  });

  test('partial zap at the end (munmap of the tail): unmapped pages counted once, the rest one run', () => {
    const s = setup((k) => CONTIG + k);
    const pin = s.vfioPin(1024);
    s.apply(s.ev.munmap(100, BUF + 1000 * PAGE, 100 * PAGE));
    s.apply(s.ev.munmap(100, BUF + 1010 * PAGE, 4 * PAGE)); // again: no double count
    assert.equal(pin.zappedPages, 24);
    assert.ok(pin.flagsAt(1023) & PG_UNMAPPED);
    assert.equal(pin.uniformEnd(0), 1000);
    assert.equal(pin.state, 'zapped');
  });

  test('mremap moves the middle of a run: the pfn run stays, the published runs split by address', () => {
    const s = setup((k) => CONTIG + k);
    const pin = s.vfioPin(1024);
    const to = BUF + 0x10000000;
    s.apply(s.ev.mremap(100, BUF + 256 * PAGE, 256 * PAGE, 256 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, to, to));
    assert.equal(pin.pageAt(to + 3 * PAGE), 259);
    const runs = pin.toPin().runs;
    assert.deepEqual(runs.map((r) => [r.page, r.count, r.pinnedPfn, r.mappedAddr]), [
      [0, 256, CONTIG, undefined],
      [256, 256, CONTIG + 256, to],
      [512, 512, CONTIG + 512, undefined],
    ]);
  });

  test('one page inside a run diverges: current pfns split, pinned pfns stay one run', () => {
    const s = setup((k) => CONTIG + k);
    const pin = s.vfioPin(2048);
    assert.equal(pin.setCurrentPfn(700, 0x999999), true);
    assert.equal(pin.setCurrentPfn(700, 0x999999), false, 'no change the second time');
    assert.equal(pin.currentPfnAt(700), 0x999999);
    assert.equal(pin.currentPfnAt(701), CONTIG + 701);
    assert.equal(pin.pinnedPfnAt(700), CONTIG + 700);
    assert.equal(pin.pinnedPfns.runCount, 1);
    const runs = pin.toPin().runs;
    assert.deepEqual(runs.map((r) => [r.page, r.count, r.currentPfn]), [[0, 700, CONTIG], [700, 1, 0x999999], [701, 1347, CONTIG + 701]]);
    assert.deepEqual(s.model.lookupPfn(CONTIG + 700).map((h) => h.page), [700], 'the pfn index finds the pinned page');
  });

  test('a fragmented pin falls back to dense arrays; lookups and publish still hold', () => {
    const s = setup((k) => 0x500000 + 2 * k + (k % 2) * 7);
    const pin = s.vfioPin(3000);
    assert.ok(pin.pinnedPfns.isDense);
    assert.equal(pin.pageStateBytes(), 3000 * 4 + 16, 'u32 pfns and one run of flags');
    assert.equal(pin.pinnedPfnAt(1234), 0x500000 + 2 * 1234);
    assert.deepEqual(s.model.lookupPfn(0x500000 + 2 * 1235 + 7).map((h) => h.page), [1235]);
    const p = pin.toPin(1000);
    assert.equal(p.runs.length, 1000);
    assert.equal(p.omittedPages, 2000, 'pages past the run cap are counted, not sent');
  });
});

describe('a fragmented pin filled in bulk', () => {
  test('holds exactly the pfns read page by page, is indexed by them, and a one-page divergence in it is found', () => {
    const pages = 150_000; // three pin-time reads
    const scatter = (k: number) => (Math.imul(k, 0x9e3779b1) & (2 ** 22 - 1)) >>> 0; // no two neighbours adjacent
    const s = setup(scatter);
    const pin = s.vfioPin(pages);
    assert.ok(pin.pinnedPfns.isDense);
    for (let k = 0; k < pages; k++) if (pin.pinnedPfnAt(k) !== scatter(k)) assert.fail(`page ${k}: ${pin.pinnedPfnAt(k)} ≠ ${scatter(k)}`);
    assert.equal(s.model.pfns.size, pages);
    for (const k of [0, 1, 65535, 65536, 123_457, pages - 1]) assert.deepEqual(s.model.lookupPfn(scatter(k)).map((h) => h.page), [k]);
    s.pagemap.pfnOf = (k) => (k === 123_457 ? 0x7777777 : scatter(k));
    const v = new Verifier({
      model: s.model, reader: s.pagemap, maps: s.maps, clock: s.time, scheduler: s.time,
      config: { ...DEFAULT_COLLECTOR_CONFIG, readSettleMs: 0 }, onTimerPass: () => {},
    });
    const found = v.runPeriodic(true).findings.filter((f) => f.check?.divergence).map((f) => [f.check!.page, f.check!.divergence]);
    assert.deepEqual(found, [[123_457, 'confirmed']]);
    assert.equal(pin.divergedPages, 1);
    assert.equal(pin.currentPfnAt(123_457), 0x7777777);
    assert.equal(pin.pinnedPfnAt(123_457), scatter(123_457), 'the pinned pfn stays what the device holds');
    const again = v.runPeriodic(true).findings.filter((f) => f.check !== undefined || f.read !== undefined);
    assert.deepEqual(again, [], 'the next pass: nothing new (the page is known diverged, the rest quiet)');
    s.pagemap.pfnOf = (k) => (k === 99 ? 0x6666666 : k === 123_457 ? 0x7777777 : scatter(k));
    const second = v.runPeriodic(true).findings.filter((f) => f.check?.divergence).map((f) => f.check!.page);
    assert.deepEqual(second, [99], 'with current pfns kept apart, a second divergence is still found');
  });
});

describe('scale', () => {
  test('a 2^24-page (64 GiB) THP-backed pin: registered, indexed and published in O(runs)', () => {
    const s = setup((k) => CONTIG + k + (Math.floor(k / 4194304) * 8388608)); // 16 GiB extents, apart
    const t0 = performance.now();
    const pin = s.vfioPin(2 ** 24);
    const ms = performance.now() - t0;
    assert.equal(pin.nPages, 2 ** 24);
    assert.equal(pin.truncated, false);
    assert.equal(pin.pinnedPfns.runCount, 4);
    assert.ok(pin.pageStateBytes() < 1024);
    assert.equal(s.model.pfns.size, 2 ** 24);
    assert.equal(s.model.pfns.shape.chunks, 0, 'no per-pfn counts for long runs');
    const last = 2 ** 24 - 1;
    assert.deepEqual(s.model.lookupPfn(pin.pinnedPfnAt(last)).map((h) => h.page), [last]);
    const p = pin.toPin();
    assert.equal(p.runs.length, 4);
    assert.ok(ms < 20_000, `registration took ${ms} ms`);
    s.apply(s.ev.munmap(100, BUF, 2 ** 24 * PAGE));
    assert.equal(pin.zappedPages, 2 ** 24);
  });
});
