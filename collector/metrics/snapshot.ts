// Keeps the counts /metrics reports and takes a MetricsSnapshot on demand. Fed with anomalies and incident
// changes as they happen (live) or seeded once from a recording (replay); everything else (pins, events,
// lost events, capture state) is read from its inputs at snapshot time. Nothing here runs per event.
import type { Anomaly, RuleId, Severity } from '../../schema/anomalies.ts';
import type { EventKind } from '../../schema/events.ts';
import type { Incident, IncidentChange } from '../../schema/incidents.ts';
import type { MetricsSnapshot, PinGroup, RuleSeverityCount, VerifySweep } from '../../schema/metrics.ts';
import { isLivePin, type PinSummary } from '../../schema/pins.ts';
import type { SessionInfo } from '../../schema/session.ts';
import { IncidentSettler, SETTLE_MS } from '../incidents/settle.ts';

export interface SnapshotInputs {
  kind: 'live' | 'replay';
  session(): SessionInfo | null;
  pins(): PinSummary[];
  eventsByKind(): Partial<Record<EventKind, number>>;
  lostEvents(): number;
  /** Live capture state; null for a recording. */
  capture(): { up: boolean; gaps: number; lastEventWallMs: number | null } | null;
  /** The live collector's pagemap sweep; null for a recording. */
  verifySweep?(): VerifySweep | null;
  /** The `host` label; default the session's host name. */
  hostLabel?: string;
  now?: () => number;
}

class RuleSeverityCounts {
  private readonly m = new Map<string, RuleSeverityCount>();
  add(rule: RuleId, severity: Severity, n = 1): void {
    const k = `${rule}\0${severity}`;
    const c = this.m.get(k);
    if (c) c.count += n;
    else this.m.set(k, { rule, severity, count: n });
  }
  list(): RuleSeverityCount[] {
    return [...this.m.values()].map((c) => ({ ...c }));
  }
}

export class MetricsTracker {
  private readonly anomalies = new RuleSeverityCounts();
  private readonly incidents = new RuleSeverityCounts();
  /** Open incident id → severity. */
  private readonly open = new Map<number, Severity>();
  private readonly settler = new IncidentSettler(SETTLE_MS, (i, escalation) => {
    if (!escalation) this.incidents.add(i.rules[0]!, i.severity);
  });
  private readonly webhook = { sent: 0, failed: 0 };
  private readonly now: () => number;

  constructor(private readonly inputs: SnapshotInputs) {
    this.now = inputs.now ?? Date.now;
  }

  anomaly(a: Anomaly): void {
    this.anomalies.add(a.rule, a.severity);
  }

  incident(i: Incident, change: IncidentChange): void {
    if (change === 'closed') this.open.delete(i.id);
    else this.open.set(i.id, i.severity);
    this.settler.update(i, change);
  }

  /** A recording: its anomaly counts and incidents, once. */
  seed(anomalyCounts: readonly RuleSeverityCount[], incidents: readonly Incident[]): void {
    for (const c of anomalyCounts) this.anomalies.add(c.rule, c.severity, c.count);
    for (const i of incidents) {
      this.incidents.add(i.rules[0]!, i.severity);
      if (i.closedWallMs === null) this.open.set(i.id, i.severity);
    }
  }

  webhookOutcome(ok: boolean): void {
    if (ok) this.webhook.sent++;
    else this.webhook.failed++;
  }

  snapshot(): MetricsSnapshot | null {
    const s = this.inputs.session();
    if (!s) return null;
    const capture = this.inputs.capture();
    const openBySeverity: Partial<Record<Severity, number>> = {};
    for (const sev of this.open.values()) openBySeverity[sev] = (openBySeverity[sev] ?? 0) + 1;
    const since = capture?.lastEventWallMs ?? s.startedWallMs;
    return {
      host: this.inputs.hostLabel ?? s.host,
      kernel: s.kernel,
      source: this.inputs.kind,
      mode: s.mode,
      bpftraceVersion: s.bpftraceVersion,
      bpftraceUp: capture ? capture.up : null,
      lastEventAgeSeconds: capture ? Math.max(0, (this.now() - since) / 1000) : null,
      captureGaps: capture?.gaps ?? 0,
      lostEvents: this.inputs.lostEvents(),
      lostByKind: s.lostByKind ?? {},
      eventsByKind: this.inputs.eventsByKind(),
      anomalies: this.anomalies.list(),
      incidents: this.incidents.list(),
      openIncidents: openBySeverity,
      pins: groupPins(this.inputs.pins()),
      probes: s.probes.map((p) => ({ script: p.script, attached: p.attached })),
      webhook: { ...this.webhook },
      ...sweepOf(this.inputs.verifySweep?.() ?? null),
    };
  }

  close(): void {
    this.settler.close();
  }
}

/** Live pins by (source, pid). */
export function groupPins(pins: readonly PinSummary[]): PinGroup[] {
  const groups = new Map<string, PinGroup>();
  for (const p of pins) {
    if (!isLivePin(p)) continue;
    const k = `${p.source}\0${p.pid}`;
    let g = groups.get(k);
    if (!g) groups.set(k, (g = { source: p.source, pid: p.pid, comm: p.comm, pins: 0, pages: 0, bytes: 0, divergentPages: 0 }));
    g.pins++;
    g.pages += p.pageCount;
    g.bytes += p.len;
    g.divergentPages += p.divergedPages;
  }
  return [...groups.values()];
}

function sweepOf(s: VerifySweep | null): { verifySweep?: VerifySweep } {
  return s ? { verifySweep: s } : {};
}
