// The --webhook sender against a real local HTTP receiver (no root, no browser): only critical/high anomalies
// are POSTed, as JSON, in order; a 5xx or a refused connection is retried with backoff; a 4xx is not; enqueue()
// returns at once whatever the receiver does.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Anomaly } from '../../schema/anomalies.ts';
import { WebhookSender, type WebhookPayload } from '../../web/server/webhook.ts';

function anomaly(seq: number, severity: Anomaly['severity'], rule: Anomaly['rule'] = 'pin-pte-divergence'): Anomaly {
  return {
    seq, rule, severity, pid: 4242, comm: 'uring-dontneed', addr: 0x7f0000001000, len: 4096, pfn: 0x125bc2, newPfn: 0x11fca8,
    confirmed: true, lowConfidence: false, tsNs: 1, wallMs: Date.now(), pinId: 1, summary: 's', evidence: [],
  };
}

describe('webhook sender', () => {
  let server: Server;
  let url = '';
  const statuses: number[] = [];
  const received: WebhookPayload[] = [];
  let requests = 0;

  before(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8').on('data', (c: string) => (body += c));
      req.on('end', () => {
        requests++;
        assert.equal(req.headers['content-type'], 'application/json');
        const status = statuses.shift() ?? 200;
        if (status === 200) received.push(JSON.parse(body) as WebhookPayload);
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  const waitFor = async (cond: () => boolean, ms = 5000) => {
    const end = Date.now() + ms;
    while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    assert.ok(cond(), 'condition not met in time');
  };

  test('sends critical and high only, in order, retrying a 503 with backoff', async () => {
    statuses.push(503, 503);
    const outcomes: boolean[] = [];
    const w = new WebhookSender({ url, baseDelayMs: 40, onOutcome: (ok) => outcomes.push(ok) });
    const t0 = performance.now();
    w.enqueue(anomaly(1, 'critical'));
    w.enqueue(anomaly(2, 'warning', 'fork-with-pins'));
    w.enqueue(anomaly(3, 'info', 'collapse-blocked-by-pin'));
    w.enqueue(anomaly(4, 'high', 'pinned-range-zapped'));
    assert.ok(performance.now() - t0 < 5, 'enqueue never waits for the network');
    await waitFor(() => outcomes.length === 2);
    assert.deepEqual(outcomes, [true, true]);
    assert.deepEqual(received.map((p) => p.anomaly.seq), [1, 4]);
    assert.equal(received[0]!.attempt, 3, 'two 503s, delivered on the third attempt');
    assert.equal(received[0]!.type, 'pinwatch.anomaly');
    assert.equal(requests, 4);
    w.close();
  });

  test('gives up on a 4xx at once and after maxAttempts on a dead receiver', async () => {
    received.length = 0;
    requests = 0;
    statuses.push(400);
    const outcomes: [boolean, string][] = [];
    const w = new WebhookSender({ url, baseDelayMs: 10, onOutcome: (ok, _a, d) => outcomes.push([ok, d]) });
    w.enqueue(anomaly(5, 'critical'));
    await waitFor(() => outcomes.length === 1);
    assert.deepEqual(outcomes[0], [false, 'HTTP 400']);
    assert.equal(requests, 1);
    w.close();

    // Nothing listens on port 9 of localhost (discard): connection refused, retried maxAttempts times.
    const dead: [boolean, string][] = [];
    const w2 = new WebhookSender({ url: 'http://127.0.0.1:9/hook', maxAttempts: 3, baseDelayMs: 10, onOutcome: (ok, _a, d) => dead.push([ok, d]) });
    w2.enqueue(anomaly(6, 'high', 'pinned-range-zapped'));
    await waitFor(() => dead.length === 1);
    assert.equal(dead[0]![0], false);
    w2.close();
  });

  test('a full queue drops the oldest, never blocks', () => {
    const w = new WebhookSender({ url: 'http://127.0.0.1:9/hook', maxQueue: 3, baseDelayMs: 60_000 });
    for (let i = 0; i < 10; i++) w.enqueue(anomaly(100 + i, 'critical'));
    assert.ok(w.pending() <= 3);
    assert.ok(w.dropped >= 6);
    w.close();
    assert.equal(w.pending(), 0);
  });
});
