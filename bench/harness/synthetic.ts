// Synthetic event streams for the memory benchmark: what a busy host with some DMA users looks like to
// the collector, generated in-process (no bpftrace, no /proc), unbounded in length and flat in its own
// memory. A pool of processes live, fork, pin io_uring buffers, churn their allocators (madvise/munmap),
// fault inside and outside pinned regions, sometimes zap a pinned page, and exit; pids are recycled.
import type { TraceEvent } from '../../schema/events.ts';
import { MADV, PAGE_SIZE } from '../../schema/kernel.ts';

const POOL = 64; // processes alive at once
const LIFETIME = 200; // events per process before it exits
const PIN_EVERY = 4; // one process in PIN_EVERY pins a buffer
const PIN_PAGES = 16;
const HEAP = 0x7f0000000000;
const RING_FD = 5;

interface Proc {
  pid: number;
  comm: string;
  left: number;
  pinned: boolean;
  pinAddr: number;
  mm: string;
}

export class SyntheticHost {
  private readonly pool: Proc[] = [];
  private nextPid = 10_000;
  private cursor = 0;
  private pending: TraceEvent[] = [];
  private n = 0;

  constructor() {
    for (let i = 0; i < POOL; i++) this.pool.push(this.spawn());
  }

  private spawn(): Proc {
    const pid = this.nextPid;
    this.nextPid = this.nextPid >= 4_000_000 ? 10_000 : this.nextPid + 1; // pid_max wraps: pids are reused
    const pinned = pid % PIN_EVERY === 0;
    return { pid, comm: pinned ? 'iou-server' : 'worker', left: LIFETIME, pinned, pinAddr: HEAP + (pid % 1024) * 0x200000, mm: '0xffff8881' + (pid & 0xfffffff).toString(16).padStart(8, '0') };
  }

  private now(): number {
    return Number(process.hrtime.bigint()) - 1000; // a little behind the clock, as bpftrace's nsecs is
  }

  /** Call `emit` for the next `count` events. */
  run(count: number, emit: (e: TraceEvent) => void): void {
    for (let i = 0; i < count; i++) emit(this.next());
  }

  // Plain literals, no `{ ...base }`: object spread costs ~12 µs per object on this Node 20 (measured), which
  // would make the generator, not the collector, the bottleneck.
  next(): TraceEvent {
    if (this.pending.length) return this.pending.shift()!;
    const p = this.pool[this.cursor];
    this.cursor = (this.cursor + 1) % POOL;
    const tsNs = this.now();
    const pid = p.pid;
    const comm = p.comm;
    this.n++;
    if (p.left === LIFETIME) {
      p.left--;
      if (p.pinned) {
        const len = PIN_PAGES * PAGE_SIZE;
        this.pending.push(
          { kind: 'pin_iovec', tsNs, pid, tid: pid, comm, source: 'io_uring', fd: RING_FD, opcode: 0, index: 0, addr: p.pinAddr, len },
          { kind: 'pin_result', tsNs, pid, tid: pid, comm, source: 'io_uring', fd: RING_FD, opcode: 0, nr: 1, ret: 0, mm: p.mm },
        );
      }
      return { kind: 'fork', tsNs, pid: 1, tid: 1, comm: 'init', childPid: pid, childComm: comm, cloneFlags: 17 };
    }
    if (--p.left === 0) {
      this.pool[(this.cursor + POOL - 1) % POOL] = this.spawn();
      if (!p.pinned) return { kind: 'exit', tsNs, pid, tid: pid, comm };
      this.pending.push({ kind: 'exit', tsNs, pid, tid: pid, comm });
      return { kind: 'close', tsNs, pid, tid: pid, comm, fd: RING_FD };
    }
    const r = this.n % 20;
    const heapAddr = HEAP + 0x40000000 + ((this.n * 7) % 4096) * PAGE_SIZE;
    if (p.pinned && p.left === LIFETIME / 2) {
      // The hazard: zap one pinned page (pinned-range-zapped), the next touch maps a new page.
      this.pending.push({ kind: 'fault', tsNs, pid, tid: pid, comm, addr: p.pinAddr + PAGE_SIZE, errorCode: 6, ip: 0x401000 });
      return { kind: 'madvise', tsNs, pid, tid: pid, comm, addr: p.pinAddr + PAGE_SIZE, len: PAGE_SIZE, behavior: MADV.DONTNEED, ret: 0 };
    }
    if (r < 9) return { kind: 'madvise', tsNs, pid, tid: pid, comm, addr: heapAddr, len: 16 * PAGE_SIZE, behavior: r < 6 ? MADV.DONTNEED : MADV.FREE, ret: 0 };
    if (r < 13) return { kind: 'munmap', tsNs, pid, tid: pid, comm, addr: heapAddr, len: 256 * PAGE_SIZE, ret: 0 };
    if (r < 19 && p.pinned) return { kind: 'fault', tsNs, pid, tid: pid, comm, addr: p.pinAddr + (this.n % PIN_PAGES) * PAGE_SIZE, errorCode: 7, ip: 0x401000 };
    return { kind: 'mmap_fixed', tsNs, pid, tid: pid, comm, addr: heapAddr, len: PAGE_SIZE, prot: 3, flags: 0x32, fd: -1, ret: heapAddr };
  }
}

/**
 * Events that leave `pins` live io_uring buffers of `pagesPerPin` pages each, spread over `pins / pinsPerPid`
 * processes (the memory figure with 10k pins / 1M pinned pages).
 */
export function* manyPins(pins: number, pagesPerPin: number, pinsPerPid: number): Generator<TraceEvent> {
  const t = () => Number(process.hrtime.bigint()) - 1000;
  const len = pagesPerPin * PAGE_SIZE;
  const comm = 'dma-holder';
  for (let i = 0; i < pins; i += pinsPerPid) {
    const pid = 500_000 + i / pinsPerPid;
    yield { kind: 'fork', tsNs: t(), pid: 1, tid: 1, comm: 'init', childPid: pid, childComm: comm, cloneFlags: 17 };
    const n = Math.min(pinsPerPid, pins - i);
    for (let k = 0; k < n; k++) {
      yield { kind: 'pin_iovec', tsNs: t(), pid, tid: pid, comm, source: 'io_uring', fd: RING_FD, opcode: 0, index: k, addr: HEAP + k * (len + 0x200000), len };
    }
    yield { kind: 'pin_result', tsNs: t(), pid, tid: pid, comm, source: 'io_uring', fd: RING_FD, opcode: 0, nr: n, ret: 0, mm: '0xffff8882' + pid.toString(16).padStart(8, '0') };
  }
}
