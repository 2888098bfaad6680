// The promise of every pin source, by PinSource (docs/sources.md).
import type { PinSource } from '../../../schema/events.ts';
import { gupPromise } from './gup.ts';
import { ioUringPromise } from './io-uring.ts';
import { oDirectPromise } from './o-direct.ts';
import type { SourcePromise } from './promise.ts';
import { rdmaPromise } from './rdma.ts';
import { iommufdPromise, vfioPromise } from './vfio.ts';
import { vmsplicePromise } from './vmsplice.ts';

const BY_SOURCE: Record<PinSource, SourcePromise> = {
  io_uring: ioUringPromise,
  vfio: vfioPromise,
  iommufd: iommufdPromise,
  rdma: rdmaPromise,
  vmsplice: vmsplicePromise,
  o_direct: oDirectPromise,
  gup: gupPromise,
};

export function promiseOf(source: PinSource): SourcePromise {
  return BY_SOURCE[source] ?? gupPromise;
}

export type { SourcePromise, Verdict } from './promise.ts';
