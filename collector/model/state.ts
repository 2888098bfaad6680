// What the shadow model knows, and the primitives every room of it shares: processes, live pins and their
// pfn index, the mm → pid map, the recent page-moving events (replayed against a new pin), and the pin
// lifecycle (create, admit what the verifier read for it, release). The rooms: shadow-model.ts (the event
// path, processes), page-events.ts (what address-space events do to pinned pages), sources/ (one plug-in per
// pin source: how its pins start, their identity, what releases them).
//
// Timing. The kernel is ahead of us by the pipe latency: when the verifier reads a new pin's pfns from
// pagemap, the process may already have zapped or remapped the range. So every pin remembers
//   raceFromNs  – the registering syscall's entry (GUP ran somewhere after it),
//   createdNs   – the syscall's exit,
//   snapshotNs  – when the verifier's pagemap read finished (CLOCK_MONOTONIC, same clock as bpftrace nsecs).
// A page-moving event with raceFromNs <= ts < snapshotNs marks the pages it touches PG_LATE (their pinned pfn
// may be the moved page's: a divergence can only be inferred). Events before raceFromNs are ignored for the
// pin; events inside the syscall (ts < createdNs) are "race" hits (late, no anomaly); later ones are real.
// Events that arrived BEFORE the pin_result (per-CPU buffers reorder) are replayed from a small ring.
import { release as kernelRelease } from 'node:os';
import type { GupEvent, PinIovecEvent, PinSource, SequencedEvent } from '../../schema/events.ts';
import { FOLL_6_3, FOLL_PRE_6_3, PAGE_SIZE } from '../../schema/kernel.ts';
import { ModelEffects, type Admission, type PinTimeReads } from './effects.ts';
import { backingOf, type Mapping, type RangeBacking } from './maps.ts';
import { MmapBackings } from './mmap-backings.ts';
import { PfnIndex } from './pfn-index.ts';
import { HandleRecord, PinRecord, type Extent, type PinInit } from './pin-record.ts';
import { ProcessState } from './process.ts';
import { hex, pageDown } from './ranges.ts';

const RING_SIZE = 1024; // recent page-moving events, replayed against a new pin (reordered streams)

export type FollNumbering = '6.3' | 'pre-6.3';

export interface ShadowModelOptions {
  /** First pin id to hand out (a store reopened on an existing database continues its ids). */
  firstPinId?: number;
  /** FOLL_* numbering of kprobe gup events; default from kernelRelease (renumbered in 6.3). */
  follNumbering?: FollNumbering;
  /** The traced kernel's release (numbering of khugepaged results, FOLL_*); default the running kernel's. */
  kernelRelease?: string;
  /**
   * Which pins' regions the fault watcher traces (faultRegions()). 'armed' (default): only pins a page fault
   * can still tell something about on the traced kernel (see PinRecord.watchFaults); 'all-pins': every live
   * pin, as long as it lives (costs every process on the host the fault tracepoint while any pin lives).
   */
  faultWatch?: FaultWatch;
  /**
   * pfn of the shared zero page (null: unknown). Every untouched anonymous page of every process reads it, so it
   * is never indexed as a pin's page: events naming it (a COW of some other page that was zero) are nobody's.
   */
  zeroPfn?: number | null;
}

export type FaultWatch = 'armed' | 'all-pins';

/** Zapped page ranges kept per pin for the fault filter before it widens to the whole pin. */
const MAX_FAULT_RANGES = 64;

/**
 * fork() copies FOLL_PIN-pinned anon pages for the child at fork time since 5.9 (commit 70e806e4e645 "mm: Do
 * early cow for pinned pages during fork() for ptes", and the THP counterpart): the parent keeps the pinned
 * page, so no later write fault of the parent can COW it away. Before 5.9, and for FOLL_GET references
 * (vmsplice) on every kernel, the pages are shared at fork and the parent's next write copies them.
 */
export function earlyCowOfPinnedPages(release: string): boolean {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) return true;
  return Number(m[1]) * 1000 + Number(m[2]) >= 5009;
}

function defaultFollNumbering(release: string): FollNumbering {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) return '6.3';
  const v = Number(m[1]) * 1000 + Number(m[2]);
  return v >= 6003 ? '6.3' : 'pre-6.3';
}

/**
 * What a pin's creator decides; the model adds id, owner, comm and the creating event's time and seq. The
 * backing is a placeholder until the verifier's maps read is admitted.
 */
export type PinSpec = Omit<PinInit, 'id' | 'pid' | 'comm' | 'createdNs' | 'createdSeq' | 'backing' | 'mapShared' | 'sharedFile'> & {
  /** Exact pfns from kprobe GUP events (address, pfns), overriding the pagemap snapshot. */
  gups?: readonly GupEvent[];
  /** The range whose backing describes the pin (default its own pages). */
  backingRange?: { start: number; end: number };
  /** Backing from the maps read alone (a pin found at start: no mmap-time capture applies). */
  mapsOnly?: boolean;
};

/** Replays a remembered event against one new pin (page-events.ts). */
export type Replay = (m: ModelState, p: ProcessState, e: SequencedEvent, pin: PinRecord) => void;

export class ModelState {
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

  readonly foll: typeof FOLL_6_3 | typeof FOLL_PRE_6_3;
  readonly kernelRelease: string;
  readonly faultWatch: FaultWatch;
  /** The traced kernel copies FOLL_PIN pages at fork (earlyCowOfPinnedPages). */
  readonly earlyCow: boolean;
  readonly procs = new Map<number, ProcessState>();
  readonly pinsById = new Map<number, PinRecord>();
  readonly pfns: PfnIndex;
  /** The shared zero page's pfn (ShadowModelOptions.zeroPfn), null when unknown. */
  readonly zeroPfn: number | null;
  readonly mmToPid = new Map<string, number>();
  /** iovecs of a registration syscall still running, per thread (sources/registration.ts). */
  readonly pendingIovecs = new Map<number, PinIovecEvent[]>();
  /** kprobe gup events of a registration syscall still running, per thread: its pins take these pfns. */
  readonly pendingGup = new Map<number, GupEvent[]>();
  /** Per thread: [pid, exit time] of the last registration syscall that took its held gups (staleGup). */
  private readonly gupCutoff = new Map<number, [number, number]>();
  /** Reused by address lookups on the hot path. */
  readonly scratch: Extent[] = [];
  private readonly ring: (SequencedEvent | undefined)[] = new Array(RING_SIZE);
  private ringHead = 0;
  private nextPinId: number;

  constructor(opts: ShadowModelOptions, private readonly replay: Replay) {
    this.nextPinId = opts.firstPinId ?? 1;
    this.kernelRelease = opts.kernelRelease ?? kernelRelease();
    this.faultWatch = opts.faultWatch ?? 'armed';
    this.zeroPfn = opts.zeroPfn ?? null;
    this.pfns = new PfnIndex(this.zeroPfn);
    this.earlyCow = earlyCowOfPinnedPages(this.kernelRelease);
    this.foll = (opts.follNumbering ?? defaultFollNumbering(this.kernelRelease)) === '6.3' ? FOLL_6_3 : FOLL_PRE_6_3;
  }

  /** The next pin id the model will hand out. */
  get nextPin(): number {
    return this.nextPinId;
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

  proc(pid: number, comm: string): ProcessState {
    let p = this.procs.get(pid);
    if (p === undefined) {
      p = new ProcessState(pid, comm);
      this.procs.set(pid, p);
    } else if (comm && p.comm !== comm) {
      p.comm = comm;
    }
    return p;
  }

  /** The pin_result's mm pointer names this process's address space (khugepaged / kprobe events carry mms). */
  noteMm(p: ProcessState, mm: string): void {
    if (!mm || mm === '0' || mm === '0x0' || p.mm === mm) return;
    if (p.mm && this.mmToPid.get(p.mm) === p.pid) this.mmToPid.delete(p.mm);
    p.mm = mm;
    this.mmToPid.set(mm, p.pid);
  }

  /** The fd's handle, made on first use with the kind its source names. */
  handle(p: ProcessState, fd: number, kind: HandleRecord['kind']): HandleRecord {
    let h = p.handles.get(fd);
    if (h === undefined) {
      h = new HandleRecord(kind, fd, p.pid);
      p.handles.set(fd, h);
    }
    return h;
  }

  /**
   * Take the kprobe gup events held for tid's registration syscall that returned at exitNs. Per-CPU buffers
   * reorder a thread's lines when it migrates: gups of a later call that came first stay held for it, and a gup
   * older than exitNs that comes afterwards belonged to this call (staleGup drops it, never giving it to the next).
   */
  takeGups(tid: number, pid: number, exitNs: number): GupEvent[] | undefined {
    const cut = this.gupCutoff.get(tid);
    if (!cut || cut[0] !== pid || cut[1] < exitNs) this.gupCutoff.set(tid, [pid, exitNs]);
    const gups = this.pendingGup.get(tid);
    if (!gups) return undefined;
    const later = gups.filter((g) => g.tsNs > exitNs);
    if (later.length === 0) {
      this.pendingGup.delete(tid);
      return gups;
    }
    this.pendingGup.set(tid, later);
    return gups.filter((g) => g.tsNs <= exitNs);
  }

  /** A gup event made before the last registration its thread finished: that call's, arriving late. */
  staleGup(e: GupEvent): boolean {
    const cut = this.gupCutoff.get(e.tid);
    return cut !== undefined && cut[0] === e.pid && e.tsNs < cut[1];
  }

  /** A range whose backing the verifier reads (maps) for the rules, with no pin of its own (a refused buffer). */
  admitRange(pid: number, start: number, end: number, buffer: Admission['buffer']): void {
    this.effects.dirty = true;
    this.effects.admissions.push({ pid, start, end, buffer, pin: null, gups: null, mapsOnly: false });
  }

  /** A new pin: its pfns and backing come with admit(); `buffer` (the registration's outcome) gets the backing too. */
  createPin(p: ProcessState, cause: SequencedEvent, spec: PinSpec, buffer: Admission['buffer'] = null): PinRecord {
    const pin = new PinRecord({
      ...spec,
      backing: 'anon',
      mapShared: false,
      sharedFile: false,
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
    const what = spec.origin === 'discovered' ? 'found pinned' : 'pinned';
    pin.note(cause.seq, cause.tsNs, `${what}: ${spec.handleText}, ${pin.nPages} page${pin.nPages === 1 ? '' : 's'} at ${hex(pin.firstVa)}`, 0, pin.nPages);
    const r = spec.backingRange ?? { start: pin.firstVa, end: pin.firstVa + pin.nPages * PAGE_SIZE };
    if (buffer) buffer.pin = pin;
    this.effects.admissions.push({ pid: p.pid, start: r.start, end: r.end, buffer, pin, gups: spec.gups ?? null, mapsOnly: spec.mapsOnly ?? false });
    this.effects.dirty = true;
    this.effects.created.push(pin);
    this.changed.add(pin);
    this.regionsDirty = true;
    return pin;
  }

  /**
   * What the verifier read for the last event's admissions: backings for its buffers and pins, the pinned pfns
   * of its pins (then the exact GUP pfns over them, and the events that raced the registration replayed).
   */
  admit(reads: PinTimeReads): void {
    const fx = this.effects;
    for (const a of fx.admissions) {
      const rb = a.mapsOnly ? backingOf(reads.maps, a.start, a.end) : this.backing(a.pid, reads.maps, a.start, a.end);
      if (a.buffer) {
        a.buffer.backing = rb.backing;
        a.buffer.mapShared = rb.mapShared;
        a.buffer.sharedFile = rb.sharedFile;
        a.buffer.mapped = rb.mapped;
      }
      if (a.pin) {
        a.pin.backing = rb.backing;
        a.pin.mapShared = rb.mapShared;
        a.pin.sharedFile = rb.sharedFile;
      }
    }
    let k = 0;
    for (const a of fx.admissions.splice(0)) {
      if (!a.pin) continue;
      const pin = a.pin;
      const snap = reads.snapshots[k++];
      pin.setPinnedPfns(snap?.pfns ?? null); // current = pinned
      pin.snapshotNs = snap?.pfns ? Math.max(snap.atNs, pin.createdNs) : pin.createdNs; // nothing read: nothing can be late
      if (a.gups) {
        pin.keepCurrent(); // current stays what pagemap showed; GUP's exact pfns replace the pinned ones
        this.applyGupPfns(pin, a.gups);
      }
      if (!pin.live) continue;
      this.pfns.addPin(pin.id, pin.pinnedPfns);
      const p = this.procs.get(pin.pid);
      if (p) this.replayRing(p, pin);
    }
  }

  /** From now on, faults at this pin's pages can show a new page being mapped there: trace them. */
  armFaults(pin: PinRecord, why: string, firstPage = 0, count = -1): void {
    if (pin.watchFaults !== null && pin.faultPages === null) return; // already the whole pin
    if (count < 0) pin.faultPages = null;
    else if (pin.watchFaults === null) pin.faultPages = [[firstPage, count]];
    else if (pin.faultPages!.length < MAX_FAULT_RANGES) pin.faultPages!.push([firstPage, count]);
    else pin.faultPages = null; // many scattered zaps: the whole pin
    pin.watchFaults ??= why;
    this.regionsDirty = true;
  }

  release(pin: PinRecord, reason: string, tsNs: number): void {
    if (!pin.live) return;
    pin.releasedNs = tsNs;
    pin.releaseReason = reason;
    this.pinsById.delete(pin.id);
    this.pfns.removePin(pin.id, pin.pinnedPfns);
    const owner = this.procs.get(pin.pid);
    if (owner && owner.pins.delete(pin)) owner.invalidateExtents();
    if (pin.handle && pin.handle.pins.get(pin.key) === pin) pin.handle.pins.delete(pin.key);
    pin.note(-1, tsNs, `released: ${reason}`, 0, pin.nPages);
    this.effects.dirty = true;
    this.effects.released.push({ pin, reason });
    this.changed.add(pin);
    this.regionsDirty = true;
  }

  releaseHandlePins(h: HandleRecord, reason: string, tsNs: number, onlyKind: PinSource | null): void {
    for (const pin of [...h.pins.values()]) if (onlyKind === null || pin.source === onlyKind) this.release(pin, reason, tsNs);
  }

  dropHolder(h: HandleRecord, pid: number, tsNs: number, reason: string): void {
    const i = h.holders.indexOf(pid);
    if (i >= 0) h.holders.splice(i, 1);
    if (h.holders.length === 0) this.releaseHandlePins(h, reason, tsNs, null);
  }

  /** Forget the registration syscalls pid had in flight (it exited or exec'd). */
  cleanPending(pid: number): void {
    if (this.pendingIovecs.size !== 0) {
      for (const [tid, list] of this.pendingIovecs) if (list[0]?.pid === pid) this.pendingIovecs.delete(tid);
    }
    if (this.pendingGup.size !== 0) {
      for (const [tid, list] of this.pendingGup) if (list[0]?.pid === pid) this.pendingGup.delete(tid);
    }
    if (this.gupCutoff.size !== 0) {
      for (const [tid, cut] of this.gupCutoff) if (cut[0] === pid) this.gupCutoff.delete(tid);
    }
  }

  /** Remember a page-moving event: a pin whose registration it raced replays it. */
  remember(e: SequencedEvent): void {
    this.ring[this.ringHead] = e;
    this.ringHead = (this.ringHead + 1) % RING_SIZE;
  }

  dropRanges(p: ProcessState, start: number, end: number): void {
    if (p.dontfork.size !== 0) p.dontfork.remove(start, end);
    if (p.wipeonfork.size !== 0) p.wipeonfork.remove(start, end);
    if (p.uffd.size !== 0) p.uffd.remove(start, end);
  }

  /** The backing of a buffer: captured at mmap time when known (exact, never stale), else from maps. */
  private backing(pid: number, maps: Mapping[] | null, start: number, end: number): RangeBacking {
    return this.mmapBackings.lookup(pid, start, end) ?? backingOf(maps, start, end);
  }

  private applyGupPfns(pin: PinRecord, gups: readonly GupEvent[]): void {
    let exact = 0;
    for (const g of gups) {
      const base = pageDown(g.addr);
      for (let j = 0; j < g.pfns.length; j++) {
        const page = pin.pageAt(base + j * PAGE_SIZE);
        if (page < 0) continue;
        if (!pin.setExactPfn(page, g.pfns[j])) exact++; // exact: GUP told us the page it took
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
      this.replay(this, p, e, pin);
    }
  }
}
