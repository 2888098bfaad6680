// vmsplice(2) of user pages into a pipe as a pin source. Identity: the pipe fd (one pin per spliced iovec, cut
// to the bytes the call returned). Released by the pipe's close (or exit): the read that really drops the
// references is not traced. NOT a DMA pin: the pipe holds a reference (FOLL_GET, read-only) to
// the pages as they were; the reader later copies them out. Unmapping, MADV_DONTNEED-ing or re-mmapping the
// range afterwards is legal — the pipe keeps the old pages and the reader sees the data as it was (what the
// kernel's own mm/cow.c checks). The hazard runs the other way: the pipe (or a fork child) seeing
// modifications it must not see — a COW that breaks the wrong way after fork (CVE-2020-29374, fixed by 5.8's
// GUP rework and completely by 5.19's PG_anon_exclusive), or reclaim taking the page and a later write
// copying it away from the pipe (seed 002, < 5.19). So: application zaps and the divergence they cause are
// silent; kernel-caused loss of the page (advisory MADV_PAGEOUT/FREE that pagemap shows acted, COW, unmap by
// reclaim) keeps its severity.
import { PG_HARD_ZAP } from '../pin-record.ts';
import { kernelVersion, type SourcePromise } from './promise.ts';
import type { PinSourcePlugin } from './source.ts';

export const vmsplicePromise: SourcePromise = {
  source: 'vmsplice',
  promise: 'pipe reference: the pipe reader gets the data as it was at vmsplice time; the process may unmap or replace the range',
  zap: (z) =>
    z.advisory
      ? { severity: 'high', why: `${z.how}: reclaim took a page the pipe references; a refault and write may copy it away from the pipe (seed 002)`, teardown: false }
      : { severity: null, why: `${z.how} by the application is legal: the pipe keeps the pages it references`, teardown: false },
  divergence: (_pin, flags) =>
    (flags & PG_HARD_ZAP) !== 0
      ? { severity: null, why: 'the application replaced the range after vmsplice: legal, the pipe keeps the old page' }
      : { severity: 'critical', why: 'the kernel replaced a page the pipe references without the application asking (seed 002)' },
  unmappedLeak: { severity: null, why: 'a pipe may keep pages the process unmapped until it is read' },
  fork: (rel) =>
    kernelVersion(rel) >= 5019
      ? { severity: 'info', why: 'fork while a pipe references vmspliced pages: harmless since 5.19 (PG_anon_exclusive), noted for older kernels (CVE-2020-29374)' }
      : { severity: 'warning', why: 'before 5.19 a COW after fork may let the pipe or the child see modifications it must not see (CVE-2020-29374)' },
  // A pipe normally hands its pages to the reader within moments. Tracepoints do not show the read, only the
  // pipe's close: an open pipe may well have been read long ago, so this is info, worded as a possibility.
  longHold: {
    afterS: 300,
    verdict: { severity: 'info', why: 'the pipe fd is still open: unless it was read, the pipe still references (and keeps in memory) the vmspliced pages' },
  },
};

export const vmsplice: PinSourcePlugin = {
  source: 'vmsplice',
  promise: vmsplicePromise,
  handleKind: 'pipe',
  // reads user memory (no FOLL_WRITE) and holds it only until the pipe is read: short-term
  writable: false,
  longterm: false,
  retCountsBytes: true,
  releasedBy: [],
};
