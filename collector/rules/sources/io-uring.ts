// io_uring fixed buffers (IORING_REGISTER_BUFFERS*): FOLL_WRITE | FOLL_LONGTERM pins held until unregister,
// a slot update, or the ring's release. Submissions enter the kernel through io_uring_enter (unless SQPOLL),
// so teardown (unmap, then close/exit with no I/O submitted in between) can be told from a hazard.
import { deviceDmaPromise } from './promise.ts';

export const ioUringPromise = deviceDmaPromise(
  'io_uring',
  'fixed buffers: the kernel reads/writes the pinned pages for every READ_FIXED/WRITE_FIXED until the buffers are unregistered or the ring is released',
  true,
);
