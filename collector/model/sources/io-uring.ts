// io_uring fixed buffers (IORING_REGISTER_BUFFERS*) as a pin source. Identity: (ring fd, buffer slot).
// FOLL_WRITE | FOLL_LONGTERM pins held until unregister, a slot update, or the ring's release (close or exit of
// every holder). Submissions enter the kernel through io_uring_enter (unless SQPOLL), so teardown (unmap, then
// close/exit with no I/O submitted in between) can be told from a hazard (rules/sources/teardown.ts).
import type { SequencedEvent } from '../../../schema/events.ts';
import { IORING_REGISTER } from '../../../schema/kernel.ts';
import { validUserRange, type PinRecord } from '../pin-record.ts';
import { pageDown, pageUp } from '../ranges.ts';
import type { ModelState } from '../state.ts';
import { deviceDmaPromise } from './promise.ts';
import { handleText, register } from './registration.ts';
import type { PinSourcePlugin } from './source.ts';

export const ioUringPromise = deviceDmaPromise(
  'io_uring',
  'fixed buffers: the kernel reads/writes the pinned pages for every READ_FIXED/WRITE_FIXED until the buffers are unregistered or the ring is released',
  true,
);

export const ioUring: PinSourcePlugin = {
  source: 'io_uring',
  promise: ioUringPromise,
  handleKind: 'ring',
  writable: true,
  longterm: true,
  // a new registration replaces the ring's buffers, an update replaces slots, UNREGISTER_BUFFERS drops them
  releasedBy: ['pin_result'],
  onResult(m, call) {
    const { p, e } = call;
    switch (e.opcode) {
      case IORING_REGISTER.BUFFERS:
      case IORING_REGISTER.BUFFERS2:
        return register(m, call, 'replace', ioUring);
      case IORING_REGISTER.BUFFERS_UPDATE:
        return register(m, call, 'update', ioUring);
      case IORING_REGISTER.UNREGISTER_BUFFERS: {
        if (e.ret < 0) return;
        const h = p.handles.get(e.fd);
        if (h) m.releaseHandlePins(h, 'unregistered (IORING_UNREGISTER_BUFFERS)', e.tsNs, null);
        return;
      }
      default:
        return; // CLONE_BUFFERS and others: not modelled
    }
  },
};

/** An io_uring buffer found registered in /proc/PID/fdinfo (collector/discover). */
export interface DiscoveredRingBuffer {
  pid: number;
  comm: string;
  fd: number;
  slot: number;
  addr: number;
  len: number;
  tsNs: number;
}

/**
 * A buffer found already registered (at start or after a restart): a pin whose pinned pfns are what pagemap
 * shows now (origin 'discovered': a divergence before now cannot be seen). Nothing when the model already has
 * that slot with the same range.
 */
export function discoverRingBuffer(m: ModelState, d: DiscoveredRingBuffer): PinRecord | null {
  const p = m.proc(d.pid, d.comm);
  const known = p.handles.get(d.fd)?.pins.get(d.slot);
  if (known && known.addr === d.addr && known.len === d.len) return null;
  if (!validUserRange(d.addr, d.len)) return null;
  if (known) m.release(known, 'slot found re-registered after a capture gap', d.tsNs);
  const handle = m.handle(p, d.fd, 'ring');
  const cause = { kind: 'pin_result', tsNs: d.tsNs, pid: d.pid, tid: d.pid, comm: d.comm, seq: -1 } as unknown as SequencedEvent;
  return m.createPin(p, cause, {
    source: 'io_uring', handle, key: d.slot, handleText: `${handleText(handle, d.slot, 'io_uring')} (discovered)`, addr: d.addr,
    len: d.len, writable: true, longterm: true, raceFromNs: d.tsNs, origin: 'discovered',
    backingRange: { start: pageDown(d.addr), end: pageUp(d.addr + d.len) }, mapsOnly: true,
  });
}
