// The typed events the collector reads from bpftrace. bpf/ scripts print them, collector/parse
// turns lines into these objects, the model consumes them, the store keeps them, the web shows them.
// Each kind's line, store columns, timeline lane, colour and sentence: event-kinds.ts (checked against
// these types at compile time).
//
// Numbers: timestamps are CLOCK_MONOTONIC nanoseconds (bpftrace `nsecs`, same clock as
// process.hrtime), kept as JS numbers (exact to 2^53 ns ≈ 104 days of uptime, ±2 ns after).
// User virtual addresses and pfns fit in a number. Kernel pointers (mm_struct *) are hex strings.

export interface EventBase {
  /** CLOCK_MONOTONIC ns at the probe. */
  tsNs: number;
  /** Thread group id (what userspace calls the pid). */
  pid: number;
  tid: number;
  comm: string;
}

/**
 * Where a long- or short-term page reference comes from. o_direct: GUP made by the block layer for an
 * O_DIRECT bio (kprobe mode names it; short-term, never a DMA buffer).
 */
export type PinSource = 'io_uring' | 'vfio' | 'iommufd' | 'vmsplice' | 'rdma' | 'o_direct' | 'gup';

/** One user buffer handed to a pinning syscall (io_uring_register buffers, vmsplice iovec), at syscall entry. */
export interface PinIovecEvent extends EventBase {
  kind: 'pin_iovec';
  source: PinSource;
  /** io_uring ring fd, or the pipe fd for vmsplice. */
  fd: number;
  /** io_uring_register opcode (IORING_REGISTER.*) with bit 31 cleared; 0 for vmsplice. */
  opcode: number;
  /** Buffer slot (io_uring: offset + i) or iovec index (vmsplice). */
  index: number;
  addr: number;
  len: number;
}

/** The return of a pinning/unpinning syscall; pairs with the pin_iovec events of the same tid. */
export interface PinResultEvent extends EventBase {
  kind: 'pin_result';
  source: PinSource;
  fd: number;
  opcode: number;
  /** Number of iovecs/slots the call named (nr_args, nr_segs, rsrc nr). */
  nr: number;
  /** Syscall return: 0 / bytes on success, -errno on failure. */
  ret: number;
  /** The caller's mm_struct pointer (hex), to attribute khugepaged events to this process. */
  mm: string;
}

/** VFIO_IOMMU_MAP_DMA / UNMAP_DMA (type1) or IOMMU_IOAS_MAP, decoded at syscall exit. */
export interface VfioDmaEvent extends EventBase {
  kind: 'vfio_dma';
  op: 'map' | 'unmap';
  fd: number;
  vaddr: number;
  iova: number;
  size: number;
  flags: number;
  ret: number;
}

export interface MadviseEvent extends EventBase {
  kind: 'madvise';
  addr: number;
  len: number;
  behavior: number;
  ret: number;
}

export interface MunmapEvent extends EventBase {
  kind: 'munmap';
  addr: number;
  len: number;
  ret: number;
}

export interface MremapEvent extends EventBase {
  kind: 'mremap';
  addr: number;
  oldLen: number;
  newLen: number;
  flags: number;
  /** The new_address argument (MREMAP_FIXED); the result address is `ret`. */
  newAddrArg: number;
  /** New address on success, -errno on failure. */
  ret: number;
}

/** mmap with MAP_FIXED (only those are emitted: they can replace an existing mapping). */
export interface MmapFixedEvent extends EventBase {
  kind: 'mmap_fixed';
  addr: number;
  len: number;
  prot: number;
  flags: number;
  fd: number;
  ret: number;
}

/** A new process with its own mm (fork/clone without CLONE_VM); pid is the parent. */
export interface ForkEvent extends EventBase {
  kind: 'fork';
  childPid: number;
  childComm: string;
  /** clone flags seen at syscall entry; -1 when unknown (e.g. kernel_clone from a kernel thread). */
  cloneFlags: number;
}

/** Thread group leader exit (sched_process_exit with pid == tid). */
export interface ExitEvent extends EventBase {
  kind: 'exit';
}

export interface UffdRegisterEvent extends EventBase {
  kind: 'uffd_register';
  op: 'register' | 'unregister';
  fd: number;
  addr: number;
  len: number;
  /** UFFDIO_REGISTER_MODE_* bits (0 for unregister). */
  mode: number;
  ret: number;
}

/** A user page fault inside a 2 MiB region holding a live pin (filtered in the kernel). */
export interface FaultEvent extends EventBase {
  kind: 'fault';
  addr: number;
  /** x86 error code: bit 0 present (protection), bit 1 write, bit 2 user. */
  errorCode: number;
  ip: number;
}

/** huge_memory:mm_khugepaged_collapse_file (khugepaged or MADV_COLLAPSE on file/shmem). */
export interface CollapseFileEvent extends EventBase {
  kind: 'collapse_file';
  mm: string;
  hpfn: number;
  index: number;
  addr: number;
  isShmem: boolean;
  filename: string;
  nr: number;
  result: number;
}

export interface ScanFileEvent extends EventBase {
  kind: 'scan_file';
  mm: string;
  pfn: number;
  filename: string;
  present: number;
  swap: number;
  result: number;
}

export interface ScanPmdEvent extends EventBase {
  kind: 'scan_pmd';
  mm: string;
  pfn: number;
  referenced: number;
  noneOrZero: number;
  status: number;
  unmapped: number;
}

export interface CollapseIsolateEvent extends EventBase {
  kind: 'collapse_isolate';
  pfn: number;
  noneOrZero: number;
  referenced: number;
  status: number;
}

export interface KsmMergeEvent extends EventBase {
  kind: 'ksm_merge';
  pfn: number;
  /** The KSM page merged into (0 when merging two fresh pages). */
  ksmPfn: number;
  mm: string;
  err: number;
}

/** vmscan:mm_vmscan_write_folio: reclaim writes a page out (swap or file). */
export interface WritebackEvent extends EventBase {
  kind: 'writeback';
  pfn: number;
  reclaimFlags: number;
}

/** migrate:set_migration_pte / remove_migration_pte. */
export interface MigratePteEvent extends EventBase {
  kind: 'migrate_pte';
  op: 'set' | 'remove';
  addr: number;
  pte: number;
  order: number;
}

/** close() of an fd the model tracks (pipes holding vmsplice references), filtered in the kernel. */
export interface CloseEvent extends EventBase {
  kind: 'close';
  fd: number;
}

// ---- kprobe mode (kernels with kprobes; bpf/kprobe) ----

/** pin_user_pages* / get_user_pages* return, with the pfn of every page obtained (up to the script's cap). */
export interface GupEvent extends EventBase {
  kind: 'gup';
  fn: string;
  addr: number;
  nrPages: number;
  /** FOLL_* as the kernel numbered them; decode with the kernel's numbering (FOLL_6_3 / FOLL_PRE_6_3). */
  gupFlags: number;
  /** Pages obtained, or -errno. */
  ret: number;
  pfns: number[];
  /** Who asked, from the syscall or driver entry in progress (io_uring_register, vmsplice, VFIO/iommufd ioctl, ib_umem_get); 'gup' otherwise. */
  source?: PinSource;
}

export interface UnpinEvent extends EventBase {
  kind: 'unpin';
  fn: string;
  pfn: number;
  npages: number;
}

/** do_wp_page outcome: copy (new page, wp_page_copy), reuse, or unshare (FAULT_FLAG_UNSHARE). */
export interface WpPageEvent extends EventBase {
  kind: 'wp_page';
  addr: number;
  outcome: 'copy' | 'reuse' | 'unshare';
  oldPfn: number;
  newPfn: number;
}

/** try_to_unmap_one / page_mkclean_one: the rmap walk visiting (mm, address) for a page. */
export interface RmapWalkEvent extends EventBase {
  kind: 'unmap' | 'mkclean';
  pfn: number;
  mm: string;
  addr: number;
}

export interface SplitPmdEvent extends EventBase {
  kind: 'split_pmd';
  mm: string;
  addr: number;
}

export interface MmuInvalidateEvent extends EventBase {
  kind: 'mmu_invalidate';
  mm: string;
  start: number;
  end: number;
  /** enum mmu_notifier_event value. */
  event: number;
}

/** __mmu_notifier_invalidate_range_end: the end of an mmu_invalidate window (same thread, same range). */
export interface MmuInvalidateEndEvent extends EventBase {
  kind: 'mmu_invalidate_end';
  mm: string;
  start: number;
  end: number;
  event: number;
  /** tsNs of the paired mmu_invalidate (start) line; 0 when the start was not seen. */
  startTsNs: number;
}

/**
 * copy_page_range at fork: one vma of the parent (pid/tid = the forking thread) copied into the child's mm.
 * Only vmas with an anon_vma (the others copy nothing); the child pid comes from the next fork event of the thread.
 */
export interface CopyPageRangeEvent extends EventBase {
  kind: 'copy_page_range';
  /** The parent's mm. */
  mm: string;
  childMm: string;
  start: number;
  end: number;
  /** vm_flags of the parent's vma (VM_* as this kernel numbers them). */
  vmFlags: number;
  /** Anonymous vma (no vm_ops); false for a private file mapping with anonymous (COWed) pages. */
  anon: boolean;
}

export interface AnonRmapMoveEvent extends EventBase {
  kind: 'anon_rmap_move';
  pfn: number;
  addr: number;
  order: number;
}

/** shmdt(2) of a SysV shm segment: its whole attached mapping goes (len 0: size unknown, see shm.bt). */
export interface ShmdtEvent extends EventBase {
  kind: 'shmdt';
  addr: number;
  len: number;
  ret: number;
}

/** The first io_uring_enter submitting on a buffer-holding ring after its process zapped something (uring_enter.bt). */
export interface UringEnterEvent extends EventBase {
  kind: 'uring_enter';
  fd: number;
  toSubmit: number;
  flags: number;
}

/** A ring set up with IORING_SETUP_SQPOLL: it submits without io_uring_enter (uring_enter.bt). */
export interface UringSqpollEvent extends EventBase {
  kind: 'uring_sqpoll';
  fd: number;
}

/** A shared-file or hugetlb mmap, with its filesystem magic, captured in the kernel (mmap_backing.bt). */
export interface MmapBackingEvent extends EventBase {
  kind: 'mmap_backing';
  addr: number;
  len: number;
  flags: number;
  /** Superblock magic of the file's filesystem; 0 for anonymous MAP_HUGETLB. */
  magic: number;
  name: string;
}

/** A pinning process called execve: its old address space (and what its pins were mapped at) is gone (exec.bt). */
export interface ExecEvent extends EventBase {
  kind: 'exec';
}

/** A process that printed mmap_backing lines exited: forget them (mmap_backing.bt). */
export interface MmapForgetEvent extends EventBase {
  kind: 'mmap_forget';
}

/** bpftrace reported lost perf-buffer events (not a kernel event; kept in the stream to mark windows). */
export interface LostEvent extends EventBase {
  kind: 'lost';
  count: number;
}

export type TraceEvent =
  | PinIovecEvent
  | PinResultEvent
  | VfioDmaEvent
  | MadviseEvent
  | MunmapEvent
  | MremapEvent
  | MmapFixedEvent
  | ForkEvent
  | ExitEvent
  | UffdRegisterEvent
  | FaultEvent
  | CollapseFileEvent
  | ScanFileEvent
  | ScanPmdEvent
  | CollapseIsolateEvent
  | KsmMergeEvent
  | WritebackEvent
  | MigratePteEvent
  | CloseEvent
  | ShmdtEvent
  | UringEnterEvent
  | UringSqpollEvent
  | MmapBackingEvent
  | MmapForgetEvent
  | ExecEvent
  | GupEvent
  | UnpinEvent
  | WpPageEvent
  | RmapWalkEvent
  | SplitPmdEvent
  | MmuInvalidateEvent
  | MmuInvalidateEndEvent
  | CopyPageRangeEvent
  | AnonRmapMoveEvent
  | LostEvent;

export type EventKind = TraceEvent['kind'];

// The kinds in table order, and each kind's line fields, colour, lane and sentence: event-kinds.ts.

/** An event once the collector has numbered it (events.seq in SQLite). */
export type SequencedEvent = TraceEvent & { seq: number };

/** Fields of an event other than the common ones, for storage as JSON and display. */
export function eventPayload(e: TraceEvent): Record<string, unknown> {
  const { tsNs: _t, pid: _p, tid: _i, comm: _c, kind: _k, ...rest } = e as TraceEvent & { seq?: number };
  delete (rest as { seq?: number }).seq;
  return rest;
}
