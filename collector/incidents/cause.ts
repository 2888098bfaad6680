// What an event did to a pin, in the words an incident title starts with ("MAP_FIXED replaced"). Read from the
// triggering event itself (kind and its arguments), never from the anomalies' prose.
import type { SequencedEvent, TraceEvent } from '../../schema/events.ts';
import { madvName } from '../../schema/kernel.ts';

/** Events that create pins: cited by every anomaly as "the registration", never the cause of one. */
const REGISTRATION_KINDS: ReadonlySet<string> = new Set(['pin_iovec', 'pin_result', 'gup']);

export function isRegistration(e: Pick<TraceEvent, 'kind'> & Partial<{ op: string }>): boolean {
  return REGISTRATION_KINDS.has(e.kind) || (e.kind === 'vfio_dma' && e.op === 'map');
}

/** "MAP_FIXED replaced", "MADV_DONTNEED zapped", …; null for kinds that are no cause (registrations). */
export function causeLabel(e: SequencedEvent | TraceEvent): string | null {
  switch (e.kind) {
    case 'mmap_fixed':
      return 'MAP_FIXED replaced';
    case 'munmap':
      return 'munmap removed';
    case 'madvise':
      return `MADV_${madvName(e.behavior)} zapped`;
    case 'mremap':
      return 'mremap moved';
    case 'fork':
      return 'fork shared';
    case 'exit':
      return 'exit orphaned';
    case 'close':
      return 'close left';
    case 'wp_page':
      return 'copy-on-write replaced';
    case 'fault':
      return 'a write fault replaced';
    case 'ksm_merge':
      return 'KSM merged';
    case 'migrate_pte':
      return 'migration moved';
    case 'writeback':
      return 'reclaim wrote out';
    case 'unmap':
      return 'try_to_unmap unmapped';
    case 'mkclean':
      return 'page_mkclean write-protected';
    case 'split_pmd':
      return 'a huge PMD split remapped';
    case 'collapse_file':
    case 'scan_pmd':
    case 'collapse_isolate':
      return 'a THP collapse touched';
    case 'mmu_invalidate':
      return 'an MMU notifier invalidated';
    case 'uffd_register':
      return 'userfaultfd registered over';
    case 'vfio_dma':
      return e.op === 'unmap' ? 'VFIO unmap released' : null;
    case 'unpin':
      return 'unpin released';
    default:
      return null;
  }
}
