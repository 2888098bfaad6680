// Runs the rules: dispatches each event to the rules that asked for its kind (and, when the model recorded
// pin effects, to the rules that asked for effects), pagemap checks and ticks to all; numbers anomalies,
// fills in the common fields and marks them low-confidence near lost events or when their evidence window
// overlaps a capture gap. A finding made again (same rule, severity, pin, process, address, verdict: a pinning
// process forking 20,000 times) is counted on the first anomaly (count, lastTsNs), re-sent at most once a
// second, instead of becoming another row. A rule that throws is counted and skipped, never fatal.
import type { Anomaly, PagemapRead } from '../../schema/anomalies.ts';
import { overlapsGap, type CaptureGap } from '../../schema/reliability.ts';
import type { EventKind, SequencedEvent } from '../../schema/events.ts';
import { EVENT_KINDS } from '../../schema/event-kinds.ts';
import { PAGE_SIZE } from '../../schema/kernel.ts';
import type { CollectorConfig } from '../contracts.ts';
import type { PinRecord } from '../model/pin-record.ts';
import { pageDown } from '../model/ranges.ts';
import type { ShadowModel } from '../model/shadow-model.ts';
import type { PageCheck } from '../verify/classify.ts';
import type { Clock } from '../clock.ts';
import type { AnomalyDraft, Rule, RuleContext } from './rule.ts';

interface Bound {
  rule: Rule;
  state: unknown;
}

export interface RuleEngineOptions {
  rules: readonly Rule[];
  model: ShadowModel;
  config: CollectorConfig;
  clock: Clock;
  emit(a: Anomaly): void;
  /** Immediate pagemap reads for rules (ctx.readNow). */
  readNow?(pin: PinRecord, firstPage: number, count: number, reason: string): PagemapRead[];
  firstAnomalySeq?: number;
  onError?(ruleId: string, err: unknown): void;
}

const LOST_MEMORY = 64;
/** Findings remembered for counting repeats (oldest forgotten first). */
const MAX_FINDINGS = 65_536;
/** A repeated finding is re-sent to the sinks at most this often (ms of wall clock). */
const REPEAT_EMIT_MS = 1000;

function findingKey(a: Anomaly): string {
  return `${a.rule}|${a.severity}|${a.pinId ?? ''}|${a.pid}|${a.addr}|${a.len}|${a.confirmed ? 1 : 0}`;
}

export class RuleEngine {
  readonly ctx: RuleContext;
  /** Rule handler exceptions caught (should stay 0). */
  errors = 0;
  private nextSeq: number;
  private readonly bound: Bound[];
  private readonly always = new Map<string, Bound[]>();
  private readonly ifEffects = new Map<string, Bound[]>();
  private readonly defaultIfEffects: Bound[];
  private readonly lostTs: number[] = [];
  private readonly o: RuleEngineOptions;
  /** Timestamp of the latest event of the stream (not synthetic): how far the model has seen the kernel. */
  private streamNs = 0;
  /** Capture gaps of this collector (shared with the pipeline; open gaps have endNs null). */
  readonly gaps: CaptureGap[] = [];
  private readonly findings = new Map<string, { a: Anomaly; emittedMs: number }>();
  private readonly unsent = new Set<Anomaly>();

  constructor(opts: RuleEngineOptions) {
    this.o = opts;
    this.nextSeq = opts.firstAnomalySeq ?? 1;
    this.bound = opts.rules.map((rule) => ({ rule, state: rule.init ? rule.init() : undefined }));
    const effectRules = this.bound.filter((b) => b.rule.effects && b.rule.onEvent);
    this.defaultIfEffects = effectRules;
    for (const kind of EVENT_KINDS) {
      const a = this.bound.filter((b) => b.rule.onEvent && b.rule.kinds?.includes(kind));
      if (a.length) this.always.set(kind, a);
      this.ifEffects.set(kind, effectRules.filter((b) => !a.includes(b)));
    }
    const engine = this;
    this.ctx = {
      model: opts.model,
      get effects() {
        return opts.model.effects;
      },
      config: opts.config,
      nowNs: () => opts.clock.nowNs(),
      streamNs: () => engine.streamNs,
      raise: (d: AnomalyDraft) => engine.raise(d),
      gapOverlapping: (fromNs: number, toNs: number) => overlapsGap(engine.gaps, fromNs, toNs),
      readNow: (pin, first, count, reason) => (opts.readNow ? opts.readNow(pin, first, count, reason) : []),
    };
  }

  /** The seq the next anomaly will get. */
  get nextAnomalySeq(): number {
    return this.nextSeq;
  }

  /** Call after model.apply(e). */
  onEvent(e: SequencedEvent): void {
    if (e.seq >= 0 && e.tsNs > this.streamNs) this.streamNs = e.tsNs;
    const a = this.always.get(e.kind);
    if (a !== undefined) for (let i = 0; i < a.length; i++) this.call(a[i], e);
    if (this.o.model.effects.dirty) {
      const b = this.ifEffects.get(e.kind) ?? this.defaultIfEffects;
      for (let i = 0; i < b.length; i++) this.call(b[i], e);
    }
  }

  onPagemap(check: PageCheck): void {
    for (const b of this.bound) {
      if (!b.rule.onPagemap) continue;
      try {
        b.rule.onPagemap(check, this.ctx, b.state);
      } catch (err) {
        this.failed(b, err);
      }
    }
  }

  onTick(nowNs: number): void {
    this.flushRepeats();
    for (const b of this.bound) {
      if (!b.rule.onTick) continue;
      try {
        b.rule.onTick(nowNs, this.ctx, b.state);
      } catch (err) {
        this.failed(b, err);
      }
    }
  }

  /** Lost events happened at tsNs: anomalies within lostWindowNs of it are low confidence. */
  noteLost(tsNs: number): void {
    this.lostTs.push(tsNs);
    if (this.lostTs.length > LOST_MEMORY) this.lostTs.shift();
  }

  /** Send the latest count of findings repeated since they were last sent (a second ago or more, or all: `force`). */
  flushRepeats(force = false): void {
    if (this.unsent.size === 0) return;
    const now = this.o.clock.wallMs();
    for (const a of this.unsent) {
      const f = this.findings.get(findingKey(a));
      if (!force && f && now - f.emittedMs < REPEAT_EMIT_MS) continue;
      if (f) f.emittedMs = now;
      this.unsent.delete(a);
      this.o.emit(a);
    }
  }

  raise(d: AnomalyDraft): Anomaly {
    const model = this.o.model;
    const pin = d.pinId != null ? model.pin(d.pinId) : undefined;
    const from = Math.min(pin?.createdNs ?? d.tsNs, d.tsNs);
    const a: Anomaly = {
      seq: 0,
      rule: d.rule,
      severity: d.severity ?? this.severityOf(d.rule),
      pid: d.pid,
      comm: d.comm ?? model.process(d.pid)?.comm ?? pin?.comm ?? '',
      addr: pageDown(Math.max(0, d.addr)),
      len: d.len ?? PAGE_SIZE,
      pfn: d.pfn ?? null,
      newPfn: d.newPfn ?? null,
      confirmed: d.confirmed ?? false,
      lowConfidence: this.nearLost(d.tsNs) || overlapsGap(this.gaps, from, Math.max(d.tsNs, this.o.clock.nowNs())) !== null,
      tsNs: d.tsNs,
      wallMs: this.o.clock.wallMs(),
      pinId: d.pinId ?? null,
      summary: d.summary,
      evidence: d.evidence,
    };
    const key = findingKey(a);
    const seen = this.findings.get(key);
    if (seen) {
      const first = seen.a;
      first.count = (first.count ?? 1) + 1;
      first.lastTsNs = Math.max(first.lastTsNs ?? first.tsNs, d.tsNs);
      if (a.lowConfidence) first.lowConfidence = true;
      const now = this.o.clock.wallMs();
      if (now - seen.emittedMs >= REPEAT_EMIT_MS) {
        seen.emittedMs = now;
        this.unsent.delete(first);
        this.o.emit(first);
      } else this.unsent.add(first);
      return first;
    }
    a.seq = this.nextSeq++;
    if (this.findings.size >= MAX_FINDINGS) this.findings.delete(this.findings.keys().next().value as string);
    this.findings.set(key, { a, emittedMs: this.o.clock.wallMs() });
    this.o.emit(a);
    return a;
  }

  private severityOf(id: string) {
    for (const b of this.bound) if (b.rule.info.id === id) return b.rule.info.severity;
    return 'warning' as const;
  }

  private nearLost(ts: number): boolean {
    const w = this.o.config.lostWindowNs;
    for (let i = this.lostTs.length - 1; i >= 0; i--) if (Math.abs(ts - this.lostTs[i]) <= w) return true;
    return false;
  }

  private call(b: Bound, e: SequencedEvent): void {
    try {
      b.rule.onEvent!(e, this.ctx, b.state);
    } catch (err) {
      this.failed(b, err);
    }
  }

  private failed(b: Bound, err: unknown): void {
    this.errors++;
    this.o.onError?.(b.rule.info.id, err);
  }
}

export type { EventKind };
