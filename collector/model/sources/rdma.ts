// RDMA memory regions as a pin source (kprobe mode only: ibv_reg_mr's uverbs command is not decodable from
// tracepoints, see schema/pin-sources.ts). Identity: the MR's registered address range, as ib_umem_get pinned
// it (FOLL_LONGTERM, in batches of up to 512 pages per GUP call, each a `gup` event with source 'rdma');
// the device reaches it by (rkey, address in that range), so a divergence anywhere in the range is judged
// at that address. The keys are chosen by the driver after the pin (mr->lkey/rkey) and are not traced yet.
// Released page by page by ib_umem_release's unpin (unpin events), like any standalone GUP pin. The HCA (or a
// remote peer, for remote-access keys) may DMA into the region until it is deregistered, unannounced — an
// unmap before dereg is never teardown.
import type { GupEvent } from '../../../schema/events.ts';
import { pinStandaloneGup } from './gup.ts';
import { deviceDmaPromise } from './promise.ts';
import type { PinSourcePlugin } from './source.ts';

export const rdmaPromise = deviceDmaPromise(
  'rdma',
  'memory region: the HCA, or a remote peer holding the rkey, may read/write the pages until ibv_dereg_mr',
  false,
);

/** Whether a kprobe gup event was made by ib_umem_get for an MR registration. */
export function isRdmaMrGup(e: Pick<GupEvent, 'source'>): boolean {
  return e.source === 'rdma';
}

/** The handle text of an MR pin as the pins table and the dashboard show it. */
export function rdmaHandleText(addr: number, len: number): string {
  return `MR 0x${addr.toString(16)}+0x${len.toString(16)} (ib_umem_get)`;
}

export const rdma: PinSourcePlugin = {
  source: 'rdma',
  promise: rdmaPromise,
  handleKind: 'other',
  writable: true,
  longterm: true,
  releasedBy: ['unpin'],
  claimGup(m, e) {
    if (!isRdmaMrGup(e)) return false;
    pinStandaloneGup(m, e, 'rdma', rdmaHandleText);
    return true;
  },
};
