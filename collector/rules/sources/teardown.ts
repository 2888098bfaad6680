// Teardown or hazard? Programs often unmap a registered buffer and release the ring (unregister, close,
// exit) a few milliseconds later with no I/O in between: the pinned pages are never used again, nothing is
// lost. A zap of a pinned range whose source can show submissions (io_uring: uring_enter.bt prints the first
// io_uring_enter on the ring after a zap) is therefore judged when the evidence is in:
//   - released within TEARDOWN_WINDOW_NS of the zap, no submission on its ring in between → teardown (info);
//   - a submission on the ring after the zap → hazard, at once;
//   - still pinned TEARDOWN_WINDOW_NS after the zap, or a SQPOLL ring (submits without io_uring_enter) → hazard.
// Rules keep one TeardownWatch in their state and feed it every event they see and every tick.
import type { SequencedEvent } from '../../../schema/events.ts';
import type { ModelEffects } from '../../model/effects.ts';
import type { PinRecord } from '../../model/pin-record.ts';

/** Release this soon after the zap, with no submission in between, is teardown. */
export const TEARDOWN_WINDOW_NS = 200_000_000;
/**
 * Windows are measured on the stream's clock (it lags the wall clock by the pipe latency, seen > 250 ms on a
 * loaded host). Only a stream silent for this long on the wall clock ends a window by the timer.
 */
export const QUIET_CAP_NS = 3_000_000_000;

export interface Judgement {
  teardown: boolean;
  /** Why, for the anomaly's summary and evidence. */
  why: string;
  /** The event that decided it (release, submission), if any. */
  cause: SequencedEvent | null;
}

interface Held<T> {
  pin: PinRecord;
  zapNs: number;
  payload: T;
  /** Released by a pagemap read that found the process gone (synthetic, timed by our clock): wait for its exit. */
  gone: boolean;
}

function ms(ns: number): string {
  return `${(ns / 1e6).toFixed(ns < 10e6 ? 1 : 0)} ms`;
}

export class TeardownWatch<T> {
  private held: Held<T>[] = [];
  /** "pid:fd" of rings set up with SQPOLL. */
  private readonly sqpoll = new Set<string>();

  get size(): number {
    return this.held.length;
  }

  /** Can this pin's zap wait for teardown evidence? (A ring with observable submissions.) */
  canJudge(pin: PinRecord): boolean {
    const h = pin.handle;
    if (h === null || h.kind !== 'ring') return false;
    return !h.holders.some((pid) => this.sqpoll.has(`${pid}:${h.fd}`));
  }

  hold(pin: PinRecord, zapNs: number, payload: T): void {
    this.held.push({ pin, zapNs, payload, gone: false });
  }

  /**
   * Feed every event the rule sees (after the model applied it). `decide(c, …)` with the caller's `c` rather
   * than a closure over it, and the held list copied only when a judgement takes something out of it: this runs
   * for every event that touched a pin.
   */
  onEvent<C>(e: SequencedEvent, fx: ModelEffects, decide: (c: C, payload: T, j: Judgement) => void, c: C): void {
    if (e.kind === 'uring_sqpoll') this.sqpoll.add(`${e.pid}:${e.fd}`);
    if (this.held.length === 0) return;
    let keep: Held<T>[] | null = null;
    const held = this.held;
    for (let i = 0; i < held.length; i++) {
      const h = held[i];
      const ring = h.pin.handle;
      let j: Judgement | null = null;
      if (e.kind === 'uring_enter' && ring && ring.fd === e.fd && ring.holders.includes(e.pid) && e.tsNs >= h.zapNs) {
        j = { teardown: false, why: `io_uring_enter submitted ${e.toSubmit} SQE(s) on ring fd ${e.fd} ${ms(e.tsNs - h.zapNs)} after the zap`, cause: e };
      } else if (e.seq < 0 && fx.dirty && fx.released.some((r) => r.pin === h.pin)) {
        h.gone = true; // the stream has not shown the exit yet: its time decides
      } else if (h.gone && e.kind === 'exit' && e.pid === h.pin.pid && e.tid === e.pid) {
        const dt = e.tsNs - h.zapNs;
        j = dt <= TEARDOWN_WINDOW_NS
          ? { teardown: true, why: `teardown: the process exited ${ms(dt)} after the zap with no I/O submitted on ring fd ${ring?.fd} in between`, cause: e }
          : { teardown: false, why: `still pinned ${ms(dt)} after the zap (released only by the exit)`, cause: e };
      } else if (fx.dirty && fx.released.some((r) => r.pin === h.pin)) {
        const reason = fx.released.find((r) => r.pin === h.pin)!.reason;
        const dt = e.tsNs - h.zapNs;
        j = dt <= TEARDOWN_WINDOW_NS
          ? { teardown: true, why: `teardown: released (${reason}) ${ms(dt)} after the zap with no I/O submitted on ring fd ${ring?.fd} in between`, cause: e }
          : { teardown: false, why: `still pinned ${ms(dt)} after the zap (released only then: ${reason})`, cause: e };
      } else if (e.tsNs - h.zapNs > TEARDOWN_WINDOW_NS) {
        j = this.expired(h);
      }
      if (j) {
        keep ??= held.slice(0, i);
        decide(c, h.payload, j);
      } else if (keep !== null) keep.push(h);
    }
    if (keep !== null) this.held = keep;
  }

  /** Timer: zaps whose window passed on the stream's clock (or a silent stream's wall clock) are hazards. */
  onTick(nowNs: number, streamNs: number, decide: (payload: T, j: Judgement) => void): void {
    if (this.held.length === 0) return;
    const keep: Held<T>[] = [];
    for (const h of this.held) {
      if (streamNs - h.zapNs > TEARDOWN_WINDOW_NS || nowNs - h.zapNs > QUIET_CAP_NS) decide(h.payload, this.expired(h));
      else keep.push(h);
    }
    this.held = keep;
  }

  private expired(h: Held<T>): Judgement {
    const why = h.gone
      ? `the process was found gone, its exit never seen within ${ms(TEARDOWN_WINDOW_NS)} of the zap`
      : h.pin.live
      ? `still pinned ${ms(TEARDOWN_WINDOW_NS)} after the zap: not a teardown`
      : `released (${h.pin.releaseReason}) more than ${ms(TEARDOWN_WINDOW_NS)} after the zap`;
    return { teardown: false, why, cause: null };
  }
}
