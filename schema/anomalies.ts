// Anomalies: the product's verdicts. Rule ids are stable (recordings and alerts name them); each rule's explanation
// lives beside its code in collector/rules/<id>.ts and is exported as RuleInfo.

export const RULE_IDS = [
  'pin-pte-divergence',
  'pinned-range-zapped',
  'fork-with-pins',
  'cow-on-pinned-page',
  'unmap-of-pinned-page',
  'longterm-pin-file-backed',
  'collapse-uffd-hole',
  'collapse-blocked-by-pin',
  'secondary-mmu-wp',
  'pin-leak',
] as const;
export type RuleId = (typeof RULE_IDS)[number];

export const SEVERITIES = ['critical', 'high', 'warning', 'info'] as const;
export type Severity = (typeof SEVERITIES)[number];

/** What a user reads about a rule: shown in the anomaly detail view and `pinwatch rules`. */
export interface RuleInfo {
  id: RuleId;
  severity: Severity;
  title: string;
  /** Why it corrupts data or otherwise matters, in one or two sentences. */
  whyItMatters: string;
  /** The kernel mechanism, with function names. */
  mechanism: string;
  /** Numbers of the reported cases the rule comes from, e.g. ['000', '002']. */
  seeds: string[];
  /** Which mode sees it: tracepoint set, kprobe set or both. */
  modes: ('tracepoint' | 'kprobe')[];
}

/** A pagemap read: ground truth for which page the PTE maps at a moment. */
export interface PagemapRead {
  tsNs: number;
  pid: number;
  addr: number;
  present: boolean;
  swapped: boolean;
  /** pfn when present; null otherwise (or when pfns are hidden: not root). */
  pfn: number | null;
  /** Read failed: process gone, permission. */
  error?: string;
}

export type Evidence =
  | { type: 'event'; seq: number; note: string }
  | { type: 'pagemap'; read: PagemapRead; note: string };

export interface Anomaly {
  /** Collector-wide sequence number (anomalies.seq): reconnecting clients resume from it. */
  seq: number;
  rule: RuleId;
  severity: Severity;
  pid: number;
  comm: string;
  /** User virtual address of the affected page, page-aligned (first page of a range). */
  addr: number;
  /** Bytes affected (page size for one page). */
  len: number;
  /** The pinned pfn, when known. */
  pfn: number | null;
  /** The pfn the page table maps now, when known (divergence). */
  newPfn: number | null;
  /** Confirmed against /proc/PID/pagemap (true) or inferred from events (false). */
  confirmed: boolean;
  /** Lost events in the window around the trigger: the verdict may miss context. */
  lowConfidence: boolean;
  /** CLOCK_MONOTONIC ns of the triggering event. */
  tsNs: number;
  /** Wall-clock ms when raised (for the UI). */
  wallMs: number;
  pinId: number | null;
  summary: string;
  evidence: Evidence[];
  /** Times this finding (same rule, pin, process and address) was made; 1 when absent. */
  count?: number;
  /** CLOCK_MONOTONIC ns of the latest repeat (count > 1). */
  lastTsNs?: number | null;
}
