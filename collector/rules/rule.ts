// The shape of a rule, Falco style: data a user reads (RuleInfo) plus a few small functions the engine
// calls. A rule sees an event only if it asked for its kind (`kinds`) or asked for model effects
// (`effects: true`: called whenever the shadow model recorded something about pinned pages for the event).
// Rules keep their memory in the state object init() returns (one per engine), never in module scope.
// Rules must not throw; the engine catches and counts anyway.
import type { Anomaly, Evidence, PagemapRead, RuleId, RuleInfo, Severity } from '../../schema/anomalies.ts';
import type { EventKind, SequencedEvent } from '../../schema/events.ts';
import type { CaptureGap } from '../../schema/reliability.ts';
import type { CollectorConfig } from '../contracts.ts';
import type { ModelEffects } from '../model/effects.ts';
import type { PinRecord } from '../model/pin-record.ts';
import type { ShadowModel } from '../model/shadow-model.ts';
import type { PageCheck } from '../verify/verifier.ts';

/** What a rule fills in; the engine adds seq, severity default, comm, wallMs, lowConfidence. */
export interface AnomalyDraft {
  rule: RuleId;
  /** Defaults to the rule's info.severity (info-level variants override it). */
  severity?: Severity;
  pid: number;
  comm?: string;
  /** Page-aligned by the engine. */
  addr: number;
  len?: number;
  pfn?: number | null;
  newPfn?: number | null;
  confirmed?: boolean;
  /** CLOCK_MONOTONIC ns of the triggering event. */
  tsNs: number;
  pinId?: number | null;
  summary: string;
  evidence: Evidence[];
}

export interface RuleContext {
  readonly model: ShadowModel;
  /** What the model did with the current event (valid inside onEvent). */
  readonly effects: ModelEffects;
  readonly config: CollectorConfig;
  nowNs(): number;
  /** Timestamp of the latest traced event: the stream lags the clock, so "has X happened by then" asks this. */
  streamNs(): number;
  raise(d: AnomalyDraft): Anomaly;
  /** The latest capture gap (bpftrace not capturing) overlapping [fromNs, toNs], or null. */
  gapOverlapping(fromNs: number, toNs: number): CaptureGap | null;
  /**
   * Read pagemap for pages of a pin right now (reported to the sinks with `reason`). For rules that can
   * confirm what an event did at once. Not routed back to onPagemap.
   */
  readNow(pin: PinRecord, firstPage: number, count: number, reason: string): PagemapRead[];
}

export interface Rule<S = any> {
  info: RuleInfo;
  /** Event kinds onEvent wants even when the model recorded nothing about pins. */
  kinds?: readonly EventKind[];
  /** Also call onEvent for any event after which the model recorded pin effects. */
  effects?: boolean;
  init?(): S;
  onEvent?(e: SequencedEvent, ctx: RuleContext, state: S): void;
  onPagemap?(check: PageCheck, ctx: RuleContext, state: S): void;
  onTick?(nowNs: number, ctx: RuleContext, state: S): void;
}

/** Helper so rule files get their state type checked. */
export function defineRule<S>(r: Rule<S>): Rule<S> {
  return r;
}
