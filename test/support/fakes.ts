// Test doubles for the collector core: a hand-driven clock + scheduler, a scriptable pagemap and maps.
// Shared by every layer's tests (model, verify, pipeline, store, publish, runner) to drive a Collector.
import type { PagemapRead } from '../../schema/anomalies.ts';
import { PAGE_SIZE } from '../../schema/kernel.ts';
import type { PagemapReader } from '../../collector/contracts.ts';
import { classifyBacking, type Mapping, type MapsReader } from '../../collector/model/maps.ts';
import { GONE } from '../../collector/verify/pagemap.ts';
import type { Clock, Scheduler, TimerHandle } from '../../collector/clock.ts';
import type { SequencedEvent, TraceEvent } from '../../schema/events.ts';
import type { ModelEffects } from '../../collector/model/effects.ts';
import type { ShadowModel } from '../../collector/model/shadow-model.ts';
import type { PinTimeReader } from '../../collector/verify/pin-time.ts';

/** Manual time: nowNs() only moves with advance(); timers fire in due order during advance(). */
export class FakeTime implements Clock, Scheduler {
  private ns: number;
  private readonly wallBase = 1_700_000_000_000;
  private readonly startNs: number;
  private timers: { id: number; due: number; fn: () => void }[] = [];
  private nextId = 1;

  constructor(startNs = 1_000_000_000_000) {
    this.ns = startNs;
    this.startNs = startNs;
  }

  nowNs(): number {
    return this.ns;
  }
  wallMs(): number {
    return this.wallBase + Math.floor((this.ns - this.startNs) / 1e6);
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.nextId++;
    this.timers.push({ id, due: this.ns + Math.max(0, ms) * 1e6, fn });
    return id;
  }
  clearTimeout(h: TimerHandle): void {
    this.timers = this.timers.filter((t) => t.id !== h);
  }
  get pendingTimers(): number {
    return this.timers.length;
  }
  /** Move time forward by ms, firing due timers in order (timers they add fire too if due). */
  advance(ms: number): void {
    const target = this.ns + ms * 1e6;
    for (;;) {
      this.timers.sort((a, b) => a.due - b.due || a.id - b.id);
      const t = this.timers[0];
      if (!t || t.due > target) break;
      this.timers.shift();
      this.ns = Math.max(this.ns, t.due);
      t.fn();
    }
    this.ns = target;
  }
  /** Set the clock (no timers fire). */
  set(ns: number): void {
    this.ns = ns;
  }
}

interface FakePage {
  pfn: number | null;
  present: boolean;
  swapped: boolean;
}

/** A scriptable /proc/PID/pagemap: set pages, kill processes, count reads. */
export class FakePagemapReader implements PagemapReader {
  private readonly pages = new Map<number, Map<number, FakePage>>();
  private readonly gone = new Set<number>();
  readonly calls: { pid: number; addr: number; count: number }[] = [];
  /** Report present pages with a null pfn (a non-root reader). */
  hidePfns = false;

  constructor(private readonly clock: Clock = { nowNs: () => 0, wallMs: () => 0 }) {}

  /** Map pfn at addr (page-aligned), or consecutive pfns from pfn for `count` pages. */
  map(pid: number, addr: number, pfn: number, count = 1): this {
    let m = this.pages.get(pid);
    if (!m) this.pages.set(pid, (m = new Map()));
    for (let i = 0; i < count; i++) m.set(addr + i * PAGE_SIZE, { pfn: pfn + i, present: true, swapped: false });
    this.gone.delete(pid);
    return this;
  }
  unmap(pid: number, addr: number, count = 1): this {
    const m = this.pages.get(pid);
    for (let i = 0; i < count; i++) m?.delete(addr + i * PAGE_SIZE);
    return this;
  }
  swapOut(pid: number, addr: number): this {
    this.pages.get(pid)?.set(addr, { pfn: null, present: false, swapped: true });
    return this;
  }
  /** The process exits: reads fail like ENOENT. */
  kill(pid: number): this {
    this.gone.add(pid);
    this.pages.delete(pid);
    return this;
  }
  pfnAt(pid: number, addr: number): number | null {
    return this.pages.get(pid)?.get(addr)?.pfn ?? null;
  }

  read(pid: number, addr: number, count: number): PagemapRead[] {
    this.calls.push({ pid, addr, count });
    const ts = this.clock.nowNs();
    const out: PagemapRead[] = [];
    const m = this.pages.get(pid);
    for (let i = 0; i < count; i++) {
      const a = addr + i * PAGE_SIZE;
      if (this.gone.has(pid) || !m) {
        out.push({ tsNs: ts, pid, addr: a, present: false, swapped: false, pfn: null, error: `${GONE} (ENOENT)` });
        continue;
      }
      const p = m.get(a);
      out.push({
        tsNs: ts,
        pid,
        addr: a,
        present: p?.present ?? false,
        swapped: p?.swapped ?? false,
        pfn: p && p.present && !this.hidePfns ? p.pfn : null,
      });
    }
    return out;
  }
}

/** A scriptable /proc/PID/maps. */
export class FakeMapsReader implements MapsReader {
  private readonly maps = new Map<number, Mapping[]>();

  add(pid: number, start: number, end: number, path = '', shared = false): this {
    let l = this.maps.get(pid);
    if (!l) this.maps.set(pid, (l = []));
    l.push({ start, end, perms: shared ? 'rw-s' : 'rw-p', shared, path, backing: classifyBacking(path, shared) });
    l.sort((a, b) => a.start - b.start);
    return this;
  }
  kill(pid: number): this {
    this.maps.delete(pid);
    return this;
  }
  read(pid: number): Mapping[] | null {
    return this.maps.get(pid) ?? null;
  }
}

/**
 * apply(...events) as the Collector does it without the rest of the pipeline: each event numbered, applied to the
 * model, and the verifier's pin-time reads for what it registered admitted; `afterEach` runs after every event
 * (e.g. to move a fake clock on). Returns the last event's effects.
 */
export function modelApplier(model: ShadowModel, pinTime: PinTimeReader, afterEach?: () => void): (...es: TraceEvent[]) => ModelEffects {
  let seq = 1;
  return (...es) => {
    for (const e of es) {
      (e as SequencedEvent).seq = seq++;
      model.apply(e as SequencedEvent);
      if (model.effects.admissions.length) model.admit(pinTime.read(model.effects.admissions));
      afterEach?.();
    }
    return model.effects;
  };
}
