// /metrics for the server's main source: a MetricsTracker (collector/metrics/snapshot.ts) fed by the source's
// anomalies and incidents (live) or seeded from the recording (replay), turned into Prometheus metrics by
// collector/metrics/registry.ts at scrape time. The registry only sees snapshots, so a collector in another
// process can hand its snapshot over instead.
import type { Registry } from 'prom-client';
import type { Anomaly } from '../../schema/anomalies.ts';
import type { Incident, IncidentChange } from '../../schema/incidents.ts';
import { buildRegistry } from '../../collector/metrics/registry.ts';
import { MetricsTracker } from '../../collector/metrics/snapshot.ts';
import type { MetricsSnapshot } from '../../schema/metrics.ts';
import type { DataSource } from './sources.ts';

export interface DashboardMetricsOptions {
  /** The `host` label (default: the host name the session recorded). */
  hostLabel?: string;
}

export class DashboardMetrics {
  readonly registry: Registry;
  private readonly tracker: MetricsTracker;
  private readonly source: DataSource;
  private readonly onAnomaly = (a: Anomaly) => this.tracker.anomaly(a);
  private readonly onIncident = (i: Incident, change: IncidentChange) => this.tracker.incident(i, change);

  constructor(source: DataSource, opts: DashboardMetricsOptions = {}) {
    this.source = source;
    const replay = source.info().kind === 'replay';
    this.tracker = new MetricsTracker({
      kind: replay ? 'replay' : 'live',
      session: () => source.session(),
      pins: () => source.pins(),
      eventsByKind: () => source.eventCounts(),
      lostEvents: () => source.lostEvents(),
      capture: () => source.capture(),
      verifySweep: () => source.verifySweep(),
      hostLabel: opts.hostLabel,
    });
    if (replay) {
      this.tracker.seed(source.reader()!.anomalyCounts(), source.incidents());
    } else {
      source.on('anomaly', this.onAnomaly);
      source.on('incident', this.onIncident);
    }
    this.registry = buildRegistry(() => this.tracker.snapshot());
  }

  snapshot(): MetricsSnapshot | null {
    return this.tracker.snapshot();
  }

  webhookOutcome(ok: boolean): void {
    this.tracker.webhookOutcome(ok);
  }

  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  close(): void {
    this.source.off('anomaly', this.onAnomaly);
    this.source.off('incident', this.onIncident);
    this.tracker.close();
    this.registry.clear();
  }
}
