// The shadow model: page ownership and DMA buffers as the event stream reveals them. Fed TraceEvents in
// stream order, it keeps processes, pins (one per io_uring slot / vfio mapping / vmsplice iovec / kprobe
// GUP) with their pinned pfns, the MADV_DONTFORK/WIPEONFORK and userfaultfd ranges, and records in
// `effects` what each event did to pinned pages. It raises nothing itself: rules/ read the effects.
//
// Timing. The kernel is ahead of us by the pipe latency: when we read a new pin's pfns from pagemap, the
// process may already have zapped or remapped the range. So every pin remembers
//   raceFromNs  – the registering syscall's entry (GUP ran somewhere after it),
//   createdNs   – the syscall's exit,
//   snapshotNs  – when our pagemap read finished (CLOCK_MONOTONIC, same clock as bpftrace nsecs).
// A page-moving event with raceFromNs <= ts < snapshotNs marks the pages it touches PG_LATE (their pinned pfn
// may be the moved page's: a divergence can only be inferred). Events before raceFromNs are ignored for the
// pin; events inside the syscall (ts < createdNs) are "race" hits (late, no anomaly); later ones are real.
// Events that arrived BEFORE the pin_result (per-CPU buffers reorder) are replayed from a small ring.
//
// Approximations (tracepoints cannot see them): vmsplice references are dropped when the pipe buffer is
// consumed, which we cannot observe, so a vmsplice pin lives until close of the pipe fd or exit. A fork
// child is assumed to keep inherited pin fds (io_uring fds are O_CLOEXEC; exec is not traced) until it
// closes them or exits.
import { release as kernelRelease } from 'node:os';
import type {
  CloseEvent, CollapseFileEvent, ExitEvent, ForkEvent, GupEvent, MadviseEvent, MigratePteEvent, MmapFixedEvent,
  MmuInvalidateEvent, MremapEvent, MunmapEvent, PinIovecEvent, PinResultEvent, PinSource, SequencedEvent, SplitPmdEvent,
  ExecEvent, FaultEvent, ShmdtEvent, UffdRegisterEvent, UnpinEvent, VfioDmaEvent, WpPageEvent,
} from '../../schema/events.ts';
import {
  CLONE_VM, FOLL_6_3, MAP_HUGETLB, FOLL_PRE_6_3, IORING_REGISTER, MADV, MADV_ZAPPING, MREMAP_DONTUNMAP, MREMAP_FIXED, PAGE_SIZE, PF_WRITE,
  PMD_SIZE, SCAN_SUCCEEDED, madvName, scanResultName,
} from '../../schema/kernel.ts';
import type { FaultRegion, PagemapReader } from '../contracts.ts';
import { readPagesInto } from '../verify/pagemap.ts';
import type { Clock } from '../clock.ts';
import { ModelEffects, type BufferOutcome, type PageSpan, type Registration } from './effects.ts';
import { backingOf, type MapsReader, type RangeBacking } from './maps.ts';
import { MmapBackings } from './mmap-backings.ts';
import {
  HandleRecord, PfnIndex, PinRecord, PG_GUP_EXACT, type PinInit, PG_HARD_ZAP, PG_LATE, PG_UNMAPPED, PG_WRITE_AFTER_ZAP, PG_ZAPPED, validUserRange,
  type Extent,
} from './pin-record.ts';
import { ProcessState } from './process.ts';
import { hex, pageDown, pageUp, pmdDown, pmdIndex } from './ranges.ts';
import { MAX_HELD_VFIO_GUPS, isVfioMapGup, vfioHandleText } from './sources/vfio.ts';
import { isRdmaMrGup, rdmaHandleText } from './sources/rdma.ts';

type Seq = { seq: number };
const RING_SIZE = 1024; // recent page-moving events, replayed against a new pin (reordered streams)
const MAX_PENDING_IOVECS = 65536;
const VFIO_DMA_MAP_FLAG_WRITE = 2;
const VFIO_DMA_UNMAP_FLAG_ALL = 2;
const VFIO_DMA_UNMAP_FLAG_VADDR = 4;

export type FollNumbering = '6.3' | 'pre-6.3';

export interface ShadowModelOptions {
  pagemap: PagemapReader;
  maps: MapsReader;
  clock: Clock;
  /** First pin id to hand out (a store reopened on an existing database continues its ids). */
  firstPinId?: number;
  /** FOLL_* numbering of kprobe gup events; default from kernelRelease (renumbered in 6.3). */
  follNumbering?: FollNumbering;
  /** The traced kernel's release (numbering of khugepaged results, FOLL_*); default the running kernel's. */
  kernelRelease?: string;
}

function defaultFollNumbering(release: string): FollNumbering {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) return '6.3';
  const v = Number(m[1]) * 1000 + Number(m[2]);
  return v >= 6003 ? '6.3' : 'pre-6.3';
}

/** Zaps for sure (MADV_ZAPPING) or advisory ones (PAGEOUT; FREE is lazy): see the advisory handling below. */
function isZapping(behavior: number): boolean {
  return MADV_ZAPPING.has(behavior) || behavior === MADV.PAGEOUT;
}

/**
 * collapse_file built the huge page: succeeded, or pte_mapped_hugepage (MADV_COLLAPSE's success on file/shmem).
 * By name: the result codes are numbered differently across kernels (schema/kernel.ts scanResultNames).
 */
export function collapseSucceeded(result: number, kernelRelease: string): boolean {
  const name = scanResultName(result, kernelRelease);
  return name === 'succeeded' || name === 'pte_mapped_hugepage';
}

function madvLabel(behavior: number): string {
  const n = madvName(behavior);
  return n.startsWith('MADV_') ? n : 'MADV_' + n;
}

/** What a pin's creator decides; the model adds id, owner, comm and the creating event's time and seq. */
type PinSpec = Omit<PinInit, 'id' | 'pid' | 'comm' | 'createdNs' | 'createdSeq'> & {
  /** Exact pfns from kprobe GUP events (address, pfns), overriding the pagemap snapshot. */
  gups?: readonly GupEvent[];
};

export class ShadowModel {
  /** What the last apply() did. Reused; read it before the next apply(). */
  readonly effects = new ModelEffects();
  /** Pins created or changed since the pipeline last drained this set (to publish them). */
  readonly changed = new Set<PinRecord>();
  /** The set of pinned 2 MiB regions may have changed. */
  regionsDirty = false;
  /** mm pointers seen in mmu-notifier events: those mms have a secondary MMU (KVM, vhost, ...). */
  readonly secondaryMmuMms = new Set<string>();
  /** Backings of shared-file / hugetlb mappings captured at mmap time (preferred over a late maps read). */
  readonly mmapBackings = new MmapBackings();

  private readonly pagemap: PagemapReader;
  private readonly maps: MapsReader;
  private readonly clock: Clock;
  private readonly foll: typeof FOLL_6_3 | typeof FOLL_PRE_6_3;
  private readonly kernelRelease: string;
  private readonly procs = new Map<number, ProcessState>();
  private readonly pinsById = new Map<number, PinRecord>();
  private readonly pfns = new PfnIndex();
  private readonly mmToPid = new Map<string, number>();
  private readonly pendingIovecs = new Map<number, PinIovecEvent[]>();
  private readonly pendingGup = new Map<number, GupEvent[]>();
  private readonly ring: (SequencedEvent | undefined)[] = new Array(RING_SIZE);
  private ringHead = 0;
  private readonly scratch: Extent[] = [];
  private stateScratch = new Uint8Array(256);
  private nextPinId: number;

  constructor(opts: ShadowModelOptions) {
    this.pagemap = opts.pagemap;
    this.maps = opts.maps;
    this.clock = opts.clock;
    this.nextPinId = opts.firstPinId ?? 1;
    this.kernelRelease = opts.kernelRelease ?? kernelRelease();
    this.foll = (opts.follNumbering ?? defaultFollNumbering(this.kernelRelease)) === '6.3' ? FOLL_6_3 : FOLL_PRE_6_3;
  }

  // ---------------------------------------------------------------- queries

  get livePinCount(): number {
    return this.pinsById.size;
  }

  /** The next pin id the model will hand out. */
  get nextPin(): number {
    return this.nextPinId;
  }

  process(pid: number): ProcessState | undefined {
    return this.procs.get(pid);
  }

  processes(): IterableIterator<ProcessState> {
    return this.procs.values();
  }

  hasPins(pid: number): boolean {
    const p = this.procs.get(pid);
    return p !== undefined && p.pins.size !== 0;
  }

  /** Live pins (including orphans whose owner exited while another process holds the fd). */
  livePins(): IterableIterator<PinRecord> {
    return this.pinsById.values();
  }

  /** Live pins owned by pid. */
  pinsOf(pid: number): PinRecord[] {
    const p = this.procs.get(pid);
    return p ? [...p.pins] : [];
  }

  pin(id: number): PinRecord | undefined {
    return this.pinsById.get(id);
  }

  pidForMm(mm: string): number | undefined {
    return this.mmToPid.get(mm);
  }

  /** Pinned pages of pid mapped in [start, end) now, ascending by address. */
  pinnedSpans(pid: number, start: number, end: number): PageSpan[] {
    const p = this.procs.get(pid);
    if (!p || p.pins.size === 0) return [];
    const out: PageSpan[] = [];
    for (const x of p.overlapping(start, end, [])) {
      const s = Math.max(start, x.va);
      const en = Math.min(end, x.va + x.count * PAGE_SIZE);
      out.push({ pin: x.pin, firstPage: x.page + (s - x.va) / PAGE_SIZE, count: (en - s) / PAGE_SIZE, va: s });
    }
    return out;
  }

  /** Pins holding pfn, with the page index. */
  lookupPfn(pfn: number): { pin: PinRecord; page: number }[] {
    if (!this.pfns.has(pfn)) return [];
    const out: { pin: PinRecord; page: number }[] = [];
    for (const id of this.pfns.lookup(pfn)) {
      const pin = this.pinsById.get(id);
      if (!pin) continue;
      const page = pin.pageOfPfn(pfn);
      if (page >= 0) out.push({ pin, page });
    }
    return out;
  }

  /** The pinned 2 MiB regions (pid, addr >> 21) of live, owned pins, sorted. */
  faultRegions(): FaultRegion[] {
    const out: FaultRegion[] = [];
    for (const p of this.procs.values()) {
      if (p.pins.size === 0) continue;
      const seen = new Set<number>();
      for (const x of p.allExtents()) {
        const last = pmdIndex(x.va + x.count * PAGE_SIZE - 1);
        for (let r = pmdIndex(x.va); r <= last; r++) seen.add(r);
      }
      for (const r of [...seen].sort((a, b) => a - b)) out.push({ pid: p.pid, region: r });
    }
    out.sort((a, b) => a.pid - b.pid || a.region - b.region);
    return out;
  }

  // ---------------------------------------------------------------- the event path

  apply(e: SequencedEvent): void {
    this.effects.reset();
    switch (e.kind) {
      case 'madvise':
        return this.onMadvise(e);
      case 'munmap':
        return this.onMunmap(e);
      case 'fault':
        return this.onFault(e);
      case 'mremap':
        return this.onMremap(e);
      case 'mmap_fixed':
        return this.onMmapFixed(e);
      case 'shmdt':
        return this.onShmdt(e);
      case 'mmap_backing':
        return this.mmapBackings.onMmap(e);
      case 'mmap_forget':
        return this.mmapBackings.forget(e.pid);
      case 'pin_iovec':
        return this.onPinIovec(e);
      case 'pin_result':
        return this.onPinResult(e);
      case 'vfio_dma':
        return this.onVfio(e);
      case 'fork':
        return this.onFork(e);
      case 'exit':
        return this.onExit(e);
      case 'exec':
        return this.onExec(e);
      case 'close':
        return this.onClose(e);
      case 'uffd_register':
        return this.onUffd(e);
      case 'collapse_file':
        return this.onCollapseFile(e);
      case 'scan_pmd':
      case 'collapse_isolate':
        return this.pfnHit(e.pfn, e, e.status === SCAN_SUCCEEDED, e.kind);
      case 'ksm_merge':
        return this.pfnHit(e.pfn, e, e.err === 0, 'ksm_merge');
      case 'writeback':
        return this.pfnHit(e.pfn, e, true, 'writeback');
      case 'migrate_pte':
        return this.onMigratePte(e);
      case 'gup':
        return this.onGup(e);
      case 'unpin':
        return this.onUnpin(e);
      case 'wp_page':
        return this.onWpPage(e);
      case 'unmap':
      case 'mkclean':
        this.pfnHit(e.pfn, e, true, e.kind);
        return this.touchMm(e.mm, e, pageDown(e.addr), pageDown(e.addr) + PAGE_SIZE, e.kind, e.kind === 'unmap');
      case 'anon_rmap_move':
        return this.pfnHit(e.pfn, e, true, 'anon_rmap_move');
      case 'split_pmd':
        return this.onSplitPmd(e);
      case 'mmu_invalidate':
        return this.onMmuInvalidate(e);
      default:
        return;
    }
  }

  /**
   * An io_uring buffer found already registered (/proc/PID/fdinfo, at start or after a restart): a pin whose
   * pinned pfns are what pagemap shows now (origin 'discovered': a divergence before now cannot be seen).
   * Nothing when the model already has that slot with the same range. Effects are reset and filled.
   */
  discoverRingBuffer(d: { pid: number; comm: string; fd: number; slot: number; addr: number; len: number; tsNs: number }): PinRecord | null {
    this.effects.reset();
    const p = this.proc(d.pid, d.comm);
    let handle = p.handles.get(d.fd);
    const known = handle?.pins.get(d.slot);
    if (known && known.addr === d.addr && known.len === d.len) return null;
    if (!validUserRange(d.addr, d.len)) return null;
    if (known) this.release(known, 'slot found re-registered after a capture gap', d.tsNs);
    if (handle === undefined) {
      handle = new HandleRecord('ring', d.fd, d.pid);
      p.handles.set(d.fd, handle);
    }
    const rb = backingOf(this.maps.read(d.pid), pageDown(d.addr), pageUp(d.addr + d.len));
    const cause = { kind: 'pin_result', tsNs: d.tsNs, pid: d.pid, tid: d.pid, comm: d.comm, seq: -1 } as unknown as SequencedEvent;
    return this.createPin(p, cause, {
      source: 'io_uring', handle, key: d.slot, handleText: `${handleText(handle, d.slot, 'io_uring')} (discovered)`, addr: d.addr,
      len: d.len, writable: true, longterm: true, backing: rb.backing, mapShared: rb.mapShared, sharedFile: rb.sharedFile,
      raceFromNs: d.tsNs, origin: 'discovered',
    });
  }

  /** Pagemap showed that an advisory zap (MADV_FREE / MADV_PAGEOUT) did remove these pinned pages. */
  markZapped(pin: PinRecord, firstPage: number, count: number): void {
    const end = Math.min(firstPage + count, pin.nPages);
    for (let i = Math.max(0, firstPage); i < end; i++) if (pin.setFlag(i, PG_ZAPPED)) this.changed.add(pin);
  }

  /**
   * The process vanished without an exit event (lost, or pagemap says it is gone): same as an exit.
   * Returns false when the model did not know the process. Effects are reset and filled.
   */
  processGone(pid: number, tsNs: number, reason = 'process gone (pagemap)'): boolean {
    this.effects.reset();
    this.cleanPending(pid);
    const p = this.procs.get(pid);
    if (!p) return false;
    this.exitProcess(p, tsNs, reason, null);
    return true;
  }

  // ---------------------------------------------------------------- address-space events

  private onMadvise(e: MadviseEvent & Seq): void {
    if (e.ret !== 0) return;
    const b = e.behavior;
    if (isZapping(b)) {
      this.remember(e);
      const p = this.procs.get(e.pid);
      if (p !== undefined && p.pins.size !== 0) {
        this.zap(p, e, pageDown(e.addr), pageUp(e.addr + e.len), madvLabel(b), false, b, null);
      }
      return;
    }
    switch (b) {
      case MADV.DONTFORK:
        this.proc(e.pid, e.comm).dontfork.set(pageDown(e.addr), pageUp(e.addr + e.len), true);
        return;
      case MADV.DOFORK:
        this.procs.get(e.pid)?.dontfork.remove(pageDown(e.addr), pageUp(e.addr + e.len));
        return;
      case MADV.WIPEONFORK:
        this.proc(e.pid, e.comm).wipeonfork.set(pageDown(e.addr), pageUp(e.addr + e.len), true);
        return;
      case MADV.KEEPONFORK:
        this.procs.get(e.pid)?.wipeonfork.remove(pageDown(e.addr), pageUp(e.addr + e.len));
        return;
      case MADV.COLLAPSE: {
        this.remember(e);
        const p = this.procs.get(e.pid);
        if (p !== undefined && p.pins.size !== 0) {
          this.touch(p, e, pmdDown(e.addr), pageUp(e.addr + e.len), 'MADV_COLLAPSE', true, null);
        }
        return;
      }
      default:
        return;
    }
  }

  private onMunmap(e: MunmapEvent & Seq): void {
    if (e.ret !== 0) return;
    this.remember(e);
    const start = pageDown(e.addr);
    const end = pageUp(e.addr + e.len);
    this.mmapBackings.unmap(e.pid, start, end);
    const p = this.procs.get(e.pid);
    if (p === undefined) return;
    this.dropRanges(p, start, end);
    if (p.pins.size !== 0) this.zap(p, e, start, end, 'munmap', true, -1, null);
  }

  private onMmapFixed(e: MmapFixedEvent & Seq): void {
    if (e.ret < 0) return;
    this.remember(e);
    const start = pageDown(e.ret);
    const end = pageUp(e.ret + e.len);
    // A shared-file or hugetlb MAP_FIXED mapping has its own mmap_backing line, which replaces the range.
    const captured = ((e.flags & 3) !== 2 && e.fd >= 0) || (e.flags & MAP_HUGETLB) !== 0;
    if (!captured) this.mmapBackings.unmap(e.pid, start, end);
    const p = this.procs.get(e.pid);
    if (p === undefined) return;
    this.dropRanges(p, start, end);
    if (p.pins.size !== 0) this.zap(p, e, start, end, 'mmap(MAP_FIXED)', true, -1, null);
  }

  /** shmdt removes the whole attached segment; its size comes from shm.bt, or is guessed (shmSpanEnd). */
  private onShmdt(e: ShmdtEvent & Seq): void {
    if (e.ret !== 0) return;
    const p = this.procs.get(e.pid);
    if (p === undefined) return;
    const start = pageDown(e.addr);
    const end = e.len > 0 ? pageUp(e.addr + e.len) : shmSpanEnd(p, start);
    this.mmapBackings.unmap(e.pid, start, end);
    this.dropRanges(p, start, end);
    if (p.pins.size !== 0) this.zap(p, e, start, end, 'shmdt', true, -1, null);
  }

  private onMremap(e: MremapEvent & Seq): void {
    if (e.ret < 0) return;
    this.remember(e);
    const p = this.procs.get(e.pid);
    if (p === undefined) return;
    this.applyMremap(p, e, null);
  }

  private applyMremap(p: ProcessState, e: MremapEvent & Seq, onlyPin: PinRecord | null): void {
    const from = pageDown(e.addr);
    const oldLen = pageUp(e.oldLen);
    const newLen = pageUp(e.newLen);
    const to = e.ret;
    if (newLen < oldLen) {
      // Shrink: the tail is unmapped (before any move).
      if (onlyPin === null) this.dropRanges(p, from + newLen, from + oldLen);
      if (p.pins.size !== 0) this.zap(p, e, from + newLen, from + oldLen, 'mremap shrink', true, -1, onlyPin);
    }
    if (to === from) return;
    const moveLen = Math.min(oldLen, newLen);
    const keepOld = (e.flags & MREMAP_DONTUNMAP) !== 0;
    if ((e.flags & MREMAP_FIXED) !== 0) {
      // MREMAP_FIXED first unmaps whatever was at the destination.
      if (onlyPin === null) this.dropRanges(p, to, to + newLen);
      if (p.pins.size !== 0) this.zap(p, e, to, to + newLen, 'mremap over', true, -1, onlyPin);
    }
    if (onlyPin === null && moveLen > 0) {
      // VMA flags travel with the VMA (with DONTUNMAP the old VMA stays, flags included).
      p.dontfork.move(from, from + moveLen, to, keepOld);
      p.wipeonfork.move(from, from + moveLen, to, keepOld);
      p.uffd.move(from, from + moveLen, to, keepOld);
    }
    if (p.pins.size !== 0 && moveLen > 0) this.move(p, e, from, moveLen, to, onlyPin);
  }

  private onFault(e: FaultEvent & Seq): void {
    const p = this.procs.get(e.pid);
    if (p === undefined || p.pins.size === 0) return;
    const va = pageDown(e.addr);
    const xs = p.overlapping(va, va + PAGE_SIZE, this.scratch);
    if (xs.length === 0) return;
    const write = (e.errorCode & PF_WRITE) !== 0;
    for (const x of xs) {
      const pin = x.pin;
      if (e.tsNs < pin.raceFromNs) continue;
      const page = x.page + (va - x.va) / PAGE_SIZE;
      if (e.tsNs < pin.snapshotNs) pin.setFlag(page, PG_LATE);
      if (write && (pin.flags[page] & PG_HARD_ZAP) !== 0 && pin.setFlag(page, PG_WRITE_AFTER_ZAP)) {
        pin.note(e.seq, e.tsNs, `write fault at ${hex(va)} after the zap: a new page is mapped there`, page, 1);
        this.changed.add(pin);
      }
      this.effects.dirty = true;
      this.effects.touched.push({ pin, firstPage: page, count: 1, va, reason: 'fault', cause: e });
    }
  }

  private onMigratePte(e: MigratePteEvent & Seq): void {
    if (e.op !== 'set') return;
    this.remember(e);
    const p = this.procs.get(e.pid);
    if (p === undefined || p.pins.size === 0) return;
    const va = pageDown(e.addr);
    this.touch(p, e, va, va + PAGE_SIZE, 'migration', true, null);
  }

  private onCollapseFile(e: CollapseFileEvent & Seq): void {
    const pid = this.mmToPid.get(e.mm) ?? e.pid;
    const p = this.procs.get(pid);
    if (p === undefined || p.pins.size === 0 || !(e.addr > 0)) return;
    const start = pmdDown(e.addr);
    this.touch(p, e, start, start + PMD_SIZE, 'collapse_file', collapseSucceeded(e.result, this.kernelRelease), null);
  }

  private onSplitPmd(e: SplitPmdEvent & Seq): void {
    const start = pmdDown(e.addr);
    this.touchMm(e.mm, e, start, start + PMD_SIZE, 'split_pmd', false);
  }

  private onMmuInvalidate(e: MmuInvalidateEvent & Seq): void {
    if (e.mm) this.secondaryMmuMms.add(e.mm);
    this.touchMm(e.mm, e, pageDown(e.start), pageUp(e.end), 'mmu_invalidate', false);
  }

  private onWpPage(e: WpPageEvent & Seq): void {
    if (e.outcome === 'reuse') return;
    this.pfnHit(e.oldPfn, e, true, 'wp_page');
    const p = this.procs.get(e.pid);
    if (p === undefined || p.pins.size === 0) return;
    const va = pageDown(e.addr);
    this.touch(p, e, va, va + PAGE_SIZE, 'wp_page ' + e.outcome, true, null);
  }

  // ---------------------------------------------------------------- registrations

  private onPinIovec(e: PinIovecEvent & Seq): void {
    let list = this.pendingIovecs.get(e.tid);
    // A new syscall on this thread (its previous one never reported a result): start over.
    // (iovecs of one call come in increasing index order: a repeated or lower index starts a new call)
    if (list !== undefined && (list[0].fd !== e.fd || list[0].opcode !== e.opcode || list[0].source !== e.source || e.index <= list[list.length - 1].index)) {
      list = undefined;
    }
    if (list === undefined) {
      list = [];
      this.pendingIovecs.set(e.tid, list);
    }
    if (list.length < MAX_PENDING_IOVECS) list.push(e);
  }

  private onPinResult(e: PinResultEvent & Seq): void {
    const pending = this.pendingIovecs.get(e.tid);
    this.pendingIovecs.delete(e.tid);
    const iovecs = pending ? pending.filter((x) => x.source === e.source && x.fd === e.fd) : [];
    const gups = this.pendingGup.get(e.tid);
    if (gups) this.pendingGup.delete(e.tid);
    const p = this.proc(e.pid, e.comm);
    if (e.mm && e.mm !== '0' && e.mm !== '0x0' && p.mm !== e.mm) {
      if (p.mm && this.mmToPid.get(p.mm) === p.pid) this.mmToPid.delete(p.mm);
      p.mm = e.mm;
      this.mmToPid.set(e.mm, p.pid);
    }
    if (e.source === 'io_uring') {
      switch (e.opcode) {
        case IORING_REGISTER.BUFFERS:
        case IORING_REGISTER.BUFFERS2:
          return this.register(p, e, iovecs, 'replace', gups);
        case IORING_REGISTER.BUFFERS_UPDATE:
          return this.register(p, e, iovecs, 'update', gups);
        case IORING_REGISTER.UNREGISTER_BUFFERS: {
          if (e.ret < 0) return;
          const h = p.handles.get(e.fd);
          if (h) this.releaseHandlePins(h, 'unregistered (IORING_UNREGISTER_BUFFERS)', e.tsNs, null);
          return;
        }
        default:
          return; // CLONE_BUFFERS and others: not modelled
      }
    }
    this.register(p, e, iovecs, 'append', gups);
  }

  private register(
    p: ProcessState,
    e: PinResultEvent & Seq,
    iovecs: PinIovecEvent[],
    mode: 'replace' | 'update' | 'append',
    gups: GupEvent[] | undefined,
  ): void {
    const ok = e.ret >= 0;
    const source = e.source;
    // vmsplice reads user memory (no FOLL_WRITE) and holds it only until the pipe is read: short-term.
    const writable = source !== 'vmsplice';
    const longterm = source !== 'vmsplice' && source !== 'gup';
    const maps = iovecs.length ? this.maps.read(p.pid) : null; // refused registrations too: the rules want the backing
    let handle = p.handles.get(e.fd);
    if (ok && handle === undefined) {
      handle = new HandleRecord(handleKind(source), e.fd, p.pid);
      p.handles.set(e.fd, handle);
    }
    if (ok && mode === 'replace' && handle) this.releaseHandlePins(handle, 'replaced by a new registration', e.tsNs, null);
    // vmsplice pins only the bytes it spliced; BUFFERS_UPDATE returns how many slots it updated.
    let budget = ok && source === 'vmsplice' ? e.ret : Infinity;
    const usable = ok && mode === 'update' ? e.ret : Infinity;
    const reg: Registration = {
      cause: e, source, pid: p.pid, comm: e.comm, fd: e.fd, opcode: e.opcode, ok, ret: e.ret, writable, longterm, buffers: [],
    };
    let n = 0;
    for (const iv of iovecs) {
      let len = iv.len;
      if (source === 'vmsplice' && ok) {
        len = Math.min(len, budget);
        budget -= len;
      }
      const rb = this.backing(p.pid, maps, pageDown(iv.addr), pageUp(iv.addr + Math.max(iv.len, 1)));
      const out: BufferOutcome = {
        addr: iv.addr, len: iv.len, slot: iv.index, backing: rb.backing, mapShared: rb.mapShared, sharedFile: rb.sharedFile,
        mapped: rb.mapped, pin: null,
      };
      if (ok && handle && n < usable) {
        if (mode === 'update') {
          const old = handle.pins.get(iv.index);
          if (old) this.release(old, 'slot replaced (IORING_REGISTER_BUFFERS_UPDATE)', e.tsNs);
        }
        if (iv.addr !== 0 && validUserRange(iv.addr, len)) {
          const key = handle.kind === 'ring' ? iv.index : handle.nextKey++;
          out.pin = this.createPin(p, e, {
            source, handle, key, handleText: handleText(handle, key, source), addr: iv.addr, len, writable, longterm,
            backing: rb.backing, mapShared: rb.mapShared, sharedFile: rb.sharedFile, raceFromNs: iv.tsNs, gups,
          });
        }
      }
      n++;
      reg.buffers.push(out);
    }
    this.effects.dirty = true;
    this.effects.registration = reg;
  }

  private onVfio(e: VfioDmaEvent & Seq): void {
    if (e.op === 'unmap') {
      if (e.ret !== 0 || (e.flags & VFIO_DMA_UNMAP_FLAG_VADDR) !== 0) return; // VADDR: pins kept, vaddr invalidated
      const h = this.procs.get(e.pid)?.handles.get(e.fd);
      if (!h) return;
      const all = (e.flags & VFIO_DMA_UNMAP_FLAG_ALL) !== 0;
      for (const pin of [...h.pins.values()]) {
        if (all || (pin.key < e.iova + e.size && e.iova < pin.key + pin.len)) {
          this.release(pin, `VFIO_IOMMU_UNMAP_DMA iova ${hex(e.iova)}`, e.tsNs);
        }
      }
      return;
    }
    const ok = e.ret === 0;
    const p = this.proc(e.pid, e.comm);
    // kprobe mode: the exact pfns GUP returned inside this ioctl (isVfioMapGup)
    const gups = this.pendingGup.get(e.tid);
    if (gups) this.pendingGup.delete(e.tid);
    const rb = this.backing(p.pid, this.maps.read(p.pid), pageDown(e.vaddr), pageUp(e.vaddr + Math.max(e.size, 1)));
    const writable = (e.flags & VFIO_DMA_MAP_FLAG_WRITE) !== 0;
    const out: BufferOutcome = {
      addr: e.vaddr, len: e.size, slot: 0, backing: rb.backing, mapShared: rb.mapShared, sharedFile: rb.sharedFile, mapped: rb.mapped, pin: null,
    };
    if (ok && validUserRange(e.vaddr, e.size)) {
      let h = p.handles.get(e.fd);
      if (!h) {
        h = new HandleRecord('container', e.fd, p.pid);
        p.handles.set(e.fd, h);
      }
      const old = h.pins.get(e.iova);
      if (old) this.release(old, 'iova mapped again', e.tsNs);
      out.pin = this.createPin(p, e, {
        source: 'vfio', handle: h, key: e.iova, handleText: vfioHandleText(e), addr: e.vaddr, len: e.size,
        writable, longterm: true, backing: rb.backing, mapShared: rb.mapShared, sharedFile: rb.sharedFile, raceFromNs: e.tsNs,
        gups,
      });
    }
    this.effects.dirty = true;
    this.effects.registration = {
      cause: e, source: 'vfio', pid: p.pid, comm: e.comm, fd: e.fd, opcode: 0, ok, ret: e.ret, writable, longterm: true, buffers: [out],
    };
  }

  private onGup(e: GupEvent & Seq): void {
    if (e.ret <= 0) return;
    if (this.pendingIovecs.has(e.tid) || isVfioMapGup(e)) {
      // Inside a registration syscall: its pins take these exact pfns.
      let list = this.pendingGup.get(e.tid);
      if (!list) this.pendingGup.set(e.tid, (list = []));
      if (list.length < MAX_HELD_VFIO_GUPS) list.push(e);
      return;
    }
    const pin = e.fn.startsWith('pin_user_pages') || (e.gupFlags & this.foll.PIN) !== 0;
    const longterm = (e.gupFlags & this.foll.LONGTERM) !== 0;
    // Short-term pins (O_DIRECT) come and go within one syscall; tracking them would only add churn.
    if (!pin || !longterm) return;
    const len = e.ret * PAGE_SIZE;
    if (!validUserRange(pageDown(e.addr), len)) return;
    const p = this.proc(e.pid, e.comm);
    const rb = this.backing(p.pid, this.maps.read(p.pid), pageDown(e.addr), pageDown(e.addr) + len);
    const writable = (e.gupFlags & this.foll.WRITE) !== 0;
    // ib_umem_get's pins are an RDMA memory region (sources/rdma.ts); any other standalone long-term GUP is 'gup'
    const source = isRdmaMrGup(e) ? 'rdma' : 'gup';
    const created = this.createPin(p, e, {
      source, handle: null, key: 0, handleText: source === 'rdma' ? rdmaHandleText(pageDown(e.addr), len) : `${e.fn} ${hex(e.addr)}`,
      addr: pageDown(e.addr), len, writable, longterm,
      backing: rb.backing, mapShared: rb.mapShared, sharedFile: rb.sharedFile, raceFromNs: e.tsNs, gups: [e],
    });
    this.effects.dirty = true;
    this.effects.registration = {
      cause: e, source, pid: p.pid, comm: e.comm, fd: -1, opcode: 0, ok: true, ret: e.ret, writable, longterm,
      buffers: [{ addr: e.addr, len, slot: 0, backing: rb.backing, mapShared: rb.mapShared, sharedFile: rb.sharedFile, mapped: rb.mapped, pin: created }],
    };
  }

  private onUnpin(e: UnpinEvent & Seq): void {
    for (const { pin } of this.lookupPfn(e.pfn)) {
      if (pin.source === 'gup' || pin.source === 'rdma') this.release(pin, `${e.fn}`, e.tsNs);
    }
  }

  // ---------------------------------------------------------------- processes

  private onFork(e: ForkEvent & Seq): void {
    if (e.cloneFlags > 0 && (e.cloneFlags & CLONE_VM) !== 0) return; // shares the mm: not a new address space
    const stale = this.procs.get(e.childPid);
    if (stale) this.exitProcess(stale, e.tsNs, 'pid reused (exit not seen)', null);
    const child = new ProcessState(e.childPid, e.childComm || e.comm);
    child.ppid = e.pid;
    this.procs.set(e.childPid, child);
    const parent = this.procs.get(e.pid);
    if (!parent) return;
    // VM_WIPEONFORK is copied to the child's VMA; VM_DONTCOPY VMAs are not copied at all (no range there).
    for (const r of parent.wipeonfork.all()) child.wipeonfork.set(r.start, r.end, true);
    // fds are inherited: the child holds the rings/containers/pipes too (pins stay with the parent's mm).
    for (const [fd, h] of parent.handles) {
      if (!h.holders.includes(child.pid)) h.holders.push(child.pid);
      child.handles.set(fd, h);
    }
    for (const pin of parent.pins) {
      if (e.tsNs < pin.raceFromNs) continue;
      if (e.tsNs < pin.snapshotNs) for (let i = 0; i < pin.nPages; i++) pin.setFlag(i, PG_LATE);
      pin.note(e.seq, e.tsNs, `fork: child ${e.childPid} (${e.childComm})`, 0, pin.nPages);
      this.effects.dirty = true;
      this.effects.touched.push({ pin, firstPage: 0, count: pin.nPages, va: pin.vaOf(0), reason: 'fork', cause: e });
    }
  }

  private onExit(e: ExitEvent & Seq): void {
    if (e.tid !== e.pid && e.tid > 0) return; // a thread, not the process
    this.cleanPending(e.pid);
    this.mmapBackings.forget(e.pid);
    const p = this.procs.get(e.pid);
    if (p === undefined) return;
    this.exitProcess(p, e.tsNs, 'process exit', e);
  }

  /** execve: the old mm is gone; its pins end as at exit (a surviving ring/pipe fd keeps them as orphans). */
  private onExec(e: ExecEvent & Seq): void {
    this.cleanPending(e.pid);
    this.mmapBackings.forget(e.pid);
    const p = this.procs.get(e.pid);
    if (p === undefined) return;
    this.exitProcess(p, e.tsNs, 'exec replaced the address space', null);
  }

  private exitProcess(p: ProcessState, tsNs: number, reason: string, cause: (ExitEvent & Seq) | null): void {
    this.effects.dirty = true;
    this.effects.exitedPid = p.pid;
    p.alive = false;
    for (const h of p.handles.values()) this.dropHolder(h, p.pid, tsNs, reason);
    p.handles.clear();
    for (const pin of [...p.pins]) {
      if (!pin.live) continue;
      if (pin.handle !== null && pin.handle.holders.length > 0) {
        pin.orphaned = true;
        pin.note(cause?.seq ?? -1, tsNs, `owner ${p.pid} exited; pid ${pin.handle.holders.join(', ')} still holds fd ${pin.handle.fd}`, 0, pin.nPages);
        this.effects.orphaned.push(pin);
        this.changed.add(pin);
      } else {
        this.release(pin, reason, tsNs);
      }
    }
    p.pins.clear();
    p.invalidateExtents();
    if (p.mm && this.mmToPid.get(p.mm) === p.pid) this.mmToPid.delete(p.mm);
    if (this.procs.get(p.pid) === p) this.procs.delete(p.pid);
    this.regionsDirty = true;
  }

  private onClose(e: CloseEvent & Seq): void {
    const p = this.procs.get(e.pid);
    if (p === undefined) return;
    const h = p.handles.get(e.fd);
    if (h !== undefined) {
      p.handles.delete(e.fd);
      this.dropHolder(h, p.pid, e.tsNs, `fd ${e.fd} closed`);
    }
    if (p.uffd.size !== 0) p.uffd.removeWhere((v) => v.fd === e.fd); // userfaultfd_release drops its registrations
  }

  private onUffd(e: UffdRegisterEvent & Seq): void {
    if (e.ret !== 0) return;
    const start = pageDown(e.addr);
    const end = pageUp(e.addr + e.len);
    if (e.op === 'register') this.proc(e.pid, e.comm).uffd.set(start, end, { fd: e.fd, mode: e.mode, seq: e.seq });
    else this.procs.get(e.pid)?.uffd.remove(start, end);
  }

  // ---------------------------------------------------------------- page-level mechanics

  /** Zap [start, end) of p's pinned pages (PTEs or the whole mapping removed). */
  private zap(
    p: ProcessState,
    e: SequencedEvent,
    start: number,
    end: number,
    how: string,
    unmapping: boolean,
    behavior: number,
    onlyPin: PinRecord | null,
  ): void {
    if (!(end > start)) return; // NaN or empty
    const xs = p.overlapping(start, end, this.scratch);
    for (const x of xs) {
      const pin = x.pin;
      if (onlyPin !== null && pin !== onlyPin) continue;
      const t = e.tsNs;
      if (t < pin.raceFromNs) continue;
      const race = t < pin.createdNs;
      const late = t < pin.snapshotNs;
      const s = Math.max(start, x.va);
      const en = Math.min(end, x.va + x.count * PAGE_SIZE);
      const first = x.page + (s - x.va) / PAGE_SIZE;
      const count = (en - s) / PAGE_SIZE;
      // Shared mappings keep the page in the page cache: DONTNEED + refault maps the same page again.
      const hard =
        unmapping || behavior === MADV.REMOVE ||
        ((behavior === MADV.DONTNEED || behavior === MADV.DONTNEED_LOCKED || behavior === MADV.GUARD_INSTALL) && !pin.mapShared);
      const advisory = behavior === MADV.FREE || behavior === MADV.PAGEOUT;
      for (let i = first; i < first + count; i++) {
        if (!advisory) pin.setFlag(i, PG_ZAPPED);
        if (hard) pin.setFlag(i, PG_HARD_ZAP);
        if (unmapping) pin.setFlag(i, PG_UNMAPPED);
        if (late) pin.setFlag(i, PG_LATE);
      }
      pin.note(e.seq, t, `${how} ${hex(s)} (${count} pinned page${count === 1 ? '' : 's'})${race ? ' during the registration' : ''}`, first, count);
      this.effects.dirty = true;
      this.effects.zaps.push({ pin, firstPage: first, count, va: s, cause: e, how, unmapped: unmapping, hard, race, advisory });
      this.changed.add(pin);
    }
  }

  /** mremap moved [from, from+len) to `to`: the pinned pages follow (no divergence). */
  private move(p: ProcessState, e: SequencedEvent, from: number, len: number, to: number, onlyPin: PinRecord | null): void {
    const end = from + len;
    const delta = to - from;
    if (!(end > from) || !validUserRange(to, len)) return;
    const xs = p.overlapping(from, end, this.scratch).slice();
    let movedAny = false;
    for (const x of xs) {
      const pin = x.pin;
      if (onlyPin !== null && pin !== onlyPin) continue;
      const t = e.tsNs;
      if (t < pin.raceFromNs) continue;
      const s = Math.max(from, x.va);
      const en = Math.min(end, x.va + x.count * PAGE_SIZE);
      const first = x.page + (s - x.va) / PAGE_SIZE;
      const count = (en - s) / PAGE_SIZE;
      if (t < pin.snapshotNs) for (let i = first; i < first + count; i++) pin.setFlag(i, PG_LATE);
      if (t < pin.createdNs) continue; // may have run before GUP: the pin is where GUP found it
      const parts: Extent[] = [];
      if (s > x.va) parts.push({ pin, page: x.page, count: first - x.page, va: x.va });
      parts.push({ pin, page: first, count, va: s + delta });
      const xEnd = x.va + x.count * PAGE_SIZE;
      if (en < xEnd) parts.push({ pin, page: first + count, count: x.page + x.count - first - count, va: en });
      const idx = pin.extents.indexOf(x);
      if (idx >= 0) pin.extents.splice(idx, 1, ...parts);
      pin.moved = true;
      movedAny = true;
      pin.note(e.seq, t, `mremap ${hex(s)} -> ${hex(s + delta)}: ${count} pinned page${count === 1 ? '' : 's'} follow`, first, count);
      this.effects.dirty = true;
      this.effects.moves.push({ pin, firstPage: first, count, va: s + delta, fromVa: s, cause: e });
      this.changed.add(pin);
    }
    if (movedAny) {
      p.invalidateExtents();
      this.regionsDirty = true;
    }
  }

  /** An event that may have remapped [start, end): re-read those pinned pages (mark late if `moving`). */
  private touch(
    p: ProcessState,
    e: SequencedEvent,
    start: number,
    end: number,
    reason: string,
    moving: boolean,
    onlyPin: PinRecord | null,
  ): void {
    if (!(end > start)) return;
    const xs = p.overlapping(start, end, this.scratch);
    for (const x of xs) {
      const pin = x.pin;
      if (onlyPin !== null && pin !== onlyPin) continue;
      if (e.tsNs < pin.raceFromNs) continue;
      const s = Math.max(start, x.va);
      const en = Math.min(end, x.va + x.count * PAGE_SIZE);
      const first = x.page + (s - x.va) / PAGE_SIZE;
      const count = (en - s) / PAGE_SIZE;
      if (moving && e.tsNs < pin.snapshotNs) for (let i = first; i < first + count; i++) pin.setFlag(i, PG_LATE);
      if (onlyPin !== null) continue; // replay: only the lateness matters
      this.effects.dirty = true;
      this.effects.touched.push({ pin, firstPage: first, count, va: s, reason, cause: e });
    }
  }

  private touchMm(mm: string, e: SequencedEvent, start: number, end: number, reason: string, moving: boolean): void {
    const pid = (mm && this.mmToPid.get(mm)) || e.pid;
    const p = this.procs.get(pid);
    if (p !== undefined && p.pins.size !== 0) this.touch(p, e, start, end, reason, moving, null);
  }

  private pfnHit(pfn: number, e: SequencedEvent, moving: boolean, reason: string): void {
    if (!this.pfns.has(pfn)) return;
    for (const { pin, page } of this.lookupPfn(pfn)) {
      this.effects.dirty = true;
      this.effects.pfnHits.push({ pin, page, pfn, cause: e });
      if (moving) {
        pin.note(e.seq, e.tsNs, `${reason} on pinned pfn ${hex(pfn)}`, page, 1);
        this.effects.touched.push({ pin, firstPage: page, count: 1, va: pin.vaOf(page), reason, cause: e });
      }
    }
  }

  // ---------------------------------------------------------------- pin lifecycle

  private createPin(p: ProcessState, cause: SequencedEvent, spec: PinSpec): PinRecord {
    const pin = new PinRecord({
      ...spec,
      id: this.nextPinId++,
      pid: p.pid,
      comm: cause.comm || p.comm,
      createdNs: cause.tsNs,
      raceFromNs: Math.min(spec.raceFromNs, cause.tsNs),
      createdSeq: cause.seq,
    });
    this.pinsById.set(pin.id, pin);
    p.pins.add(pin);
    p.invalidateExtents();
    spec.handle?.pins.set(spec.key, pin);
    this.snapshot(pin);
    if (spec.gups) this.applyGupPfns(pin, spec.gups);
    for (let i = 0; i < pin.nPages; i++) this.pfns.add(pin.pinnedPfn[i], pin.id);
    const what = spec.origin === 'discovered' ? 'found pinned' : 'pinned';
    pin.note(cause.seq, cause.tsNs, `${what}: ${spec.handleText}, ${pin.nPages} page${pin.nPages === 1 ? '' : 's'} at ${hex(pin.firstVa)}`, 0, pin.nPages);
    this.replayRing(p, pin);
    this.effects.dirty = true;
    this.effects.created.push(pin);
    this.changed.add(pin);
    this.regionsDirty = true;
    return pin;
  }

  /** Read the pinned pfns right after the registration succeeded (see the header on timing). */
  private snapshot(pin: PinRecord): void {
    if (this.stateScratch.length < pin.nPages) this.stateScratch = new Uint8Array(pin.nPages);
    const err = readPagesInto(this.pagemap, pin.pid, pin.firstVa, pin.nPages, pin.pinnedPfn, this.stateScratch, 0);
    if (err) {
      pin.pinnedPfn.fill(NaN);
      pin.snapshotNs = pin.createdNs; // nothing read: nothing can be late
    } else {
      pin.snapshotNs = Math.max(this.clock.nowNs(), pin.createdNs);
    }
    pin.currentPfn.set(pin.pinnedPfn);
  }

  private applyGupPfns(pin: PinRecord, gups: readonly GupEvent[]): void {
    let exact = 0;
    for (const g of gups) {
      const base = pageDown(g.addr);
      for (let j = 0; j < g.pfns.length; j++) {
        const page = pin.pageAt(base + j * PAGE_SIZE);
        if (page < 0) continue;
        if (!(pin.flags[page] & PG_GUP_EXACT)) exact++;
        pin.pinnedPfn[page] = g.pfns[j];
        pin.flags[page] = (pin.flags[page] & ~PG_LATE) | PG_GUP_EXACT; // exact: GUP told us the page it took
      }
    }
    // Every pinned pfn came from GUP itself: the pagemap snapshot's race window no longer matters, so no
    // later event can make a page "late" (kprobe mode confirms divergences a fast zap would otherwise blur).
    if (exact === pin.nPages) pin.snapshotNs = pin.createdNs;
  }

  /** Page-moving events that arrived before this pin_result but may have run after GUP. */
  private replayRing(p: ProcessState, pin: PinRecord): void {
    for (let k = 0; k < RING_SIZE; k++) {
      const e = this.ring[(this.ringHead + k) % RING_SIZE];
      if (e === undefined || e.pid !== pin.pid || e.tsNs < pin.raceFromNs || e.seq >= pin.createdSeq) continue;
      switch (e.kind) {
        case 'madvise': {
          const s = pageDown(e.addr);
          const en = pageUp(e.addr + e.len);
          if (e.behavior === MADV.COLLAPSE) this.touch(p, e, pmdDown(e.addr), en, 'MADV_COLLAPSE', true, pin);
          else this.zap(p, e, s, en, madvLabel(e.behavior), false, e.behavior, pin);
          break;
        }
        case 'munmap':
          this.zap(p, e, pageDown(e.addr), pageUp(e.addr + e.len), 'munmap', true, -1, pin);
          break;
        case 'mmap_fixed':
          this.zap(p, e, pageDown(e.ret), pageUp(e.ret + e.len), 'mmap(MAP_FIXED)', true, -1, pin);
          break;
        case 'mremap':
          this.applyMremap(p, e, pin);
          break;
        case 'migrate_pte':
          this.touch(p, e, pageDown(e.addr), pageDown(e.addr) + PAGE_SIZE, 'migration', true, pin);
          break;
        default:
          break;
      }
    }
  }

  private release(pin: PinRecord, reason: string, tsNs: number): void {
    if (!pin.live) return;
    pin.releasedNs = tsNs;
    pin.releaseReason = reason;
    this.pinsById.delete(pin.id);
    for (let i = 0; i < pin.nPages; i++) this.pfns.remove(pin.pinnedPfn[i], pin.id);
    const owner = this.procs.get(pin.pid);
    if (owner && owner.pins.delete(pin)) owner.invalidateExtents();
    if (pin.handle && pin.handle.pins.get(pin.key) === pin) pin.handle.pins.delete(pin.key);
    pin.note(-1, tsNs, `released: ${reason}`, 0, pin.nPages);
    this.effects.dirty = true;
    this.effects.released.push({ pin, reason });
    this.changed.add(pin);
    this.regionsDirty = true;
  }

  private releaseHandlePins(h: HandleRecord, reason: string, tsNs: number, onlyKind: PinSource | null): void {
    for (const pin of [...h.pins.values()]) if (onlyKind === null || pin.source === onlyKind) this.release(pin, reason, tsNs);
  }

  private dropHolder(h: HandleRecord, pid: number, tsNs: number, reason: string): void {
    const i = h.holders.indexOf(pid);
    if (i >= 0) h.holders.splice(i, 1);
    if (h.holders.length === 0) this.releaseHandlePins(h, reason, tsNs, null);
  }

  // ---------------------------------------------------------------- helpers

  /** The backing of a buffer: captured at mmap time when known (exact, never stale), else from maps. */
  private backing(pid: number, maps: ReturnType<MapsReader['read']>, start: number, end: number): RangeBacking {
    return this.mmapBackings.lookup(pid, start, end) ?? backingOf(maps, start, end);
  }

  private proc(pid: number, comm: string): ProcessState {
    let p = this.procs.get(pid);
    if (p === undefined) {
      p = new ProcessState(pid, comm);
      this.procs.set(pid, p);
    } else if (comm && p.comm !== comm) {
      p.comm = comm;
    }
    return p;
  }

  private dropRanges(p: ProcessState, start: number, end: number): void {
    if (p.dontfork.size !== 0) p.dontfork.remove(start, end);
    if (p.wipeonfork.size !== 0) p.wipeonfork.remove(start, end);
    if (p.uffd.size !== 0) p.uffd.remove(start, end);
  }

  private remember(e: SequencedEvent): void {
    this.ring[this.ringHead] = e;
    this.ringHead = (this.ringHead + 1) % RING_SIZE;
  }

  private cleanPending(pid: number): void {
    if (this.pendingIovecs.size !== 0) {
      for (const [tid, list] of this.pendingIovecs) if (list[0]?.pid === pid) this.pendingIovecs.delete(tid);
    }
    if (this.pendingGup.size !== 0) {
      for (const [tid, list] of this.pendingGup) if (list[0]?.pid === pid) this.pendingGup.delete(tid);
    }
  }
}

/**
 * A segment attached before the capture (or created by another process) has no known size: take the run of
 * shared-mapping pins from `start`, contiguous within 2 MiB gaps (fio slices one segment into its buffers).
 */
function shmSpanEnd(p: ProcessState, start: number): number {
  const xs = [...p.allExtents()].filter((x) => x.pin.mapShared && x.va >= start).sort((a, b) => a.va - b.va);
  let end = start;
  for (const x of xs) {
    if (x.va > end + PMD_SIZE) break;
    end = Math.max(end, x.va + x.count * PAGE_SIZE);
  }
  return end;
}

function handleKind(source: PinSource): HandleRecord['kind'] {
  switch (source) {
    case 'io_uring':
      return 'ring';
    case 'vfio':
    case 'iommufd':
      return 'container';
    case 'vmsplice':
      return 'pipe';
    default:
      return 'other';
  }
}

function handleText(h: HandleRecord, key: number, source: PinSource): string {
  switch (h.kind) {
    case 'ring':
      return `ring fd ${h.fd} slot ${key}`;
    case 'pipe':
      return `pipe fd ${h.fd}`;
    case 'container':
      return `container fd ${h.fd} iova ${hex(key)}`;
    default:
      return `${source} fd ${h.fd} #${key}`;
  }
}

/** The flag bits a page may carry, for tests and evidence text. */
export const PAGE_FLAGS = { PG_LATE, PG_ZAPPED, PG_HARD_ZAP, PG_WRITE_AFTER_ZAP, PG_UNMAPPED } as const;
