// Every figure the benchmark reports, with its unit and target. The harness fills values in; the smoke
// test (test/unit/bench/smoke.test.ts) checks that each id below comes out numeric.

export type Section = 'method' | 'overhead' | 'events' | 'fio' | 'ingest' | 'latency' | 'memory' | 'hypervisor';
export type Unit = 'x' | 'events/s' | 'ms' | 'MiB' | 'IOPS' | 's' | '%' | 'MiB/GiB';

export interface Target {
  op: '<=' | '>=';
  value: number;
}

export interface FigureSpec {
  id: string;
  section: Section;
  label: string;
  unit: Unit;
  target?: Target;
  /** What the figure is compared with when it has no target of its own (the reference numbers). */
  reference?: string;
}

export interface Figure extends FigureSpec {
  value: number | null;
  /** Spread: min–max of per-pair ratios (overhead), or of runs (others). */
  lo?: number;
  hi?: number;
  /** Number of repetitions / samples behind the value. */
  n?: number;
  met?: boolean | null;
  /** Why there is no value (missing prerequisite or a component that has not landed). */
  skipped?: string;
  /** prerequisite: no root / bpftrace / tracefs here; not-landed: a product component is missing; error: it failed. */
  skipKind?: 'prerequisite' | 'not-landed' | 'error' | 'not-selected';
  note?: string;
  /** Measured, but the measurement cannot tell whether the target is met (why): met is null, the table says so. */
  inconclusive?: string;
  /** Overhead rows: the same ratio computed on the workload's own CPU time (user + sys, from getrusage). */
  cpuRatio?: { value: number; lo: number; hi: number };
  /** Overhead rows: time the tracer's BPF programs ran during one extra attached run (bpf_stats). */
  bpf?: { runTimeNs: number; runCount: number; runWallNs: number };
  /** Raw samples, for the JSON only. */
  samples?: Record<string, number[]>;
}

const RSS_FLAT_MIB = 16;

export const FIGURES: readonly FigureSpec[] = [
  { id: 'method.raw-filter-reject', section: 'method', label: 'raw bpftrace: page_fault_user, in-kernel filter rejecting all (fault-heavy)', unit: 'x', reference: '1.07x (issue)' },
  { id: 'method.raw-print-all', section: 'method', label: 'raw bpftrace: printing every page_fault_user (fault-heavy)', unit: 'x', reference: '~10x (issue)' },
  { id: 'overhead.fault.no-pins', section: 'overhead', label: '(a) fault-heavy, no pins live', unit: 'x', target: { op: '<=', value: 1.02 } },
  { id: 'overhead.fault.pins-elsewhere', section: 'overhead', label: '(b) fault-heavy, pins live (intact) in another process', unit: 'x', target: { op: '<=', value: 1.02 } },
  { id: 'overhead.fault.pins-elsewhere-armed', section: 'overhead', label: "(b') fault-heavy, another process's pinned page was zapped (fault watcher attached)", unit: 'x' },
  { id: 'overhead.fault.own-pinned', section: 'overhead', label: '(c) fault-heavy, faulting inside its own pinned buffer', unit: 'x' },
  { id: 'overhead.page-cache.no-pins', section: 'overhead', label: 'page-cache-heavy, no pins live', unit: 'x', target: { op: '<=', value: 1.02 } },
  { id: 'overhead.fork.no-pins', section: 'overhead', label: 'fork-heavy, no pins live', unit: 'x', target: { op: '<=', value: 1.02 } },
  { id: 'overhead.fork.pins-elsewhere', section: 'overhead', label: 'fork-heavy, pins live (intact) in another process', unit: 'x', target: { op: '<=', value: 1.02 } },
  { id: 'events.idle.before', section: 'events', label: 'events/s reaching user space, host left alone: zap/remap filter off (the scripts before)', unit: 'events/s', reference: '574–1271/s (issue 11 branch)' },
  { id: 'events.idle.after', section: 'events', label: 'events/s reaching user space, host left alone: zap/remap filter on', unit: 'events/s', reference: '102–233/s (issue 11 branch)' },
  { id: 'events.churn.before', section: 'events', label: "a non-pinning process's mmap/madvise/mremap/munmap churn: its events/s, filter off", unit: 'events/s', reference: '4,990/s (issue 11 branch)' },
  { id: 'events.churn.after', section: 'events', label: "a non-pinning process's mmap/madvise/mremap/munmap churn: its events/s, filter on", unit: 'events/s', target: { op: '<=', value: 1 } },
  { id: 'fio.iops.off', section: 'fio', label: 'fio io_uring fixed buffers, 4k randread, iodepth 32: IOPS without pinwatch', unit: 'IOPS' },
  { id: 'fio.iops.on', section: 'fio', label: 'fio io_uring fixed buffers, 4k randread, iodepth 32: IOPS with `pinwatch record`', unit: 'IOPS' },
  { id: 'fio.ratio', section: 'fio', label: 'fio IOPS, collector on / off', unit: 'x', target: { op: '>=', value: 0.98 } },
  { id: 'ingest.parse', section: 'ingest', label: 'replayed bpftrace stream: parse only', unit: 'events/s' },
  { id: 'ingest.parse-model-rules', section: 'ingest', label: 'replayed stream: parse → model → rules', unit: 'events/s', target: { op: '>=', value: 1_000_000 } },
  { id: 'ingest.parse-model-rules-sqlite', section: 'ingest', label: 'replayed stream: parse → model → rules → SQLite', unit: 'events/s', target: { op: '>=', value: 300_000 } },
  { id: 'latency.sqlite.p50', section: 'latency', label: 'divergence syscall → anomaly row in SQLite, p50', unit: 'ms' },
  { id: 'latency.sqlite.p99', section: 'latency', label: 'divergence syscall → anomaly row in SQLite, p99', unit: 'ms', target: { op: '<=', value: 100 } },
  { id: 'latency.socketio.p50', section: 'latency', label: "divergence syscall → socket.io 'anomaly' received, p50", unit: 'ms' },
  { id: 'latency.socketio.p99', section: 'latency', label: "divergence syscall → socket.io 'anomaly' received, p99", unit: 'ms' },
  { id: 'memory.stream.rss-early', section: 'memory', label: 'collector RSS after the first 10% of the event stream', unit: 'MiB' },
  { id: 'memory.stream.rss-end', section: 'memory', label: 'collector RSS at the end of the event stream', unit: 'MiB' },
  { id: 'memory.stream.rss-growth', section: 'memory', label: 'RSS growth from 10% to 100% of the stream ("flat")', unit: 'MiB', target: { op: '<=', value: RSS_FLAT_MIB } },
  { id: 'memory.pins.rss', section: 'memory', label: 'collector RSS with 10k live pins / 1M pinned pages', unit: 'MiB' },
  { id: 'memory.pins.delta', section: 'memory', label: 'RSS added by 10k pins / 1M pages', unit: 'MiB' },
  // Issue 11 (bench/harness/hypervisor.ts, pinned-real.ts). Synthetic: 4 VMs × 64 GiB (smoke 4 × 1 GiB) mapped by
  // VFIO MAP_DMA through the real Collector; real: held-pin's 1 GiB io_uring buffers under `pinwatch record`.
  { id: 'hypervisor.contiguous.rss', section: 'hypervisor', label: 'collector RSS, 4 VMs × 64 GiB pinned in 16 GiB-contiguous extents (synthetic)', unit: 'MiB', target: { op: '<=', value: 256 } },
  { id: 'hypervisor.fragmented.rss', section: 'hypervisor', label: 'collector RSS, 4 VMs × 64 GiB pinned as fragmented 4 KiB pages (synthetic)', unit: 'MiB', target: { op: '<=', value: 1024 } },
  { id: 'hypervisor.register', section: 'hypervisor', label: 'registering a 64 GiB VFIO pin: model + rules (synthetic stream)', unit: 's', target: { op: '<=', value: 1 } },
  { id: 'hypervisor.sweep-cpu', section: 'hypervisor', label: 'collector CPU while idle with 256 GiB pinned: pagemap verification (synthetic)', unit: '%', target: { op: '<=', value: 5 } },
  { id: 'hypervisor.sweep-s', section: 'hypervisor', label: 'one full pagemap sweep of 256 GiB pinned, at that CPU (synthetic)', unit: 's' },
  { id: 'hypervisor.real.rss-per-gib', section: 'hypervisor', label: 'real pins (1/4/8 GiB io_uring, THP): collector RSS per pinned GiB', unit: 'MiB/GiB' },
  { id: 'hypervisor.real.rss-256', section: 'hypervisor', label: 'real pins: collector RSS extrapolated to 256 GiB (intercept + slope × 256)', unit: 'MiB', target: { op: '<=', value: 1024 } },
  { id: 'hypervisor.real.cpu', section: 'hypervisor', label: 'real pins: collector CPU while idle, largest pin', unit: '%' },
  { id: 'hypervisor.real.cpu-256', section: 'hypervisor', label: 'real pins: idle collector CPU at 256 GiB (intercept + min(sweep budget, slope × 256))', unit: '%', target: { op: '<=', value: 5 } },
  { id: 'hypervisor.real.pin-to-db', section: 'hypervisor', label: 'real pins: pin registered → every page row in SQLite, largest pin', unit: 's' },
];

export function specOf(id: string): FigureSpec {
  const s = FIGURES.find((f) => f.id === id);
  if (!s) throw new Error(`unknown figure ${id}`);
  return s;
}

export function judge(f: Pick<Figure, 'value' | 'target'>): boolean | null {
  if (f.value === null || !f.target || !Number.isFinite(f.value)) return null;
  return f.target.op === '<=' ? f.value <= f.target.value : f.value >= f.target.value;
}

/** A figure with a value. */
export function measured(id: string, value: number, extra: Partial<Figure> = {}): Figure {
  const spec = specOf(id);
  const f: Figure = { ...spec, value, ...extra };
  f.met = judge(f);
  return f;
}

/** A figure that could not be measured, with the reason. */
export function skipped(id: string, reason: string): Figure {
  return { ...specOf(id), value: null, met: null, skipped: reason };
}
