// Store write throughput: events/s through Store's CollectorSink API (queue → batched transactions) into a
// fresh WAL file, fed in chunks the way bpftrace stdout arrives (the event loop runs between chunks, so the
// 50 ms timer and the batch-size trigger flush as in a live capture). Events are created on the fly, as the
// parser would; the CPU of creating them (measured in a pass without the store) is subtracted. Reports events per
// CPU-second (the machine may be shared: CPU time is what "on one core" means) and per wall-second.
//   node --import tsx bench/store.bench.ts [--events N] [--workload syscalls|faults|mixed] [--json]
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SequencedEvent, TraceEvent } from '../schema/events.ts';
import { Store } from '../collector/store/index.ts';

type Workload = 'syscalls' | 'faults' | 'mixed';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}

const PIDS = [4242, 4243, 4250, 5001];
const COMMS = ['qemu-system-x86', 'fio', 'uring-bench', 'rdma-app'];
const BASE = 0x7f3a_2c00_0000;

/** A deterministic stream of events as the parser builds them (one fresh object each, seq set as the collector does). */
class EventSource {
  private ts = 5_000_000_000_000;
  private rnd = 12345;
  private seq = 0;
  constructor(private readonly workload: Workload) {}
  private next(): number {
    return (this.rnd = (this.rnd * 1103515245 + 12345) & 0x7fffffff);
  }
  event(): SequencedEvent {
    const next = () => this.next();
    this.ts += 1000 + (next() % 3000);
    const ts = this.ts;
    const p = next() % PIDS.length;
    const pid = PIDS[p];
    const comm = COMMS[p];
    const tid = pid + (next() % 4);
    let e: TraceEvent;
    const pick = this.workload === 'faults' ? 0 : this.workload === 'syscalls' ? 1 + (next() % 6) : next() % 7;
    // A hot set: 4 pinned regions per process (faults land there), syscalls on a few hundred buffers.
    const region = BASE + (next() % 4) * 0x4000_0000;
    const page = next() % 512;
    switch (pick) {
      case 0:
        e = { kind: 'fault', tsNs: ts, pid, tid, comm, addr: region + page * 4096 + (next() % 4096), errorCode: 7, ip: 0x5555_5555_1234 };
        break;
      case 1:
        e = { kind: 'madvise', tsNs: ts, pid, tid, comm, addr: region + page * 4096, len: 4096 * (1 + (next() % 16)), behavior: 4, ret: 0 };
        break;
      case 2:
        e = { kind: 'munmap', tsNs: ts, pid, tid, comm, addr: region + page * 4096, len: 65536, ret: 0 };
        break;
      case 3:
        e = { kind: 'pin_iovec', tsNs: ts, pid, tid, comm, source: 'io_uring', fd: 5, opcode: 0, index: page, addr: region + page * 4096, len: 8192 };
        break;
      case 4:
        e = { kind: 'pin_result', tsNs: ts, pid, tid, comm, source: 'io_uring', fd: 5, opcode: 0, nr: 4, ret: 0, mm: '0xffff8881234c8000' };
        break;
      case 5:
        e = { kind: 'mmap_fixed', tsNs: ts, pid, tid, comm, addr: region + page * 4096, len: 2 * 1024 * 1024, prot: 3, flags: 0x32, fd: -1, ret: region + page * 4096 };
        break;
      default:
        e = { kind: 'scan_pmd', tsNs: ts, pid: 77, tid: 77, comm: 'khugepaged', mm: '0xffff8881234c8000', pfn: 0x1234_00 + page, referenced: 512, noneOrZero: 0, status: 14, unmapped: 0 };
    }
    (e as SequencedEvent).seq = ++this.seq;
    return e as SequencedEvent;
  }
}

export interface StoreBenchResult {
  workload: Workload;
  events: number;
  /** CPU of the whole run minus the CPU of producing the same events without a store. */
  storeCpuSeconds: number;
  eventsPerStoreCpuSecond: number;
  cpuSeconds: number;
  wallSeconds: number;
  eventsPerCpuSecond: number;
  eventsPerWallSecond: number;
  flushes: number;
  dbBytes: number;
}

/** Feed n events in chunks through `sink`, yielding to the event loop between chunks; returns CPU seconds. */
async function feed(n: number, workload: Workload, chunk: number, sink: (e: SequencedEvent) => void): Promise<{ cpu: number; wall: number }> {
  const src = new EventSource(workload);
  const yieldLoop = () => new Promise<void>((r) => setImmediate(r));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < n; i += chunk) {
    const end = Math.min(n, i + chunk);
    for (let k = i; k < end; k++) sink(src.event());
    await yieldLoop();
  }
  const cu = process.cpuUsage(cpu0);
  return { cpu: (cu.user + cu.system) / 1e6, wall: (performance.now() - t0) / 1000 };
}

export async function benchStore(n: number, workload: Workload, chunk = 500): Promise<StoreBenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'pinwatch-bench-'));
  const file = join(dir, 'bench.db');
  let sinkHole = 0;
  const baseline = await feed(n, workload, chunk, (e) => {
    sinkHole += e.seq & 1;
  });
  const store = Store.open(file);
  store.startSession({ host: 'bench', kernel: '6.18', bpftraceVersion: 'v0.17', mode: 'tracepoint', probes: [] });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await feed(n, workload, chunk, (e) => store.event(e));
  store.close();
  const wall = (performance.now() - t0) / 1000;
  const cu = process.cpuUsage(cpu0);
  const cpu = (cu.user + cu.system) / 1e6;
  const storeCpu = Math.max(cpu - baseline.cpu, 1e-9);
  const dbBytes = statSync(file).size;
  const flushes = store.stats().flushes;
  rmSync(dir, { recursive: true, force: true });
  if (sinkHole < 0) console.log(sinkHole);
  return {
    workload, events: n, storeCpuSeconds: storeCpu, eventsPerStoreCpuSecond: n / storeCpu, cpuSeconds: cpu, wallSeconds: wall,
    eventsPerCpuSecond: n / cpu, eventsPerWallSecond: n / wall, flushes, dbBytes,
  };
}

const isMain = process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!);
if (isMain) {
  const n = Number(arg('events', '1000000'));
  const which = arg('workload', 'all');
  const workloads: Workload[] = which === 'all' ? ['syscalls', 'faults', 'mixed'] : [which as Workload];
  const results: StoreBenchResult[] = [];
  for (const w of workloads) {
    const r = await benchStore(n, w);
    results.push(r);
    if (!process.argv.includes('--json')) {
      console.log(
        `store ${w.padEnd(8)} ${r.events} events: ${Math.round(r.eventsPerStoreCpuSecond).toLocaleString('en')} events per store CPU-second ` +
          `(${Math.round(r.eventsPerCpuSecond).toLocaleString('en')}/CPU-s with event creation, ${Math.round(r.eventsPerWallSecond).toLocaleString('en')}/s wall, ` +
          `${r.flushes} flushes, ${(r.dbBytes / 1e6).toFixed(0)} MB)`,
      );
    }
  }
  if (process.argv.includes('--json')) console.log(JSON.stringify(results));
}
