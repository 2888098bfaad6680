// The sweep's budget on a simulated clock: reads cost CPU per page (pins of very different cost), the pass is
// driven as the Verifier drives it (nextChunk per pin, spent, endPass, handedOff), and the sweep never spends
// more than its share of the time since the last pass by more than one page's cost; what handing a pass on costs
// and what the rest of the process spends are paid out of the next passes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SWEEP_CHUNK, SweepBudget } from '../../../collector/verify/sweep.ts';

interface SimPin {
  id: number;
  pages: number;
  /** CPU ms a page of this pin costs to read and check. */
  msPerPage: number;
}

class SimClock {
  now = 1000;
  cpu = 50;
  spend(ms: number): void {
    this.now += ms;
    this.cpu += ms;
  }
}

/** One pass as Verifier.sweep makes it; returns the CPU it spent and the pages it read. */
function pass(b: SweepBudget, clock: SimClock, pins: SimPin[], at: { pin: number; page: number }): { cpuMs: number; pages: number } {
  const cpu0 = clock.cpu;
  let pages = 0;
  b.startPass(pins.reduce((n, p) => n + p.pages, 0));
  for (let chunk = b.nextChunk(pins[at.pin].id); chunk > 0; chunk = b.nextChunk(pins[at.pin].id)) {
    const pin = pins[at.pin];
    const n = Math.min(chunk, pin.pages - at.page);
    assert.ok(n <= SWEEP_CHUNK);
    clock.spend(n * pin.msPerPage);
    b.spent(n);
    pages += n;
    at.page += n;
    if (at.page >= pin.pages) {
      if (at.pin === pins.length - 1) b.cycleDone();
      at.pin = (at.pin + 1) % pins.length;
      at.page = 0;
    }
  }
  b.endPass();
  return { cpuMs: clock.cpu - cpu0, pages };
}

const PINS: SimPin[] = [
  { id: 1, pages: 2_000_000, msPerPage: 0.00005 }, // THP-backed, quiet: one compare loop
  { id: 2, pages: 300_000, msPerPage: 0.002 }, // fragmented: a verdict a page
  { id: 3, pages: 50_000, msPerPage: 0.0004 },
];
const MAX_PAGE_MS = Math.max(...PINS.map((p) => p.msPerPage));

test('a pass never spends more than its share of the time since the last pass, by more than one page', () => {
  const clock = new SimClock();
  const b = new SweepBudget({ cpuShare: 0.05, intervalMs: 500, nowMs: () => clock.now, cpuMs: () => clock.cpu });
  const at = { pin: 0, page: 0 };
  let prevStart = -1;
  let total = 0;
  let pages = 0;
  const start = clock.now;
  for (let k = 0; k < 400; k++) {
    const begin = clock.now;
    const period = prevStart < 0 ? 500 : begin - prevStart;
    prevStart = begin;
    const r = pass(b, clock, PINS, at);
    assert.ok(r.cpuMs <= 0.05 * period + MAX_PAGE_MS + 1e-9, `pass ${k}: ${r.cpuMs} ms of ${0.05 * period}`);
    total += r.cpuMs;
    pages += r.pages;
    b.handedOff(); // nothing spent handing on
    clock.now += 500; // the interval, idle
  }
  const share = total / (clock.now - start);
  assert.ok(share <= 0.05 + 1e-9, `share ${share}`);
  assert.ok(share > 0.045, `the budget is used, not wasted: ${share}`);
  const s = b.snapshot();
  assert.ok(s.fullSweeps >= 1, 'every pin was read');
  assert.equal(s.pagesVerified, pages);
});

test('the hand-off and the rest of the process are paid out of the next passes (the rest: at most half)', () => {
  const clock = new SimClock();
  const b = new SweepBudget({ cpuShare: 0.05, intervalMs: 500, nowMs: () => clock.now, cpuMs: () => clock.cpu });
  const at = { pin: 0, page: 0 };
  let sweep = 0;
  let other = 0;
  const start = clock.now;
  for (let k = 0; k < 200; k++) {
    sweep += pass(b, clock, PINS, at).cpuMs;
    clock.spend(2); // rules' tick and sinks
    sweep += 2;
    b.handedOff();
    clock.now += 500;
    clock.cpu += 1; // timers, GC: the idle collector's own
    other += 1;
  }
  const whole = (sweep + other) / (clock.now - start);
  assert.ok(whole <= 0.05 + 1e-3, `the whole idle process within the share: ${whole}`);
  // Busy with events: the rest of the process takes far more than the share, the sweep still gets half of it.
  let busySweep = 0;
  const t0 = clock.now;
  for (let k = 0; k < 50; k++) {
    busySweep += pass(b, clock, PINS, at).cpuMs;
    b.handedOff();
    clock.now += 500;
    clock.cpu += 300;
  }
  const busyShare = busySweep / (clock.now - t0);
  assert.ok(busyShare >= 0.024 && busyShare <= 0.026, `half the share while busy: ${busyShare}`);
});

test('fixed pages per pass (tests) ignore the clock', () => {
  const clock = new SimClock();
  const b = new SweepBudget({ cpuShare: 0.05, intervalMs: 500, maxPagesPerPass: 3, nowMs: () => clock.now, cpuMs: () => clock.cpu });
  const r = pass(b, clock, [{ id: 1, pages: 10, msPerPage: 100 }], { pin: 0, page: 0 });
  assert.equal(r.pages, 3);
});
