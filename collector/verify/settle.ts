// A verdict must hold at the moment of its read. pagemap shows the kernel's state NOW, while the model is
// behind it by the stream's latency: a read made while the model still thinks a pin lives may come after the
// pin was released (pipe closed, buffer unregistered, process exited) and the address re-mmapped by whatever
// ran next (seen: mm/cow.c re-mmaps the same address 1-3 ms after the previous test closed its pipe; the read
// then "confirmed" a divergence against a page that was never pinned).
//
// So a verdict that depends on what the read SHOWS (a pfn other than the pinned one) is held until the event
// stream has passed the read's timestamp. Every event that changes a pin's identity — release, exit or exec of
// its mm, a zap / unmap / remap / move of its range — bumps the pin's generation. When the stream passes the
// read: same generation → the verdict stands; otherwise it is dropped, and while the pin still lives the pages
// are read again (a bounded number of times). Verdicts implied by events alone (a hard zap, then a write fault)
// do not depend on the read and are never held.
//
// "The stream passed the read" = an event stamped at least `slackNs` after the read (per-CPU buffers reorder by
// a little), or, when nothing arrives, `holdMs` of quiet: no events means nothing was in flight to change it.
import type { PinRecord } from '../model/pin-record.ts';
import type { Scheduler, TimerHandle } from '../clock.ts';
import type { PageCheck } from './classify.ts';

/** Consecutive dropped reads of one pin after which it is not re-read (the periodic pass still covers it). */
const MAX_REREADS = 3;

export interface SettleOptions {
  scheduler: Scheduler;
  /** Hold a verdict at most this long when no event passes its read; 0: deliver at once (no holding). */
  holdMs: number;
  /** An event this much later than the read proves the stream has passed it. */
  slackNs: number;
  /** The verdict stood. */
  deliver(check: PageCheck): void;
  /** The verdict was stale; re-read the page while the pin lives (false: give up). */
  reread(check: PageCheck): void;
  /** The hold timer settled what it could (the verdicts went to deliver()). */
  afterTimer?(): void;
}

interface Held {
  check: PageCheck;
  gen: number;
}

export class ReadSettler {
  private readonly o: SettleOptions;
  private readonly gens = new WeakMap<PinRecord, number>();
  private readonly drops = new WeakMap<PinRecord, number>();
  private held: Held[] = [];
  private timer: TimerHandle | null = null;
  /** Verdicts dropped because the pin's identity changed between the read and the stream catching up. */
  readonly stats = { held: 0, delivered: 0, dropped: 0 };

  constructor(opts: SettleOptions) {
    this.o = opts;
  }

  get pending(): number {
    return this.held.length;
  }

  /** The pin's identity changed (released, exit/exec, zap/unmap/remap/move of its range). */
  bump(pin: PinRecord): void {
    this.gens.set(pin, (this.gens.get(pin) ?? 0) + 1);
  }

  /** A verdict that depends on what the read showed: deliver once the stream has passed the read. */
  hold(check: PageCheck): void {
    if (this.o.holdMs <= 0) {
      this.o.deliver(check);
      return;
    }
    this.stats.held++;
    this.held.push({ check, gen: this.gens.get(check.pin) ?? 0 });
    if (this.timer === null) {
      this.timer = this.o.scheduler.setTimeout(() => {
        this.timer = null;
        this.settle(Infinity);
        this.o.afterTimer?.();
      }, this.o.holdMs);
    }
  }

  /** The stream reached streamNs (call BEFORE applying that event): settle the reads it has passed. */
  settle(streamNs: number): void {
    if (this.held.length === 0) return;
    const limit = streamNs - this.o.slackNs;
    // Called before every event while reads are held: look before allocating (usually nothing is due yet).
    let anyDue = false;
    for (let i = 0; i < this.held.length; i++) {
      if (this.held[i].check.read.tsNs <= limit) {
        anyDue = true;
        break;
      }
    }
    if (!anyDue) return;
    let keep: Held[] | null = null;
    const due: Held[] = [];
    for (const h of this.held) {
      if (h.check.read.tsNs <= limit) due.push(h);
      else (keep ??= []).push(h);
    }
    if (due.length === 0) return;
    this.held = keep ?? [];
    if (this.held.length === 0 && this.timer !== null) {
      this.o.scheduler.clearTimeout(this.timer);
      this.timer = null;
    }
    for (const h of due) this.resolve(h);
  }

  /** Settle everything now (shutdown). */
  flush(): void {
    this.settle(Infinity);
  }

  close(): void {
    if (this.timer !== null) this.o.scheduler.clearTimeout(this.timer);
    this.timer = null;
    this.held = [];
  }

  private resolve(h: Held): void {
    const pin = h.check.pin;
    if ((this.gens.get(pin) ?? 0) === h.gen && pin.live) {
      this.stats.delivered++;
      this.drops.delete(pin);
      this.o.deliver(h.check);
      return;
    }
    this.stats.dropped++;
    const n = (this.drops.get(pin) ?? 0) + 1;
    this.drops.set(pin, n);
    if (pin.live && !pin.orphaned && n <= MAX_REREADS) this.o.reread(h.check);
  }
}
