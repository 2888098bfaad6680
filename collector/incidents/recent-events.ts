// The events an incident may be named after (those that touched pins or raised anomalies), kept by seq for a
// while: a pagemap check confirms a zap ~20 ms after the event, and its anomaly cites the event by seq.
import type { SequencedEvent } from '../../schema/events.ts';

export class RecentEvents {
  private readonly bySeq = new Map<number, SequencedEvent>();
  constructor(private readonly max = 4096) {}

  note(e: SequencedEvent): void {
    this.bySeq.set(e.seq, e);
    if (this.bySeq.size > this.max) this.bySeq.delete(this.bySeq.keys().next().value!);
  }

  get(seq: number): SequencedEvent | null {
    return this.bySeq.get(seq) ?? null;
  }
}
