// fork-with-pins (warning): a process forks (own mm) while it holds pins on ranges not entirely marked
// MADV_DONTFORK / MADV_WIPEONFORK. One anomaly per such pin, at the pin's start.
// In kprobe mode the fork's copy_page_range of the vma overlapping the pin is cited as evidence: the
// copies run in the forking thread just before its fork event, so they are kept per thread until it.
import type { RuleInfo } from '../../schema/anomalies.ts';
import { CLONE_VM, PAGE_SIZE } from '../../schema/kernel.ts';
import type { CopyPageRangeEvent, SequencedEvent } from '../../schema/events.ts';
import type { PinRecord } from '../model/pin-record.ts';
import type { ProcessState } from '../model/process.ts';
import type { RangeMap } from '../model/ranges.ts';
import { hex } from '../model/ranges.ts';
import { bytes, eventEvidence, pinCreatedEvidence, pinnedPfnOrNull } from './evidence.ts';
import { defineRule } from './rule.ts';
import { promiseOf } from './sources/index.ts';

export const info: RuleInfo = {
  id: 'fork-with-pins',
  severity: 'warning',
  title: 'fork() while holding pinned DMA buffers',
  whyItMatters:
    'After fork the pinned pages are shared copy-on-write between parent and child unless the range is MADV_DONTFORK. ' +
    'Before 5.9 the parent\'s next write could copy its own pinned page away from the device (the device writes ' +
    'into a page the parent no longer maps); since 5.9 fork copies pinned anon pages into the child at once, which ' +
    'is correct but costs memory and time, and other GUP users (FOLL_GET) are still exposed.',
  mechanism:
    'copy_page_range -> copy_pte_range -> copy_present_pte write-protects shared anon PTEs; for pages that ' +
    'page_needs_cow_for_dma()/folio_maybe_dma_pinned() reports (mm->has_pinned / MMF_HAS_PINNED, 5.9+) it ' +
    'copies early (copy_present_page). On older kernels do_wp_page in the parent reuses or copies by mapcount ' +
    '(seed 000). MADV_DONTFORK sets VM_DONTCOPY (the child does not get the VMA); MADV_WIPEONFORK gives it an empty one.',
  seeds: ['000'],
  modes: ['tracepoint', 'kprobe'],
};

/** [start, end) covered, without a gap, by the union of two range maps. */
function coveredByEither(a: RangeMap<true>, b: RangeMap<true>, start: number, end: number): boolean {
  let cursor = start;
  while (cursor < end) {
    const r = a.at(cursor) ?? b.at(cursor);
    if (!r) return false;
    cursor = r.end;
  }
  return true;
}

function protectedFromFork(p: ProcessState, va: number, bytes: number): boolean {
  return coveredByEither(p.dontfork, p.wipeonfork, va, va + bytes);
}

type Copy = CopyPageRangeEvent & { seq: number };

/**
 * The copies of one fork follow each other closely (one per inherited vma; copying a huge vma's page tables
 * may take a while); a longer gap since the thread's previous copy starts another fork (the previous one
 * failed after copying: no fork event).
 */
const COPY_GAP_NS = 10_000_000_000;
/** Bounds on what is kept for forks whose fork event never comes (failed fork, lost line). */
const MAX_COPIES_PER_THREAD = 256;
const MAX_THREADS = 4096;

interface State {
  /** tid -> its fork in progress: time of its last copy_page_range, and those that overlap a pin. */
  copies: Map<number, { lastNs: number; list: Copy[] }>;
  /** tid -> time of its last fork: a copy older than that came late (other CPU's buffer) and belonged to it. */
  lastForkNs: Map<number, number>;
}

function overlapsPin(pin: PinRecord, start: number, end: number): boolean {
  return pin.extents.some((x) => x.va < end && x.va + x.count * PAGE_SIZE > start);
}

function keepCopy(st: State, e: Copy, parent: ProcessState): void {
  if (e.tsNs <= (st.lastForkNs.get(e.tid) ?? -1)) return;
  let fork = st.copies.get(e.tid);
  if (!fork || e.tsNs - fork.lastNs > COPY_GAP_NS) {
    if (st.copies.size >= MAX_THREADS) st.copies.clear();
    st.copies.set(e.tid, (fork = { lastNs: e.tsNs, list: [] }));
  }
  fork.lastNs = e.tsNs;
  if (fork.list.length < MAX_COPIES_PER_THREAD && [...parent.pins].some((pin) => overlapsPin(pin, e.start, e.end))) fork.list.push(e);
}

function copyNote(c: Copy, childPid: number): string {
  return `copy_page_range: child ${childPid} (mm ${c.childMm}) got the parent's vma ${hex(c.start)}–${hex(c.end)} ` +
    `(${bytes(c.end - c.start)}, ${c.anon ? 'anonymous' : 'private file'}, vm_flags ${hex(c.vmFlags)}) holding the pinned range`;
}

export const rule = defineRule<State>({
  info,
  kinds: ['fork', 'copy_page_range'],
  init: () => ({ copies: new Map(), lastForkNs: new Map() }),
  onEvent(e: SequencedEvent, ctx, st) {
    if (e.kind === 'copy_page_range') {
      const parent = ctx.model.process(e.pid);
      if (parent && parent.pins.size > 0) keepCopy(st, e, parent);
      return;
    }
    if (e.kind !== 'fork') return;
    const copies = st.copies.get(e.tid)?.list ?? [];
    st.copies.delete(e.tid);
    if (st.lastForkNs.size >= MAX_THREADS) st.lastForkNs.clear();
    st.lastForkNs.set(e.tid, e.tsNs);
    if (e.cloneFlags > 0 && (e.cloneFlags & CLONE_VM) !== 0) return;
    const parent = ctx.model.process(e.pid);
    if (!parent || parent.pins.size === 0) return;
    for (const pin of parent.pins) {
      if (e.tsNs < pin.createdNs) continue; // the fork ran before this pin existed (reordered stream)
      const exposed = pin.extents.some((x) => !protectedFromFork(parent, x.va, x.count * PAGE_SIZE));
      if (!exposed) continue;
      const start = pin.vaOf(0);
      const verdict = promiseOf(pin.source).fork(ctx.config.kernelRelease);
      if (verdict.severity === null) continue;
      ctx.raise({
        rule: info.id,
        severity: verdict.severity,
        pid: pin.pid,
        comm: parent.comm,
        addr: start,
        len: pin.nPages * PAGE_SIZE,
        pfn: pinnedPfnOrNull(pin, 0),
        tsNs: e.tsNs,
        pinId: pin.id,
        summary: `fork() to child ${e.childPid} while ${pin.handleText} (${hex(start)}, ${pin.nPages} pages) is pinned and not MADV_DONTFORK: ${verdict.why}`,
        evidence: [
          ...eventEvidence(e, `fork: child ${e.childPid} (${e.childComm}), clone flags ${e.cloneFlags < 0 ? 'unknown' : hex(e.cloneFlags)}`),
          ...copies.filter((c) => c.tsNs <= e.tsNs && overlapsPin(pin, c.start, c.end)).flatMap((c) => eventEvidence(c, copyNote(c, e.childPid))),
          pinCreatedEvidence(pin),
        ],
      });
    }
  },
});
