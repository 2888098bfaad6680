// pin-leak (warning): a pin outlives what it was for — its mapping (the range was munmapped / replaced /
// shrunk while pinned: addr = first unmapped pinned page), its owning process (exited while another
// process, e.g. a fork child, still holds the ring/container fd), or it is older than pinMaxAgeS.
// Each reason reported once per pin.
// An owner found gone by a pagemap read (a synthetic exit, seq -1) is judged only once the stream shows its
// exit, or after EARLY_EXIT_GRACE_NS: the stream can lag the read (seen: >0.7 s under QEMU TCG), and the
// events still in flight (the child's exit, the unregister) may release the pin.
import type { Evidence, RuleInfo } from '../../schema/anomalies.ts';
import type { SequencedEvent } from '../../schema/events.ts';
import { PAGE_SIZE } from '../../schema/kernel.ts';
import type { PinRecord } from '../model/pin-record.ts';
import { hex } from '../model/ranges.ts';
import { eventEvidence, pages, pinCreatedEvidence, pinnedPfnOrNull } from './evidence.ts';
import { defineRule, type AnomalyDraft, type RuleContext } from './rule.ts';
import { TeardownWatch, type Judgement } from './sources/teardown.ts';
import { promiseOf } from './sources/index.ts';

export const info: RuleInfo = {
  id: 'pin-leak',
  severity: 'warning',
  title: 'Pin outlives its mapping or process',
  whyItMatters:
    'A pinned page that no process maps any more is memory nobody can read, still written by the device: the data ' +
    'is lost and the page cannot be reclaimed, migrated or compacted until the pin goes. A pin kept alive after its ' +
    'owner exited (an inherited io_uring or VFIO fd) holds the dead process\'s memory indefinitely; a very old pin ' +
    'fragments ZONE_MOVABLE / CMA.',
  mechanism:
    'munmap (do_vmi_munmap), mmap(MAP_FIXED) and mremap shrink drop the VMA and PTEs but not the GUP reference: the ' +
    'folio stays allocated with its pin count until unpin_user_pages (io_uring: io_buffer_unmap at unregister or ring ' +
    'exit; VFIO: vfio_unpin_pages_remote at unmap/container release). The ring or container lives as long as any fd ' +
    'refers to it (seed 003: pins need tracking apart from ordinary references).',
  seeds: ['003'],
  modes: ['tracepoint', 'kprobe'],
};

const EARLY_EXIT_GRACE_NS = 5e9;

interface State {
  unmapped: WeakSet<PinRecord>;
  orphaned: WeakSet<PinRecord>;
  old: WeakSet<PinRecord>;
  /** Orphans of owners found gone by pagemap before their exit event, by owner pid. */
  early: Map<number, { pin: PinRecord; e: SequencedEvent }[]>;
  /** Unmapped pins waiting for teardown evidence: a release right after, with no I/O, is no leak. */
  watch: TeardownWatch<AnomalyDraft>;
}

/** A held unmapped-pin report: dropped when it was teardown (pinned-range-zapped says so, as info). */
function decide(ctx: RuleContext, d: AnomalyDraft, j: Judgement): void {
  if (j.teardown) return;
  d.summary = `${d.summary} (${j.why})`;
  ctx.raise(d);
}

/** An anomaly about the whole pinned buffer (addr = its first page). */
function raiseWholePin(ctx: RuleContext, pin: PinRecord, tsNs: number, summary: string, evidence: Evidence[]): void {
  ctx.raise({
    rule: info.id,
    pid: pin.pid,
    comm: pin.comm,
    addr: pin.vaOf(0),
    len: pin.len,
    pfn: pinnedPfnOrNull(pin, 0),
    tsNs,
    pinId: pin.id,
    summary,
    evidence,
  });
}

function raiseOrphaned(ctx: RuleContext, st: State, pin: PinRecord, e: SequencedEvent): void {
  if (st.orphaned.has(pin) || !pin.live || !pin.orphaned) return;
  st.orphaned.add(pin);
  const holders = pin.handle?.holders ?? [];
  raiseWholePin(
    ctx, pin, e.tsNs,
    `process ${pin.pid} exited but ${pin.handleText} stays pinned: pid ${holders.join(', ')} still holds fd ${pin.handle?.fd} (inherited across fork; unless it exec'd with O_CLOEXEC)`,
    [...eventEvidence(e, `exit of ${pin.pid}`), pinCreatedEvidence(pin)],
  );
}

export const rule = defineRule<State>({
  info,
  effects: true,
  kinds: ['exit', 'uring_enter', 'uring_sqpoll'],
  init: () => ({ unmapped: new WeakSet(), orphaned: new WeakSet(), old: new WeakSet(), early: new Map(), watch: new TeardownWatch() }),
  onEvent(e, ctx, st) {
    const fx = ctx.effects;
    st.watch.onEvent(e, fx, decide, ctx);
    if (fx.dirty && fx.zaps.length) {
      // First unmapped pinned page per pin for this event.
      const first = new Map<PinRecord, { va: number; page: number; count: number; how: string }>();
      for (const z of fx.zaps) {
        if (!z.unmapped || z.race || st.unmapped.has(z.pin) || !z.pin.live) continue;
        if (promiseOf(z.pin.source).unmappedLeak.severity === null) continue; // e.g. a pipe keeps what it references
        const cur = first.get(z.pin);
        if (!cur) first.set(z.pin, { va: z.va, page: z.firstPage, count: z.count, how: z.how });
        else {
          cur.count += z.count;
          if (z.va < cur.va) Object.assign(cur, { va: z.va, page: z.firstPage, how: z.how });
        }
      }
      for (const [pin, f] of first) {
        st.unmapped.add(pin);
        const draft: AnomalyDraft = {
          rule: info.id,
          pid: pin.pid,
          comm: pin.comm,
          addr: f.va,
          len: f.count * PAGE_SIZE,
          pfn: pinnedPfnOrNull(pin, f.page),
          tsNs: e.tsNs,
          pinId: pin.id,
          summary: `${f.how} unmapped ${pages(f.count)} of ${pin.handleText} at ${hex(f.va)}; the pin still holds them: no process can see what the device writes there`,
          evidence: [...eventEvidence(e, `${f.how} ${hex(f.va)}: the pinned range is no longer mapped`), pinCreatedEvidence(pin)],
        };
        if (ctx.config.submissionsTraced && st.watch.canJudge(pin)) st.watch.hold(pin, e.tsNs, draft);
        else ctx.raise(draft);
      }
    }
    for (const pin of fx.orphaned) {
      if (e.seq >= 0) {
        raiseOrphaned(ctx, st, pin, e);
        continue;
      }
      const l = st.early.get(pin.pid);
      if (l) l.push({ pin, e });
      else st.early.set(pin.pid, [{ pin, e }]);
    }
    if (e.kind === 'exit' && e.seq >= 0 && e.tid === e.pid) {
      const l = st.early.get(e.pid);
      if (l) {
        st.early.delete(e.pid);
        for (const x of l) raiseOrphaned(ctx, st, x.pin, e);
      }
    }
  },
  onTick(nowNs, ctx, st) {
    st.watch.onTick(nowNs, ctx.streamNs(), (d, j) => decide(ctx, d, j));
    for (const [pid, l] of st.early) {
      if (nowNs - l[0].e.tsNs < EARLY_EXIT_GRACE_NS) continue;
      st.early.delete(pid);
      for (const x of l) raiseOrphaned(ctx, st, x.pin, x.e);
    }
    for (const pin of ctx.model.livePins()) {
      const hold = promiseOf(pin.source).longHold;
      if (!hold || hold.verdict.severity === null || st.old.has(pin) || nowNs - pin.createdNs <= hold.afterS * 1e9) continue;
      st.old.add(pin);
      ctx.raise({
        rule: info.id, severity: hold.verdict.severity, pid: pin.pid, comm: pin.comm, addr: pin.vaOf(0), len: pin.len,
        pfn: pinnedPfnOrNull(pin, 0), tsNs: nowNs, pinId: pin.id,
        summary: `${pin.handleText} held ${Math.round((nowNs - pin.createdNs) / 1e9)} s after vmsplice: ${hold.verdict.why}`,
        evidence: [pinCreatedEvidence(pin)],
      });
    }
    const maxAge = ctx.config.pinMaxAgeS;
    if (!(maxAge > 0)) return;
    const limit = maxAge * 1e9;
    for (const pin of ctx.model.livePins()) {
      if (st.old.has(pin) || nowNs - pin.createdNs <= limit) continue;
      st.old.add(pin);
      raiseWholePin(ctx, pin, nowNs, `${pin.handleText} has been pinned for ${Math.round((nowNs - pin.createdNs) / 1e9)} s (limit ${maxAge} s)`, [
        pinCreatedEvidence(pin),
      ]);
    }
  },
});
