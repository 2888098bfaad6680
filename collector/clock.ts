// Clock and timer seams for the model and the verifier, so tests drive time by hand (test/support/fakes.ts).
// nowNs() is CLOCK_MONOTONIC like bpftrace's nsecs: the snapshot-race logic compares the two directly.

export interface Clock {
  /** CLOCK_MONOTONIC nanoseconds (comparable with TraceEvent.tsNs). */
  nowNs(): number;
  /** Wall-clock milliseconds (Anomaly.wallMs). */
  wallMs(): number;
}

export type TimerHandle = unknown;

export interface Scheduler {
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(h: TimerHandle): void;
}

export const systemClock: Clock = {
  nowNs: () => Number(process.hrtime.bigint()),
  wallMs: () => Date.now(),
};

/** Real timers, unref'd: pending verification never keeps the process alive on its own. */
export const systemScheduler: Scheduler = {
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout(h) {
    clearTimeout(h as ReturnType<typeof setTimeout>);
  },
};
