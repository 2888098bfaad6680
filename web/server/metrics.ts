// Prometheus /metrics for the server's main source: events by kind, anomalies by rule and severity, lost
// events, live pins, webhook deliveries. The source keeps the counts (live: one increment per event, no
// prom-client call on the hot path); they are copied into prom-client at scrape time. A replayed recording
// reports its totals the same way.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Anomaly } from '../../schema/anomalies.ts';
import type { DataSource } from './sources.ts';

export class DashboardMetrics {
  readonly registry = new Registry();
  private readonly anomaliesByKey = new Map<string, { rule: string; severity: string; n: number }>();
  private webhookSent = 0;
  private webhookFailed = 0;
  private readonly source: DataSource;
  private readonly onAnomaly = (a: Anomaly) => this.countAnomaly(a.rule, a.severity, 1);

  constructor(source: DataSource) {
    this.source = source;
    if (source.info().kind === 'replay') {
      for (const c of source.reader()!.anomalyCounts()) this.countAnomaly(c.rule, c.severity, c.count);
    } else {
      source.on('anomaly', this.onAnomaly);
    }

    const self = this;
    new Counter({
      name: 'pinwatch_events_total',
      help: 'Trace events received from bpftrace, by kind',
      labelNames: ['kind'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [kind, n] of Object.entries(self.source.eventCounts())) this.inc({ kind }, n ?? 0);
      },
    });
    new Counter({
      name: 'pinwatch_anomalies_total',
      help: 'Anomalies raised, by rule and severity',
      labelNames: ['rule', 'severity'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const c of self.anomaliesByKey.values()) this.inc({ rule: c.rule, severity: c.severity }, c.n);
      },
    });
    new Counter({
      name: 'pinwatch_lost_events_total',
      help: 'Events bpftrace reported lost (perf buffer full); anomalies near them are low confidence',
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(self.source.lostEvents());
      },
    });
    new Gauge({
      name: 'pinwatch_pins_live',
      help: 'Registered DMA buffers (pins) not yet released',
      registers: [this.registry],
      collect() {
        this.set(self.source.pins().filter((p) => p.state !== 'released' && p.releasedNs === null).length);
      },
    });
    new Gauge({
      name: 'pinwatch_pins_diverged',
      help: 'Live pins with at least one page whose PTE maps a different pfn than the pinned one',
      registers: [this.registry],
      collect() {
        this.set(self.source.pins().filter((p) => p.state === 'diverged' && p.releasedNs === null).length);
      },
    });
    new Gauge({
      name: 'pinwatch_probes_attached',
      help: 'bpftrace scripts attached (1) or left out (0) in this session',
      labelNames: ['script'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const p of self.source.session()?.probes ?? []) this.set({ script: p.script }, p.attached ? 1 : 0);
      },
    });
    new Gauge({
      name: 'pinwatch_session_info',
      help: 'The traced host: always 1, labels carry host, kernel, bpftrace version and mode',
      labelNames: ['host', 'kernel', 'bpftrace', 'mode', 'source'],
      registers: [this.registry],
      collect() {
        this.reset();
        const s = self.source.session();
        if (s) this.set({ host: s.host, kernel: s.kernel, bpftrace: s.bpftraceVersion, mode: s.mode, source: self.source.info().kind }, 1);
      },
    });
    new Counter({
      name: 'pinwatch_webhook_deliveries_total',
      help: 'Webhook POSTs of critical/high anomalies, by outcome (failed: gave up after retries)',
      labelNames: ['outcome'],
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc({ outcome: 'sent' }, self.webhookSent);
        this.inc({ outcome: 'failed' }, self.webhookFailed);
      },
    });
    collectDefaultMetrics({ register: this.registry, prefix: 'pinwatch_server_' });
  }

  private countAnomaly(rule: string, severity: string, n: number): void {
    const key = `${rule}\0${severity}`;
    const c = this.anomaliesByKey.get(key);
    if (c) c.n += n;
    else this.anomaliesByKey.set(key, { rule, severity, n });
  }

  webhookOutcome(ok: boolean): void {
    if (ok) this.webhookSent++;
    else this.webhookFailed++;
  }

  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  close(): void {
    this.source.off('anomaly', this.onAnomaly);
    this.registry.clear();
  }
}
