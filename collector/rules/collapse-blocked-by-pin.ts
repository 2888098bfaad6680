// collapse-blocked-by-pin (info): khugepaged or MADV_COLLAPSE gave up on a range because a page had an extra
// reference (SCAN_PAGE_COUNT, not_suitable_page_count: 14 on 6.18, 15 on 6.1-6.17, 12 before 6.1) and the
// range holds a live pin. The event's pfn is matched against pinned pfns (addr = that pinned page); otherwise
// the range comes from the same thread's MADV_COLLAPSE (addr = the 2 MiB range start). Once per (pin, 2 MiB
// region).
import type { RuleInfo } from '../../schema/anomalies.ts';
import type { SequencedEvent } from '../../schema/events.ts';
import { PAGE_SIZE, scanResultName } from '../../schema/kernel.ts';
import type { PinRecord } from '../model/pin-record.ts';
import { hex, pmdDown, pmdIndex } from '../model/ranges.ts';
import { eventEvidence, pinCreatedEvidence, pinnedPfnOrNull } from './evidence.ts';
import { CollapseCalls } from './collapse-calls.ts';
import { defineRule, type RuleContext } from './rule.ts';

export const info: RuleInfo = {
  id: 'collapse-blocked-by-pin',
  severity: 'info',
  title: 'Huge-page collapse refused because of a pin',
  whyItMatters:
    'The kernel correctly refuses to replace pinned pages with a huge page (the device would keep the old ones), but ' +
    'the range then stays on small pages: more TLB misses, and khugepaged retries it forever. Worth knowing when ' +
    'MADV_COLLAPSE returns EAGAIN or THP coverage of a DMA buffer is low.',
  mechanism:
    'hpage_collapse_scan_pmd (khugepaged, madvise_collapse) and __collapse_huge_page_isolate check ' +
    'is_refcount_suitable(): a pinned page has references beyond its mappings, so the scan stops with ' +
    'SCAN_PAGE_COUNT (trace: mm_khugepaged_scan_pmd / mm_collapse_huge_page_isolate status 14, ' +
    'not_suitable_page_count) and MADV_COLLAPSE fails with EAGAIN. Pins are counted apart from other references ' +
    'since FOLL_PIN (seed 003).',
  seeds: ['003'],
  modes: ['tracepoint', 'kprobe'],
};

interface State {
  reported: WeakMap<PinRecord, Set<number>>;
  /** Refusals whose pfn is not a pinned one, waiting for their MADV_COLLAPSE's range. */
  calls: CollapseCalls<SequencedEvent>;
}

function fire(ctx: RuleContext, st: State, e: SequencedEvent, pin: PinRecord, page: number, addr: number, extra: SequencedEvent | null): void {
  const region = pmdIndex(addr);
  let seen = st.reported.get(pin);
  if (!seen) st.reported.set(pin, (seen = new Set()));
  if (seen.has(region)) return;
  seen.add(region);
  const status = (e as { status: number }).status;
  const statusName = scanResultName(status, ctx.config.kernelRelease);
  ctx.raise({
    rule: info.id,
    pid: pin.pid,
    comm: pin.comm,
    addr,
    len: PAGE_SIZE,
    pfn: page >= 0 ? pinnedPfnOrNull(pin, page) : null,
    tsNs: e.tsNs,
    pinId: pin.id,
    summary: `huge-page collapse of ${hex(pmdDown(addr))} refused (${statusName}): ${pin.handleText} pins ${page >= 0 ? `page ${hex(addr)}` : 'pages'} in the range`,
    evidence: [
      ...eventEvidence(e, `${e.kind} status ${status} (${statusName})${'pfn' in e ? ` at pfn ${hex(e.pfn as number)}` : ''}`),
      ...eventEvidence(extra, 'MADV_COLLAPSE on the range'),
      pinCreatedEvidence(pin),
    ],
  });
}

export const rule = defineRule<State>({
  info,
  kinds: ['scan_pmd', 'collapse_isolate', 'madvise'],
  init: () => ({ reported: new WeakMap(), calls: new CollapseCalls() }),
  onEvent(e, ctx, st) {
    if (e.kind === 'madvise') {
      const call = st.calls.take(e);
      if (!call) return;
      const { start, end } = call;
      for (const { e: ev, pid } of call.parked) {
        const spans = ctx.model.pinnedSpans(pid, start, end);
        if (spans.length === 0) continue;
        fire(ctx, st, ev, spans[0].pin, -1, pmdDown(spans[0].va), e);
      }
      return;
    }
    if (e.kind !== 'scan_pmd' && e.kind !== 'collapse_isolate') return;
    // khugepaged's result numbering differs between kernels (6.18 dropped SCAN_PAGE_RO): compare by name
    if (scanResultName(e.status, ctx.config.kernelRelease) !== 'not_suitable_page_count') return;
    let matched = false;
    for (const h of ctx.effects.pfnHits) {
      if (h.cause !== e) continue;
      matched = true;
      fire(ctx, st, e, h.pin, h.page, h.pin.vaOf(h.page), null);
    }
    if (matched) return;
    const pid = (e.kind === 'scan_pmd' && ctx.model.pidForMm(e.mm)) || e.pid;
    if (!ctx.model.hasPins(pid)) return;
    st.calls.park(e, pid);
  },
  onTick(nowNs, _ctx, st) {
    st.calls.expire(nowNs);
  },
});

