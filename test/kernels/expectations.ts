// What each catalog scenario must make `pinwatch record --mode kprobe` report on each VM kernel. The
// catalog's expectations were decided on 6.18 (scenarios/catalog.ts, EXPECTATIONS_KERNEL); a kernel
// that behaves the same inherits them, and every difference below names the kernel fact behind it.
// Decided by running each scenario in the guests and reading its facts (pagemap before/after, errnos).
import { SCENARIOS, getScenario, type ExpectedAnomaly, type ScenarioSpec } from '../../scenarios/index.ts';
import type { RuleId, Severity } from '../../schema/anomalies.ts';

export const KERNEL_SERIES = ['5.10', '6.1', '6.12'] as const;
export type KernelSeries = (typeof KERNEL_SERIES)[number];

export interface KernelExpectation {
  /** As the catalog's `expect`: exactly these anomalies for the scenario's pid, each once. */
  expect: ExpectedAnomaly[];
  /** As the catalog's `silent`: nothing for the pid nor the children it forks. */
  silent: boolean;
  /** The program's exit status: 0 the kernel behaved as on 6.18, 1 it did not (a FAIL line says how), 2 cannot run. */
  exitCode: number;
  /** Why this kernel differs from the catalog (absent: it does not). */
  why?: string;
}

const EXPECTED_ON_6_18 = (name: string): KernelExpectation => {
  const s = getScenario(name);
  return { expect: s.expect, silent: s.silent, exitCode: 0 };
};

const DIFFERENCES: Record<KernelSeries, Record<string, KernelExpectation>> = {
  '5.10': {
    'vmsplice-pageout': {
      expect: [
        // MADV_PAGEOUT did take the page away (pagemap: swapped), seen from the syscall and from the rmap walk
        { rule: 'pinned-range-zapped', addrFact: 'buf', severity: 'high', confirmed: true },
        { rule: 'unmap-of-pinned-page', addrFact: 'buf', severity: 'high' },
        { rule: 'cow-on-pinned-page', addrFact: 'buf', severity: 'critical' },
        { rule: 'pin-pte-divergence', addrFact: 'buf', severity: 'critical', confirmed: true },
      ],
      silent: false,
      exitCode: 0,
      why: 'before 5.19 the swap PTE does not keep PageAnonExclusive: reclaim unmaps the vmspliced (FOLL_GET) page, the refault maps it read-only and the write copies it away from the pipe (seed 002)',
    },
    'shmem-uffd-collapse': {
      expect: [],
      silent: false,
      exitCode: 2,
      why: 'no MADV_COLLAPSE before 6.1 (EINVAL): the program never reaches collapse_file',
    },
    'collapse-pinned-anon': {
      expect: [],
      silent: false,
      exitCode: 2,
      why: 'no MADV_COLLAPSE before 6.1 (EINVAL): no scan_pmd, no refusal to report',
    },
    'rdma-clean': {
      expect: [
        { rule: 'pinned-range-zapped', addrFact: 'buf', severity: 'high' },
        { rule: 'pin-leak', addrFact: 'buf', severity: 'warning' },
      ],
      silent: false,
      exitCode: 0,
      why: "5.10's rxe keeps a reference on the MR from the responder's RDMA READ resource after ibv_dereg_mr returns: " +
        'ib_umem_release (the unpin events) runs only when the QP is destroyed at exit, after the munmap, so the ' +
        'munmap frees a range that is still pinned (seen: unpin_user_pages_dirty_lock of the 4 pfns after the exit event)',
    },
  },
  '6.1': {
    'shmem-uffd-collapse': {
      expect: [{ rule: 'collapse-uffd-hole', addrFact: 'range_start', severity: 'high' }],
      silent: false,
      exitCode: 1,
      why: 'collapse_file checks userfaultfd_missing() only since 6.4: MADV_COLLAPSE fills the holes under a MISSING uffd (seed 004)',
    },
  },
  '6.12': {},
};
// The device scenarios (vfio-*, rdma-*; scenarios/catalog-devices.ts, decided on the 6.12 guest) need no
// entry above but 5.10's rdma-clean: the kernels behave alike otherwise, each fact checked in the guests —
// VFIO type1 and ib_umem_get pin with FOLL_PIN | FOLL_LONGTERM on all three (VFIO: pin_user_pages_remote,
// one page per call on 5.10, batches since 5.13; rxe: pin_user_pages_fast), fork copies a DMA-pinned anonymous page into the child at
// once since 5.9 (copy_present_page, page_maybe_dma_pinned; 5.10 has it: the parent keeps its pfn, the child
// gets a copy), MADV_DONTNEED / munmap / a split huge PMD never touch the IOMMU's or the MR's reference.

/**
 * The nested QEMU of guest-run.sh (TCG, `-m 32`, edu passed through with vfio-pci, 8 s, SIGTERM): what pinwatch
 * reports for it. QEMU maps RAM [0, 32 MiB) read-write, the BIOS at iova 0xfffc0000 (256 KiB) and its ISA aliases
 * 0xc0000 / 0xe0000 (128 KiB each; 0xe0000 is the same host memory as the BIOS's last 128 KiB) read-only, then at
 * reset unmaps the RAM and maps it again around the aliases. Findings name the pin by its iova; each is one row
 * for the whole pin (its count is the pages).
 */
export interface NestedQemuExpectation {
  /** Exactly these anomalies for QEMU's pid, at the address of the live map at `iova`. */
  expect: { iova: number; rule: RuleId; severity: Severity; confirmed?: boolean }[];
  /** Pages of the live maps whose pinned pfn is the shared zero page (VFIO charges no locked_vm for them). */
  zeroPages: number;
  why: string;
  /**
   * Of `expect`, the findings pinwatch does not raise yet on this kernel (an open gap, said with its reason): the
   * rest must match exactly, and these are checked in a TODO subtest that every run prints.
   */
  notYet?: { iova: number; rule: RuleId; why: string }[];
}

const ZERO_PAGE_PINS = (kernel: string): NestedQemuExpectation => ({
  expect: [0xfffc0000, 0xe0000].flatMap((iova) => [
    { iova, rule: 'cow-on-pinned-page' as const, severity: 'critical' as const },
    { iova, rule: 'pin-pte-divergence' as const, severity: 'critical' as const, confirmed: true },
  ]),
  zeroPages: 64 + 32 + 32,
  why: `${kernel} is before 6.2 (84209e87c696 "mm/gup: reliable R/O long-term pinning in COW mappings"): the read-only ` +
    'maps of the never-written ROM pages pin the shared zero page (VmLck is 512 KiB below the live maps: VFIO does ' +
    'not charge it); QEMU then loads the BIOS, whose writes copy the process away from the zero page at the BIOS ' +
    'map and its 0xe0000 alias, which the device still reads: one finding per pin and rule. 0xc0000 is never written.',
});

export const NESTED_QEMU: Record<KernelSeries, NestedQemuExpectation> = {
  '5.10': {
    ...ZERO_PAGE_PINS('5.10'),
    notYet: [0xfffc0000, 0xe0000].map((iova) => ({
      iova,
      rule: 'cow-on-pinned-page' as const,
      why: 'issue 9, open: the wp_page events of the BIOS writes copying the zero page are in the recording and a replay ' +
        'of its events through the Collector raises both rows, but the live 5.10 run raised neither (not yet explained)',
    })),
  },
  '6.1': ZERO_PAGE_PINS('6.1'),
  '6.12': {
    expect: [],
    zeroPages: 0,
    why: 'since 6.2 a read-only long-term pin unshares a never-written page (FAULT_FLAG_UNSHARE): every map pins a ' +
      'page of its own, all charged (VmLck = the live maps), and the ROM writes reuse them: silent',
  },
};

/** The expectation for one scenario on one kernel series. */
export function kernelExpectation(series: KernelSeries, name: string): KernelExpectation {
  return DIFFERENCES[series][name] ?? EXPECTED_ON_6_18(name);
}

/** The catalog spec with this kernel's expect/silent, for scenarios/expect.ts checkAnomalies. */
export function kernelSpec(series: KernelSeries, name: string): ScenarioSpec {
  const k = kernelExpectation(series, name);
  return { ...getScenario(name), expect: k.expect, silent: k.silent };
}

export function isKernelSeries(s: string): s is KernelSeries {
  return (KERNEL_SERIES as readonly string[]).includes(s);
}

// A difference for a scenario the catalog no longer has would silently judge nothing.
for (const series of KERNEL_SERIES) {
  for (const name of Object.keys(DIFFERENCES[series])) {
    if (!SCENARIOS.some((s) => s.name === name)) throw new Error(`expectations.ts: ${series} names unknown scenario ${name}`);
  }
}
