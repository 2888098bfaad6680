// An O_DIRECT bio's GUP (kprobe mode names it): FOLL_PIN without FOLL_LONGTERM, released when the I/O
// completes, so the model keeps no pin for it in a correct program. While one is in flight the block device
// DMAs into the pages exactly as a long-term device pin does — seed 002's O_DIRECT + swap-out reproducer is
// that window — so if such a pin is ever modelled it keeps the device-DMA promise.
import { deviceDmaPromise } from './promise.ts';
import type { PinSourcePlugin } from './source.ts';

export const oDirectPromise = deviceDmaPromise(
  'o_direct',
  'short-term pin of an O_DIRECT bio: the block device reads or writes the pages until the I/O completes',
  false,
);

/** No event makes an o_direct pin today (the kprobe gup of a bio is short-term: gup.ts skips it). */
export const oDirect: PinSourcePlugin = {
  source: 'o_direct',
  promise: oDirectPromise,
  handleKind: 'other',
  writable: true,
  longterm: true,
  releasedBy: [],
};
