// Which events become rows and which are only counted (collector/kept-events.ts), decided by the Collector
// after the model and the rules ran on each event; and what the store does with the counts (event_counts,
// added back by the per-kind totals, the live rates and the recording's rates).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import type { SequencedEvent } from '../../../schema/events.ts';
import { MADV } from '../../../schema/kernel.ts';
import { COUNTABLE_KINDS, keepEvent } from '../../../collector/kept-events.ts';
import { Store } from '../../../collector/store/index.ts';
import { SESSION, sequenced, tempDir } from '../store/helpers.ts';
import { BUF, Harness, PAGE } from './harness.ts';

test('keepEvent: process-local churn of a process without pins is counted; anything near a pin, or host-wide, is kept', () => {
  for (const kind of COUNTABLE_KINDS) {
    assert.equal(keepEvent(kind, false, false, false, false), false, `${kind} of a process that pins nothing`);
    assert.equal(keepEvent(kind, true, false, false, false), true, `${kind} of a process that held a pin (exit, close)`);
    assert.equal(keepEvent(kind, false, true, false, false), true, `${kind} of a process that holds a pin after it`);
    assert.equal(keepEvent(kind, false, false, true, false), true, `${kind} that touched a pin`);
    assert.equal(keepEvent(kind, false, false, false, true), true, `${kind} that raised an anomaly`);
  }
  for (const kind of ['pin_iovec', 'pin_result', 'vfio_dma', 'gup', 'unpin', 'wp_page', 'scan_pmd', 'collapse_file', 'ksm_merge', 'migrate_pte', 'uffd_register', 'lost'] as const) {
    assert.equal(keepEvent(kind, false, false, false, false), true, `${kind} is always kept`);
  }
});

test('Collector: pre-pin churn and other processes are counted; the pinning process, from its pin on, is kept', () => {
  const h = new Harness();
  const ev = h.ev;
  h.anonBuffer(100, BUF, 4, 0x1000);
  // Before it pins: counted. Another process: counted, its fork and exit too.
  h.feed(ev.madvise(100, BUF + 64 * PAGE, PAGE, MADV.DONTNEED), ev.mmapFixed(200, 0x10000000, PAGE), ev.fork(200, 201), ev.exit(201));
  h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
  // The pinning process: everything kept, also what does not touch its pin.
  h.feed(ev.madvise(100, BUF + 64 * PAGE, PAGE, MADV.DONTNEED), ev.madvise(100, BUF, PAGE, MADV.DONTNEED));
  // A process that pins nothing, unrelated: still counted.
  h.feed(ev.munmap(300, 0x20000000, PAGE), ev.fault(300, 0x20000000));
  assert.deepEqual(h.sink.counted(), ['madvise:100', 'mmap_fixed:200', 'fork:200', 'exit:201', 'munmap:300', 'fault:300']);
  const kept = h.sink.events.filter((_, i) => h.sink.kept[i]).map((e) => `${e.kind}:${e.pid}`);
  assert.deepEqual(kept, ['pin_iovec:100', 'pin_result:100', 'madvise:100', 'madvise:100']);
  // The ring's fd is closed and the process exits: its exit is kept (it held the pin until then).
  h.feed(ev.exit(100));
  assert.equal(h.sink.kept.at(-1), true, 'the exit that released the pin is kept');
  // Every anomaly cites a kept event.
  const keptSeqs = new Set(h.sink.events.filter((_, i) => h.sink.kept[i]).map((e) => e.seq));
  for (const a of h.sink.anomalies) for (const e of a.evidence) if ('seq' in e && typeof e.seq === 'number') assert.ok(keptSeqs.has(e.seq), `anomaly ${a.rule} cites kept event ${e.seq}`);
});

test('store: counted events land in event_counts per second and kind; totals and rates add them', (t) => {
  const file = join(tempDir(t), 'counts.db');
  const s = Store.open(file);
  t.after(() => s.close());
  s.startSession(SESSION);
  const nowNs = Number(process.hrtime.bigint());
  let n = 0;
  const madvise = (tsNs: number, pid = 1) => sequenced({ kind: 'madvise', tsNs, pid, tid: pid, comm: 'a', addr: 0, len: 4096, behavior: 4, ret: 0 }, ++n) as SequencedEvent;
  const fault = (tsNs: number) => sequenced({ kind: 'fault', tsNs, pid: 1, tid: 1, comm: 'a', addr: 0, errorCode: 6, ip: 0 }, ++n) as SequencedEvent;
  const sec = Math.floor((nowNs - 3e9) / 1e9) * 1e9;
  // Second A: 3 counted madvise, 1 stored; second A+1: 2 counted faults; then second A again (another CPU's buffer).
  s.event(madvise(sec + 1), false);
  s.event(madvise(sec + 2), false);
  s.event(madvise(sec + 3, 7));
  s.event(fault(sec + 1e9 + 5), false);
  s.event(fault(sec + 1e9 + 6), false);
  s.event(madvise(sec + 4), false);
  s.flush();
  s.event(madvise(sec + 5), false); // a second transaction adds to the same row
  s.flush();
  const d = new Database(file, { readonly: true });
  t.after(() => d.close());
  assert.deepEqual(d.prepare(`SELECT sec, kind, n FROM event_counts ORDER BY sec, kind`).all(), [
    { sec: sec / 1e9, kind: 'madvise', n: 4 },
    { sec: sec / 1e9 + 1, kind: 'fault', n: 2 },
  ]);
  assert.equal((d.prepare(`SELECT count(*) AS n FROM events`).get() as { n: number }).n, 1, 'only the kept event is a row');
  assert.deepEqual(s.queries.eventCounts(), { madvise: 5, fault: 2 });
  const since = s.eventRates(Date.now() - 10_000);
  const total = (rates: typeof since, k: 'madvise' | 'fault') => rates.reduce((acc, r) => acc + (r.counts[k] ?? 0), 0);
  assert.equal(total(since, 'madvise'), 5);
  assert.equal(total(since, 'fault'), 2);
  for (const r of since) assert.equal(r.wallMs % 1000, 0, 'bucket ends on a second');
  const rec = s.queries.rates(600);
  assert.equal(total(rec, 'madvise'), 5, 'the recording rates (1 s buckets) add the counts');
  assert.equal(total(rec, 'fault'), 2);
});
