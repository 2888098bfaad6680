// --webhook URL: POSTs critical and high anomalies as JSON, one at a time, retrying with exponential backoff.
// enqueue() only pushes onto a bounded queue, so a slow or dead receiver never holds up the collector.
import type { Anomaly } from '../../schema/anomalies.ts';
import type { SessionInfo } from '../../schema/session.ts';

export interface WebhookOptions {
  url: string;
  /** Tries per anomaly before giving up. */
  maxAttempts?: number;
  /** First backoff; doubled each retry (with jitter), capped at maxDelayMs. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  timeoutMs?: number;
  /** Oldest queued anomalies are dropped beyond this. */
  maxQueue?: number;
  /** Link to the anomaly in the dashboard, e.g. http://127.0.0.1:3000/anomalies/12 */
  dashboardUrl?: (a: Anomaly) => string;
  session?: () => SessionInfo | null;
  onOutcome?: (ok: boolean, a: Anomaly, detail: string) => void;
}

export const WEBHOOK_SEVERITIES: ReadonlySet<string> = new Set(['critical', 'high']);

/** The JSON body a receiver gets. */
export interface WebhookPayload {
  type: 'pinwatch.anomaly';
  anomaly: Anomaly;
  host: string | null;
  kernel: string | null;
  url: string | null;
  attempt: number;
}

export class WebhookSender {
  private readonly opts: Required<Omit<WebhookOptions, 'dashboardUrl' | 'session' | 'onOutcome'>> & WebhookOptions;
  private readonly queue: Anomaly[] = [];
  private running = false;
  private closed = false;
  private wake: (() => void) | null = null;
  dropped = 0;

  constructor(opts: WebhookOptions) {
    this.opts = { maxAttempts: 6, baseDelayMs: 500, maxDelayMs: 30_000, timeoutMs: 5_000, maxQueue: 1_000, ...opts };
  }

  /** Queues a critical/high anomaly for delivery; other severities are ignored. Never blocks. */
  enqueue(a: Anomaly): void {
    if (this.closed || !WEBHOOK_SEVERITIES.has(a.severity)) return;
    this.queue.push(a);
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
        const a = this.queue.shift()!;
        await this.deliver(a);
      }
    } finally {
      this.running = false;
    }
  }

  private async deliver(a: Anomaly): Promise<void> {
    const s = this.opts.session?.() ?? null;
    let last = '';
    for (let attempt = 1; attempt <= this.opts.maxAttempts && !this.closed; attempt++) {
      const payload: WebhookPayload = {
        type: 'pinwatch.anomaly',
        anomaly: a,
        host: s?.host ?? null,
        kernel: s?.kernel ?? null,
        url: this.opts.dashboardUrl?.(a) ?? null,
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
          this.opts.onOutcome?.(true, a, `HTTP ${res.status} after ${attempt} attempt(s)`);
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
    this.opts.onOutcome?.(false, a, last);
  }

  /** Stops retrying; queued anomalies are dropped (the recording still holds them). */
  close(): void {
    this.closed = true;
    this.queue.length = 0;
    this.wake?.();
  }

  pending(): number {
    return this.queue.length;
  }
}
