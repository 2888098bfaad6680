// The --webhook sender against a real local HTTP receiver (no root, no browser): only critical/high incidents
// are POSTed, as JSON, in order, once per incident after its findings settle (again only on escalation to
// critical); a 5xx or a refused connection is retried with backoff; a 4xx is not; enqueue() returns at once
// whatever the receiver does.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Incident } from '../../schema/incidents.ts';
import { WebhookSender, type WebhookPayload } from '../../web/server/webhook.ts';

function incident(id: number, severity: Incident['severity'], rule: Incident['rules'][number] = 'pin-pte-divergence'): Incident {
  return {
    id, severity, title: `t${id}`, cause: 'MADV_DONTNEED zapped', causeSeq: 7, pid: 4242, comm: 'uring-dontneed', pinId: 1,
    subject: 'io_uring buffer 0 (ring fd 5)', pages: 1, confirmed: true, tsNs: 1, openedWallMs: Date.now(), updatedWallMs: Date.now(),
    closedWallMs: null, rules: [rule], anomalySeqs: [id],
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
    w.enqueue(incident(1, 'critical'));
    w.enqueue(incident(2, 'warning', 'fork-with-pins'));
    w.enqueue(incident(3, 'info', 'collapse-blocked-by-pin'));
    w.enqueue(incident(4, 'high', 'pinned-range-zapped'));
    assert.ok(performance.now() - t0 < 5, 'enqueue never waits for the network');
    await waitFor(() => outcomes.length === 2);
    assert.deepEqual(outcomes, [true, true]);
    assert.deepEqual(received.map((p) => p.incident.id), [1, 4]);
    assert.equal(received[0]!.attempt, 3, 'two 503s, delivered on the third attempt');
    assert.equal(received[0]!.type, 'pinwatch.incident');
    assert.equal(requests, 4);
    w.close();
  });

  test('gives up on a 4xx at once and after maxAttempts on a dead receiver', async () => {
    received.length = 0;
    requests = 0;
    statuses.push(400);
    const outcomes: [boolean, string][] = [];
    const w = new WebhookSender({ url, baseDelayMs: 10, onOutcome: (ok, _a, d) => outcomes.push([ok, d]) });
    w.enqueue(incident(5, 'critical'));
    await waitFor(() => outcomes.length === 1);
    assert.deepEqual(outcomes[0], [false, 'HTTP 400']);
    assert.equal(requests, 1);
    w.close();

    // Nothing listens on port 9 of localhost (discard): connection refused, retried maxAttempts times.
    const dead: [boolean, string][] = [];
    const w2 = new WebhookSender({ url: 'http://127.0.0.1:9/hook', maxAttempts: 3, baseDelayMs: 10, onOutcome: (ok, _a, d) => dead.push([ok, d]) });
    w2.enqueue(incident(6, 'high', 'pinned-range-zapped'));
    await waitFor(() => dead.length === 1);
    assert.equal(dead[0]![0], false);
    w2.close();
  });

  test('a full queue drops the oldest, never blocks', () => {
    const w = new WebhookSender({ url: 'http://127.0.0.1:9/hook', maxQueue: 3, baseDelayMs: 60_000 });
    for (let i = 0; i < 10; i++) w.enqueue(incident(100 + i, 'critical'));
    assert.ok(w.pending() <= 3);
    assert.ok(w.dropped >= 6);
    w.close();
    assert.equal(w.pending(), 0);
  });

  test('one POST per incident once its findings settle, one more when it escalates to critical', async () => {
    received.length = 0;
    const outcomes: boolean[] = [];
    const findings = (i: Incident) => i.anomalySeqs.map((seq) => ({ seq }) as never);
    const w = new WebhookSender({ url, settleMs: 50, findings, onOutcome: (ok) => outcomes.push(ok) });
    const zap = incident(20, 'high', 'pinned-range-zapped');
    w.update(zap, 'opened');
    w.update({ ...zap, anomalySeqs: [20, 21], rules: ['pinned-range-zapped', 'pin-leak'] }, 'updated');
    w.update({ ...zap, severity: 'critical', anomalySeqs: [20, 21, 22], rules: ['pin-pte-divergence', 'pinned-range-zapped', 'pin-leak'] }, 'updated');
    w.update(incident(30, 'warning', 'fork-with-pins'), 'opened');
    await waitFor(() => outcomes.length === 1);
    assert.equal(received.length, 1, 'the three findings of one event are one POST');
    assert.equal(received[0]!.incident.severity, 'critical');
    assert.deepEqual(received[0]!.findings.map((f) => f.seq), [20, 21, 22]);
    // already sent as critical: a later finding is not sent again; closing is not sent
    w.update({ ...zap, severity: 'critical', anomalySeqs: [20, 21, 22, 23] }, 'updated');
    w.update({ ...zap, severity: 'critical', closedWallMs: Date.now() }, 'closed');
    // a high incident sent as high, then escalated: sent again
    const h = incident(40, 'high', 'pinned-range-zapped');
    w.update(h, 'opened');
    await waitFor(() => outcomes.length === 2);
    w.update({ ...h, severity: 'critical' }, 'updated');
    await waitFor(() => outcomes.length === 3);
    await new Promise((r) => setTimeout(r, 150));
    assert.deepEqual(received.map((p) => `${p.incident.id} ${p.incident.severity}`), ['20 critical', '40 high', '40 critical']);
    w.close();
  });
});
