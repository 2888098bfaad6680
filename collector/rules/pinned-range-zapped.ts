// pinned-range-zapped (high): a successful syscall removed the mapping of pinned pages at their address:
// MADV_DONTNEED / DONTNEED_LOCKED / REMOVE, munmap, mmap(MAP_FIXED) over them, mremap shrinking them away or
// mapping over them (MREMAP_FIXED destination). An mremap MOVE is not a zap: move_page_tables carries the
// PTEs, the pinned pages stay mapped (at the new address) and the model follows them. MADV_FREE and MADV_PAGEOUT are advice the kernel may ignore (lazy free; reclaim skips pinned
// pages): they count only when pagemap, read at once, no longer shows the pinned pfn there.
// One anomaly per syscall per pin, at the first affected pinned page (its address before the syscall), and once
// per (pin, page): an application zapping the same pinned page in a loop is one finding, not thousands.
// `confirmed` when that immediate pagemap read shows a pinned page gone or replaced.
import type { Evidence, PagemapRead, RuleInfo } from '../../schema/anomalies.ts';
import type { SequencedEvent } from '../../schema/events.ts';
import { PAGE_SIZE } from '../../schema/kernel.ts';
import { PG_LATE, type PinRecord } from '../model/pin-record.ts';
import { hex } from '../model/ranges.ts';
import { eventEvidence, pages, pinCreatedEvidence, pinnedPfnOrNull, snapshotEvidence } from './evidence.ts';
import { defineRule, type AnomalyDraft, type RuleContext } from './rule.ts';
import { promiseOf } from './sources/index.ts';
import { TeardownWatch, type Judgement } from './sources/teardown.ts';

export const info: RuleInfo = {
  id: 'pinned-range-zapped',
  severity: 'high',
  title: 'Mapping of a pinned range removed while pinned',
  whyItMatters:
    'The device still owns the pinned pages, but the process no longer maps them at the address it registered: ' +
    'its next touch there maps a fresh page (or faults on a hole, or hits whatever was mapped over it), so what the ' +
    'device writes is no longer what the process reads at that address. This is the step before a pin/PTE divergence.',
  mechanism:
    'madvise -> madvise_dontneed_free -> zap_page_range_single (MADV_DONTNEED), madvise_remove -> fallocate ' +
    'PUNCH_HOLE, madvise_free_single_vma / madvise_pageout -> reclaim, do_vmi_munmap, mmap_region over an existing ' +
    'range (MAP_FIXED), mremap shrinking the range or mapping over it (MREMAP_FIXED). None of them ' +
    'consult the pin count: the PTEs go, the pinned folio stays referenced by the device (seed 000: "a pin ' +
    'freezes the page, not the mapping").',
  seeds: ['000'],
  modes: ['tracepoint', 'kprobe'],
};

/** Pages read at once to confirm (a huge zapped range needs no million reads). */
const CONFIRM_PAGES = 64;

interface Part {
  /** Address of the first affected page before the syscall. */
  va: number;
  firstPage: number;
  count: number;
  how: string;
  unmapped: boolean;
  advisory: boolean;
}

/** Is this page's pinned pfn no longer mapped there (not present, or another pfn)? null: cannot tell. */
function goneOrReplaced(pin: PinRecord, page: number, r: PagemapRead): boolean | null {
  if (r.error || (pin.flagsAt(page) & PG_LATE) !== 0) return null;
  if (!r.present) return true;
  const pinned = pin.pinnedPfnAt(page);
  if (r.pfn === null || Number.isNaN(pinned)) return null;
  return r.pfn !== pinned;
}

/** Pages already reported, per pin. */
type Reported = WeakMap<PinRecord, Set<number>>;

interface State {
  reported: Reported;
  /** Zaps waiting for teardown evidence (sources/teardown.ts). */
  watch: TeardownWatch<AnomalyDraft>;
}

function report(ctx: RuleContext, e: SequencedEvent, pin: PinRecord, parts: Part[], st: State): void {
  const reported = st.reported;
  let first = parts[0];
  let total = 0;
  for (const p of parts) {
    total += p.count;
    if (p.va < first.va) first = p;
  }
  let seen = reported.get(pin);
  if (!seen) reported.set(pin, (seen = new Set()));
  if (seen.has(first.firstPage)) return;
  const evidence: Evidence[] = [];
  let confirmed = false;
  let anyGone = false;
  const reads: PagemapRead[] = [];
  for (const p of parts) {
    const rs = ctx.readNow(pin, p.firstPage, Math.min(p.count, CONFIRM_PAGES), p.how);
    let goneHere = 0;
    rs.forEach((r, i) => {
      if (goneOrReplaced(pin, p.firstPage + i, r) === true) goneHere++;
    });
    if (goneHere) {
      confirmed = true;
      anyGone = true;
      if (p.advisory) ctx.model.markZapped(pin, p.firstPage, p.count);
    }
    reads.push(...rs);
  }
  // Advice the kernel did not act on: the pinned pages are still mapped where they were.
  if (parts.every((p) => p.advisory) && !anyGone) return;
  evidence.push(
    ...eventEvidence(e, `${first.how} ${hex(first.va)}: ${pages(total)} of the pinned range${first.unmapped ? ' (mapping removed)' : ''}`),
    pinCreatedEvidence(pin),
    snapshotEvidence(pin, first.firstPage),
    ...reads.slice(0, 8).map((r) => ({
      type: 'pagemap' as const,
      read: r,
      note: r.error ? `pagemap unreadable: ${r.error}` : r.present ? `right after: pfn ${hex(r.pfn)}` : 'right after: not present',
    })),
  );
  seen.add(first.firstPage);
  const verdict = promiseOf(pin.source).zap(first);
  const summary = `${first.how} removed ${pages(total)} of ${pin.handleText} from ${hex(first.va)} while pinned`;
  const draft: AnomalyDraft = {
    rule: info.id,
    severity: verdict.severity ?? 'high',
    pid: pin.pid,
    comm: pin.comm,
    addr: first.va,
    len: total * PAGE_SIZE,
    pfn: pinnedPfnOrNull(pin, first.firstPage),
    confirmed,
    tsNs: e.tsNs,
    pinId: pin.id,
    summary,
    evidence,
  };
  if (verdict.teardown && ctx.config.submissionsTraced && st.watch.canJudge(pin)) st.watch.hold(pin, e.tsNs, draft);
  else ctx.raise(draft);
}

/** Raise a held zap as teardown (info, with its reason) or as the hazard it is. */
function decide(ctx: RuleContext, d: AnomalyDraft, j: Judgement): void {
  d.evidence.push(...eventEvidence(j.cause, j.why));
  if (j.teardown) {
    d.severity = 'info';
    d.summary = `${d.summary} — ${j.why}`;
  } else {
    d.summary = `${d.summary} (${j.why})`;
  }
  ctx.raise(d);
}

export const rule = defineRule<State>({
  info,
  effects: true,
  kinds: ['exit', 'uring_enter', 'uring_sqpoll'],
  init: () => ({ reported: new WeakMap(), watch: new TeardownWatch() }),
  onTick(nowNs, ctx, st) {
    st.watch.onTick(nowNs, ctx.streamNs(), (d, j) => decide(ctx, d, j));
  },
  onEvent(e, ctx, st) {
    const fx = ctx.effects;
    st.watch.onEvent(e, fx, decide, ctx);
    if (!fx.dirty || fx.zaps.length === 0) return;
    // Group this syscall's hits per pin (the model reports one hit per extent). A zap replayed at
    // registration time (reordered stream) has its own cause: group by (cause, pin).
    const groups = new Map<SequencedEvent, Map<PinRecord, Part[]>>();
    const add = (cause: SequencedEvent, pin: PinRecord, part: Part) => {
      let byPin = groups.get(cause);
      if (!byPin) groups.set(cause, (byPin = new Map()));
      const l = byPin.get(pin);
      if (l) l.push(part);
      else byPin.set(pin, [part]);
    };
    for (const z of fx.zaps) {
      if (z.race) continue; // ran inside the registering syscall: may predate the pin
      if (promiseOf(z.pin.source).zap(z).severity === null) continue; // legal for this source (vmsplice: the pipe keeps its pages)
      add(z.cause, z.pin, { va: z.va, firstPage: z.firstPage, count: z.count, how: z.how, unmapped: z.unmapped, advisory: z.advisory });
    }
    for (const [cause, byPin] of groups) for (const [pin, parts] of byPin) report(ctx, cause, pin, parts, st);
  },
});
