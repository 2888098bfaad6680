// POST /api/alerts: the dashboard as an Alertmanager webhook receiver (webhook_configs in alertmanager.yml), so
// a fleet's pinwatch alerts show in one place. Accepts Alertmanager's webhook JSON (version 4), keeps the latest
// state of each alert by fingerprint (bounded, oldest dropped first), and lists them for the Fleet page.
import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import type { ReceivedAlert } from '../shared/wire.ts';

const labels = z.record(z.string(), z.string());

/** https://prometheus.io/docs/alerting/latest/configuration/#webhook_config */
export const AlertmanagerWebhook = z.object({
  version: z.literal('4', { error: 'expected Alertmanager webhook version "4"' }),
  groupKey: z.string(),
  truncatedAlerts: z.number().int().min(0).optional(),
  status: z.enum(['firing', 'resolved']),
  receiver: z.string(),
  groupLabels: labels,
  commonLabels: labels,
  commonAnnotations: labels,
  externalURL: z.string(),
  alerts: z
    .array(
      z.object({
        status: z.enum(['firing', 'resolved']),
        labels,
        annotations: labels,
        startsAt: z.string(),
        endsAt: z.string(),
        generatorURL: z.string(),
        fingerprint: z.string().min(1).max(64),
      }),
    )
    .max(1000),
});
export type AlertmanagerWebhook = z.infer<typeof AlertmanagerWebhook>;

export class AlertInbox {
  private readonly byFingerprint = new Map<string, ReceivedAlert>();
  constructor(private readonly max = 1000) {}

  /** One webhook delivery; returns how many alerts it carried. */
  receive(body: unknown, nowMs = Date.now()): number {
    const hook = AlertmanagerWebhook.parse(body);
    for (const a of hook.alerts) {
      this.byFingerprint.delete(a.fingerprint); // re-insert: the map's order is the order of the last update
      this.byFingerprint.set(a.fingerprint, {
        fingerprint: a.fingerprint,
        status: a.status,
        name: a.labels.alertname ?? '(no alertname)',
        severity: a.labels.severity ?? null,
        host: a.labels.host ?? null,
        instance: a.labels.instance ?? null,
        summary: a.annotations.summary ?? a.annotations.description ?? '',
        dashboard: a.annotations.dashboard ?? null,
        labels: a.labels,
        startsAt: a.startsAt,
        endsAt: a.endsAt,
        receivedMs: nowMs,
        externalURL: hook.externalURL,
      });
      if (this.byFingerprint.size > this.max) this.byFingerprint.delete(this.byFingerprint.keys().next().value!);
    }
    return hook.alerts.length;
  }

  /** Newest update first. */
  list(): ReceivedAlert[] {
    return [...this.byFingerprint.values()].reverse();
  }
}

/** A JSON request body of at most maxBytes; anything else is a 400/413 with what was wrong. */
export async function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > maxBytes) throw new BodyError(413, `request body over ${maxBytes} bytes`);
    chunks.push(c as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new BodyError(400, 'request body is not JSON');
  }
}

export class BodyError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}
