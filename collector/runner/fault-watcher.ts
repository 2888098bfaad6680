// FaultWatcher: a separate, restartable bpftrace process filtering page faults to pinned regions; it exists
// only while some pin is armed (ShadowModel.faultRegions: zapped pinned pages, pins a fork shared) and hands over to a new process on every region change without losing a fault.
import { readFileSync } from 'node:fs';
import type { FaultRegion, ParseSink } from '../contracts.ts';
import type { TraceEvent } from '../../schema/events.ts';
import { BpftraceRunner } from './bpftrace-runner.ts';

const FAULTS_TEMPLATE = new URL('../../bpf/tracepoint/faults.bt', import.meta.url).pathname;
const REGIONS_PLACEHOLDER = '// @@PINWATCH_REGIONS@@';
/** Above this many 2 MiB regions the in-kernel filter uses 1 GiB regions (BEGIN stays small and compiles fast). */
export const MAX_EXACT_REGIONS = 1024;
/** Two copies of the same fault (old and new process) can differ by a few µs in nsecs; matched within this. */
const DUP_WINDOW_NS = 100_000;

export interface FaultWatcherOptions {
  sink: ParseSink;
  bpftrace?: string;
  /** setRegions() debounce (default 50 ms). */
  debounceMs?: number;
  /** Template path (default bpf/tracepoint/faults.bt). */
  template?: string;
  onStderr?: (line: string) => void;
  /** Called after each (re)start or stop with how long it took. */
  onChange?: (info: { regions: number; ms: number; running: boolean }) => void;
  /** The running fault process died on its own (not stopped or replaced): call revive() to start another. */
  onDied?: (cause: string) => void;
}

const regionKey = (pid: number, region: number) => pid * 2 ** 32 + region; // region = addr >> 21 < 2^27

/** The BEGIN statements for a region set (exact 2 MiB keys, or 1 GiB keys above MAX_EXACT_REGIONS). */
export function regionStatements(regions: FaultRegion[]): string {
  const pids = new Set<number>();
  const lines: string[] = [];
  if (regions.length <= MAX_EXACT_REGIONS) {
    for (const r of regions) {
      pids.add(r.pid);
      lines.push(`  @pw_r21[${r.pid}, ${r.region}] = 1;`);
    }
  } else {
    const seen = new Set<number>();
    for (const r of regions) {
      pids.add(r.pid);
      const g = Math.floor(r.region / 512); // addr >> 30
      const k = regionKey(r.pid, g);
      if (seen.has(k)) continue;
      seen.add(k);
      lines.push(`  @pw_r30[${r.pid}, ${g}] = 1;`);
    }
  }
  for (const p of pids) lines.unshift(`  @pw_fpid[${p}] = 1;`);
  return lines.join('\n');
}

/**
 * Up to this many pinned pids, the predicate compares pid with constants instead of looking up @pw_fpid:
 * measured on 6.18 (1M faults of a process with no pins), the map lookup cost ~5% of the workload's time on
 * top of the tracepoint itself, a constant compare nothing measurable (docs/benchmarks.md).
 */
export const MAX_CONSTANT_PIDS = 8;
const PID_LOOKUP = '@pw_fpid[pid]';

/** The predicate's first test: pid against constants (few pids) or the @pw_fpid map. */
export function pidTest(regions: FaultRegion[]): string {
  const pids = [...new Set(regions.map((r) => r.pid))].sort((a, b) => a - b);
  if (pids.length === 0 || pids.length > MAX_CONSTANT_PIDS) return PID_LOOKUP;
  return '(' + pids.map((p) => `pid == ${p}`).join(' || ') + ')';
}

/** The faults.bt template with a region set substituted (BEGIN's map entries and the predicate's pid test). */
export function faultProgramText(regions: FaultRegion[], template = FAULTS_TEMPLATE): string {
  const t = readFileSync(template, 'utf8');
  const re = /^[ \t]*\/\/ @@PINWATCH_REGIONS@@[ \t]*$/m;
  if (!re.test(t)) throw new Error(`${template}: no "${REGIONS_PLACEHOLDER}" line`);
  const predicate = /^\/@pw_fpid\[pid\] && /m;
  if (!predicate.test(t)) throw new Error(`${template}: the predicate must start with "/${PID_LOOKUP} && "`);
  const stmts = regionStatements(regions);
  return t.replace(re, () => stmts).replace(predicate, () => `/${pidTest(regions)} && `);
}

interface Generation {
  id: number;
  runner: BpftraceRunner;
  regions: Set<number>;
  /** Accept faults with from <= tsNs < until. */
  from: number;
  until: number;
  /** Before this process's ready: its faults wait here (ts not yet comparable to the cutover). */
  pending: TraceEvent[] | null;
  /** During a handover: this (old) process's faults at or after `holdFrom` wait for the cutover. */
  held: TraceEvent[] | null;
  holdFrom: number;
}

/**
 * Page faults in armed pinned regions (ModelState.armFaults: a zapped pinned page's 2 MiB region, or a pin a fork
 * shares where the kernel can COW it), from a bpftrace process that exists only while such regions exist. Every region change
 * starts a new process with the new filter, waits until it is attached, then stops the old one: no gap. A fault
 * both processes saw is delivered once: the old process's faults before the new one's ready timestamp, the new
 * one's from it (plus a µs-window match for the one fault that could straddle it).
 */
export class FaultWatcher {
  /** Wall ms of the last (re)start (spawn → ready) and stop. */
  lastStartMs: number | null = null;
  lastStopMs: number | null = null;
  restarts = 0;
  /** Faults dropped as duplicates of the other process during a handover. */
  duplicates = 0;
  lost = 0;

  private readonly opts: FaultWatcherOptions;
  private desired = new Map<number, FaultRegion>();
  private current: Generation | null = null;
  private timer: NodeJS.Timeout | null = null;
  private chain: Promise<void> = Promise.resolve();
  private gen = 0;
  private stopped = false;
  /** Faults delivered within DUP_WINDOW_NS of the last cutover, for the straddle check. */
  private recent: { gen: number; e: TraceEvent }[] = [];
  /** CLOCK_MONOTONIC ns of the last handover's cutover (0: none yet). */
  private lastCut = 0;
  private lastError: Error | null = null;
  private reviving = false;

  constructor(opts: FaultWatcherOptions) {
    this.opts = opts;
  }

  get running(): boolean {
    return this.current !== null;
  }

  get error(): Error | null {
    return this.lastError;
  }

  /** Replace the set of pinned regions (debounced). An empty set stops the fault process. */
  setRegions(regions: FaultRegion[]): void {
    if (this.stopped) return;
    this.desired = new Map(regions.map((r) => [regionKey(r.pid, r.region), r]));
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.chain = this.chain.then(() => this.apply()).catch((e: Error) => {
        this.lastError = e;
      });
    }, this.opts.debounceMs ?? 50);
  }

  /** Start a fault process for the current regions after the last one died; rejects when it cannot start. */
  revive(): Promise<void> {
    const p = this.chain.then(async () => {
      this.reviving = true;
      try {
        await this.apply();
      } finally {
        this.reviving = false;
      }
    });
    this.chain = p.catch((e: Error) => {
      this.lastError = e;
    });
    return p;
  }

  /** CLOCK_MONOTONIC ns at which the running fault process had its probe attached. */
  get readyTsNs(): number | null {
    return this.current?.runner.readyTsNs ?? null;
  }

  /** Pinned regions wanted now (0: no fault process needed). */
  get wantedRegions(): number {
    return this.desired.size;
  }

  /** Resolves when every pending setRegions() has been applied. */
  async settled(): Promise<void> {
    while (this.timer) await new Promise((r) => setTimeout(r, 5));
    await this.chain;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.chain;
    const g = this.current;
    this.current = null;
    if (g) {
      await g.runner.stop();
    }
  }

  private same(set: Set<number>): boolean {
    if (set.size !== this.desired.size) return false;
    for (const k of this.desired.keys()) if (!set.has(k)) return false;
    return true;
  }

  private async apply(): Promise<void> {
    if (this.stopped) return;
    const old = this.current;
    if (this.desired.size === 0) {
      if (!old) return;
      const t0 = Date.now();
      this.current = null;
      await old.runner.stop();
      this.lastStopMs = Date.now() - t0;
      this.opts.onChange?.({ regions: 0, ms: this.lastStopMs, running: false });
      return;
    }
    if (old && this.same(old.regions)) return;

    const regions = [...this.desired.values()];
    const id = ++this.gen;
    const g: Generation = {
      id,
      runner: null as unknown as BpftraceRunner,
      regions: new Set(this.desired.keys()),
      from: 0,
      until: Infinity,
      pending: old ? [] : null,
      held: null,
      holdFrom: Infinity,
    };
    g.runner = new BpftraceRunner({
      scripts: [{ name: 'tracepoint/faults', file: this.opts.template ?? FAULTS_TEMPLATE, mode: 'tracepoint', probes: [], text: faultProgramText(regions, this.opts.template) }],
      sink: this.genSink(g),
      bpftrace: this.opts.bpftrace,
      tag: `faults#${id}`,
      onStderr: this.opts.onStderr,
      perfRbPages: 64,
      onExit: (code, signal) => {
        // Stopped on purpose or replaced: this.current is already another generation (or null).
        if (this.stopped || this.current !== g) return;
        this.current = null;
        this.opts.onDied?.(`bpftrace exited (${signal ?? `code ${code}`})`);
      },
    });
    if (old) {
      // From now on the new process may see the old one's faults: hold those until the cutover is known.
      old.holdFrom = Number(process.hrtime.bigint());
      old.held = [];
    }
    const t0 = Date.now();
    try {
      await g.runner.start();
    } catch (e) {
      if (old) this.release(old, Infinity);
      // Not watching faults now: the owner backs off and revives (revive() reports its own failures).
      if (!this.stopped && !this.reviving && !old) this.opts.onDied?.(((e as Error)?.message ?? String(e)).split('\n')[0]);
      throw e;
    }
    this.lastStartMs = Date.now() - t0;
    this.restarts++;
    const cut = g.runner.readyTsNs ?? Number(process.hrtime.bigint());
    g.from = old ? cut : 0;
    this.current = g;
    if (old) {
      this.lastCut = cut;
      this.recent = [];
      this.release(old, cut);
      old.until = cut;
    }
    const pend = g.pending;
    g.pending = null;
    if (pend) for (const e of pend) this.deliver(g, e);
    this.opts.onChange?.({ regions: regions.length, ms: this.lastStartMs, running: true });
    if (old) {
      const s0 = Date.now();
      await old.runner.stop();
      this.lastStopMs = Date.now() - s0;
    }
  }

  /** End a handover for the old process: deliver its held faults before the cutover, drop the rest. */
  private release(old: Generation, cut: number): void {
    const held = old.held ?? [];
    old.held = null;
    old.holdFrom = Infinity;
    old.until = cut;
    for (const e of held) this.deliver(old, e);
  }

  private deliver(g: Generation, e: TraceEvent): void {
    if (e.kind === 'fault') {
      if (e.tsNs < g.from || e.tsNs >= g.until) {
        this.duplicates++;
        return;
      }
      // Coarse (1 GiB) kernel filter: keep only faults in the exact 2 MiB regions.
      if (!g.regions.has(regionKey(e.pid, Math.floor(e.addr / 2 ** 21)))) return;
      // The one fault both processes could pass (old copy just before the cutover, new copy just after, their
      // nsecs read separately): same thread, address and ip within a few µs of the cutover, either order.
      if (this.lastCut > 0 && Math.abs(e.tsNs - this.lastCut) < DUP_WINDOW_NS) {
        for (const r of this.recent) {
          if (r.gen !== g.id && r.e.kind === 'fault' && r.e.tid === e.tid && r.e.addr === e.addr && r.e.ip === e.ip && Math.abs(r.e.tsNs - e.tsNs) < DUP_WINDOW_NS) {
            this.duplicates++;
            return;
          }
        }
        this.recent.push({ gen: g.id, e });
        if (this.recent.length > 64) this.recent.shift();
      }
    }
    this.opts.sink.event(e);
  }

  private genSink(g: Generation): ParseSink {
    const out = this.opts.sink;
    return {
      event: (e) => {
        if (g.pending) g.pending.push(e);
        else if (g.held && e.tsNs >= g.holdFrom) g.held.push(e);
        else this.deliver(g, e);
      },
      lost: (n) => {
        this.lost += n;
        out.lost(n);
      },
      ready: () => {
        // The fault process's own marker: consumed here (the collector's ready() is about the main program).
      },
      malformed: (l, r) => out.malformed(l, r),
      message: (t) => out.message?.(t),
    };
  }
}
