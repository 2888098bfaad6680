// The pin sources the model knows, and the model's entry points that route an event to them: a registration
// syscall's result to its source, a kprobe GUP call to the syscall in flight or to the source that claims it,
// an unpin to the pins whose source it releases, a source's own event kinds (vfio_dma) to it.
import type { EventKind, GupEvent, PinResultEvent, PinSource, SequencedEvent, UnpinEvent } from '../../../schema/events.ts';
import type { ModelState } from '../state.ts';
import { gup } from './gup.ts';
import { ioUring } from './io-uring.ts';
import { oDirect } from './o-direct.ts';
import { rdma } from './rdma.ts';
import { register } from './registration.ts';
import type { PinSourcePlugin, Seq } from './source.ts';
import { holdGup, iommufd, vfio } from './vfio.ts';
import { vmsplice } from './vmsplice.ts';

/** Every source; the order is the order in which they may claim a standalone GUP call (gup, the catch-all, last). */
export const PIN_SOURCES: readonly PinSourcePlugin[] = [ioUring, vmsplice, vfio, iommufd, rdma, oDirect, gup];

const BY_SOURCE = new Map<PinSource, PinSourcePlugin>(PIN_SOURCES.map((s) => [s.source, s]));

/** The plug-in of a source (unknown: the unnamed-GUP one, the strictest promise). */
export function sourceOf(source: PinSource): PinSourcePlugin {
  return BY_SOURCE.get(source) ?? gup;
}

/** Event kinds that may release pins: pending reads of the process are made first, while its pins live. */
export const PIN_RELEASING_KINDS: ReadonlySet<EventKind> = new Set<EventKind>(['exit', 'close', ...PIN_SOURCES.flatMap((s) => s.releasedBy)]);

/** Event kinds a source handles itself, with the handler. */
export const SOURCE_EVENTS: ReadonlyMap<EventKind, (m: ModelState, e: SequencedEvent) => void> = new Map(
  PIN_SOURCES.flatMap((s) => Object.entries(s.events ?? {}) as [EventKind, (m: ModelState, e: SequencedEvent) => void][]),
);

/** A registration syscall returned: its iovecs (and GUP pfns) go to its source. */
export function onPinResult(m: ModelState, e: PinResultEvent & Seq): void {
  const pending = m.pendingIovecs.get(e.tid);
  m.pendingIovecs.delete(e.tid);
  const iovecs = pending ? pending.filter((x) => x.source === e.source && x.fd === e.fd) : [];
  const gups = m.takeGups(e.tid, e.pid, e.tsNs);
  const p = m.proc(e.pid, e.comm);
  m.noteMm(p, e.mm);
  const source = sourceOf(e.source);
  const call = { p, e, iovecs, gups };
  if (source.onResult) source.onResult(m, call);
  else register(m, call, 'append', source);
}

/** A kprobe GUP call: the exact pfns of a registration in flight on its thread, or a pin a source claims. */
export function onGup(m: ModelState, e: GupEvent & Seq): void {
  if (e.ret <= 0) return;
  if (m.pendingIovecs.has(e.tid)) return holdGup(m, e);
  for (const s of PIN_SOURCES) if (s.claimGup?.(m, e)) return;
}

/** unpin of a pinned pfn releases the pins of sources released that way (standalone GUP, RDMA MRs). */
export function onUnpin(m: ModelState, e: UnpinEvent & Seq): void {
  for (const { pin } of m.lookupPfn(e.pfn)) {
    if (sourceOf(pin.source).releasedBy.includes('unpin')) m.release(pin, `${e.fn}`, e.tsNs);
  }
}
