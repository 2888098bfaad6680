// The budget and the bookkeeping of the verifier's background sweep over every live pin. A host with 256 GiB of
// guest RAM pinned all day must not spend a core re-reading pagemap: each periodic pass reads pages until it has
// used its share of the time since the last pass (verifyCpuShare of one core, default 5 %, in process CPU) and
// the next pass goes on where it stopped. Tests fix the pass in pages instead (maxPagesPerPass).
//
// Honouring the share, not just aiming at it (an idle collector's CPU is the figure the share is held to):
//   - every read is cut to what the rest of the pass's budget affords at the measured cost per page of the pin
//     it reads (a THP-backed pin's quiet pages cost ~100× less than a fragmented pin's), so a pass overshoots
//     by at most a page's cost; a pin's first read is one page, and its reads grow by at most GROWTH× a read;
//   - the cost is process CPU (process.cpuUsage: the helper threads' GC of what the pass allocated included),
//     which is what a share of one core means; the pass's wall time is capped as well (MAX_WALL_FACTOR), since
//     the event loop waits for it;
//   - what a pass spends beyond its budget, and what handing its result on costs (rules' tick, sinks:
//     handedOff()), is debt the next passes pay first;
//   - the rest of the process's CPU since the last pass (timers, GC; events when not idle) is taken off the
//     pass's share, but never more than half of it: idle, the whole collector stays within the share; busy with
//     events, the sweep still keeps half of it and every pin is still re-read.
// What the sweep costs and how stale it lets a page get are published as VerifySweep (schema/metrics.ts).
import { performance } from 'node:perf_hooks';
import { cpuUsage } from 'node:process';
import type { VerifySweep } from '../../schema/metrics.ts';

/** Pages one pagemap read of the sweep covers at most (512 KiB of entries); the budget is checked between reads. */
export const SWEEP_CHUNK = 65536;
/**
 * A pin's next read covers at most this many times its last one, its first read one page: another pin's cost
 * says nothing of this one's (and a cost measured on few pages may be too low). 65,536 pages after 7 reads.
 */
const GROWTH = 8;
/** A pass stops after this many times its CPU budget in wall time (a loaded host: the event loop is waiting). */
const MAX_WALL_FACTOR = 4;
/** Debt is kept up to this many passes' budgets (a long GC pause in a pass must not stop the sweep for minutes). */
const MAX_DEBT_PASSES = 8;
/** Costs per page remembered (pins); beyond it they are forgotten and measured again. */
const MAX_COSTS = 4096;

export interface SweepBudgetOptions {
  /** Share of one core the sweep may use (0.05: 5 %). */
  cpuShare: number;
  /** Time between passes (ms). */
  intervalMs: number;
  /** Fixed pages per pass (tests): no time budget. */
  maxPagesPerPass?: number;
  /** Monotonic ms (default performance.now). */
  nowMs?: () => number;
  /** CPU ms this process used so far (default process.cpuUsage, user + system). */
  cpuMs?: () => number;
}

function processCpuMs(): number {
  const u = cpuUsage();
  return (u.user + u.system) / 1000;
}

export class SweepBudget {
  private readonly nowMs: () => number;
  private readonly cpuMs: () => number;
  private readonly budgetMs: number;
  private passStartMs = -1;
  private passCpuStartMs = 0;
  private passBudgetMs = 0;
  private passPagesLeft = 0;
  /** CPU spent beyond the budgets so far (paid by the next passes). */
  private debtMs = 0;
  /** CPU when the last pass ended (its hand-off is charged from here); -1 once the hand-off was charged. */
  private passCpuEndMs = -1;
  /** CPU when the last pass (and its hand-off) was over: what the process spent since is not the sweep's. */
  private lastCpuMs = -1;
  /** Per pin (cost class) read: measured CPU ms per page and the pages of its last read. */
  private readonly costs = new Map<number, { msPerPage: number; pages: number }>();
  private chunkKey = 0;
  private chunkCpuMs = 0;
  private cycleStartMs = -1;
  private cycleCpuMs = 0;
  private lastCycleCpuShare = -1;
  private readonly stats: VerifySweep;

  constructor(private readonly o: SweepBudgetOptions) {
    this.nowMs = o.nowMs ?? (() => performance.now());
    this.cpuMs = o.cpuMs ?? processCpuMs;
    this.budgetMs = Math.max(0.5, o.cpuShare * o.intervalMs);
    this.stats = {
      cpuShareBudget: o.cpuShare,
      pagesVerified: 0,
      passes: 0,
      lastPassMs: 0,
      lastPassPages: 0,
      fullSweepSeconds: null,
      fullSweeps: 0,
      cpuShare: 0,
      livePages: 0,
    };
  }

  /** A pass starts over `livePages` pinned pages. */
  startPass(livePages: number): void {
    const now = this.nowMs();
    const cpu = this.cpuMs();
    // The share of the time since the last pass began (the interval and that pass), at most two intervals' worth.
    const periodMs = this.passStartMs < 0 ? this.o.intervalMs : Math.min(now - this.passStartMs, 2 * this.o.intervalMs);
    const shareMs = Math.max(this.budgetMs, this.o.cpuShare * periodMs);
    const otherMs = this.lastCpuMs < 0 ? 0 : Math.max(0, cpu - this.lastCpuMs);
    this.passStartMs = now;
    this.passCpuStartMs = cpu;
    this.passCpuEndMs = -1;
    if (this.cycleStartMs < 0) this.cycleStartMs = now;
    this.passPagesLeft = this.o.maxPagesPerPass ?? Number.POSITIVE_INFINITY;
    // This pass's share pays the rest of the process (up to half) and the debt first; what is left is the pass's.
    this.debtMs = Math.min(this.debtMs, MAX_DEBT_PASSES * this.budgetMs);
    this.passBudgetMs = shareMs - Math.min(otherMs, shareMs / 2) - this.debtMs;
    this.debtMs = Math.max(0, -this.passBudgetMs);
    this.stats.livePages = livePages;
    this.stats.lastPassPages = 0;
  }

  /**
   * Pages the next read of this pass may cover (0: the pass is over), reading pin (cost class) `key`. Under the
   * CPU budget the read is cut to what the rest of the budget buys at that pin's measured cost per page.
   */
  nextChunk(key = 0): number {
    if (this.passPagesLeft <= 0) return 0;
    let n = Math.min(SWEEP_CHUNK, this.passPagesLeft);
    if (this.o.maxPagesPerPass !== undefined) return n;
    const cpu = this.cpuMs();
    const left = this.passBudgetMs - (cpu - this.passCpuStartMs);
    if (left <= 0 || this.nowMs() - this.passStartMs >= MAX_WALL_FACTOR * this.budgetMs) return 0;
    const known = this.costs.get(key);
    if (known === undefined) n = 1;
    else {
      n = Math.min(n, GROWTH * known.pages);
      if (known.msPerPage > 0) n = Math.min(n, Math.floor(left / known.msPerPage));
    }
    if (n < 1) return 0;
    this.chunkKey = key;
    this.chunkCpuMs = cpu;
    return n;
  }

  /** `pages` were read and checked (a pin with no readable page still costs one unit of the fixed budget). */
  spent(pages: number): void {
    this.passPagesLeft -= Math.max(pages, 1);
    this.stats.lastPassPages += pages;
    this.stats.pagesVerified += pages;
    if (this.o.maxPagesPerPass !== undefined || pages <= 0) return;
    if (this.costs.size >= MAX_COSTS && !this.costs.has(this.chunkKey)) this.costs.clear();
    this.costs.set(this.chunkKey, { msPerPage: Math.max(0, this.cpuMs() - this.chunkCpuMs) / pages, pages });
  }

  /** Every live pin was read once since the cycle started. */
  cycleDone(): void {
    const now = this.nowMs();
    const cpuNow = this.cpuMs() - this.passCpuStartMs;
    this.stats.fullSweepSeconds = (now - this.cycleStartMs) / 1000;
    this.stats.fullSweeps++;
    const wall = now - this.cycleStartMs;
    const cpu = this.cycleCpuMs + cpuNow;
    this.lastCycleCpuShare = wall > 0 ? Math.min(1, cpu / Math.max(wall, this.o.intervalMs)) : 0;
    this.cycleStartMs = now;
    this.cycleCpuMs = -cpuNow; // this pass's CPU so far belongs to the cycle just closed
  }

  endPass(): void {
    const now = this.nowMs();
    const cpuNow = this.cpuMs();
    const cpu = cpuNow - this.passCpuStartMs;
    this.stats.passes++;
    this.stats.lastPassMs = now - this.passStartMs;
    this.cycleCpuMs += cpu;
    if (this.o.maxPagesPerPass === undefined) this.debtMs += Math.max(0, cpu - Math.max(0, this.passBudgetMs));
    this.passCpuEndMs = cpuNow;
    this.lastCpuMs = cpuNow;
    this.updateShare(now);
  }

  /** The pass's result was handed on (rules' tick, sinks): that is the sweep's cost too, charged to the next pass. */
  handedOff(): void {
    if (this.passCpuEndMs < 0) return;
    const cpuNow = this.cpuMs();
    const cpu = Math.max(0, cpuNow - this.passCpuEndMs);
    this.passCpuEndMs = -1;
    this.lastCpuMs = cpuNow;
    this.cycleCpuMs += cpu;
    if (this.o.maxPagesPerPass === undefined) this.debtMs += cpu;
    this.updateShare(this.nowMs());
  }

  /** A copy of the figures (for the metrics snapshot and the dashboard). */
  snapshot(): VerifySweep {
    return { ...this.stats };
  }

  private updateShare(now: number): void {
    if (this.lastCycleCpuShare >= 0) this.stats.cpuShare = this.lastCycleCpuShare;
    else {
      const wall = Math.max(now - this.cycleStartMs, this.o.intervalMs * this.stats.passes);
      this.stats.cpuShare = wall > 0 ? Math.min(1, this.cycleCpuMs / wall) : 0;
    }
  }
}
