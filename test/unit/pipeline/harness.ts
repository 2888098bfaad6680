// Test harness for the collector core: a Collector wired to a fake clock/scheduler, a scriptable pagemap
// and maps, and a recording sink; plus event builders stamped with the fake clock's current time.
import type { Anomaly, PagemapRead, RuleId } from '../../../schema/anomalies.ts';
import type { PinSource, SequencedEvent, TraceEvent } from '../../../schema/events.ts';
import type { Pin } from '../../../schema/pins.ts';
import type { CollectorConfig, CollectorSink, FaultRegion } from '../../../collector/contracts.ts';
import { Collector } from '../../../collector/pipeline.ts';
import type { Rule } from '../../../collector/rules/rule.ts';
import { FakeMapsReader, FakePagemapReader, FakeTime } from '../../support/fakes.ts';

export const PAGE = 4096;
export const MiB2 = 2 * 1024 * 1024;
/** A typical user address well above 2^32 (catches 32-bit truncation). */
export const BUF = 0x7f12_3456_0000;

export class RecordingSink implements CollectorSink {
  events: SequencedEvent[] = [];
  pinUpdates: Pin[] = [];
  reads: { read: PagemapRead; reason: string }[] = [];
  anomalies: Anomaly[] = [];
  lostCounts: number[] = [];
  /** Per event (same index as `events`): kept as a row (true) or only counted (collector/kept-events.ts). */
  kept: boolean[] = [];
  event(e: SequencedEvent, kept = true): void {
    this.events.push(e);
    this.kept.push(kept);
  }
  /** "kind:pid" of the events handed over as counted only. */
  counted(): string[] {
    return this.events.filter((_, i) => !this.kept[i]).map((e) => `${e.kind}:${e.pid}`);
  }
  pin(p: Pin): void {
    this.pinUpdates.push(p);
  }
  pagemapRead(r: PagemapRead, reason: string): void {
    this.reads.push({ read: r, reason });
  }
  anomaly(a: Anomaly): void {
    this.anomalies.push(a);
  }
  lost(count: number): void {
    this.lostCounts.push(count);
  }
  of(rule: RuleId): Anomaly[] {
    return this.anomalies.filter((a) => a.rule === rule);
  }
  /** "rule @0xaddr[ confirmed]" lines, sorted: the live test's comparison format. */
  summary(pid?: number): string[] {
    return this.anomalies
      .filter((a) => pid === undefined || a.pid === pid)
      .map((a) => `${a.rule} @0x${a.addr.toString(16)}${a.confirmed ? ' confirmed' : ''}`)
      .sort();
  }
}

export interface HarnessOptions {
  config?: Partial<CollectorConfig>;
  rules?: readonly Rule[];
  firstEventSeq?: number;
  firstAnomalySeq?: number;
  firstPinId?: number;
}

export class Harness {
  readonly time = new FakeTime();
  readonly pagemap = new FakePagemapReader(this.time);
  readonly maps = new FakeMapsReader();
  readonly sink = new RecordingSink();
  readonly regions: FaultRegion[][] = [];
  readonly c: Collector;
  readonly ev: EventBuilder;

  constructor(opts: HarnessOptions = {}) {
    this.c = new Collector({
      sinks: [this.sink],
      // Verdicts are delivered at once unless a test exercises settling (verify/settle.ts) itself.
      config: { readSettleMs: 0, ...opts.config },
      pagemap: this.pagemap,
      maps: this.maps,
      clock: this.time,
      scheduler: this.time,
      onFaultRegions: (r) => this.regions.push(r),
      rules: opts.rules,
      firstEventSeq: opts.firstEventSeq,
      firstAnomalySeq: opts.firstAnomalySeq,
      firstPinId: opts.firstPinId,
      follNumbering: '6.3',
      onRuleError: (id, err) => {
        throw new Error(`rule ${id} threw: ${(err as Error).stack}`);
      },
    });
    this.ev = new EventBuilder(this.time);
  }

  feed(...events: (TraceEvent | TraceEvent[])[]): this {
    for (const e of events.flat()) this.c.ingest(e);
    return this;
  }

  /** Advance fake time (verification timers fire). */
  tick(ms: number): this {
    this.time.advance(ms);
    return this;
  }

  /**
   * Let zaps of io_uring buffers be judged with the pin still live: no event comes, so the quiet-stream cap of
   * the teardown window (rules/sources/teardown.ts) ends it; then a verification pass (the rules' tick).
   */
  pastTeardown(): this {
    this.time.advance(3100);
    this.c.verifyNow();
    return this;
  }

  /** Anonymous private buffer of n pages at addr, pfns from pfn0, in both maps and pagemap. */
  anonBuffer(pid: number, addr: number, n: number, pfn0: number): this {
    this.maps.add(pid, addr, addr + n * PAGE, '', false);
    this.pagemap.map(pid, addr, pfn0, n);
    return this;
  }

  /** io_uring registration of one buffer (iovec + result), 1 µs apart. */
  registerRing(pid: number, fd: number, bufs: [number, number][], ret = 0, opts: { opcode?: number; base?: number } = {}): this {
    const opcode = opts.opcode ?? 0;
    const base = opts.base ?? 0;
    bufs.forEach(([addr, len], i) => this.feed(this.ev.iovec(pid, fd, base + i, addr, len, { opcode })));
    this.time.set(this.time.nowNs() + 1000);
    return this.feed(this.ev.pinResult(pid, fd, bufs.length, ret, { opcode }));
  }
}

type Opt<T> = Partial<T> & { tid?: number; comm?: string };

export class EventBuilder {
  comm = 'app';
  constructor(private readonly time: FakeTime) {}

  private base(pid: number, o: { tid?: number; comm?: string } = {}) {
    return { tsNs: this.time.nowNs(), pid, tid: o.tid ?? pid, comm: o.comm ?? this.comm };
  }

  iovec(pid: number, fd: number, index: number, addr: number, len: number, o: Opt<{ opcode: number; source: PinSource }> = {}): TraceEvent {
    return { ...this.base(pid, o), kind: 'pin_iovec', source: o.source ?? 'io_uring', fd, opcode: o.opcode ?? 0, index, addr, len };
  }
  pinResult(pid: number, fd: number, nr: number, ret: number, o: Opt<{ opcode: number; source: PinSource; mm: string }> = {}): TraceEvent {
    return { ...this.base(pid, o), kind: 'pin_result', source: o.source ?? 'io_uring', fd, opcode: o.opcode ?? 0, nr, ret, mm: o.mm ?? `0xffff8880${pid.toString(16).padStart(8, '0')}` };
  }
  madvise(pid: number, addr: number, len: number, behavior: number, ret = 0, o: Opt<object> = {}): TraceEvent {
    return { ...this.base(pid, o), kind: 'madvise', addr, len, behavior, ret };
  }
  munmap(pid: number, addr: number, len: number, ret = 0): TraceEvent {
    return { ...this.base(pid), kind: 'munmap', addr, len, ret };
  }
  mremap(pid: number, addr: number, oldLen: number, newLen: number, flags: number, ret: number, newAddrArg = 0): TraceEvent {
    return { ...this.base(pid), kind: 'mremap', addr, oldLen, newLen, flags, newAddrArg, ret };
  }
  mmapFixed(pid: number, addr: number, len: number, ret = addr): TraceEvent {
    return { ...this.base(pid), kind: 'mmap_fixed', addr, len, prot: 3, flags: 0x32, fd: -1, ret };
  }
  fork(pid: number, childPid: number, cloneFlags = 0x11): TraceEvent {
    return { ...this.base(pid), kind: 'fork', childPid, childComm: this.comm, cloneFlags };
  }
  exit(pid: number, tid = pid): TraceEvent {
    return { ...this.base(pid, { tid }), kind: 'exit' };
  }
  close(pid: number, fd: number): TraceEvent {
    return { ...this.base(pid), kind: 'close', fd };
  }
  uffd(pid: number, op: 'register' | 'unregister', fd: number, addr: number, len: number, mode = 1, ret = 0): TraceEvent {
    return { ...this.base(pid), kind: 'uffd_register', op, fd, addr, len, mode, ret };
  }
  fault(pid: number, addr: number, write = true, present = false): TraceEvent {
    return { ...this.base(pid), kind: 'fault', addr, errorCode: 4 | (write ? 2 : 0) | (present ? 1 : 0), ip: 0x401000 };
  }
  collapseFile(pid: number, addr: number, result: number, o: Opt<{ mm: string; isShmem: boolean; hpfn: number }> = {}): TraceEvent {
    return {
      ...this.base(pid, o), kind: 'collapse_file', mm: o.mm ?? '0x0', hpfn: o.hpfn ?? 0, index: 0, addr, isShmem: o.isShmem ?? true,
      filename: 'memfd:test', nr: 512, result,
    };
  }
  scanPmd(pid: number, pfn: number, status: number, mm = '0x0', o: Opt<object> = {}): TraceEvent {
    return { ...this.base(pid, o), kind: 'scan_pmd', mm, pfn, referenced: 0, noneOrZero: 0, status, unmapped: 0 };
  }
  collapseIsolate(pid: number, pfn: number, status: number): TraceEvent {
    return { ...this.base(pid), kind: 'collapse_isolate', pfn, noneOrZero: 0, referenced: 0, status };
  }
  ksm(pid: number, pfn: number, err = 0, mm = '0x0'): TraceEvent {
    return { ...this.base(pid, { comm: 'ksmd' }), kind: 'ksm_merge', pfn, ksmPfn: 0, mm, err };
  }
  writeback(pid: number, pfn: number): TraceEvent {
    return { ...this.base(pid, { comm: 'kswapd0' }), kind: 'writeback', pfn, reclaimFlags: 0 };
  }
  migrate(pid: number, addr: number, op: 'set' | 'remove' = 'set'): TraceEvent {
    return { ...this.base(pid), kind: 'migrate_pte', op, addr, pte: 0, order: 0 };
  }
  wpPage(pid: number, addr: number, oldPfn: number, newPfn: number, outcome: 'copy' | 'reuse' | 'unshare' = 'copy'): TraceEvent {
    return { ...this.base(pid), kind: 'wp_page', addr, outcome, oldPfn, newPfn };
  }
  rmap(kind: 'unmap' | 'mkclean', pid: number, pfn: number, mm: string, addr: number): TraceEvent {
    return { ...this.base(pid, { comm: 'kswapd0' }), kind, pfn, mm, addr };
  }
  mmuInvalidate(pid: number, mm: string, start: number, end: number, event: number): TraceEvent {
    return { ...this.base(pid), kind: 'mmu_invalidate', mm, start, end, event };
  }
  vfio(pid: number, op: 'map' | 'unmap', fd: number, vaddr: number, iova: number, size: number, flags = 3, ret = 0): TraceEvent {
    return { ...this.base(pid), kind: 'vfio_dma', op, fd, vaddr, iova, size, flags, ret };
  }
  gup(pid: number, addr: number, pfns: number[], gupFlags = 0x101, fn = 'pin_user_pages_fast', o: Opt<{ source: PinSource }> = {}): TraceEvent {
    return { ...this.base(pid, o), kind: 'gup', fn, addr, nrPages: pfns.length, gupFlags, ret: pfns.length, pfns, ...(o.source ? { source: o.source } : {}) };
  }
  unpin(pid: number, pfn: number, npages = 1): TraceEvent {
    return { ...this.base(pid), kind: 'unpin', fn: 'unpin_user_pages', pfn, npages };
  }
  lost(count: number): TraceEvent {
    return { ...this.base(0, { comm: '' }), kind: 'lost', count };
  }
}
