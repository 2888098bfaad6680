// Hub: re-emits, resume without duplicates, ring limit, pins (latest state, released retention), rates, status.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Anomaly } from '../../../schema/anomalies.ts';
import type { SequencedEvent } from '../../../schema/events.ts';
import type { EventRates } from '../../../schema/protocol.ts';
import { Hub } from '../../../collector/publish/index.ts';
import { anomaly, pin, SESSION, withPages } from '../store/helpers.ts';

const fault = (seq: number): SequencedEvent => ({ kind: 'fault', tsNs: seq, pid: 1, tid: 1, comm: 'a', addr: 0x1000, errorCode: 6, ip: 0, seq });
const madv = (seq: number): SequencedEvent => ({ kind: 'madvise', tsNs: seq, pid: 1, tid: 1, comm: 'a', addr: 0x1000, len: 4096, behavior: 4, ret: 0, seq });

test('re-emits every sink call to listeners', () => {
  const hub = new Hub();
  const got: string[] = [];
  hub.on('event', (e: SequencedEvent) => got.push(`event ${e.seq}`));
  hub.on('pin', (p: { id: number }) => got.push(`pin ${p.id}`));
  hub.on('pagemapRead', (r: { addr: number }, reason: string) => got.push(`read ${r.addr} ${reason}`));
  hub.on('anomaly', (a: Anomaly) => got.push(`anomaly ${a.seq}`));
  hub.on('lost', (n: number) => got.push(`lost ${n}`));
  hub.event(fault(1));
  hub.pin(pin(3));
  hub.pagemapRead({ tsNs: 1, pid: 1, addr: 4096, present: true, swapped: false, pfn: 7 }, 'timer');
  hub.anomaly(anomaly(1));
  hub.lost(5);
  assert.deepEqual(got, ['event 1', 'pin 3', 'read 4096 timer', 'anomaly 1', 'lost 5']);
  assert.deepEqual({ ...hub.totals(), byKind: hub.totals().byKind }, { events: 1, anomalies: 1, incidents: 0, lost: 5, byKind: { fault: 1 } });
});

test('no listener on event: nothing is emitted (the hot path stays a counter increment)', () => {
  const hub = new Hub();
  let emits = 0;
  const orig = hub.emit.bind(hub);
  hub.emit = ((name: string, ...args: unknown[]) => {
    if (name === 'event') emits++;
    return orig(name, ...args);
  }) as typeof hub.emit;
  for (let i = 1; i <= 100; i++) hub.event(fault(i));
  assert.equal(emits, 0);
  const fn = () => undefined;
  hub.on('event', fn);
  hub.event(fault(101));
  assert.equal(emits, 1);
  hub.off('event', fn);
  hub.event(fault(102));
  assert.equal(emits, 1);
  assert.equal(hub.totals().events, 102);
});

test('a reconnecting client gets exactly what it missed: no duplicates, no gaps', () => {
  const hub = new Hub();
  for (let s = 1; s <= 10; s++) hub.anomaly(anomaly(s));
  // A client saw up to 4, reconnects: gets 5..10; then live ones only.
  const missed = hub.anomaliesAfter(4).map((a) => a.seq);
  assert.deepEqual(missed, [5, 6, 7, 8, 9, 10]);
  const live: number[] = [];
  hub.on('anomaly', (a: Anomaly) => live.push(a.seq));
  hub.anomaly(anomaly(11));
  const seen = [1, 2, 3, 4, ...missed, ...live];
  assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  assert.deepEqual(hub.anomaliesAfter(11), []);
  assert.deepEqual(hub.anomaliesAfter(0).length, 11);
  assert.equal(hub.lastAnomalySeq(), 11);
  // The same seq delivered twice replaces, never duplicates.
  hub.anomaly(anomaly(7, { summary: 'updated' }));
  assert.deepEqual(hub.anomaliesAfter(0).map((a) => a.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  assert.equal(hub.anomaliesAfter(6)[0].summary, 'updated');
});

test('keeps only the last maxAnomalies', () => {
  const hub = new Hub({ maxAnomalies: 5 });
  for (let s = 1; s <= 12; s++) hub.anomaly(anomaly(s));
  assert.deepEqual(hub.anomaliesAfter(0).map((a) => a.seq), [8, 9, 10, 11, 12]);
  assert.deepEqual(hub.anomaliesAfter(10).map((a) => a.seq), [11, 12]);
});

test('pins(): latest summary per id; released pins kept for the retention time, then dropped', () => {
  let now = 1_000_000;
  const hub = new Hub({ now: () => now, releasedPinRetentionMs: 60_000 });
  hub.pin(pin(1));
  const d = withPages(pin(2, { state: 'diverged' }), { 2: { currentPfn: 0xdead } });
  hub.pin(d);
  hub.pin(pin(1, { state: 'zapped' }));
  assert.deepEqual(hub.pins().map((p) => [p.id, p.state, p.pageCount, p.divergedPages]), [
    [1, 'zapped', 4, 0],
    [2, 'diverged', 4, 1],
  ]);
  assert.equal('runs' in hub.pins()[0], false, 'summaries carry no runs');
  hub.pin(pin(1, { state: 'released', releasedNs: 5 }));
  now += 30_000;
  assert.deepEqual(hub.pins().map((p) => [p.id, p.state]), [
    [1, 'released'],
    [2, 'diverged'],
  ]);
  now += 31_000;
  assert.deepEqual(hub.pins().map((p) => p.id), [2]);
});

test('released pins are capped by count', () => {
  const hub = new Hub({ maxReleasedPins: 3 });
  for (let id = 1; id <= 6; id++) hub.pin(pin(id, { state: 'released', releasedNs: id }));
  assert.deepEqual(hub.pins().map((p) => p.id), [4, 5, 6]);
});

test('rates: one bucket per tick with per-kind counts, 10 minutes kept, emitted as rates', () => {
  let now = 10_000;
  const hub = new Hub({ now: () => now, rateWindowS: 600 });
  const emitted: EventRates[] = [];
  hub.on('rates', (r: EventRates) => emitted.push(r));
  // The listener starts the 1 s timer, but this test is synchronous: only the explicit ticks below run.
  hub.event(fault(1));
  hub.event(fault(2));
  hub.event(madv(3));
  now = 11_000;
  hub.tick();
  now = 12_000;
  hub.tick(); // an empty second
  hub.event(madv(4));
  now = 13_000;
  hub.tick();
  assert.deepEqual(hub.rates(), [
    { wallMs: 11_000, counts: { fault: 2, madvise: 1 } },
    { wallMs: 12_000, counts: {} },
    { wallMs: 13_000, counts: { madvise: 1 } },
  ]);
  assert.deepEqual(emitted, hub.rates());
  for (let i = 0; i < 700; i++) hub.tick((now += 1000));
  assert.equal(hub.rates().length, 600);
  assert.equal(hub.rates()[599].wallMs, now);
  assert.deepEqual(hub.totals().byKind, { fault: 2, madvise: 2 });
});

test('the rates timer runs while started or while someone listens, and emits every second', async () => {
  const hub = new Hub();
  const got: EventRates[] = [];
  const fn = (r: EventRates) => got.push(r);
  hub.on('rates', fn);
  hub.event(fault(1));
  await new Promise((r) => setTimeout(r, 1_150));
  hub.off('rates', fn);
  assert.equal(got.length, 1);
  assert.deepEqual(got[0].counts, { fault: 1 });
  await new Promise((r) => setTimeout(r, 1_100));
  assert.equal(hub.rates().length, 1, 'timer stopped with the last listener');
});

test('session and status are kept and emitted', () => {
  const hub = new Hub();
  const seen: string[] = [];
  hub.on('session', (s: { id: number }) => seen.push(`session ${s.id}`));
  hub.on('status', (s: { level: string }) => seen.push(`status ${s.level}`));
  assert.equal(hub.session(), null);
  assert.equal(hub.status(), null);
  const info = { ...SESSION, id: 3, startedWallMs: 1, endedWallMs: null, lostEvents: 0 };
  hub.setSession(info);
  hub.setStatus({ level: 'error', message: 'bpftrace exited', fix: 'run pinwatch doctor' });
  assert.deepEqual(hub.session(), info);
  assert.deepEqual(hub.status(), { level: 'error', message: 'bpftrace exited', fix: 'run pinwatch doctor' });
  assert.deepEqual(seen, ['session 3', 'status error']);
});
