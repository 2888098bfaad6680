// A long-term pin from a GUP caller pinwatch cannot name (kprobe mode: a `gup` event outside any traced
// registration syscall). Identity: the address range one GUP call pinned; released by the unpin of its pfns.
// Assumed to keep the strictest promise, a device DMAing unannounced. Short-term pins (O_DIRECT: FOLL_PIN
// without FOLL_LONGTERM, released before the syscall returns) are not modelled as pins at all (o-direct.ts).
import type { GupEvent, PinSource } from '../../../schema/events.ts';
import { PAGE_SIZE } from '../../../schema/kernel.ts';
import { validUserRange } from '../pin-record.ts';
import { hex, pageDown } from '../ranges.ts';
import type { ModelState } from '../state.ts';
import { deviceDmaPromise } from './promise.ts';
import type { PinSourcePlugin, Seq } from './source.ts';

export const gupPromise = deviceDmaPromise(
  'gup',
  'long-term pin by an unnamed GUP caller: assumed to be DMA that may happen at any time until unpinned',
  false,
);

/**
 * A standalone GUP call as a pin of `source` when it is a long-term FOLL_PIN (short-term ones come and go
 * within one syscall; tracking them would only add churn).
 */
export function pinStandaloneGup(m: ModelState, e: GupEvent & Seq, source: PinSource, handleText: (addr: number, len: number) => string): void {
  const pin = e.fn.startsWith('pin_user_pages') || (e.gupFlags & m.foll.PIN) !== 0;
  const longterm = (e.gupFlags & m.foll.LONGTERM) !== 0;
  if (!pin || !longterm) return;
  const addr = pageDown(e.addr);
  const len = e.ret * PAGE_SIZE;
  if (!validUserRange(addr, len)) return;
  const p = m.proc(e.pid, e.comm);
  const writable = (e.gupFlags & m.foll.WRITE) !== 0;
  const buffer = { addr: e.addr, len, slot: 0, backing: '', mapShared: false, sharedFile: false, mapped: false, pin: null };
  m.createPin(p, e, {
    source, handle: null, key: 0, handleText: handleText(addr, len), addr, len, writable, longterm,
    raceFromNs: e.tsNs, gups: [e], backingRange: { start: addr, end: addr + len },
  }, buffer);
  m.effects.dirty = true;
  m.effects.registration = {
    cause: e, source, pid: p.pid, comm: e.comm, fd: -1, opcode: 0, ok: true, ret: e.ret, writable, longterm, buffers: [buffer],
  };
}

export const gup: PinSourcePlugin = {
  source: 'gup',
  promise: gupPromise,
  handleKind: 'other',
  writable: true,
  longterm: false,
  releasedBy: ['unpin'],
  // the catch-all for standalone GUP: listed last in index.ts
  claimGup(m, e) {
    pinStandaloneGup(m, e, 'gup', () => `${e.fn} ${hex(e.addr)}`);
    return true;
  },
};
