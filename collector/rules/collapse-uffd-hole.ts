// collapse-uffd-hole: collapse_file ran on a shmem range that a userfaultfd of the same process has
// registered for MISSING faults. high when it succeeded (holes filled behind the uffd's back: the
// missing-fault events userspace relies on never come; result 1, or 10 for MADV_COLLAPSE), info when the
// kernel refused (6.4+ does: 5 exceed_none_pte).
// For MADV_COLLAPSE the event's pid is the caller; the collapse address comes from the tracepoint, or,
// when that does not fall in a registered range, from the MADV_COLLAPSE call of the same thread (its
// madvise event arrives after collapse_file: the syscall reports at exit).
import type { RuleInfo } from '../../schema/anomalies.ts';
import type { CollapseFileEvent, SequencedEvent } from '../../schema/events.ts';
import { PMD_SIZE, UFFDIO_REGISTER_MODE_MISSING, scanResultName } from '../../schema/kernel.ts';
import type { ProcessState, UffdRegistration } from '../model/process.ts';
import { collapseSucceeded } from '../model/shadow-model.ts';
import { hex, pmdDown } from '../model/ranges.ts';
import { eventEvidence } from './evidence.ts';
import { CollapseCalls } from './collapse-calls.ts';
import { defineRule, type RuleContext } from './rule.ts';

export const info: RuleInfo = {
  id: 'collapse-uffd-hole',
  severity: 'high',
  title: 'THP collapse filled holes under a userfaultfd',
  whyItMatters:
    'A userfaultfd registered for missing faults expects to be told about every first touch of a hole (live ' +
    'migration, post-copy, lazy restore). If khugepaged or MADV_COLLAPSE collapses the shmem range into a huge page, ' +
    'the holes are filled with zeroed pages and those missing faults never arrive: the application serves zeros instead ' +
    'of its data. Since 6.4 the kernel refuses such collapses (reported at info level).',
  mechanism:
    'khugepaged_scan_mm_slot / madvise_collapse -> hpage_collapse_scan_file -> collapse_file, which allocates a huge ' +
    'folio and fills missing page-cache indices. 6.4 ("mm/khugepaged: skip shmem with userfaultfd", seed 004) makes ' +
    'collapse_file check userfaultfd_missing() on every VMA mapping the file when it meets a hole and fail with ' +
    'SCAN_EXCEED_NONE_PTE (MADV_COLLAPSE returns EBUSY). Seen with huge_memory:mm_khugepaged_collapse_file.',
  seeds: ['004'],
  modes: ['tracepoint', 'kprobe'],
};

interface State {
  /** collapse_file events waiting for their thread's MADV_COLLAPSE to give the range. */
  calls: CollapseCalls<CollapseFileEvent & { seq: number }>;
  /** (pid, range, severity, registration) already reported: retries and khugepaged repeat the same verdict. */
  reported: Set<string>;
}

function missingRegistration(p: ProcessState, start: number, end: number): { start: number; reg: UffdRegistration } | null {
  for (const r of p.uffd.overlapping(start, end)) {
    if ((r.value.mode & UFFDIO_REGISTER_MODE_MISSING) !== 0) return { start: r.start, reg: r.value };
  }
  return null;
}

function fire(ctx: RuleContext, st: State, e: CollapseFileEvent & { seq: number }, pid: number, comm: string, rangeStart: number, reg: UffdRegistration, extra: SequencedEvent | null): void {
  const ok = collapseSucceeded(e.result, ctx.config.kernelRelease);
  const key = `${pid}:${rangeStart}:${ok}:${reg.seq}`;
  if (st.reported.has(key)) return;
  if (st.reported.size > 10_000) st.reported.clear();
  st.reported.add(key);
  ctx.raise({
    rule: info.id,
    severity: ok ? 'high' : 'info',
    pid,
    comm,
    addr: rangeStart,
    len: PMD_SIZE,
    pfn: ok && e.hpfn ? e.hpfn : null,
    tsNs: e.tsNs,
    summary: ok
      ? `collapse_file filled the shmem range ${hex(rangeStart)} (${e.filename}) into a huge page while userfaultfd ${reg.fd} watches it for missing faults: those faults will never come`
      : `collapse_file refused the shmem range ${hex(rangeStart)} (${e.filename}): ${scanResultName(e.result, ctx.config.kernelRelease)}, because userfaultfd ${reg.fd} watches it for missing faults`,
    evidence: [
      ...eventEvidence(e, `collapse_file ${e.isShmem ? 'shmem' : 'file'} ${e.filename} index ${e.index}: ${scanResultName(e.result, ctx.config.kernelRelease)}`),
      { type: 'event', seq: reg.seq, note: `UFFDIO_REGISTER MISSING on userfaultfd ${reg.fd}` },
      ...eventEvidence(extra, 'MADV_COLLAPSE on the range'),
    ],
  });
}

export const rule = defineRule<State>({
  info,
  kinds: ['collapse_file', 'madvise'],
  init: () => ({ calls: new CollapseCalls(), reported: new Set() }),
  onEvent(e, ctx, st) {
    if (e.kind === 'madvise') {
      const call = st.calls.take(e);
      if (!call) return;
      const { start, end } = call;
      for (const { e: c, pid } of call.parked) {
        const p = ctx.model.process(pid);
        if (!p) continue;
        // The tracepoint's address if it lies in the madvise range, else the first registered chunk of it.
        const within = c.addr >= start && c.addr < end ? pmdDown(c.addr) : -1;
        const m = within >= 0 ? missingRegistration(p, within, within + PMD_SIZE) : missingRegistration(p, start, end);
        if (!m) continue;
        fire(ctx, st, c, pid, p.comm, within >= 0 ? within : pmdDown(Math.max(m.start, start)), m.reg, e);
      }
      return;
    }
    if (e.kind !== 'collapse_file' || !e.isShmem) return;
    st.calls.expire(e.tsNs);
    const pid = ctx.model.pidForMm(e.mm) ?? e.pid;
    const p = ctx.model.process(pid);
    if (!p || p.uffd.size === 0) return;
    if (e.addr > 0) {
      const start = pmdDown(e.addr);
      const m = missingRegistration(p, start, start + PMD_SIZE);
      if (m) return fire(ctx, st, e, pid, p.comm, start, m.reg, null);
    }
    // The address does not tell: wait for this thread's MADV_COLLAPSE (khugepaged never sends one).
    st.calls.park(e, pid);
  },
  onTick(nowNs, _ctx, st) {
    st.calls.expire(nowNs);
  },
});
