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
// pinned pages must not mean 1M rows per pass). The timer's pass reads at most maxPagesPerPass pages, sweeping round-robin.
import type { PagemapRead } from '../../schema/anomalies.ts';
import type { CollectorConfig, PagemapReader } from '../contracts.ts';
import { PG_DIVERGED, type PinRecord } from '../model/pin-record.ts';
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
   * Pages the timer's periodic pass reads at most (default 65536, ~10-50 ms of pagemap reads): with more pinned
   * pages the pass sweeps them round-robin over several intervals. Event-triggered reads are not limited;
   * runPeriodic(true) (verifyNow, close) reads everything.
   */
  maxPagesPerPass?: number;
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
  private readonly maxPagesPerPass: number;
  /** Where the budgeted periodic sweep continues: pin id and page. */
  private sweepPinId = -1;
  private sweepPage = 0;
  /** Counters for status and benchmarks. */
  readonly stats = { reads: 0, pagesRead: 0, passes: 0, errors: 0 };

  /** Verdicts held until the stream caught up with their read, delivered, dropped as stale. */
  get settleStats(): ReadSettler['stats'] {
    return this.settler.stats;
  }

  constructor(opts: VerifierOptions) {
    this.o = opts;
    this.maxPagesPerPass = Math.max(1, opts.maxPagesPerPass ?? 65536);
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

  /** Round-robin over pins (in creation order) from where the last pass stopped, within the page budget. */
  private sweep(pins: PinRecord[]): void {
    let budget = this.maxPagesPerPass;
    let i = pins.findIndex((p) => p.id >= this.sweepPinId);
    if (i < 0) i = 0;
    if (pins[i].id !== this.sweepPinId) this.sweepPage = 0;
    let completed = 0;
    while (budget > 0 && completed < pins.length) {
      const pin = pins[i];
      const n = Math.min(budget, pin.nPages - this.sweepPage);
      if (n > 0) this.readRange(pin, this.sweepPage, n, 'timer', false);
      budget -= Math.max(n, 1);
      this.sweepPage += n;
      if (this.sweepPage >= pin.nPages) {
        completed++;
        i = (i + 1) % pins.length;
        this.sweepPage = 0;
      }
      this.sweepPinId = pins[i].id;
    }
  }

  private periodicFired(): void {
    this.periodicTimer = null;
    if (this.closed) return;
    this.o.onTimerPass(this.runPeriodic());
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
    const prev = pin.currentPfn[page];
    if (prev === pfn || (Number.isNaN(prev) && Number.isNaN(pfn))) return false;
    pin.currentPfn[page] = pfn;
    this.o.model.changed.add(pin);
    return true;
  }

  private readRun(pin: PinRecord, firstPage: number, n: number, va: number, reason: string, eventTriggered: boolean): void {
    const err = this.readPages(pin.pid, va, n);
    const ts = this.o.clock.nowNs();
    if (err) {
      this.stats.errors++;
      if (isProcessGoneError(err)) this.gone.add(pin.pid);
      this.out.findings.push({ read: toPagemapRead(ts, pin.pid, va, NaN, 0, err), reason });
      for (let i = 0; i < n; i++) {
        const page = firstPage + i;
        const v = classifyPage(pin.flags[page], pin.pinnedPfn[page], false, false, NaN, err);
        if (v.divergence === null) continue;
        const read = toPagemapRead(ts, pin.pid, va + i * PAGE_SIZE, NaN, 0, err);
        this.deliver({ pin, page, addr: read.addr, read, reason, divergence: v.divergence, why: v.why }, false);
      }
      return;
    }
    for (let i = 0; i < n; i++) {
      const page = firstPage + i;
      const pfn = this.pfnBuf[i];
      const state = this.stateBuf[i];
      const changed = this.noteCurrentPfn(pin, page, pfn);
      const present = (state & PM_PRESENT) !== 0;
      const v = classifyPage(pin.flags[page], pin.pinnedPfn[page], present, (state & PM_HIDDEN) !== 0, pfn, null);
      const newlyDiverged = v.divergence !== null && (pin.flags[page] & PG_DIVERGED) === 0;
      if (!eventTriggered && !changed && !newlyDiverged) continue;
      const read = toPagemapRead(ts, pin.pid, va + i * PAGE_SIZE, pfn, state);
      this.out.findings.push({ read, reason });
      const check: PageCheck = { pin, page, addr: read.addr, read, reason, divergence: v.divergence, why: v.why };
      // A verdict resting on the pfn this read showed must still hold when the stream catches up (settle.ts).
      if (v.divergence !== null && present && pfn !== pin.pinnedPfn[page]) this.settler.hold(check);
      else this.deliver(check, false);
    }
  }

  /** A check whose verdict stands: mark the page; the rules get it with the pass's findings. */
  private deliver(check: PageCheck, settled: boolean): void {
    if (check.divergence !== null && check.pin.setFlag(check.page, PG_DIVERGED)) this.o.model.changed.add(check.pin);
    this.out.findings.push({ check, settled });
  }
}
