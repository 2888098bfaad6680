// `pinwatch export --format perfetto`: a recording as a Perfetto trace (TrackEvent protobuf) for ui.perfetto.dev.
// One track per process that pinned (the process track, named comm) and, under it, one track per pin with the
// pin's life as a slice (registration → release); anomalies are instant events on their pin's track (or the
// process track), named by rule, with severity as category and the verdict as debug annotations; the events of
// pinning processes are instant events on the process track. Timestamps are CLOCK_MONOTONIC ns, as recorded.
// Schema: perfetto_trace.proto beside this file (upstream field numbers), encoded with protobufjs.
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import type { Anomaly } from '../../schema/anomalies.ts';
import { eventPayload } from '../../schema/events.ts';
import type { Incident } from '../../schema/incidents.ts';
import type { RecordingRows } from './recording.ts';

export const PERFETTO_PROTO = fileURLToPath(new URL('./perfetto_trace.proto', import.meta.url));
const CLOCK_MONOTONIC = 3;
const SEQUENCE_ID = 1;
const TYPE = { SLICE_BEGIN: 1, SLICE_END: 2, INSTANT: 3 } as const;

let root: protobuf.Root | null = null;
export function perfettoTypes(): { Trace: protobuf.Type } {
  root ??= protobuf.loadSync(PERFETTO_PROTO);
  return { Trace: root.lookupType('perfetto.protos.Trace') };
}

type Annotation = { name: string; stringValue?: string; intValue?: number; boolValue?: boolean };
interface Packet {
  timestamp?: number;
  timestampClockId?: number;
  trustedPacketSequenceId: number;
  trackDescriptor?: { uuid: number; parentUuid?: number; name?: string; process?: { pid: number; processName: string } };
  trackEvent?: { type: number; trackUuid: number; name?: string; categories?: string[]; debugAnnotations?: Annotation[] };
}

function annotations(o: Record<string, unknown>): Annotation[] {
  const out: Annotation[] = [];
  for (const [name, v] of Object.entries(o)) {
    if (v === null || v === undefined) continue;
    if (typeof v === 'boolean') out.push({ name, boolValue: v });
    else if (typeof v === 'number' && Number.isSafeInteger(v)) out.push({ name, intValue: v });
    else out.push({ name, stringValue: typeof v === 'string' ? v : JSON.stringify(v) });
  }
  return out;
}

const hex = (n: number | null) => (n === null ? null : `0x${n.toString(16)}`);

export interface PerfettoOptions {
  /** Events of pinning processes put on their tracks at most (default 1,000,000; the rest are counted). */
  maxEvents?: number;
}

/** Builds the trace; returns the encoded bytes and what went into it. */
export function perfettoTrace(rec: RecordingRows, opts: PerfettoOptions = {}): { bytes: Uint8Array; tracks: number; slices: number; instants: number; eventsLeftOut: number } {
  const maxEvents = opts.maxEvents ?? 1_000_000;
  const descriptors: Packet[] = [];
  const timed: Packet[] = [];
  const processTrack = new Map<number, number>();
  let nextUuid = 1;
  const at = (ts: number, trackEvent: NonNullable<Packet['trackEvent']>): Packet => ({
    timestamp: ts, timestampClockId: CLOCK_MONOTONIC, trustedPacketSequenceId: SEQUENCE_ID, trackEvent,
  });
  const processUuid = (pid: number, comm: string): number => {
    let uuid = processTrack.get(pid);
    if (uuid === undefined) {
      uuid = nextUuid++;
      processTrack.set(pid, uuid);
      descriptors.push({ trustedPacketSequenceId: SEQUENCE_ID, trackDescriptor: { uuid, name: `${comm} (pid ${pid})`, process: { pid, processName: comm } } });
    }
    return uuid;
  };

  let endNs = 0;
  const pinTrack = new Map<number, number>();
  const pins = [...rec.pins()];
  for (const p of pins) endNs = Math.max(endNs, p.createdNs, p.releasedNs ?? 0);
  for (const p of pins) {
    const uuid = nextUuid++;
    pinTrack.set(p.id, uuid);
    const label = `pin ${p.id}: ${p.source} ${p.handle} @0x${p.addr.toString(16)} (${p.pageCount} pages)`;
    descriptors.push({ trustedPacketSequenceId: SEQUENCE_ID, trackDescriptor: { uuid, parentUuid: processUuid(p.pid, p.comm), name: label } });
    timed.push(at(p.createdNs, {
      type: TYPE.SLICE_BEGIN, trackUuid: uuid, name: `${p.source} ${p.handle}`, categories: ['pin'],
      debugAnnotations: annotations({ pin: p.id, addr: hex(p.addr), len: p.len, writable: p.writable, longterm: p.longterm, backing: p.backing, final_state: p.state }),
    }));
  }

  let eventsLeftOut = 0;
  let events = 0;
  const pinningPids = new Set(pins.map((p) => p.pid));
  for (const e of rec.events()) {
    endNs = Math.max(endNs, e.tsNs);
    if (!pinningPids.has(e.pid)) continue;
    if (events >= maxEvents) {
      eventsLeftOut++;
      continue;
    }
    events++;
    timed.push(at(e.tsNs, { type: TYPE.INSTANT, trackUuid: processUuid(e.pid, e.comm), name: e.kind, categories: ['event'], debugAnnotations: annotations({ seq: e.seq, tid: e.tid, ...eventPayload(e) }) }));
  }

  const incidentOf = new Map<number, Incident>();
  for (const i of rec.incidents()) for (const seq of i.anomalySeqs) incidentOf.set(seq, i);
  const anomalies: Anomaly[] = rec.anomalies();
  for (const a of anomalies) {
    endNs = Math.max(endNs, a.tsNs);
    const track = (a.pinId !== null ? pinTrack.get(a.pinId) : undefined) ?? processUuid(a.pid, a.comm);
    timed.push(at(a.tsNs, {
      type: TYPE.INSTANT, trackUuid: track, name: a.rule, categories: ['anomaly', a.severity],
      debugAnnotations: annotations({
        seq: a.seq, severity: a.severity, confirmed: a.confirmed, low_confidence: a.lowConfidence, addr: hex(a.addr), len: a.len,
        pinned_pfn: hex(a.pfn), current_pfn: hex(a.newPfn), summary: a.summary, incident: incidentOf.get(a.seq)?.title,
      }),
    }));
  }

  // Pins still registered when the recording ended close there.
  for (const p of pins) timed.push(at(p.releasedNs ?? endNs, { type: TYPE.SLICE_END, trackUuid: pinTrack.get(p.id)! }));

  timed.sort((x, y) => x.timestamp! - y.timestamp!);
  const { Trace } = perfettoTypes();
  const bytes = Trace.encode(Trace.fromObject({ packet: [...descriptors, ...timed] })).finish();
  return { bytes, tracks: descriptors.length, slices: pins.length, instants: events + anomalies.length, eventsLeftOut };
}
