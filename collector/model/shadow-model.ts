// The shadow model: page ownership and DMA buffers as the event stream reveals them. Fed TraceEvents in
// stream order, it keeps processes, pins (one per io_uring slot / vfio mapping / vmsplice iovec / kprobe
// GUP) with their pinned pfns, the MADV_DONTFORK/WIPEONFORK and userfaultfd ranges, and records in
// `effects` what each event did to pinned pages. It raises nothing itself: rules/ read the effects. It reads
// nothing either: what /proc says about a new pin (its pfns, its backing) is read by the verifier right after
// the event and handed back through admit() (state.ts has the timing rules this relies on).
//
// Rooms: state.ts (what is known, pin lifecycle), page-events.ts (address-space events on pinned pages),
// sources/ (one plug-in per pin source), this file (the event path, processes, queries).
//
// Approximations (tracepoints cannot see them): vmsplice references are dropped when the pipe buffer is
// consumed, which we cannot observe, so a vmsplice pin lives until close of the pipe fd or exit. A fork
// child is assumed to keep inherited pin fds (io_uring fds are O_CLOEXEC; exec is not traced) until it
// closes them or exits.
import type {
  CloseEvent, ExecEvent, ExitEvent, ForkEvent, SequencedEvent, UffdRegisterEvent,
} from '../../schema/events.ts';
import { CLONE_VM, PAGE_SIZE, SCAN_SUCCEEDED } from '../../schema/kernel.ts';
import type { FaultRegion } from '../contracts.ts';
import type { PageSpan } from './effects.ts';
import {
  onCollapseFile, onFault, onMadvise, onMigratePte, onMmapFixed, onMmuInvalidate, onMremap, onMunmap, onShmdt, onSplitPmd,
  onWpPage, pfnHit, replayEvent, touchMm,
} from './page-events.ts';
import { PG_HARD_ZAP, PG_LATE, PG_UNMAPPED, PG_WRITE_AFTER_ZAP, PG_ZAPPED, type PinRecord } from './pin-record.ts';
import { ProcessState } from './process.ts';
import { pageDown, pageUp, pmdIndex } from './ranges.ts';
import { discoverRingBuffer, type DiscoveredRingBuffer } from './sources/io-uring.ts';
import { SOURCE_EVENTS, onGup, onPinResult, onUnpin } from './sources/index.ts';
import { onPinIovec } from './sources/registration.ts';
import { ModelState, type ShadowModelOptions } from './state.ts';

export { collapseSucceeded } from './page-events.ts';
export type { FollNumbering, ShadowModelOptions } from './state.ts';

type Seq = { seq: number };

/** Exits of processes the model did not know, kept for a fork line that arrives after its child's exit. */
const MAX_EARLY_EXITS = 256;

export class ShadowModel extends ModelState {
  /** pid → exit time of exits seen before the model knew the process (onFork). */
  private readonly earlyExits = new Map<number, number>();
  constructor(opts: ShadowModelOptions = {}) {
    super(opts, replayEvent);
  }

  // ---------------------------------------------------------------- queries

  get livePinCount(): number {
    return this.pinsById.size;
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

  /**
   * The 2 MiB regions (pid, addr >> 21) the fault watcher traces, sorted: those of live, owned pins a fault can
   * tell something about (PinRecord.watchFaults), or of every live pin with faultWatch 'all-pins'. Empty in the
   * steady state of a hypervisor (pins live, nothing zapped): no fault probe then, at no cost to any process.
   */
  faultRegions(): FaultRegion[] {
    const out: FaultRegion[] = [];
    const all = this.faultWatch === 'all-pins';
    for (const p of this.procs.values()) {
      if (p.pins.size === 0) continue;
      const seen = new Set<number>();
      for (const x of p.allExtents()) {
        const pin = x.pin;
        if (all || (pin.watchFaults !== null && pin.faultPages === null)) addRegions(seen, x.va, x.count);
        else if (pin.watchFaults !== null) {
          for (const [first, count] of pin.faultPages!) {
            const s = Math.max(first, x.page);
            const e = Math.min(first + count, x.page + x.count);
            if (e > s) addRegions(seen, x.va + (s - x.page) * PAGE_SIZE, e - s);
          }
        }
      }
      for (const r of [...seen].sort((a, b) => a - b)) out.push({ pid: p.pid, region: r });
    }
    out.sort((a, b) => a.pid - b.pid || a.region - b.region);
    return out;
  }

  // ---------------------------------------------------------------- the event path

  /** Apply one event; when it registered something, hand the verifier's pin-time reads to admit() next. */
  apply(e: SequencedEvent): void {
    this.effects.reset();
    switch (e.kind) {
      case 'madvise':
        return onMadvise(this, e);
      case 'munmap':
        return onMunmap(this, e);
      case 'fault':
        return onFault(this, e);
      case 'mremap':
        return onMremap(this, e);
      case 'mmap_fixed':
        return onMmapFixed(this, e);
      case 'shmdt':
        return onShmdt(this, e);
      case 'mmap_backing':
        return this.mmapBackings.onMmap(e);
      case 'mmap_forget':
        return this.mmapBackings.forget(e.pid);
      case 'pin_iovec':
        return onPinIovec(this, e);
      case 'pin_result':
        return onPinResult(this, e);
      case 'gup':
        return onGup(this, e);
      case 'unpin':
        return onUnpin(this, e);
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
        return onCollapseFile(this, e);
      case 'scan_pmd':
      case 'collapse_isolate':
        return pfnHit(this, e.pfn, e, e.status === SCAN_SUCCEEDED, e.kind);
      case 'ksm_merge':
        return pfnHit(this, e.pfn, e, e.err === 0, 'ksm_merge');
      case 'writeback':
        return pfnHit(this, e.pfn, e, true, 'writeback');
      case 'migrate_pte':
        return onMigratePte(this, e);
      case 'wp_page':
        return onWpPage(this, e);
      case 'unmap':
      case 'mkclean':
        pfnHit(this, e.pfn, e, true, e.kind);
        return touchMm(this, e.mm, e, pageDown(e.addr), pageDown(e.addr) + PAGE_SIZE, e.kind, e.kind === 'unmap');
      case 'anon_rmap_move':
        return pfnHit(this, e.pfn, e, true, 'anon_rmap_move');
      case 'split_pmd':
        return onSplitPmd(this, e);
      case 'mmu_invalidate':
        return onMmuInvalidate(this, e);
      default: {
        const own = SOURCE_EVENTS.get(e.kind); // a source's own kinds (vfio_dma)
        if (own !== undefined) own(this, e);
        return;
      }
    }
  }

  /**
   * An io_uring buffer found already registered (/proc/PID/fdinfo, at start or after a restart): see
   * sources/io-uring.ts. Effects are reset and filled (admit() the verifier's reads next).
   */
  discoverRingBuffer(d: DiscoveredRingBuffer): PinRecord | null {
    this.effects.reset();
    return discoverRingBuffer(this, d);
  }

  /** Pagemap showed that an advisory zap (MADV_FREE / MADV_PAGEOUT) did remove these pinned pages. */
  markZapped(pin: PinRecord, firstPage: number, count: number): void {
    if (pin.setFlagRange(firstPage, count, PG_ZAPPED) !== 0) this.changed.add(pin);
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

  // ---------------------------------------------------------------- processes

  private onFork(e: ForkEvent & Seq): void {
    if (e.cloneFlags > 0 && (e.cloneFlags & CLONE_VM) !== 0) return; // shares the mm: not a new address space
    // The child's exit line came first (it ran on another CPU: per-CPU buffers reorder): it holds nothing.
    const exitedNs = this.earlyExits.get(e.childPid);
    if (exitedNs !== undefined) {
      this.earlyExits.delete(e.childPid);
      if (exitedNs >= e.tsNs) return;
    }
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
      if (e.tsNs < pin.snapshotNs) pin.setFlagRange(0, pin.nPages, PG_LATE);
      pin.note(e.seq, e.tsNs, `fork: child ${e.childPid} (${e.childComm})`, 0, pin.nPages);
      // The pages are shared with the child and the parent's next write copies them: FOLL_GET references
      // (vmsplice) always, FOLL_PIN pins only before 5.9 (earlyCowOfPinnedPages).
      if (pin.source === 'vmsplice' || !this.earlyCow) this.armFaults(pin, `fork: child ${e.childPid} shares the pages`);
      this.effects.dirty = true;
      this.effects.touched.push({ pin, firstPage: 0, count: pin.nPages, va: pin.vaOf(0), reason: 'fork', cause: e });
    }
  }

  private onExit(e: ExitEvent & Seq): void {
    if (e.tid !== e.pid && e.tid > 0) return; // a thread, not the process
    this.cleanPending(e.pid);
    this.mmapBackings.forget(e.pid);
    const p = this.procs.get(e.pid);
    if (p === undefined) {
      this.earlyExits.set(e.pid, e.tsNs);
      if (this.earlyExits.size > MAX_EARLY_EXITS) this.earlyExits.delete(this.earlyExits.keys().next().value as number);
      return;
    }
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
}

/** The flag bits a page may carry, for tests and evidence text. */
export const PAGE_FLAGS = { PG_LATE, PG_ZAPPED, PG_HARD_ZAP, PG_WRITE_AFTER_ZAP, PG_UNMAPPED } as const;

/** The 2 MiB regions of `pages` pages from `va`. */
function addRegions(seen: Set<number>, va: number, pages: number): void {
  const last = pmdIndex(va + pages * PAGE_SIZE - 1);
  for (let r = pmdIndex(va); r <= last; r++) seen.add(r);
}
