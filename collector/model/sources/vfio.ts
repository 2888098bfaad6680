// VFIO type1 as a pin source. Identity: a DMA mapping is (container fd, iova) → the user range
// [vaddr, vaddr+size) it was mapped from at VFIO_IOMMU_MAP_DMA time; the IOMMU keeps translating that iova to
// the pages pinned then, whatever later happens to the page table at vaddr.
// In kprobe mode the pages come from GUP itself: MAP_DMA pins through vfio_pin_pages_remote →
// pin_user_pages_remote (one page per call on 5.10, batches of up to 512 since 5.13), each call a `gup` event
// with source 'vfio' that arrives BEFORE the ioctl's own vfio_dma line (printed at sys_exit_ioctl). Those gup
// events belong to the mapping, not to pins of their own: they are held per thread until the map line comes.
// Released by VFIO_IOMMU_UNMAP_DMA of its iova (or all) made after it, by mapping the iova again, or with the
// container fd.
// The device may DMA into the pages at any time until the iova is unmapped — no syscall announces it, so an
// unmap of the user range is never teardown.
import type { GupEvent, PinSource, SequencedEvent, VfioDmaEvent } from '../../../schema/events.ts';
import type { BufferOutcome } from '../effects.ts';
import { validUserRange, type HandleRecord } from '../pin-record.ts';
import { hex, pageDown, pageUp } from '../ranges.ts';
import type { ModelState } from '../state.ts';
import { deviceDmaPromise } from './promise.ts';
import type { PinSourcePlugin, Seq } from './source.ts';

const VFIO_DMA_MAP_FLAG_WRITE = 2;
const VFIO_DMA_UNMAP_FLAG_ALL = 2;
const VFIO_DMA_UNMAP_FLAG_VADDR = 4;

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

const PROMISE = 'DMA map: the device may read/write the pinned pages at any time, unannounced, until the iova is unmapped';

export const vfioPromise = deviceDmaPromise('vfio', PROMISE, false);
export const iommufdPromise = deviceDmaPromise('iommufd', PROMISE, false);

/** Unmaps of a container remembered for maps that arrive after them (per-CPU buffers reorder the lines). */
const MAX_REMEMBERED_UNMAPS = 64;
interface DmaUnmap {
  iova: number;
  end: number;
  tsNs: number;
}
const unmapsOf = new WeakMap<HandleRecord, DmaUnmap[]>();

// MAP_DMA and UNMAP_DMA of one container serialize under iommu->lock, so their exit timestamps (printed at
// sys_exit_ioctl) order them even when bpftrace's per-CPU buffers deliver the lines out of order (seen on 5.10
// under TCG: a map arrived 200 ms of timestamps before the older unmap of its iova range). An unmap therefore
// releases only the pins created before it, and a map older than a pin or an unmap already seen at its iovas
// was undone by then.

/** VFIO_IOMMU_MAP_DMA / UNMAP_DMA returned. */
function onVfioDma(m: ModelState, ev: SequencedEvent): void {
  const e = ev as VfioDmaEvent & Seq;
  if (e.op === 'unmap') {
    if (e.ret !== 0 || (e.flags & VFIO_DMA_UNMAP_FLAG_VADDR) !== 0) return; // VADDR: pins kept, vaddr invalidated
    // the container's handle even when no map of it was seen yet: a map line arriving later is judged by this unmap
    const h = m.handle(m.proc(e.pid, e.comm), e.fd, 'container');
    const all = (e.flags & VFIO_DMA_UNMAP_FLAG_ALL) !== 0;
    const end = all ? Infinity : e.iova + e.size;
    const iova = all ? 0 : e.iova;
    for (const pin of [...h.pins.values()]) {
      // a pin made after this unmap (its line came first) is not what this unmap removed
      if (pin.createdNs <= e.tsNs && pin.key < end && iova < pin.key + pin.len) {
        m.release(pin, `VFIO_IOMMU_UNMAP_DMA iova ${hex(e.iova)}`, e.tsNs);
      }
    }
    let list = unmapsOf.get(h);
    if (!list) unmapsOf.set(h, (list = []));
    list.push({ iova, end, tsNs: e.tsNs });
    if (list.length > MAX_REMEMBERED_UNMAPS) list.shift();
    return;
  }
  const ok = e.ret === 0;
  const p = m.proc(e.pid, e.comm);
  // kprobe mode: the exact pfns GUP returned inside this ioctl (isVfioMapGup)
  const gups = m.takeGups(e.tid, e.pid, e.tsNs);
  const start = pageDown(e.vaddr);
  const end = pageUp(e.vaddr + Math.max(e.size, 1));
  const writable = (e.flags & VFIO_DMA_MAP_FLAG_WRITE) !== 0;
  const out: BufferOutcome = { addr: e.vaddr, len: e.size, slot: 0, backing: '', mapShared: false, sharedFile: false, mapped: false, pin: null };
  const h = ok && validUserRange(e.vaddr, e.size) ? m.handle(p, e.fd, 'container') : null;
  if (h && !superseded(h, e)) {
    const old = h.pins.get(e.iova);
    if (old) m.release(old, 'iova mapped again', e.tsNs);
    m.createPin(p, e, {
      source: 'vfio', handle: h, key: e.iova, handleText: vfioHandleText(e), addr: e.vaddr, len: e.size,
      writable, longterm: true, raceFromNs: e.tsNs, gups, backingRange: { start, end },
    }, out);
  } else {
    m.admitRange(p.pid, start, end, out);
  }
  m.effects.dirty = true;
  m.effects.registration = {
    cause: e, source: 'vfio', pid: p.pid, comm: e.comm, fd: e.fd, opcode: 0, ok, ret: e.ret, writable, longterm: true, buffers: [out],
  };
}

/**
 * A map whose line came after a newer pin or unmap of its iovas: VFIO refuses overlapping maps (EEXIST), so it
 * was unmapped before that newer pin was made, or by that unmap. It becomes no pin: the collector could only read
 * its pages now, after they were unpinned and possibly pinned again by the newer map, and a mapping that no longer
 * exists can hold no hazard from now on (its GUP events go with it).
 */
function superseded(h: HandleRecord, e: VfioDmaEvent): boolean {
  const end = e.iova + e.size;
  for (const pin of h.pins.values()) if (pin.createdNs > e.tsNs && pin.key < end && e.iova < pin.key + pin.len) return true;
  for (const u of unmapsOf.get(h) ?? []) if (u.tsNs > e.tsNs && u.iova < end && e.iova < u.end) return true;
  return false;
}

/** GUP inside MAP_DMA: held for the map line, whose pin takes these exact pfns. */
function holdMapGup(m: ModelState, e: GupEvent & Seq): boolean {
  if (!isVfioMapGup(e)) return false;
  holdGup(m, e);
  return true;
}

/** Keep a gup event for the registration syscall still running on its thread. */
export function holdGup(m: ModelState, e: GupEvent & Seq): void {
  if (m.staleGup(e)) return; // its call already returned (per-CPU reordering): the pin took pagemap's pfns
  let list = m.pendingGup.get(e.tid);
  if (!list) m.pendingGup.set(e.tid, (list = []));
  if (list.length < MAX_HELD_VFIO_GUPS) list.push(e);
}

function containerSource(source: PinSource, promise: typeof vfioPromise): PinSourcePlugin {
  return { source, promise, handleKind: 'container', writable: true, longterm: true, releasedBy: ['vfio_dma'] };
}

export const vfio: PinSourcePlugin = { ...containerSource('vfio', vfioPromise), events: { vfio_dma: onVfioDma }, claimGup: holdMapGup };
/** iommufd's IOMMU_IOAS_MAP (a pin_result with source iommufd): the same promise as a VFIO map. */
export const iommufd: PinSourcePlugin = containerSource('iommufd', iommufdPromise);
