// Formatting shared by every view: hex addresses and pfns, durations on CLOCK_MONOTONIC, and one line per
// trace event in the words a kernel engineer would use (syscall(args) = ret, fault kind, khugepaged result).
import { hex } from '../../schema/event-text.ts';
import { isEventKind, kindRow } from '../../schema/event-kinds.ts';
import type { EventKind } from '../../schema/events.ts';
import type { PinSummary } from '../../schema/pins.ts';

export { bytes, faultKind, hex, ioringOp } from '../../schema/event-text.ts';

/** A duration in ns, compact: 812 ns, 3.41 µs, 12.0 ms, 4.20 s, 3m 05s, 2h 10m. */
export function duration(ns: number): string {
  const a = Math.abs(ns);
  const sign = ns < 0 ? '-' : '';
  if (a < 1e3) return `${sign}${Math.round(a)} ns`;
  if (a < 1e6) return `${sign}${(a / 1e3).toFixed(a < 1e4 ? 2 : 1)} µs`;
  if (a < 1e9) return `${sign}${(a / 1e6).toFixed(a < 1e7 ? 2 : 1)} ms`;
  if (a < 60e9) return `${sign}${(a / 1e9).toFixed(2)} s`;
  const s = Math.floor(a / 1e9);
  if (s < 3600) return `${sign}${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${sign}${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function relative(ns: number, t0: number): string {
  const d = ns - t0;
  return d >= 0 ? `+${duration(d)}` : duration(d);
}

export function wallTime(ms: number): string {
  if (!ms) return '—';
  const d = new Date(ms);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

export function wallDateTime(ms: number): string {
  if (!ms) return '—';
  const d = new Date(ms);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')} ${wallTime(ms)}`;
}

/**
 * One line describing an event from its kind and payload (the stored JSON), in syscall/kernel terms: the
 * sentence of its row in schema/event-kinds.ts. A kind the table does not know (a file from a newer
 * version) or a payload a damaged file made unreadable shows as its JSON.
 */
export function describeEvent(kind: EventKind | string, p: Record<string, unknown>): string {
  if (!isEventKind(kind)) return JSON.stringify(p);
  try {
    return (kindRow(kind).describe as (e: Record<string, unknown>) => string)({ ...p, kind });
  } catch {
    return JSON.stringify(p);
  }
}

export function pinFlags(p: Pick<PinSummary, 'writable' | 'longterm'>): string {
  return [p.writable ? 'WRITE' : 'RO', p.longterm ? 'LONGTERM' : 'SHORT'].join('|');
}

/** Address range as start–end (exclusive end), hex. */
export function range(addr: number, len: number): string {
  return `${hex(addr)}–${hex(addr + len)}`;
}
