// Runs the rules: dispatches each event to the rules that asked for its kind (and, when the model recorded
// pin effects, to the rules that asked for effects), pagemap checks and ticks to all; numbers anomalies,
// fills in the common fields and marks them low-confidence near lost events. A rule that throws is
// counted and skipped, never fatal.
import type { Anomaly, PagemapRead } from '../../schema/anomalies.ts';
import type { EventKind, SequencedEvent } from '../../schema/events.ts';
import { EVENT_KINDS } from '../../schema/events.ts';
import { PAGE_SIZE } from '../../schema/kernel.ts';
import type { CollectorConfig } from '../contracts.ts';
import type { PinRecord } from '../model/pin-record.ts';
import { pageDown } from '../model/ranges.ts';
import type { ShadowModel } from '../model/shadow-model.ts';
import type { PageCheck } from '../verify/verifier.ts';
import type { Clock } from '../verify/time.ts';
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

  raise(d: AnomalyDraft): Anomaly {
    const model = this.o.model;
    const pin = d.pinId != null ? model.pin(d.pinId) : undefined;
    const a: Anomaly = {
      seq: this.nextSeq++,
      rule: d.rule,
      severity: d.severity ?? this.severityOf(d.rule),
      pid: d.pid,
      comm: d.comm ?? model.process(d.pid)?.comm ?? pin?.comm ?? '',
      addr: pageDown(Math.max(0, d.addr)),
      len: d.len ?? PAGE_SIZE,
      pfn: d.pfn ?? null,
      newPfn: d.newPfn ?? null,
      confirmed: d.confirmed ?? false,
      lowConfidence: this.nearLost(d.tsNs),
      tsNs: d.tsNs,
      wallMs: this.o.clock.wallMs(),
      pinId: d.pinId ?? null,
      summary: d.summary,
      evidence: d.evidence,
    };
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
