// unmap-of-pinned-page (high): reclaim or migration unmapped a page that has a live pin (an rmap walk
// through try_to_unmap_one in kprobe mode; with tracepoints: reclaim writing a pinned pfn out, which
// happens only after it was unmapped, or a migration entry set at a pinned address of the owner).
// From 5.19 the swap PTE keeps PageAnonExclusive (COW fixes part 3, seed 002), so the refault maps the same
// anonymous page back writable: an rmap unmap or a swap writeback of a referenced *anon* page is no hazard
// there and stays silent; a real divergence after it is still caught by pin-pte-divergence through pagemap.
import type { RuleInfo } from '../../schema/anomalies.ts';
import { PAGE_SIZE } from '../../schema/kernel.ts';
import type { PinRecord } from '../model/pin-record.ts';
import { hex } from '../model/ranges.ts';
import { eventEvidence, pinCreatedEvidence, pinnedPfnOrNull, snapshotEvidence } from './evidence.ts';
import { defineRule } from './rule.ts';

export const info: RuleInfo = {
  id: 'unmap-of-pinned-page',
  severity: 'high',
  title: 'Swap-out or migration unmapped a pinned page',
  whyItMatters:
    'Unmapping a page the device still holds breaks the link between the PTE and the pinned page: on refault the ' +
    'process may get the page back read-only and a write then copies it (seed 002: O_DIRECT + swap = lost DMA), or it ' +
    'gets another page altogether after migration.',
  mechanism:
    'shrink_folio_list -> try_to_unmap (try_to_unmap_one per mapping, rmap walk) -> pageout; migrate_pages -> ' +
    'try_to_migrate (set_migration_pte). FOLL_PIN pages are skipped by reclaim (folio_maybe_dma_pinned) on current ' +
    'kernels, FOLL_GET references (vmsplice, O_DIRECT before 5.19 fixes) are not; before 5.19 the refault lost ' +
    'PageAnonExclusive and do_wp_page copied the page.',
  seeds: ['002'],
  modes: ['kprobe', 'tracepoint'],
};

let cachedRelease = '';
let cachedKeeps = true;
/** Does this kernel keep the anon-exclusive bit in swap PTEs (5.19+)? Parsed once per release, not per event. */
export function keepsAnonExclusiveInSwap(kernelRelease: string): boolean {
  if (kernelRelease !== cachedRelease) {
    const m = /^(\d+)\.(\d+)/.exec(kernelRelease);
    cachedKeeps = !m || Number(m[1]) * 1000 + Number(m[2]) >= 5019;
    cachedRelease = kernelRelease;
  }
  return cachedKeeps;
}

export const rule = defineRule({
  info,
  kinds: ['unmap', 'writeback', 'migrate_pte'],
  onEvent(e, ctx) {
    const fire = (pin: PinRecord, page: number, how: string, pfn: number | null) => {
      const va = pin.vaOf(page);
      ctx.raise({
        rule: info.id,
        pid: pin.pid,
        comm: pin.comm,
        addr: va,
        len: PAGE_SIZE,
        pfn: pfn ?? pinnedPfnOrNull(pin, page),
        tsNs: e.tsNs,
        pinId: pin.id,
        summary: `${how} pinned page ${hex(va)} of ${pin.handleText}${pfn !== null ? ` (pfn ${hex(pfn)})` : ''}`,
        evidence: [...eventEvidence(e, `${how} (${e.comm} pid ${e.pid})`), pinCreatedEvidence(pin), snapshotEvidence(pin, page)],
      });
    };
    switch (e.kind) {
      case 'unmap':
        for (const h of ctx.effects.pfnHits) {
          if (h.cause !== e || (h.pin.backing === 'anon' && keepsAnonExclusiveInSwap(ctx.config.kernelRelease))) continue;
          fire(h.pin, h.page, 'try_to_unmap_one unmapped', h.pfn);
        }
        return;
      case 'writeback':
        // swap-out of an anon page is the same unmap as above: benign on 5.19+ (seen on 6.1: vmsplice-pageout
        // swapped out and faulted back as the same page, no divergence)
        for (const h of ctx.effects.pfnHits) {
          if (h.cause !== e || (h.pin.backing === 'anon' && keepsAnonExclusiveInSwap(ctx.config.kernelRelease))) continue;
          fire(h.pin, h.page, 'reclaim unmapped and wrote out', h.pfn);
        }
        return;
      case 'migrate_pte':
        if (e.op !== 'set') return;
        for (const t of ctx.effects.touched) {
          if (t.cause === e) fire(t.pin, t.firstPage, 'migration (set_migration_pte) unmapped', null);
        }
        return;
      default:
        return;
    }
  },
});
