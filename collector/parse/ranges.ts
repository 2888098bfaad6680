// Range checks on parsed events: what becomes an INTEGER column (ts_ns, pid, tid, addr, len) must be an
// integer SQLite stores as one (timestamps below 2^53, where a JS number is exact; addresses and other unsigned
// fields up to ADDR_LIMIT, 2^57, for 5-level paging), pids must be pids.
// A line that fails is malformed (counted), never stored: no REAL ever lands in an INTEGER column.
// The fast path checks while it reads (cursor.ts); these check an event built from a split line.
import { ADDR_LIMIT, type AnyKindRow } from '../../schema/event-kinds.ts';
import type { TraceEvent } from '../../schema/events.ts';

/** PID_MAX_LIMIT on 64-bit kernels (include/linux/threads.h). */
export const PID_MAX_LIMIT = 4_194_304;

const isPid = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= PID_MAX_LIMIT;

/** Why the common fields (tsNs, pid, tid) are out of range, or null. */
export function headRangeProblem(e: TraceEvent): string | null {
  if (!Number.isSafeInteger(e.tsNs) || e.tsNs < 0) return 'timestamp out of range';
  if (!isPid(e.pid)) return 'pid out of range';
  if (!isPid(e.tid)) return 'tid out of range';
  return null;
}

/** Why a field of the kind's row is out of range for its type and bounds, or null. */
export function fieldRangeProblem(e: TraceEvent, row: AnyKindRow): string | null {
  const r = e as unknown as Record<string, unknown>;
  for (const [name, type, opt] of row.fields) {
    const v = r[name];
    if (typeof v !== 'number') continue;
    if (type === 'uint' && !(Number.isInteger(v) && v >= 0 && v <= ADDR_LIMIT)) return `${name} out of range`;
    if (type === 'pid' && !isPid(v)) return `${name} out of range`;
    if ((opt?.min !== undefined && v < opt.min) || (opt?.max !== undefined && v > opt.max)) return `${name} out of range`;
  }
  return null;
}

/** A lost_events count: a non-negative safe integer, else null. */
export function lostCount(v: unknown): number | null {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : null;
}
