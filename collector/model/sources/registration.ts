// Registration syscalls that hand the kernel a list of buffers (io_uring buffer registration, vmsplice, ...):
// each iovec arrives as a pin_iovec line before the syscall's pin_result; the buffers of a granted call become
// pins on the fd's handle, refused ones are still reported (with their backing) for the rules.
import type { PinIovecEvent, PinSource } from '../../../schema/events.ts';
import type { BufferOutcome, Registration } from '../effects.ts';
import { validUserRange, type HandleRecord } from '../pin-record.ts';
import { hex, pageDown, pageUp } from '../ranges.ts';
import type { ModelState } from '../state.ts';
import type { PinSourcePlugin, RegistrationCall, Seq } from './source.ts';

const MAX_PENDING_IOVECS = 65536;

/** How a call's buffers relate to the handle's pins: replace them all, update slots, or add to them. */
export type RegistrationMode = 'replace' | 'update' | 'append';

/** One iovec of a registration syscall in flight on its thread. */
export function onPinIovec(m: ModelState, e: PinIovecEvent & Seq): void {
  let list = m.pendingIovecs.get(e.tid);
  // A new syscall on this thread (its previous one never reported a result): start over.
  // (iovecs of one call come in increasing index order: a repeated or lower index starts a new call)
  if (list !== undefined && (list[0].fd !== e.fd || list[0].opcode !== e.opcode || list[0].source !== e.source || e.index <= list[list.length - 1].index)) {
    list = undefined;
  }
  if (list === undefined) {
    list = [];
    m.pendingIovecs.set(e.tid, list);
  }
  if (list.length < MAX_PENDING_IOVECS) list.push(e);
}

/** The handle text of a pin as the pins table and the dashboard show it. */
export function handleText(h: HandleRecord, key: number, source: PinSource): string {
  switch (h.kind) {
    case 'ring':
      return `ring fd ${h.fd} slot ${key}`;
    case 'pipe':
      return `pipe fd ${h.fd}`;
    case 'container':
      return `container fd ${h.fd} iova ${hex(key)}`;
    default:
      return `${source} fd ${h.fd} #${key}`;
  }
}

/** The call's buffers as pins of `source` (granted) or as refused buffers, recorded as the event's registration. */
export function register(m: ModelState, call: RegistrationCall, mode: RegistrationMode, source: PinSourcePlugin): void {
  const { p, e, iovecs, gups } = call;
  const ok = e.ret >= 0;
  const { writable, longterm } = source;
  const handle = ok ? m.handle(p, e.fd, source.handleKind) : p.handles.get(e.fd);
  if (ok && mode === 'replace' && handle) m.releaseHandlePins(handle, 'replaced by a new registration', e.tsNs, null);
  // vmsplice pins only the bytes it spliced (retCountsBytes); BUFFERS_UPDATE returns how many slots it updated.
  let budget = ok && source.retCountsBytes ? e.ret : Infinity;
  const usable = ok && mode === 'update' ? e.ret : Infinity;
  const reg: Registration = {
    cause: e, source: e.source, pid: p.pid, comm: e.comm, fd: e.fd, opcode: e.opcode, ok, ret: e.ret, writable, longterm, buffers: [],
  };
  let n = 0;
  for (const iv of iovecs) {
    let len = iv.len;
    if (budget !== Infinity) {
      len = Math.min(len, budget);
      budget -= len;
    }
    const start = pageDown(iv.addr);
    const end = pageUp(iv.addr + Math.max(iv.len, 1));
    // The backing is filled in when the verifier's maps read is admitted (refused registrations too: the rules want it).
    const out: BufferOutcome = { addr: iv.addr, len: iv.len, slot: iv.index, backing: '', mapShared: false, sharedFile: false, mapped: false, pin: null };
    let pinned = false;
    if (ok && handle && n < usable) {
      if (mode === 'update') {
        const old = handle.pins.get(iv.index);
        if (old) m.release(old, 'slot replaced (IORING_REGISTER_BUFFERS_UPDATE)', e.tsNs);
      }
      if (iv.addr !== 0 && validUserRange(iv.addr, len)) {
        const key = handle.kind === 'ring' ? iv.index : handle.nextKey++;
        m.createPin(p, e, {
          source: e.source, handle, key, handleText: handleText(handle, key, e.source), addr: iv.addr, len, writable, longterm,
          raceFromNs: iv.tsNs, gups, backingRange: { start, end },
        }, out);
        pinned = true;
      }
    }
    if (!pinned) m.admitRange(p.pid, start, end, out);
    n++;
    reg.buffers.push(out);
  }
  m.effects.dirty = true;
  m.effects.registration = reg;
}
