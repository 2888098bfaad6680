// One pin source as a plug-in of the shadow model: how its pins start (the events it handles, its reply to a
// registration syscall, the kprobe GUP calls it claims), what identity they have (the handle kind and key:
// ring fd + slot, container fd + iova, MR range), what releases them, and what counts as a hazard on them
// (its promise, read by the rules). The model keeps processes, ranges and per-page state; a new source is one
// file here, listed in index.ts, plus its scenarios.
import type { EventKind, GupEvent, PinIovecEvent, PinResultEvent, PinSource, SequencedEvent } from '../../../schema/events.ts';
import type { HandleRecord } from '../pin-record.ts';
import type { ProcessState } from '../process.ts';
import type { ModelState } from '../state.ts';
import type { SourcePromise } from './promise.ts';

export type Seq = { seq: number };

/** A registration syscall that returned: the iovecs it was given and the exact pfns GUP took inside it. */
export interface RegistrationCall {
  p: ProcessState;
  e: PinResultEvent & Seq;
  iovecs: PinIovecEvent[];
  gups: GupEvent[] | undefined;
}

export interface PinSourcePlugin {
  readonly source: PinSource;
  /** What the holder of such a pin relies on, and so what is a hazard on it. */
  readonly promise: SourcePromise;
  /** The fd its pins hang off (names them, decides how they are released with it). */
  readonly handleKind: HandleRecord['kind'];
  /** Pins made by its registration syscall (pin_result): writable (FOLL_WRITE), long-term (FOLL_LONGTERM). */
  readonly writable: boolean;
  readonly longterm: boolean;
  /** The registration syscall returns how many bytes it pinned (vmsplice): later iovecs are cut to that. */
  readonly retCountsBytes?: boolean;
  /** Event kinds that may release its pins, besides close and exit of their holders. */
  readonly releasedBy: readonly EventKind[];
  /** Event kinds of its own (e.g. vfio_dma) and what each does to the model. */
  readonly events?: Partial<Record<EventKind, (m: ModelState, e: SequencedEvent) => void>>;
  /** Its registration syscall returned; default: every iovec becomes a pin appended to the handle. */
  onResult?(m: ModelState, call: RegistrationCall): void;
  /** A kprobe gup event outside any registration syscall in flight: true when this source took it. */
  claimGup?(m: ModelState, e: GupEvent & Seq): boolean;
}
