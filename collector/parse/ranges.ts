// Range checks on parsed events: what becomes an INTEGER column (ts_ns, pid, tid, addr, len) must be an
// integer SQLite stores as one (timestamps below 2^53, where a JS number is exact; addresses up to ADDR_LIMIT),
// pids must be pids.
// A line that fails is malformed (counted), never stored: no REAL ever lands in an INTEGER column.
import type { TraceEvent } from '../../schema/events.ts';

/** PID_MAX_LIMIT on 64-bit kernels (include/linux/threads.h). */
export const PID_MAX_LIMIT = 4_194_304;

/**
 * Bound on user addresses and extents: 2^57 covers x86-64 5-level paging (user space below 2^56; a 6.1 guest with
 * la57 shows stack GUPs at 0xffffffffffefe9) and arm64's 52-bit VAs. Above 2^53 a JS number is exact only to 8–16
 * bytes, which is below page granularity; such values are still integers and SQLite stores them as INTEGER.
 * Range ends past it (the kernel's ULONG_MAX for "the whole address space") are clamped to it.
 */
export const ADDR_LIMIT = 2 ** 57;

/** Fields that are addresses, lengths or page counts of user memory: exact non-negative integers. */
const EXTENT_FIELDS = ['addr', 'len', 'vaddr', 'size', 'oldLen', 'newLen', 'start', 'end', 'nrPages', 'iova'] as const;

const isPid = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= PID_MAX_LIMIT;

/** Why the event's values are out of range, or null when they are fine. */
export function eventRangeProblem(e: TraceEvent): string | null {
  if (!Number.isSafeInteger(e.tsNs) || e.tsNs < 0) return 'timestamp out of range';
  if (!isPid(e.pid)) return 'pid out of range';
  if (!isPid(e.tid)) return 'tid out of range';
  const r = e as unknown as Record<string, unknown>;
  for (let i = 0; i < EXTENT_FIELDS.length; i++) {
    const v = r[EXTENT_FIELDS[i]];
    if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > ADDR_LIMIT)) return `${EXTENT_FIELDS[i]} out of range`;
  }
  if (e.kind === 'fork' && !isPid(e.childPid)) return 'child pid out of range';
  if (e.kind === 'gup' && e.nrPages > 2 ** 36) return 'nrPages out of range';
  if ((e.kind === 'migrate_pte' || e.kind === 'anon_rmap_move') && !(e.order >= 0 && e.order <= 30)) return 'order out of range';
  if (e.kind === 'collapse_file' && !(e.nr >= -1 && e.nr <= 2 ** 36)) return 'nr out of range';
  return null;
}

/** A lost_events count: a non-negative safe integer, else null. */
export function lostCount(v: unknown): number | null {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : null;
}
