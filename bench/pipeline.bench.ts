// Benchmark of the collector core (collector/pipeline.ts: seq + sinks + shadow model + rules + verification
// scheduling) on one core.
//  1. hot path: events/s for a typical mix dominated by madvise / munmap / fault events of processes
//     WITHOUT pins, with some pinned processes in the stream (faults near their pins, zaps beside them);
//  2. memory: heap and RSS held by 10,000 pins / 1,000,000 pinned pages;
//  3. a full verification pass over those 1M pages and one budgeted timer pass (fake bulk pagemap reader:
//     the model+verifier cost), and the real /proc/self/pagemap read cost for 1M pages (one pread).
// Run: node --expose-gc --import tsx bench/pipeline.bench.ts [seconds]
import type { Anomaly, PagemapRead } from '../schema/anomalies.ts';
import type { SequencedEvent, TraceEvent } from '../schema/events.ts';
import type { Pin } from '../schema/pins.ts';
import { MADV, PAGE_SIZE } from '../schema/kernel.ts';
import type { CollectorSink, PagemapReader } from '../collector/contracts.ts';
import { Collector } from '../collector/pipeline.ts';
import { FakeMapsReader, FakeTime } from '../test/support/fakes.ts';
import { PM_PRESENT, ProcPagemapReader, type PagemapBulkReader } from '../collector/verify/pagemap.ts';

/** A pagemap where every page is present and its pfn is a function of (pid, addr): nothing ever diverges. */
class StablePagemap implements PagemapBulkReader {
  constructor(private readonly clock: FakeTime) {}
  private pfn(pid: number, addr: number): number {
    return (pid * 1_000_003 + addr / PAGE_SIZE) % 0x3fffffff;
  }
  read(pid: number, addr: number, count: number): PagemapRead[] {
    const out: PagemapRead[] = [];
    for (let i = 0; i < count; i++) {
      out.push({ tsNs: this.clock.nowNs(), pid, addr: addr + i * PAGE_SIZE, present: true, swapped: false, pfn: this.pfn(pid, addr + i * PAGE_SIZE) });
    }
    return out;
  }
  readInto(pid: number, addr: number, count: number, pfnOut: Float64Array, stateOut: Uint8Array, offset: number): string | null {
    for (let i = 0; i < count; i++) {
      pfnOut[offset + i] = this.pfn(pid, addr + i * PAGE_SIZE);
      stateOut[offset + i] = PM_PRESENT;
    }
    return null;
  }
}

class CountingSink implements CollectorSink {
  events = 0;
  pins = 0;
  reads = 0;
  anomalies = 0;
  event(_e: SequencedEvent): void {
    this.events++;
  }
  pin(_p: Pin): void {
    this.pins++;
  }
  pagemapRead(_r: PagemapRead, _reason: string): void {
    this.reads++;
  }
  anomaly(_a: Anomaly): void {
    this.anomalies++;
  }
  lost(): void {}
}

const BASE = 0x7f00_0000_0000;
const PINNED_PIDS = [5000, 5001, 5002, 5003];

function setupCollector() {
  const time = new FakeTime();
  const maps = new FakeMapsReader();
  const sink = new CountingSink();
  const c = new Collector({
    sinks: [sink], clock: time, scheduler: time, pagemap: new StablePagemap(time), maps, follNumbering: '6.3',
    onFaultRegions: () => {},
  });
  // A few processes with pinned io_uring buffers (64 pages each, 8 per process).
  let ts = time.nowNs();
  for (const pid of PINNED_PIDS) {
    maps.add(pid, BASE, BASE + 0x1000_0000);
    for (let slot = 0; slot < 8; slot++) {
      c.ingest({ kind: 'pin_iovec', tsNs: ts++, pid, tid: pid, comm: 'srv', source: 'io_uring', fd: 3, opcode: 16, index: slot, addr: BASE + slot * 0x100000, len: 64 * PAGE_SIZE });
    }
    c.ingest({ kind: 'pin_result', tsNs: ts++, pid, tid: pid, comm: 'srv', source: 'io_uring', fd: 3, opcode: 16, nr: 8, ret: 8, mm: '0xffff8881' + pid });
  }
  time.set(ts + 1_000_000);
  return { c, time, sink };
}

/** The event mix, freshly allocated per round (the parser allocates every event). */
function makeEvents(n: number, t0: number): TraceEvent[] {
  const out: TraceEvent[] = new Array(n);
  let x = 12345;
  const rnd = () => ((x = (x * 1103515245 + 12345) & 0x7fffffff), x);
  for (let i = 0; i < n; i++) {
    const r = i % 100;
    const tsNs = t0 + i * 100;
    if (r < 95) {
      // processes without pins (malloc arenas, GC, JITs)
      const pid = 1000 + (rnd() % 500);
      const addr = BASE + (rnd() % 0x100000) * PAGE_SIZE;
      if (r < 45) out[i] = { kind: 'madvise', tsNs, pid, tid: pid, comm: 'worker', addr, len: 16 * PAGE_SIZE, behavior: r < 35 ? MADV.DONTNEED : MADV.FREE, ret: 0 };
      else if (r < 70) out[i] = { kind: 'munmap', tsNs, pid, tid: pid, comm: 'worker', addr, len: 256 * PAGE_SIZE, ret: 0 };
      else if (r < 92) out[i] = { kind: 'fault', tsNs, pid, tid: pid, comm: 'worker', addr: addr + 17, errorCode: 6, ip: 0x401000 };
      else if (r < 94) out[i] = { kind: 'mremap', tsNs, pid, tid: pid, comm: 'worker', addr, oldLen: 4 * PAGE_SIZE, newLen: 8 * PAGE_SIZE, flags: 1, newAddrArg: 0, ret: addr + 0x10000000 };
      else out[i] = { kind: 'mmap_fixed', tsNs, pid, tid: pid, comm: 'worker', addr, len: 16 * PAGE_SIZE, prot: 3, flags: 0x32, fd: -1, ret: addr };
    } else {
      // processes with pins: faults in the pinned regions (not always on pinned pages), zaps beside the pins
      const pid = PINNED_PIDS[rnd() % PINNED_PIDS.length];
      const slot = rnd() % 8;
      const off = (rnd() % 256) * PAGE_SIZE; // pinned pages are the first 64 of each 1 MiB slot
      if (r < 98) out[i] = { kind: 'fault', tsNs, pid, tid: pid, comm: 'srv', addr: BASE + slot * 0x100000 + off, errorCode: 7, ip: 0x401000 };
      else out[i] = { kind: 'madvise', tsNs, pid, tid: pid, comm: 'srv', addr: BASE + slot * 0x100000 + 128 * PAGE_SIZE, len: 64 * PAGE_SIZE, behavior: MADV.DONTNEED, ret: 0 };
    }
  }
  return out;
}

function hotPath(seconds: number) {
  const { c, time, sink } = setupCollector();
  const N = 500_000;
  // warm-up
  for (let k = 0; k < 4; k++) for (const e of makeEvents(N, time.nowNs())) c.ingest(e);
  let events = 0;
  let cpu = 0;
  let wall = 0;
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    const batch = makeEvents(N, time.nowNs());
    time.advance(20); // lets coalesced verification of the pinned processes run between batches
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < batch.length; i++) c.ingest(batch[i]);
    wall += Number(process.hrtime.bigint() - t0) / 1e9;
    const cu = process.cpuUsage(c0);
    cpu += (cu.user + cu.system) / 1e6;
    events += batch.length;
  }
  return { events, eventsPerCpuSecond: events / cpu, eventsPerWallSecond: events / wall, anomalies: sink.anomalies, reads: sink.reads };
}

function mb(n: number) {
  return Math.round(n / 1e5) / 10;
}

function memory() {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
  const before = process.memoryUsage();
  const time = new FakeTime();
  const maps = new FakeMapsReader();
  const sink = new CountingSink();
  const reader = new StablePagemap(time);
  const c = new Collector({ sinks: [sink], clock: time, scheduler: time, pagemap: reader, maps, follNumbering: '6.3' });
  const PINS = 10_000;
  const PAGES = 100; // 10k x 100 = 1M pinned pages (4 GiB of buffers)
  let ts = time.nowNs();
  const t0 = process.hrtime.bigint();
  for (let p = 0; p < 100; p++) {
    const pid = 20000 + p;
    maps.add(pid, BASE, BASE + 0x4000_0000);
    for (let s = 0; s < PINS / 100; s++) {
      c.ingest({ kind: 'pin_iovec', tsNs: ts++, pid, tid: pid, comm: 'db', source: 'io_uring', fd: 3, opcode: 0, index: s, addr: BASE + s * PAGES * PAGE_SIZE, len: PAGES * PAGE_SIZE });
    }
    c.ingest({ kind: 'pin_result', tsNs: ts++, pid, tid: pid, comm: 'db', source: 'io_uring', fd: 3, opcode: 0, nr: PINS / 100, ret: 0, mm: '0xffff8882' + pid });
  }
  const registerS = Number(process.hrtime.bigint() - t0) / 1e9;
  gc?.();
  gc?.();
  const after = process.memoryUsage();
  const pass0 = process.hrtime.bigint();
  c.verifyPass(true);
  const passS = Number(process.hrtime.bigint() - pass0) / 1e9;
  const budget0 = process.hrtime.bigint();
  c.verifyPass(); // the timer's pass: at most 65536 pages
  const budgetS = Number(process.hrtime.bigint() - budget0) / 1e9;
  const pins = c.model.livePinCount;
  return {
    pins,
    pages: pins * PAGES,
    heapMB: mb(after.heapUsed - before.heapUsed),
    // `external` includes ArrayBuffers (the typed arrays of pins and the pfn index).
    externalMB: mb(after.external - before.external),
    rssMB: mb(after.rss - before.rss),
    registerSeconds: registerS,
    periodicPassMs: passS * 1000,
    budgetedPassMs: budgetS * 1000,
    keep: c,
  };
}

function realPagemapRead() {
  const r = new ProcPagemapReader();
  const n = 1 << 20;
  const pfn = new Float64Array(n);
  const st = new Uint8Array(n);
  const t0 = process.hrtime.bigint();
  const err = r.readInto(process.pid, 0x7f00_0000_0000, n, pfn, st, 0);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  r.close();
  return { pages: n, ms, err };
}

const seconds = Number(process.argv[2] ?? 4);
const hot = hotPath(seconds);
console.log(
  `hot path: ${hot.events.toLocaleString()} events, ${Math.round(hot.eventsPerCpuSecond).toLocaleString()} events/CPU-s ` +
    `(${Math.round(hot.eventsPerWallSecond).toLocaleString()} events/wall-s), anomalies ${hot.anomalies}, pagemap reads ${hot.reads}`,
);
const m = memory();
console.log(
  `memory: ${m.pins.toLocaleString()} pins / ${m.pages.toLocaleString()} pinned pages: heap +${m.heapMB} MB, typed arrays +${m.externalMB} MB, ` +
    `RSS +${m.rssMB} MB; registering took ${m.registerSeconds.toFixed(2)} s; a full verification pass over all pages ${m.periodicPassMs.toFixed(0)} ms, ` +
    `a timer pass (65,536-page budget) ${m.budgetedPassMs.toFixed(1)} ms`,
);
const rp = realPagemapRead();
console.log(`real /proc/self/pagemap: ${rp.pages.toLocaleString()} pages in one pread: ${rp.ms.toFixed(1)} ms${rp.err ? ` (${rp.err})` : ''}`);
