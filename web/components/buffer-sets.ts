// DMA buffers grouped into buffer sets: one per process, source and handle — a VM's RAM mapped through one
// VFIO container (one MAP_DMA per RAM region) is one set, not thousands of rows; an io_uring ring's slots are
// one set; each RDMA MR and each vmsplice pipe is its own. The set carries the source's identity: iova
// ranges for VFIO, the MR's address range for RDMA, slots for io_uring.
import type { PinSummary } from '../../schema/pins.ts';

export interface BufferSet {
  key: string;
  pid: number;
  comm: string;
  source: PinSummary['source'];
  /** What holds the set: "container fd 7", "ring fd 5", "MR 0x…", "pipe fd 4". */
  holder: string;
  /** The source's names for the members: iova ranges (VFIO), slots (io_uring), address ranges otherwise. */
  identities: string[];
  pins: number;
  live: number;
  pages: number;
  bytes: number;
  divergedPages: number;
  /** The worst state of a member (diverged > zapped > intact > released). */
  state: PinSummary['state'];
}

const WORST: PinSummary['state'][] = ['diverged', 'zapped', 'intact', 'released'];

/** The part of a pin's handle that names its holder (the container, ring or pipe), without the member's key. */
export function holderOf(p: Pick<PinSummary, 'source' | 'handle'>): string {
  const m = /^(container fd \d+|ring fd \d+|pipe fd \d+)/.exec(p.handle);
  return m ? m[1] : p.handle;
}

/** The buffer set a pin belongs to (BufferSet.key). */
export function setKeyOf(p: Pick<PinSummary, 'pid' | 'source' | 'handle'>): string {
  return `${p.pid}\0${p.source}\0${holderOf(p)}`;
}

function identityOf(p: PinSummary): string {
  if (p.source === 'vfio') {
    const m = /iova (0x[0-9a-f]+)(?:\+(0x[0-9a-f]+))?/.exec(p.handle);
    if (m) return `iova ${m[1]}+${m[2] ?? `0x${p.len.toString(16)}`}`;
  }
  const slot = /slot (\d+)/.exec(p.handle);
  if (slot) return `slot ${slot[1]}`;
  return `0x${p.addr.toString(16)}+0x${p.len.toString(16)}`;
}

/** Pins grouped by (pid, source, holder), biggest live sets first. */
export function bufferSets(pins: readonly PinSummary[]): BufferSet[] {
  const sets = new Map<string, BufferSet>();
  for (const p of pins) {
    const holder = holderOf(p);
    const key = setKeyOf(p);
    let s = sets.get(key);
    if (!s) {
      s = { key, pid: p.pid, comm: p.comm, source: p.source, holder, identities: [], pins: 0, live: 0, pages: 0, bytes: 0, divergedPages: 0, state: 'released' };
      sets.set(key, s);
    }
    s.pins++;
    if (p.releasedNs === null) s.live++;
    s.pages += p.pageCount;
    s.bytes += p.len;
    s.divergedPages += p.divergedPages;
    s.identities.push(identityOf(p));
    if (WORST.indexOf(p.state) < WORST.indexOf(s.state)) s.state = p.state;
  }
  return [...sets.values()].sort((a, b) => b.live - a.live || b.pages - a.pages || a.pid - b.pid);
}
