// One process as the shadow model knows it: identity, the pins it owns with an address index over their
// extents, the fds holding pins (shared with fork children), and the VMA flags that matter for pins
// (MADV_DONTFORK / MADV_WIPEONFORK ranges, userfaultfd registrations).
import { PAGE_SIZE } from '../../schema/kernel.ts';
import type { Extent, HandleRecord, PinRecord } from './pin-record.ts';
import { RangeMap } from './ranges.ts';

export interface UffdRegistration {
  fd: number;
  /** UFFDIO_REGISTER_MODE_* bits. */
  mode: number;
  seq: number;
}

export class ProcessState {
  ppid: number | null = null;
  /** mm_struct pointer (hex) from pin_result.mm, to attribute khugepaged/kprobe events. */
  mm: string | null = null;
  alive = true;
  /** Live pins this process owns (pages in its address space). */
  readonly pins = new Set<PinRecord>();
  readonly dontfork = new RangeMap<true>();
  readonly wipeonfork = new RangeMap<true>();
  readonly uffd = new RangeMap<UffdRegistration>();
  /** fd -> what it holds (ring, container, pipe), own or inherited. */
  readonly handles = new Map<number, HandleRecord>();

  private extents: Extent[] = [];
  private extentsDirty = false;
  private maxExtentBytes = 0;

  constructor(
    readonly pid: number,
    public comm: string,
  ) {}

  /** Pins were added/removed/moved: the address index is rebuilt on next use. */
  invalidateExtents(): void {
    this.extentsDirty = true;
  }

  /** Extents of live pins overlapping [start, end), ascending by address. Fills and returns `out`. */
  overlapping(start: number, end: number, out: Extent[]): Extent[] {
    out.length = 0;
    if (this.pins.size === 0) return out;
    if (this.extentsDirty) this.rebuild();
    const xs = this.extents;
    // First extent starting at or after `end`; everything overlapping lies before it.
    let lo = 0;
    let hi = xs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (xs[mid].va < end) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo - 1; i >= 0; i--) {
      const x = xs[i];
      if (x.va + this.maxExtentBytes <= start) break;
      if (x.va + x.count * PAGE_SIZE > start) out.push(x);
    }
    out.reverse();
    return out;
  }

  /** All extents of live pins, ascending by address. */
  allExtents(): readonly Extent[] {
    if (this.extentsDirty) this.rebuild();
    return this.extents;
  }

  private rebuild(): void {
    const xs: Extent[] = [];
    let max = 0;
    for (const p of this.pins) {
      for (const x of p.extents) {
        xs.push(x);
        const b = x.count * PAGE_SIZE;
        if (b > max) max = b;
      }
    }
    xs.sort((a, b) => a.va - b.va);
    this.extents = xs;
    this.maxExtentBytes = max;
    this.extentsDirty = false;
  }
}
