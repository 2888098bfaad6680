// What the dashboard's own server (web/server) and its pages (web/app) exchange beyond schema/protocol.ts:
// the JSON shapes of /api/* and the web-only socket.io messages (data source, host clock, scenario terminals).
// Types only, so both sides import it without pulling server code into a bundle.
import type { VerifySweep } from '../../schema/metrics.ts';
import type { Anomaly, RuleInfo, Severity } from '../../schema/anomalies.ts';
import type { EventKind } from '../../schema/events.ts';
import type { PinSummary } from '../../schema/pins.ts';
import type { CaptureGap, UnattributedPinned } from '../../schema/reliability.ts';
import type { ClientToServer, ServerToClient } from '../../schema/protocol.ts';
import type { SessionInfo } from '../../schema/session.ts';
import type { StoredEvent } from '../../schema/stored.ts';

// The recording's shapes (the read side builds them) and the status banner are the schema's.
export type { StoredEvent, StoredPagemapRead, TimelineData, TimelinePageRef, TimelinePin } from '../../schema/stored.ts';
export type { CollectorStatus } from '../../schema/status.ts';

/** Where a page's data comes from: the server's own session (live capture or --replay) or a recording opened later. */
export interface SourceInfo {
  /** 'main' for the session the server was started with; 'r1', 'r2', … for recordings opened from the browser. */
  id: string;
  kind: 'live' | 'replay';
  /** File name shown in the header. */
  name: string;
  /** Path of the SQLite file on the server (null while live capture has not created it). */
  file: string | null;
}

/** The host's CLOCK_MONOTONIC now (live) or the recording's last timestamp (replay), to age pins in the browser. */
export interface ClockTick {
  nowNs: number;
  wallMs: number;
}

/** GET /api/anomalies/:seq */
export interface AnomalyDetail {
  anomaly: Anomaly;
  rule: RuleInfo | null;
  /** Evidence events resolved from their seqs (missing ones are not yet flushed by the store). */
  events: StoredEvent[];
  pin: PinSummary | null;
}

export type { RuleSeverityCount } from '../../schema/metrics.ts';
import type { RuleSeverityCount } from '../../schema/metrics.ts';

/** GET /api/overview */
export interface OverviewData {
  source: SourceInfo;
  sessions: SessionInfo[];
  eventsByKind: Partial<Record<EventKind, number>>;
  anomaliesByRule: RuleSeverityCount[];
  pinsLive: number;
  lostEvents: number;
  /** The live collector's pagemap sweep (null for a recording or before its first pass). */
  verifySweep: VerifySweep | null;
  /** Windows in which a bpftrace process was not capturing (open ones have endNs null), newest first, ≤ 100. */
  gaps: (CaptureGap & { sessionId: number })[];
  /** Capture gaps in the file, all of them (gaps may hold only the newest). */
  gapCount: number;
  /**
   * Pinned memory the kernel accounts (VmPin) that pinwatch cannot name, per process, from the latest session's
   * discovery (live: processes still running).
   */
  unattributed: UnattributedPinned[];
  /** Processes with pinned or locked memory at discovery (the rows `unattributed` was computed from). */
  discovered: number;
}

/** GET /api/scenarios — the catalog entries the scenario page may start (the server validates names again). */
export interface ScenarioEntry {
  name: string;
  title: string;
  description: string;
  /** Anomalies the catalog expects this scenario to raise on this kernel (empty: it must stay silent). */
  expected: { rule: string; severity: Severity | null }[];
  /** What the kernel the expectations were decided on did with it (numbers seen there). */
  seenOnKernel: string;
  /** Seed threads it comes from. */
  seeds: string[];
}

/** A recording file the server can open for replay (GET /api/recordings). */
export interface RecordingFile {
  name: string;
  bytes: number;
  mtimeMs: number;
}

export type { TermExit, TermRun, TermStartReply, TermStartRequest } from '../../schema/link.ts';
import type { TermExit, TermStartReply, TermStartRequest } from '../../schema/link.ts';

/** socket.io server → browser: the collector protocol plus the dashboard's own messages. */
export interface WebServerToClient extends ServerToClient {
  source: (s: SourceInfo) => void;
  clock: (c: ClockTick) => void;
  'term:data': (runId: string, data: string) => void;
  'term:exit': (e: TermExit) => void;
}

/** socket.io browser → server. */
export interface WebClientToServer extends ClientToServer {
  'term:start': (req: TermStartRequest, reply: (r: TermStartReply) => void) => void;
  'term:resize': (runId: string, cols: number, rows: number) => void;
  'term:stop': (runId: string) => void;
}

/** An alert Alertmanager delivered to POST /api/alerts (latest state per fingerprint). */
export interface ReceivedAlert {
  fingerprint: string;
  status: 'firing' | 'resolved';
  name: string;
  severity: string | null;
  host: string | null;
  /** The scraped address: the host's own dashboard. */
  instance: string | null;
  summary: string;
  /** The rule's dashboard annotation (a link into that host's dashboard). */
  dashboard: string | null;
  labels: Record<string, string>;
  startsAt: string;
  endsAt: string;
  receivedMs: number;
  externalURL: string;
}

/** One host of the fleet, as Prometheus sees it (GET /api/fleet). */
export interface FleetHost {
  /** The scraped address (host:port): its dashboard is http://instance/. */
  instance: string;
  host: string | null;
  kernel: string | null;
  /** live: a collector; replay: a recording served as it was. */
  source: string | null;
  mode: string | null;
  /** ok · down (scrape fails) · not capturing (bpftrace not attached) · blind (no events) · replay */
  health: 'ok' | 'down' | 'not capturing' | 'blind' | 'replay';
  pins: number;
  pinnedBytes: number;
  divergentPages: number;
  openIncidents: number;
  openCritical: number;
  lastEventAgeSeconds: number | null;
  lostEvents: number;
  /** Pinwatch alerts Prometheus has firing for this instance. */
  firing: string[];
}

export interface FleetData {
  /** --prometheus; null: only the alerts Alertmanager delivered are shown. */
  prometheus: string | null;
  queriedMs: number;
  hosts: FleetHost[];
  /** From Alertmanager's webhook (POST /api/alerts), newest first. */
  alerts: ReceivedAlert[];
  /** Prometheus could not be queried: why, and the fix. */
  error?: string;
}
