// Waits for an incident's findings to settle before telling anyone: a zap raises pinned-range-zapped at once and
// the pagemap check that confirms the divergence ~20 ms later, so the first state of an incident is rarely its
// real one. onSettled(i, false) fires settleMs after an incident opens, with its state then; later, an incident
// whose severity rises fires onSettled(i, true) at once. Used by the webhook, the browser notifications and the
// incident counters, so all three count the same thing.
import { SEVERITIES } from '../../schema/anomalies.ts';
import type { Incident, IncidentChange } from '../../schema/incidents.ts';
import { QUIET_CAP_NS } from '../rules/sources/teardown.ts';

/**
 * Default wait: past the verifier's 20 ms re-read after an event, and past the longest a zap of an io_uring buffer
 * waits for teardown evidence (rules/sources/teardown.ts: its window ends by the quiet-stream cap at the latest), so
 * the one POST of an incident carries the zap as well as the divergence it caused.
 */
export const SETTLE_MS = QUIET_CAP_NS / 1e6 + 500;

const rank = (s: string) => SEVERITIES.indexOf(s as (typeof SEVERITIES)[number]);

export class IncidentSettler {
  private readonly pending = new Map<number, { latest: Incident; timer: ReturnType<typeof setTimeout> }>();
  /** Severity told per incident id (bounded: escalations come within seconds of opening). */
  private readonly told = new Map<number, string>();

  constructor(
    private readonly settleMs: number,
    private readonly onSettled: (i: Incident, escalation: boolean) => void,
    private readonly maxRemembered = 10_000,
  ) {}

  update(i: Incident, change: IncidentChange): void {
    if (change === 'closed') return;
    const p = this.pending.get(i.id);
    if (p) {
      p.latest = i;
      return;
    }
    const was = this.told.get(i.id);
    if (was === undefined) {
      const timer = setTimeout(() => {
        const settled = this.pending.get(i.id)!.latest;
        this.pending.delete(i.id);
        this.tell(settled, false);
      }, this.settleMs);
      (timer as { unref?: () => void }).unref?.();
      this.pending.set(i.id, { latest: i, timer });
    } else if (rank(i.severity) < rank(was)) {
      this.tell(i, true);
    }
  }

  close(): void {
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
  }

  private tell(i: Incident, escalation: boolean): void {
    this.told.set(i.id, i.severity);
    if (this.told.size > this.maxRemembered) this.told.delete(this.told.keys().next().value!);
    this.onSettled(i, escalation);
  }
}
