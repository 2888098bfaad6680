// The events an incident may be named after (those that touched pins or raised anomalies), kept by seq for a
// while: a pagemap check confirms a zap ~20 ms after the event, and its anomaly cites the event by seq.
import type { SequencedEvent } from '../../schema/events.ts';

/**
 * The last `max` events noted. The Collector notes them in seq order (it numbers them as they come), so they are
 * kept in a ring in that order and found by binary search: noting one (on the ingest path, for every event that
 * touched a pin) costs no hashing and no allocation, where a Map churned an entry and an iterator each time.
 */
export class RecentEvents {
  private readonly ring: (SequencedEvent | undefined)[];
  /** Slot of the oldest event kept; `count` events follow it around the ring. */
  private head = 0;
  private count = 0;

  constructor(private readonly max = 4096) {
    this.ring = new Array<SequencedEvent | undefined>(max).fill(undefined);
  }

  note(e: SequencedEvent): void {
    const max = this.max;
    if (this.count !== 0) {
      const lastSlot = (this.head + this.count - 1) % max;
      const last = this.ring[lastSlot]!;
      if (e.seq === last.seq) {
        this.ring[lastSlot] = e; // the same seq again: replaced in place, as a Map would
        return;
      }
      if (e.seq < last.seq) {
        // Never from the Collector; should numbering ever restart, start over rather than misorder the ring.
        this.ring.fill(undefined);
        this.head = 0;
        this.count = 0;
      }
    }
    if (this.count < max) {
      this.ring[(this.head + this.count) % max] = e;
      this.count++;
    } else {
      this.ring[this.head] = e; // full: the oldest goes
      this.head = (this.head + 1) % max;
    }
  }

  get(seq: number): SequencedEvent | null {
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const e = this.ring[(this.head + mid) % this.max]!;
      if (e.seq === seq) return e;
      if (e.seq < seq) lo = mid + 1;
      else hi = mid;
    }
    return null;
  }
}
