// The read side on its own read-only connection: what the dashboard and the exporters read (stored events with
// typed payloads, one page's timeline, counts), beside a live writer and on a file whose writer died.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import type { SequencedEvent } from '../../../schema/events.ts';
import { Store, StoreError, StoreQueries } from '../../../collector/store/index.ts';
import { RecordingError, openRecording } from '../../../web/server/recording.ts';
import { SESSION, anomaly, pin, sequenced, tempDir, withPages } from './helpers.ts';

const A = 0x7f00_0000_0000;

function fixture(file: string): Store {
  const w = Store.open(file);
  w.startSession(SESSION);
  let n = 0;
  const ev = (e: object) => sequenced({ tid: (e as { pid: number }).pid, comm: 'app', ...e } as never, ++n) as SequencedEvent;
  for (const e of [
    ev({ kind: 'pin_iovec', tsNs: 10, pid: 100, source: 'io_uring', fd: 5, opcode: 0, index: 0, addr: A, len: 4 * 4096 }),
    ev({ kind: 'gup', tsNs: 11, pid: 100, fn: 'pin_user_pages', addr: A, nrPages: 4, gupFlags: 0, ret: 4, pfns: [0x1000, 0x1001, 0x1002, 0x1003] }),
    ev({ kind: 'madvise', tsNs: 20, pid: 100, addr: A + 4096, len: 4096, behavior: 4, ret: 0 }),
    ev({ kind: 'lost', tsNs: 22, pid: 0, comm: '', count: 3 }),
    ev({ kind: 'madvise', tsNs: 30, pid: 100, addr: A + 3 * 4096, len: 4096, behavior: 4, ret: 0 }),
  ]) w.event(e);
  w.pagemapRead({ tsNs: 21, pid: 100, addr: A + 4096, present: true, swapped: false, pfn: 0x9999 }, 'madvise');
  w.pagemapRead({ tsNs: 12, pid: 100, addr: A + 4096, present: true, swapped: false, pfn: 0x1001 }, 'pin');
  const p = withPages(pin(1, { state: 'diverged' }), { 1: { currentPfn: 0x9999 } });
  w.pin(p);
  w.anomaly(anomaly(1, { addr: A + 4096, tsNs: 21 }));
  w.anomaly(anomaly(2, { addr: A + 3 * 4096, rule: 'pinned-range-zapped', severity: 'high' }));
  w.lost(3);
  w.flush();
  return w;
}

/** The fixture's writer (left open: a live writer) and a reader on its own read-only connection. */
function writerAndReader(t: { after(fn: () => void): void }): { w: Store; q: StoreQueries } {
  const file = join(tempDir(t), 'q.db');
  const w = fixture(file);
  t.after(() => w.close());
  const q = StoreQueries.open(file);
  t.after(() => q.close());
  return { w, q };
}

test('beside a live writer: stored events keep their columns and a typed payload; counts and bounds', (t) => {
  const { w, q } = writerAndReader(t);

  const [gup, madvise] = q.storedEvents([3, 2, 2, 99, Number.NaN]);
  assert.equal(gup.kind, 'gup');
  if (gup.kind !== 'gup') return;
  assert.deepEqual(gup.payload.pfns, [0x1000, 0x1001, 0x1002, 0x1003], 'the payload is typed by its kind');
  assert.deepEqual([gup.addr, gup.len], [A, 4 * 4096], 'addr/len are the stored columns');
  assert.equal(madvise.seq, 3);
  assert.deepEqual(madvise.payload, { addr: A + 4096, len: 4096, behavior: 4, ret: 0 });
  assert.deepEqual(q.eventsBySeq([3, 2]).map((e) => e.seq), [2, 3]);

  assert.deepEqual(q.eventCounts(), { pin_iovec: 1, gup: 1, madvise: 2, lost: 1 });
  assert.equal(q.lastTsNs(), 2_000_002, 'the latest of events, pagemap reads and anomalies');
  assert.deepEqual(q.anomalyCounts().map((c) => [c.rule, c.severity, c.count]).sort(), [
    ['pin-pte-divergence', 'critical', 1],
    ['pinned-range-zapped', 'high', 1],
  ]);
  assert.deepEqual(q.anomalies({ limit: Infinity }).map((a) => a.seq), [1, 2]);
  assert.deepEqual(q.pin(1) && [q.pin(1)!.state, q.pin(1)!.divergedPages], ['diverged', 1]);
  assert.equal(q.pin(9), null);

  w.anomaly(anomaly(3));
  w.flush();
  assert.deepEqual(q.anomalies({ afterSeq: 2 }).map((a) => a.seq), [3], 'the reader sees what the writer committed since');
  w.endSession();
  assert.equal(q.lostEvents(), 3);
});

test('timeline of one page: covering pins with the page (from its run), its anomalies, events with why, numbered reads, lost marks', (t) => {
  const { q } = writerAndReader(t);
  const d = q.timeline(100, A + 4096 + 5, 777);
  assert.deepEqual([d.pid, d.addr, d.comm, d.nowNs], [100, A + 4096, 'app', 777]);
  assert.deepEqual(d.pins.map((p) => [p.id, p.page]), [[1, { page: 1, pinnedPfn: 0x1001, currentPfn: 0x9999, snapshotLate: false }]]);
  assert.deepEqual(d.anomalies.map((a) => a.seq), [1]);
  assert.deepEqual(
    d.events.map((e) => `${e.seq}:${e.match}`),
    ['1:range', '2:range', '3:range', '4:lost'],
    'the madvise of another page is left out; the lost mark inside the window is in',
  );
  assert.deepEqual(d.reads.map((r) => [r.id, r.reason, r.pfn]), [
    [1, 'pin', 0x1001],
    [2, 'madvise', 0x9999],
  ]);
  assert.deepEqual(q.pinnedPages().map((p) => [p.addr, p.anomalies]).slice(0, 2), [
    [A + 4096, 1],
    [A + 3 * 4096, 1],
  ]);
});

test('a file whose writer died: sessions and pins read as crashed, as recorded for the export; refusals are StoreErrors', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'dead.db');
  const w = fixture(file);
  w.close();
  const raw = new Database(file);
  raw.prepare(`UPDATE sessions SET ended_ms = NULL`).run();
  raw.prepare(`INSERT OR REPLACE INTO meta (key, value) VALUES ('writer', ?)`).run(JSON.stringify({ pid: 2 ** 22 + 1, host: 'x', sinceMs: 0 }));
  raw.close();
  const q = StoreQueries.open(file);
  t.after(() => q.close());
  assert.equal(q.sessions()[0].endReason, 'crashed');
  assert.equal(q.recordedSessions()[0].endedWallMs, null);
  assert.equal(q.lastSession()?.endedWallMs, null);
  assert.equal(q.pin(1)?.releasedNs, 30, 'released at the last event');

  const foreign = join(dir, 'foreign.db');
  new Database(foreign).exec('CREATE TABLE t (x)').close();
  assert.throws(() => StoreQueries.open(foreign), (e: unknown) => e instanceof StoreError && e.code === 'not-a-database');
  assert.throws(() => StoreQueries.open(join(dir, 'missing.db')), (e: unknown) => e instanceof StoreError && e.code === 'not-found');
  writeFileSync(join(dir, 'text.db'), 'not sqlite at all, just text that is long enough to be read as a header');
  assert.throws(() => openRecording(join(dir, 'text.db')), (e: unknown) => e instanceof RecordingError && /not a usable SQLite database .*pass a different --db path/.test((e as Error).message));
});
