// fork-with-pins (warning): a process forks (own mm) while it holds pins on ranges not entirely marked
// MADV_DONTFORK / MADV_WIPEONFORK. One anomaly per such pin, at the pin's start.
import type { RuleInfo } from '../../schema/anomalies.ts';
import { CLONE_VM, PAGE_SIZE } from '../../schema/kernel.ts';
import type { ProcessState } from '../model/process.ts';
import type { RangeMap } from '../model/ranges.ts';
import { hex } from '../model/ranges.ts';
import { eventEvidence, pinCreatedEvidence, pinnedPfnOrNull } from './evidence.ts';
import { defineRule } from './rule.ts';

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

export const rule = defineRule({
  info,
  kinds: ['fork'],
  onEvent(e, ctx) {
    if (e.kind !== 'fork') return;
    if (e.cloneFlags > 0 && (e.cloneFlags & CLONE_VM) !== 0) return;
    const parent = ctx.model.process(e.pid);
    if (!parent || parent.pins.size === 0) return;
    for (const pin of parent.pins) {
      if (e.tsNs < pin.createdNs) continue; // the fork ran before this pin existed (reordered stream)
      const exposed = pin.extents.some((x) => !protectedFromFork(parent, x.va, x.count * PAGE_SIZE));
      if (!exposed) continue;
      const start = pin.vaOf(0);
      ctx.raise({
        rule: info.id,
        pid: pin.pid,
        comm: parent.comm,
        addr: start,
        len: pin.nPages * PAGE_SIZE,
        pfn: pinnedPfnOrNull(pin, 0),
        tsNs: e.tsNs,
        pinId: pin.id,
        summary: `fork() to child ${e.childPid} while ${pin.handleText} (${hex(start)}, ${pin.nPages} pages) is pinned and not MADV_DONTFORK`,
        evidence: [
          ...eventEvidence(e, `fork: child ${e.childPid} (${e.childComm}), clone flags ${e.cloneFlags < 0 ? 'unknown' : hex(e.cloneFlags)}`),
          pinCreatedEvidence(pin),
        ],
      });
    }
  },
});
