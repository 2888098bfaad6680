// A long-term pin from a GUP caller pinwatch cannot name (kprobe mode): assume the strictest promise, a device
// DMAing unannounced. Short-term pins (O_DIRECT: FOLL_PIN without FOLL_LONGTERM, released before the syscall
// returns) are not modelled as pins at all (docs/sources.md).
import { deviceDmaPromise } from './promise.ts';

export const gupPromise = deviceDmaPromise(
  'gup',
  'long-term pin by an unnamed GUP caller: assumed to be DMA that may happen at any time until unpinned',
  false,
);
