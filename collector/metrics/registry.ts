// Prometheus metrics from a MetricsSnapshot (schema/metrics.ts), built at scrape time: whichever process holds
// a snapshot (collector and web together, or apart) serves the same /metrics. Naming follows Prometheus
// conventions: pinwatch_ prefix, _total for counters, base units (bytes, seconds). Every series carries `host`
// and `kernel`, so a fleet's series stay apart and a kernel upgrade shows in the data.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { MetricsSnapshot } from '../../schema/metrics.ts';

type Labels = Record<string, string | number>;

export function buildRegistry(snapshot: () => MetricsSnapshot | null, opts: { processMetrics?: boolean } = {}): Registry {
  const registry = new Registry();
  // One snapshot per scrape: prom-client collects metrics in registration order, so the first one registered
  // (pinwatch_info) takes it and the others read the same one.
  let snap: MetricsSnapshot | null = null;
  const current = (): MetricsSnapshot | null => snap;
  const base = (s: MetricsSnapshot): Labels => ({ host: s.host, kernel: s.kernel });

  type Fill = (s: MetricsSnapshot, put: (l: Labels, v: number) => void) => void;
  /** A metric filled from the scrape's snapshot; counters are set to the snapshot's running totals. */
  const metric = (type: typeof Counter | typeof Gauge, name: string, help: string, labels: string[], fill: Fill) =>
    new (type as typeof Gauge)({
      name,
      help,
      labelNames: ['host', 'kernel', ...labels],
      registers: [registry],
      collect() {
        this.reset();
        const s = current();
        if (s) fill(s, (l, v) => (this as Gauge).inc({ ...base(s), ...l }, v));
      },
    });
  const counter = (name: string, help: string, labels: string[], fill: Fill) => metric(Counter, name, help, labels, fill);
  const gauge = (name: string, help: string, labels: string[], fill: Fill) => metric(Gauge, name, help, labels, fill);

  new Gauge({
    name: 'pinwatch_info',
    help: 'Always 1; labels say what this pinwatch watches: trace mode, bpftrace version, live or replay',
    labelNames: ['host', 'kernel', 'mode', 'bpftrace', 'source'],
    registers: [registry],
    collect() {
      this.reset();
      snap = snapshot();
      if (snap) this.set({ ...base(snap), mode: snap.mode, bpftrace: snap.bpftraceVersion, source: snap.source }, 1);
    },
  });
  counter('pinwatch_incidents_total', 'Incidents (anomalies one event caused on one pin or process), by most severe rule and severity', ['rule', 'severity'], (s, add) => {
    for (const c of s.incidents) add({ rule: c.rule, severity: c.severity }, c.count);
  });
  gauge('pinwatch_incidents_open', 'Incidents whose pin is still registered (or process still running), by severity', ['severity'], (s, set) => {
    for (const sev of ['critical', 'high', 'warning', 'info'] as const) set({ severity: sev }, s.openIncidents[sev] ?? 0);
  });
  counter('pinwatch_anomalies_total', 'Anomalies (findings) raised, by rule and severity', ['rule', 'severity'], (s, add) => {
    for (const c of s.anomalies) add({ rule: c.rule, severity: c.severity }, c.count);
  });
  counter('pinwatch_events_total', 'Trace events received from bpftrace, by kind', ['kind'], (s, add) => {
    for (const [kind, n] of Object.entries(s.eventsByKind)) add({ kind }, n ?? 0);
  });
  counter('pinwatch_lost_events_total', 'Events bpftrace reported lost (perf buffer full); findings near them are low confidence', [], (s, add) =>
    add({}, s.lostEvents),
  );
  counter('pinwatch_lost_events_by_kind_total', 'Events lost, by printed kind: what the main bpftrace program counted in the kernel minus the lines that arrived', ['kind'], (s, add) => {
    for (const [kind, n] of Object.entries(s.lostByKind)) add({ kind }, n);
  });
  counter('pinwatch_capture_gaps_total', 'Times live capture stopped while pinwatch ran (bpftrace exited or was restarted)', [], (s, add) =>
    add({}, s.captureGaps),
  );
  gauge('pinwatch_bpftrace_up', '1 while bpftrace is attached and capturing, 0 otherwise', [], (s, set) => {
    if (s.bpftraceUp !== null) set({}, s.bpftraceUp ? 1 : 0);
  });
  gauge('pinwatch_verify_sweep_seconds', 'Wall time the last full pagemap sweep of every live pinned page took (absent before the first)', [], (s, set) => {
    if (s.verifySweep?.fullSweepSeconds != null) set({}, s.verifySweep.fullSweepSeconds);
  });
  gauge('pinwatch_verify_cpu_ratio', 'Share of one core the background pagemap sweep used (budget: verifyCpuShare)', [], (s, set) => {
    if (s.verifySweep) set({}, s.verifySweep.cpuShare);
  });
  gauge('pinwatch_last_event_age_seconds', 'Seconds since the last traced event (absent before the first)', [], (s, set) => {
    if (s.lastEventAgeSeconds !== null) set({}, s.lastEventAgeSeconds);
  });
  const perProcess = (name: string, help: string, pick: (g: MetricsSnapshot['pins'][number]) => number) =>
    gauge(name, help, ['source', 'pid', 'comm'], (s, set) => {
      for (const g of s.pins) set({ source: g.source, pid: g.pid, comm: g.comm }, pick(g));
    });
  perProcess('pinwatch_pins', 'Registered DMA buffers (pins) not yet released, by source and process', (g) => g.pins);
  perProcess('pinwatch_pinned_pages', 'Pages held by live pins, by source and process', (g) => g.pages);
  perProcess('pinwatch_pinned_bytes', 'Bytes held by live pins, by source and process', (g) => g.bytes);
  perProcess('pinwatch_divergent_pages', 'Pinned pages whose page table maps another page than the pinned one now (confirmed by pagemap)', (g) => g.divergentPages);
  gauge('pinwatch_probes_attached', 'bpftrace scripts attached (1) or left out (0) in this session', ['script'], (s, set) => {
    for (const p of s.probes) set({ script: p.script }, p.attached ? 1 : 0);
  });
  counter('pinwatch_webhook_deliveries_total', 'Webhook POSTs of critical/high incidents, by outcome (failed: gave up after retries)', ['outcome'], (s, add) => {
    add({ outcome: 'sent' }, s.webhook.sent);
    add({ outcome: 'failed' }, s.webhook.failed);
  });
  if (opts.processMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'pinwatch_server_' });
  return registry;
}
