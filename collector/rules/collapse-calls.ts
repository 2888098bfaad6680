// khugepaged tracepoints fired inside a MADV_COLLAPSE call do not always say which user range they concern;
// the call's own madvise event (emitted at syscall exit, after them) does. Rules about collapses park such
// events per thread here and take them back, with the call's range, when that thread's MADV_COLLAPSE returns.
import type { MadviseEvent, SequencedEvent } from '../../schema/events.ts';
import { MADV } from '../../schema/kernel.ts';
import { pageUp, pmdDown } from '../model/ranges.ts';

/** Parked events older than this belong to no call we will see (khugepaged never sends one). */
const STALE_NS = 2_000_000_000;

export interface ParkedCollapseEvent<E extends SequencedEvent> {
  e: E;
  /** The process the event concerns (from its mm when the tracepoint has one). */
  pid: number;
}

export class CollapseCalls<E extends SequencedEvent> {
  private readonly byTid = new Map<number, ParkedCollapseEvent<E>[]>();

  park(e: E, pid: number): void {
    this.expire(e.tsNs);
    const l = this.byTid.get(e.tid);
    if (l) l.push({ e, pid });
    else this.byTid.set(e.tid, [{ e, pid }]);
  }

  /** At a thread's MADV_COLLAPSE return: what it parked during the call and the call's 2 MiB-aligned range. */
  take(m: MadviseEvent): { parked: ParkedCollapseEvent<E>[]; start: number; end: number } | null {
    if (m.behavior !== MADV.COLLAPSE || this.byTid.size === 0) return null;
    const parked = this.byTid.get(m.tid);
    if (!parked) return null;
    this.byTid.delete(m.tid);
    return { parked, start: pmdDown(m.addr), end: pageUp(m.addr + m.len) };
  }

  expire(nowNs: number): void {
    if (this.byTid.size === 0) return;
    for (const [tid, l] of this.byTid) if (nowNs - l[0].e.tsNs > STALE_NS) this.byTid.delete(tid);
  }
}
