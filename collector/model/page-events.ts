// What address-space events do to pinned pages: zaps (madvise, munmap, MAP_FIXED, shmdt, mremap shrink), moves
// (mremap: the pinned pages follow), and events that may have remapped a pinned page (faults, migration,
// khugepaged, COW, mmu notifiers) and so ask the verifier for a read. Each records what it did in
// `m.effects`; none reads /proc. The timing rules (late, race) are in state.ts.
import type {
  CollapseFileEvent, FaultEvent, MadviseEvent, MigratePteEvent, MmapFixedEvent, MmuInvalidateEvent, MremapEvent,
  MunmapEvent, SequencedEvent, ShmdtEvent, SplitPmdEvent, WpPageEvent,
} from '../../schema/events.ts';
import {
  MAP_HUGETLB, MADV, MADV_ZAPPING, MREMAP_DONTUNMAP, MREMAP_FIXED, PAGE_SIZE, PF_WRITE, PMD_SIZE, madvName, scanResultName,
} from '../../schema/kernel.ts';
import { PG_HARD_ZAP, PG_LATE, PG_UNMAPPED, PG_WRITE_AFTER_ZAP, PG_ZAPPED, validUserRange, type Extent, type PinRecord } from './pin-record.ts';
import type { ProcessState } from './process.ts';
import { hex, pageDown, pageUp, pmdDown } from './ranges.ts';
import type { ModelState } from './state.ts';

type Seq = { seq: number };

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

export function onMadvise(m: ModelState, e: MadviseEvent & Seq): void {
  if (e.ret !== 0) return;
  const b = e.behavior;
  if (isZapping(b)) {
    m.remember(e);
    const p = m.procs.get(e.pid);
    if (p !== undefined && p.pins.size !== 0) {
      zap(m, p, e, pageDown(e.addr), pageUp(e.addr + e.len), madvLabel(b), false, b, null);
    }
    return;
  }
  switch (b) {
    case MADV.DONTFORK:
      m.proc(e.pid, e.comm).dontfork.set(pageDown(e.addr), pageUp(e.addr + e.len), true);
      return;
    case MADV.DOFORK:
      m.procs.get(e.pid)?.dontfork.remove(pageDown(e.addr), pageUp(e.addr + e.len));
      return;
    case MADV.WIPEONFORK:
      m.proc(e.pid, e.comm).wipeonfork.set(pageDown(e.addr), pageUp(e.addr + e.len), true);
      return;
    case MADV.KEEPONFORK:
      m.procs.get(e.pid)?.wipeonfork.remove(pageDown(e.addr), pageUp(e.addr + e.len));
      return;
    case MADV.COLLAPSE: {
      m.remember(e);
      const p = m.procs.get(e.pid);
      if (p !== undefined && p.pins.size !== 0) {
        touch(m, p, e, pmdDown(e.addr), pageUp(e.addr + e.len), 'MADV_COLLAPSE', true, null);
      }
      return;
    }
    default:
      return;
  }
}

export function onMunmap(m: ModelState, e: MunmapEvent & Seq): void {
  if (e.ret !== 0) return;
  m.remember(e);
  const start = pageDown(e.addr);
  const end = pageUp(e.addr + e.len);
  m.mmapBackings.unmap(e.pid, start, end);
  const p = m.procs.get(e.pid);
  if (p === undefined) return;
  m.dropRanges(p, start, end);
  if (p.pins.size !== 0) zap(m, p, e, start, end, 'munmap', true, -1, null);
}

export function onMmapFixed(m: ModelState, e: MmapFixedEvent & Seq): void {
  if (e.ret < 0) return;
  m.remember(e);
  const start = pageDown(e.ret);
  const end = pageUp(e.ret + e.len);
  // A shared-file or hugetlb MAP_FIXED mapping has its own mmap_backing line, which replaces the range.
  const captured = ((e.flags & 3) !== 2 && e.fd >= 0) || (e.flags & MAP_HUGETLB) !== 0;
  if (!captured) m.mmapBackings.unmap(e.pid, start, end);
  const p = m.procs.get(e.pid);
  if (p === undefined) return;
  m.dropRanges(p, start, end);
  if (p.pins.size !== 0) zap(m, p, e, start, end, 'mmap(MAP_FIXED)', true, -1, null);
}

/** shmdt removes the whole attached segment; its size comes from shm.bt, or is guessed (shmSpanEnd). */
export function onShmdt(m: ModelState, e: ShmdtEvent & Seq): void {
  if (e.ret !== 0) return;
  const p = m.procs.get(e.pid);
  if (p === undefined) return;
  const start = pageDown(e.addr);
  const end = e.len > 0 ? pageUp(e.addr + e.len) : shmSpanEnd(p, start);
  m.mmapBackings.unmap(e.pid, start, end);
  m.dropRanges(p, start, end);
  if (p.pins.size !== 0) zap(m, p, e, start, end, 'shmdt', true, -1, null);
}

export function onMremap(m: ModelState, e: MremapEvent & Seq): void {
  if (e.ret < 0) return;
  m.remember(e);
  const p = m.procs.get(e.pid);
  if (p === undefined) return;
  applyMremap(m, p, e, null);
}

export function applyMremap(m: ModelState, p: ProcessState, e: MremapEvent & Seq, onlyPin: PinRecord | null): void {
  const from = pageDown(e.addr);
  const oldLen = pageUp(e.oldLen);
  const newLen = pageUp(e.newLen);
  const to = e.ret;
  if (newLen < oldLen) {
    // Shrink: the tail is unmapped (before any move).
    if (onlyPin === null) m.dropRanges(p, from + newLen, from + oldLen);
    if (p.pins.size !== 0) zap(m, p, e, from + newLen, from + oldLen, 'mremap shrink', true, -1, onlyPin);
  }
  if (to === from) return;
  const moveLen = Math.min(oldLen, newLen);
  const keepOld = (e.flags & MREMAP_DONTUNMAP) !== 0;
  if ((e.flags & MREMAP_FIXED) !== 0) {
    // MREMAP_FIXED first unmaps whatever was at the destination.
    if (onlyPin === null) m.dropRanges(p, to, to + newLen);
    if (p.pins.size !== 0) zap(m, p, e, to, to + newLen, 'mremap over', true, -1, onlyPin);
  }
  if (onlyPin === null && moveLen > 0) {
    // VMA flags travel with the VMA (with DONTUNMAP the old VMA stays, flags included).
    p.dontfork.move(from, from + moveLen, to, keepOld);
    p.wipeonfork.move(from, from + moveLen, to, keepOld);
    p.uffd.move(from, from + moveLen, to, keepOld);
  }
  if (p.pins.size !== 0 && moveLen > 0) move(m, p, e, from, moveLen, to, onlyPin);
}

export function onFault(m: ModelState, e: FaultEvent & Seq): void {
  const p = m.procs.get(e.pid);
  if (p === undefined || p.pins.size === 0) return;
  const va = pageDown(e.addr);
  const xs = p.overlapping(va, va + PAGE_SIZE, m.scratch);
  if (xs.length === 0) return;
  const write = (e.errorCode & PF_WRITE) !== 0;
  for (const x of xs) {
    const pin = x.pin;
    if (e.tsNs < pin.raceFromNs) continue;
    const page = x.page + (va - x.va) / PAGE_SIZE;
    if (e.tsNs < pin.snapshotNs) pin.setFlag(page, PG_LATE);
    if (write && (pin.flagsAt(page) & PG_HARD_ZAP) !== 0 && pin.setFlag(page, PG_WRITE_AFTER_ZAP)) {
      pin.note(e.seq, e.tsNs, `write fault at ${hex(va)} after the zap: a new page is mapped there`, page, 1);
      m.changed.add(pin);
    }
    m.effects.dirty = true;
    m.effects.touched.push({ pin, firstPage: page, count: 1, va, reason: 'fault', cause: e });
  }
}

export function onMigratePte(m: ModelState, e: MigratePteEvent & Seq): void {
  if (e.op !== 'set') return;
  m.remember(e);
  const p = m.procs.get(e.pid);
  if (p === undefined || p.pins.size === 0) return;
  const va = pageDown(e.addr);
  touch(m, p, e, va, va + PAGE_SIZE, 'migration', true, null);
}

export function onCollapseFile(m: ModelState, e: CollapseFileEvent & Seq): void {
  const pid = m.mmToPid.get(e.mm) ?? e.pid;
  const p = m.procs.get(pid);
  if (p === undefined || p.pins.size === 0 || !(e.addr > 0)) return;
  const start = pmdDown(e.addr);
  touch(m, p, e, start, start + PMD_SIZE, 'collapse_file', collapseSucceeded(e.result, m.kernelRelease), null);
}

export function onSplitPmd(m: ModelState, e: SplitPmdEvent & Seq): void {
  const start = pmdDown(e.addr);
  touchMm(m, e.mm, e, start, start + PMD_SIZE, 'split_pmd', false);
}

export function onMmuInvalidate(m: ModelState, e: MmuInvalidateEvent & Seq): void {
  if (e.mm) m.secondaryMmuMms.add(e.mm);
  touchMm(m, e.mm, e, pageDown(e.start), pageUp(e.end), 'mmu_invalidate', false);
}

export function onWpPage(m: ModelState, e: WpPageEvent & Seq): void {
  if (e.outcome === 'reuse') return;
  pfnHit(m, e.oldPfn, e, true, 'wp_page');
  const p = m.procs.get(e.pid);
  if (p === undefined || p.pins.size === 0) return;
  const va = pageDown(e.addr);
  touch(m, p, e, va, va + PAGE_SIZE, 'wp_page ' + e.outcome, true, null);
}


/** Zap [start, end) of p's pinned pages (PTEs or the whole mapping removed). */
export function zap(
  m: ModelState,
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
  const xs = p.overlapping(start, end, m.scratch);
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
    if (!advisory) pin.setFlagRange(first, count, PG_ZAPPED);
    if (hard) pin.setFlagRange(first, count, PG_HARD_ZAP);
    if (unmapping) pin.setFlagRange(first, count, PG_UNMAPPED);
    if (late) pin.setFlagRange(first, count, PG_LATE);
    pin.note(e.seq, t, `${how} ${hex(s)} (${count} pinned page${count === 1 ? '' : 's'})${race ? ' during the registration' : ''}`, first, count);
    // The next touch of that address maps a new page there. MADV_FREE/PAGEOUT only matter for references that
    // do not stop reclaim: FOLL_GET (vmsplice) pages can be reclaimed and refaulted elsewhere, FOLL_PIN ones not.
    if (hard || (advisory && pin.source === 'vmsplice')) m.armFaults(pin, how, first, count);
    m.effects.dirty = true;
    m.effects.zaps.push({ pin, firstPage: first, count, va: s, cause: e, how, unmapped: unmapping, hard, race, advisory });
    m.changed.add(pin);
  }
}

/** mremap moved [from, from+len) to `to`: the pinned pages follow (no divergence). */
export function move(m: ModelState, p: ProcessState, e: SequencedEvent, from: number, len: number, to: number, onlyPin: PinRecord | null): void {
  const end = from + len;
  const delta = to - from;
  if (!(end > from) || !validUserRange(to, len)) return;
  const xs = p.overlapping(from, end, m.scratch).slice();
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
    if (t < pin.snapshotNs) pin.setFlagRange(first, count, PG_LATE);
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
    m.effects.dirty = true;
    m.effects.moves.push({ pin, firstPage: first, count, va: s + delta, fromVa: s, cause: e });
    m.changed.add(pin);
  }
  if (movedAny) {
    p.invalidateExtents();
    m.regionsDirty = true;
  }
}

/** An event that may have remapped [start, end): re-read those pinned pages (mark late if `moving`). */
export function touch(
  m: ModelState,
  p: ProcessState,
  e: SequencedEvent,
  start: number,
  end: number,
  reason: string,
  moving: boolean,
  onlyPin: PinRecord | null,
): void {
  if (!(end > start)) return;
  const xs = p.overlapping(start, end, m.scratch);
  for (const x of xs) {
    const pin = x.pin;
    if (onlyPin !== null && pin !== onlyPin) continue;
    if (e.tsNs < pin.raceFromNs) continue;
    const s = Math.max(start, x.va);
    const en = Math.min(end, x.va + x.count * PAGE_SIZE);
    const first = x.page + (s - x.va) / PAGE_SIZE;
    const count = (en - s) / PAGE_SIZE;
    if (moving && e.tsNs < pin.snapshotNs) pin.setFlagRange(first, count, PG_LATE);
    if (onlyPin !== null) continue; // replay: only the lateness matters
    m.effects.dirty = true;
    m.effects.touched.push({ pin, firstPage: first, count, va: s, reason, cause: e });
  }
}

export function touchMm(m: ModelState, mm: string, e: SequencedEvent, start: number, end: number, reason: string, moving: boolean): void {
  const pid = (mm && m.mmToPid.get(mm)) || e.pid;
  const p = m.procs.get(pid);
  if (p !== undefined && p.pins.size !== 0) touch(m, p, e, start, end, reason, moving, null);
}

export function pfnHit(m: ModelState, pfn: number, e: SequencedEvent, moving: boolean, reason: string): void {
  if (!m.pfns.has(pfn)) return;
  for (const { pin, page } of m.lookupPfn(pfn)) {
    m.effects.dirty = true;
    m.effects.pfnHits.push({ pin, page, pfn, cause: e });
    if (moving) {
      pin.note(e.seq, e.tsNs, `${reason} on pinned pfn ${hex(pfn)}`, page, 1);
      m.effects.touched.push({ pin, firstPage: page, count: 1, va: pin.vaOf(page), reason, cause: e });
    }
  }
}

/** Page-moving events that arrived before this pin_result but may have run after GUP. */
/** Replay one remembered page-moving event against a new pin that it may have raced (ModelState.admit). */
export function replayEvent(m: ModelState, p: ProcessState, e: SequencedEvent, pin: PinRecord): void {
  switch (e.kind) {
    case 'madvise': {
      const s = pageDown(e.addr);
      const en = pageUp(e.addr + e.len);
      if (e.behavior === MADV.COLLAPSE) touch(m, p, e, pmdDown(e.addr), en, 'MADV_COLLAPSE', true, pin);
      else zap(m, p, e, s, en, madvLabel(e.behavior), false, e.behavior, pin);
      break;
    }
    case 'munmap':
      zap(m, p, e, pageDown(e.addr), pageUp(e.addr + e.len), 'munmap', true, -1, pin);
      break;
    case 'mmap_fixed':
      zap(m, p, e, pageDown(e.ret), pageUp(e.ret + e.len), 'mmap(MAP_FIXED)', true, -1, pin);
      break;
    case 'mremap':
      applyMremap(m, p, e, pin);
      break;
    case 'migrate_pte':
      touch(m, p, e, pageDown(e.addr), pageDown(e.addr) + PAGE_SIZE, 'migration', true, pin);
      break;
    default:
      break;
  }
}
