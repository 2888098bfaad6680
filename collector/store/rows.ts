// How the store maps the schema's objects to SQLite rows and back (column layout: schema/tables.ts).
// The per-event functions run once per stored event in the flush loop: switch + string building, no
// intermediate objects (eventPayload's rest-spread + delete is ~2x slower; its output is the reference).
import type { Anomaly, Evidence, PagemapRead, RuleId, Severity } from '../../schema/anomalies.ts';
import { EVENT_KINDS, kindRow } from '../../schema/event-kinds.ts';
import type { EventKind, SequencedEvent, TraceEvent } from '../../schema/events.ts';
import type { PinState, PinSummary } from '../../schema/pins.ts';
import type { ProbeStatus, SessionEndReason, SessionInfo, TraceMode } from '../../schema/session.ts';
import type { StoredEvent } from '../../schema/stored.ts';

type Column = (e: TraceEvent) => number;

/** Per kind, from its row: the reader of the `addr` column and of the `len` column, built once. */
const ADDR: Partial<Record<EventKind, Column>> = {};
const LEN: Partial<Record<EventKind, Column>> = {};
for (const kind of EVENT_KINDS) {
  const { addr, len } = kindRow(kind);
  if (addr !== undefined) ADDR[kind] = (e) => (e as unknown as Record<string, number>)[addr];
  if (typeof len === 'function') LEN[kind] = len as Column;
  else if (len !== undefined) LEN[kind] = (e) => (e as unknown as Record<string, number>)[len];
}

/** The event's main user address (the `addr` column), or null for kinds without one. */
export function eventAddr(e: TraceEvent): number | null {
  const f = ADDR[e.kind];
  return f === undefined ? null : f(e);
}

/** Bytes covered from eventAddr (the `len` column); null for a point (one address: fault, wp_page, rmap walk). */
export function eventLen(e: TraceEvent): number | null {
  const f = LEN[e.kind];
  return f === undefined ? null : f(e);
}

/** Kinds the page timeline finds by the process's mm / by a pfn the page had. */
export { MM_KINDS, PFN_KINDS } from '../../schema/event-kinds.ts';

const keyPrefix = new Map<string, string>();
function quotedKey(k: string, first: boolean): string {
  let q = keyPrefix.get(k);
  if (q === undefined) {
    q = JSON.stringify(k) + ':';
    keyPrefix.set(k, q);
  }
  return first ? '{' + q : ',' + q;
}

/** JSON of the kind-specific fields: the same text as JSON.stringify(eventPayload(e)). */
export function payloadJson(e: TraceEvent): string {
  let s = '';
  const o = e as unknown as Record<string, unknown>;
  for (const k in o) {
    if (k === 'tsNs' || k === 'pid' || k === 'tid' || k === 'comm' || k === 'kind' || k === 'seq') continue;
    const v = o[k];
    let text: string;
    switch (typeof v) {
      case 'number':
        text = Number.isFinite(v) ? String(v) : 'null';
        break;
      case 'string':
        text = JSON.stringify(v);
        break;
      case 'boolean':
        text = v ? 'true' : 'false';
        break;
      case 'undefined':
      case 'function':
      case 'symbol':
        continue;
      default:
        text = JSON.stringify(v) ?? 'null';
    }
    s += quotedKey(k, s === '') + text;
  }
  return s === '' ? '{}' : s + '}';
}

// ---- reading rows back ----

/** JSON columns of a recording from elsewhere may be damaged: a bad cell reads as `fallback`, not as an exception. */
export function parseJsonOr<T>(text: string, fallback: T): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    return fallback;
  }
}

export interface EventRow {
  seq: number;
  session_id: number;
  ts_ns: number;
  kind: string;
  pid: number;
  tid: number;
  comm: string;
  addr: number | null;
  len: number | null;
  payload: string;
}

/** The event as the collector handed it over (kind-specific fields flat). */
export function eventFromRow(r: EventRow): SequencedEvent {
  const payload = JSON.parse(r.payload) as Record<string, unknown>;
  return { seq: r.seq, tsNs: r.ts_ns, pid: r.pid, tid: r.tid, comm: r.comm, kind: r.kind as EventKind, ...payload } as SequencedEvent;
}

/** The row as the dashboard shows it: the addr/len columns, kind-specific fields under `payload` (a damaged cell reads as {}). */
export function storedEventFromRow(r: EventRow, match?: StoredEvent['match']): StoredEvent {
  const e = {
    seq: r.seq, tsNs: r.ts_ns, kind: r.kind, pid: r.pid, tid: r.tid, comm: r.comm, addr: r.addr, len: r.len,
    payload: parseJsonOr<Record<string, unknown>>(r.payload, {}),
  } as StoredEvent;
  if (match) e.match = match;
  return e;
}

export interface SessionRow {
  id: number;
  host: string;
  kernel: string;
  bpftrace_version: string;
  mode: string;
  started_ms: number;
  ended_ms: number | null;
  probes_json: string;
  lost_events: number;
  /** Absent in version-1 files. */
  end_reason?: string | null;
  end_detail?: string | null;
  last_event_ns?: number | null;
  lost_by_kind?: string | null;
}

export function sessionFromRow(r: SessionRow): SessionInfo {
  return {
    id: r.id,
    host: r.host,
    kernel: r.kernel,
    bpftraceVersion: r.bpftrace_version,
    mode: r.mode as TraceMode,
    startedWallMs: r.started_ms,
    endedWallMs: r.ended_ms,
    probes: parseJsonOr<ProbeStatus[]>(r.probes_json, []),
    lostEvents: r.lost_events,
    // Only when known: version-1 files and sessions still recording have none.
    ...(r.end_reason ? { endReason: r.end_reason as SessionEndReason, endDetail: r.end_detail ?? null } : {}),
    ...(r.last_event_ns != null ? { lastEventNs: r.last_event_ns } : {}),
    ...(r.lost_by_kind ? { lostByKind: parseJsonOr<Record<string, number>>(r.lost_by_kind, {}) } : {}),
  };
}

export interface AnomalyRow {
  seq: number;
  session_id: number;
  rule: string;
  severity: string;
  pid: number;
  comm: string;
  addr: number;
  len: number;
  pfn: number | null;
  new_pfn: number | null;
  confirmed: number;
  low_confidence: number;
  ts_ns: number;
  wall_ms: number;
  pin_id: number | null;
  summary: string;
  evidence: string;
  /** Absent in version-1 files. */
  count?: number;
  last_ts_ns?: number | null;
}

export function anomalyFromRow(r: AnomalyRow): Anomaly {
  return {
    seq: r.seq,
    rule: r.rule as RuleId,
    severity: r.severity as Severity,
    pid: r.pid,
    comm: r.comm,
    addr: r.addr,
    len: r.len,
    pfn: r.pfn,
    newPfn: r.new_pfn,
    confirmed: r.confirmed !== 0,
    lowConfidence: r.low_confidence !== 0,
    tsNs: r.ts_ns,
    wallMs: r.wall_ms,
    pinId: r.pin_id,
    summary: r.summary,
    evidence: parseJsonOr<Evidence[]>(r.evidence, []),
    ...(r.count !== undefined && r.count > 1 ? { count: r.count, lastTsNs: r.last_ts_ns ?? null } : {}),
  };
}

export interface PinRow {
  id: number;
  session_id: number;
  pid: number;
  comm: string;
  source: string;
  handle: string;
  addr: number;
  len: number;
  pages: number;
  writable: number;
  longterm: number;
  backing: string;
  created_ns: number;
  released_ns: number | null;
  state: string;
  diverged_pages: number;
  /** Absent in version-1 files. */
  origin?: string;
}

/** Pins with the count of their diverged pages (both pfns known and different: runDiverged, every page of such a run). */
export const PIN_SELECT = `SELECT p.*, (SELECT coalesce(sum(r.count), 0) FROM pin_page_runs r WHERE r.pin_id = p.id AND r.pinned_pfn IS NOT NULL
    AND r.current_pfn IS NOT NULL AND r.current_pfn != r.pinned_pfn) AS diverged_pages FROM pins p`;

export function pinSummaryFromRow(r: PinRow): PinSummary {
  return {
    id: r.id,
    pid: r.pid,
    comm: r.comm,
    source: r.source as PinSummary['source'],
    handle: r.handle,
    addr: r.addr,
    len: r.len,
    writable: r.writable !== 0,
    longterm: r.longterm !== 0,
    backing: r.backing,
    createdNs: r.created_ns,
    releasedNs: r.released_ns,
    state: r.state as PinState,
    pageCount: r.pages,
    divergedPages: r.diverged_pages ?? 0,
    ...(r.origin === 'discovered' ? { origin: 'discovered' as const } : {}),
  };
}

export interface PagemapRow {
  id: number;
  session_id: number;
  ts_ns: number;
  pid: number;
  addr: number;
  present: number;
  swapped: number;
  pfn: number | null;
  error: string | null;
  reason: string;
}

export function pagemapReadFromRow(r: PagemapRow): PagemapRead {
  const read: PagemapRead = { tsNs: r.ts_ns, pid: r.pid, addr: r.addr, present: r.present !== 0, swapped: r.swapped !== 0, pfn: r.pfn };
  if (r.error !== null) read.error = r.error;
  return read;
}
