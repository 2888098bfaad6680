// RDMA memory regions (ib_umem_get at ibv_reg_mr): the HCA (or a remote peer, for remote-access keys) may
// DMA into the region until it is deregistered, unannounced — an unmap before dereg is never teardown.
import { deviceDmaPromise } from './promise.ts';

export const rdmaPromise = deviceDmaPromise(
  'rdma',
  'memory region: the HCA, or a remote peer holding the rkey, may read/write the pages until ibv_dereg_mr',
  false,
);
