// Kernel ABI constants the product decodes. One place, named, with the source of each number,
// so parser, model, rules and UI print the same words. x86-64 UAPI unless noted.

/** io_uring_register(2) opcodes (include/uapi/linux/io_uring.h). Bit 31 (6.3+) is IORING_REGISTER_USE_REGISTERED_RING. */
export const IORING_REGISTER = {
  BUFFERS: 0,
  UNREGISTER_BUFFERS: 1,
  BUFFERS2: 15,
  BUFFERS_UPDATE: 16,
  CLONE_BUFFERS: 30,
} as const;
export const IORING_REGISTER_USE_REGISTERED_RING = 0x80000000;

/** madvise(2) behaviours (include/uapi/asm-generic/mman-common.h). */
export const MADV = {
  NORMAL: 0,
  DONTNEED: 4,
  FREE: 8,
  REMOVE: 9,
  DONTFORK: 10,
  DOFORK: 11,
  MERGEABLE: 12,
  UNMERGEABLE: 13,
  HUGEPAGE: 14,
  NOHUGEPAGE: 15,
  WIPEONFORK: 18,
  KEEPONFORK: 19,
  COLD: 20,
  PAGEOUT: 21,
  POPULATE_READ: 22,
  POPULATE_WRITE: 23,
  DONTNEED_LOCKED: 24,
  COLLAPSE: 25,
  GUARD_INSTALL: 102,
  GUARD_REMOVE: 103,
} as const;
export type MadvName = keyof typeof MADV;
const madvByValue = new Map<number, MadvName>(Object.entries(MADV).map(([k, v]) => [v, k as MadvName]));
export function madvName(behavior: number): string {
  return madvByValue.get(behavior) ?? `MADV_${behavior}`;
}
/** Behaviours that remove the mapping of a range (the PTEs go; the next touch maps a new page). */
export const MADV_ZAPPING: ReadonlySet<number> = new Set([MADV.DONTNEED, MADV.FREE, MADV.REMOVE, MADV.DONTNEED_LOCKED, MADV.GUARD_INSTALL]);
/**
 * Behaviours that MAY move pages without removing the mapping for sure: reclaim (try_to_unmap skips FOLL_PIN
 * pages, not FOLL_GET ones), KSM, collapse. The model treats PAGEOUT (and FREE, which is lazy) as advisory
 * zaps: they count only when pagemap, read at once, shows the pinned page gone.
 */
export const MADV_MAY_MOVE: ReadonlySet<number> = new Set([MADV.PAGEOUT, MADV.COLD, MADV.MERGEABLE, MADV.COLLAPSE, MADV.HUGEPAGE]);

/** mmap(2) flags. */
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_FIXED = 0x10;
export const MAP_FIXED_NOREPLACE = 0x100000;
export const MAP_HUGETLB = 0x40000;

/** mremap(2) flags. */
export const MREMAP_MAYMOVE = 1;
export const MREMAP_FIXED = 2;
export const MREMAP_DONTUNMAP = 4;

/** clone(2) flags that decide whether a new task gets its own copy of the mm. */
export const CLONE_VM = 0x100;
export const CLONE_VFORK = 0x4000;
export const CLONE_THREAD = 0x10000;

/** ioctl(2) commands decoded (include/uapi/linux/vfio.h, userfaultfd.h, iommufd.h). */
export const IOCTL = {
  VFIO_IOMMU_MAP_DMA: 0x3b71,
  VFIO_IOMMU_UNMAP_DMA: 0x3b72,
  IOMMU_IOAS_MAP: 0x3b85,
  UFFDIO_REGISTER: 0xc020aa00,
  UFFDIO_UNREGISTER: 0x8010aa01,
} as const;
/** UFFDIO_REGISTER modes. */
export const UFFDIO_REGISTER_MODE_MISSING = 1;
export const UFFDIO_REGISTER_MODE_WP = 2;
export const UFFDIO_REGISTER_MODE_MINOR = 4;

/** x86 page fault error code bits (arch/x86/include/asm/trap_pf.h). */
export const PF_PROT = 1; // the page was present: protection fault
export const PF_WRITE = 2;
export const PF_USER = 4;

/** FOLL_* flags: renumbered in 6.3 (bpf-portability.md). */
export const FOLL_PRE_6_3 = { WRITE: 0x1, GET: 0x4, LONGTERM: 0x10000, PIN: 0x40000 } as const;
export const FOLL_6_3 = { WRITE: 0x1, GET: 0x2, LONGTERM: 0x100, PIN: 0x80000 } as const;

/** khugepaged scan/collapse result codes (include/trace/events/huge_memory.h SCAN_STATUS, 6.18). */
export const SCAN_RESULT_NAMES: readonly string[] = [
  'failed', 'succeeded', 'pmd_null', 'pmd_none', 'page_pmd_mapped', 'exceed_none_pte', 'exceed_swap_pte',
  'exceed_shared_pte', 'pte_non_present', 'pte_uffd_wp', 'pte_mapped_hugepage', 'lack_referenced_page',
  'page_null', 'scan_aborted', 'not_suitable_page_count', 'page_not_in_lru', 'page_locked', 'page_not_anon',
  'page_compound', 'no_process_for_page', 'vma_null', 'vma_check_failed', 'not_suitable_address_range',
  'could_not_delete_page_from_lru', 'alloc_huge_page_failed', 'ccgroup_charge_failed', 'truncated',
  'page_has_private', 'store_failed', 'copy_poisoned_page', 'page_filled',
];
export const SCAN_SUCCEEDED = 1;
export const SCAN_EXCEED_NONE_PTE = 5;
/** 6.18's number; other kernels number it differently: compare names (scanResultName with the release). */
export const SCAN_NOT_SUITABLE_PAGE_COUNT = 14;

/**
 * 6.1-6.17: SCAN_PAGE_RO ("no_writable_page") follows pte_mapped_hugepage; 6.18 dropped it, so every later
 * code moved down by one (seen: MADV_COLLAPSE on a pinned range gives scan_pmd status 15 on 6.1 and 6.12).
 */
const SCAN_RESULT_NAMES_6_1 = [...SCAN_RESULT_NAMES.slice(0, 11), 'no_writable_page', ...SCAN_RESULT_NAMES.slice(11)];
/** Before 6.1 (no MADV_COLLAPSE): no pmd_none / page_pmd_mapped / pte_mapped_hugepage (5.10's print fmt). */
const SCAN_RESULT_NAMES_PRE_6_1 = [
  'failed', 'succeeded', 'pmd_null', 'exceed_none_pte', 'exceed_swap_pte', 'exceed_shared_pte', 'pte_non_present',
  'pte_uffd_wp', 'no_writable_page', 'lack_referenced_page', 'page_null', 'scan_aborted', 'not_suitable_page_count',
  'page_not_in_lru', 'page_locked', 'page_not_anon', 'page_compound', 'no_process_for_page', 'vma_null',
  'vma_check_failed', 'not_suitable_address_range', 'page_swap_cache', 'could_not_delete_page_from_lru',
  'alloc_huge_page_failed', 'ccgroup_charge_failed', 'truncated', 'page_has_private',
];

let scanNamesRelease = '';
let scanNames: readonly string[] = SCAN_RESULT_NAMES;
/** The khugepaged result names of a kernel release (6.18's when the release does not parse). Cached per release. */
export function scanResultNames(kernelRelease: string): readonly string[] {
  if (kernelRelease !== scanNamesRelease) {
    const m = /^(\d+)\.(\d+)/.exec(kernelRelease);
    const v = m ? Number(m[1]) * 1000 + Number(m[2]) : Infinity;
    scanNames = v >= 6018 ? SCAN_RESULT_NAMES : v >= 6001 ? SCAN_RESULT_NAMES_6_1 : SCAN_RESULT_NAMES_PRE_6_1;
    scanNamesRelease = kernelRelease;
  }
  return scanNames;
}

/** A khugepaged result code's name; numbered as on `kernelRelease` when given, else as on 6.18. */
export function scanResultName(code: number, kernelRelease?: string): string {
  const names = kernelRelease === undefined ? SCAN_RESULT_NAMES : scanResultNames(kernelRelease);
  return names[code] ?? `result_${code}`;
}

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 4096;
export const PMD_SHIFT = 21; // 2 MiB regions: the unit of the in-kernel fault filter
export const PMD_SIZE = 1 << PMD_SHIFT;

/** Linux errno values the UI names. */
export const ERRNO_NAMES: Readonly<Record<number, string>> = {
  1: 'EPERM', 2: 'ENOENT', 3: 'ESRCH', 4: 'EINTR', 9: 'EBADF', 11: 'EAGAIN', 12: 'ENOMEM', 13: 'EACCES',
  14: 'EFAULT', 16: 'EBUSY', 17: 'EEXIST', 22: 'EINVAL', 38: 'ENOSYS', 95: 'EOPNOTSUPP',
};
export function errnoName(ret: number): string {
  return ret < 0 ? (ERRNO_NAMES[-ret] ?? `errno ${-ret}`) : String(ret);
}
