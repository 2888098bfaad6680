// A recording's rows in the store's own types (schema/), for the exporters: the store's read side on one
// read-only connection (version-checked when opened), rows iterated rather than loaded, so a multi-GB recording
// exports in constant memory. Sessions are exported as the file records them.
import type { Anomaly, PagemapRead } from '../../schema/anomalies.ts';
import type { SequencedEvent } from '../../schema/events.ts';
import type { Incident } from '../../schema/incidents.ts';
import type { Pin } from '../../schema/pins.ts';
import type { SessionInfo } from '../../schema/session.ts';
import { StoreQueries } from '../store/index.ts';

export class RecordingRows {
  private readonly q: StoreQueries;

  /** Throws StoreError (with a fix) when the file is not a pinwatch recording this version reads. */
  constructor(readonly file: string) {
    this.q = StoreQueries.open(file);
  }

  sessions(): SessionInfo[] {
    return this.q.recordedSessions();
  }

  events(): Generator<SequencedEvent> {
    return this.q.eachEvent();
  }

  pagemapReads(): Generator<{ id: number; reason: string; read: PagemapRead }> {
    return this.q.eachPagemapRead();
  }

  /** Every pin with its pages, in id order. */
  pins(): Generator<Pin> {
    return this.q.eachPin();
  }

  anomalies(): Anomaly[] {
    return this.q.anomalies({ limit: Infinity });
  }

  incidents(): Incident[] {
    return this.q.incidents();
  }

  close(): void {
    this.q.close();
  }
}
