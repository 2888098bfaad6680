// Events lost per printed kind. bpftrace 0.17 reports only a total of records the perf buffer dropped
// ("lost_events"). The main program is composed with countSent (runner/program.ts): every event printf is
// preceded by a per-CPU count of its kind, printed once a second and at exit; the parser counts the lines that
// arrived (parse receivedByKind). Counted minus arrived is what was lost, per kind.
//
// A count printed at time t covers lines emitted before t that may still sit in another CPU's perf buffer, so
// each print is judged when the NEXT one arrives (a second later): what the kernel had counted then and has still
// not arrived is lost. When a program ends (restart, stop) its last print is judged once its output is drained.
// Restarts start a program's counts at zero: what earlier programs lost is carried.

/** Counted minus arrived, per kind, never below zero. */
function lostOf(counted: Readonly<Record<string, number>>, arrived: Readonly<Record<string, number>>, baseline: Readonly<Record<string, number>>): Map<string, number> {
  const out = new Map<string, number>();
  for (const kind of Object.keys(counted)) {
    const n = counted[kind]! - ((arrived[kind] ?? 0) - (baseline[kind] ?? 0));
    if (n > 0) out.set(kind, n);
  }
  return out;
}

export class CaptureLoss {
  private baseline: Readonly<Record<string, number>> = {};
  private pending: Readonly<Record<string, number>> | null = null;
  private current = new Map<string, number>();
  private readonly carried = new Map<string, number>();

  /** @param arrived cumulative event lines per printed kind since this process started (parse receivedByKind). */
  constructor(private readonly arrived: () => Readonly<Record<string, number>>) {}

  /** A new program starts (at start and every restart): its counts begin at zero. */
  restart(): void {
    this.settle();
    for (const [kind, n] of this.current) this.carried.set(kind, (this.carried.get(kind) ?? 0) + n);
    this.current = new Map();
    this.baseline = { ...this.arrived() };
    this.pending = null;
  }

  /** A print of the program's counts arrived. Returns true when the loss changed. */
  counted(counts: Readonly<Record<string, number>>): boolean {
    const judged = this.pending;
    this.pending = counts;
    return judged !== null && this.judge(judged);
  }

  /** The program ended and its output is drained: judge its last print now. Returns true when the loss changed. */
  settle(): boolean {
    const judged = this.pending;
    this.pending = null;
    return judged !== null && this.judge(judged);
  }

  /** Lost per kind over every program of this session (kinds with none left out). */
  byKind(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [kind, n] of this.carried) out[kind] = n;
    for (const [kind, n] of this.current) out[kind] = (out[kind] ?? 0) + n;
    return out;
  }

  total(): number {
    let n = 0;
    for (const v of Object.values(this.byKind())) n += v;
    return n;
  }

  private judge(counts: Readonly<Record<string, number>>): boolean {
    const next = lostOf(counts, this.arrived(), this.baseline);
    // Counts are cumulative: the newest judgement replaces the last (a line late by over a second, once it
    // arrives, is no longer counted lost).
    let changed = next.size !== this.current.size;
    if (!changed) for (const [kind, n] of next) if (this.current.get(kind) !== n) changed = true;
    this.current = next;
    return changed;
  }
}
