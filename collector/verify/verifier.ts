// The pagemap verifier: after an event that may have moved a pinned page (zap, remap, fault in a pinned
// page, collapse, fork, KSM/migration/writeback on a pinned pfn) it re-reads those pages after
// verifyDelayMs, and it re-reads every live pin every verifyIntervalMs. Each read is compared with the pfn
// the device holds:
//   confirmed – the page is present and its pfn differs from the pinned pfn (snapshot not late);
//   inferred  – only the events imply it (a hard zap, then a write fault there) but pagemap cannot show it
//               (process gone, page not present yet, pfns hidden, pinned pfn unknown) or the pin-time
//               snapshot was late (see model/state.ts).
// Each pass hands its reads (for the sinks) and checks (for the rules) back as a Verification. Event-triggered
// reads are all reported; the periodic pass reports only pages whose pfn changed or that newly diverged (1M
// pinned pages must not mean 1M rows per pass). The timer's pass is a budgeted sweep (sweep.ts): it reads pins
// round-robin, in chunks, until it has used verifyCpuShare of the interval (or maxPagesPerPass pages in tests),
// and compares stretch by stretch: where a pin's pinned/current pfns and flags are uniform and pagemap shows the
// same run, the stretch is quiet and costs one compare loop, with no per-page verdict.
import type { PagemapRead } from '../../schema/anomalies.ts';
import type { CollectorConfig, PagemapReader } from '../contracts.ts';
import { PG_DIVERGED, type PinRecord } from '../model/pin-record.ts';
import type { VerifySweep } from '../../schema/metrics.ts';
import { SWEEP_CHUNK, SweepBudget } from './sweep.ts';
import type { ShadowModel } from '../model/shadow-model.ts';
import { PAGE_SIZE } from '../../schema/kernel.ts';
import { PM_HIDDEN, PM_PRESENT, isProcessGoneError, readPagesInto, toPagemapRead } from './pagemap.ts';
import { classifyPage, type PageCheck } from './classify.ts';
import { ReadSettler } from './settle.ts';
import type { Clock, Scheduler, TimerHandle } from '../clock.ts';
import type { Admission, ModelEffects, PinTimeReads } from '../model/effects.ts';
import type { MapsReader } from '../model/maps.ts';
import { PinTimeReader } from './pin-time.ts';

/** Per-CPU perf buffers reorder events by a little: an event this much after a read proves the stream passed it. */
const READ_SLACK_NS = 2_000_000;

export { classifyPage, type Divergence, type PageCheck } from './classify.ts';

/** One thing a pass found, in the order found: a read (for the sinks) or a check whose verdict stands (for the rules). */
export type Finding =
  | { read: PagemapRead; reason: string; check?: undefined }
  | { check: PageCheck; read?: undefined; /** Held until the stream passed its read (settle.ts). */ settled: boolean };

/** What one verification pass produced; the Collector hands it on (sinks, rules, model) in this order. */
export interface Verification {
  findings: Finding[];
  /** Processes a read found gone (their exit event may have been lost). */
  gone: number[];
  /** A periodic pass ended at this time: the rules' tick. */
  tickNs: number | null;
}

export interface VerifierOptions {
  model: ShadowModel;
  reader: PagemapReader;
  maps: MapsReader;
  clock: Clock;
  scheduler: Scheduler;
  config: CollectorConfig;
  /** What a pass the verifier's own timers started produced (pending reads, periodic pass, a settle timeout). */
  onTimerPass(v: Verification): void;
  /**
   * Pages the timer's periodic pass reads at most (tests: a fixed budget). Default: no page limit, the pass reads
   * until it has used config.verifyCpuShare of the interval. With more pinned pages than a pass covers, the pass
   * sweeps them round-robin over several intervals. Event-triggered reads are not limited; runPeriodic(true)
   * (verifyNow, close) reads everything.
   */
  maxPagesPerPass?: number;
  /** Clocks of the sweep budget (tests). */
  sweepClock?: { nowMs(): number; cpuMs(): number };
}

interface PendingRange {
  first: number;
  count: number;
  reason: string;
}

export class Verifier {
  private readonly o: VerifierOptions;
  private pending = new Map<PinRecord, PendingRange[]>();
  private pendingTimer: TimerHandle | null = null;
  private periodicTimer: TimerHandle | null = null;
  private closed = false;
  private pfnBuf = new Float64Array(512);
  private stateBuf = new Uint8Array(512);
  private gone = new Set<number>();
  private out: Verification = { findings: [], gone: [], tickNs: null };
  private readonly settler: ReadSettler;
  private readonly pinTime: PinTimeReader;
  private readonly budget: SweepBudget;
  /** Where the budgeted periodic sweep continues: pin id and page. */
  private sweepPinId = -1;
  private sweepPage = 0;
  /** Counters for status and benchmarks. */
  readonly stats = { reads: 0, pagesRead: 0, passes: 0, errors: 0 };

  /** The background sweep: pages verified, last full sweep's duration, CPU share used. */
  get sweepStats(): VerifySweep {
    return this.budget.snapshot();
  }

  /** Verdicts held until the stream caught up with their read, delivered, dropped as stale. */
  get settleStats(): ReadSettler['stats'] {
    return this.settler.stats;
  }

  constructor(opts: VerifierOptions) {
    this.o = opts;
    this.budget = new SweepBudget({
      cpuShare: opts.config.verifyCpuShare,
      intervalMs: opts.config.verifyIntervalMs,
      maxPagesPerPass: opts.maxPagesPerPass === undefined ? undefined : Math.max(1, opts.maxPagesPerPass),
      nowMs: opts.sweepClock?.nowMs,
      cpuMs: opts.sweepClock?.cpuMs,
    });
    this.settler = new ReadSettler({
      scheduler: opts.scheduler,
      holdMs: opts.config.readSettleMs,
      slackNs: READ_SLACK_NS,
      deliver: (c) => this.deliver(c, true),
      reread: (c) => this.schedule(c.pin, c.page, 1, c.reason),
      afterTimer: () => this.timerPass(),
    });
    this.pinTime = new PinTimeReader({ pagemap: opts.reader, maps: opts.maps, clock: opts.clock });
  }

  /** The event stream reached tsNs (before that event is applied): verdicts of reads it passed are settled. */
  streamAt(tsNs: number): Verification | null {
    if (this.settler.pending === 0) return null; // every event: nothing held, nothing to hand over
    this.settler.settle(tsNs);
    return this.take();
  }

  /** Settle every held verdict now (final pass, tests). */
  settleAll(): Verification | null {
    this.settler.flush();
    return this.take();
  }

  /** Read what a registration's new pins and buffers need from /proc: backing (maps) and pinned pfns (pagemap). */
  pinTimeReads(admissions: readonly Admission[]): PinTimeReads {
    return this.pinTime.read(admissions);
  }

  /** What the model just did: pins whose identity changed void the verdicts of reads still settling. */
  noteEffects(fx: ModelEffects): void {
    if (this.settler.pending === 0) return;
    for (const z of fx.zaps) this.settler.bump(z.pin);
    for (const m of fx.moves) this.settler.bump(m.pin);
    for (const r of fx.released) this.settler.bump(r.pin);
    for (const p of fx.orphaned) this.settler.bump(p);
  }

  get hasPending(): boolean {
    return this.pending.size !== 0;
  }

  /** Re-read pages [firstPage, firstPage+count) of pin after verifyDelayMs. */
  schedule(pin: PinRecord, firstPage: number, count: number, reason: string): void {
    if (this.closed || !pin.live) return;
    let list = this.pending.get(pin);
    if (list === undefined) this.pending.set(pin, (list = []));
    const last = list[list.length - 1];
    if (last && last.reason === reason && firstPage <= last.first + last.count && firstPage + count >= last.first) {
      const end = Math.max(last.first + last.count, firstPage + count);
      last.first = Math.min(last.first, firstPage);
      last.count = end - last.first;
    } else {
      list.push({ first: firstPage, count, reason });
    }
    if (this.pendingTimer === null) {
      this.pendingTimer = this.o.scheduler.setTimeout(() => {
        this.pendingTimer = null;
        const v = this.runPending();
        if (v) this.o.onTimerPass(v);
      }, this.o.config.verifyDelayMs);
    }
  }

  /** Run the pending reads of pid's pins now (before its pins are released or it exits). */
  flushPid(pid: number): Verification | null {
    if (this.pending.size === 0) return null;
    const mine: [PinRecord, PendingRange[]][] = [];
    for (const entry of this.pending) if (entry[0].pid === pid) mine.push(entry);
    if (mine.length === 0) return null;
    for (const [pin] of mine) this.pending.delete(pin);
    for (const [pin, ranges] of mine) for (const r of ranges) this.readRange(pin, r.first, r.count, r.reason, true);
    return this.take(true);
  }

  /** Run every pending read now. */
  runPending(): Verification | null {
    if (this.pendingTimer !== null) {
      this.o.scheduler.clearTimeout(this.pendingTimer);
      this.pendingTimer = null;
    }
    if (this.pending.size === 0) return null;
    const batch = this.pending;
    this.pending = new Map();
    for (const [pin, ranges] of batch) for (const r of ranges) this.readRange(pin, r.first, r.count, r.reason, true);
    return this.take(true);
  }

  /** Read live pins (all of them when `full`, else the next maxPagesPerPass pages of the sweep), then tick the rules. */
  runPeriodic(full = false): Verification {
    this.stats.passes++;
    const pins = [...this.o.model.livePins()];
    if (full) for (const pin of pins) this.readRange(pin, 0, pin.nPages, 'timer', false);
    else if (pins.length) this.sweep(pins);
    this.out.tickNs = this.o.clock.nowNs();
    return this.take(true)!;
  }

  /** Re-read every page of every live pin now and check it (after a capture gap: what changed unseen). */
  reverifyAll(reason: string): Verification {
    for (const pin of [...this.o.model.livePins()]) this.readRange(pin, 0, pin.nPages, reason, false);
    return this.take(true)!;
  }

  /**
   * Read pages of a pin right now and return the reads (for the sinks; no verdict): rules that confirm what an
   * event did at once. Updates the pages' current pfn.
   */
  readNow(pin: PinRecord, first: number, count: number, reason: string): PagemapRead[] {
    const out: PagemapRead[] = [];
    if (!pin.live || pin.orphaned) return out;
    const end = Math.min(first + count, pin.nPages);
    for (const x of pin.extents) {
      const s = Math.max(first, x.page);
      const e = Math.min(end, x.page + x.count);
      if (s >= e) continue;
      const n = e - s;
      const va = x.va + (s - x.page) * PAGE_SIZE;
      const err = this.readPages(pin.pid, va, n);
      const ts = this.o.clock.nowNs();
      for (let i = 0; i < n; i++) {
        const read = toPagemapRead(ts, pin.pid, va + i * PAGE_SIZE, this.pfnBuf[i], this.stateBuf[i], err);
        if (!err) this.noteCurrentPfn(pin, s + i, this.pfnBuf[i]);
        out.push(read);
      }
    }
    return out;
  }

  /** Arm the periodic pass while pins live; called by the pipeline after events that create pins. */
  updatePeriodic(): void {
    if (this.closed || this.periodicTimer !== null || this.o.model.livePinCount === 0) return;
    this.periodicTimer = this.o.scheduler.setTimeout(() => this.periodicFired(), this.o.config.verifyIntervalMs);
  }

  /** Stop the timers; what the last held verdicts settled into is returned. */
  close(): Verification | null {
    this.settler.flush();
    const last = this.take();
    this.settler.close();
    this.closed = true;
    if (this.pendingTimer !== null) this.o.scheduler.clearTimeout(this.pendingTimer);
    if (this.periodicTimer !== null) this.o.scheduler.clearTimeout(this.periodicTimer);
    this.pendingTimer = null;
    this.periodicTimer = null;
    this.pending.clear();
    return last;
  }

  /**
   * Hand over what was found since the last take (null when nothing: the hot path allocates nothing). `pass`:
   * a pass of reads ended, its gone processes are reported (and a pass always hands over, for the publish).
   */
  private take(pass = false): Verification | null {
    const out = this.out;
    if (pass && this.gone.size !== 0) {
      out.gone.push(...this.gone);
      this.gone.clear();
    }
    if (!pass && out.findings.length === 0 && out.gone.length === 0 && out.tickNs === null) return null;
    this.out = { findings: [], gone: [], tickNs: null };
    return out;
  }

  private timerPass(): void {
    const v = this.take();
    if (v) this.o.onTimerPass(v);
  }

  /** Round-robin over pins (in creation order) from where the last pass stopped, within the pass's budget. */
  private sweep(pins: PinRecord[]): void {
    const b = this.budget;
    let live = 0;
    for (const p of pins) live += p.nPages;
    b.startPass(live);
    let i = pins.findIndex((p) => p.id >= this.sweepPinId);
    if (i < 0) i = 0;
    if (pins[i].id !== this.sweepPinId) this.sweepPage = 0;
    let completed = 0;
    for (let chunk = b.nextChunk(pins[i].id); chunk > 0 && completed < pins.length; chunk = b.nextChunk(pins[i].id)) {
      const pin = pins[i];
      const n = Math.min(chunk, pin.nPages - this.sweepPage);
      if (n > 0) this.readRange(pin, this.sweepPage, n, 'timer', false);
      b.spent(Math.max(n, 0));
      this.sweepPage += Math.max(n, 0);
      if (this.sweepPage >= pin.nPages) {
        completed++;
        if (i === pins.length - 1) b.cycleDone();
        i = (i + 1) % pins.length;
        this.sweepPage = 0;
      }
      this.sweepPinId = pins[i].id;
    }
    b.endPass();
  }

  private periodicFired(): void {
    this.periodicTimer = null;
    if (this.closed) return;
    this.o.onTimerPass(this.runPeriodic());
    this.budget.handedOff();
    this.updatePeriodic();
  }

  private readRange(pin: PinRecord, first: number, count: number, reason: string, eventTriggered: boolean): void {
    if (!pin.live || pin.orphaned) return;
    const end = Math.min(first + count, pin.nPages);
    for (const x of pin.extents) {
      const s = Math.max(first, x.page);
      const e = Math.min(end, x.page + x.count);
      if (s >= e) continue;
      this.readRun(pin, s, e - s, x.va + (s - x.page) * PAGE_SIZE, reason, eventTriggered);
    }
  }

  /** Read n pages of pid from va into pfnBuf/stateBuf (grown as needed), counted in stats; the read's error, if any. */
  private readPages(pid: number, va: number, n: number): ReturnType<typeof readPagesInto> {
    if (this.pfnBuf.length < n) {
      this.pfnBuf = new Float64Array(n);
      this.stateBuf = new Uint8Array(n);
    }
    const err = readPagesInto(this.o.reader, pid, va, n, this.pfnBuf, this.stateBuf, 0);
    this.stats.reads++;
    this.stats.pagesRead += n;
    return err;
  }

  /** Record what pagemap maps at a pinned page now; true when that changed (the pin is then republished). */
  private noteCurrentPfn(pin: PinRecord, page: number, pfn: number): boolean {
    if (!pin.setCurrentPfn(page, pfn)) return false;
    this.o.model.changed.add(pin);
    return true;
  }

  /** Read n pages of the pin from va, in chunks of SWEEP_CHUNK pages (never one buffer for a whole 64 GiB pin). */
  private readRun(pin: PinRecord, firstPage: number, n: number, va: number, reason: string, eventTriggered: boolean): void {
    for (let off = 0; off < n; off += SWEEP_CHUNK) {
      const m = Math.min(SWEEP_CHUNK, n - off);
      this.readChunk(pin, firstPage + off, m, va + off * PAGE_SIZE, reason, eventTriggered);
      if (!pin.live) return;
    }
  }

  private readChunk(pin: PinRecord, firstPage: number, n: number, va: number, reason: string, eventTriggered: boolean): void {
    const err = this.readPages(pin.pid, va, n);
    const ts = this.o.clock.nowNs();
    if (err) {
      this.stats.errors++;
      if (isProcessGoneError(err)) this.gone.add(pin.pid);
      this.out.findings.push({ read: toPagemapRead(ts, pin.pid, va, NaN, 0, err), reason });
      // Unreadable: only what the events imply (the flags) can stand; judged per uniform stretch.
      for (let i = firstPage; i < firstPage + n; ) {
        const end = pin.uniformEnd(i, firstPage + n);
        const flags = pin.flagsAt(i);
        if (classifyPage(flags, pin.pinnedPfnAt(i), false, false, NaN, err).divergence !== null) {
          for (let page = i; page < end; page++) {
            const v = classifyPage(flags, pin.pinnedPfnAt(page), false, false, NaN, err);
            const read = toPagemapRead(ts, pin.pid, va + (page - firstPage) * PAGE_SIZE, NaN, 0, err);
            this.deliver({ pin, page, addr: read.addr, read, reason, divergence: v.divergence, why: v.why }, false);
          }
        }
        i = end;
      }
      return;
    }
    const pfns = this.pfnBuf;
    const states = this.stateBuf;
    let changedAny = false;
    for (let i = 0; i < n; ) {
      const page = firstPage + i;
      if (!eventTriggered) {
        // A fragmented pin's quiet pages in one loop (no stretch a page): same pfn as pinned, same flags and state.
        const q = i + pin.unchangedFrom(page, pfns, i, n - i);
        let k = i + 1;
        while (k < q && states[k] === states[i]) k++;
        if (k - i > 1) {
          const flags = pin.flagsAt(page);
          const v = classifyPage(flags, pfns[i], (states[i] & PM_PRESENT) !== 0, (states[i] & PM_HIDDEN) !== 0, pfns[i], null);
          if (v.divergence === null || (flags & PG_DIVERGED) !== 0) {
            i = k;
            continue;
          }
        }
      }
      const e = pin.uniformEnd(page, firstPage + n) - firstPage;
      const cur0 = pin.currentPfnAt(page);
      const pin0 = pin.pinnedPfnAt(page);
      const flags = pin.flagsAt(page);
      // Quiet stretch: pagemap shows the current run (same pfns, advancing by one, one state) throughout.
      const s0 = states[i];
      let k = i;
      if (cur0 !== cur0) while (k < e && pfns[k] !== pfns[k] && states[k] === s0) k++;
      else while (k < e && pfns[k] === cur0 + (k - i) && states[k] === s0) k++;
      if (k === e && !eventTriggered) {
        // pinned and shown both advance by one: the verdict of the first page is the stretch's.
        const v = classifyPage(flags, pin0, (s0 & PM_PRESENT) !== 0, (s0 & PM_HIDDEN) !== 0, pfns[i], null);
        if (v.divergence === null || (flags & PG_DIVERGED) !== 0) {
          i = e;
          continue;
        }
      }
      if (k !== e) changedAny = true;
      this.checkPages(pin, firstPage, i, e, cur0, pin0, flags, va, ts, reason, eventTriggered);
      i = e;
    }
    if (changedAny && pin.setCurrentValues(firstPage, pfns, n)) this.o.model.changed.add(pin);
  }

  /** Page by page over a uniform stretch [i, e) of a read (offsets into the read buffers). */
  private checkPages(
    pin: PinRecord, firstPage: number, i: number, e: number, cur0: number, pin0: number, flags: number,
    va: number, ts: number, reason: string, eventTriggered: boolean,
  ): void {
    const diverged = (flags & PG_DIVERGED) !== 0;
    for (let j = i; j < e; j++) {
      const page = firstPage + j;
      const pfn = this.pfnBuf[j];
      const state = this.stateBuf[j];
      const was = cur0 + (j - i); // NaN stays NaN
      const changed = !(was === pfn || (was !== was && pfn !== pfn));
      const pinned = pin0 + (j - i);
      const present = (state & PM_PRESENT) !== 0;
      const v = classifyPage(flags, pinned, present, (state & PM_HIDDEN) !== 0, pfn, null);
      const newlyDiverged = v.divergence !== null && !diverged;
      if (!eventTriggered && !changed && !newlyDiverged) continue;
      const read = toPagemapRead(ts, pin.pid, va + j * PAGE_SIZE, pfn, state);
      this.out.findings.push({ read, reason });
      const check: PageCheck = { pin, page, addr: read.addr, read, reason, divergence: v.divergence, why: v.why };
      // A verdict resting on the pfn this read showed must still hold when the stream catches up (settle.ts).
      if (v.divergence !== null && present && pfn !== pinned) this.settler.hold(check);
      else this.deliver(check, false);
    }
  }

  /** A check whose verdict stands: mark the page; the rules get it with the pass's findings. */
  private deliver(check: PageCheck, settled: boolean): void {
    if (check.divergence !== null && check.pin.setFlag(check.page, PG_DIVERGED)) this.o.model.changed.add(check.pin);
    this.out.findings.push({ check, settled });
  }
}
