// Stable colours per event kind and per severity, so a kind has the same colour in every chart and timeline.
import type { Severity } from '../../schema/anomalies.ts';

const KIND_COLORS: Record<string, string> = {
  pin_iovec: '#4cc38a',
  pin_result: '#2f9e6e',
  vfio_dma: '#39b8a8',
  madvise: '#f08a3c',
  munmap: '#e05577',
  mremap: '#d6d36a',
  mmap_fixed: '#9ad66e',
  fork: '#b07cf0',
  exit: '#6c7fd0',
  uffd_register: '#c8a2ff',
  fault: '#5fb3ff',
  collapse_file: '#e5b33d',
  scan_file: '#c9a040',
  scan_pmd: '#c49a6c',
  collapse_isolate: '#a88a40',
  ksm_merge: '#ff7eb6',
  writeback: '#9aa7b8',
  migrate_pte: '#7ad0e6',
  close: '#6c7888',
  gup: '#4cc38a',
  unpin: '#3f8f6a',
  wp_page: '#ff5566',
  unmap: '#ff8f66',
  mkclean: '#e6c86c',
  split_pmd: '#d0b050',
  mmu_invalidate: '#70a0ff',
  mmu_invalidate_end: '#5080d0',
  copy_page_range: '#9060d0',
  anon_rmap_move: '#a0c0ff',
  lost: '#ff3344',
};

export function kindColor(kind: string): string {
  return KIND_COLORS[kind] ?? '#8b96a5';
}

export const SEVERITY_COLORS: Record<Severity, string> = {
  critical: '#ff5566',
  high: '#f08a3c',
  warning: '#e5b33d',
  info: '#7a9cc6',
};
