// Catalog entries of the scenarios that need a real DMA device: VFIO on QEMU's `edu` PCI device behind an
// emulated VT-d IOMMU, RDMA on soft-RoCE (rdma_rxe: rxe itself copies into the MR's pinned pages). This
// machine has neither, so their expectations were decided in the kprobe-kernel
// guests of `npm run test:kernels` (vm/run-guest.sh -D), on Debian 6.12 (DEVICE_EXPECTATIONS_KERNEL); the
// other kernels' differences are in test/kernels/expectations.ts. Each program proves its outcome through
// the device itself: edu writes the buffer's iova, then reads the iova back into a second DMA-mapped page;
// a second process RDMA-WRITEs the MR, then RDMA-READs it back.
import type { ScenarioSpec } from './spec.ts';

/** Where the device scenarios' expect/silent were decided (no edu or IOMMU on the development machine). */
export const DEVICE_EXPECTATIONS_KERNEL = '6.12 (QEMU guest: q35, intel-iommu, edu)';

export const DEVICE_SCENARIOS: readonly ScenarioSpec[] = [
  {
    name: 'vfio-clean',
    title: 'Control: VFIO DMA map, edu writes the buffer, unmap, munmap',
    description:
      'The well-behaved VFIO user. Four anonymous pages are mapped for DMA with VFIO_IOMMU_MAP_DMA (type1 pins ' +
      'them long-term through vfio_pin_pages_remote and maps them at iova 0x200000 in the IOMMU); QEMU\'s edu ' +
      'device DMAs 22 bytes into the 2nd page through the IOMMU; the process reads them and the device reads ' +
      'them back; then VFIO_IOMMU_UNMAP_DMA and munmap, in that order. Nothing moves a pinned page: a collector ' +
      'must report nothing. The false-positive check for every VFIO rule (seed 003: long-term pins by VFIO).',
    seenOnKernel: 'map granted; edu\'s write visible to the process and read back by the device; no pfn changes',
    seeds: ['003'],
    source: 'vfio-clean.c',
    needs: 'vfio-edu',
    expect: [],
    silent: true,
  },
  {
    name: 'vfio-dontneed',
    title: 'MADV_DONTNEED of a VFIO DMA-mapped page, then a CPU and a device write',
    description:
      'Four anonymous pages are VFIO DMA-mapped; while mapped, MADV_DONTNEED zaps the 2nd page and a CPU write ' +
      'faults a fresh page in at that address. The IOMMU still translates the iova to the old, pinned page: ' +
      'edu\'s DMA write lands there, the process reads its own bytes, and reading the iova back through the ' +
      'device returns the device\'s bytes. The divergence seed 000 describes for vfio ("any MADV_DONTNEED ... ' +
      'would make vfio expectation broken"), proven from both sides.',
    seenOnKernel: 'PTE cleared, pfn changes on the CPU write; edu wrote "written-by-the-device", the process reads "bbbb…", the device reads back "written-by-the-device"',
    seeds: ['000'],
    source: 'vfio-dontneed.c',
    needs: 'vfio-edu',
    expect: [
      { rule: 'pinned-range-zapped', addrFact: 'zap_addr', severity: 'high' },
      { rule: 'pin-pte-divergence', addrFact: 'zap_addr', severity: 'critical', confirmed: true },
    ],
    silent: false,
  },
  {
    name: 'vfio-munmap',
    title: 'munmap of one page of a buffer still VFIO DMA-mapped',
    description:
      'Four anonymous pages are VFIO DMA-mapped; while mapped, munmap removes the 2nd page. VFIO keeps the page ' +
      'pinned until VFIO_IOMMU_UNMAP_DMA and the iova still reaches it: edu writes it and reads the bytes back, ' +
      'while /proc/kpagecount shows no page table maps it. The pin outlives its mapping (pin-leak, seed 003) ' +
      'after the mapping was removed under it (seed 000). Nothing is mapped there afterwards, so there is no ' +
      'second page to diverge to.',
    seenOnKernel: 'page unmapped (pagemap 0, kpagecount 0) while mapped for DMA; edu writes it and reads back "written-by-the-device"',
    seeds: ['000', '003'],
    source: 'vfio-munmap.c',
    needs: 'vfio-edu',
    expect: [
      { rule: 'pinned-range-zapped', addrFact: 'unmap_addr', severity: 'high' },
      { rule: 'pin-leak', addrFact: 'unmap_addr', severity: 'warning' },
    ],
    silent: false,
  },
  {
    name: 'vfio-unmap-clean',
    title: 'Control: VFIO_IOMMU_UNMAP_DMA first, then munmap',
    description:
      'The right teardown order: the buffer is DMA-mapped, edu writes it (visible to the process), then ' +
      'VFIO_IOMMU_UNMAP_DMA drops the pins and the IOMMU mapping and only then munmap removes the pages. The ' +
      'device\'s read of the old iova afterwards is refused by the IOMMU (a DMAR fault in the kernel log) and ' +
      'returns nothing. Must stay silent: the munmap happens after the pins are gone (seed 003 pin lifetime, ' +
      'the counterpart of vfio-munmap).',
    seenOnKernel: 'device write visible; after UNMAP_DMA the device read of the iova faults ("PTE Read access is not set") and returns zeroes',
    seeds: ['003'],
    source: 'vfio-unmap-clean.c',
    needs: 'vfio-edu',
    expect: [],
    silent: true,
  },
  {
    name: 'vfio-fork',
    title: 'fork() without MADV_DONTFORK while a buffer is VFIO DMA-mapped',
    description:
      'Four anonymous pages are VFIO DMA-mapped, then the process forks without MADV_DONTFORK; the parent ' +
      'writes the buffer and edu DMAs into it. Since 5.9 fork copies DMA-pinned anonymous pages into the child ' +
      'at once (page_maybe_dma_pinned), so the parent keeps the pinned pages and sees the device\'s bytes, while ' +
      'the child has its own copy and loses the device\'s view. Before 5.9 the parent\'s write could COW away ' +
      'from the pinned page instead (seed 000). A collector must warn about the fork and see no divergence.',
    seenOnKernel: 'parent pfn unchanged by its write, device write visible to the parent and read back; child\'s page a copy at fork, device write invisible to it',
    seeds: ['000'],
    source: 'vfio-fork.c',
    needs: 'vfio-edu',
    expect: [{ rule: 'fork-with-pins', addrFact: 'buf', severity: 'warning' }],
    silent: false,
  },
  {
    name: 'vfio-thp-munmap',
    title: 'A THP DMA-mapped whole, then half of it unmapped (split under the pin)',
    description:
      'Seed 000\'s situation: a 2 MiB-aligned buffer backed by one transparent huge page is VFIO DMA-mapped ' +
      'whole, then its 2nd half is unmapped while still mapped for DMA. The huge PMD is split under the pin ' +
      '(__split_huge_pmd); the kept half still maps the same pfns and sees edu\'s writes, the unmapped half ' +
      'stays pinned and reachable by the device only: edu writes it and reads the bytes back (a 256-page pin ' +
      'leak that no process can see).',
    seenOnKernel: 'THP pfn 512-aligned, 1st half keeps its pfns after the split; edu\'s write visible there; 2nd half written and read back by the device',
    seeds: ['000'],
    source: 'vfio-thp-munmap.c',
    needs: 'vfio-edu',
    expect: [
      { rule: 'pinned-range-zapped', addrFact: 'unmap_addr', severity: 'high' },
      { rule: 'pin-leak', addrFact: 'unmap_addr', severity: 'warning' },
    ],
    silent: false,
  },
  {
    name: 'rdma-clean',
    title: 'Control: RDMA MR registered, RDMA WRITE and READ by a second process, dereg',
    description:
      'The well-behaved RDMA user on soft-RoCE. Four anonymous pages are registered with ibv_reg_mr (ib_umem_get ' +
      'pins them with FOLL_LONGTERM); a second process, connected by an RC queue pair over rxe\'s loopback, ' +
      'RDMA-WRITEs 22 bytes into the 2nd page and RDMA-READs them back; rxe copies into and out of the pinned ' +
      'pages itself. The process sees the bytes; then ibv_dereg_mr and munmap. Must stay silent (seed 003: ' +
      'long-term pins by RDMA).',
    seenOnKernel: 'MR granted; the RDMA WRITE is visible to the process and read back by RDMA READ (wc status 0); no pfn changes',
    seeds: ['003'],
    source: 'rdma-clean.c',
    needs: 'rdma-rxe',
    expect: [],
    silent: true,
  },
  {
    name: 'rdma-dontneed',
    title: 'MADV_DONTNEED of a registered MR page, then a CPU write and an RDMA WRITE',
    description:
      'Four anonymous pages are registered as an MR; MADV_DONTNEED zaps the 2nd page and a CPU write faults a ' +
      'fresh page in. The MR still holds the old page: the second process\'s RDMA WRITE lands there, the process ' +
      'reads its own bytes, and an RDMA READ returns the device\'s. The application-caused divergence of seed ' +
      '000 with an RDMA NIC as the device (seed 003 on long-term GUP by RDMA).',
    seenOnKernel: 'PTE cleared, pfn changes on the CPU write; RDMA WRITE "written-by-the-device", the process reads "bbbb…", RDMA READ returns "written-by-the-device"',
    seeds: ['000', '003'],
    source: 'rdma-dontneed.c',
    needs: 'rdma-rxe',
    expect: [
      { rule: 'pinned-range-zapped', addrFact: 'zap_addr', severity: 'high' },
      { rule: 'pin-pte-divergence', addrFact: 'zap_addr', severity: 'critical', confirmed: true },
    ],
    silent: false,
  },
  {
    name: 'rdma-dereg-clean',
    title: 'Control: RDMA WRITE, ibv_dereg_mr, then munmap',
    description:
      'The right teardown order for an MR: an RDMA WRITE into it (visible), ibv_dereg_mr (ib_umem_release unpins ' +
      'the pages), then munmap. An RDMA READ with the old rkey afterwards is refused by rxe (remote access ' +
      'error): nothing reaches the memory any more. Must stay silent (seed 003 pin lifetime).',
    seenOnKernel: 'write visible; after dereg the READ with the old rkey completes with wc status 10 (remote access error; 5.10: never completes)',
    seeds: ['003'],
    source: 'rdma-dereg-clean.c',
    needs: 'rdma-rxe',
    expect: [],
    silent: true,
  },
  {
    name: 'rdma-fork',
    title: 'fork() without MADV_DONTFORK / ibv_fork_init while an MR is registered',
    description:
      'Four anonymous pages are registered as an MR, then the process forks without MADV_DONTFORK or ' +
      'ibv_fork_init; the parent writes the buffer and the second process RDMA-WRITEs it. Since 5.9 fork copies ' +
      'DMA-pinned anonymous pages into the child at once, so the parent keeps the MR\'s pages and sees the ' +
      'device\'s bytes while the child loses the device\'s view; before 5.9 the parent\'s write could COW away ' +
      'from the pinned page (seed 000, the reason ibv_fork_init exists). A collector must warn about the fork.',
    seenOnKernel: 'parent pfn unchanged by its write, RDMA WRITE visible to the parent and read back; the child has its own copy',
    seeds: ['000'],
    source: 'rdma-fork.c',
    needs: 'rdma-rxe',
    expect: [{ rule: 'fork-with-pins', addrFact: 'buf', severity: 'warning' }],
    silent: false,
  },
];
