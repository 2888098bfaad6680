// The collector's core: runs the stages in one direction for each TraceEvent — number it, sinks, model
// (then the verifier's pin-time reads of what it registered, back into the model), rules, verification
// scheduling, publish — and hands each verification pass's results on the same way: reads to the sinks,
// checks to the rules, vanished processes to the model, the tick to the rules. The runner's parser feeds
// `parseSink` directly; the store and the publish hub are CollectorSinks, reached through one SinkFanOut.
//
// Hot path (ingest): one seq assignment, the sinks, a switch in the model that returns after a Map lookup
// for processes without pins, and a per-kind rule table; nothing allocated unless a pin is involved.
import type { Anomaly, PagemapRead } from '../schema/anomalies.ts';
import type { ExitEvent, LostEvent, SequencedEvent, TraceEvent } from '../schema/events.ts';
import type { Pin } from '../schema/pins.ts';
import type { CaptureGap, CaptureProcess, PinnedMemory } from '../schema/reliability.ts';
import type { Discovery } from './discover/index.ts';
import {
  DEFAULT_COLLECTOR_CONFIG, type CollectorConfig, type CollectorSink, type FaultRegion, type PagemapReader, type ParseSink, type WatchSeed,
} from './contracts.ts';
import { holdsPins, keepEvent, touchedPin } from './kept-events.ts';
import { IncidentGrouper, type IncidentUpdate } from './incidents/grouper.ts';
import { RecentEvents } from './incidents/recent-events.ts';
import type { ModelEffects } from './model/effects.ts';
import type { PinRecord } from './model/pin-record.ts';
import { ProcMapsReader, type MapsReader } from './model/maps.ts';
import { ShadowModel, type FollNumbering } from './model/shadow-model.ts';
import { PIN_RELEASING_KINDS } from './model/sources/index.ts';
import { SinkFanOut } from './publish/fan-out.ts';
import { RuleEngine } from './rules/engine.ts';
import { ALL_RULES } from './rules/index.ts';
import type { Rule } from './rules/rule.ts';
import { ProcPagemapReader, type PagemapBulkReader } from './verify/pagemap.ts';
import { systemClock, systemScheduler, type Clock, type Scheduler } from './clock.ts';
import { Verifier, type Verification } from './verify/verifier.ts';

/** A pin with more runs of page state than this is costly to publish (O(runs))… */
const COSTLY_PIN_RUNS = 65536;
/** …and is republished at most this often. */
const COSTLY_REPUBLISH_MS = 500;

export interface CollectorOptions {
  sinks: CollectorSink[];
  config?: Partial<CollectorConfig>;
  /** Default: ProcPagemapReader on /proc. */
  pagemap?: PagemapReader;
  /** Default: ProcMapsReader on /proc. */
  maps?: MapsReader;
  /** CLOCK_MONOTONIC + wall clock; default the system's. */
  clock?: Clock;
  /** Timers for verification; default real (unref'd) timers. */
  scheduler?: Scheduler;
  /** The pinned 2 MiB regions changed (the runner's in-kernel fault filter follows them). */
  onFaultRegions?: (regions: FaultRegion[]) => void;
  /** Pages one timer-driven verification pass reads at most (round-robin beyond that); default 65536. */
  verifyPagesPerPass?: number;
  /** Rules to run; default ALL_RULES. */
  rules?: readonly Rule[];
  /** Continue numbering after an existing database: next event seq, anomaly seq, pin id (default 1). */
  firstEventSeq?: number;
  firstAnomalySeq?: number;
  firstPinId?: number;
  firstIncidentId?: number;
  /** FOLL_* numbering of kprobe gup events; default from the running kernel. */
  follNumbering?: FollNumbering;
  /** A rule handler threw (the rule is skipped for that call). */
  onRuleError?: (ruleId: string, err: unknown) => void;
  /** A sink threw (the other sinks still get the call). Default: the first error is printed to stderr. */
  onSinkError?: (err: unknown) => void;
  /** ParseSink callbacks the collector itself does not need. */
  onReady?: (tag: string) => void;
  onMalformed?: (line: string, reason: string) => void;
  onMessage?: (text: string) => void;
}

export class Collector {
  readonly parseSink: ParseSink;
  readonly config: CollectorConfig;
  readonly model: ShadowModel;
  readonly verifier: Verifier;
  readonly engine: RuleEngine;
  readonly incidents: IncidentGrouper;
  readonly counters = { events: 0, anomalies: 0, incidents: 0, lostEvents: 0, malformed: 0, sinkErrors: 0 };

  private readonly sinks: CollectorSink[];
  /** Every call to the sinks goes through here (one sink failing does not keep the others from it). */
  private readonly out: SinkFanOut;
  private readonly clock: Clock;
  private readonly reader: PagemapReader;
  private readonly ownReader: ProcPagemapReader | null;
  private readonly onFaultRegions?: (regions: FaultRegion[]) => void;
  private readonly onSinkError: (err: unknown) => void;
  private nextSeq: number;
  private regionsKey = '';
  /** Events that touched pins or raised anomalies: the causes incidents are named after. */
  private readonly recent = new RecentEvents();
  /** The event being ingested (its anomalies cite it before it is noted in `recent`). */
  private current: SequencedEvent | null = null;
  private closed = false;
  /** Costly pins whose changes wait for their next publish slot (see publish). */
  private readonly deferred = new Set<PinRecord>();
  private readonly publishedMs = new WeakMap<PinRecord, number>();
  /** Repeated findings handed on (count > 1): an event that only repeats a finding raised something too. */
  private repeats = 0;

  constructor(opts: CollectorOptions) {
    this.sinks = [...opts.sinks];
    this.out = new SinkFanOut(this.sinks, (err) => this.sinkFailed(err));
    this.config = { ...DEFAULT_COLLECTOR_CONFIG, ...opts.config };
    this.clock = opts.clock ?? systemClock;
    this.ownReader = opts.pagemap ? null : new ProcPagemapReader({ clock: this.clock });
    this.reader = opts.pagemap ?? this.ownReader!;
    this.onFaultRegions = opts.onFaultRegions;
    let reported = false;
    this.onSinkError =
      opts.onSinkError ??
      ((err) => {
        if (reported) return;
        reported = true;
        process.stderr.write(`pinwatch: a collector sink failed (further failures are only counted): ${(err as Error)?.stack ?? err}\n`);
      });
    this.nextSeq = opts.firstEventSeq ?? 1;

    this.model = new ShadowModel({
      firstPinId: opts.firstPinId,
      follNumbering: opts.follNumbering,
      kernelRelease: this.config.kernelRelease,
      faultWatch: this.config.faultWatch,
      zeroPfn: this.config.zeroPfn,
    });
    this.verifier = new Verifier({
      model: this.model,
      reader: this.reader,
      maps: opts.maps ?? new ProcMapsReader(),
      clock: this.clock,
      scheduler: opts.scheduler ?? systemScheduler,
      config: this.config,
      onTimerPass: (v) => this.verified(v),
      maxPagesPerPass: opts.verifyPagesPerPass,
    });
    this.engine = new RuleEngine({
      rules: opts.rules ?? ALL_RULES,
      model: this.model,
      config: this.config,
      clock: this.clock,
      emit: (a) => this.emitAnomaly(a),
      readNow: (pin, first, count, reason) => this.readNow(pin, first, count, reason),
      firstAnomalySeq: opts.firstAnomalySeq,
      onError: opts.onRuleError,
    });
    this.incidents = new IncidentGrouper(
      {
        pin: (id) => {
          const p = this.model.pin(id);
          return p ? { source: p.source, handle: p.handleText, writable: p.writable } : null;
        },
        event: (seq) => (this.current?.seq === seq ? this.current : this.recent.get(seq)),
        wallMs: () => this.clock.wallMs(),
      },
      opts.firstIncidentId,
    );
    this.parseSink = {
      event: (e) => this.ingest(e),
      lost: (count) => this.lost(count),
      ready: (tag) => opts.onReady?.(tag),
      malformed: (line, reason) => {
        this.counters.malformed++;
        opts.onMalformed?.(line, reason);
      },
      message: (text) => opts.onMessage?.(text),
    };
  }

  /** The seq the next event will get. */
  get nextEventSeq(): number {
    return this.nextSeq;
  }
  get nextAnomalySeq(): number {
    return this.engine.nextAnomalySeq;
  }
  get nextPinId(): number {
    return this.model.nextPin;
  }
  get nextIncidentId(): number {
    return this.incidents.nextIncidentId;
  }

  /** Number the event, publish it, run model, rules and verification scheduling. */
  ingest(e: TraceEvent): void {
    const se = e as SequencedEvent;
    se.seq = this.nextSeq++;
    this.counters.events++;
    const settled = this.verifier.streamAt(se.tsNs);
    if (settled !== null) this.verified(settled);
    if (this.verifier.hasPending && PIN_RELEASING_KINDS.has(se.kind)) this.verified(this.verifier.flushPid(se.pid));
    const model = this.model;
    const heldBefore = holdsPins(model, se.pid);
    model.apply(se);
    if (model.effects.admissions.length !== 0) model.admit(this.verifier.pinTimeReads(model.effects.admissions));
    const dirty = model.effects.dirty;
    if (dirty) this.verifier.noteEffects(model.effects);
    const raisedBefore = this.counters.anomalies;
    const repeatsBefore = this.repeats;
    this.current = se;
    this.engine.onEvent(se);
    this.current = null;
    const raised = this.counters.anomalies !== raisedBefore || this.repeats !== repeatsBefore;
    // The sinks get the event once its fate is known: a row, or a count (kept-events.ts). Its anomalies, raised
    // by the rules just now, went out first (they cite it by seq; the store writes both in one transaction).
    this.out.event(se, keepEvent(se.kind, heldBefore, heldBefore || holdsPins(model, se.pid), dirty && touchedPin(model.effects), raised));
    if (se.kind === 'lost') this.onLost(se);
    if (dirty || raised) this.recent.note(se);
    if (dirty) this.afterEffects(model.effects);
    if (model.changed.size !== 0 || model.regionsDirty) this.publish();
  }

  /** bpftrace lost `count` events: recorded in the stream (a 'lost' event) to mark the window. */
  lost(count: number): void {
    const e: LostEvent = { kind: 'lost', tsNs: this.clock.nowNs(), pid: 0, tid: 0, comm: '', count };
    this.ingest(e);
  }

  /**
   * A bpftrace process stopped capturing (found dead at `startNs`): from now until gapClosed() anomalies whose
   * evidence window overlaps it are low confidence. Returns the gap (handed to the sinks, again when it closes).
   */
  gapOpened(process: CaptureProcess, cause: string, startNs = this.clock.nowNs()): CaptureGap {
    const g: CaptureGap = { id: 0, process, cause, startNs, endNs: null, startWallMs: this.clock.wallMs(), endWallMs: null, eventsLost: null };
    this.engine.gaps.push(g);
    if (this.engine.gaps.length > 256) this.engine.gaps.shift();
    this.out.gap(g);
    return g;
  }

  /**
   * Capture resumed at endNs (the replacement's probes are attached). Every live pin is re-read against
   * pagemap: a divergence that happened inside the gap is still found (its evidence says so).
   */
  gapClosed(g: CaptureGap, endNs = this.clock.nowNs(), cause?: string): void {
    g.endNs = Math.max(endNs, g.startNs);
    g.endWallMs = this.clock.wallMs();
    if (cause) g.cause = cause;
    this.out.gap(g);
    this.verified(this.verifier.runPending());
    this.verified(this.verifier.reverifyAll('after a capture gap'));
  }

  /**
   * Take in what a /proc scan found already pinned (at start, after a restart): io_uring buffers become pins
   * (origin 'discovered'), and each process's VmPin/VmLck is published with the pages the known pins explain.
   * Returns the pins created.
   */
  adoptDiscovery(d: Discovery): number {
    const ts = this.clock.nowNs();
    let created = 0;
    for (const r of d.rings) {
      for (const b of r.buffers) {
        const pin = this.model.discoverRingBuffer({ pid: r.pid, comm: r.comm, fd: r.fd, slot: b.slot, addr: b.addr, len: b.len, tsNs: ts });
        if (this.model.effects.admissions.length !== 0) this.model.admit(this.verifier.pinTimeReads(this.model.effects.admissions));
        if (!pin) continue;
        created++;
        if (this.model.effects.dirty) this.afterEffects(this.model.effects);
      }
    }
    this.publish();
    for (const m of d.memory) {
      let explained = 0;
      for (const pin of this.model.pinsOf(m.pid)) explained += pin.nPages;
      const row: PinnedMemory = { tsNs: ts, pid: m.pid, comm: m.comm, vmPinPages: m.vmPinPages, vmLckPages: m.vmLckPages, explainedPages: explained };
      this.out.pinnedMemory(row);
    }
    return created;
  }

  /**
   * What a freshly started bpftrace must know to filter in the kernel as the last one did: processes holding
   * pins (their forks and exits are printed), the pin fds whose close() is traced, and the spans of what the
   * model keeps for processes that pin nothing yet (captured backings, fork-advice ranges) so that unmaps over
   * them keep being printed.
   */
  watchSeed(extraPids: readonly number[] = []): WatchSeed {
    const pids = new Set<number>(extraPids);
    const fds: [number, number][] = [];
    const forkAdviceSpans: [number, number, number, number][] = [];
    for (const p of this.model.processes()) {
      const df = p.dontfork.span();
      const wf = p.wipeonfork.span();
      if (df || wf) {
        const lo = Math.min(df?.[0] ?? Infinity, wf?.[0] ?? Infinity);
        const hi = Math.max(df?.[1] ?? 0, wf?.[1] ?? 0);
        forkAdviceSpans.push([p.pid, lo, hi, p.dontfork.size + p.wipeonfork.size]);
      }
      if (p.pins.size === 0) continue;
      pids.add(p.pid);
      for (const fd of p.handles.keys()) fds.push([p.pid, fd]);
    }
    return { pids: [...pids].sort((a, b) => a - b), fds, backingSpans: this.model.mmapBackings.spans(), forkAdviceSpans };
  }

  /** Send a changed gap (e.g. its cause) to the sinks again. */
  gapUpdated(g: CaptureGap): void {
    this.out.gap(g);
  }

  /** Run pending and periodic pagemap reads now (tests, shutdown). */
  verifyNow(): void {
    this.verified(this.verifier.runPending());
    this.verified(this.verifier.runPeriodic(true));
    this.verified(this.verifier.settleAll());
    this.publish(true);
  }

  /** A periodic pass now (all pages when `full`), its results handed on as the timer's are (benchmarks). */
  verifyPass(full = false): void {
    this.verified(this.verifier.runPeriodic(full));
  }

  /** Live pins (including orphans), as the schema's Pin. */
  pins(): Pin[] {
    return [...this.model.livePins()].map((p) => p.toPin());
  }

  /** Last verification pass, then stop timers. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.verifyNow();
    this.engine.flushRepeats(true);
    this.closed = true;
    this.verified(this.verifier.close());
    this.ownReader?.close();
  }

  // ---------------------------------------------------------------- internals

  private afterEffects(fx: ModelEffects): void {
    const v = this.verifier;
    for (const z of fx.zaps) v.schedule(z.pin, z.firstPage, z.count, z.how);
    for (const m of fx.moves) v.schedule(m.pin, m.firstPage, m.count, 'mremap');
    for (const t of fx.touched) v.schedule(t.pin, t.firstPage, t.count, t.reason);
    if (fx.created.length) v.updatePeriodic();
    if (fx.exitedPid !== null) this.emitIncidents(this.incidents.processGone(fx.exitedPid));
    // The pagemap fd stays open per pid only while it has pins (and never past its exit: pids get reused).
    const release = (this.reader as Partial<PagemapBulkReader>).release;
    if (release) {
      if (fx.exitedPid !== null) release.call(this.reader, fx.exitedPid);
      for (const r of fx.released) if (!this.model.hasPins(r.pin.pid)) release.call(this.reader, r.pin.pid);
    }
  }

  /**
   * A verification pass's results, handed on in the order found: reads to the sinks, checks whose verdict
   * stands to the rules; then processes found gone are ended in the model, the rules tick, changed pins go out.
   */
  private verified(v: Verification | null): void {
    if (v === null) return;
    for (const f of v.findings) {
      if (f.read) this.out.pagemapRead(f.read, f.reason);
      else {
        this.engine.onPagemap(f.check);
        if (f.settled) this.publish();
      }
    }
    for (const pid of v.gone) this.processGone(pid);
    if (v.tickNs !== null) {
      this.engine.onTick(v.tickNs);
      this.out.verifySweep(this.verifier.sweepStats);
    }
    this.publish();
  }

  /** The rules' immediate reads (a zap confirmed at once): the reads go to the sinks as they are made. */
  private readNow(pin: PinRecord, first: number, count: number, reason: string): PagemapRead[] {
    const reads = this.verifier.readNow(pin, first, count, reason);
    for (const r of reads) this.out.pagemapRead(r, reason);
    return reads;
  }

  private processGone(pid: number): void {
    const comm = this.model.process(pid)?.comm ?? '';
    if (!this.model.processGone(pid, this.clock.nowNs())) return;
    // A synthetic exit (seq -1: not in the event stream) so effect-driven rules see the orphans.
    const e = { kind: 'exit', tsNs: this.clock.nowNs(), pid, tid: pid, comm, seq: -1 } as ExitEvent & { seq: number };
    if (this.model.effects.dirty) this.verifier.noteEffects(this.model.effects);
    this.engine.onEvent(e);
    if (this.model.effects.dirty) this.afterEffects(this.model.effects);
    this.publish();
  }

  private onLost(e: LostEvent): void {
    this.counters.lostEvents += e.count;
    this.engine.noteLost(e.tsNs);
    this.out.lost(e.count);
  }

  /**
   * Publish changed pins and, if they changed, the pinned regions. A costly pin (more than COSTLY_PIN_RUNS runs
   * of page state: publishing it is O(runs)) goes out at most every COSTLY_REPUBLISH_MS; changes in between wait
   * in `deferred` (flushed by a later publish, verifyNow and close). Releases always go out at once.
   */
  private publish(force = false): void {
    const model = this.model;
    if (this.deferred.size !== 0) {
      for (const rec of this.deferred) model.changed.add(rec);
      this.deferred.clear();
    }
    if (model.changed.size !== 0) {
      const changed = [...model.changed];
      model.changed.clear();
      const nowMs = this.clock.wallMs();
      for (const rec of changed) {
        if (!force && rec.live && rec.stateRuns > COSTLY_PIN_RUNS) {
          const last = this.publishedMs.get(rec);
          if (last !== undefined && nowMs - last < COSTLY_REPUBLISH_MS) {
            this.deferred.add(rec);
            continue;
          }
          this.publishedMs.set(rec, nowMs);
        }
        const pin = rec.toPin();
        if (pin.releasedNs !== null || pin.state === 'released') this.emitIncidents(this.incidents.pinReleased(pin.id));
        this.out.pin(pin);
      }
    }
    if (model.regionsDirty) {
      model.regionsDirty = false;
      if (this.onFaultRegions) {
        const regions = model.faultRegions();
        const key = regions.map((r) => `${r.pid}:${r.region}`).join(',');
        if (key !== this.regionsKey) {
          this.regionsKey = key;
          this.onFaultRegions(regions);
        }
      }
    }
  }

  private emitAnomaly(a: Anomaly): void {
    if ((a.count ?? 1) === 1) this.counters.anomalies++;
    else this.repeats++;
    this.out.anomaly(a);
    this.emitIncidents([this.incidents.add(a)]);
  }

  private emitIncidents(updates: IncidentUpdate[]): void {
    for (const u of updates) {
      if (u.change === 'opened') this.counters.incidents++;
      this.out.incident(u.incident, u.change);
    }
  }

  private sinkFailed(err: unknown): void {
    this.counters.sinkErrors++;
    this.onSinkError(err);
  }
}
