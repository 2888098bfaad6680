// VFIO / iommufd DMA maps (VFIO_IOMMU_MAP_DMA, IOMMU_IOAS_MAP): the device may DMA into the pages at any time
// until the iova is unmapped — no syscall announces it, so an unmap of the user range is never teardown.
import { deviceDmaPromise } from './promise.ts';

const PROMISE = 'DMA map: the device may read/write the pinned pages at any time, unannounced, until the iova is unmapped';

export const vfioPromise = deviceDmaPromise('vfio', PROMISE, false);
export const iommufdPromise = deviceDmaPromise('iommufd', PROMISE, false);
