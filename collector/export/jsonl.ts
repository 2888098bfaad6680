// `pinwatch export --format jsonl`: a recording as JSON Lines for log pipelines (Loki, Elasticsearch, jq). One
// object per line with a `type` — session, event, pagemap_read, pin, anomaly, incident — and otherwise exactly
// the fields of the schema's types (schema/), so `parseJsonl` gives back what the store holds.
import type { Anomaly, PagemapRead } from '../../schema/anomalies.ts';
import type { SequencedEvent } from '../../schema/events.ts';
import type { Incident } from '../../schema/incidents.ts';
import type { Pin } from '../../schema/pins.ts';
import type { SessionInfo } from '../../schema/session.ts';
import type { RecordingRows } from './recording.ts';

export type JsonlRecord =
  | ({ type: 'session' } & SessionInfo)
  | ({ type: 'event' } & SequencedEvent)
  | ({ type: 'pagemap_read'; id: number; reason: string } & PagemapRead)
  | ({ type: 'pin' } & Pin)
  | ({ type: 'anomaly' } & Anomaly)
  | ({ type: 'incident' } & Incident);

/** Lines of the export, each ending in \n, in file order: sessions, events, pagemap reads, pins, anomalies, incidents. */
export function* jsonlLines(rec: RecordingRows): Generator<string> {
  const line = (type: string, o: object) => `${JSON.stringify({ type, ...o })}\n`;
  for (const s of rec.sessions()) yield line('session', s);
  for (const e of rec.events()) yield line('event', e);
  for (const r of rec.pagemapReads()) yield line('pagemap_read', { id: r.id, reason: r.reason, ...r.read });
  for (const p of rec.pins()) yield line('pin', p);
  for (const a of rec.anomalies()) yield line('anomaly', a);
  for (const i of rec.incidents()) yield line('incident', i);
}

export interface ParsedJsonl {
  sessions: SessionInfo[];
  events: SequencedEvent[];
  pagemapReads: { id: number; reason: string; read: PagemapRead }[];
  pins: Pin[];
  anomalies: Anomaly[];
  incidents: Incident[];
}

/** Reads an export back; a line that is not one of the record types throws with its line number. */
export function parseJsonl(text: string): ParsedJsonl {
  const out: ParsedJsonl = { sessions: [], events: [], pagemapReads: [], pins: [], anomalies: [], incidents: [] };
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    if (lines[n] === '') continue;
    const { type, ...o } = JSON.parse(lines[n]!) as JsonlRecord;
    switch (type) {
      case 'session':
        out.sessions.push(o as SessionInfo);
        break;
      case 'event':
        out.events.push(o as SequencedEvent);
        break;
      case 'pagemap_read': {
        const { id, reason, ...read } = o as { id: number; reason: string } & PagemapRead;
        out.pagemapReads.push({ id, reason, read });
        break;
      }
      case 'pin':
        out.pins.push(o as Pin);
        break;
      case 'anomaly':
        out.anomalies.push(o as Anomaly);
        break;
      case 'incident':
        out.incidents.push(o as Incident);
        break;
      default:
        throw new Error(`line ${n + 1}: unknown record type ${JSON.stringify(type)}`);
    }
  }
  return out;
}
