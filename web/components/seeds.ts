// The five mailing-list threads the anomaly rules come from (ids '000'–'004': title, authors, year, lesson), so an
// anomaly's explanation can name its source thread rather than a bare number.
export interface SeedThread {
  id: string;
  title: string;
  who: string;
  year: number;
  lesson: string;
}

export const SEED_THREADS: Readonly<Record<string, SeedThread>> = {
  '000': {
    id: '000',
    title: '[BUG] vfio device assignment regression with THP ref counting redesign',
    who: 'Andrea Arcangeli, Kirill A. Shutemov',
    year: 2016,
    lesson:
      'A GUP pin does not keep a page mapped: after split_huge_pmd + fork + partial munmap, do_wp_page may reuse or copy the wrong page; MADV_DONTNEED, fork and mremap break a DMA user’s view.',
  },
  '001': {
    id: '001',
    title: '[RFC PATCH V2 5/5] vhost: access vq metadata through kernel virtual address',
    who: 'Jason Wang, Michael S. Tsirkin',
    year: 2019,
    lesson:
      'Secondary MMUs (vhost, KVM) must hear through mmu notifiers when a page is write-protected (KSM, page_mkclean) or its pfn changes; long-term pins are what mmu notifiers exist to avoid.',
  },
  '002': {
    id: '002',
    title: 'COW fixes part 3: reliable GUP R/W FOLL_GET of anonymous pages',
    who: 'David Hildenbrand, Jason Gunthorpe',
    year: 2022,
    lesson:
      'O_DIRECT + swap-out: try_to_unmap loses exclusivity, refault + write COWs the page, the DMA lands in a page the process no longer maps.',
  },
  '003': {
    id: '003',
    title: 'put_user_page*(): tracking get_user_pages() pages',
    who: 'John Hubbard, Ira Weiny (quoting Dave Chinner)',
    year: 2019,
    lesson:
      'Long-term GUP on file-backed pages breaks writeback (stable pages, ->page_mkwrite, the ext4 BUG_ON); pins must be tracked apart from ordinary references — FOLL_PIN / unpin_user_page came out of this.',
  },
  '004': {
    id: '004',
    title: 'khugepaged: skip shmem with userfaultfd',
    who: 'David Stevens, Peter Xu',
    year: 2023,
    lesson:
      'collapse_file filling holes in shmem that a userfaultfd registered for missing faults suppresses the events userspace expects.',
  },
};
