// Address arithmetic and small interval maps for the shadow model: MADV_DONTFORK / WIPEONFORK ranges and
// userfaultfd registrations per process. User addresses go up to 2^47 (2^56 with LA57), beyond 32 bits:
// never use JS bitwise operators on them (they truncate to 32 bits); use the helpers below.
import { PAGE_SIZE, PMD_SIZE } from '../../schema/kernel.ts';

export function pageDown(addr: number): number {
  return addr - (addr % PAGE_SIZE);
}
export function pageUp(addr: number): number {
  const r = addr % PAGE_SIZE;
  return r === 0 ? addr : addr + (PAGE_SIZE - r);
}
export function pmdDown(addr: number): number {
  return addr - (addr % PMD_SIZE);
}
/** The 2 MiB region index (addr >> 21) without 32-bit truncation. */
export function pmdIndex(addr: number): number {
  return Math.floor(addr / PMD_SIZE);
}
export function hex(n: number | null | undefined): string {
  return n === null || n === undefined || Number.isNaN(n) ? '?' : '0x' + n.toString(16);
}

interface Entry<V> {
  start: number;
  end: number;
  value: V;
}

/**
 * Disjoint half-open intervals [start, end) sorted by start, each with a value. Sizes are small (a handful of
 * madvise'd or registered ranges per process), so operations are linear and allocation is not a concern.
 */
export class RangeMap<V> {
  private entries: Entry<V>[] = [];

  get size(): number {
    return this.entries.length;
  }

  /** Replace whatever covered [start, end) with one entry of `value`. Adjacent equal values merge. */
  set(start: number, end: number, value: V): void {
    if (!(end > start)) return;
    this.remove(start, end);
    const i = this.firstEndingAfter(start); // nothing overlaps now: the first entry at or after `start`
    this.entries.splice(i, 0, { start, end, value });
    this.mergeAround(i);
  }

  /**
   * Remove [start, end) from every entry (splitting the ones that straddle it). The entries it touches are one
   * contiguous stretch (sorted, disjoint): found by binary search and replaced in place, since a process that
   * marks every allocation MADV_DONTFORK has hundreds and each of its munmaps comes here.
   */
  remove(start: number, end: number): void {
    if (!(end > start) || this.entries.length === 0) return;
    const es = this.entries;
    const i = this.firstEndingAfter(start);
    if (i === es.length || es[i].start >= end) return;
    let j = i + 1;
    while (j < es.length && es[j].start < end) j++;
    const first = es[i];
    const last = es[j - 1];
    const left = first.start < start ? { start: first.start, end: start, value: first.value } : null;
    const right = last.end > end ? { start: end, end: last.end, value: last.value } : null;
    if (left !== null && right !== null) es.splice(i, j - i, left, right);
    else if (left !== null) es.splice(i, j - i, left);
    else if (right !== null) es.splice(i, j - i, right);
    else es.splice(i, j - i);
  }

  /** Index of the first entry ending after addr (ends ascend too: the entries are disjoint and sorted). */
  private firstEndingAfter(addr: number): number {
    const es = this.entries;
    let lo = 0;
    let hi = es.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (es[mid].end <= addr) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Drop every entry whose value matches (e.g. all registrations of a closed userfaultfd). */
  removeWhere(pred: (v: V) => boolean): void {
    if (this.entries.length) this.entries = this.entries.filter((e) => !pred(e.value));
  }

  /** The entry containing addr, if any. */
  at(addr: number): { start: number; end: number; value: V } | undefined {
    for (const e of this.entries) {
      if (addr < e.start) return undefined;
      if (addr < e.end) return e;
    }
    return undefined;
  }

  /** True when [start, end) is entirely covered by entries (with no gap). */
  covers(start: number, end: number): boolean {
    let cursor = start;
    for (const e of this.entries) {
      if (e.end <= cursor) continue;
      if (e.start > cursor) return false;
      cursor = e.end;
      if (cursor >= end) return true;
    }
    return cursor >= end;
  }

  overlapping(start: number, end: number): { start: number; end: number; value: V }[] {
    const out: { start: number; end: number; value: V }[] = [];
    for (const e of this.entries) {
      if (e.start >= end) break;
      if (e.end > start) out.push({ start: Math.max(e.start, start), end: Math.min(e.end, end), value: e.value });
    }
    return out;
  }

  /** mremap moved [start, end) to `to`: entries there follow (VMA flags move with the VMA). */
  move(start: number, end: number, to: number, keepOld: boolean): void {
    const parts = this.overlapping(start, end);
    if (parts.length === 0) return;
    if (!keepOld) this.remove(start, end);
    for (const p of parts) this.set(p.start - start + to, p.end - start + to, p.value);
  }

  all(): readonly { start: number; end: number; value: V }[] {
    return this.entries;
  }

  /** [lowest start, highest end) of every entry; null when empty. */
  span(): [number, number] | null {
    const n = this.entries.length;
    return n === 0 ? null : [this.entries[0]!.start, this.entries[n - 1]!.end];
  }

  clone(): RangeMap<V> {
    const c = new RangeMap<V>();
    c.entries = this.entries.map((e) => ({ ...e }));
    return c;
  }

  clear(): void {
    this.entries = [];
  }

  private mergeAround(i: number): void {
    const es = this.entries;
    if (i + 1 < es.length && es[i].end === es[i + 1].start && es[i].value === es[i + 1].value) {
      es[i].end = es[i + 1].end;
      es.splice(i + 1, 1);
    }
    if (i > 0 && es[i - 1].end === es[i].start && es[i - 1].value === es[i].value) {
      es[i - 1].end = es[i].end;
      es.splice(i, 1);
    }
  }
}
