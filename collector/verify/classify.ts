// The verdict on one pinned page from one pagemap read (the table in verifier.ts's header), and the check the
// verifier hands the rules. Pure: settle.ts and the rules use the types without the verifier.
import type { PagemapRead } from '../../schema/anomalies.ts';
import { PG_HARD_ZAP, PG_LATE, PG_WRITE_AFTER_ZAP, type PinRecord } from '../model/pin-record.ts';
import { hex } from '../model/ranges.ts';

export type Divergence = 'confirmed' | 'inferred' | null;

/** One pinned page compared with a pagemap read. */
export interface PageCheck {
  pin: PinRecord;
  page: number;
  /** Where the page was read (its current address). */
  addr: number;
  read: PagemapRead;
  /** What triggered the read: 'fault', 'MADV_DONTNEED', 'timer', 'exit', ... */
  reason: string;
  divergence: Divergence;
  /** Why the verdict is what it is (evidence note). */
  why: string;
}

/** The verdict for one page (pure; see the header). */
export function classifyPage(
  flags: number,
  pinnedPfn: number,
  present: boolean,
  hidden: boolean,
  pfn: number,
  error: string | null | undefined,
): { divergence: Divergence; why: string } {
  const implied = (flags & PG_HARD_ZAP) !== 0 && (flags & PG_WRITE_AFTER_ZAP) !== 0;
  const late = (flags & PG_LATE) !== 0;
  if (error) {
    return implied
      ? { divergence: 'inferred', why: `zapped then written after the pin; pagemap unreadable (${error})` }
      : { divergence: null, why: error };
  }
  if (!present || hidden) {
    const what = hidden ? 'pfns hidden from this reader (not root)' : 'page not present';
    return implied ? { divergence: 'inferred', why: `zapped then written after the pin; ${what}` } : { divergence: null, why: what };
  }
  if (Number.isNaN(pinnedPfn)) {
    return implied
      ? { divergence: 'inferred', why: 'zapped then written after the pin; the pinned pfn is unknown' }
      : { divergence: null, why: 'pinned pfn unknown' };
  }
  if (pfn !== pinnedPfn) {
    return late
      ? { divergence: 'inferred', why: `pfn ${hex(pfn)} differs from ${hex(pinnedPfn)}, but the pin-time snapshot was late (the page may have moved before it)` }
      : { divergence: 'confirmed', why: `pagemap maps pfn ${hex(pfn)}; the pin holds pfn ${hex(pinnedPfn)}` };
  }
  if (late && implied) {
    return { divergence: 'inferred', why: 'same pfn as the late snapshot, but the page was zapped then written after the pin' };
  }
  return { divergence: null, why: 'same page' };
}
