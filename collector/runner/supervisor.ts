// Keeps a bpftrace process running: when it dies (kill -9, OOM, a bpftrace bug) the capture gap is reported and
// a fresh process is started after a short backoff (first retry within 250 ms, doubling to 4 s). It gives up
// only after repeated failures (default 5 within 60 s), saying why. The process itself dies with the collector
// (runner: setpriv --pdeathsig KILL), so a restarted collector never finds an orphan attached.
import type { CaptureProcess } from '../../schema/reliability.ts';

export interface RestartPolicyOptions {
  /** Delay before the first retry (ms, default 250). */
  firstDelayMs?: number;
  /** Upper bound of the doubling delay (ms, default 4000). */
  maxDelayMs?: number;
  /** Give up after this many failures within windowMs (default 5 within 60,000 ms). */
  maxFailures?: number;
  windowMs?: number;
  now?: () => number;
}

/** Backoff and give-up bookkeeping shared by the main program's supervisor and the fault watcher's. */
export class RestartPolicy {
  private readonly failures: number[] = [];
  private readonly o: Required<RestartPolicyOptions>;

  constructor(o: RestartPolicyOptions = {}) {
    this.o = { firstDelayMs: 250, maxDelayMs: 4000, maxFailures: 5, windowMs: 60_000, now: Date.now, ...o };
  }

  /** Record a failure: the delay before the next try (ms), or null when it is time to give up. */
  failed(): number | null {
    const now = this.o.now();
    this.failures.push(now);
    while (this.failures.length && now - this.failures[0] > this.o.windowMs) this.failures.shift();
    if (this.failures.length >= this.o.maxFailures) return null;
    return Math.min(this.o.firstDelayMs * 2 ** (this.failures.length - 1), this.o.maxDelayMs);
  }

  /** "5 failures within 60 s". */
  describe(): string {
    return `${this.failures.length} failures within ${Math.round(this.o.windowMs / 1000)} s`;
  }
}

export interface SupervisedRunner {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** CLOCK_MONOTONIC ns at which every probe was attached (BpftraceRunner.readyTsNs). */
  readonly readyTsNs?: number | null;
}

export interface SupervisorOptions {
  process: CaptureProcess;
  /** A new, not yet started process; it must call onExit when it exits (for whatever reason). */
  create(onExit: (code: number | null, signal: string | null) => void): SupervisedRunner;
  /** Before each restart (e.g. discover what was pinned meanwhile, so the new program watches those pids). */
  beforeRestart?(): Promise<void> | void;
  /** The running process died: capture stopped (a gap opens). */
  onDown(cause: string): void;
  /** A replacement has every probe attached (the gap closes at readyTsNs). */
  onUp(readyTsNs: number | null, ms: number): void;
  /** Repeated failures: no further restart. */
  onGiveUp(reason: string): void;
  /** A restart attempt failed (it is retried unless onGiveUp follows). */
  onRetryFailed?(message: string): void;
  policy?: RestartPolicyOptions;
}

export class Supervisor {
  restarts = 0;
  /** Wall ms from the death to the replacement's ready, of the last restart. */
  lastRestartMs: number | null = null;
  private readonly o: SupervisorOptions;
  private readonly policy: RestartPolicy;
  private current: SupervisedRunner | null = null;
  /** The current process finished start(): an exit from now on is a death, not a failed start. */
  private live = false;
  private stopping = false;
  private gaveUp = false;
  private timer: NodeJS.Timeout | null = null;
  private restarting: Promise<void> | null = null;
  private downAt = 0;

  constructor(o: SupervisorOptions) {
    this.o = o;
    this.policy = new RestartPolicy(o.policy);
  }

  get running(): boolean {
    return this.live && !this.stopping;
  }

  /** The first start: a failure here is the caller's (configuration, permissions) and is not retried. */
  async start(): Promise<void> {
    const r = this.spawn();
    await r.start();
    if (this.current === r) this.live = true;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.restarting) await this.restarting.catch(() => undefined);
    const r = this.current;
    this.current = null;
    this.live = false;
    if (r) await r.stop();
  }

  private spawn(): SupervisedRunner {
    const r: SupervisedRunner = this.o.create((code, signal) => this.exited(r, code, signal));
    this.current = r;
    this.live = false;
    return r;
  }

  private exited(r: SupervisedRunner, code: number | null, signal: string | null): void {
    if (this.stopping || r !== this.current || !this.live) return; // stopped on purpose, replaced, or a failed start
    this.live = false;
    this.downAt = Date.now();
    const cause = `bpftrace exited (${signal ?? `code ${code}`})`;
    this.o.onDown(cause);
    this.retry(cause);
  }

  private retry(cause: string): void {
    const delay = this.policy.failed();
    if (delay === null) {
      this.gaveUp = true;
      this.o.onGiveUp(`gave up restarting bpftrace (${this.o.process}) after ${this.policy.describe()}; last: ${cause}`);
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = null;
      this.restarting = this.restart().finally(() => {
        this.restarting = null;
      });
    }, delay);
  }

  private async restart(): Promise<void> {
    if (this.stopping || this.gaveUp) return;
    try {
      await this.o.beforeRestart?.();
    } catch {
      // discovery is best effort: restart anyway
    }
    if (this.stopping) return;
    const r = this.spawn();
    try {
      await r.start();
    } catch (err) {
      if (this.stopping) return;
      const message = ((err as Error)?.message ?? String(err)).split('\n')[0];
      this.o.onRetryFailed?.(message);
      this.retry(message);
      return;
    }
    if (this.stopping || this.current !== r) {
      await r.stop();
      return;
    }
    this.live = true;
    this.restarts++;
    this.lastRestartMs = Date.now() - this.downAt;
    this.o.onUp(r.readyTsNs ?? null, this.lastRestartMs);
  }
}
