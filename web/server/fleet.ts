// The Fleet page's data: pinwatch hosts as Prometheus sees them, from its HTTP API (/api/v1/query), queried by
// this server (the browser never talks to Prometheus). Prometheus is the fleet store: no aggregation protocol
// of our own. One instant query per figure, keyed by the scraped `instance` (host:port, also the host's own
// dashboard).
import { z } from 'zod';
import type { FleetHost } from '../shared/wire.ts';

const QueryResponse = z.object({
  status: z.literal('success'),
  data: z.object({
    resultType: z.literal('vector'),
    result: z.array(z.object({ metric: z.record(z.string(), z.string()), value: z.tuple([z.number(), z.string()]) })),
  }),
});
type Sample = { metric: Record<string, string>; value: number };

const QUERIES = {
  // last_over_time: a host whose scrape fails keeps its labels on the page (marked down) for an hour.
  info: 'last_over_time(pinwatch_info[1h])',
  up: 'up and on (instance) last_over_time(pinwatch_info[1h])',
  upJob: 'up{job=~"pinwatch.*"}',
  bpftrace: 'max by (instance) (pinwatch_bpftrace_up)',
  age: 'max by (instance) (pinwatch_last_event_age_seconds)',
  pins: 'sum by (instance) (pinwatch_pins)',
  bytes: 'sum by (instance) (pinwatch_pinned_bytes)',
  divergent: 'sum by (instance) (pinwatch_divergent_pages)',
  open: 'sum by (instance) (pinwatch_incidents_open)',
  critical: 'sum by (instance) (pinwatch_incidents_open{severity="critical"})',
  lost: 'sum by (instance) (pinwatch_lost_events_total)',
  alerts: 'ALERTS{alertstate="firing",alertname=~"Pinwatch.*"}',
} as const;

export class FleetError extends Error {
  constructor(
    message: string,
    readonly fix: string,
  ) {
    super(message);
  }
}

export class FleetClient {
  constructor(
    readonly prometheus: string,
    private readonly timeoutMs = 5_000,
  ) {}

  private async query(q: string): Promise<Sample[]> {
    const url = new URL('api/v1/query', this.prometheus.endsWith('/') ? this.prometheus : `${this.prometheus}/`);
    url.searchParams.set('query', q);
    let res: Response;
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(this.timeoutMs), headers: { accept: 'application/json' } });
    } catch (err) {
      throw new FleetError(`Prometheus at ${this.prometheus} is unreachable: ${(err as Error).message}`, 'check the --prometheus URL and that Prometheus runs');
    }
    const text = await res.text();
    if (!res.ok) throw new FleetError(`Prometheus at ${this.prometheus} answered HTTP ${res.status} to ${q}: ${text.slice(0, 200)}`, 'check the --prometheus URL (the server, not a UI path)');
    const parsed = QueryResponse.safeParse(JSON.parse(text));
    if (!parsed.success) throw new FleetError(`Prometheus at ${this.prometheus} gave an unexpected answer to ${q}`, 'point --prometheus at a Prometheus server (HTTP API v1)');
    return parsed.data.data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
  }

  async hosts(): Promise<FleetHost[]> {
    const keys = Object.keys(QUERIES) as (keyof typeof QUERIES)[];
    const results = await Promise.all(keys.map((k) => this.query(QUERIES[k])));
    const r = Object.fromEntries(keys.map((k, i) => [k, results[i]!])) as Record<keyof typeof QUERIES, Sample[]>;
    const byInstance = (samples: Sample[]) => new Map(samples.map((s) => [s.metric.instance ?? '', s.value]));
    const up = new Map([...byInstance(r.upJob), ...byInstance(r.up)]);
    const info = new Map(r.info.map((s) => [s.metric.instance ?? '', s.metric]));
    const [bpftrace, age, pins, bytes, divergent, open, critical, lost] = [r.bpftrace, r.age, r.pins, r.bytes, r.divergent, r.open, r.critical, r.lost].map(byInstance);
    const firing = new Map<string, string[]>();
    for (const a of r.alerts) {
      const inst = a.metric.instance ?? '';
      firing.set(inst, [...(firing.get(inst) ?? []), a.metric.alertname ?? '?']);
    }
    const instances = [...new Set([...info.keys(), ...up.keys()])].filter((i) => i !== '').sort();
    return instances.map((instance): FleetHost => {
      const m = info.get(instance);
      const alerts = [...new Set(firing.get(instance) ?? [])].sort();
      const health: FleetHost['health'] =
        up.get(instance) !== 1 ? 'down' : m?.source === 'replay' ? 'replay' : bpftrace.get(instance) !== 1 ? 'not capturing' : alerts.includes('PinwatchCollectorBlind') ? 'blind' : 'ok';
      return {
        instance,
        host: m?.host ?? null,
        kernel: m?.kernel ?? null,
        source: m?.source ?? null,
        mode: m?.mode ?? null,
        health,
        pins: pins.get(instance) ?? 0,
        pinnedBytes: bytes.get(instance) ?? 0,
        divergentPages: divergent.get(instance) ?? 0,
        openIncidents: open.get(instance) ?? 0,
        openCritical: critical.get(instance) ?? 0,
        lastEventAgeSeconds: age.get(instance) ?? null,
        lostEvents: lost.get(instance) ?? 0,
        firing: alerts,
      };
    });
  }
}
