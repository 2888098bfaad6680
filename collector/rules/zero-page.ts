// Pins holding the shared zero page. Before 6.2 (commit 84209e87c696 "mm/gup: reliable R/O long-term pinning in
// COW mappings") a read-only FOLL_LONGTERM pin of an anonymous page never written took the zero page itself (seen:
// QEMU's VFIO maps of its ROMs on 6.1 and 5.10; VFIO charges no locked_vm for it). The process's first write
// copies it away (do_wp_page) while the device keeps the zero page: a true divergence, the same one on every page
// of the pin, so it is one finding per pin (the engine counts the pages on it), not one row a page.
import { PAGE_SIZE } from '../../schema/kernel.ts';
import type { PinRecord } from '../model/pin-record.ts';
import { hex } from '../model/ranges.ts';
import type { RuleContext } from './rule.ts';

export const ZERO_PAGE_COMMIT = '84209e87c696 "mm/gup: reliable R/O long-term pinning in COW mappings"';

/** Why a pin holds the zero page and what that does, for summaries and evidence notes. */
export function zeroPageWhy(release: string): string {
  const m = /^(\d+)\.(\d+)/.exec(release);
  const before62 = m !== null && Number(m[1]) * 1000 + Number(m[2]) < 6002;
  return before62
    ? `before 6.2 (commit ${ZERO_PAGE_COMMIT}; this kernel is ${release}) a read-only long-term pin of a never-written ` +
      'anonymous page takes the shared zero page, and the first write copies the process away from it'
    : 'a pin of the shared zero page: the first write copies the process away from it ' +
      `(read-only long-term pins unshare it since 6.2, commit ${ZERO_PAGE_COMMIT})`;
}

/** The pin holds the shared zero page at this page. */
export function pinsZeroPage(ctx: RuleContext, pin: PinRecord, page: number): boolean {
  const z = ctx.model.zeroPfn;
  return z !== null && pin.pinnedPfnAt(page) === z;
}

/** Where a per-pin zero-page finding points: the whole pin (one finding, counted once per page). */
export function wholePin(pin: PinRecord): { addr: number; len: number } {
  return { addr: pin.firstVa, len: pin.nPages * PAGE_SIZE };
}

export const zeroPfnText = (ctx: RuleContext): string => hex(ctx.model.zeroPfn ?? 0);
