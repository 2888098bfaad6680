// What a stored recording reads back as (layout: tables.ts): an event row with its kind-specific fields typed
// per kind, pagemap reads with their reason, and the page timeline the dashboard draws. The read side
// (collector/store) builds them; the web and the exporters show them.
import type { Anomaly, PagemapRead } from './anomalies.ts';
import type { EventBase, TraceEvent } from './events.ts';
import type { PinRun, RunPage } from './pin-runs.ts';
import type { PinSummary } from './pins.ts';
import type { CaptureGap } from './reliability.ts';

/** The kind-specific fields of an event (the payload column), typed by its kind. */
export type EventPayloadOf<E extends TraceEvent> = Omit<E, keyof EventBase | 'kind'>;

/** How a timeline event relates to the page: its address range covers it, it concerns the whole process
 * (fork, exit), it names the process's mm (khugepaged), it names a pfn the page had, or it is the result of a
 * pinning call that covered it. */
export type TimelineMatch = 'range' | 'process' | 'mm' | 'pfn' | 'result';

interface StoredEventBase {
  seq: number;
  tsNs: number;
  pid: number;
  tid: number;
  comm: string;
  /** The events.addr / events.len columns: the event's main address range (null for kinds without one). */
  addr: number | null;
  len: number | null;
  /** Why it is on a page's timeline (TimelineMatch), or 'lost' for a lost-events mark in the page's window. */
  match?: TimelineMatch | 'lost';
}

type StoredOf<E extends TraceEvent> = E extends TraceEvent ? StoredEventBase & { kind: E['kind']; payload: EventPayloadOf<E> } : never;

/** One row of the events table, payload decoded; `kind` discriminates the payload's fields. */
export type StoredEvent = StoredOf<TraceEvent>;

/** One row of pagemap_reads: a pagemap read and what triggered it. */
export interface StoredPagemapRead extends PagemapRead {
  id: number;
  reason: string;
}

/** A pin that covers the timeline's page, with that page (expanded from its run; null: no run holds it). */
export interface TimelinePin extends PinSummary {
  page: RunPage | null;
}

/** Most runs one GET /api/pins/:id/runs answers (a fragmented pin is read page by page). */
export const PIN_RUNS_PAGE_MAX = 1000;

/** A slice of one pin's runs in page order (GET /api/pins/:id/runs?offset=&limit=). */
export interface PinRunsPage {
  pinId: number;
  /** Pages in the pin. */
  pageCount: number;
  /** Runs the pin has in all. */
  totalRuns: number;
  /** Index of runs[0] among them. */
  offset: number;
  runs: PinRun[];
}

/** Everything that touched one page of one process, in seq/time order (GET /api/timeline?pid=&addr=). */
export interface TimelineData {
  pid: number;
  /** Page-aligned user virtual address. */
  addr: number;
  comm: string;
  pins: TimelinePin[];
  events: StoredEvent[];
  reads: StoredPagemapRead[];
  anomalies: Anomaly[];
  /** Capture gaps that overlap the page's pins (open ones have endNs null): nothing was traced inside them. */
  gaps: CaptureGap[];
  /** The host clock at the time of the answer (live) or the end of the recording (replay), for open pin spans. */
  nowNs: number;
}

/** A pinned page the timeline page can offer, with how much happened to it. */
export interface TimelinePageRef {
  pid: number;
  comm: string;
  addr: number;
  pinId: number;
  pinnedPfn: number | null;
  currentPfn: number | null;
  anomalies: number;
}
