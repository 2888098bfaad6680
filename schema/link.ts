// The local link between the privileged collector process and the unprivileged web process (`pinwatch serve`
// runs both): newline-delimited JSON over a Unix socket (mode 0660, group of the web user). The collector pushes;
// it never waits for the web process (a peer that does not read is cut off and resyncs on reconnect). The web
// asks for exactly three things: start, resize and stop a bundled scenario's terminal.
import type { VerifySweep } from './metrics.ts';
import type { Anomaly } from './anomalies.ts';
import type { EventKind } from './events.ts';
import type { Incident, IncidentChange } from './incidents.ts';
import type { PinSummary } from './pins.ts';
import type { EventRates } from './protocol.ts';
import type { SessionInfo } from './session.ts';
import type { CollectorStatus } from './status.ts';

/** The collector's status banner (schema/status.ts), as the link carries it. */
export type LinkStatus = CollectorStatus;

export interface LinkTotals {
  events: number;
  anomalies: number;
  lost: number;
  byKind: Partial<Record<EventKind, number>>;
}

/** Whether bpftrace captures, capture gaps so far, when the last event arrived (Hub.captureState). */
export interface LinkCapture {
  up: boolean;
  gaps: number;
  lastEventWallMs: number | null;
}

export interface TermStartRequest {
  name: string;
  cols: number;
  rows: number;
}

export interface TermRun {
  runId: string;
  name: string;
  /** pid of the reproducer process (the pty's child): the pid its anomalies carry. */
  pid: number;
  /** The command line, shown above the terminal. */
  command: string;
  startedWallMs: number;
}

export type TermStartReply = { ok: true; run: TermRun } | { ok: false; error: string };

export interface TermExit {
  runId: string;
  exitCode: number | null;
  signal: number | null;
}

/** collector → web. */
export type CollectorMessage =
  | {
      t: 'hello';
      session: SessionInfo | null;
      status: LinkStatus | null;
      pins: PinSummary[];
      rates: EventRates[];
      totals: LinkTotals;
      /** The newest kept anomalies, oldest first (older ones are in SQLite). */
      anomalies: Anomaly[];
      /** Capture runs (a scenario started now would be observed). */
      capturing: boolean;
      /** Kept incidents (latest state), oldest first. */
      incidents: Incident[];
      capture: LinkCapture;
      /** The pagemap sweep's figures (absent before the first pass). */
      sweep?: VerifySweep;
    }
  | { t: 'anomaly'; a: Anomaly }
  | { t: 'incident'; i: Incident; change: IncidentChange }
  | { t: 'pins'; pins: PinSummary[] }
  | { t: 'rates'; r: EventRates; totals: LinkTotals; capture: LinkCapture; sweep?: VerifySweep }
  | { t: 'session'; s: SessionInfo }
  | { t: 'status'; s: LinkStatus; capturing: boolean }
  | { t: 'reply'; id: number; reply: TermStartReply }
  | { t: 'term:data'; owner: string; runId: string; data: string }
  | { t: 'term:exit'; owner: string; e: TermExit };

/** web → collector. `owner` names the browser socket a terminal belongs to. */
export type WebMessage =
  | { t: 'term:start'; id: number; owner: string; req: TermStartRequest }
  | { t: 'term:resize'; owner: string; runId: string; cols: number; rows: number }
  | { t: 'term:stop'; owner: string; runId: string }
  | { t: 'term:stopOwner'; owner: string };

/** A line longer than this ends the link (neither side ever sends one; a full pins snapshot is the largest). */
export const MAX_LINK_LINE_BYTES = 64 * 1024 * 1024;

/**
 * The framing of the link, used by both ends: one JSON value per line. push() hands every complete line to
 * `onMessage` and returns false once the pending partial line exceeds MAX_LINK_LINE_BYTES (the caller drops the
 * connection); a line that is not JSON is skipped and counted.
 */
export class LinkFramer<M> {
  private pending = '';
  bad = 0;
  constructor(private readonly onMessage: (m: M) => void) {}

  push(chunk: string): boolean {
    const text = this.pending + chunk;
    let start = 0;
    let nl = text.indexOf('\n');
    while (nl !== -1) {
      if (nl > start) {
        let m: M | undefined;
        try {
          m = JSON.parse(text.slice(start, nl)) as M;
        } catch {
          this.bad++;
        }
        if (m !== undefined) this.onMessage(m);
      }
      start = nl + 1;
      nl = text.indexOf('\n', start);
    }
    this.pending = text.slice(start);
    return this.pending.length <= MAX_LINK_LINE_BYTES;
  }
}
