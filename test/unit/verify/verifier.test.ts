// The verifier: the verdict table, delayed and coalesced reads, the periodic pass (only changes
// reported), a process that vanishes mid-check, flushPid and readNow, all on a fake clock and pagemap.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { PagemapRead } from '../../../schema/anomalies.ts';
import { MADV } from '../../../schema/kernel.ts';
import { DEFAULT_COLLECTOR_CONFIG } from '../../../collector/contracts.ts';
import { PG_HARD_ZAP, PG_LATE, PG_WRITE_AFTER_ZAP, PG_DIVERGED } from '../../../collector/model/pin-record.ts';
import { ShadowModel } from '../../../collector/model/shadow-model.ts';
import { FakeMapsReader, FakePagemapReader, FakeTime, modelApplier } from '../../support/fakes.ts';
import { PinTimeReader } from '../../../collector/verify/pin-time.ts';
import { Verifier, classifyPage, type PageCheck, type Verification, type VerifierOptions } from '../../../collector/verify/verifier.ts';
import { BUF, EventBuilder, PAGE } from '../pipeline/harness.ts';

describe('classifyPage', () => {
  const IMPLIED = PG_HARD_ZAP | PG_WRITE_AFTER_ZAP;
  const cases: [string, number, number, boolean, boolean, number, string | null, string | null][] = [
    // name, flags, pinned, present, hidden, pfn, error, verdict
    ['same page', 0, 0x10, true, false, 0x10, null, null],
    ['other page', 0, 0x10, true, false, 0x20, null, 'confirmed'],
    ['other page, late snapshot', PG_LATE, 0x10, true, false, 0x20, null, 'inferred'],
    ['not present, no implication', PG_HARD_ZAP, 0x10, false, false, NaN, null, null],
    ['not present after zap + write', IMPLIED, 0x10, false, false, NaN, null, 'inferred'],
    ['process gone after zap + write', IMPLIED, 0x10, false, false, NaN, 'process gone (ENOENT)', 'inferred'],
    ['process gone, nothing implied', 0, 0x10, false, false, NaN, 'process gone (ENOENT)', null],
    ['hidden pfns after zap + write', IMPLIED, 0x10, true, true, NaN, null, 'inferred'],
    ['hidden pfns, nothing implied', 0, 0x10, true, true, NaN, null, null],
    ['pinned pfn unknown, implied', IMPLIED, NaN, true, false, 0x20, null, 'inferred'],
    ['pinned pfn unknown', 0, NaN, true, false, 0x20, null, null],
    ['same pfn as a late snapshot, implied', IMPLIED | PG_LATE, 0x10, true, false, 0x10, null, 'inferred'],
    ['same pfn, implied but not late: pagemap wins', IMPLIED, 0x10, true, false, 0x10, null, null],
  ];
  for (const [name, flags, pinned, present, hidden, pfn, error, want] of cases) {
    test(name, () => assert.equal(classifyPage(flags, pinned, present, hidden, pfn, error).divergence, want));
  }
});

interface Outlet {
  onRead?(read: PagemapRead, reason: string): void;
  onCheck?(c: PageCheck): void;
  onProcessGone?(pid: number): void;
  onTick?(): void;
}

/**
 * A Verifier whose results (returned by its methods, or handed over by its timers) go to `out` in the order the
 * Collector hands them on: reads and checks as found, then gone processes, then the tick. readNow's reads are
 * reported too, as the Collector does.
 */
function verifier(opts: Omit<VerifierOptions, 'onTimerPass' | 'maps'>, out: Outlet): Verifier {
  const hand = (r: Verification | null) => {
    if (!r) return;
    for (const f of r.findings) {
      if (f.read) out.onRead?.(f.read, f.reason);
      else out.onCheck?.(f.check);
    }
    for (const pid of r.gone) out.onProcessGone?.(pid);
    if (r.tickNs !== null) out.onTick?.();
  };
  const v = new Verifier({ ...opts, maps: new FakeMapsReader(), onTimerPass: hand });
  return new Proxy(v, {
    get(target, key) {
      const value = Reflect.get(target, key, target);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const r = value.apply(target, args);
        if (key === 'readNow') for (const read of r as PagemapRead[]) out.onRead?.(read, args[3] as string);
        else if (r && typeof r === 'object' && 'findings' in r) hand(r as Verification);
        return r;
      };
    },
  });
}

function setup(config = {}) {
  const time = new FakeTime();
  const pagemap = new FakePagemapReader(time);
  const maps = new FakeMapsReader();
  const model = new ShadowModel({ follNumbering: '6.3' });
  const pinTime = new PinTimeReader({ pagemap, maps, clock: time });
  const reads: { read: PagemapRead; reason: string }[] = [];
  const checks: PageCheck[] = [];
  const gone: number[] = [];
  let ticks = 0;
  const cfg = { ...DEFAULT_COLLECTOR_CONFIG, readSettleMs: 0, ...config };
  const v = verifier({ model, reader: pagemap, clock: time, scheduler: time, config: cfg }, {
    onRead: (read, reason) => reads.push({ read, reason }),
    onCheck: (c) => checks.push(c),
    onProcessGone: (pid) => {
      gone.push(pid);
      model.processGone(pid, time.nowNs());
    },
    onTick: () => ticks++,
  });
  const ev = new EventBuilder(time);
  const apply = modelApplier(model, pinTime);
  maps.add(100, BUF, BUF + 4 * PAGE);
  pagemap.map(100, BUF, 0x1000, 4);
  apply(ev.iovec(100, 5, 0, BUF, 4 * PAGE));
  time.set(time.nowNs() + 1000);
  const pin = apply(ev.pinResult(100, 5, 1, 0)).created[0];
  time.set(time.nowNs() + 1000);
  return { time, pagemap, maps, model, v, reads, checks, gone, ev, apply, pin, ticks: () => ticks };
}

describe('Verifier', () => {
  test('a scheduled read happens after verifyDelayMs, coalesced, and confirms a divergence', () => {
    const s = setup({ verifyDelayMs: 20 });
    const fx = s.apply(s.ev.madvise(100, BUF + PAGE, PAGE, MADV.DONTNEED));
    s.v.schedule(fx.zaps[0].pin, 1, 1, 'MADV_DONTNEED');
    s.pagemap.map(100, BUF + PAGE, 0x9999); // the process wrote: a new page
    const f = s.apply(s.ev.fault(100, BUF + PAGE, true));
    s.v.schedule(f.touched[0].pin, 1, 1, 'MADV_DONTNEED');
    const callsBefore = s.pagemap.calls.length;
    s.time.advance(19);
    assert.equal(s.reads.length, 0, 'not before the delay');
    s.time.advance(1);
    assert.equal(s.pagemap.calls.length - callsBefore, 1, 'two schedules of the same page: one read');
    assert.equal(s.reads.length, 1);
    assert.equal(s.reads[0].reason, 'MADV_DONTNEED');
    assert.equal(s.checks[0].divergence, 'confirmed');
    assert.equal(s.checks[0].addr, BUF + PAGE);
    assert.equal(s.checks[0].read.pfn, 0x9999);
    assert.equal(s.pin.currentPfnAt(1), 0x9999);
    assert.ok(s.pin.flagsAt(1) & PG_DIVERGED);
    assert.equal(s.pin.state, 'diverged');
  });

  test('an event-triggered read of an intact page reports it with no divergence', () => {
    const s = setup();
    s.v.schedule(s.pin, 0, 4, 'fault');
    s.v.runPending();
    assert.equal(s.reads.length, 4);
    assert.ok(s.checks.every((c) => c.divergence === null));
  });

  test('the periodic pass reads every live pin but reports only changes; it stops when no pin lives', () => {
    const s = setup({ verifyIntervalMs: 500 });
    s.v.updatePeriodic();
    s.time.advance(500);
    assert.equal(s.ticks(), 1);
    assert.equal(s.reads.length, 0, 'nothing changed');
    s.pagemap.map(100, BUF + 2 * PAGE, 0x7777);
    s.time.advance(500);
    assert.equal(s.reads.length, 1);
    assert.equal(s.reads[0].reason, 'timer');
    assert.equal(s.checks[0].divergence, 'confirmed');
    s.time.advance(500);
    assert.equal(s.reads.length, 1, 'an unchanged diverged page is not reported again');
    s.apply(s.ev.close(100, 5));
    s.time.advance(500);
    assert.equal(s.time.pendingTimers, 0, 'no pins: the periodic timer is not re-armed');
  });

  test('process gone mid-check: error read, inferred divergence for a zapped-then-written page, onProcessGone', () => {
    const s = setup();
    s.apply(s.ev.madvise(100, BUF, PAGE, MADV.DONTNEED));
    s.apply(s.ev.fault(100, BUF, true));
    s.v.schedule(s.pin, 0, 4, 'fault');
    s.pagemap.kill(100);
    assert.doesNotThrow(() => s.v.runPending());
    assert.equal(s.reads.length, 1, 'one error read per run');
    assert.match(s.reads[0].read.error!, /process gone/);
    assert.equal(s.checks.length, 1);
    assert.equal(s.checks[0].divergence, 'inferred');
    assert.equal(s.checks[0].page, 0);
    assert.deepEqual(s.gone, [100]);
    assert.ok(!s.pin.live);
  });

  test('flushPid runs only that pid\'s pending reads, now', () => {
    const s = setup();
    s.maps.add(200, BUF, BUF + PAGE);
    s.pagemap.map(200, BUF, 0x2000, 1);
    s.apply(s.ev.iovec(200, 5, 0, BUF, PAGE));
    const other = s.apply(s.ev.pinResult(200, 5, 1, 0)).created[0];
    s.v.schedule(s.pin, 0, 1, 'fault');
    s.v.schedule(other, 0, 1, 'fault');
    s.v.flushPid(300);
    assert.equal(s.reads.length, 0);
    s.v.flushPid(100);
    assert.deepEqual(s.reads.map((r) => r.read.pid), [100]);
    assert.ok(s.v.hasPending, 'pid 200 still pending');
    s.time.advance(DEFAULT_COLLECTOR_CONFIG.verifyDelayMs);
    assert.deepEqual(s.reads.map((r) => r.read.pid), [100, 200]);
    assert.ok(!s.v.hasPending);
  });

  test('a late snapshot makes a pfn difference only inferred', () => {
    const s = setup();
    s.pin.setFlag(3, PG_LATE);
    s.pagemap.map(100, BUF + 3 * PAGE, 0x4444);
    s.v.schedule(s.pin, 3, 1, 'fault');
    s.v.runPending();
    assert.equal(s.checks[0].divergence, 'inferred');
    assert.match(s.checks[0].why, /late/);
  });

  test('readNow returns reads, reports them, updates current pfns, and skips checks', () => {
    const s = setup();
    s.pagemap.unmap(100, BUF);
    const r = s.v.readNow(s.pin, 0, 2, 'MADV_DONTNEED');
    assert.deepEqual(r.map((x) => x.present), [false, true]);
    assert.equal(s.reads.length, 2);
    assert.equal(s.checks.length, 0);
    assert.ok(Number.isNaN(s.pin.currentPfnAt(0)));
  });

  test('reads follow mremap moves', () => {
    const s = setup();
    const DST = BUF + 0x4000_0000;
    s.pagemap.map(100, DST, 0x1000, 4);
    s.apply(s.ev.mremap(100, BUF, 4 * PAGE, 4 * PAGE, 3, DST, DST));
    s.v.schedule(s.pin, 0, 4, 'mremap');
    s.v.runPending();
    assert.deepEqual(s.reads.map((r) => r.read.addr), [DST, DST + PAGE, DST + 2 * PAGE, DST + 3 * PAGE]);
    assert.ok(s.checks.every((c) => c.divergence === null), 'the pinned pages followed: no divergence');
  });

  test('the periodic pass keeps to its page budget and sweeps every pin round-robin', () => {
    const s = setup({ verifyIntervalMs: 500 });
    const v = verifier(
      { model: s.model, reader: s.pagemap, clock: s.time, scheduler: s.time, config: { ...DEFAULT_COLLECTOR_CONFIG, readSettleMs: 0 }, maxPagesPerPass: 3 },
      {},
    );
    // pin 1 (4 pages) exists; add pin 2 (4 pages) for pid 100 at another ring
    s.apply(s.ev.iovec(100, 6, 0, BUF, 4 * PAGE));
    s.apply(s.ev.pinResult(100, 6, 1, 0));
    const seen = () => s.pagemap.calls.reduce((n, c) => n + c.count, 0);
    const base = seen();
    const perPass: number[] = [];
    for (let k = 0; k < 3; k++) {
      const before = seen();
      v.runPeriodic();
      perPass.push(seen() - before);
    }
    assert.deepEqual(perPass, [3, 3, 3], 'budget respected (runs may split at pin boundaries)');
    assert.equal(seen() - base, 9, '8 pages swept in 3 passes, wrapping around');
    // A divergence on the last page of pin 2 is found within one sweep.
    s.pagemap.map(100, BUF + 3 * PAGE, 0x6666);
    const checks: string[] = [];
    const v2 = verifier(
      { model: s.model, reader: s.pagemap, clock: s.time, scheduler: s.time, config: { ...DEFAULT_COLLECTOR_CONFIG, readSettleMs: 0 }, maxPagesPerPass: 3 },
      { onCheck: (c) => checks.push(`${c.pin.id}:${c.page}:${c.divergence}`) },
    );
    for (let k = 0; k < 3; k++) v2.runPeriodic();
    assert.deepEqual(checks.sort(), ['1:3:confirmed', '2:3:confirmed']);
    const before = seen();
    v.runPeriodic(true);
    assert.equal(seen() - before, 8, 'a full pass reads everything');
  });

  test('close() cancels timers; schedule after close is ignored', () => {
    const s = setup();
    s.v.schedule(s.pin, 0, 1, 'fault');
    s.v.updatePeriodic();
    assert.equal(s.time.pendingTimers, 2);
    s.v.close();
    assert.equal(s.time.pendingTimers, 0);
    s.v.schedule(s.pin, 0, 1, 'fault');
    assert.equal(s.time.pendingTimers, 0);
  });
});
