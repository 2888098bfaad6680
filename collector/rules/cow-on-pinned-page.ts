// cow-on-pinned-page (critical, kprobe mode): do_wp_page copied (wp_page_copy) a page the faulting process
// holds a live pin on: from now on the process writes a private copy, the device the old page.
import type { RuleInfo } from '../../schema/anomalies.ts';
import { PAGE_SIZE } from '../../schema/kernel.ts';
import type { PinRecord } from '../model/pin-record.ts';
import { hex, pageDown } from '../model/ranges.ts';
import { eventEvidence, pinCreatedEvidence, snapshotEvidence } from './evidence.ts';
import { defineRule, type RuleContext } from './rule.ts';
import { pinsZeroPage, wholePin, zeroPageWhy, zeroPfnText } from './zero-page.ts';
import type { WpPageEvent } from '../../schema/events.ts';

export const info: RuleInfo = {
  id: 'cow-on-pinned-page',
  severity: 'critical',
  title: 'Copy-on-write replaced a pinned page',
  whyItMatters:
    'A write fault copied a page that a device has pinned: the process continues on the copy while the device keeps ' +
    'DMA-ing into the original. This is the classic GUP-after-fork / swap-refault corruption (vfio, RDMA, O_DIRECT).',
  mechanism:
    'handle_pte_fault -> do_wp_page decides between wp_page_reuse and wp_page_copy. Before 5.9 reuse depended on ' +
    'the mapcount (THP refcount rework, seed 000); 5.9 copied whenever the page count was not 1, which COWs pinned ' +
    'pages; 5.19 introduced PG_anon_exclusive and FAULT_FLAG_UNSHARE (seed 002) so a pinned exclusive page is reused. ' +
    'Seen with kprobes on do_wp_page and, where wp_page_copy is inlined (6.18), folio_add_new_anon_rmap on the same ' +
    'thread during do_wp_page. A pin of the shared zero page (a read-only long-term pin before 6.2, commit 84209e87c696) ' +
    'is copied away by the first write: one finding per pin, counted per page; a COW of some other zero page is ' +
    'nobody\'s (the zero pfn is never matched to a pin).',
  seeds: ['000', '002'],
  modes: ['kprobe'],
};

export const rule = defineRule({
  info,
  kinds: ['wp_page'],
  onEvent(e, ctx) {
    if (e.kind !== 'wp_page' || e.outcome === 'reuse') return;
    const va = pageDown(e.addr);
    // The copying process must be the pin owner mapping that page (a fork child copying is harmless).
    let hit: { pin: PinRecord; page: number } | null = null;
    for (const h of ctx.effects.pfnHits) {
      if (h.cause === e && h.pin.pid === e.pid) {
        hit = { pin: h.pin, page: h.page };
        break;
      }
    }
    if (!hit) {
      for (const s of ctx.model.pinnedSpans(e.pid, va, va + PAGE_SIZE)) {
        // every pin holding the zero page here (QEMU's ROM aliases pin one address twice)
        if (pinsZeroPage(ctx, s.pin, s.firstPage)) {
          if (e.oldPfn === ctx.model.zeroPfn) raiseZeroPage(ctx, e, s.pin, s.firstPage);
          continue;
        }
        const pinned = s.pin.pinnedPfnAt(s.firstPage);
        // Only if the page copied is the pinned one (or we do not know the pinned pfn).
        if (!hit && (Number.isNaN(pinned) || pinned === e.oldPfn)) hit = { pin: s.pin, page: s.firstPage };
      }
    }
    if (!hit) return;
    const { pin, page } = hit;
    ctx.raise({
      rule: info.id,
      pid: e.pid,
      comm: e.comm,
      addr: va,
      len: PAGE_SIZE,
      pfn: e.oldPfn,
      newPfn: e.newPfn || null,
      tsNs: e.tsNs,
      pinId: pin.id,
      summary: `do_wp_page ${e.outcome === 'copy' ? 'copied' : 'unshared'} pinned pfn ${hex(e.oldPfn)} at ${hex(va)} (${pin.handleText}) into pfn ${hex(e.newPfn)}`,
      evidence: [
        ...eventEvidence(e, `wp_page ${e.outcome}: ${hex(e.oldPfn)} -> ${hex(e.newPfn)} at ${hex(va)}`),
        pinCreatedEvidence(pin),
        snapshotEvidence(pin, page),
      ],
    });
  },
});

/** The write copied the process away from the zero page the pin holds: one finding per pin, counted per page. */
function raiseZeroPage(ctx: RuleContext, e: WpPageEvent & { seq: number }, pin: PinRecord, page: number): void {
  const why = zeroPageWhy(ctx.config.kernelRelease);
  ctx.raise({
    rule: info.id,
    pid: e.pid,
    comm: e.comm,
    ...wholePin(pin),
    pfn: e.oldPfn,
    newPfn: null,
    tsNs: e.tsNs,
    pinId: pin.id,
    summary: `${pin.handleText} holds the shared zero page (pfn ${zeroPfnText(ctx)}); do_wp_page copied the process away from it ` +
      `page by page (count: pages), the device keeps the zero page there: ${why}`,
    evidence: [
      ...eventEvidence(e, `wp_page ${e.outcome} of the zero page at ${hex(pageDown(e.addr))} -> ${hex(e.newPfn)}`),
      pinCreatedEvidence(pin),
      snapshotEvidence(pin, page),
    ],
  });
}
