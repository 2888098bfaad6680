// What is already pinned on a running host, read from /proc at start and after each bpftrace restart (events
// of pins made while nobody watched never come):
//  - io_uring registered buffers: /proc/PID/fdinfo/<ring fd> lists them (6.18, checked with a liburing program):
//      UserBufs:	2
//          0: 0x7fc5fa5a6000/8192
//          1: 0x7fc5fa5a8000/4096
//    (older kernels print "   0: 0x7f…, 8192"; both are read). The kernel skips the list when the ring's lock
//    is contended at that moment: such a ring is read again at the next discovery.
//  - pinned and locked memory per process: VmPin (mm->pinned_vm: io_uring, RDMA MRs) and VmLck
//    (mm->locked_vm: mlock, VFIO type1 DMA maps) from /proc/PID/status, for pins no file lists.
//  - open pin-capable devices: /dev/vfio/* (type1 container, groups, device cdevs), /dev/iommu (iommufd),
//    /dev/infiniband/uverbs* (RDMA): their holder may have pinned, or pin with an ioctl the probes see later.
// `watchPids` turns a discovery into the processes the in-kernel filters must treat as pinning from the first
// event (@pw_watch[pid] = 2: their zaps, remaps, forks and exits are printed): the runner seeds them in BEGIN.
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { PAGE_SIZE } from '../../schema/kernel.ts';

export interface DiscoveredBuffer {
  slot: number;
  addr: number;
  len: number;
}

export interface DiscoveredRing {
  pid: number;
  comm: string;
  fd: number;
  buffers: DiscoveredBuffer[];
}

export interface DiscoveredMemory {
  pid: number;
  comm: string;
  vmPinPages: number;
  vmLckPages: number;
}

export interface DiscoveredDevice {
  pid: number;
  comm: string;
  /** The fd's target, e.g. /dev/vfio/12, /dev/iommu, /dev/infiniband/uverbs0. */
  path: string;
}

export interface Discovery {
  rings: DiscoveredRing[];
  memory: DiscoveredMemory[];
  /** Processes with a pin-capable device open (one entry per process and path). */
  devices?: DiscoveredDevice[];
  /** Every process holding an io_uring fd with registered buffers (`rings` lists a shared ring once). */
  ringHolders?: number[];
  /** Processes looked at, and wall ms it took. */
  processes: number;
  ms: number;
}

const BUF_LINE = /^\s*(\d+):\s*0x([0-9a-f]+)\s*[/,]\s*(\d+)\s*$/i;

/** The registered buffers of an io_uring fdinfo text; null when it is not an io_uring fd's fdinfo. */
export function parseIoUringFdinfo(text: string): DiscoveredBuffer[] | null {
  const lines = text.split('\n');
  const at = lines.findIndex((l) => l.startsWith('UserBufs:'));
  if (at < 0) return null;
  const out: DiscoveredBuffer[] = [];
  for (let i = at + 1; i < lines.length; i++) {
    const m = BUF_LINE.exec(lines[i]);
    if (!m) break;
    const addr = Number.parseInt(m[2], 16);
    const len = Number(m[3]);
    if (!Number.isSafeInteger(addr) || !Number.isSafeInteger(len) || len <= 0 || addr === 0) continue; // sparse / cleared slot
    out.push({ slot: Number(m[1]), addr, len });
  }
  return out;
}

/** Name, VmPin and VmLck (in 4 KiB pages) of a /proc/PID/status text. */
export function parseStatusPinned(text: string): { comm: string; vmPinPages: number; vmLckPages: number } {
  const kb = (key: string) => {
    const m = new RegExp(`^${key}:\\s*(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  };
  const name = /^Name:\t(.*)$/m.exec(text)?.[1] ?? '';
  return { comm: name, vmPinPages: Math.ceil((kb('VmPin') * 1024) / PAGE_SIZE), vmLckPages: Math.ceil((kb('VmLck') * 1024) / PAGE_SIZE) };
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null; // the process or fd went away meanwhile
  }
}

/** Scan /proc: every process's io_uring rings with buffers, and every process with VmPin or VmLck. */
export function discover(proc = '/proc', skipPid = process.pid): Discovery {
  const t0 = Date.now();
  const rings: DiscoveredRing[] = [];
  const memory: DiscoveredMemory[] = [];
  const devices: DiscoveredDevice[] = [];
  const ringHolders = new Set<number>();
  let processes = 0;
  /** Ring inodes already listed: a ring inherited by fork children is one set of buffers. */
  const ringsSeen = new Set<string>();
  let entries: string[];
  try {
    entries = readdirSync(proc);
  } catch {
    return { rings, memory, devices, ringHolders: [], processes, ms: Date.now() - t0 };
  }
  for (const name of entries) {
    const c = name.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const pid = Number(name);
    if (pid === skipPid) continue;
    const status = readText(`${proc}/${pid}/status`);
    if (status === null) continue;
    processes++;
    const st = parseStatusPinned(status);
    if (st.vmPinPages > 0 || st.vmLckPages > 0) memory.push({ pid, comm: st.comm, vmPinPages: st.vmPinPages, vmLckPages: st.vmLckPages });
    // Threads share the fd table; kernel threads have none.
    let fds: string[];
    try {
      fds = readdirSync(`${proc}/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(`${proc}/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (target !== 'anon_inode:[io_uring]') {
        if (isPinDevice(target) && !devices.some((d) => d.pid === pid && d.path === target)) devices.push({ pid, comm: st.comm, path: target });
        continue;
      }
      const info = readText(`${proc}/${pid}/fdinfo/${fd}`);
      const buffers = info === null ? null : parseIoUringFdinfo(info);
      if (!buffers || buffers.length === 0) continue;
      ringHolders.add(pid);
      const ino = /^ino:\s*(\d+)/m.exec(info!)?.[1];
      if (ino !== undefined) {
        if (ringsSeen.has(ino)) continue;
        ringsSeen.add(ino);
      }
      rings.push({ pid, comm: st.comm, fd: Number(fd), buffers });
    }
  }
  return { rings, memory, devices, ringHolders: [...ringHolders], processes, ms: Date.now() - t0 };
}

/** An fd target through which a process pins memory for a device (VFIO type1 / cdev, iommufd, RDMA verbs). */
export function isPinDevice(target: string): boolean {
  return target.startsWith('/dev/vfio/') || target === '/dev/iommu' || target.startsWith('/dev/infiniband/uverbs');
}

/**
 * The processes a discovery shows holding (or able to hold) pins, sorted: VmPin > 0 (io_uring, RDMA, iommufd),
 * VmLck > 0 (VFIO type1 DMA maps are accounted there, as is mlock), an io_uring ring with registered buffers, an
 * open VFIO / iommufd / RDMA device. The runner seeds them as @pw_watch[pid] = 2 at start and at each restart.
 */
export function watchPids(d: Discovery): number[] {
  const out = new Set<number>();
  for (const m of d.memory) if (m.vmPinPages > 0 || m.vmLckPages > 0) out.add(m.pid);
  for (const r of d.rings) out.add(r.pid);
  for (const pid of d.ringHolders ?? []) out.add(pid);
  for (const x of d.devices ?? []) out.add(x.pid);
  return [...out].sort((a, b) => a - b);
}
