// VFIO type1 as a pin source. Identity: a DMA mapping is (container fd, iova) → the user range
// [vaddr, vaddr+size) it was mapped from at VFIO_IOMMU_MAP_DMA time; the IOMMU keeps translating that iova to
// the pages pinned then, whatever later happens to the page table at vaddr.
// In kprobe mode the pages come from GUP itself: MAP_DMA pins through vfio_pin_pages_remote →
// pin_user_pages_remote (one page per call on 5.10, batches of up to 512 since 5.13), each call a `gup` event
// with source 'vfio' that arrives BEFORE the ioctl's own vfio_dma line (printed at sys_exit_ioctl). Those gup
// events belong to the mapping, not to pins of their own: they are held per thread until the map line comes.
import type { GupEvent, VfioDmaEvent } from '../../../schema/events.ts';

/** At most this many gup events are held per thread for one MAP_DMA (a 5.10 map of 256 MiB is 65,536 calls). */
export const MAX_HELD_VFIO_GUPS = 65_536;

/** A gup event made inside VFIO's pinning path: it carries the exact pfns of a DMA mapping being made. */
export function isVfioMapGup(e: GupEvent): boolean {
  return e.source === 'vfio';
}

/** The handle text of a VFIO DMA mapping, as the pins table and the dashboard show it. */
export function vfioHandleText(e: Pick<VfioDmaEvent, 'fd' | 'iova' | 'size'>): string {
  return `container fd ${e.fd} iova 0x${e.iova.toString(16)}+0x${e.size.toString(16)}`;
}

/** The iova a user address of a mapping is reached at by the device (null outside the mapping). */
export function iovaOf(pin: { addr: number; len: number; key: number }, vaddr: number): number | null {
  if (vaddr < pin.addr || vaddr >= pin.addr + pin.len) return null;
  return pin.key + (vaddr - pin.addr);
}
