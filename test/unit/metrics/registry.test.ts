// /metrics for fleets: incidents and anomalies by rule and severity, pins / pages / bytes / divergent pages by
// source and process, lost events, capture gaps, bpftrace up, last event age; every series carries host and
// kernel. Fed by a real Collector (the MAP_FIXED case) through a real Hub; linted by `promtool check metrics`.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildRegistry } from '../../../collector/metrics/registry.ts';
import { MetricsTracker } from '../../../collector/metrics/snapshot.ts';
import { SETTLE_MS } from '../../../collector/incidents/settle.ts';
import { Hub } from '../../../collector/publish/hub.ts';
import type { SessionInfo } from '../../../schema/session.ts';
import { BUF, Harness, PAGE } from '../pipeline/harness.ts';
import { promtool, toolGate } from '../../support/prometheus-tools.ts';

const SESSION: SessionInfo = {
  id: 1, host: 'hv-01', kernel: '6.18.0-test', bpftraceVersion: 'v0.17.0', mode: 'tracepoint', startedWallMs: 1_700_000_000_000,
  endedWallMs: null, probes: [{ script: 'tracepoint/madvise', attached: true }, { script: 'kprobe/gup', attached: false }], lostEvents: 0,
};

function value(text: string, series: string): number | null {
  for (const line of text.split('\n')) if (line.startsWith(series + ' ')) return Number(line.slice(series.length + 1));
  return null;
}

async function scenario() {
  const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
  const hub = new Hub({ now: () => h.time.wallMs() });
  (h.c as unknown as { sinks: unknown[] }).sinks.push(hub);
  hub.setSession(SESSION);
  hub.setCapture(true);
  const tracker = new MetricsTracker({
    kind: 'live', session: () => hub.session(), pins: () => hub.pins(), eventsByKind: () => hub.totals().byKind, lostEvents: () => hub.totals().lost,
    capture: () => hub.captureState(), now: () => h.time.wallMs(),
  });
  hub.on('anomaly', (a) => tracker.anomaly(a));
  hub.on('incident', (i, c) => tracker.incident(i, c));
  const registry = buildRegistry(() => tracker.snapshot(), { processMetrics: false });
  return { h, hub, tracker, registry };
}

describe('metrics registry', () => {
  test('the MAP_FIXED case: one critical incident, three anomalies, the divergent page while pinned', async (t) => {
    const { h, hub, tracker, registry } = await scenario();
    t.after(() => tracker.close());
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.tick(300);
    h.pagemap.map(100, BUF + PAGE, 0x9000, 1);
    h.feed(h.ev.mmapFixed(100, BUF + PAGE, PAGE));
    h.tick(100);
    h.pastTeardown(); // the zap of an io_uring buffer waits for teardown evidence: still pinned, it is a hazard
    hub.tick(h.time.wallMs());
    await new Promise((r) => setTimeout(r, SETTLE_MS + 100)); // incidents are counted once their findings settle
    const m = await registry.metrics();
    const L = 'host="hv-01",kernel="6.18.0-test"';
    assert.equal(value(m, `pinwatch_incidents_total{${L},rule="pin-pte-divergence",severity="critical"}`), 1, m);
    assert.equal(value(m, `pinwatch_incidents_open{${L},severity="critical"}`), 1);
    assert.equal(value(m, `pinwatch_anomalies_total{${L},rule="pinned-range-zapped",severity="high"}`), 1);
    assert.equal(value(m, `pinwatch_anomalies_total{${L},rule="pin-leak",severity="warning"}`), 1);
    assert.equal(value(m, `pinwatch_anomalies_total{${L},rule="pin-pte-divergence",severity="critical"}`), 1);
    const P = `${L},source="io_uring",pid="100",comm="app"`;
    assert.equal(value(m, `pinwatch_pins{${P}}`), 1);
    assert.equal(value(m, `pinwatch_pinned_pages{${P}}`), 4);
    assert.equal(value(m, `pinwatch_pinned_bytes{${P}}`), 4 * PAGE);
    assert.equal(value(m, `pinwatch_divergent_pages{${P}}`), 1);
    assert.equal(value(m, `pinwatch_bpftrace_up{${L}}`), 1);
    assert.equal(value(m, `pinwatch_last_event_age_seconds{${L}}`), 0);
    assert.equal(value(m, `pinwatch_capture_gaps_total{${L}}`), 0);
    assert.equal(value(m, `pinwatch_probes_attached{${L},script="kprobe/gup"}`), 0);

    // bpftrace dies: down, one gap; time passes: the last event ages; lost events count
    hub.setCapture(false);
    h.tick(30_000);
    h.c.lost(7);
    const m2 = await registry.metrics();
    assert.equal(value(m2, `pinwatch_bpftrace_up{${L}}`), 0);
    assert.equal(value(m2, `pinwatch_capture_gaps_total{${L}}`), 1);
    assert.ok(value(m2, `pinwatch_last_event_age_seconds{${L}}`)! >= 30);
    assert.equal(value(m2, `pinwatch_lost_events_total{${L}}`), 7);

    // the pin is unregistered: the incident closes, the pin gauges go
    h.feed(h.ev.pinResult(100, 5, 0, 0, { opcode: 1 }));
    const m3 = await registry.metrics();
    assert.equal(value(m3, `pinwatch_incidents_open{${L},severity="critical"}`), 0);
    assert.equal(value(m3, `pinwatch_pins{${P}}`), null);
    assert.equal(value(m3, `pinwatch_incidents_total{${L},rule="pin-pte-divergence",severity="critical"}`), 1, 'a counter keeps its count');

    // naming: every pinwatch series has host and kernel; counters end in _total
    for (const line of m3.split('\n')) {
      if (line.startsWith('pinwatch_')) assert.match(line, /\{host="hv-01",kernel="6\.18\.0-test"/, line);
      const type = /^# TYPE (\S+) (\S+)/.exec(line);
      if (type?.[2] === 'counter') assert.match(type[1]!, /^pinwatch_.*_total$/);
    }
  });

  test('promtool check metrics accepts the exposition', toolGate('promtool'), async (t) => {
    const { h, tracker } = await scenario();
    t.after(() => tracker.close());
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.tick(300);
    // prom-client's own process metrics are left out: promtool objects to their names (nodejs_active_handles_total).
    const registry = buildRegistry(() => tracker.snapshot(), { processMetrics: false });
    const r = promtool(['check', 'metrics'], await registry.metrics());
    assert.equal(r.code, 0, r.out);
    assert.equal(r.out.trim(), '', `promtool lint findings:\n${r.out}`);
  });

  test('a recording served as if live: counts from the file, no bpftrace_up (nothing captures, nothing is down)', async (t) => {
    const tracker = new MetricsTracker({ kind: 'replay', session: () => SESSION, pins: () => [], eventsByKind: () => ({ madvise: 3 }), lostEvents: () => 0, capture: () => null, hostLabel: 'hv-b' });
    t.after(() => tracker.close());
    tracker.seed([{ rule: 'pin-leak', severity: 'warning', count: 2 }], []);
    const m = await buildRegistry(() => tracker.snapshot(), { processMetrics: false }).metrics();
    const L = 'host="hv-b",kernel="6.18.0-test"';
    assert.equal(value(m, `pinwatch_anomalies_total{${L},rule="pin-leak",severity="warning"}`), 2);
    assert.equal(value(m, `pinwatch_events_total{${L},kind="madvise"}`), 3);
    assert.match(m, /^pinwatch_info\{host="hv-b",kernel="6\.18\.0-test",mode="tracepoint",bpftrace="v0\.17\.0",source="replay"\} 1$/m);
    assert.doesNotMatch(m, /^pinwatch_bpftrace_up\{/m);
    assert.doesNotMatch(m, /^pinwatch_last_event_age_seconds\{/m);
  });

  test('no session yet: no pinwatch series, no error', async () => {
    const registry = buildRegistry(() => null, { processMetrics: false });
    const m = await registry.metrics();
    assert.equal(m.split('\n').filter((l) => l.startsWith('pinwatch_')).length, 0);
  });
});
