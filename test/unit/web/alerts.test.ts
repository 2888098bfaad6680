// POST /api/alerts input: Alertmanager's webhook JSON (version 4). The latest state per fingerprint is kept;
// anything else is refused with what was wrong. (The live fleet test has real Alertmanager deliver it.)
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ZodError } from 'zod';
import { AlertInbox } from '../../../web/server/alerts.ts';

const alert = (status: 'firing' | 'resolved', fingerprint: string, host: string) => ({
  status,
  labels: { alertname: 'PinwatchDivergenceConfirmed', severity: 'critical', host, instance: `${host}:3000`, pid: '4242' },
  annotations: { summary: `qemu[4242] on ${host}: 1 pinned page(s) diverged (io_uring)`, dashboard: `http://${host}:3000/anomalies` },
  startsAt: '2026-12-05T08:00:00.000Z',
  endsAt: status === 'firing' ? '0001-01-01T00:00:00Z' : '2026-12-05T08:05:00.000Z',
  generatorURL: 'http://prometheus:9090/graph?g0.expr=...',
  fingerprint,
});

const hook = (status: 'firing' | 'resolved', alerts: ReturnType<typeof alert>[]) => ({
  version: '4', groupKey: '{}:{alertname="PinwatchDivergenceConfirmed"}', truncatedAlerts: 0, status, receiver: 'pinwatch-dashboard',
  groupLabels: { alertname: 'PinwatchDivergenceConfirmed' }, commonLabels: { alertname: 'PinwatchDivergenceConfirmed' }, commonAnnotations: {},
  externalURL: 'http://alertmanager:9093', alerts,
});

test('keeps the latest state of each alert, newest update first', () => {
  const inbox = new AlertInbox();
  assert.equal(inbox.receive(hook('firing', [alert('firing', 'a1', 'hv-01'), alert('firing', 'b2', 'hv-02')]), 1000), 2);
  assert.deepEqual(inbox.list().map((a) => `${a.fingerprint} ${a.status} ${a.host}`), ['b2 firing hv-02', 'a1 firing hv-01']);
  inbox.receive(hook('resolved', [alert('resolved', 'a1', 'hv-01')]), 2000);
  const list = inbox.list();
  assert.deepEqual(list.map((a) => `${a.fingerprint} ${a.status}`), ['a1 resolved', 'b2 firing']);
  assert.equal(list[0]!.name, 'PinwatchDivergenceConfirmed');
  assert.equal(list[0]!.dashboard, 'http://hv-01:3000/anomalies');
  assert.equal(list[0]!.receivedMs, 2000);
});

test('bounded: the oldest alert goes first', () => {
  const inbox = new AlertInbox(3);
  for (let i = 0; i < 5; i++) inbox.receive(hook('firing', [alert('firing', `f${i}`, `hv-${i}`)]));
  assert.deepEqual(inbox.list().map((a) => a.fingerprint), ['f4', 'f3', 'f2']);
});

test("refuses what is not Alertmanager's webhook format, saying what is wrong", () => {
  const inbox = new AlertInbox();
  assert.throws(() => inbox.receive({ type: 'pinwatch.incident' }), (e: unknown) => e instanceof ZodError && /version/.test(JSON.stringify(e.issues)));
  assert.throws(() => inbox.receive({ ...hook('firing', []), version: '3' }), (e: unknown) => e instanceof ZodError && e.issues[0]!.message === 'expected Alertmanager webhook version "4"');
  assert.equal(inbox.list().length, 0);
});
