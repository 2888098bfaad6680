// pin-pte-divergence (critical): the page table at a pinned address maps a different page than the one
// the device holds. Raised from the verifier's pagemap checks, once per (pin, page); pages where the pin holds
// the shared zero page are one finding per pin, counted per page (zero-page.ts).
import type { RuleInfo } from '../../schema/anomalies.ts';
import { PAGE_SIZE } from '../../schema/kernel.ts';
import type { PinRecord } from '../model/pin-record.ts';
import { hex } from '../model/ranges.ts';
import { pageHistoryEvidence, pinCreatedEvidence, pinnedPfnOrNull, snapshotEvidence } from './evidence.ts';
import { defineRule } from './rule.ts';
import { pinsZeroPage, wholePin, zeroPageWhy } from './zero-page.ts';
import { promiseOf } from './sources/index.ts';

export const info: RuleInfo = {
  id: 'pin-pte-divergence',
  severity: 'critical',
  title: 'Pinned page and page table diverged',
  whyItMatters:
    'The device keeps reading and writing the page it pinned while the process now sees another page at the same ' +
    'address: DMA writes vanish from the process\'s view and device reads return stale data. Silent data corruption, ' +
    'no crash, no log line.',
  mechanism:
    'GUP (pin_user_pages* with FOLL_PIN|FOLL_LONGTERM for io_uring fixed buffers, vfio_pin_pages_remote, ib_umem_get) ' +
    'freezes the page, not the mapping. zap_page_range_single (MADV_DONTNEED), munmap/mmap(MAP_FIXED), a COW in ' +
    'do_wp_page -> wp_page_copy, swap-out via try_to_unmap and a refault in do_swap_page, migration or a THP collapse ' +
    'then install a different page in the PTE while the pin still holds the old one. pinwatch compares ' +
    '/proc/PID/pagemap with the pfn read right after the pin: "confirmed" when pagemap shows another pfn, "inferred" ' +
    'when the events (a zap, then a write fault there) imply it but pagemap cannot show it (process gone, page not ' +
    'present yet, pin-time snapshot raced with the change). A pin of the shared zero page (a read-only long-term pin ' +
    'before 6.2, commit 84209e87c696) diverges at every page the process writes: one finding per pin, counted per page.',
  seeds: ['000', '002'],
  modes: ['tracepoint', 'kprobe'],
};

interface State {
  reported: WeakMap<PinRecord, Set<number>>;
}

export const rule = defineRule<State>({
  info,
  init: () => ({ reported: new WeakMap() }),
  onPagemap(check, ctx, st) {
    if (check.divergence === null) return;
    const { pin, page } = check;
    // What the source promises decides whether another page there is a hazard (vmsplice: legal after the app replaced it).
    const verdict = promiseOf(pin.source).divergence(pin, pin.flagsAt(page));
    if (verdict.severity === null) return;
    let seen = st.reported.get(pin);
    if (!seen) st.reported.set(pin, (seen = new Set()));
    if (seen.has(page)) return;
    seen.add(page);
    const confirmed = check.divergence === 'confirmed';
    const pinned = pinnedPfnOrNull(pin, page);
    const history = pin.historyOf(page).filter((h) => h.seq >= 0 && h.seq !== pin.createdSeq);
    const trigger = history.length ? history[history.length - 1].tsNs : check.read.tsNs;
    const now = check.read.pfn;
    // Nothing traced explains the change and bpftrace was not capturing for a while since the pin: it happened
    // during that capture gap (found by the pagemap re-read after the restart, or by the timer meanwhile).
    const gap = ctx.gapOverlapping(Math.max(pin.createdNs, history.length ? history[history.length - 1].tsNs : 0), check.read.tsNs);
    const inGap = gap !== null && history.every((h) => h.tsNs < gap.startNs);
    const during = inGap ? ' (changed during a capture gap)' : '';
    const zero = pinsZeroPage(ctx, pin, page);
    const summary = zero
      ? `${pin.handleText}: the device holds the shared zero page (pfn ${hex(pinned)}) where the process has written since ` +
        `(count: pages; first seen at ${hex(check.addr)}): ${zeroPageWhy(ctx.config.kernelRelease)}${during}`
      : confirmed
        ? `${pin.handleText}: the device holds pfn ${hex(pinned)} but the page table at ${hex(check.addr)} maps pfn ${hex(now)}${during}`
        : `${pin.handleText}: page ${hex(check.addr)} no longer maps the pinned page ${hex(pinned)} (inferred: ${check.why})${during}`;
    ctx.raise({
      rule: info.id,
      severity: verdict.severity,
      pid: pin.pid,
      comm: pin.comm,
      ...(zero ? wholePin(pin) : { addr: check.addr, len: PAGE_SIZE }),
      pfn: pinned,
      newPfn: confirmed && !zero ? now : null,
      confirmed,
      tsNs: trigger,
      pinId: pin.id,
      summary,
      evidence: [
        pinCreatedEvidence(pin),
        snapshotEvidence(pin, page),
        ...pageHistoryEvidence(pin, page),
        { type: 'pagemap', read: check.read, note: `${check.reason} check: ${check.why}` },
        ...(inGap
          ? [{ type: 'pagemap' as const, read: check.read, note: `during a capture gap: ${gap!.process === 'main' ? 'bpftrace' : 'the fault watcher'} was not capturing from ${gap!.startNs} ns (${gap!.cause}); the event that moved the page was not seen, pagemap shows the result` }]
          : []),
      ],
    });
  },
});
