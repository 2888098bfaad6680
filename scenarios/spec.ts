// What a catalog entry holds: the scenario, its source, and the anomalies it must (or must not) make the
// collector report. Apart from the catalogs (catalog.ts, catalog-devices.ts) so both can use it.
import type { RuleId, Severity } from '../schema/anomalies.ts';

/** One anomaly a scenario must produce, for the scenario's main process (the pid runScenario returns). */
export interface ExpectedAnomaly {
  rule: RuleId;
  /** A key of a PINWATCH fact line whose value (a "0x..." string or a number) is the anomaly's addr. */
  addrFact: string;
  /** The severity it must carry (rules that go to info when the kernel refuses say so here). */
  severity: Severity;
  /** pin-pte-divergence: must be confirmed by pagemap (true) or may be inferred (omitted). */
  confirmed?: boolean;
}

export interface ScenarioSpec {
  /** CLI name: `pinwatch scenario NAME`. Also the binary's name and the C file's base name. */
  name: string;
  title: string;
  /** What it does, which kernel mechanism, which seed thread. One paragraph. */
  description: string;
  /** What the kernel does with it on EXPECTATIONS_KERNEL, with the numbers seen there (one line). */
  seenOnKernel: string;
  /** Ids of the mailing-list threads on pinned pages the scenario comes from ('000'–'004', the same ids as the rules' `seeds`). */
  seeds: string[];
  /** C source file name under scenarios/c/. */
  source: string;
  /**
   * Exactly the anomalies the main process must produce, each once: (rule, addr, severity, confirmed).
   * Any other anomaly for that pid is wrong. Empty with silent=false: nothing for the main process, but a
   * forked child is not judged.
   */
  expect: ExpectedAnomaly[];
  /** Must-stay-silent: no anomaly at all for the main process nor for a child it forks (expect is empty). */
  silent: boolean;
  /**
   * A device the program needs (absent: none). 'vfio-edu': QEMU's edu PCI device bound to vfio-pci behind an
   * IOMMU. Without it the program exits 2 naming what is missing; such scenarios are judged in the kernel
   * guests (`npm run test:kernels`), their expectations decided there (catalog-devices.ts).
   */
  needs?: 'vfio-edu' | 'rdma-rxe';
}
