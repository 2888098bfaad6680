// Store: batching, durability (flush/close/exit), sequence continuation, locks, version checks, read queries.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { eventPayload, type SequencedEvent } from '../../../schema/events.ts';
import { SCHEMA_VERSION } from '../../../schema/tables.ts';
import { Store, StoreError } from '../../../collector/store/index.ts';
import { anomaly, eventsOfEveryKind, pin, resetSeq, SESSION, sequenced, sleep, tempDir, withPages } from './helpers.ts';
import { pageAt } from '../../../schema/pin-runs.ts';

const count = (file: string, table: string): number => {
  const db = new Database(file, { readonly: true });
  try {
    return (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
  } finally {
    db.close();
  }
};

function madvise(seq: number, pid = 100, addr = 0x7f00_0000_0000 + (seq % 64) * 4096): SequencedEvent {
  return sequenced({ kind: 'madvise', tsNs: 1_000_000 + seq, pid, tid: pid, comm: 'app', addr, len: 4096, behavior: 4, ret: 0 }, seq);
}

test('creates the schema, records the version and refuses writes before startSession', (t) => {
  const file = join(tempDir(t), 'a.db');
  const store = Store.open(file);
  t.after(() => store.close());
  const db = new Database(file, { readonly: true });
  const v = db.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).get() as { value: string };
  assert.equal(Number(v.value), SCHEMA_VERSION);
  assert.equal(String(db.pragma('journal_mode', { simple: true })), 'wal');
  db.close();
  assert.throws(() => store.event(madvise(1)), /startSession/);
});

test('queues rows and writes them in one transaction per batch, not per row', async (t) => {
  const file = join(tempDir(t), 'batch.db');
  const store = Store.open(file, { flushIntervalMs: 40 });
  t.after(() => store.close());
  store.startSession(SESSION);
  for (let i = 1; i <= 1000; i++) store.event(madvise(i));
  assert.equal(count(file, 'events'), 0, 'nothing written synchronously on the hot path');
  assert.equal(store.queued, 1000);
  await sleep(150);
  assert.equal(count(file, 'events'), 1000, 'the interval flush wrote everything');
  const s = store.stats();
  assert.equal(s.flushes, 1, 'one batch');
  assert.equal(s.rowsWritten, 1000);
  assert.equal(store.queued, 0);
});

test('a full batch is written as soon as the event loop turns, before the interval', async (t) => {
  const file = join(tempDir(t), 'full.db');
  const store = Store.open(file, { flushIntervalMs: 60_000, maxBatchRows: 100 });
  t.after(() => store.close());
  store.startSession(SESSION);
  for (let i = 1; i <= 250; i++) store.event(madvise(i));
  await new Promise((r) => setImmediate(r));
  assert.equal(count(file, 'events'), 250, 'the batch trigger flushed all queued rows');
  for (let i = 251; i <= 260; i++) store.event(madvise(i));
  await new Promise((r) => setImmediate(r));
  assert.equal(count(file, 'events'), 250, 'below the threshold rows wait for the interval');
  store.flush();
  assert.equal(count(file, 'events'), 260);
});

test('events round-trip: every kind comes back equal, addr/len columns from the main address field, payload = eventPayload', (t) => {
  const file = join(tempDir(t), 'kinds.db');
  resetSeq();
  const store = Store.open(file);
  t.after(() => store.close());
  store.startSession(SESSION);
  const all = eventsOfEveryKind();
  for (const { e } of all) store.event(e);
  store.flush();
  const back = store.eventsBySeq(all.map((x) => x.e.seq));
  assert.equal(back.length, all.length);
  for (let i = 0; i < all.length; i++) assert.deepEqual(back[i], all[i].e, `kind ${all[i].e.kind}`);
  const db = new Database(file, { readonly: true });
  t.after(() => db.close());
  for (const { e, addr, len } of all) {
    const r = db.prepare(`SELECT addr, len, payload, kind, session_id FROM events WHERE seq = ?`).get(e.seq) as {
      addr: number | null;
      len: number | null;
      payload: string;
      kind: string;
      session_id: number;
    };
    assert.equal(r.kind, e.kind);
    assert.equal(r.addr, addr, `${e.kind} addr`);
    assert.equal(r.len, len, `${e.kind} len`);
    assert.equal(r.payload, JSON.stringify(eventPayload(e)), `${e.kind} payload`);
    assert.equal(r.session_id, 1);
  }
});

test('close() flushes everything queued: events, anomalies, pagemap reads, pins, lost count and lost per kind', (t) => {
  const file = join(tempDir(t), 'close.db');
  const store = Store.open(file, { flushIntervalMs: 60_000 });
  store.startSession(SESSION);
  for (let i = 1; i <= 10; i++) store.event(madvise(i));
  store.anomaly(anomaly(1));
  store.pagemapRead({ tsNs: 5, pid: 100, addr: 0x7f00_0000_1000, present: true, swapped: false, pfn: 0x3333 }, 'madvise');
  store.pin(pin(1));
  store.lost(7);
  store.lost(5);
  store.lostByKind({ munmap: 9 });
  store.lostByKind({ munmap: 10, fork: 2 }); // the latest replaces the last
  store.close();
  assert.equal(count(file, 'events'), 10);
  assert.equal(count(file, 'anomalies'), 1);
  assert.equal(count(file, 'pagemap_reads'), 1);
  assert.equal(count(file, 'pins'), 1);
  assert.equal(count(file, 'pin_page_runs'), 1, 'four contiguous pages: one run');
  const ro = Store.open(file, { readonly: true });
  t.after(() => ro.close());
  assert.equal(ro.sessions()[0].lostEvents, 12);
  assert.deepEqual(ro.sessions()[0].lostByKind, { munmap: 10, fork: 2 });
});

test('a process that exits without close() still writes what it handed over (exit hook)', (t) => {
  const file = join(tempDir(t), 'exit.db');
  const script = `
    const { Store } = await import(${JSON.stringify(new URL('../../../collector/store/index.ts', import.meta.url).href)});
    const s = Store.open(${JSON.stringify(file)}, { flushIntervalMs: 60000 });
    s.startSession({ host: 'h', kernel: 'k', bpftraceVersion: 'v', mode: 'tracepoint', probes: [] });
    for (let i = 1; i <= 500; i++) s.event({ kind: 'exit', tsNs: i, pid: i, tid: i, comm: 'x', seq: i });
    process.exit(0);
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(count(file, 'events'), 500);
});

test('a reopened database continues sequence numbers and pin ids, and adds a session', (t) => {
  const file = join(tempDir(t), 'reopen.db');
  const a = Store.open(file);
  assert.deepEqual(a.nextSeqs(), { firstEventSeq: 1, firstAnomalySeq: 1, firstPinId: 1, firstIncidentId: 1 });
  a.startSession(SESSION);
  for (let i = 1; i <= 42; i++) a.event(madvise(i));
  a.anomaly(anomaly(1));
  a.anomaly(anomaly(2));
  a.pin(pin(3));
  assert.deepEqual(a.nextSeqs(), { firstEventSeq: 43, firstAnomalySeq: 3, firstPinId: 4, firstIncidentId: 1 }, 'queued rows count too');
  a.endSession();
  a.close();

  const b = Store.open(file);
  t.after(() => b.close());
  assert.deepEqual(b.nextSeqs(), { firstEventSeq: 43, firstAnomalySeq: 3, firstPinId: 4, firstIncidentId: 1 });
  const s2 = b.startSession({ ...SESSION, mode: 'kprobe' });
  assert.equal(s2.id, 2);
  b.event(madvise(43));
  b.flush();
  const sessions = b.sessions();
  assert.equal(sessions.length, 2);
  assert.notEqual(sessions[0].endedWallMs, null);
  assert.equal(sessions[1].endedWallMs, null);
  assert.equal(sessions[1].mode, 'kprobe');
  assert.deepEqual(sessions[0].probes, SESSION.probes);
});

test('locked database: flush() fails with a clear StoreError, keeps every row, and succeeds once the lock is gone', (t) => {
  const file = join(tempDir(t), 'locked.db');
  const store = Store.open(file, { flushIntervalMs: 60_000, busyTimeoutMs: 100 });
  t.after(() => store.close());
  store.startSession(SESSION);
  const other = new Database(file);
  t.after(() => other.close());
  other.exec('BEGIN EXCLUSIVE');
  for (let i = 1; i <= 300; i++) store.event(madvise(i));
  store.anomaly(anomaly(1));
  let err: unknown;
  try {
    store.flush();
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof StoreError, `StoreError, got ${String(err)}`);
  assert.equal(err.code, 'locked');
  assert.ok(err.message.includes(file), 'names the file');
  assert.match(err.fix, /another|different --db/);
  assert.equal(store.queued, 301, 'nothing dropped');
  other.exec('ROLLBACK');
  store.flush();
  assert.equal(count(file, 'events'), 300);
  assert.equal(count(file, 'anomalies'), 1);
});

test('locked database in the background: reported once, retried, nothing lost', async (t) => {
  const file = join(tempDir(t), 'bg.db');
  const errors: Error[] = [];
  let recovered = 0;
  const store = Store.open(file, {
    flushIntervalMs: 10,
    backgroundBusyTimeoutMs: 10,
    onError: (e) => errors.push(e),
    onRecovered: () => recovered++,
  });
  t.after(() => store.close());
  store.startSession(SESSION);
  const other = new Database(file);
  t.after(() => other.close());
  other.exec('BEGIN EXCLUSIVE');
  for (let i = 1; i <= 50; i++) store.event(madvise(i));
  await sleep(200);
  for (let i = 51; i <= 100; i++) store.event(madvise(i));
  await sleep(100);
  assert.equal(errors.length, 1, 'one report per failure streak');
  assert.ok(errors[0] instanceof StoreError && errors[0].code === 'locked');
  assert.ok(store.stats().failedFlushes >= 2, 'retried');
  other.exec('ROLLBACK');
  await sleep(2_500); // backoff is capped at 2 s
  assert.equal(recovered, 1);
  assert.equal(count(file, 'events'), 100);
});

test('one writer per file: a second writer is refused with a clear error; a stale writer row is taken over', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'one.db');
  const a = Store.open(file);
  assert.throws(
    () => Store.open(file),
    (e: unknown) => e instanceof StoreError && e.code === 'locked' && e.message.includes(file) && /being written/.test(e.message),
  );
  // Readers are fine beside the writer.
  const ro = Store.open(file, { readonly: true });
  ro.close();
  a.close();
  // A writer that died left its row: a pid that cannot exist.
  const db = new Database(file);
  db.prepare(`INSERT OR REPLACE INTO meta (key, value) VALUES ('writer', ?)`).run(JSON.stringify({ pid: 2 ** 22 + 7, host: hostname(), sinceMs: 1 }));
  db.close();
  const b = Store.open(file);
  b.close();
});

test('opening while another connection holds an exclusive lock fails with a StoreError, not a stack trace', (t) => {
  const file = join(tempDir(t), 'open-locked.db');
  Store.open(file).close();
  const other = new Database(file);
  t.after(() => other.close());
  other.exec('BEGIN EXCLUSIVE');
  assert.throws(
    () => Store.open(file, { busyTimeoutMs: 50 }),
    (e: unknown) => e instanceof StoreError && e.code === 'locked' && e.message.includes(file),
  );
  other.exec('ROLLBACK');
});

test('refuses a database of another schema version, a foreign SQLite file and a non-database', (t) => {
  const dir = tempDir(t);
  const old = join(dir, 'v99.db');
  const db = new Database(old);
  db.exec(`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL); INSERT INTO meta VALUES ('schema_version', '99');`);
  db.close();
  for (const readonly of [false, true]) {
    assert.throws(
      () => Store.open(old, { readonly }),
      (e: unknown) => e instanceof StoreError && e.code === 'schema-version' && e.message.includes(old) && /99/.test(e.message) && e.fix.length > 0,
    );
  }
  const foreign = join(dir, 'foreign.db');
  const f = new Database(foreign);
  f.exec('CREATE TABLE t (x)');
  f.close();
  assert.throws(() => Store.open(foreign), (e: unknown) => e instanceof StoreError && e.code === 'not-a-database');
  const junk = join(dir, 'junk.db');
  writeFileSync(junk, 'this is not sqlite, just text that is long enough to have a header'.repeat(20));
  assert.throws(() => Store.open(junk), (e: unknown) => e instanceof StoreError && e.code === 'not-a-database' && e.message.includes(junk));
  assert.throws(() => Store.open(join(dir, 'missing.db'), { readonly: true }), (e: unknown) => e instanceof StoreError && e.code === 'not-found');
  assert.throws(() => Store.open(join(dir, 'no-such-dir', 'x.db')), (e: unknown) => e instanceof StoreError && e.code === 'not-found');
});

test('read-only queries beside a live writer: sessions, anomalies with filters, anomaly(seq), pins, pin runs', (t) => {
  const file = join(tempDir(t), 'ro.db');
  const w = Store.open(file);
  t.after(() => w.close());
  w.startSession(SESSION);
  w.anomaly(anomaly(1));
  w.anomaly(anomaly(2, { rule: 'fork-with-pins', severity: 'warning', pid: 200, comm: 'qemu', confirmed: false }));
  w.anomaly(anomaly(3, { rule: 'pinned-range-zapped', severity: 'high', confirmed: true }));
  w.anomaly(anomaly(4, { pid: 200, comm: 'qemu', confirmed: false, lowConfidence: true, pinId: null, pfn: null, newPfn: null }));
  w.pin(pin(1));
  const p2 = withPages(pin(2), { 1: { currentPfn: 0x9999 } /* diverged */, 2: { currentPfn: null } /* zapped, not diverged */ });
  w.pin({ ...p2, state: 'diverged' });
  w.flush();

  const r = Store.open(file, { readonly: true });
  t.after(() => r.close());
  assert.equal(r.sessions().length, 1);
  assert.equal(r.sessions()[0].host, 'testhost');
  assert.deepEqual(r.anomalies().map((a) => a.seq), [1, 2, 3, 4]);
  assert.deepEqual(r.anomalies({ afterSeq: 2 }).map((a) => a.seq), [3, 4]);
  assert.deepEqual(r.anomalies({ rule: 'fork-with-pins' }).map((a) => a.seq), [2]);
  assert.deepEqual(r.anomalies({ severity: 'critical' }).map((a) => a.seq), [1, 4]);
  assert.deepEqual(r.anomalies({ pid: 200 }).map((a) => a.seq), [2, 4]);
  assert.deepEqual(r.anomalies({ comm: 'qemu', confirmed: false }).map((a) => a.seq), [2, 4]);
  assert.deepEqual(r.anomalies({ confirmed: true }).map((a) => a.seq), [1, 3]);
  assert.deepEqual(r.anomalies({ limit: 2, order: 'desc' }).map((a) => a.seq), [4, 3]);
  assert.deepEqual(r.anomaly(4), anomaly(4, { pid: 200, comm: 'qemu', confirmed: false, lowConfidence: true, pinId: null, pfn: null, newPfn: null }));
  assert.equal(r.anomaly(99), null);
  const pins = r.pins();
  assert.deepEqual(pins.map((p) => [p.id, p.state, p.pageCount, p.divergedPages]), [
    [1, 'intact', 4, 0],
    [2, 'diverged', 4, 1],
  ]);
  assert.deepEqual(r.pinRuns(2)?.runs, [
    { page: 0, count: 1, pinnedPfn: 0x1000, currentPfn: 0x1000, snapshotLate: false },
    { page: 1, count: 1, pinnedPfn: 0x1001, currentPfn: 0x9999, snapshotLate: false },
    { page: 2, count: 1, pinnedPfn: 0x1002, currentPfn: null, snapshotLate: false },
    { page: 3, count: 1, pinnedPfn: 0x1003, currentPfn: 0x1003, snapshotLate: false },
  ]);
  assert.deepEqual(r.pinDetail(2)?.runs, r.pinRuns(2)?.runs);
  assert.equal(r.pinRuns(99), null);
  assert.throws(() => r.event(madvise(1)), /read-only/);
});

test('pins are upserted: one row per id with the latest state, changed pages rewritten, released kept', (t) => {
  const file = join(tempDir(t), 'pins.db');
  const s = Store.open(file);
  t.after(() => s.close());
  s.startSession(SESSION);
  const p = pin(7);
  s.pin(p);
  s.flush();
  const changed = withPages(pin(7, { state: 'zapped' }), { 3: { currentPfn: null }, 0: { snapshotLate: true } });
  s.pin(changed);
  s.flush();
  s.pin(pin(7, { state: 'released', releasedNs: 9_000_000 }));
  s.flush();
  assert.equal(count(file, 'pins'), 1);
  assert.equal(count(file, 'pin_page_runs'), 1, 'back to one run: the split runs were deleted');
  const [row] = s.pins();
  assert.equal(row.state, 'released');
  assert.equal(row.releasedNs, 9_000_000);
  const runs = s.pinRuns(7)?.runs ?? [];
  assert.equal(pageAt(runs, 3)?.currentPfn, 0x1003, 'the released state carries the pages as the model last saw them');
  assert.equal(pageAt(runs, 0)?.snapshotLate, false);
});

test('pageTimeline: every event and pagemap read touching one page, in time order', (t) => {
  const file = join(tempDir(t), 'timeline.db');
  const s = Store.open(file);
  t.after(() => s.close());
  s.startSession(SESSION);
  const A = 0x7f00_0000_0000;
  const page = A + 2 * 4096;
  const B = A + 0x100000; // mremap destination
  const mm = '0xffff888100000000';
  let n = 0;
  const ev = (e: object) => sequenced({ tid: (e as { pid: number }).pid, comm: 'app', ...e } as never, ++n) as SequencedEvent;
  const events: SequencedEvent[] = [
    ev({ kind: 'pin_iovec', tsNs: 10, pid: 100, source: 'io_uring', fd: 5, opcode: 0, index: 0, addr: A, len: 4 * 4096 }), // 1 covers
    ev({ kind: 'pin_result', tsNs: 11, pid: 100, source: 'io_uring', fd: 5, opcode: 0, nr: 1, ret: 0, mm }), // 2 result
    ev({ kind: 'madvise', tsNs: 20, pid: 100, addr: page, len: 4096, behavior: 4, ret: 0 }), // 3 covers
    ev({ kind: 'madvise', tsNs: 21, pid: 100, addr: A + 3 * 4096, len: 4096, behavior: 4, ret: 0 }), // 4 next page: no
    ev({ kind: 'fault', tsNs: 30, pid: 100, addr: page + 100, errorCode: 6, ip: 1 }), // 5 covers
    ev({ kind: 'fault', tsNs: 31, pid: 100, addr: page - 1, errorCode: 6, ip: 1 }), // 6 previous page: no
    ev({ kind: 'madvise', tsNs: 32, pid: 300, addr: page, len: 4096, behavior: 4, ret: 0 }), // 7 other pid: no
    ev({ kind: 'fork', tsNs: 40, pid: 100, childPid: 101, childComm: 'app', cloneFlags: 17 }), // 8 process
    ev({ kind: 'fork', tsNs: 41, pid: 300, childPid: 301, childComm: 'x', cloneFlags: 17 }), // 9 other pid: no
    ev({ kind: 'scan_pmd', tsNs: 50, pid: 77, comm: 'khugepaged', mm, pfn: 0x5555, referenced: 0, noneOrZero: 0, status: 14, unmapped: 0 }), // 10 mm
    ev({ kind: 'scan_pmd', tsNs: 51, pid: 77, comm: 'khugepaged', mm: '0xffff8881deadbeef', pfn: 1, referenced: 0, noneOrZero: 0, status: 1, unmapped: 0 }), // 11 other mm: no
    ev({ kind: 'writeback', tsNs: 60, pid: 0, comm: 'kswapd0', pfn: 0x4444, reclaimFlags: 0 }), // 12 pfn (pagemap read below)
    ev({ kind: 'writeback', tsNs: 61, pid: 0, comm: 'kswapd0', pfn: 0x7777, reclaimFlags: 0 }), // 13 unrelated pfn: no
    ev({ kind: 'munmap', tsNs: 70, pid: 100, addr: A + 0x800000, len: 4096, ret: 0 }), // 14 elsewhere: no
    ev({ kind: 'mremap', tsNs: 80, pid: 100, addr: A + 0x400000, oldLen: 4096, newLen: 4 * 4096, flags: 3, newAddrArg: A, ret: A }), // 15 new range covers
    ev({ kind: 'mremap', tsNs: 81, pid: 100, addr: A, oldLen: 4 * 4096, newLen: 4 * 4096, flags: 3, newAddrArg: B, ret: B }), // 16 old range covers
    ev({ kind: 'exit', tsNs: 90, pid: 100 }), // 17 process
    ev({ kind: 'mmap_fixed', tsNs: 85, pid: 100, addr: page - 0x2000_0000, len: 0x4000_0000, prot: 3, flags: 0x32, fd: -1, ret: page - 0x2000_0000 }), // 18 1 GiB range from far below
    ev({ kind: 'mmap_fixed', tsNs: 86, pid: 100, addr: page - 0x3000_0000, len: 0x1000_0000, prot: 3, flags: 0x32, fd: -1, ret: 0 }), // 19 ends below: no
  ];
  for (const e of events) s.event(e);
  s.pagemapRead({ tsNs: 25, pid: 100, addr: page, present: true, swapped: false, pfn: 0x4444 }, 'madvise');
  s.pagemapRead({ tsNs: 26, pid: 100, addr: page + 4096, present: true, swapped: false, pfn: 0x4445 }, 'madvise'); // other page
  s.flush();

  const tl = s.pageTimeline(100, page + 77);
  const got = tl.map((x) => (x.type === 'event' ? `${x.event.seq}:${x.match}` : `read:${x.reason}`));
  const expected = ['1:range', '2:result', '3:range', 'read:madvise', '5:range', '8:process', '10:mm', '12:pfn', '15:range', '16:range', '18:range', '17:process'];
  assert.deepEqual(got, expected);
  const ro = Store.open(file, { readonly: true });
  t.after(() => ro.close());
  assert.deepEqual(
    ro.pageTimeline(100, page).map((x) => (x.type === 'event' ? `${x.event.seq}:${x.match}` : `read:${x.reason}`)),
    expected,
    'a read-only reader sees the same timeline',
  );
  const ts = tl.map((x) => x.tsNs);
  assert.deepEqual(ts, [...ts].sort((a, b) => a - b));
  const read = tl.find((x) => x.type === 'pagemap');
  assert.deepEqual(read && read.type === 'pagemap' ? read.read : null, { tsNs: 25, pid: 100, addr: page, present: true, swapped: false, pfn: 0x4444 });
});

test('eventRates: per-kind counts per wall-clock second from the monotonic timestamps', (t) => {
  const file = join(tempDir(t), 'rates.db');
  const s = Store.open(file);
  t.after(() => s.close());
  s.startSession(SESSION);
  const nowNs = Number(process.hrtime.bigint());
  let n = 0;
  const mk = (kind: 'madvise' | 'fault', tsNs: number) =>
    kind === 'madvise'
      ? sequenced({ kind, tsNs, pid: 1, tid: 1, comm: 'a', addr: 0, len: 4096, behavior: 4, ret: 0 }, ++n)
      : sequenced({ kind, tsNs, pid: 1, tid: 1, comm: 'a', addr: 0, errorCode: 6, ip: 0 }, ++n);
  // 3 s ago: 2 madvise; 1 s ago: 1 madvise + 4 faults; 100 s ago: 5 faults (outside the window asked for)
  for (let i = 0; i < 5; i++) s.event(mk('fault', nowNs - 100e9 + i));
  s.event(mk('madvise', nowNs - 3e9));
  s.event(mk('madvise', nowNs - 3e9 + 1000));
  s.event(mk('madvise', nowNs - 1e9));
  for (let i = 0; i < 4; i++) s.event(mk('fault', nowNs - 1e9 + 10 + i));
  s.flush();
  const rates = s.eventRates(Date.now() - 10_000);
  const total = (k: 'madvise' | 'fault') => rates.reduce((acc, r) => acc + (r.counts[k] ?? 0), 0);
  assert.equal(total('madvise'), 3);
  assert.equal(total('fault'), 4);
  for (const r of rates) assert.equal(r.wallMs % 1000, 0, 'bucket ends on a second');
  assert.ok(rates[rates.length - 1].wallMs <= Date.now() + 1000);
  assert.deepEqual(s.eventRates(Date.now() + 60_000), []);
});
