// What backs shared-file and hugetlb mappings, as the kernel said when they were mapped (mmap_backing.bt):
// the registration's backing comes from here when it covers the buffer, and from /proc/PID/maps otherwise.
// maps is read when the registration's line is processed — a program that unmaps or exits within
// milliseconds (most of the kernel's gup_longterm.c) leaves nothing to read, and an address reused meanwhile
// reads as the wrong mapping. Kept per pid for every process that made such a mapping (the pinning one is not
// known yet at mmap time), dropped on munmap / MAP_FIXED / shmdt over it and at exit (mmap_forget / exit).
import type { MmapBackingEvent } from '../../schema/events.ts';
import type { RangeBacking } from './maps.ts';
import { validUserRange } from './pin-record.ts';
import { RangeMap, pageDown, pageUp } from './ranges.ts';

const TMPFS_MAGIC = 0x01021994;
const HUGETLBFS_MAGIC = 0x958458f6;
const ANON_INODE_FS_MAGIC = 0x09041934;
/** Processes kept at most (oldest first out): a host mapping many shared files must not grow this forever. */
const MAX_PIDS = 8192;

/** The backing a mapping made with these flags on a filesystem with this magic has. */
export function backingOfMmap(flags: number, magic: number, name: string): RangeBacking {
  const shared = (flags & 3) !== 2;
  let backing: string;
  if (magic === 0 || magic === HUGETLBFS_MAGIC) backing = 'hugetlb';
  else if (magic === TMPFS_MAGIC) backing = 'shmem';
  else if (magic === ANON_INODE_FS_MAGIC) backing = 'special:anon_inode:' + name;
  else backing = 'file:' + name;
  return { backing, sharedFile: shared && backing.startsWith('file:'), mapped: true, mapShared: shared };
}

export class MmapBackings {
  private readonly byPid = new Map<number, RangeMap<RangeBacking>>();

  onMmap(e: MmapBackingEvent): void {
    if (!validUserRange(e.addr, e.len)) return;
    let m = this.byPid.get(e.pid);
    if (m === undefined) {
      if (this.byPid.size >= MAX_PIDS) this.byPid.delete(this.byPid.keys().next().value!);
      this.byPid.set(e.pid, (m = new RangeMap()));
    }
    m.set(pageDown(e.addr), pageUp(e.addr + e.len), backingOfMmap(e.flags, e.magic, e.name));
  }

  unmap(pid: number, start: number, end: number): void {
    const m = this.byPid.get(pid);
    if (m === undefined) return;
    m.remove(start, end);
    if (m.size === 0) this.byPid.delete(pid);
  }

  forget(pid: number): void {
    this.byPid.delete(pid);
  }

  /** Per process, the span of its captured mappings: what mmap_backing.bt's @pw_bspan held (restart seed). */
  spans(): [pid: number, lo: number, hi: number][] {
    const out: [number, number, number][] = [];
    for (const [pid, m] of this.byPid) {
      const s = m.span();
      if (s) out.push([pid, s[0], s[1]]);
    }
    return out;
  }

  /** The captured backing of [start, end) when a captured mapping covers its first page; null otherwise. */
  lookup(pid: number, start: number, end: number): RangeBacking | null {
    const m = this.byPid.get(pid);
    if (m === undefined || !(end > start)) return null;
    const r = m.at(start);
    return r ? r.value : null;
  }
}
