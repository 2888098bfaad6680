// Evidence builders shared by the rules: the events and pagemap reads that back an anomaly, with notes.
import type { Evidence, PagemapRead } from '../../schema/anomalies.ts';
import type { SequencedEvent } from '../../schema/events.ts';
import { PAGE_SIZE, PMD_SIZE } from '../../schema/kernel.ts';
import { PG_LATE, type PinRecord } from '../model/pin-record.ts';
import { hex } from '../model/ranges.ts';

/** The triggering event (nothing for synthetic events, which have no seq). */
export function eventEvidence(e: SequencedEvent | null | undefined, note: string): Evidence[] {
  return e && e.seq >= 0 ? [{ type: 'event', seq: e.seq, note }] : [];
}

/** The registration that created the pin. */
export function pinCreatedEvidence(pin: PinRecord): Evidence {
  if (pin.origin === 'discovered') {
    const pfn = pin.pinnedPfnAt(0);
    return {
      type: 'pagemap',
      read: { tsNs: pin.snapshotNs, pid: pin.pid, addr: pin.firstVa, present: !Number.isNaN(pfn), swapped: false, pfn: Number.isNaN(pfn) ? null : pfn },
      note: `found already pinned at start: ${pin.source} ${pin.handleText}, ${pin.nPages} pages at ${hex(pin.firstVa)} (${pin.backing}); ` +
        'pinned pfns read from pagemap at discovery, not from the pinning call',
    };
  }
  return { type: 'event', seq: pin.createdSeq, note: `registration: ${pin.source} ${pin.handleText}, ${pin.nPages} pages at ${hex(pin.firstVa)} (${pin.backing})` };
}

/** The pin's recorded history for one page (zaps, faults, moves, forks...), excluding the creation. */
export function pageHistoryEvidence(pin: PinRecord, page: number): Evidence[] {
  const out: Evidence[] = [];
  for (const h of pin.historyOf(page)) {
    if (h.seq < 0 || h.seq === pin.createdSeq) continue;
    out.push({ type: 'event', seq: h.seq, note: h.note });
  }
  return out;
}

/** The pagemap snapshot taken right after the pin, for one page (what the device holds). */
export function snapshotEvidence(pin: PinRecord, page: number): Evidence {
  const pfn = pin.pinnedPfnAt(page);
  const read: PagemapRead = {
    tsNs: pin.snapshotNs,
    pid: pin.pid,
    addr: pin.pinVaOf(page),
    present: !Number.isNaN(pfn),
    swapped: false,
    pfn: Number.isNaN(pfn) ? null : pfn,
  };
  const late = (pin.flagsAt(page) & PG_LATE) !== 0;
  const note = pin.origin === 'discovered'
    ? 'snapshot at discovery (the pin predates pinwatch): the pfn the device holds, unless the page had already moved before'
    : late ? 'pin-time snapshot, read LATE (the page may have moved before it)' : 'pin-time snapshot: the pfn the device holds';
  return { type: 'pagemap', read, note };
}

export function pinnedPfnOrNull(pin: PinRecord, page: number): number | null {
  const v = pin.pinnedPfnAt(page);
  return Number.isNaN(v) ? null : v;
}

export function pages(n: number): string {
  return `${n} page${n === 1 ? '' : 's'}`;
}

export function bytes(n: number): string {
  if (n >= PMD_SIZE && n % PMD_SIZE === 0) return `${n / PMD_SIZE * 2} MiB`;
  if (n % PAGE_SIZE === 0) return pages(n / PAGE_SIZE);
  return `${n} bytes`;
}
