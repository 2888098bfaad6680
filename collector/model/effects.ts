// What the shadow model did with the event it just applied: the rules read this instead of recomputing
// range overlaps, and the pipeline schedules pagemap reads from it. One instance, reused: reset() costs
// nothing when the previous event touched no pin (the common case on the hot path).
import type { GupEvent, PinSource, SequencedEvent } from '../../schema/events.ts';
import type { Mapping } from './maps.ts';
import type { PageRuns } from './page-runs.ts';
import type { PinRecord } from './pin-record.ts';

/** A run of pages of one pin; `va` is where firstPage is mapped now (after the event). */
export interface PageSpan {
  pin: PinRecord;
  firstPage: number;
  count: number;
  va: number;
}

export interface ZapHit extends PageSpan {
  cause: SequencedEvent;
  /** 'MADV_DONTNEED', 'munmap', 'mmap(MAP_FIXED)', 'mremap shrink', ... */
  how: string;
  /** The mapping is gone (not just the PTEs). */
  unmapped: boolean;
  /** The next fault maps a different page (see PG_HARD_ZAP). */
  hard: boolean;
  /** The event may have run before the pin was taken (ts inside the registering syscall): pages marked late only. */
  race: boolean;
  /**
   * MADV_FREE / MADV_PAGEOUT: advice the kernel may not act on (lazy free, reclaim skips pinned or busy pages).
   * The pages are not marked zapped until pagemap shows them gone (ShadowModel.markZapped).
   */
  advisory: boolean;
}

export interface MoveHit extends PageSpan {
  fromVa: number;
  cause: SequencedEvent;
}

/** Pages an event may have moved or remapped: the verifier re-reads them. */
export interface TouchHit extends PageSpan {
  reason: string;
  cause: SequencedEvent | null;
}

/** An event naming a physical page that is a pinned pfn. */
export interface PfnHit {
  pin: PinRecord;
  page: number;
  pfn: number;
  cause: SequencedEvent;
}

export interface BufferOutcome {
  addr: number;
  len: number;
  /** ring slot / iovec index / 0 for vfio. */
  slot: number;
  backing: string;
  mapShared: boolean;
  sharedFile: boolean;
  /** Some mapping covered the buffer when maps was read. */
  mapped: boolean;
  /** The pin created for it (null when refused or nothing to pin). */
  pin: PinRecord | null;
}

/** A registration syscall's outcome (granted or refused): longterm-pin-file-backed reads it. */
export interface Registration {
  cause: SequencedEvent;
  source: PinSource;
  pid: number;
  comm: string;
  fd: number;
  opcode: number;
  ok: boolean;
  ret: number;
  writable: boolean;
  longterm: boolean;
  buffers: BufferOutcome[];
}

/**
 * A registered range the model cannot finish alone: its backing (from /proc/PID/maps) and, for a pin, its
 * pinned pfns (from pagemap) are read by the verifier right after the event and handed back (PinTimeReads).
 */
export interface Admission {
  pid: number;
  start: number;
  end: number;
  buffer: BufferOutcome | null;
  pin: PinRecord | null;
  /** Exact pfns from kprobe GUP events (address, pfns), overriding the pagemap snapshot. */
  gups: readonly GupEvent[] | null;
  /** Backing from the maps read alone (no mmap-time capture applies). */
  mapsOnly: boolean;
}

/** What the verifier read for the model's admissions: one maps read of the process, one pagemap read per pin. */
export interface PinTimeReads {
  /** The process's mappings (null: gone, unreadable, or nothing to resolve). */
  maps: Mapping[] | null;
  /** Per admission with a pin, in order: its pinned pfns (null: unreadable) and when the read finished. */
  snapshots: { pin: PinRecord; pfns: PageRuns | null; atNs: number }[];
}

export interface Release {
  pin: PinRecord;
  reason: string;
}

export class ModelEffects {
  /** Something was recorded since the last reset. */
  dirty = false;
  readonly zaps: ZapHit[] = [];
  readonly moves: MoveHit[] = [];
  readonly touched: TouchHit[] = [];
  readonly pfnHits: PfnHit[] = [];
  readonly created: PinRecord[] = [];
  readonly released: Release[] = [];
  /** Pins whose owner exited while another process still holds their fd. */
  readonly orphaned: PinRecord[] = [];
  registration: Registration | null = null;
  /** Ranges waiting for the verifier's pin-time reads (ShadowModel.admit). */
  readonly admissions: Admission[] = [];
  /** The exit being applied (pins about to be orphaned/released): for rules that look at the process. */
  exitedPid: number | null = null;

  reset(): void {
    if (!this.dirty) return;
    this.dirty = false;
    empty(this.zaps);
    empty(this.moves);
    empty(this.touched);
    empty(this.pfnHits);
    empty(this.created);
    empty(this.released);
    empty(this.orphaned);
    this.registration = null;
    empty(this.admissions);
    this.exitedPid = null;
  }
}

/** Setting an array's length is a runtime call even when it is 0 already; an exit or fault fills one list at most. */
function empty(a: unknown[]): void {
  if (a.length !== 0) a.length = 0;
}
