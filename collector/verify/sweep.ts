// The budget and the bookkeeping of the verifier's background sweep over every live pin. A host with 256 GiB of
// guest RAM pinned all day must not spend a core re-reading pagemap: each periodic pass reads pages until it has
// used its share of the interval (verifyCpuShare × verifyIntervalMs of wall time, default 5 % of one core) and
// the next pass goes on where it stopped. Tests fix the pass in pages instead (maxPagesPerPass). What the sweep
// costs and how stale it lets a page get are published as VerifySweep (schema/metrics.ts).
import { performance } from 'node:perf_hooks';
import { cpuUsage } from 'node:process';
import type { VerifySweep } from '../../schema/metrics.ts';

/** Pages one pagemap read of the sweep covers at most (512 KiB of entries); the budget is checked between reads. */
export const SWEEP_CHUNK = 65536;
/** The smallest chunk a budget cut leaves (one pread of 32 KiB of entries). */
const MIN_CHUNK = 4096;

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
  private passStartMs = 0;
  private passCpuStartMs = 0;
  private passPagesLeft = 0;
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
    this.passStartMs = this.nowMs();
    this.passCpuStartMs = this.cpuMs();
    if (this.cycleStartMs < 0) this.cycleStartMs = this.passStartMs;
    this.passPagesLeft = this.o.maxPagesPerPass ?? Number.POSITIVE_INFINITY;
    this.stats.livePages = livePages;
    this.stats.lastPassPages = 0;
  }

  /**
   * Pages the next read of this pass may cover (0: the pass is over). Under the time budget the chunk is cut to
   * what the rest of the budget buys at this pass's cost per page so far, so a pass overshoots by little.
   */
  nextChunk(): number {
    if (this.passPagesLeft <= 0) return 0;
    let n = Math.min(SWEEP_CHUNK, this.passPagesLeft);
    if (this.o.maxPagesPerPass === undefined) {
      const spent = this.nowMs() - this.passStartMs;
      const left = this.budgetMs - spent;
      if (left <= 0) return 0;
      const done = this.stats.lastPassPages;
      if (done >= MIN_CHUNK && spent > 0) n = Math.min(n, Math.max(MIN_CHUNK, Math.floor((left * done) / spent)));
    }
    return n;
  }

  /** `pages` were read and checked (a pin with no readable page still costs one unit of the fixed budget). */
  spent(pages: number): void {
    this.passPagesLeft -= Math.max(pages, 1);
    this.stats.lastPassPages += pages;
    this.stats.pagesVerified += pages;
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
    const cpu = this.cpuMs() - this.passCpuStartMs;
    this.stats.passes++;
    this.stats.lastPassMs = now - this.passStartMs;
    this.cycleCpuMs += cpu;
    if (this.lastCycleCpuShare >= 0) this.stats.cpuShare = this.lastCycleCpuShare;
    else {
      const wall = Math.max(now - this.cycleStartMs, this.o.intervalMs * this.stats.passes);
      this.stats.cpuShare = wall > 0 ? Math.min(1, this.cycleCpuMs / wall) : 0;
    }
  }

  /** A copy of the figures (for the metrics snapshot and the dashboard). */
  snapshot(): VerifySweep {
    return { ...this.stats };
  }
}
