// --webhook URL: POSTs critical and high incidents as JSON (with their anomalies as findings), one at a time,
// retrying with exponential backoff. One POST per incident, not per anomaly: an incident is sent once its
// findings have settled (settleMs after it opened: a zap's pagemap confirmation follows ~20 ms later), and once
// more if it later escalates to critical. enqueue() only touches a bounded queue, so a slow or dead receiver
// never holds up the collector.
import type { Anomaly } from '../../schema/anomalies.ts';
import type { Incident, IncidentChange } from '../../schema/incidents.ts';
import type { SessionInfo } from '../../schema/session.ts';
import { IncidentSettler, SETTLE_MS } from '../../collector/incidents/settle.ts';

export interface WebhookOptions {
  url: string;
  /** Tries per incident before giving up. */
  maxAttempts?: number;
  /** First backoff; doubled each retry (with jitter), capped at maxDelayMs. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  timeoutMs?: number;
  /** Oldest queued incidents are dropped beyond this. */
  maxQueue?: number;
  /** Wait this long after an incident opens for the rest of its findings (default 300 ms). */
  settleMs?: number;
  /** Link to the incident in the dashboard, e.g. http://127.0.0.1:3000/anomalies/12 */
  dashboardUrl?: (i: Incident) => string;
  /** The incident's anomalies, sent as its findings. */
  findings?: (i: Incident) => Anomaly[];
  session?: () => SessionInfo | null;
  onOutcome?: (ok: boolean, i: Incident, detail: string) => void;
}

export const WEBHOOK_SEVERITIES: ReadonlySet<string> = new Set(['critical', 'high']);

/** The JSON body a receiver gets. */
export interface WebhookPayload {
  type: 'pinwatch.incident';
  incident: Incident;
  /** The anomalies it groups (its evidence), in seq order. */
  findings: Anomaly[];
  host: string | null;
  kernel: string | null;
  url: string | null;
  attempt: number;
}

export class WebhookSender {
  private readonly opts: Required<Omit<WebhookOptions, 'dashboardUrl' | 'session' | 'onOutcome' | 'findings'>> & WebhookOptions;
  private readonly queue: Incident[] = [];
  private readonly settler: IncidentSettler;
  private running = false;
  private closed = false;
  private wake: (() => void) | null = null;
  dropped = 0;

  constructor(opts: WebhookOptions) {
    this.opts = { maxAttempts: 6, baseDelayMs: 500, maxDelayMs: 30_000, timeoutMs: 5_000, maxQueue: 1_000, settleMs: SETTLE_MS, ...opts };
    this.settler = new IncidentSettler(this.opts.settleMs, (i) => this.enqueue(i));
  }

  /**
   * An incident's new state. Critical/high incidents are sent settleMs after they open (with the state they
   * have then), and again when their severity rises; other severities and changes are ignored. Never blocks.
   */
  update(i: Incident, change: IncidentChange): void {
    if (!this.closed) this.settler.update(i, change);
  }

  /** Queues a critical/high incident for delivery now; other severities are ignored. Never blocks. */
  enqueue(i: Incident): void {
    if (this.closed || !WEBHOOK_SEVERITIES.has(i.severity)) return;
    this.queue.push(i);
    if (this.queue.length > this.opts.maxQueue) {
      this.queue.shift();
      this.dropped++;
    }
    if (!this.running) {
      // Deliver from a later turn of the event loop: the caller (the collector's hub) returns at once.
      this.running = true;
      setImmediate(() => void this.drain());
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wake = null;
        resolve();
      }, ms);
      t.unref();
      this.wake = () => {
        clearTimeout(t);
        this.wake = null;
        resolve();
      };
    });
  }

  private async drain(): Promise<void> {
    try {
      while (!this.closed && this.queue.length) {
        const i = this.queue.shift()!;
        await this.deliver(i);
      }
    } finally {
      this.running = false;
    }
  }

  private async deliver(i: Incident): Promise<void> {
    const s = this.opts.session?.() ?? null;
    let last = '';
    for (let attempt = 1; attempt <= this.opts.maxAttempts && !this.closed; attempt++) {
      const payload: WebhookPayload = {
        type: 'pinwatch.incident',
        incident: i,
        findings: this.opts.findings?.(i) ?? [],
        host: s?.host ?? null,
        kernel: s?.kernel ?? null,
        url: this.opts.dashboardUrl?.(i) ?? null,
        attempt,
      };
      try {
        const res = await fetch(this.opts.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': 'pinwatch-webhook' },
          body: JSON.stringify(payload),
          signal: AbortSignal.timeout(this.opts.timeoutMs),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) {
          this.opts.onOutcome?.(true, i, `HTTP ${res.status} after ${attempt} attempt(s)`);
          return;
        }
        last = `HTTP ${res.status}`;
        // A 4xx other than 408/429 will not get better by retrying.
        if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) break;
      } catch (err) {
        last = (err as Error).message;
      }
      if (attempt < this.opts.maxAttempts) {
        const backoff = Math.min(this.opts.maxDelayMs, this.opts.baseDelayMs * 2 ** (attempt - 1));
        await this.sleep(backoff / 2 + Math.random() * (backoff / 2));
      }
    }
    this.opts.onOutcome?.(false, i, last);
  }

  /** Stops retrying; queued incidents are dropped (the recording still holds them). */
  close(): void {
    this.closed = true;
    this.queue.length = 0;
    this.settler.close();
    this.wake?.();
  }

  pending(): number {
    return this.queue.length;
  }
}
