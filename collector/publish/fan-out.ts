// The Collector's sinks (store, hub, metrics, incidents webhook, ...) as one: every call goes to each sink in
// order, and a sink that throws is counted and reported without keeping the others from the call.
import type { VerifySweep } from '../../schema/metrics.ts';
import type { Anomaly, PagemapRead } from '../../schema/anomalies.ts';
import type { SequencedEvent } from '../../schema/events.ts';
import type { Incident, IncidentChange } from '../../schema/incidents.ts';
import type { Pin } from '../../schema/pins.ts';
import type { CaptureGap, PinnedMemory } from '../../schema/reliability.ts';
import type { CollectorSink } from '../contracts.ts';

export class SinkFanOut implements CollectorSink {
  constructor(
    private readonly sinks: readonly CollectorSink[],
    private readonly failed: (err: unknown) => void,
  ) {}

  // One loop per method rather than a shared helper taking a closure: event() runs for every traced event.
  event(e: SequencedEvent, kept = true): void {
    const sinks = this.sinks;
    for (let i = 0; i < sinks.length; i++) {
      try {
        sinks[i].event(e, kept);
      } catch (err) {
        this.failed(err);
      }
    }
  }

  pin(p: Pin): void {
    this.each((s) => s.pin(p));
  }

  pagemapRead(r: PagemapRead, reason: string): void {
    this.each((s) => s.pagemapRead(r, reason));
  }

  anomaly(a: Anomaly): void {
    this.each((s) => s.anomaly(a));
  }

  incident(i: Incident, change: IncidentChange): void {
    this.each((s) => s.incident?.(i, change));
  }

  lost(count: number): void {
    this.each((s) => s.lost(count));
  }

  gap(g: CaptureGap): void {
    this.each((s) => s.gap?.(g));
  }

  verifySweep(v: VerifySweep): void {
    this.each((s) => s.verifySweep?.(v));
  }

  pinnedMemory(m: PinnedMemory): void {
    this.each((s) => s.pinnedMemory?.(m));
  }

  private each(call: (s: CollectorSink) => void): void {
    for (const s of this.sinks) {
      try {
        call(s);
      } catch (err) {
        this.failed(err);
      }
    }
  }
}
