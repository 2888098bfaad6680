// The shadow model at hypervisor scale (issue 11): guest RAM of several VMs pinned through VFIO maps, as a
// synthetic event stream through the Collector (model + pin-time pagemap read + rules; no sinks), with /proc
// replaced by arithmetic (ScalePagemap). Layouts:
//   contiguous – each VM's RAM is physically contiguous in 16 GiB extents (THP/hugetlb-backed guests);
//   fragmented – no two neighbouring pages are physically adjacent (every pfn is its own run).
// Figures: RSS with all VMs registered, the time to register one VM, one budgeted sweep pass (ms, pages, CPU
// share) and the full sweep it implies. Each figure wants a fresh process for its RSS: run this file as
//   node --import tsx bench/harness/model-scale.ts rss contiguous|fragmented [vms] [gibPerVm]
//   node --import tsx bench/harness/model-scale.ts register contiguous|fragmented [gib]
//   node --import tsx bench/harness/model-scale.ts sweep contiguous|fragmented [vms] [gibPerVm]
// which prints the result as one JSON line (the functions are exported for bench/run.ts as well).
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { PagemapRead } from '../../schema/anomalies.ts';
import type { TraceEvent } from '../../schema/events.ts';
import { PAGE_SIZE } from '../../schema/kernel.ts';

/** VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE (linux/vfio.h). */
const MAP_READ_WRITE = 3;
import type { Scheduler } from '../../collector/clock.ts';
import { Collector } from '../../collector/pipeline.ts';
import { PM_PRESENT, type PagemapBulkReader } from '../../collector/verify/pagemap.ts';
import { AnonMaps } from './fakes.ts';

const MiB = 2 ** 20;
const GiB_PAGES = 2 ** 18;
const EXTENT_PAGES = 16 * GiB_PAGES;
const VA_BASE = 0x7f0000000000;
const PID_BASE = 700_000;

export type ScaleLayout = 'contiguous' | 'fragmented';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** 9-bit reversal: neighbouring pages land 2+ pfns apart inside their 512-page window. */
function rev9(k: number): number {
  let r = 0;
  for (let b = 0; b < 9; b++) r |= ((k >> b) & 1) << (8 - b);
  return r;
}

/** Every page of VM v (pid PID_BASE + v, guest RAM at VA_BASE) is present at a pfn given by the layout. */
export class ScalePagemap implements PagemapBulkReader {
  reads = 0;
  pages = 0;
  /** page (of a pid) → pfn shown instead (a divergence). */
  readonly moved = new Map<string, number>();
  constructor(readonly layout: ScaleLayout) {}

  pfnOf(pid: number, page: number): number {
    const moved = this.moved.size ? this.moved.get(`${pid}:${page}`) : undefined;
    if (moved !== undefined) return moved;
    const vmIdx = pid - PID_BASE;
    if (this.layout === 'contiguous') {
      // Extents of 16 GiB, each at its own place in physical memory (gaps between them).
      const ext = Math.floor(page / EXTENT_PAGES);
      return 0x100000 + (vmIdx * 8 + ext * 2) * EXTENT_PAGES + (page % EXTENT_PAGES);
    }
    const w = Math.floor(page / 512);
    return 0x100000 + vmIdx * 2 ** 26 * 2 + 2 * (w * 512 + rev9(page % 512));
  }

  readInto(pid: number, addr: number, count: number, pfnOut: Float64Array, stateOut: Uint8Array, offset: number): string | null {
    this.reads++;
    this.pages += count;
    const first = (addr - VA_BASE) / PAGE_SIZE;
    for (let i = 0; i < count; i++) {
      pfnOut[offset + i] = this.pfnOf(pid, first + i);
      stateOut[offset + i] = PM_PRESENT;
    }
    return null;
  }

  read(pid: number, addr: number, count: number): PagemapRead[] {
    const out: PagemapRead[] = [];
    for (let i = 0; i < count; i++) {
      const a = addr + i * PAGE_SIZE;
      out.push({ tsNs: 0, pid, addr: a, present: true, swapped: false, pfn: this.pfnOf(pid, (a - VA_BASE) / PAGE_SIZE) });
    }
    return out;
  }

  release(): void {}
}

/** The events that start VM v's process and map its guest RAM for DMA (one VFIO map of `pages` pages). */
export function vmEvents(v: number, pages: number): TraceEvent[] {
  const pid = PID_BASE + v;
  const t = Number(process.hrtime.bigint()) - 1000;
  const comm = 'qemu-system-x86';
  return [
    { kind: 'fork', tsNs: t, pid: 1, tid: 1, comm: 'init', childPid: pid, childComm: comm, cloneFlags: 17 },
    {
      kind: 'vfio_dma', tsNs: t + 1, pid, tid: pid, comm, op: 'map', fd: 30, vaddr: VA_BASE, iova: 0,
      size: pages * PAGE_SIZE, flags: MAP_READ_WRITE, ret: 0,
    },
  ];
}

function collectorFor(pagemap: ScalePagemap, opts: { maxPagesPerPass?: number; cpuShare?: number } = {}): Collector {
  return new Collector({
    sinks: [],
    pagemap,
    maps: new AnonMaps(),
    config: { verifyIntervalMs: 3_600_000, ...(opts.cpuShare !== undefined ? { verifyCpuShare: opts.cpuShare } : {}) },
    verifyPagesPerPass: opts.maxPagesPerPass,
  });
}

export interface ModelRssResult {
  layout: ScaleLayout;
  vms: number;
  gibPerVm: number;
  pages: number;
  rssBeforeMiB: number;
  /** Process RSS with every VM registered (after a GC): the figure. */
  rssMiB: number;
  rssDeltaMiB: number;
  /** Bytes of per-page state the pins hold (runs or dense arrays), per page. */
  stateBytesPerPage: number;
  seconds: number;
}

/** RSS of the collector with `vms` VMs of `gibPerVm` GiB registered (default 4 × 64 GiB = 64M pages). */
export async function modelScaleRss(layout: ScaleLayout, vms = 4, gibPerVm = 64): Promise<ModelRssResult> {
  const pagemap = new ScalePagemap(layout);
  const c = collectorFor(pagemap);
  gc();
  await yieldToLoop();
  const before = process.memoryUsage().rss;
  const t0 = process.hrtime.bigint();
  for (let v = 0; v < vms; v++) {
    for (const e of vmEvents(v, gibPerVm * GiB_PAGES)) c.ingest(e);
    await yieldToLoop();
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  gc();
  await yieldToLoop();
  const rss = process.memoryUsage().rss;
  let state = 0;
  for (const p of c.model.livePins()) state += p.pageStateBytes();
  const pages = vms * gibPerVm * GiB_PAGES;
  const out = {
    layout, vms, gibPerVm, pages, rssBeforeMiB: before / MiB, rssMiB: rss / MiB, rssDeltaMiB: (rss - before) / MiB,
    stateBytesPerPage: state / pages, seconds,
  };
  c.close();
  return out;
}

export interface RegisterResult {
  layout: ScaleLayout;
  gib: number;
  /** ms to ingest the VFIO map of `gib` GiB: model, pin-time pagemap read (synthetic), pfn index, rules, publish. */
  registerMs: number;
}

/** Time to register one pin of `gib` GiB through model + rules (best of `repeat`, each in a new Collector). */
export function registerTime(layout: ScaleLayout, gib = 64, repeat = 3): RegisterResult {
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < repeat; r++) {
    const c = collectorFor(new ScalePagemap(layout));
    const [fork, map] = vmEvents(0, gib * GiB_PAGES);
    c.ingest(fork);
    const t0 = process.hrtime.bigint();
    c.ingest(map);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e6);
    c.close();
    gc();
  }
  return { layout, gib, registerMs: best };
}

/** A scheduler whose timers never fire. */
const NO_TIMERS: Scheduler = { setTimeout: () => null, clearTimeout: () => {} };

export interface SweepResult {
  layout: ScaleLayout;
  pages: number;
  cpuShareBudget: number;
  intervalMs: number;
  passes: number;
  /** Median pass (ms) and pages it read. */
  passMs: number;
  pagesPerPass: number;
  /** passMs / intervalMs: the share of one core the sweep costs. */
  cpuShare: number;
  /** Time a full sweep of every pinned page takes at that rate (s). */
  fullSweepSeconds: number;
  /** A one-page divergence inside a run was confirmed by the sweep. */
  divergenceFound: boolean;
}

/** Budgeted sweep passes over `vms` × `gibPerVm` GiB registered (the real budget: verifyCpuShare of the interval). */
export async function sweepPass(layout: ScaleLayout, vms = 4, gibPerVm = 64, passes = 8, cpuShare = 0.05, intervalMs = 500): Promise<SweepResult> {
  const pagemap = new ScalePagemap(layout);
  const c = new Collector({ sinks: [], pagemap, maps: new AnonMaps(), config: { verifyIntervalMs: intervalMs, verifyCpuShare: cpuShare, readSettleMs: 0 }, // no stream: verdicts at once
    scheduler: NO_TIMERS, // the passes are run and timed below, none on a timer meanwhile
  });
  for (let v = 0; v < vms; v++) {
    for (const e of vmEvents(v, gibPerVm * GiB_PAGES)) c.ingest(e);
    await yieldToLoop();
  }
  // One page inside a run of the first VM now maps another pfn.
  pagemap.moved.set(`${PID_BASE}:12345`, 0x7777777);
  const times: number[] = [];
  const pagesRead: number[] = [];
  for (let i = 0; i < passes; i++) {
    const before = c.verifier.sweepStats.pagesVerified;
    const t0 = process.hrtime.bigint();
    c.verifyPass();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    pagesRead.push(c.verifier.sweepStats.pagesVerified - before);
  }
  const pin = [...c.model.livePins()].find((p) => p.pid === PID_BASE);
  const divergenceFound = pin !== undefined && pin.divergedPages > 0;
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const passMs = med(times);
  const pagesPerPass = med(pagesRead);
  const pages = vms * gibPerVm * GiB_PAGES;
  const out: SweepResult = {
    layout, pages, cpuShareBudget: cpuShare, intervalMs, passes, passMs, pagesPerPass, cpuShare: passMs / intervalMs,
    fullSweepSeconds: (pages / Math.max(pagesPerPass, 1)) * (intervalMs / 1000), divergenceFound,
  };
  c.close();
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [what, layoutArg, a, b] = process.argv.slice(2);
  const layout = (layoutArg ?? 'contiguous') as ScaleLayout;
  const run = async (): Promise<unknown> => {
    if (what === 'rss') return modelScaleRss(layout, Number(a ?? 4), Number(b ?? 64));
    if (what === 'register') return registerTime(layout, Number(a ?? 64));
    if (what === 'sweep') return sweepPass(layout, Number(a ?? 4), Number(b ?? 64));
    throw new Error(`usage: model-scale.ts rss|register|sweep contiguous|fragmented [n] [gib]`);
  };
  run().then((r) => process.stdout.write(JSON.stringify(r) + '\n'), (err) => {
    process.stderr.write(`${(err as Error).stack}\n`);
    process.exit(1);
  });
}
