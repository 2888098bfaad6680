// The scenario catalog: one small C reproducer per hazard pinwatch watches for, with what each one must
// make the collector report ON THE KERNEL THE EXPECTATIONS WERE DECIDED ON (6.18, see EXPECTATIONS_KERNEL).
// The expectations were decided by running every program as root on that kernel and reading pagemap and
// the huge_memory tracepoints; scenarios/README.md has the conventions (fact lines, timing, exit codes).
import { DEVICE_SCENARIOS } from './catalog-devices.ts';
import type { ScenarioSpec } from './spec.ts';

/** The kernel the `expect` / `silent` data were decided on. */
export const EXPECTATIONS_KERNEL = '6.18';

export const SCENARIOS: readonly ScenarioSpec[] = [
  {
    name: 'uring-clean',
    title: 'Control: io_uring buffer registered, used, unregistered',
    description:
      'The well-behaved control. Four anonymous pages are registered as an io_uring fixed buffer ' +
      '(IORING_REGISTER_BUFFERS pins them with FOLL_PIN | FOLL_LONGTERM | FOLL_WRITE), the "device" writes ' +
      'into them with IORING_OP_READ_FIXED and the process reads the bytes back, then the buffer is ' +
      'unregistered before exit. Nothing moves a pinned page, so a collector must report nothing. ' +
      'It is the false-positive check for every io_uring rule (seed 003 is where FOLL_PIN comes from).',
    seenOnKernel: 'registration granted; the device write is visible; no pfn changes',
    seeds: ['003'],
    source: 'uring-clean.c',
    expect: [],
    silent: true,
  },
  {
    name: 'uring-dontneed',
    title: 'MADV_DONTNEED of a registered io_uring buffer page, then a write',
    description:
      'Four anonymous pages are registered as an io_uring fixed buffer; while registered, MADV_DONTNEED ' +
      'zaps the 2nd page (zap_page_range: the PTE goes, the pin keeps the page) and a CPU write faults in ' +
      'a fresh zeroed page at the same address. The device holds the old pfn, the page table maps the new ' +
      'one: a real pin/PTE divergence, and a READ_FIXED afterwards lands in the page the process no longer ' +
      'sees. This is the application-caused divergence of seed 000 that no kernel fix removes.',
    seenOnKernel:
      'PTE cleared by MADV_DONTNEED, pfn changes on the write (e.g. 0x178b04 -> 0x18bcc7); device write invisible to the process',
    seeds: ['000'],
    source: 'uring-dontneed.c',
    expect: [
      { rule: 'pinned-range-zapped', addrFact: 'zap_addr', severity: 'high' },
      { rule: 'pin-pte-divergence', addrFact: 'zap_addr', severity: 'critical', confirmed: true },
    ],
    silent: false,
  },
  {
    name: 'uring-munmap',
    title: 'munmap of one page of a registered io_uring buffer',
    description:
      'Four anonymous pages are registered as an io_uring fixed buffer; while registered, munmap removes ' +
      'the 2nd page. The pin keeps the page allocated although no page table maps it any more ' +
      '(/proc/kpagecount 0), and a READ_FIXED into that part of the buffer still succeeds: the device ' +
      'writes into a page nobody can read. The pin outlives its mapping (pin-leak, seed 003) after the ' +
      'mapping was removed under it (seed 000). Nothing is mapped there afterwards, so there is no second ' +
      'page to diverge to.',
    seenOnKernel: 'page unmapped (pagemap 0, mapcount 0) while pinned; READ_FIXED into it returns 22 bytes written',
    seeds: ['000', '003'],
    source: 'uring-munmap.c',
    expect: [
      { rule: 'pinned-range-zapped', addrFact: 'unmap_addr', severity: 'high' },
      { rule: 'pin-leak', addrFact: 'unmap_addr', severity: 'warning' },
    ],
    silent: false,
  },
  {
    name: 'uring-fork',
    title: 'fork() with a registered io_uring buffer and no MADV_DONTFORK',
    description:
      'Four anonymous pages are registered as an io_uring fixed buffer, then the process forks without ' +
      'having marked the buffer MADV_DONTFORK; the child writes the buffer and exits, the parent writes it ' +
      'too. Since 5.9 fork copies pinned anonymous pages into the child at once (copy_present_page, ' +
      'folio_maybe_dma_pinned), so the parent keeps the pinned pages; before 5.9 the parent\'s write could ' +
      'COW away from the pinned page (seed 000). A collector must warn about the fork but, on a current ' +
      'kernel, see no divergence.',
    seenOnKernel: 'child gets its own copy at fork (different pfn before it writes); parent pfns unchanged; device write visible to the parent',
    seeds: ['000'],
    source: 'uring-fork.c',
    expect: [{ rule: 'fork-with-pins', addrFact: 'buf', severity: 'warning' }],
    silent: false,
  },
  {
    name: 'uring-fork-dontfork',
    title: 'fork() with a registered io_uring buffer marked MADV_DONTFORK',
    description:
      'The right way to fork with a DMA buffer: the buffer is marked MADV_DONTFORK (VM_DONTCOPY) before ' +
      'io_uring pins it, so the child does not get the range at all (it checks with msync: ENOMEM) and the ' +
      'parent keeps its pinned pages. Seed 000 names MADV_DONTFORK as the user-space answer to fork + DMA. ' +
      'Must stay silent: fork-with-pins only concerns ranges not marked DONTFORK/WIPEONFORK.',
    seenOnKernel: 'range absent in the child; parent pfns unchanged; device write visible',
    seeds: ['000'],
    source: 'uring-fork-dontfork.c',
    expect: [],
    silent: true,
  },
  {
    name: 'uring-mremap',
    title: 'mremap(MREMAP_FIXED) of a whole registered io_uring buffer',
    description:
      'Four anonymous pages are registered as an io_uring fixed buffer, then moved whole with ' +
      'mremap(MREMAP_MAYMOVE | MREMAP_FIXED) to a reserved address. move_page_tables moves the PTEs, so the ' +
      'pinned pages follow: the new address maps exactly the pinned pfns and a READ_FIXED (which still names ' +
      'the old, registered address) shows up at the new one. The old range is gone (the mapping of a pinned ' +
      'range moved with its pages; seed 000 warns that mremap breaks a DMA user whose pin does not follow the ' +
      'pages), and nothing diverged: the pin registry follows the pages to the new address ' +
      'and a collector must stay silent, at the old address and the new.',
    seenOnKernel: '4 of 4 pinned pfns mapped at the new address; old range unmapped; device write visible at the new address',
    seeds: ['000'],
    source: 'uring-mremap.c',
    expect: [],
    silent: true,
  },
  {
    name: 'shmem-uffd-collapse',
    title: 'MADV_COLLAPSE of a shmem range with holes and a MISSING userfaultfd',
    description:
      'A 2 MiB-aligned memfd (shmem) range, half written and half holes, is registered with a userfaultfd ' +
      'for MISSING faults, then MADV_COLLAPSE (25) asks for a huge page. Collapsing would fill the holes ' +
      'with zeroes behind the userfaultfd\'s back, so the missing-fault events userspace relies on would ' +
      'never come (seed 004). Since 6.4 collapse_file checks userfaultfd_missing() and rolls back ' +
      '(SCAN_EXCEED_NONE_PTE, EBUSY). After UFFDIO_UNREGISTER the same MADV_COLLAPSE succeeds and the range ' +
      'is one huge page. MADV_COLLAPSE works with shmem_enabled=never (only deny forbids it): no sysfs change.',
    seenOnKernel:
      'armed: collapse_file result 5 (exceed_none_pte), EBUSY, and the 256 populated PTEs are left unmapped (same pfns on refault); ' +
      'unarmed: collapse_file result 10 (pte_mapped_hugepage, MADV_COLLAPSE\'s success code), 512 pages present, THP',
    seeds: ['004'],
    source: 'shmem-uffd-collapse.c',
    expect: [{ rule: 'collapse-uffd-hole', addrFact: 'range_start', severity: 'info' }],
    silent: false,
  },
  {
    name: 'collapse-pinned-anon',
    title: 'MADV_COLLAPSE of an anonymous range with io_uring-pinned pages',
    description:
      'A 2 MiB-aligned anonymous range of 512 small pages, of which pages 16-19 are registered as an ' +
      'io_uring fixed buffer, is asked to collapse with MADV_COLLAPSE. A collapse copies every page into a ' +
      'new huge page; a pinned page cannot be replaced (the device would keep the old one), so ' +
      'hpage_collapse_scan_pmd sees the extra references (is_refcount_suitable) and refuses with ' +
      'SCAN_PAGE_COUNT, EAGAIN. After unregistering, the same MADV_COLLAPSE succeeds. Seed 003: pins must ' +
      'be told apart from ordinary references. The anomaly address is the pinned page the scan refused ' +
      '(the scan_pmd tracepoint carries its pfn), not the range start.',
    seenOnKernel:
      'pinned: scan_pmd status 14 (not_suitable_page_count) with pfn = the first pinned page, EAGAIN, pfns unchanged; ' +
      'unpinned: scan_pmd status 1, collapsed into a THP',
    seeds: ['003'],
    source: 'collapse-pinned-anon.c',
    expect: [{ rule: 'collapse-blocked-by-pin', addrFact: 'pinned_addr', severity: 'info' }],
    silent: false,
  },
  {
    name: 'uring-file-shared',
    title: 'io_uring registration of a MAP_SHARED mapping of an ext4 file',
    description:
      'io_uring tries to register a writable MAP_SHARED mapping of a regular file on a block filesystem ' +
      '(/var/tmp, or PINWATCH_FILE_DIR; tmpfs is rejected). A long-term writable pin on page-cache pages ' +
      'breaks writeback (stable pages, page_mkwrite, the ext4 BUG_ON of seed 003). Since 6.5 GUP refuses ' +
      'FOLL_LONGTERM on such mappings (writable_file_mapping_allowed) and registration fails with EFAULT; ' +
      'before 6.5 io_uring refused such buffers itself after pinning them (EOPNOTSUPP: only anonymous, shmem and ' +
      'hugetlbfs memory; seen on 5.10 and 6.1), while other long-term pinners (RDMA, VFIO) were granted and the ' +
      'hazard was live. The program exits 0 on either refusal, 1 if granted on >= 6.5.',
    seenOnKernel: 'IORING_REGISTER_BUFFERS refused with EFAULT (errno 14) on ext4',
    seeds: ['003'],
    source: 'uring-file-shared.c',
    expect: [{ rule: 'longterm-pin-file-backed', addrFact: 'buf', severity: 'info' }],
    silent: false,
  },
  {
    name: 'uring-memfd',
    title: 'io_uring registration of a MAP_SHARED memfd (shmem) mapping',
    description:
      'io_uring registers a writable MAP_SHARED mapping of a memfd. Shmem has no writeback, so the 6.5 ' +
      'refusal of long-term pins on file-backed mappings does not apply and registration is granted ' +
      '(seed 003: the file-backed hazard is writeback). The buffer is used by the device and released ' +
      'cleanly. Must stay silent: a collector has to recognise the backing ("/memfd:... (deleted)" in ' +
      '/proc/PID/maps) as shmem, not as a file.',
    seenOnKernel: 'registration granted; device write visible; no pfn changes',
    seeds: ['003'],
    source: 'uring-memfd.c',
    expect: [],
    silent: true,
  },
  {
    name: 'vmsplice-pageout',
    title: 'vmsplice a page into a pipe, MADV_PAGEOUT it, read it, write it',
    description:
      'Seed 002\'s reproducer path, with a plain GUP reference (FOLL_GET) instead of a pin: one anonymous ' +
      'page is vmspliced into a pipe nobody reads, MADV_PAGEOUT (21) asks reclaim to swap it out, then the ' +
      'process reads it (refault) and writes it. Before the 5.19 COW fixes try_to_unmap lost the page\'s ' +
      'exclusivity and the write copied it (do_wp_page): the pipe returns the old bytes, the process sees the ' +
      'new ones. The program reports which outcome happened (not-unmapped, unmapped-same-page, diverged) and ' +
      'does not fail on any; reclaim can only unmap an anonymous page when swap is configured. Kept for the ' +
      'kprobe / old-kernel VM work.',
    seenOnKernel:
      'no swap here: MADV_PAGEOUT leaves the page mapped, same pfn, the pipe returns the new bytes ("not unmapped"); ' +
      'with a swap file: pagemap swapped, the refault maps the same pfn, the write reuses it, the pipe returns the new bytes',
    seeds: ['002'],
    source: 'vmsplice-pageout.c',
    expect: [],
    silent: false,
  },
  {
    name: 'odirect-read',
    title: 'Control: an O_DIRECT read into anonymous memory (short-term pins)',
    description:
      'A file on a block filesystem (/var/tmp, or PINWATCH_FILE_DIR) is read with O_DIRECT into four anonymous ' +
      'pages. The block layer pins the user pages only for the bio (bio_iov_iter_get_pages: FOLL_PIN since 6.x, ' +
      'a FOLL_GET reference before) and drops them when the read completes: the disk DMAs straight into the ' +
      'process\'s pages, which is what seed 002 calls the O_DIRECT hazard when it races with fork or reclaim. ' +
      'A correct program: short-term pins are not DMA buffers, a collector must not track them as such and must ' +
      'stay silent (kprobe mode names the GUP calls o_direct).',
    seenOnKernel: 'ext4: 16384 bytes read, the disk\'s bytes visible, no pfn changes',
    seeds: ['002'],
    source: 'odirect-read.c',
    expect: [],
    silent: true,
  },
  ...DEVICE_SCENARIOS,
];

/** The spec of one scenario, or an error naming the known ones. */
export function getScenario(name: string): ScenarioSpec {
  const spec = SCENARIOS.find((s) => s.name === name);
  if (!spec) {
    throw new Error(`unknown scenario '${name}'; known: ${SCENARIOS.map((s) => s.name).join(', ')}`);
  }
  return spec;
}
