// Events the store counts instead of writing (collector/kept-events.ts), per CLOCK_MONOTONIC second and kind,
// until the next commit writes them to event_counts (an upsert that adds). The hot path is a division, a
// compare and an array increment: no object per event.
import { EVENT_KINDS } from '../../schema/event-kinds.ts';
import type { EventKind } from '../../schema/events.ts';

const INDEX = new Map<string, number>(EVENT_KINDS.map((k, i) => [k, i]));

export class EventCounts {
  /** The second being counted into `cur`. */
  private sec = -1;
  private readonly cur = new Float64Array(EVENT_KINDS.length);
  /** Seconds left behind (a later or, from another CPU's buffer, an earlier second came): sec, kind index, n. */
  private readonly done: number[] = [];

  add(tsNs: number, kind: EventKind): void {
    const s = Math.floor(tsNs / 1e9);
    if (s !== this.sec) this.roll(s);
    const i = INDEX.get(kind);
    if (i !== undefined) this.cur[i]++;
  }

  /** (second, kind) groups waiting to be written (a group may appear twice after out-of-order seconds). */
  get size(): number {
    let n = this.done.length / 3;
    for (let i = 0; i < this.cur.length; i++) if (this.cur[i] !== 0) n++;
    return n;
  }

  /** Every waiting group: second, kind, count. */
  forEach(fn: (sec: number, kind: EventKind, n: number) => void): void {
    const d = this.done;
    for (let i = 0; i < d.length; i += 3) fn(d[i], EVENT_KINDS[d[i + 1]], d[i + 2]);
    for (let i = 0; i < this.cur.length; i++) if (this.cur[i] !== 0) fn(this.sec, EVENT_KINDS[i], this.cur[i]);
  }

  /** After a commit: everything was written. */
  clear(): void {
    this.done.length = 0;
    this.cur.fill(0);
  }

  private roll(s: number): void {
    const cur = this.cur;
    for (let i = 0; i < cur.length; i++) {
      if (cur[i] === 0) continue;
      this.done.push(this.sec, i, cur[i]);
      cur[i] = 0;
    }
    this.sec = s;
  }
}
