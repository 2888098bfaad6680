// secondary-mmu-wp (warning): KSM or page_mkclean write-protects a page that is pinned, or a page of an mm
// with a secondary MMU (KVM, vhost: an mm seen in mmu-notifier events). Tracepoint mode sees KSM merge
// attempts on pinned pfns (ksm:ksm_merge_one_page); kprobe mode adds page_mkclean_one and
// __mmu_notifier_invalidate_range_start (MMU_NOTIFY_PROTECTION_PAGE) on pinned ranges.
// Once per (pin, page) for pins; once per (pid, 2 MiB region) for secondary-MMU mms.
// A notifier write-protect is raised at its __mmu_notifier_invalidate_range_end (same thread, paired by the
// start's timestamp), so the evidence holds the whole window; when no end comes (not probed on this
// kernel, lost) it is raised from the start alone after END_WAIT_NS.
import type { Evidence, RuleInfo } from '../../schema/anomalies.ts';
import type { SequencedEvent } from '../../schema/events.ts';
import { PAGE_SIZE } from '../../schema/kernel.ts';
import type { PinRecord } from '../model/pin-record.ts';
import { hex, pageDown, pageUp, pmdIndex } from '../model/ranges.ts';
import { eventEvidence, pinCreatedEvidence, pinnedPfnOrNull, snapshotEvidence } from './evidence.ts';
import { defineRule, type RuleContext } from './rule.ts';

export const info: RuleInfo = {
  id: 'secondary-mmu-wp',
  severity: 'warning',
  title: 'Write-protection of a pinned or secondary-MMU page',
  whyItMatters:
    'Write-protecting a page (KSM merge, writeback\'s page_mkclean) only works if every user of the page stops writing ' +
    'it. A device holding a pin keeps writing through its own mapping, and a secondary MMU (KVM EPT, vhost) that ' +
    'misses the invalidation keeps a writable view: the write lands in a page the kernel thinks is clean or shared.',
  mechanism:
    'ksm_do_scan -> try_to_merge_one_page -> write_protect_page (backs off when folio_maybe_dma_pinned / the ' +
    'refcount shows extra users, but only after clearing the PTE), folio_mkclean -> page_mkclean_one. Both call ' +
    'mmu_notifier_invalidate_range_start(MMU_NOTIFY_PROTECTION_PAGE); before the 2019 rework (seed 001) ' +
    'write-protection did not call ->invalidate_range, so vhost/KVM mappings kept write access.',
  seeds: ['001'],
  modes: ['tracepoint', 'kprobe'],
};

/** enum mmu_notifier_event (include/linux/mmu_notifier.h). */
const MMU_NOTIFY_PROTECTION_VMA = 2;
const MMU_NOTIFY_PROTECTION_PAGE = 3;

/** How long a notifier write-protect waits for its range_end before it is raised without it. */
const END_WAIT_NS = 1_000_000_000;
const MAX_PARKED = 10_000;

interface Parked {
  e: SequencedEvent;
  pin: PinRecord;
  page: number;
}

interface State {
  reported: WeakMap<PinRecord, Set<number>>;
  regions: Set<string>;
  /** `${tid}:${start tsNs}` -> a PROTECTION start over a pinned page, waiting for its range_end. */
  parked: Map<string, Parked>;
}

const NOTIFIER_WP = 'mmu notifier write-protect (MMU_NOTIFY_PROTECTION) of';

function firePin(ctx: RuleContext, st: State, e: SequencedEvent, pin: PinRecord, page: number, what: string, more: Evidence[] = []): void {
  let seen = st.reported.get(pin);
  if (!seen) st.reported.set(pin, (seen = new Set()));
  if (seen.has(page)) return;
  seen.add(page);
  const va = pin.vaOf(page);
  ctx.raise({
    rule: info.id,
    pid: pin.pid,
    comm: pin.comm,
    addr: va,
    len: PAGE_SIZE,
    pfn: pinnedPfnOrNull(pin, page),
    tsNs: e.tsNs,
    pinId: pin.id,
    summary: `${what} pinned page ${hex(va)} (${pin.handleText})`,
    evidence: [...eventEvidence(e, what), ...more, pinCreatedEvidence(pin), snapshotEvidence(pin, page)],
  });
}

function fireMm(ctx: RuleContext, st: State, e: SequencedEvent, pid: number, addr: number, what: string): void {
  const key = `${pid}:${pmdIndex(addr)}`;
  if (st.regions.has(key)) return;
  st.regions.add(key);
  if (st.regions.size > 100_000) st.regions.clear();
  ctx.raise({
    rule: info.id,
    pid,
    addr,
    len: PAGE_SIZE,
    tsNs: e.tsNs,
    summary: `${what} page ${hex(addr)} of an address space with a secondary MMU (KVM/vhost)`,
    evidence: eventEvidence(e, what),
  });
}

export const rule = defineRule<State>({
  info,
  kinds: ['ksm_merge', 'mkclean', 'mmu_invalidate', 'mmu_invalidate_end'],
  init: () => ({ reported: new WeakMap(), regions: new Set(), parked: new Map() }),
  onEvent(e, ctx, st) {
    switch (e.kind) {
      case 'ksm_merge': {
        const what = e.err === 0 ? `KSM merged (write-protected) pfn ${hex(e.pfn)}:` : `KSM tried to write-protect pfn ${hex(e.pfn)} (backed off, err ${e.err}):`;
        let hit = false;
        for (const h of ctx.effects.pfnHits) {
          if (h.cause !== e) continue;
          hit = true;
          firePin(ctx, st, e, h.pin, h.page, what);
        }
        if (!hit && e.err === 0 && e.mm && ctx.model.secondaryMmuMms.has(e.mm)) {
          const pid = ctx.model.pidForMm(e.mm);
          if (pid !== undefined) fireMm(ctx, st, e, pid, 0, `KSM merged pfn ${hex(e.pfn)} in`);
        }
        return;
      }
      case 'mkclean': {
        let hit = false;
        for (const h of ctx.effects.pfnHits) {
          if (h.cause !== e) continue;
          hit = true;
          firePin(ctx, st, e, h.pin, h.page, `page_mkclean_one write-protected pfn ${hex(e.pfn)}:`);
        }
        if (!hit && e.mm && ctx.model.secondaryMmuMms.has(e.mm)) {
          const pid = ctx.model.pidForMm(e.mm);
          if (pid !== undefined) fireMm(ctx, st, e, pid, pageDown(e.addr), 'page_mkclean_one write-protected');
        }
        return;
      }
      case 'mmu_invalidate': {
        if (e.event !== MMU_NOTIFY_PROTECTION_PAGE && e.event !== MMU_NOTIFY_PROTECTION_VMA) return;
        const pid = ctx.model.pidForMm(e.mm);
        if (pid === undefined) return;
        const spans = ctx.model.pinnedSpans(pid, pageDown(e.start), pageUp(e.end));
        if (spans.length === 0) return;
        if (st.parked.size >= MAX_PARKED) flushParked(ctx, st, Infinity);
        st.parked.set(`${e.tid}:${e.tsNs}`, { e, pin: spans[0].pin, page: spans[0].firstPage });
        return;
      }
      case 'mmu_invalidate_end': {
        const key = `${e.tid}:${e.startTsNs}`;
        const p = st.parked.get(key);
        if (!p) return;
        st.parked.delete(key);
        const us = ((e.tsNs - p.e.tsNs) / 1000).toFixed(1);
        firePin(ctx, st, p.e, p.pin, p.page, NOTIFIER_WP,
          eventEvidence(e, `mmu notifier range_end ${us} µs later: from here the secondary MMU may map ${hex(e.start)}–${hex(e.end)} again`));
        return;
      }
      default:
        return;
    }
  },
  onTick(nowNs, ctx, st) {
    if (st.parked.size) flushParked(ctx, st, nowNs);
  },
});

/** Raise parked write-protects whose range_end did not come within END_WAIT_NS (all of them when nowNs is Infinity). */
function flushParked(ctx: RuleContext, st: State, nowNs: number): void {
  for (const [key, p] of st.parked) {
    if (Math.abs(nowNs - p.e.tsNs) <= END_WAIT_NS) continue;
    st.parked.delete(key);
    firePin(ctx, st, p.e, p.pin, p.page, NOTIFIER_WP);
  }
}
